/* SPDX-License-Identifier: MIT */
/* Fuzz the example server's request-head parser: any bytes as a head.
 * Never a crash or a read past the buffer; a parsed head has a NUL-ended
 * method and target inside the buffer, fields inside the head, and an
 * error has a status the server answers with. The target's percent-
 * decoding is never longer than the target and holds no NUL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorem/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > LOREM_HTTP_HEAD_MAX) return 0;
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  size_t scan = 0;
  size_t end = lorem_http_head_end(buf, size, &scan);
  if (end > size || scan > size) abort();
  if (end) {
    lorem_http_head h;
    const char *err = NULL;
    int st = lorem_http_parse_head(buf, end, &h, &err);
    if (st) {
      if ((st != 400 && st != 411 && st != 431 && st != 505) || !err) abort();
    } else {
      if (h.method != buf || h.method[h.method_len] != '\0') abort();
      if (h.target < buf || h.target + h.target_len >= buf + end || h.target[h.target_len]) abort();
      for (unsigned i = 0; i < h.nfields; i++)
        if ((size_t)h.f[i].value + h.f[i].value_len >= end) abort();
      (void)lorem_http_head_get(&h, buf, "content-type");
      char *path = malloc(h.target_len ? h.target_len : 1);
      if (!path) abort();
      long n = lorem_http_path_decode(h.target, h.target_len, path);
      if (n > (long)h.target_len || (n >= 0 && memchr(path, '\0', (size_t)n))) abort();
      free(path);
    }
  }
  free(buf);
  return 0;
}
