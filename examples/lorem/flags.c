/* SPDX-License-Identifier: MIT */
/* Go-style flags for the lorem programs (see flags.h). */
#include "lorem/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lorem_parse_duration_ms(const char *s, int64_t *ms) {
  if (!s || !*s) return -1;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) return -1;
  double mult;
  if (!*end || !strcmp(end, "ms")) mult = 1;
  else if (!strcmp(end, "s")) mult = 1000;
  else if (!strcmp(end, "m")) mult = 60000;
  else if (!strcmp(end, "h")) mult = 3600000;
  else if (!strcmp(end, "us") || !strcmp(end, "µs")) mult = 0.001;
  else return -1;
  v *= mult;
  if (v > 9e15) return -1;
  *ms = (int64_t)(v + 0.5);
  return 0;
}

int lorem_split_hostport(const char *s, char *host, size_t cap, int *port) {
  const char *colon;
  const char *h = s;
  size_t hl;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return -1;
    h = s + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return -1;
    hl = (size_t)(colon - s);
  }
  if (hl >= cap) return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  char *end;
  errno = 0;
  long p = strtol(colon + 1, &end, 10);
  if (errno || end == colon + 1 || *end || p < 0 || p > 65535) return -1;
  *port = (int)p;
  return 0;
}

static void usage(const lorem_flag *f, int n, const char *synopsis, FILE *out) {
  fprintf(out, "usage: %s\n", synopsis);
  for (int i = 0; i < n; i++) {
    const char *t = f[i].type == FLAG_STR        ? " string"
                    : f[i].type == FLAG_INT      ? " int"
                    : f[i].type == FLAG_DURATION ? " duration"
                                                 : "";
    fprintf(out, "  -%s%s\n    \t%s\n", f[i].name, t, f[i].help);
  }
}

static int set(const lorem_flag *f, const char *v) {
  char *end;
  switch (f->type) {
  case FLAG_STR: *(const char **)f->ptr = v; return 0;
  case FLAG_INT: {
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) return -1;
    *(long *)f->ptr = x;
    return 0;
  }
  case FLAG_DURATION: return lorem_parse_duration_ms(v, (int64_t *)f->ptr);
  case FLAG_BOOL:
    if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "t")) *(int *)f->ptr = 1;
    else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "f")) *(int *)f->ptr = 0;
    else return -1;
    return 0;
  }
  return -1;
}

int lorem_flags_parse(int argc, char **argv, const lorem_flag *flags, int n, const char *synopsis) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1]) {
      fprintf(stderr, "unexpected argument: %s\n", a);
      usage(flags, n, synopsis, stderr);
      return -1;
    }
    a += a[1] == '-' ? 2 : 1;
    if (!strcmp(a, "h") || !strcmp(a, "help")) {
      usage(flags, n, synopsis, stdout);
      return 1;
    }
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    const lorem_flag *f = NULL;
    for (int k = 0; k < n; k++)
      if (strlen(flags[k].name) == nl && !strncmp(flags[k].name, a, nl)) f = &flags[k];
    if (!f) {
      fprintf(stderr, "flag provided but not defined: -%.*s\n", (int)nl, a);
      usage(flags, n, synopsis, stderr);
      return -1;
    }
    const char *v;
    if (eq) v = eq + 1;
    else if (f->type == FLAG_BOOL) v = "true";
    else if (i + 1 < argc) v = argv[++i];
    else {
      fprintf(stderr, "flag needs an argument: -%s\n", f->name);
      return -1;
    }
    if (set(f, v)) {
      fprintf(stderr, "invalid value \"%s\" for flag -%s\n", v, f->name);
      return -1;
    }
  }
  return 0;
}
