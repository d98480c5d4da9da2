/* SPDX-License-Identifier: MIT */
/* Internal: a pooled HTTP/1.1 keep-alive connection for the plain-http fast
 * path, and the per-endpoint stack of idle ones. Not API. */
#ifndef KITD_HTTP_CONN_H
#define KITD_HTTP_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "http/h1.h"
#include "http/http_impl.h"

/* One TCP connection (or none yet: fd -1) with the buffers of the call that
 * borrows it. Borrowed by one call at a time. */
struct kitd__h1_conn {
  int fd;                     /* -1: not connected */
  int must_close;             /* the last answer forbids reuse */
  struct kitd__h1_conn *next; /* idle stack link */
  kitd_http_buf head, body;   /* the request's head and body */
  char *rbuf;                 /* the answer, as received */
  size_t rlen, rcap;
  size_t sent, need; /* of the exchange under way (kitd__h1_begin) */
  int eof;           /* the peer closed while we read */
};

/* The idle connections of one endpoint: a LIFO stack under a mutex, so a
 * busy thread keeps finding the connection it just used. */
struct kitd__h1_pool {
  pthread_mutex_t mu;
  struct kitd__h1_conn *idle;
  unsigned nidle, max;
  atomic_uint *total_idle; /* the client's counter, for kitd_http_stats */
};

int kitd__h1_pool_init(struct kitd__h1_pool *p, unsigned max, atomic_uint *total_idle);
void kitd__h1_pool_destroy(struct kitd__h1_pool *p);
/* Pop an idle connection, or make an unconnected one: NULL only when out of
 * memory. */
struct kitd__h1_conn *kitd__h1_pool_get(struct kitd__h1_pool *p);
/* Give it back; closed and freed when it is broken or the stack is full. */
void kitd__h1_pool_put(struct kitd__h1_pool *p, struct kitd__h1_conn *c);

/* A new unconnected connection (NULL: out of memory), and its free. */
struct kitd__h1_conn *kitd__h1_conn_new(void);
void kitd__h1_conn_free(struct kitd__h1_conn *c);
/* After an exchange, before the connection idles: closed if the answer
 * forbids reuse, and a big answer buffer dropped. */
void kitd__h1_conn_settle(struct kitd__h1_conn *c);

/* What one exchange needs besides the connection. */
struct kitd__h1_io {
  const struct sockaddr *addr;
  socklen_t addrlen;
  int64_t deadline_ns;        /* kitd_now_ns() terms; 0: none */
  int64_t connect_timeout_ms; /* <= 0: the deadline alone */
  const kitd_ctx *ctx;        /* checked for cancel every 10 ms of waiting */
  kitd__h1_opts parse;        /* max_body, head */
  atomic_ulong *opened;       /* counts connections made */
};

/* Send c->head then c->body and read one answer into c->rbuf. Connects
 * first when c has no connection; a reused connection that turns out to be
 * closed before any answer byte arrived (EPIPE, ECONNRESET, EOF) is
 * replaced once, transparently. Returns 0 with *r filled: the (decoded)
 * body is at c->rbuf + r->body_off, r->body_len bytes, NUL-terminated.
 * Otherwise a KITD_E* code with a message in why (the connection is then
 * closed): ECONNECT, ETIMEDOUT, ECANCELED, EIO, EPROTO, ETOOBIG, ENOMEM. */
int kitd__h1_exchange(struct kitd__h1_conn *c, const struct kitd__h1_io *io, kitd__h1_resp *r,
                      char *why, size_t whycap);

/* The steps of an exchange, for a caller that waits on its own (the
 * event loop, lib/http/async.c); kitd__h1_exchange() is made of them.
 * Each returns 0 when done, KITD__H1_AGAIN when the socket must first be
 * ready (writable to connect or send, readable to receive), or a KITD_E*
 * code with a message in why. */
#define KITD__H1_AGAIN 1
/* A new non-blocking socket, connecting to io->addr (c->fd set; on an
 * error the socket is closed). AGAIN: wait until writable (at most until
 * kitd__h1_connect_deadline(io)), then call kitd__h1_connected(). */
int kitd__h1_connect_start(struct kitd__h1_conn *c, const struct kitd__h1_io *io, char *why,
                           size_t cap);
int64_t kitd__h1_connect_deadline(const struct kitd__h1_io *io);
int kitd__h1_connected(struct kitd__h1_conn *c, char *why, size_t cap);
/* Nothing sent, nothing received: before the first send of an exchange. */
void kitd__h1_begin(struct kitd__h1_conn *c);
/* Send what is left of c->head then c->body. *stale as for the exchange. */
int kitd__h1_send_some(struct kitd__h1_conn *c, int *stale, char *why, size_t cap);
/* One recv() and a parse: 0 with *r filled (as kitd__h1_exchange) when the
 * answer is complete, AGAIN for more. */
int kitd__h1_recv_some(struct kitd__h1_conn *c, const kitd__h1_opts *parse, kitd__h1_resp *r,
                       int *stale, char *why, size_t cap);
/* Close c's socket (it stays usable: the next exchange connects). */
void kitd__h1_close(struct kitd__h1_conn *c);

#endif
