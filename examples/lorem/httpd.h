/* SPDX-License-Identifier: MIT */
/* Small helpers the lorem HTTP programs share (server and gateways): a
 * listening socket bound before anything else, the server's limit flags,
 * JSON answers, and waiting for SIGINT/SIGTERM. The server itself is
 * http_server.h. */
#ifndef LOREM_HTTPD_H
#define LOREM_HTTPD_H

#include <stddef.h>

#include "lorem/flags.h"
#include "lorem/http_server.h"

#define LOREM_BODY_MAX 65536 /* lorem-server's default -max.body: larger bodies get 413 */

/* Bind and listen on "host:port" (host "" or "0.0.0.0": all IPv4; port 0:
 * a free one). Returns the socket or -1 with errno set; *port_out gets the
 * bound port. */
int lorem_listen(const char *hostport, int *port_out);

/* Add the server's limit flags to `f` (room for LOREM_HTTP_FLAGS more
 * entries after n): -threads, -workers and -inline.max (when `workers`),
 * -header.timeout,
 * -idle.timeout, -max.conns, -max.conns.per.addr, -max.header.bytes.
 * -max.body is each program's own (its default differs). Returns the new
 * count. */
#define LOREM_HTTP_FLAGS 8
int lorem_http_flags(lorem_flag *f, int n, lorem_http_limits *l, int workers);

/* The gateways' -mode flag: how a request that calls upstream waits.
 *   pool   a worker thread makes the blocking call (kitd_client_call());
 *          see LOREM_HTTP_BLOCKING
 *   async  the event loop starts kitd_client_call_async() and goes on; the
 *          completion, on libkitd's loop thread, writes the answer */
#define LOREM_MODE_DEFAULT "async"
#define LOREM_INFLIGHT_DEFAULT 64

/* Add -mode and -max.inflight (-mode async: upstream calls at once, see
 * callq.h) to `f` (room for 2 more entries after n). Returns the new
 * count. */
int lorem_mode_flags(lorem_flag *f, int n, const char **mode, long *inflight);

/* After parsing: 1 for async, 0 for pool, -1 after printing what is
 * wrong. */
int lorem_mode_async(const char *mode, long inflight, const char *prog);

/* Check the limits after parsing: 0, or -1 after printing what is wrong. */
int lorem_http_limits_check(const lorem_http_limits *l, const char *prog);

/* Answer JSON (`json` copied). `allow` (may be NULL) adds an Allow header,
 * `upstream` (may be NULL) an X-Upstream header. */
void lorem_reply(lorem_http_req *rq, int status, const char *json, size_t len, const char *allow,
                 const char *upstream);

/* Answer {"error": "<msg>"} (msg escaped). */
void lorem_reply_error(lorem_http_req *rq, int status, const char *msg, const char *allow);

/* Block SIGINT, SIGTERM (and SIGPIPE) in this thread and every thread
 * started after; call first thing in main. */
void lorem_block_signals(void);

/* Wait up to ms (< 0: forever) for SIGINT or SIGTERM: returns the signal
 * number, or 0 on timeout. */
int lorem_wait_signal(long ms);

#endif
