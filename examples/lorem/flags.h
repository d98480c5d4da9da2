/* SPDX-License-Identifier: MIT */
/* Command-line flags for the lorem programs, in Go's style: -name value,
 * --name value, -name=value; a bool flag alone means true. Durations take
 * Go's units (500ms, 10s, 2m, 1h); a bare number is milliseconds. */
#ifndef LOREM_FLAGS_H
#define LOREM_FLAGS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  FLAG_STR,
  FLAG_INT,
  FLAG_DURATION,
  FLAG_BOOL
} lorem_flag_type;

typedef struct lorem_flag {
  const char *name; /* without dashes: "consul.addr" */
  lorem_flag_type type;
  void *ptr; /* const char **, long *, int64_t * (ms), int * */
  const char *help;
} lorem_flag;

/* Parse argv. Returns 0, 1 after printing the usage for -h/-help (exit 0),
 * or -1 after printing what was wrong (exit 2). */
int lorem_flags_parse(int argc, char **argv, const lorem_flag *flags, int nflags,
                      const char *synopsis);

/* "10s" -> 10000. Returns 0 or -1. */
int lorem_parse_duration_ms(const char *s, int64_t *ms);

/* Split "host:port" or "[v6]:port" or ":port"; host may come back "".
 * Returns 0 or -1. */
int lorem_split_hostport(const char *s, char *host, size_t hostcap, int *port);

#endif
