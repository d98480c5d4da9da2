/* SPDX-License-Identifier: MIT */
/* Internal: HTTP/1.1 response parsing for the plain-http fast path. Not API.
 *
 * kitd__h1_parse_response() is a pure function over the bytes received so
 * far: it never writes to them, never allocates, and tells the caller
 * whether the answer is complete, needs more bytes, or is malformed. The
 * connection code (conn.c) calls it after each read; the fuzz target
 * (tests/fuzz/fuzz_h1.c) calls it on anything. */
#ifndef KITD_HTTP_H1_H
#define KITD_HTTP_H1_H

#include <stddef.h>
#include <stdint.h>

#define KITD__H1_MAX_HEADER (16u * 1024) /* status line + headers (+ trailers) */

/* What the caller asks for. */
typedef struct kitd__h1_opts {
  size_t max_header; /* 0: KITD__H1_MAX_HEADER */
  size_t max_body;   /* decoded body bytes */
  int head;          /* the request was HEAD: no body whatever the headers */
  int eof;           /* the peer closed: bytes after `len` will never come */
} kitd__h1_opts;

typedef struct kitd__h1_resp {
  int status;             /* final status (1xx interim answers are skipped) */
  int minor;              /* HTTP/1.<minor> */
  int close;              /* the connection cannot be reused afterwards */
  int chunked;            /* Transfer-Encoding: chunked */
  int64_t content_length; /* -1 if none */
  size_t body_off;        /* where the body (or first chunk) starts */
  size_t ctype_off;       /* the Content-Type value (ctype_len bytes, 0 */
  size_t ctype_len;       /* if none), not NUL-terminated */
  size_t body_len;        /* decoded body bytes (when complete) */
  size_t consumed;        /* bytes of the whole answer; any after it are
                              bytes the server sent unasked */
  size_t need;            /* when incomplete: no use calling again before
                              this many bytes are there */
} kitd__h1_resp;

/* Parse `len` bytes of `buf` as one HTTP/1.x answer (after any 1xx
 * interim answers). Returns 1 when complete (*r filled), 0 when more bytes
 * are needed (r->need set), KITD_EPROTO when malformed, truncated (with
 * o->eof), or the headers exceed max_header, KITD_ETOOBIG when the body
 * exceeds max_body. */
int kitd__h1_parse_response(const char *buf, size_t len, const kitd__h1_opts *o, kitd__h1_resp *r);

/* After a complete chunked answer: move the chunks' data together, in place,
 * to buf + r->body_off (r->body_len bytes). Bytes after r->consumed are left
 * alone. No-op for other answers. */
void kitd__h1_dechunk(char *buf, const kitd__h1_resp *r);

#endif
