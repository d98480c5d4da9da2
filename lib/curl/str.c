/* SPDX-License-Identifier: MIT */
/* A growable string for building URLs: no length guessed up front, so a
 * long service name, tag or datacenter can never truncate the request. */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "curl/kitd_curl.h"
#include "kitd/error.h"

/* Room for `more` bytes plus the NUL. */
static int reserve(kitd__curl_str *s, size_t more) {
  if (s->err) return s->err;
  if (more > SIZE_MAX / 2 - s->len) return s->err = KITD_ENOMEM;
  size_t want = s->len + more + 1;
  if (want <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 256;
  while (cap < want) cap *= 2;
  char *d = kitd__realloc(s->data, cap);
  if (!d) return s->err = KITD_ENOMEM;
  s->data = d;
  s->cap = cap;
  return 0;
}

void kitd__curl_str_printf(kitd__curl_str *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    if (!s->err) s->err = KITD_EINVAL;
    return;
  }
  if (reserve(s, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(s->data + s->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  s->len += (size_t)n;
}

size_t kitd__curl_escape(char *dst, const char *v) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    bool plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~';
    if (dst && plain) {
      dst[o] = (char)*p;
    } else if (dst) {
      dst[o] = '%';
      dst[o + 1] = hex[*p >> 4];
      dst[o + 2] = hex[*p & 15];
    }
    o += plain ? 1 : 3;
  }
  if (dst) dst[o] = '\0';
  return o;
}

void kitd__curl_str_escape(kitd__curl_str *s, const char *v) {
  size_t n = kitd__curl_escape(NULL, v);
  if (reserve(s, n)) return;
  s->len += kitd__curl_escape(s->data + s->len, v);
}

void kitd__curl_str_free(kitd__curl_str *s) {
  free(s->data);
  memset(s, 0, sizeof *s);
}
