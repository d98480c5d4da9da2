/* SPDX-License-Identifier: MIT */
/* The lorem server's router (see route.h). Pure: it only reads its inputs. */
#include "lorem/route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int route_fail(lorem_route *o, int status, const char *fmt, const char *arg, size_t arglen) {
  o->kind = LOREM_ROUTE_ERROR;
  o->status = status;
  /* quote at most 40 bytes of what the client sent, printable ASCII only */
  char shown[48];
  size_t n = 0;
  for (size_t i = 0; arg && i < arglen && n < 40; i++)
    shown[n++] = (arg[i] >= 0x20 && arg[i] < 0x7f) ? arg[i] : '?';
  if (arg && arglen > 40) shown[n - 1] = '.', shown[n - 2] = '.', shown[n - 3] = '.';
  shown[n] = '\0';
  snprintf(o->error, sizeof o->error, fmt, shown);
  return status;
}

/* Parse a count segment: digits only. */
static int count(const char *s, size_t n, lorem_type t, int *out, lorem_route *o,
                 const char *which) {
  char fmt[96];
  if (n == 0) {
    snprintf(fmt, sizeof fmt, "%s: empty count%%s", which);
    return route_fail(o, 400, fmt, "", 0);
  }
  if (s[0] == '-') {
    snprintf(fmt, sizeof fmt, "%s must not be negative: %%s", which);
    return route_fail(o, 400, fmt, s, n);
  }
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') {
      snprintf(fmt, sizeof fmt, "%s is not a number: %%s", which);
      return route_fail(o, 400, fmt, s, n);
    }
    if (v <= 1000000000L) v = v * 10 + (s[i] - '0'); /* saturate: no overflow */
  }
  if (v > lorem_limit(t)) {
    snprintf(fmt, sizeof fmt, "%s over the limit of %d for %s: %%s", which, lorem_limit(t),
             lorem_type_name(t));
    return route_fail(o, 400, fmt, s, n);
  }
  *out = (int)v;
  return 0;
}

static int seg_eq(const char *s, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

int lorem_route_parse(const char *method, const char *path, size_t len, lorem_route *o) {
  memset(o, 0, sizeof *o);
  if (!method) method = "";
  if (!path) path = "", len = 0;
  if (len > LOREM_URL_MAX) return route_fail(o, 414, "URI too long%s", "", 0);
  if (len == 0 || path[0] != '/') return route_fail(o, 404, "not found: %s", path, len);

  /* split into at most 5 segments after the leading '/' */
  const char *seg[5];
  size_t segn[5];
  int nseg = 0;
  size_t i = 1;
  for (;;) {
    size_t j = i;
    while (j < len && path[j] != '/') j++;
    if (nseg == 5) return route_fail(o, 404, "not found: %s", path, len);
    seg[nseg] = path + i;
    segn[nseg] = j - i;
    nseg++;
    if (j >= len) break;
    i = j + 1;
  }

  int health = nseg == 1 && seg_eq(seg[0], segn[0], "health");
  if (health || (nseg == 1 && seg_eq(seg[0], segn[0], "metrics"))) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
      o->allow = "GET, HEAD";
      return route_fail(o, 405, "method not allowed: %s", method, strlen(method));
    }
    o->kind = health ? LOREM_ROUTE_HEALTH : LOREM_ROUTE_METRICS;
    o->status = 200;
    return 200;
  }
  if (nseg == 4 && seg_eq(seg[0], segn[0], "lorem")) {
    if (strcmp(method, "POST")) {
      o->allow = "POST";
      return route_fail(o, 405, "method not allowed: %s", method, strlen(method));
    }
    lorem_type t;
    if (lorem_type_parse(seg[1], segn[1], &t))
      return route_fail(o, 400, "unknown type (word, sentence or paragraph): %s", seg[1], segn[1]);
    int rc;
    if ((rc = count(seg[2], segn[2], t, &o->min, o, "min"))) return rc;
    if ((rc = count(seg[3], segn[3], t, &o->max, o, "max"))) return rc;
    o->kind = LOREM_ROUTE_LOREM;
    o->type = t;
    o->status = 200;
    return 200;
  }
  return route_fail(o, 404, "not found: %s", path, len);
}

int lorem_json_string(char *buf, size_t cap, const char *s) {
  size_t n = 0;
#define PUT(c)                                                                                     \
  do {                                                                                             \
    if (n + 1 >= cap) return -1;                                                                   \
    buf[n++] = (c);                                                                                \
  } while (0)
  PUT('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      PUT('\\');
      PUT((char)*p);
    } else if (*p < 0x20 || *p == 0x7f) {
      if (n + 7 >= cap) return -1;
      n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", *p);
    } else {
      PUT((char)*p);
    }
  }
  PUT('"');
#undef PUT
  buf[n] = '\0';
  return (int)n;
}
