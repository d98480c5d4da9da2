/* SPDX-License-Identifier: MIT */
/* Small helpers the lorem HTTP programs share (server and gateway): a
 * listening socket bound before anything else, a libmicrohttpd daemon with a
 * thread pool, JSON answers, and waiting for SIGINT/SIGTERM. */
#ifndef LOREM_HTTPD_H
#define LOREM_HTTPD_H

#include <microhttpd.h>
#include <stddef.h>

#define LOREM_BODY_MAX 65536 /* request bodies over this get 413 */

/* Bind and listen on "host:port" (host "" or "0.0.0.0": all IPv4; port 0:
 * a free one). Returns the socket or -1 with errno set; *port_out gets the
 * bound port. */
int lorem_listen(const char *hostport, int *port_out);

/* Start a daemon over `fd` with `threads` epoll threads (0: one per CPU;
 * -1: a thread per connection, for handlers that block). `done` (may be
 * NULL) runs when a request ends. NULL on failure. */
struct MHD_Daemon *lorem_httpd_start(int fd, int threads, MHD_AccessHandlerCallback h, void *arg,
                                     MHD_RequestCompletedCallback done);

/* Receives each request's full URI (query included, not decoded) before
 * the handler runs; what it returns is the request's first *state. */
typedef void *(*lorem_uri_fn)(void *arg, const char *uri, struct MHD_Connection *c);

/* lorem_httpd_start(), with `uri` (may be NULL) called first for every
 * request. */
struct MHD_Daemon *lorem_httpd_start_uri(int fd, int threads, MHD_AccessHandlerCallback h,
                                         void *arg, MHD_RequestCompletedCallback done,
                                         lorem_uri_fn uri);

/* Queue a JSON answer (`json` copied). `allow` (may be NULL) adds an Allow
 * header, `upstream` (may be NULL) an X-Upstream header. */
enum MHD_Result lorem_reply(struct MHD_Connection *c, unsigned status, const char *json, size_t len,
                            const char *allow, const char *upstream);

/* Queue {"error": "<msg>"} (msg escaped). */
enum MHD_Result lorem_reply_error(struct MHD_Connection *c, unsigned status, const char *msg,
                                  const char *allow);

/* Block SIGINT, SIGTERM (and SIGPIPE) in this thread and every thread
 * started after; call first thing in main. */
void lorem_block_signals(void);

/* Wait up to ms (< 0: forever) for SIGINT or SIGTERM: returns the signal
 * number, or 0 on timeout. */
int lorem_wait_signal(long ms);

#endif
