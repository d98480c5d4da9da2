/* SPDX-License-Identifier: MIT */
/* One attempt of an asynchronous call, on the loop (async.h).
 *
 * The fast path is a small state machine over conn.c's steps: connect
 * (when the pooled connection has no socket), send, receive; epoll is
 * asked for writability or readability as the step says, level-triggered,
 * so a spurious wake-up is a harmless EAGAIN. A kept-alive connection the
 * server had closed before any answer byte is replaced and the request
 * sent again once, as kitd__h1_exchange() does. The socket is in the
 * loop's epoll set only while the attempt holds the connection: a
 * connection back in the pool may next serve a blocking call. */
#include "http/async.h"

#include <poll.h>
#include <string.h>
#include <sys/epoll.h>

#include "kitd/error.h"

enum {
  ST_CONNECT,
  ST_CONNECTING,
  ST_SEND,
  ST_RECV,
  ST_CURL
};

static void att_timer(struct kitd__loop_timer *t);
static void att_io(struct kitd__loop_io *w, uint32_t events);

/* Watch the connection's socket for `events` (0: not at all). */
static int watch(struct kitd__http_att *a, uint32_t events) {
  if (!events || (a->io.fd >= 0 && a->io.fd != a->fc->fd)) {
    kitd__loop_io_del(a->loop, &a->io);
    a->watching = 0;
    if (!events) return 0;
  }
  if (a->io.fd < 0) {
    a->watching = events;
    return kitd__loop_io_add(a->loop, &a->io, a->fc->fd, events);
  }
  if (a->watching == events) return 0;
  a->watching = events;
  return kitd__loop_io_mod(a->loop, &a->io, events);
}

static int arm(struct kitd__http_att *a, int64_t at) {
  if (!at) {
    kitd__loop_timer_cancel(a->loop, &a->timer);
    return 0;
  }
  return kitd__loop_timer_set(a->loop, &a->timer, at);
}

static struct kitd__h1_io h1_io(struct kitd__http_att *a) {
  kitd_http *h = a->e->h;
  struct kitd__h1_io io = {
      .addr = (const struct sockaddr *)&a->e->addr,
      .addrlen = a->e->addrlen,
      .deadline_ns = a->deadline,
      .connect_timeout_ms = h->o.connect_timeout_ms,
      .ctx = a->ctx,
      .parse = {.max_body = h->o.max_body, .head = a->e->head},
      .opened = &h->fast_opened,
  };
  return io;
}

/* Run the fast path as far as it goes without waiting: KITD__H1_AGAIN
 * (waiting for epoll or the timer), 0 (answer complete) or an error. */
static int advance(struct kitd__http_att *a) {
  struct kitd__h1_conn *c = a->fc;
  for (;;) {
    int rc;
    switch (a->state) {
    case ST_CONNECT: {
      struct kitd__h1_io io = h1_io(a);
      rc = kitd__h1_connect_start(c, &io, a->why, sizeof a->why);
      if (rc == KITD__H1_AGAIN) {
        a->state = ST_CONNECTING;
        if ((rc = watch(a, EPOLLOUT)) || (rc = arm(a, kitd__h1_connect_deadline(&io)))) break;
        return KITD__H1_AGAIN;
      }
      if (rc) return rc;
      a->state = ST_SEND;
      continue;
    }
    case ST_CONNECTING: {
      /* Only a writable socket has finished connecting (a wake-up meant
       * for the socket this one replaced would otherwise look like one). */
      struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
      if (poll(&pf, 1, 0) <= 0) return KITD__H1_AGAIN;
      if ((rc = kitd__h1_connected(c, a->why, sizeof a->why))) return rc;
      if ((rc = arm(a, a->deadline))) break;
      a->state = ST_SEND;
      kitd__h1_begin(c);
      rc = kitd__h1_send_some(c, &a->stale, a->why, sizeof a->why);
      goto sent;
    }
    case ST_SEND:
      kitd__h1_begin(c);
      a->stale = 0;
      rc = kitd__h1_send_some(c, &a->stale, a->why, sizeof a->why);
      goto sent;
    case ST_RECV: {
      kitd_http *h = a->e->h;
      kitd__h1_opts po = {.max_body = h->o.max_body, .head = a->e->head};
      rc = kitd__h1_recv_some(c, &po, &a->r, &a->stale, a->why, sizeof a->why);
      if (rc == KITD__H1_AGAIN) return rc;
      if (rc) goto failed;
      watch(a, 0);
      return 0;
    }
    default: return KITD_EINTERNAL;
    }
    /* epoll or the timer heap refused: out of memory, or worse */
    snprintf(a->why, sizeof a->why, "the loop could not watch the connection");
    return rc;
  sent:
    if (rc == KITD__H1_AGAIN) {
      a->state = ST_SEND; /* resumed below by the writable socket */
      if ((rc = watch(a, EPOLLOUT))) return rc;
      return KITD__H1_AGAIN;
    }
    if (rc) goto failed;
    a->state = ST_RECV;
    if ((rc = watch(a, EPOLLIN))) return rc;
    return KITD__H1_AGAIN;
  failed:
    /* A kept-alive connection the server had closed: the request was not
     * processed, so one more try on a fresh connection is safe. */
    if (!(a->stale && a->reused && !a->retried)) return rc;
    watch(a, 0);
    kitd__h1_close(c);
    a->retried = 1;
    a->reused = 0;
    a->state = ST_CONNECT;
  }
}

