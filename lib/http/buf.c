/* SPDX-License-Identifier: MIT */
/* kitd_http_buf: the reusable byte buffer that callbacks write into. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "http/http_impl.h"
#include "kitd/error.h"

static int reserve(kitd_http_buf *b, size_t extra) {
  if (extra > SIZE_MAX / 2 - b->len) return KITD_ENOMEM;
  size_t need = b->len + extra + 1; /* room for the trailing NUL */
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *d = kitd__realloc(b->data, cap);
  if (!d) return KITD_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int kitd_http_buf_append(kitd_http_buf *b, const void *data, size_t len) {
  if (!b || (!data && len)) return KITD_EINVAL;
  if (reserve(b, len)) return KITD_ENOMEM;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int kitd_http_buf_printf(kitd_http_buf *b, const char *fmt, ...) {
  if (!b || !fmt) return KITD_EINVAL;
  va_list ap;
  size_t room = b->cap > b->len ? b->cap - b->len : 0;
  va_start(ap, fmt);
  int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
  va_end(ap);
  if (n < 0) return KITD_EINVAL;
  if ((size_t)n >= room) { /* did not fit: grow and format again */
    if (reserve(b, (size_t)n)) return KITD_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
  return 0;
}

size_t kitd_http_buf_len(const kitd_http_buf *b) { return b ? b->len : 0; }

void kitd__http_buf_release(kitd_http_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
