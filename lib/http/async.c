/* SPDX-License-Identifier: MIT */
/* One attempt of an asynchronous call, on the loop (async.h).
 *
 * The fast path is a small state machine over conn.c's steps: connect
 * (when the pooled connection has no socket), send, receive; epoll is
 * asked for writability or readability as the step says, level-triggered,
 * so a spurious wake-up is a harmless EAGAIN. A kept-alive connection the
 * server had closed before any answer byte is replaced and the request
 * sent again once, as kitd__h1_exchange() does.
 *
 * The loop keeps its own keep-alive connections, apart from the
 * endpoints' pools that blocking calls share: a cache by address (256
 * buckets, at most max_idle_handles idle in a bucket), whose sockets stay
 * in the loop's epoll set, readable asked, from their connect to their
 * close. A call in a steady state then costs a sendmsg and a recv and no
 * epoll_ctl, and an idle connection the server closes is seen and closed
 * at once. The cache is the loop thread's alone and goes when the loop
 * stops. */
#include "http/async.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "core/alloc.h"
#include "kitd/error.h"

/* One of the loop's connections. */
struct lconn {
  struct kitd__loop_io io;     /* registered while its socket is open */
  struct kitd__loop_task task; /* its free, after the batch */
  struct kitd__h1_conn *c;
  struct kitd__http_att *att; /* the attempt that holds it; NULL: idle */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  uint32_t events; /* asked of epoll */
  unsigned bucket;
  struct lconn *next; /* idle list of its bucket */
};

#define CACHE_BUCKETS 256

/* Loop thread only. */
static struct {
  struct lconn *idle[CACHE_BUCKETS];
  unsigned nidle[CACHE_BUCKETS];
  kitd__loop *loop; /* the loop the cache belongs to; NULL: none yet */
  struct kitd__loop_task stop;
} g_cache;

enum {
  ST_CONNECT,
  ST_CONNECTING,
  ST_SEND,
  ST_SENDING,
  ST_RECV,
  ST_CURL
};

static void att_timer(struct kitd__loop_timer *t);

/* Ask epoll for `events` on the connection's socket (registering a new
 * socket, forgetting one that was replaced). */
static int watch(struct kitd__http_att *a, uint32_t events) {
  struct lconn *lc = a->lc;
  if (lc->io.fd >= 0 && lc->io.fd != lc->c->fd) {
    kitd__loop_io_del(a->loop, &lc->io);
    lc->events = 0;
  }
  if (lc->io.fd < 0) {
    lc->events = events;
    return kitd__loop_io_add(a->loop, &lc->io, lc->c->fd, events);
  }
  if (lc->events == events) return 0;
  lc->events = events;
  return kitd__loop_io_mod(a->loop, &lc->io, events);
}

/* Close the connection's socket (out of epoll first). */
static void drop_socket(kitd__loop *l, struct lconn *lc) {
  kitd__loop_io_del(l, &lc->io);
  lc->events = 0;
  kitd__h1_close(lc->c);
}

static void lconn_free_task(struct kitd__loop_task *t) {
  struct lconn *lc = (struct lconn *)((char *)t - offsetof(struct lconn, task));
  kitd__h1_conn_free(lc->c);
  free(lc);
}

/* Close and free (after the batch: an event of it may still name lc). */
static void lconn_drop(kitd__loop *l, struct lconn *lc) {
  drop_socket(l, lc);
  lc->task.fn = lconn_free_task;
  kitd__loop_post(l, &lc->task);
}

static void lconn_unlink(struct lconn *lc) {
  struct lconn **pp = &g_cache.idle[lc->bucket];
  while (*pp && *pp != lc) pp = &(*pp)->next;
  if (*pp) {
    *pp = lc->next;
    g_cache.nidle[lc->bucket]--;
  }
}

static void att_io(struct kitd__http_att *a);

static void lconn_io(struct kitd__loop_io *w, uint32_t events) {
  (void)events;
  struct lconn *lc = (struct lconn *)((char *)w - offsetof(struct lconn, io));
  if (lc->att) {
    att_io(lc->att);
    return;
  }
  /* Idle: the server closed it, or sent what nobody asked for. */
  lconn_unlink(lc);
  lconn_drop(g_cache.loop, lc);
}

