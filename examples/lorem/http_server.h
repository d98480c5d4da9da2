/* SPDX-License-Identifier: MIT */
/* The small HTTP/1.1 server of the example programs (lorem-server,
 * lorem-gateway, kitd-gateway).
 *
 * Connections do not cost threads: a few event-loop threads (epoll, one
 * per core by default) accept, read, parse and write every connection.
 * Fast handlers run on the loop. Handlers that block (an upstream call)
 * run on a small worker pool, or inline on the loop while they are fast
 * (LOREM_HTTP_BLOCKING); a handler on the loop may also suspend its
 * request and answer later from any thread (lorem_http_suspend). While a
 * request is on a worker or suspended, its connection is parked: out of
 * the timers, its events only noted, holding no thread.
 *
 * Per connection: one request at a time, in order (keep-alive and
 * pipelining), a head buffer of at most max_header_bytes and a body of at
 * most max_body_bytes. Nothing else is buffered.
 *
 * Limits (struct lorem_http_limits, each a flag of the programs):
 *   header timeout  a request's head (line and fields) must be complete
 *                   within it, counted from the request's first byte (for
 *                   the first request of a connection: from the accept);
 *                   its body within the same time again after the head.
 *                   Late: 408, then the connection is closed.
 *   idle timeout    a kept-alive connection with no request is closed after
 *                   it; so is one whose client stops reading an answer.
 *   max conns       open client connections at most; past it a new one
 *                   gets 503 and is closed. 0: RLIMIT_NOFILE less 128 (the
 *                   soft limit is lifted to the hard one at start).
 *   max conns per address   the same, per client IP address.
 *   max header bytes  a longer head gets 431 (so do more than 64 fields).
 *   max body bytes  a longer Content-Length gets 413 before any of the
 *                   body is read.
 * A malformed request gets 400 with {"error": "..."}; a Transfer-Encoding
 * body 411; HTTP/2 or later 505. After an error answer the connection is
 * closed: the server stops writing, reads and drops what the client still
 * sends for up to 2 s (so it can read the answer), then closes. */
#ifndef LOREM_HTTP_SERVER_H
#define LOREM_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct lorem_http_server lorem_http_server;
struct lorem_http_conn;

/* One request, as a handler sees it. Every pointer is valid until the
 * handler returns. */
typedef struct lorem_http_req {
  const char *method; /* "GET", NUL-terminated */
  const char *uri;    /* the raw request target: path and query, not decoded */
  const char *path;   /* uri up to the '?', percent-decoded (path_len bytes,
                         not NUL-terminated; a bad escape or %00: 400) */
  size_t path_len;
  const char *body; /* body_len bytes (NULL when empty) */
  size_t body_len;
  void *arg;                     /* the server's argument */
  struct lorem_http_conn *conn_; /* internal */
} lorem_http_req;

/* A handler answers with lorem_http_reply() (once; without an answer the
 * client gets 500). */
typedef void (*lorem_http_handler)(lorem_http_req *rq);

/* A LOREM_HTTP_BLOCKING handler may block: it runs on the worker pool,
 * except that it runs inline on the loop (saving the hand-off to a worker
 * and back) when the loop has no other event waiting in its batch and the
 * route's last 64 runs, and every run in the last second, each took at
 * most inline_max_ms. One slow run sends the route back to the pool. A
 * handler that finds it would wait (for a registry's first answer, say)
 * calls lorem_http_to_pool() first. */
#define LOREM_HTTP_BLOCKING 1u

/* A route: requests whose path equals `path` (NULL: any path; the first
 * match wins, so put it last) go to `fn`. Methods are the handler's
 * business (405 with an Allow header). */
typedef struct lorem_http_route {
  const char *path;
  unsigned flags;
  lorem_http_handler fn;
} lorem_http_route;

