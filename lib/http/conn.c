/* SPDX-License-Identifier: MIT */
/* A pooled HTTP/1.1 keep-alive connection (the plain-http fast path).
 *
 * One exchange is: connect if needed (non-blocking, bounded by the connect
 * timeout and the deadline), sendmsg() the head and body, then poll() and
 * recv() into the connection's buffer, parsing after each read with
 * kitd__h1_parse_response(). Every wait is a poll() of at most 10 ms (less
 * when the deadline is nearer), with the ctx's cancel flag checked before
 * each. In a steady state a call costs a sendmsg, a poll and a recv, and
 * allocates nothing: the buffers stay with the connection. */
#include "http/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/alloc.h"
#include "kitd/error.h"

#define WAIT_SLICE_MS 10 /* longest wait before checking cancel */
#define RBUF_MIN (16u * 1024)
#define RBUF_KEEP (256u * 1024) /* larger answer buffers are not kept */

int kitd__h1_pool_init(struct kitd__h1_pool *p, unsigned max, atomic_uint *total_idle) {
  memset(p, 0, sizeof *p);
  p->max = max;
  p->total_idle = total_idle;
  return pthread_mutex_init(&p->mu, NULL) ? KITD_ENOMEM : 0;
}

void kitd__h1_close(struct kitd__h1_conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->must_close = 0;
}

void kitd__h1_conn_free(struct kitd__h1_conn *c) {
  if (!c) return;
  kitd__h1_close(c);
  kitd__http_buf_release(&c->head);
  kitd__http_buf_release(&c->body);
  free(c->rbuf);
  free(c);
}

void kitd__h1_pool_destroy(struct kitd__h1_pool *p) {
  struct kitd__h1_conn *c = p->idle;
  while (c) {
    struct kitd__h1_conn *next = c->next;
    kitd__h1_conn_free(c);
    c = next;
  }
  if (p->total_idle) atomic_fetch_sub(p->total_idle, p->nidle);
  p->idle = NULL;
  p->nidle = 0;
  pthread_mutex_destroy(&p->mu);
}

struct kitd__h1_conn *kitd__h1_pool_get(struct kitd__h1_pool *p) {
  pthread_mutex_lock(&p->mu);
  struct kitd__h1_conn *c = p->idle;
  if (c) {
    p->idle = c->next;
    p->nidle--;
  }
  pthread_mutex_unlock(&p->mu);
  if (c) {
    if (p->total_idle) atomic_fetch_sub_explicit(p->total_idle, 1, memory_order_relaxed);
    c->next = NULL;
    return c;
  }
  return kitd__h1_conn_new();
}

struct kitd__h1_conn *kitd__h1_conn_new(void) {
  struct kitd__h1_conn *c = kitd__calloc(1, sizeof *c);
  if (c) c->fd = -1;
  return c;
}

void kitd__h1_conn_settle(struct kitd__h1_conn *c) {
  if (c->must_close) kitd__h1_close(c);
  if (c->rcap > RBUF_KEEP) { /* one big answer: do not keep its buffer idle */
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rlen = 0;
  }
}