/* The attempt is over with rc: release what it holds and make its code. */
static int finish(struct kitd__http_att *a, int rc) {
  kitd__loop_timer_cancel(a->loop, &a->timer);
  if (a->fc) {
    watch(a, 0);
    if (rc) kitd__h1_close(a->fc);
    rc = kitd__http_fast_answer(a->e, a->fc, rc, &a->r, a->why, a->pstart, a->plen, a->ctx,
                                a->response);
    kitd__h1_pool_put(a->e->pool, a->fc);
    a->fc = NULL;
  } else if (a->cc) {
    kitd__http_conn_put(a->e->h, a->cc);
    a->cc = NULL;
  }
  return rc;
}

static void att_io(struct kitd__loop_io *w, uint32_t events) {
  (void)events;
  struct kitd__http_att *a =
      (struct kitd__http_att *)((char *)w - offsetof(struct kitd__http_att, io));
  if (!a->fc) return;
  int rc = advance(a);
  if (rc == KITD__H1_AGAIN) return;
  a->end(a, finish(a, rc));
}

static const char *timeout_why(int state) {
  switch (state) {
  case ST_CONNECTING: return "connect timed out";
  case ST_SEND: return "timed out sending";
  default: return "timed out waiting for the answer";
  }
}

void kitd__http_att_fail(struct kitd__http_att *a, int rc) {
  if (a->fc) {
    snprintf(a->why, sizeof a->why, "%s",
             rc == KITD_ETIMEDOUT        ? timeout_why(a->state)
             : rc == KITD_ESTOPPED       ? "stopped"
             : a->state == ST_CONNECTING ? "canceled while connecting"
                                         : "canceled");
    a->end(a, finish(a, rc));
    return;
  }
  if (!a->cc) return;
  kitd__curl_multi_remove(kitd__loop_curl(a->loop), &a->xfer);
  kitd_http *h = a->e->h;
  rc = kitd__http_curl_answer(h, a->cc, rc, CURLE_OK, a->ctx, a->response);
  a->end(a, finish(a, rc));
}

static void att_timer(struct kitd__loop_timer *t) {
  struct kitd__http_att *a =
      (struct kitd__http_att *)((char *)t - offsetof(struct kitd__http_att, timer));
  kitd__http_att_fail(a, KITD_ETIMEDOUT);
}

static void curl_done(struct kitd__curl_xfer *x, CURLcode cc) {
  struct kitd__http_att *a =
      (struct kitd__http_att *)((char *)x - offsetof(struct kitd__http_att, xfer));
  int rc = kitd__http_curl_answer(a->e->h, a->cc, 0, cc, a->ctx, a->response);
  a->end(a, finish(a, rc));
}