typedef struct lorem_http_limits {
  long loops;                /* event-loop threads; <= 0: one per core */
  long workers;              /* worker threads for LOREM_HTTP_BLOCKING routes; <= 0: cores * 2 */
  int64_t header_timeout_ms; /* default 10 s */
  int64_t idle_timeout_ms;   /* default 60 s */
  long max_conns;            /* <= 0: RLIMIT_NOFILE less 128 */
  long max_conns_per_addr;   /* default 256 */
  long max_header_bytes;     /* default 8192; at most 65535 */
  long max_body_bytes;       /* default 65536 */
  int64_t inline_max_ms;     /* default 5; 0: never inline (see below) */
  const char *name;          /* not a limit: the Server header's value
                                (visible ASCII, borrowed); NULL: none */
} lorem_http_limits;

/* The defaults above. */
void lorem_http_limits_init(lorem_http_limits *l);

/* Lift RLIMIT_NOFILE's soft limit to its hard limit; returns the soft
 * limit now in force. */
long lorem_http_raise_nofile(void);

/* Serve on listening socket `fd` (borrowed: the caller closes it after
 * lorem_http_server_free()). Routes are borrowed and must outlive the
 * server. Returns 0 and the server in *out, or -1 with a message in err. */
int lorem_http_server_start(int fd, const lorem_http_limits *l, const lorem_http_route *routes,
                            size_t nroutes, void *arg, lorem_http_server **out, char *err,
                            size_t errcap);

/* Stop accepting; close kept-alive connections that wait for a request;
 * answer the requests under way with Connection: close. For a drain. On
 * return no loop accepts any more: the caller may close the listening
 * socket, so that new connections are refused at once. */
void lorem_http_server_quiesce(lorem_http_server *s);

/* Open client connections now. Thread-safety: any thread. */
long lorem_http_server_conns(lorem_http_server *s);

/* The limit on connections in force (max_conns resolved). */
long lorem_http_server_max_conns(lorem_http_server *s);

/* Stop the loops and wait for the handlers running on workers: after it no
 * handler runs or starts. Connections stay open, so that the completions
 * of suspended requests may still reply and resume (their answers still
 * go out); end those calls, then free. NULL is accepted. */
void lorem_http_server_stop(lorem_http_server *s);

/* Wait until every suspended request has been resumed (after a stop: for
 * the calls still in flight to end). */
void lorem_http_server_wait_suspended(lorem_http_server *s);

/* Stop (if not yet), close every connection and free. NULL is accepted. */
void lorem_http_server_free(lorem_http_server *s);

/* Answer a request: status, Content-Type (NULL: none), body (copied) and
 * extra header lines (NULL, or "Name: value\r\n" lines, trusted). Date
 * and Server (the limits' name) are added. A HEAD request gets the header
 * only. A second call is ignored. */
void lorem_http_reply(lorem_http_req *rq, int status, const char *ctype, const void *body,
                      size_t len, const char *headers);

/* Called by a LOREM_HTTP_BLOCKING handler before it answers: when it runs
 * inline on the loop, hand the request to the worker pool instead, where
 * the handler is called again. Returns 1 then (the handler must return at
 * once, without touching rq), 0 when it already runs on a worker. */
int lorem_http_to_pool(lorem_http_req *rq);

/* Answer later: a handler running on the loop (a route without
 * LOREM_HTTP_BLOCKING) that starts an asynchronous call calls this and
 * returns without an answer. The connection stays parked (no thread, no
 * timer) until the completion, on any thread, calls lorem_http_reply() and
 * then lorem_http_resume(), which writes the answer and hands the
 * connection back to its loop. Until then rq and its fields stay valid;
 * after lorem_http_resume() nothing may touch them. The completion must
 * come: bound the call with a deadline. */
void lorem_http_suspend(lorem_http_req *rq);
void lorem_http_resume(lorem_http_req *rq);

/* A request header field's value (name case-insensitive), or NULL. */
const char *lorem_http_header(const lorem_http_req *rq, const char *name);

/* The reason phrase of a status ("Not Found"). */
const char *lorem_http_reason(int status);

#endif