void kitd__h1_pool_put(struct kitd__h1_pool *p, struct kitd__h1_conn *c) {
  kitd__h1_conn_settle(c);
  if (c->fd >= 0) {
    pthread_mutex_lock(&p->mu);
    if (p->nidle < p->max) {
      c->next = p->idle;
      p->idle = c;
      p->nidle++;
      c = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (!c) {
      if (p->total_idle) atomic_fetch_add_explicit(p->total_idle, 1, memory_order_relaxed);
      return;
    }
  }
  kitd__h1_conn_free(c); /* broken, or the stack is full */
}

/* Wait for `events` on fd until `deadline` (0: none), checking the ctx
 * before every slice. 0 when ready (or in error: the next call says). */
static int wait_fd(int fd, short events, int64_t deadline, const struct kitd__h1_io *io) {
  for (;;) {
    int e = io->ctx ? kitd_ctx_err(io->ctx) : 0;
    if (e) return e;
    int ms = WAIT_SLICE_MS;
    if (deadline) {
      int64_t left = deadline - kitd_now_ns();
      if (left <= 0) return KITD_ETIMEDOUT;
      if (left < (int64_t)ms * 1000000) ms = (int)((left + 999999) / 1000000);
    }
    struct pollfd pf = {.fd = fd, .events = events};
    int n = poll(&pf, 1, ms);
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return KITD_EIO;
  }
}

/* The reason goes into the caller's fixed buffer, which bounds a detail
 * message: a reason cut short is still a reason, so no truncation check. */
static int fail(char *why, size_t cap, int rc, const char *what, int err) {
  if (err) snprintf(why, cap, "%s: %s", what, strerror(err));
  else snprintf(why, cap, "%s", what);
  return rc;
}

int kitd__h1_connect_start(struct kitd__h1_conn *c, const struct kitd__h1_io *io, char *why,
                           size_t cap) {
  int fd = socket(io->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fail(why, cap, errno == ENOMEM || errno == ENOBUFS ? KITD_ENOMEM : KITD_ECONNECT,
                "socket", errno);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  if (io->opened) atomic_fetch_add_explicit(io->opened, 1, memory_order_relaxed);
  c->fd = fd;
  c->must_close = 0;
  if (connect(fd, io->addr, io->addrlen) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) {
    int err = errno;
    kitd__h1_close(c);
    return fail(why, cap, KITD_ECONNECT, "connect", err);
  }
  return KITD__H1_AGAIN;
}

int64_t kitd__h1_connect_deadline(const struct kitd__h1_io *io) {
  int64_t dl = io->deadline_ns;
  if (io->connect_timeout_ms > 0) {
    int64_t cdl = kitd_now_ns() + io->connect_timeout_ms * 1000000;
    if (!dl || cdl < dl) dl = cdl;
  }
  return dl;
}

int kitd__h1_connected(struct kitd__h1_conn *c, char *why, size_t cap) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) {
    kitd__h1_close(c);
    return fail(why, cap, KITD_ECONNECT, "connect", err);
  }
  return 0;
}

static int conn_open(struct kitd__h1_conn *c, const struct kitd__h1_io *io, char *why, size_t cap) {
  int rc = kitd__h1_connect_start(c, io, why, cap);
  if (rc != KITD__H1_AGAIN) return rc;
  rc = wait_fd(c->fd, POLLOUT, kitd__h1_connect_deadline(io), io);
  if (rc) {
    kitd__h1_close(c);
    return fail(why, cap, rc,
                rc == KITD_ETIMEDOUT ? "connect timed out" : "canceled while connecting", 0);
  }
  return kitd__h1_connected(c, why, cap);
}

void kitd__h1_begin(struct kitd__h1_conn *c) {
  c->sent = 0;
  c->rlen = 0;
  c->need = 1;
  c->eof = 0;
}

int kitd__h1_send_some(struct kitd__h1_conn *c, int *stale, char *why, size_t cap) {
  for (;;) {
    size_t total = c->head.len + c->body.len;
    if (c->sent >= total) return 0;
    struct iovec iov[2];
    int n_iov = 0;
    if (c->sent < c->head.len) {
      iov[n_iov++] = (struct iovec){c->head.data + c->sent, c->head.len - c->sent};
      if (c->body.len) iov[n_iov++] = (struct iovec){c->body.data, c->body.len};
    } else {
      size_t off = c->sent - c->head.len;
      iov[n_iov++] = (struct iovec){c->body.data + off, c->body.len - off};
    }
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov};
    ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
    if (n >= 0) {
      c->sent += (size_t)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return KITD__H1_AGAIN;
    if (errno == EPIPE || errno == ECONNRESET) *stale = 1;
    return fail(why, cap, KITD_EIO, "send", errno);
  }
}

/* Send head + body. *stale: the peer had closed the connection. */
static int send_req(struct kitd__h1_conn *c, const struct kitd__h1_io *io, int *stale, char *why,
                    size_t cap) {
  for (;;) {
    int rc = kitd__h1_send_some(c, stale, why, cap);
    if (rc != KITD__H1_AGAIN) return rc;
    rc = wait_fd(c->fd, POLLOUT, io->deadline_ns, io);
    if (rc) return fail(why, cap, rc, rc == KITD_ETIMEDOUT ? "timed out sending" : "canceled", 0);
  }
}

