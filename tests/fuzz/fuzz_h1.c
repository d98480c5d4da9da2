/* SPDX-License-Identifier: MIT */
/* Fuzz the fast path's HTTP/1.x answer parser (lib/http/h1.c) with any
 * bytes as a server's answer. The first byte picks the options (HEAD, EOF,
 * a small or large body cap, a small head bound). Checks: no crash; a
 * complete answer's offsets lie inside the input; dechunking stays inside
 * the answer and leaves the bytes after it alone; a complete answer parses
 * the same from exactly its own bytes; "need more" always asks for more. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "kitd/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint8_t f = data[0];
  const char *buf = (const char *)data + 1;
  size_t len = size - 1;
  kitd__h1_opts o = {
      .max_body = (f & 4) ? 64 : (1u << 20),
      .head = f & 1,
      .eof = (f >> 1) & 1,
      .max_header = (f & 8) ? 256 : 0,
  };
  kitd__h1_resp r;
  int rc = kitd__h1_parse_response(buf, len, &o, &r);
  if (rc != 1 && rc != 0 && rc != KITD_EPROTO && rc != KITD_ETOOBIG) abort();
  if (rc == 0) {
    if (o.eof || r.need <= len) abort();
    return 0;
  }
  if (rc != 1) return 0;
  if (r.status < 200 || r.status > 999) abort();
  if (r.consumed > len || r.body_off > r.consumed) abort();
  if (r.body_len > o.max_body || r.body_len > r.consumed - r.body_off) abort();
  if (r.chunked && r.content_length >= 0) abort();
  /* The same answer on its own (no trailing bytes) parses the same. */
  kitd__h1_resp r2;
  int rc2 = kitd__h1_parse_response(buf, r.consumed, &o, &r2);
  if (rc2 != 1 || r2.consumed != r.consumed || r2.body_len != r.body_len || r2.status != r.status)
    abort();
  char *copy = malloc(len + 1);
  if (!copy) return 0;
  memcpy(copy, buf, len);
  copy[len] = '\0';
  kitd__h1_dechunk(copy, &r);
  if (memcmp(copy + r.consumed, buf + r.consumed, len - r.consumed)) abort();
  if (!r.chunked && memcmp(copy, buf, len)) abort();
  free(copy);
  return 0;
}
