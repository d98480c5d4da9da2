/* SPDX-License-Identifier: MIT */
/* libkitd: the HTTP transport (go-kit's transport/http client).
 *
 * A kitd_http holds what every call to a service has in common: the method,
 * the path (fixed, or built from the request), how a request becomes a body
 * and how an answer becomes a response object. kitd_http_factory() turns it
 * into a kitd_factory_fn: give it to kitd_endpointer_new() and every
 * instance "host:port" becomes an HTTP endpoint.
 *
 * Two ways to the instance, chosen per endpoint when it is made:
 *  - the fast path: scheme "http", an instance that is an IP literal
 *    ("10.0.0.5:8080", "[::1]:8080"), no proxy in the environment
 *    (http_proxy, all_proxy, ALL_PROXY), not a GET with an encoder, and
 *    KITD_HTTP_FAST not "0". libkitd's own HTTP/1.1 client writes the
 *    request and parses the answer (Content-Length or chunked) over a
 *    per-endpoint LIFO stack of keep-alive connections (TCP_NODELAY); a
 *    kept-alive connection the server had closed is replaced and the
 *    request sent again once, transparently, when no answer byte had come.
 *    Answer heads are bounded to 16 KiB.
 *  - libcurl for everything else (https, host names, proxies): a pool of
 *    easy handles (each driven by its own multi handle, with its own cache
 *    of keep-alive connections), borrowed LIFO by each call.
 * Either way, in a steady state no call opens a connection, and bodies are
 * built into and read from buffers that stay with the connection or
 * handle, so a call allocates only what the callbacks allocate.
 *
 * Deadlines: each call's timeout is kitd_ctx_remaining_ms() of its ctx
 * (poll() with the time left; CURLOPT_TIMEOUT_MS for libcurl), and the
 * transfer checks kitd_ctx_err() at least every 10 ms while it waits, so
 * kitd_ctx_cancel() from another thread stops it within about 10 ms.
 *
 * Errors, for retry callbacks to tell apart:
 *  KITD_ECONNECT    no connection (refused, unreachable, name not resolved)
 *  KITD_ETIMEDOUT   the ctx deadline (or the connect timeout) passed
 *  KITD_ECANCELED   the ctx was canceled
 *  KITD_EHTTP       the server answered a status outside 200..299: the
 *                   status is in kitd_ctx_status(), and the detail is the
 *                   `error` string of a JSON body ({"error": "..."}), else
 *                   the start of the body, else "HTTP <status>"
 *  KITD_ETOOBIG     the answer's body exceeded max_body
 *  KITD_EIO         the connection broke after it was made (reset, empty
 *                   reply)
 *  KITD_ETLS        a TLS failure
 *  KITD_EPROTO      not HTTP, a malformed or truncated answer, or the decode
 *                   callback rejected the body
 *  KITD_EINVAL      (fast path) the path is not '/' then visible ASCII
 *  or whatever the encode/path/decode callback returned.
 * The status of every answer is stored with kitd_ctx_set_status(). */
#ifndef KITD_HTTP_H
#define KITD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "endpoint.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_http kitd_http;

/* A growable byte buffer that encode and path callbacks append to. It is
 * owned by libkitd and reused from call to call: append, never free. */
typedef struct kitd_http_buf kitd_http_buf;

/* Append `len` bytes (copied). Returns 0 or KITD_ENOMEM.
 * Thread-safety: one thread at a time per handle. */
KITD_API int kitd_http_buf_append(kitd_http_buf *b, const void *data, size_t len);

/* Append a formatted string (no NUL is appended to the content).
 * Returns 0, KITD_EINVAL or KITD_ENOMEM.
 * Thread-safety: one thread at a time per handle. */