static int grow(struct kitd__h1_conn *c, size_t want) {
  if (want <= c->rcap) return 0;
  size_t cap = c->rcap ? c->rcap : RBUF_MIN;
  while (cap < want) cap *= 2;
  char *b = kitd__realloc(c->rbuf, cap);
  if (!b) return KITD_ENOMEM;
  c->rbuf = b;
  c->rcap = cap;
  return 0;
}

int kitd__h1_recv_some(struct kitd__h1_conn *c, const kitd__h1_opts *parse, kitd__h1_resp *r,
                       int *stale, char *why, size_t cap) {
  kitd__h1_opts po = *parse;
  po.eof = c->eof;
  size_t mb = po.max_body > SIZE_MAX / 4 ? SIZE_MAX / 4 : po.max_body;
  /* Raw bytes allowed: the head, the body, and as much again for chunk
   * framing. Beyond that the answer is too big whatever it decodes to. */
  size_t rawmax = KITD__H1_MAX_HEADER * 2 + mb * 2 + 65536;
  /* Room for what the parser says must come, plus the NUL at the end. */
  size_t want = (c->need > c->rlen ? c->need : c->rlen + 1) + 1;
  if (want < RBUF_MIN / 2 && c->rlen + 4096 > c->rcap) want = c->rlen + 4096;
  if (c->rlen >= rawmax) return fail(why, cap, KITD_ETOOBIG, "answer too large", 0);
  if (grow(c, want)) return fail(why, cap, KITD_ENOMEM, "out of memory", 0);
  size_t room = c->rcap - c->rlen - 1;
  if (room > rawmax - c->rlen) room = rawmax - c->rlen;
  ssize_t n = recv(c->fd, c->rbuf + c->rlen, room, 0);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return KITD__H1_AGAIN;
    if (errno == ECONNRESET && c->rlen == 0) *stale = 1;
    return fail(why, cap, KITD_EIO, "recv", errno);
  }
  if (n == 0) {
    if (c->rlen == 0) {
      *stale = 1;
      return fail(why, cap, KITD_EIO, "empty reply: the server closed the connection", 0);
    }
    po.eof = c->eof = 1;
  }
  c->rlen += (size_t)n;
  if (!po.eof && c->rlen < c->need) return KITD__H1_AGAIN;
  int rc = kitd__h1_parse_response(c->rbuf, c->rlen, &po, r);
  if (rc != 1) {
    if (rc < 0 || po.eof) {
      if (rc == KITD_ETOOBIG) return fail(why, cap, rc, "answer body too large", 0);
      return fail(why, cap, KITD_EPROTO,
                  po.eof ? "truncated or malformed answer" : "malformed answer", 0);
    }
    c->need = r->need;
    return KITD__H1_AGAIN;
  }
  kitd__h1_dechunk(c->rbuf, r);
  c->rbuf[r->body_off + r->body_len] = '\0';
  /* Bytes nobody asked for, or a server that will close: do not reuse. */
  c->must_close = r->close || c->rlen > r->consumed;
  return 0;
}

static int read_resp(struct kitd__h1_conn *c, const struct kitd__h1_io *io, kitd__h1_resp *r,
                     int *stale, char *why, size_t cap) {
  for (;;) {
    int rc = wait_fd(c->fd, POLLIN, io->deadline_ns, io);
    if (rc)
      return fail(why, cap, rc,
                  rc == KITD_ETIMEDOUT ? "timed out waiting for the answer" : "canceled", 0);
    rc = kitd__h1_recv_some(c, &io->parse, r, stale, why, cap);
    if (rc != KITD__H1_AGAIN) return rc;
  }
}

int kitd__h1_exchange(struct kitd__h1_conn *c, const struct kitd__h1_io *io, kitd__h1_resp *r,
                      char *why, size_t whycap) {
  why[0] = '\0';
  for (int attempt = 0;; attempt++) {
    int reused = c->fd >= 0;
    if (!reused) {
      int rc = conn_open(c, io, why, whycap);
      if (rc) return rc;
    }
    int stale = 0;
    kitd__h1_begin(c);
    int rc = send_req(c, io, &stale, why, whycap);
    if (!rc) rc = read_resp(c, io, r, &stale, why, whycap);
    if (!rc) return 0;
    kitd__h1_close(c);
    /* A kept-alive connection the server had closed: the request was not
     * processed, so one more try on a fresh connection is safe. */
    if (!(stale && reused && attempt == 0)) return rc;
  }
}
