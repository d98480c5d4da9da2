/* SPDX-License-Identifier: MIT */
/* The request-head parser of the example HTTP/1.1 server: a pure function
 * over one buffer (no I/O, no allocation), unit-tested and fuzzed alone.
 *
 * It reads the request line and the header fields, nothing else. Bodies
 * are framed by Content-Length only: a Transfer-Encoding (chunked) is
 * refused with 411 so the client can resend with a length. */
#ifndef LOREM_HTTP_PARSE_H
#define LOREM_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define LOREM_HTTP_HEADERS_MAX 64 /* more header fields: 431 */
#define LOREM_HTTP_HEAD_MAX 65535 /* offsets below are 16 bits */

typedef struct lorem_http_field {
  uint16_t name, name_len, value, value_len; /* offsets into the buffer */
} lorem_http_field;

typedef struct lorem_http_head {
  const char *method; /* NUL-terminated, inside the buffer */
  const char *target; /* the raw request target, NUL-terminated */
  size_t method_len, target_len;
  int minor;              /* HTTP/1.<minor> */
  int keep_alive;         /* 1: the connection may serve another request */
  int expect_continue;    /* Expect: 100-continue */
  int transfer_encoding;  /* a Transfer-Encoding field was sent */
  int64_t content_length; /* -1: none */
  unsigned nfields;
  lorem_http_field f[LOREM_HTTP_HEADERS_MAX];
} lorem_http_head;

/* The length of the request head (request line, fields and the blank
 * line) at the start of buf, or 0 while it is incomplete. *scan keeps
 * where the search got to, so that a head arriving a byte at a time is
 * scanned once in all: set it to 0 for a new request. A line may end in
 * CRLF or in LF alone. */
size_t lorem_http_head_end(const char *buf, size_t len, size_t *scan);

/* Parse a complete head of `len` bytes (as returned by
 * lorem_http_head_end(), at most LOREM_HTTP_HEAD_MAX). Writes NULs into
 * buf to end the method, the target and each field value. Returns 0, or
 * the status to answer (400, 411, 431, 505) with a static message in
 * *err. */
int lorem_http_parse_head(char *buf, size_t len, lorem_http_head *h, const char **err);

/* The value of field `name` (case-insensitive), NUL-terminated, or NULL.
 * buf is the buffer the head was parsed in. */
const char *lorem_http_head_get(const lorem_http_head *h, const char *buf, const char *name);

/* Percent-decode a request path (n bytes) into out (room for n bytes):
 * each %XX (hex digits, either case) becomes its byte, %2F a '/' too;
 * other bytes are copied ('+' stays '+': it means a space only in a
 * query). Returns the decoded length, or -1 for a '%' not followed by two
 * hex digits, or one that decodes to a NUL byte. */
long lorem_http_path_decode(const char *in, size_t n, char *out);

#endif