KITD_API int kitd_http_buf_printf(kitd_http_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Bytes appended so far. Thread-safety: one thread at a time per handle. */
KITD_API size_t kitd_http_buf_len(const kitd_http_buf *b);

/* Write the request path (starting with '/', query included if any) for
 * `request` into `path`. Return 0 or a negative KITD_E* code (the call then
 * fails with it, before any I/O). Runs on the calling thread, from many
 * threads at once. Thread-safety: any thread. */
typedef int (*kitd_http_path_fn)(void *arg, const void *request, kitd_http_buf *path,
                                 kitd_ctx *ctx);

/* Write the request body for `request` into `body` (leave it empty for no
 * body). Return 0 or a negative KITD_E* code (the call fails with it, before
 * any I/O). Thread-safety: any thread. */
typedef int (*kitd_http_encode_fn)(void *arg, const void *request, kitd_http_buf *body,
                                   kitd_ctx *ctx);

/* Turn an answer into a response object. `body` (borrowed for the call
 * only; `len` bytes, followed by a NUL that is not counted) is the answer's
 * body; `status` its HTTP status (200..299 unless decode_all_status).
 * Return 0 and set *response to an object the caller of
 * kitd_endpoint_call() will own (the decoder documents how it is freed), or
 * a negative KITD_E* code (detail in ctx) and leave *response unset.
 * Thread-safety: any thread. */
typedef int (*kitd_http_decode_fn)(void *arg, int status, const char *body, size_t len,
                                   void **response, kitd_ctx *ctx);

typedef struct kitd_http_opts {
  size_t size;                   /* sizeof(kitd_http_opts), set by _init:
                                  kitd_http_new() refuses another value */
  const char *method;            /* "GET", "POST", ...; default "POST" if an
                                  encoder is set, else "GET". Copied. */
  const char *path;              /* fixed path ("/lorem"); used when path_fn is
                                  NULL; default "/". Copied. */
  kitd_http_path_fn path_fn;     /* builds the path from the request */
  kitd_http_encode_fn encode;    /* NULL: no body */
  kitd_http_decode_fn decode;    /* NULL: *response is left NULL */
  void *arg;                     /* passed to the three callbacks; borrowed */
  const char *content_type;      /* of the request body; default
                                  "application/json". Copied. */
  const char *scheme;            /* "http" (default) or "https". Copied. */
  size_t max_body;               /* largest answer body; default 1 MiB */
  int64_t connect_timeout_ms;    /* default 1000; <= 0: libcurl's (300 s) */
  int64_t timeout_ms;            /* used only when the ctx has no deadline;
                                  default 0: none */
  unsigned max_idle_handles;     /* pooled easy handles kept, and idle
                                  fast-path connections kept per endpoint;
                                  default 64 */
  unsigned max_conns_per_handle; /* keep-alive connections each handle
                                    caches (one per instance talked to);
                                    default 16 */
  int decode_all_status;         /* nonzero: decode every status, not only
                                  2xx (then no KITD_EHTTP is made) */
} kitd_http_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_http_opts_init(kitd_http_opts *o);

/* A new HTTP client. `o` is copied (its strings too; `arg` is borrowed and
 * must outlive the client and every endpoint made from it). Caller frees
 * with kitd_http_free(). Calls kitd_global_init() lazily, which is safe only
 * while one thread runs: call it yourself first in a threaded program.
 * Returns 0, KITD_EINVAL (bad method or scheme, or an opts not filled by
 * kitd_http_opts_init(): its size field) or KITD_ENOMEM; *out is
 * untouched on failure. Thread-safety: any thread. */
KITD_API int kitd_http_new(const kitd_http_opts *o, kitd_http **out);

/* Release the caller's handle. Endpoints made from it keep the client alive
 * until the last of them is released; the pool of connections goes with it.
 * NULL is allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_http_free(kitd_http *h);

/* A new endpoint calling `instance` ("host:port" or "[v6]:port", copied)
 * through `h` (borrowed; the endpoint keeps it alive). Release with
 * kitd_endpoint_unref(). The endpoint's call: `request` is borrowed and
 * handed to the callbacks; *response gets what decode produced (caller owns
 * it) or stays untouched on failure. Returns 0, KITD_EINVAL (bad instance)
 * or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_http_endpoint_new(kitd_http *h, const char *instance, kitd_endpoint **out);

/* A factory for kitd_endpointer_new(): endpoints of `h` for each
 * instance's address. It carries a new reference on `h`, which the
 * endpointer takes over (and drops when it is freed, or at once if
 * kitd_endpointer_new() fails), so `h` may be freed right after:
 *   kitd_factory f = kitd_http_factory(h);
 *   kitd_endpointer_new(instancer, &f, NULL, &ep);
 *   kitd_http_free(h);
 * Pass it to kitd_endpointer_new() exactly once. Thread-safety: any
 * thread. */
KITD_API kitd_factory kitd_http_factory(kitd_http *h);

/* Pool statistics, for tests and tuning: easy handles created so far plus
 * fast-path connections opened so far, and handles plus fast-path
 * connections idle in the pools. Either pointer may be NULL.
 * Thread-safety: any thread. */
KITD_API void kitd_http_stats(kitd_http *h, unsigned long *handles_created, unsigned *handles_idle);

/* Parse `body` (`len` bytes) as a JSON object and copy its "error" string
 * into buf (cap bytes, NUL-terminated). Returns 1 if found, else 0 and buf
 * is left "". A helper for decode callbacks; the transport uses it for
 * KITD_EHTTP details. Thread-safety: any thread. */
KITD_API int kitd_http_error_text(const char *body, size_t len, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