static int start_curl(struct kitd__http_att *a, const kitd_http_buf *path,
                      const kitd_http_buf *body, int64_t ms) {
  struct kitd__http_ep *e = a->e;
  kitd_http *h = e->h;
  kitd__curl_multi *m = kitd__loop_curl(a->loop);
  if (!m) return KITD_ENOMEM;
  struct kitd__http_conn *c = kitd__http_conn_get(h);
  if (!c) return KITD_ENOMEM;
  kitd__http_buf_reset(&c->url);
  kitd__http_buf_reset(&c->body);
  kitd__http_buf_reset(&c->resp);
  int rc = kitd_http_buf_append(&c->url, e->base, e->baselen);
  if (!rc) rc = kitd_http_buf_append(&c->url, path->data, path->len);
  if (!rc && body->len) rc = kitd_http_buf_append(&c->body, body->data, body->len);
  if (!rc) rc = kitd_http_buf_append(&c->resp, "", 0);
  if (!rc) {
    kitd__http_curl_setup(h, c, ms);
    a->xfer.easy = c->easy;
    a->xfer.done = curl_done;
    a->state = ST_CURL;
    a->cc = c;
    rc = arm(a, a->deadline);
    if (!rc && (rc = kitd__curl_multi_add(m, &a->xfer)))
      kitd__loop_timer_cancel(a->loop, &a->timer);
  }
  if (rc) {
    kitd__http_conn_put(h, c);
    a->cc = NULL;
  }
  return rc;
}

int kitd__http_att_start(struct kitd__http_att *a, kitd__loop *l, kitd_endpoint *ep, kitd_ctx *ctx,
                         const kitd_http_buf *path, const kitd_http_buf *body, void **response) {
  struct kitd__http_ep *e = kitd_endpoint_state(ep);
  kitd_http *h = e->h;
  a->io.fd = -1;
  a->io.on = att_io;
  a->timer.slot = 0;
  a->timer.on = att_timer;
  a->loop = l;
  a->e = e;
  a->fc = NULL;
  a->cc = NULL;
  a->ctx = ctx;
  a->response = response;
  a->retried = a->stale = 0;
  a->watching = 0;
  a->why[0] = '\0';
  int rc = kitd_ctx_err(ctx);
  if (rc) return rc;
  int64_t ms = kitd_ctx_remaining_ms(ctx);
  if (ms == 0) return KITD_ETIMEDOUT;
  a->deadline = kitd_ctx_deadline_ns(ctx);
  if (ms < 0) {
    ms = h->o.timeout_ms > 0 ? h->o.timeout_ms : 0;
    a->deadline = ms ? kitd_now_ns() + ms * 1000000 : 0;
  }
  if (!e->pool) return start_curl(a, path, body, ms);

  struct kitd__h1_conn *c = kitd__h1_pool_get(e->pool);
  if (!c) return KITD_ENOMEM;
  kitd__http_buf_reset(&c->head);
  kitd__http_buf_reset(&c->body);
  a->fc = c;
  a->pstart = e->prefixlen;
  a->plen = path->len;
  rc = kitd_http_buf_append(&c->head, e->prefix, e->prefixlen);
  if (!rc) rc = kitd_http_buf_append(&c->head, path->data, path->len);
  if (!rc && body->len) rc = kitd_http_buf_append(&c->body, body->data, body->len);
  if (!rc) rc = kitd__http_fast_head(e, c, a->pstart, ctx);
  if (rc) { /* the request itself: no exchange, nothing to close */
    kitd__h1_pool_put(e->pool, c);
    a->fc = NULL;
    return rc;
  }
  a->reused = c->fd >= 0;
  a->state = a->reused ? ST_SEND : ST_CONNECT;
  if (a->deadline && (rc = arm(a, a->deadline))) {
    kitd__h1_pool_put(e->pool, c);
    a->fc = NULL;
    return rc;
  }
  rc = advance(a);
  if (rc == KITD__H1_AGAIN) return 0;
  return finish(a, rc);
}