static unsigned bucket_of(const struct sockaddr_storage *a, socklen_t n) {
  const unsigned char *p = (const unsigned char *)a;
  uint32_t h = 2166136261u; /* FNV-1a */
  for (socklen_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h % CACHE_BUCKETS;
}

/* The loop stops: close what the cache holds. */
static void cache_stop(struct kitd__loop_task *t) {
  (void)t;
  for (unsigned b = 0; b < CACHE_BUCKETS; b++) {
    struct lconn *lc = g_cache.idle[b];
    while (lc) {
      struct lconn *next = lc->next;
      kitd__h1_conn_free(lc->c); /* closes the socket: epoll is going too */
      free(lc);
      lc = next;
    }
    g_cache.idle[b] = NULL;
    g_cache.nidle[b] = 0;
  }
  g_cache.loop = NULL;
}

/* An idle connection to e's address, or a new unconnected one. */
static struct lconn *cache_get(kitd__loop *l, const struct kitd__http_ep *e) {
  if (g_cache.loop != l) { /* the first on this loop */
    g_cache.loop = l;
    g_cache.stop.fn = cache_stop;
    kitd__loop_at_stop(l, &g_cache.stop);
  }
  unsigned b = bucket_of(&e->addr, e->addrlen);
  for (struct lconn **pp = &g_cache.idle[b]; *pp; pp = &(*pp)->next) {
    struct lconn *lc = *pp;
    if (lc->addrlen == e->addrlen && !memcmp(&lc->addr, &e->addr, e->addrlen)) {
      *pp = lc->next;
      g_cache.nidle[b]--;
      lc->next = NULL;
      return lc;
    }
  }
  struct lconn *lc = kitd__calloc(1, sizeof *lc);
  if (lc && !(lc->c = kitd__h1_conn_new())) free(lc), lc = NULL;
  if (!lc) return NULL;
  lc->io.fd = -1;
  lc->io.on = lconn_io;
  memcpy(&lc->addr, &e->addr, e->addrlen);
  lc->addrlen = e->addrlen;
  lc->bucket = b;
  return lc;
}

/* Back to the cache when it can serve again and there is room. */
static void cache_put(kitd__loop *l, struct lconn *lc, unsigned max) {
  lc->att = NULL;
  if (lc->c->must_close && lc->c->fd >= 0) drop_socket(l, lc);
  kitd__h1_conn_settle(lc->c);
  if (lc->c->fd < 0 || g_cache.nidle[lc->bucket] >= max) {
    lconn_drop(l, lc);
    return;
  }
  if (lc->events != EPOLLIN && kitd__loop_io_mod(l, &lc->io, EPOLLIN)) {
    lconn_drop(l, lc);
    return;
  }
  lc->events = EPOLLIN;
  lc->next = g_cache.idle[lc->bucket];
  g_cache.idle[lc->bucket] = lc;
  g_cache.nidle[lc->bucket]++;
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
      continue;
    }
    case ST_SEND: /* a new exchange on a connected socket */
      kitd__h1_begin(c);
      a->stale = 0;
      rc = kitd__h1_send_some(c, &a->stale, a->why, sizeof a->why);
      goto sent;
    case ST_SENDING: /* the rest of it, now that the socket is writable */
      rc = kitd__h1_send_some(c, &a->stale, a->why, sizeof a->why);
      goto sent;
    case ST_RECV: {
      kitd_http *h = a->e->h;
      kitd__h1_opts po = {.max_body = h->o.max_body, .head = a->e->head};
      rc = kitd__h1_recv_some(c, &po, &a->r, &a->stale, a->why, sizeof a->why);
      if (rc == KITD__H1_AGAIN) return rc;
      if (rc) goto failed;
      return 0; /* the socket stays in epoll, readable asked, while idle */
    }
    default: return KITD_EINTERNAL;
    }
    /* epoll or the timer heap refused: out of memory, or worse */
    snprintf(a->why, sizeof a->why, "the loop could not watch the connection");
    return rc;
  sent:
    if (rc == KITD__H1_AGAIN) {
      a->state = ST_SENDING;
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
    drop_socket(a->loop, a->lc);
    a->retried = 1;
    a->reused = 0;
    a->state = ST_CONNECT;
  }
}

/* The attempt is over with rc: release what it holds and make its code. */
static int finish(struct kitd__http_att *a, int rc) {
  kitd__loop_timer_cancel(a->loop, &a->timer);
  if (a->fc) {
    if (rc && a->fc->fd >= 0) drop_socket(a->loop, a->lc);
    rc = kitd__http_fast_answer(a->e, a->fc, rc, &a->r, a->why, a->pstart, a->plen, a->ctx,
                                a->response);
    cache_put(a->loop, a->lc, a->e->h->o.max_idle_handles);
    a->fc = NULL;
    a->lc = NULL;
  } else if (a->cc) {
    kitd__http_conn_put(a->e->h, a->cc);
    a->cc = NULL;
  }
  return rc;
}

static void att_io(struct kitd__http_att *a) {
  if (!a->fc) return;
  int rc = advance(a);
  if (rc == KITD__H1_AGAIN) return;
  a->end(a, finish(a, rc));
}

static const char *timeout_why(int state) {
  switch (state) {
  case ST_CONNECTING: return "connect timed out";
  case ST_SEND:
  case ST_SENDING: return "timed out sending";
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
  a->timer.slot = 0;
  a->timer.on = att_timer;
  a->loop = l;
  a->e = e;
  a->fc = NULL;
  a->lc = NULL;
  a->cc = NULL;
  a->ctx = ctx;
  a->response = response;
  a->retried = a->stale = 0;
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

  struct lconn *lc = cache_get(l, e);
  if (!lc) return KITD_ENOMEM;
  struct kitd__h1_conn *c = lc->c;
  lc->att = a;
  a->lc = lc;
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
    cache_put(l, lc, h->o.max_idle_handles);
    a->fc = NULL;
    a->lc = NULL;
    return rc;
  }
  a->reused = c->fd >= 0;
  a->state = a->reused ? ST_SEND : ST_CONNECT;
  if (a->deadline && (rc = arm(a, a->deadline))) {
    cache_put(l, lc, h->o.max_idle_handles);
    a->fc = NULL;
    a->lc = NULL;
    return rc;
  }
  rc = advance(a);
  if (rc == KITD__H1_AGAIN) return 0;
  return finish(a, rc);
}
