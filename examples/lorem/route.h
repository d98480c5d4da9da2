/* SPDX-License-Identifier: MIT */
/* The lorem server's router: a pure function from (method, path) to what
 * the server should answer. No I/O, no allocation, no global state, so it
 * can be unit-tested and fuzzed alone.
 *
 * Routes:
 *   POST /lorem/{word|sentence|paragraph}/{min}/{max}   type case-insensitive
 *   GET  /health   (HEAD too)
 *   GET  /metrics  (HEAD too)
 * Counts are decimal digits only (no sign, no spaces), at most 9 digits,
 * and within lorem_limit(type). */
#ifndef LOREM_ROUTE_H
#define LOREM_ROUTE_H

#include <stddef.h>

#include "lorem/lorem.h"

#define LOREM_URL_MAX 2048 /* longer paths get 414 */

typedef enum lorem_route_kind {
  LOREM_ROUTE_LOREM = 0,  /* 200: generate type/min/max */
  LOREM_ROUTE_HEALTH = 1, /* 200: {"status": true} */
  LOREM_ROUTE_ERROR = 2,  /* status, error (and allow for 405) */
  LOREM_ROUTE_METRICS = 3 /* 200: Prometheus text */
} lorem_route_kind;

typedef struct lorem_route {
  lorem_route_kind kind;
  int status;        /* 200, 400, 404, 405 or 414 */
  lorem_type type;   /* LOREM_ROUTE_LOREM */
  int min, max;      /* LOREM_ROUTE_LOREM: validated ends */
  const char *allow; /* 405: the Allow header value (static) */
  char error[160];   /* non-200: the message for {"error": ...} */
} lorem_route;

/* Route `method` and `path` (the URL path without the query; `path_len`
 * bytes, need not be NUL-terminated). Always fills *out and returns
 * out->status. */
int lorem_route_parse(const char *method, const char *path, size_t path_len, lorem_route *out);

/* Write `s` as a JSON string body, quotes included, escaping as needed,
 * into buf (cap bytes, NUL-terminated). Returns the length, or -1 if it
 * does not fit. */
int lorem_json_string(char *buf, size_t cap, const char *s);

#endif
