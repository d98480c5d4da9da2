/* SPDX-License-Identifier: MIT */
/* The example HTTP/1.1 server (see http_server.h): event loops, connection
 * states, timers and limits. The head parser is http_parse.c, the worker
 * pool http_pool.c, the per-address counts http_addr.c. */
#include "lorem/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lorem/http_addr.h"
#include "lorem/http_parse.h"
#include "lorem/http_pool.h"

#define LINGER_MS 2000     /* reading and dropping after an error answer */
#define OUT_KEEP 16384     /* a larger answer buffer is freed once written */
#define ACCEPT_BATCH 64    /* accepts per wake-up, so one loop cannot hog them */
#define NOFILE_RESERVE 128 /* descriptors kept for upstreams and files */

enum {
  T_HEAD,
  T_IDLE,
  T_LINGER,
  T_COUNT,
  T_NONE = -1
};
enum {
  C_HEAD,
  C_BODY,
  C_HANDLER,
  C_WRITE,
  C_LINGER
};

struct loop;

struct lorem_http_conn {
  struct lorem_http_conn *prev, *next;   /* in a timer list */
  struct lorem_http_conn *aprev, *anext; /* in the loop's list of all */
  lorem_http_job job;                    /* in the pool or the done queue */
  struct loop *loop;
  int fd;
  int state;
  int timer; /* T_*, or T_NONE */
  int64_t deadline;
  int rd_ready, wr_ready; /* edge-triggered epoll: the socket may read / write */
  int hup;                /* the peer closed or reset: read on until recv says so */
  int parked_ev;          /* under the loop's mu: an event came while parked (see give_back) */
  lorem_http_addr addr;
  char *in; /* max_header_bytes */
  size_t in_len, scan, consumed;
  char *body;
  size_t body_len, body_want;
  char *path; /* the decoded path, when the raw one holds a '%' */
  char *out;
  size_t out_len, out_off, out_cap;
  int keep_alive, replied, is_head;
  int on_loop;   /* a LOREM_HTTP_BLOCKING handler runs on the loop (inline) */
  int suspended; /* the handler will answer later (lorem_http_suspend) */
  const lorem_http_route *route;
  lorem_http_head head;
  lorem_http_req req;
};
typedef struct lorem_http_conn conn;

struct list {
  conn *head, *tail;
};

struct loop {
  lorem_http_server *s;
  pthread_t th;
  int ep, evfd;
  int listening;
  atomic_int drained;         /* 1: quiesced, idle connections to close; 2: done */
  int64_t accept_pause_until; /* after EMFILE: try again later */
  struct list t[T_COUNT];
  conn *all;
  pthread_mutex_t mu; /* the done queue: handlers finished on workers */
  lorem_http_job *done_head, *done_tail;
  int batch_left;            /* events after the one being handled, in this batch */
  int handed_off;            /* the inline handler sent itself to the pool */
  int wake_pending;          /* under mu: the eventfd was written since the last drain */
  int sleeping;              /* under mu: the loop found the queue empty and waits in epoll */
  char tag_listen, tag_wake; /* epoll data for the two fds that are not connections */
};

/* Whether a route's blocking handler may run inline on the loop: only after
 * GATE_STREAK runs in a row, on workers or inline, each within
 * inline_max_ms, and none slower for GATE_QUIET_MS. A slow run closes the
 * gate at once. */
#define GATE_STREAK 64
#define GATE_QUIET_MS 1000
struct gate {
  _Atomic int64_t last_slow_ms;
  atomic_long streak;
};

struct lorem_http_server {
  lorem_http_limits l;
  const lorem_http_route *routes;
  size_t nroutes;
  void *arg;
  int lfd;
  int nloops;
  struct loop *loops;
  lorem_http_pool *pool;
  lorem_http_addrs *addrs;
  struct gate *gates; /* one per route */
  atomic_long conns;
  atomic_int draining, stopping;
  int stopped;           /* lorem_http_server_stop() ran */
  atomic_long suspended; /* requests between suspend and the end of resume */
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long ncpu(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 2;
}

void lorem_http_limits_init(lorem_http_limits *l) {
  l->loops = 0;
  l->workers = 0;
  l->header_timeout_ms = 10000;
  l->idle_timeout_ms = 60000;
  l->max_conns = 0;
  l->max_conns_per_addr = 256;
  l->max_header_bytes = 8192;
  l->max_body_bytes = 65536;
  l->inline_max_ms = 5;
  l->name = NULL;
}

long lorem_http_raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r)) return 1024;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
    getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur == RLIM_INFINITY || r.rlim_cur > 1 << 24 ? 1 << 24 : (long)r.rlim_cur;
}

const char *lorem_http_reason(int st) {
  switch (st) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  }
  return st < 200   ? "Informational"
         : st < 300 ? "Success"
         : st < 400 ? "Redirection"
         : st < 500 ? "Client Error"
                    : "Server Error";
}

/* --- timers: one list per duration, so appending keeps each sorted --- */

static void timer_stop(conn *c) {
  if (c->timer == T_NONE) return;
  struct list *l = &c->loop->t[c->timer];
  if (c->prev) c->prev->next = c->next;
  else l->head = c->next;
  if (c->next) c->next->prev = c->prev;
  else l->tail = c->prev;
  c->prev = c->next = NULL;
  c->timer = T_NONE;
}

static void timer_set(conn *c, int which, int64_t ms, int64_t now) {
  timer_stop(c);
  struct list *l = &c->loop->t[which];
  c->timer = which;
  c->deadline = now + ms;
  c->prev = l->tail;
  c->next = NULL;
  if (l->tail) l->tail->next = c;
  else l->head = c;
  l->tail = c;
}

/* --- connections --- */

static void conn_close(conn *c) {
  struct loop *lp = c->loop;
  timer_stop(c);
  if (c->aprev) c->aprev->anext = c->anext;
  else lp->all = c->anext;
  if (c->anext) c->anext->aprev = c->aprev;
  close(c->fd);
  lorem_http_addrs_release(lp->s->addrs, &c->addr);
  atomic_fetch_sub(&lp->s->conns, 1);
  free(c->in);
  free(c->body);
  free(c->path);
  free(c->out);
  free(c);
}

/* "Date: Wed, 02 Dec 2026 16:51:27 GMT\r\n", made once a second per
 * thread (answers are written on loops, workers and libkitd's thread). */
static const char *date_line(void) {
  static __thread time_t last;
  static __thread char line[48];
  time_t t = time(NULL);
  if (t != last) {
    struct tm tm;
    gmtime_r(&t, &tm);
    if (!strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm)) line[0] = '\0';
    last = t;
  }
  return line;
}

/* Write a short answer straight to the socket, best effort (the socket
 * buffer of a fresh connection always has room), for a connection about to
 * be closed: a JSON error, with the Date and Server fields of every other
 * answer. */
static void send_now(int fd, const char *name, int status, const char *msg) {
  char b[512];
  int bl = snprintf(b, sizeof b, "{\"error\":\"%s\"}", msg);
  char h[900];
  int n = snprintf(h, sizeof h,
                   "HTTP/1.1 %d %s\r\n%s%s%s%sContent-Type: application/json\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                   status, lorem_http_reason(status), date_line(), name ? "Server: " : "",
                   name ? name : "", name ? "\r\n" : "", bl, b);
  if (n > 0 && (size_t)n < sizeof h) {
    ssize_t w = send(fd, h, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
  }
}

static int ensure_out(conn *c, size_t need) {
  if (c->out_cap >= need) return 0;
  size_t cap = c->out_cap ? c->out_cap : 1024;
  while (cap < need) cap *= 2;
  char *o = realloc(c->out, cap);
  if (!o) return -1;
  c->out = o;
  c->out_cap = cap;
  return 0;
}

/* Append n bytes (the caller made room); the end. */
static char *put(char *o, const void *s, size_t n) {
  memcpy(o, s, n);
  return o + n;
}

static char *put_str(char *o, const char *s) { return put(o, s, strlen(s)); }

/* Append v in decimal. */
static char *put_uint(char *o, size_t v) {
  char t[24];
  size_t i = sizeof t;
  do t[--i] = (char)('0' + v % 10);
  while (v /= 10);
  return put(o, t + i, sizeof t - i);
}

static int no_body_status(int st) { return st < 200 || st == 204 || st == 304; }

static int ctype_ok(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
  return 1;
}

void lorem_http_reply(lorem_http_req *rq, int status, const char *ctype, const void *body,
                      size_t len, const char *headers) {
  conn *c = rq->conn_;
  if (c->replied) return;
  c->replied = 1;
  if (status < 100 || status > 999) status = 500;
  if (ctype && !ctype_ok(ctype)) ctype = "application/octet-stream";
  if (atomic_load_explicit(&c->loop->s->draining, memory_order_relaxed)) c->keep_alive = 0;
  int nobody = no_body_status(status);
  const char *name = c->loop->s->l.name;
  size_t need = 220 + (name ? strlen(name) : 0) + (ctype ? strlen(ctype) : 0) +
                (headers ? strlen(headers) : 0) + len;
  c->out_len = c->out_off = 0;
  if (ensure_out(c, need)) {
    static const char oom[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                              "Connection: close\r\n\r\n";
    c->keep_alive = 0;
    if (ensure_out(c, sizeof oom)) return; /* nothing to send: conn_finish closes */
    memcpy(c->out, oom, sizeof oom - 1);
    c->out_len = sizeof oom - 1;
    return;
  }
  /* appended piece by piece: this runs once per answer, and printf's
   * format walk cost more than the rest of it */
  char *o = c->out;
  o = put(o, "HTTP/1.1 ", 9);
  *o++ = (char)('0' + status / 100);
  *o++ = (char)('0' + status / 10 % 10);
  *o++ = (char)('0' + status % 10);
  *o++ = ' ';
  o = put_str(o, lorem_http_reason(status));
  o = put(o, "\r\n", 2);
  o = put_str(o, date_line());
  if (name) {
    o = put(o, "Server: ", 8);
    o = put_str(o, name);
    o = put(o, "\r\n", 2);
  }
  if (ctype) {
    o = put(o, "Content-Type: ", 14);
    o = put_str(o, ctype);
    o = put(o, "\r\n", 2);
  }
  if (headers) o = put_str(o, headers);
  if (!nobody) {
    o = put(o, "Content-Length: ", 16);
    o = put_uint(o, len);
    o = put(o, "\r\n", 2);
  }
  if (!c->keep_alive) o = put_str(o, "Connection: close\r\n");
  else if (c->head.minor == 0) o = put_str(o, "Connection: keep-alive\r\n");
  o = put(o, "\r\n", 2);
  if (!nobody && !c->is_head && len) o = put(o, body, len);
  c->out_len = (size_t)(o - c->out);
}

const char *lorem_http_header(const lorem_http_req *rq, const char *name) {
  return lorem_http_head_get(&rq->conn_->head, rq->conn_->in, name);
}

/* A connection moves through its states in conn_run(); each step returns
 * 1 (progress: run again), 0 (wait for the socket or a worker) or -1 (the
 * connection is closed and freed). The socket is in epoll from accept to
 * close, edge-triggered for reading and writing, and never modified:
 * parking a connection and handing it back cost no epoll_ctl (see
 * give_back). */

/* Answer an error found by the server itself; the connection closes after. */
static int conn_fail(conn *c, int status, const char *msg) {
  char body[300];
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
  c->keep_alive = 0;
  c->replied = 0;
  c->is_head = 0;
  c->req.conn_ = c;
  timer_stop(c);
  lorem_http_reply(&c->req, status, "application/json", body, (size_t)n, NULL);
  c->state = C_WRITE;
  return 1;
}

static void linger_start(conn *c, int64_t now) {
  shutdown(c->fd, SHUT_WR);
  free(c->in);
  c->in = NULL;
  c->in_len = 0;
  c->state = C_LINGER;
  timer_set(c, T_LINGER, LINGER_MS, now);
}

/* The handler is done (on the loop, or back from a worker): write. */
static void conn_answer(conn *c) {
  if (!c->replied) {
    static const char e[] = "{\"error\":\"the handler gave no answer\"}";
    lorem_http_reply(&c->req, 500, "application/json", e, sizeof e - 1, NULL);
  }
  free(c->body);
  c->body = NULL;
  c->body_len = c->body_want = 0;
  /* keep what follows the request (pipelining) */
  memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
  c->in_len -= c->consumed;
  c->consumed = 0;
  c->state = C_WRITE;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int gate_open(lorem_http_server *s, struct gate *g) {
  if (s->l.inline_max_ms <= 0) return 0;
  if (atomic_load_explicit(&g->streak, memory_order_relaxed) < GATE_STREAK) return 0;
  int64_t slow = atomic_load_explicit(&g->last_slow_ms, memory_order_relaxed);
  return now_ms() - slow >= GATE_QUIET_MS;
}

/* Run a blocking route's handler (on a worker, or inline on loop `lp`)
 * and keep its route's gate. Returns 1 when the inline handler handed
 * itself to the pool: a worker may own `c` already. */
static int run_timed(lorem_http_server *s, struct gate *g, conn *c, struct loop *lp) {
  if (lp) lp->handed_off = 0;
  int64_t t0 = now_ns();
  c->route->fn(&c->req);
  int64_t t1 = now_ns();
  if (lp && lp->handed_off) return 1;
  if (t1 - t0 > s->l.inline_max_ms * 1000000) {
    atomic_store_explicit(&g->streak, 0, memory_order_relaxed);
    atomic_store_explicit(&g->last_slow_ms, t1 / 1000000, memory_order_relaxed);
  } else if (atomic_load_explicit(&g->streak, memory_order_relaxed) < GATE_STREAK) {
    atomic_fetch_add_explicit(&g->streak, 1, memory_order_relaxed);
  }
  return 0;
}

static int dispatch(conn *c) {
  lorem_http_server *s = c->loop->s;
  timer_stop(c);
  lorem_http_req *rq = &c->req;
  rq->method = c->head.method;
  rq->uri = c->head.target;
  const char *q = memchr(rq->uri, '?', c->head.target_len);
  rq->path = rq->uri;
  rq->path_len = q ? (size_t)(q - rq->uri) : c->head.target_len;
  if (memchr(rq->path, '%', rq->path_len)) {
    char *p = realloc(c->path, rq->path_len);
    if (!p) return conn_fail(c, 503, "out of memory");
    c->path = p;
    long n = lorem_http_path_decode(rq->path, rq->path_len, p);
    if (n < 0) return conn_fail(c, 400, "malformed percent-encoding in the path");
    rq->path = p;
    rq->path_len = (size_t)n;
  }
  rq->body = c->body;
  rq->body_len = c->body_len;
  rq->arg = s->arg;
  rq->conn_ = c;
  c->replied = 0;
  c->is_head = !strcmp(rq->method, "HEAD");
  c->state = C_HANDLER;
  const lorem_http_route *r = NULL;
  for (size_t i = 0; i < s->nroutes && !r; i++) {
    const char *p = s->routes[i].path;
    if (!p || (strlen(p) == rq->path_len && !memcmp(p, rq->path, rq->path_len))) r = &s->routes[i];
  }
  c->route = r;
  if (!r) {
    static const char nf[] = "{\"error\":\"not found\"}";
    lorem_http_reply(rq, 404, "application/json", nf, sizeof nf - 1, NULL);
  } else if ((r->flags & LOREM_HTTP_BLOCKING) && s->pool) {
    struct gate *g = &s->gates[r - s->routes];
    if (c->loop->batch_left == 0 && gate_open(s, g)) {
      /* Nothing else waits on this loop and the route's calls have been
       * fast: run it here, saving the hand-off to a worker and back. */
      c->on_loop = 1;
      if (run_timed(s, g, c, c->loop)) return 1; /* parked on the pool after all */
      c->on_loop = 0;
    } else {
      /* parked: its events only mark it ready, no timer runs, no thread waits */
      lorem_http_pool_push(s->pool, &c->job);
      return 1;
    }
  } else {
    c->suspended = 0;
    r->fn(rq);
    /* suspended: lorem_http_resume(), maybe on another thread and maybe
     * already, hands it back; nothing here may touch it any more */
    if (c->suspended) return 1;
  }
  conn_answer(c);
  return 1;
}

void lorem_http_suspend(lorem_http_req *rq) {
  rq->conn_->suspended = 1;
  atomic_fetch_add(&rq->conn_->loop->s->suspended, 1);
}

int lorem_http_to_pool(lorem_http_req *rq) {
  conn *c = rq->conn_;
  if (!c->on_loop || c->replied) return 0;
  struct loop *lp = c->loop;
  c->on_loop = 0;
  lp->handed_off = 1;
  lorem_http_pool_push(lp->s->pool, &c->job);
  return 1;
}

/* Parse what is buffered: a complete head starts a request. 0: more bytes
 * are needed. */
static int conn_input(conn *c, int64_t now) {
  lorem_http_server *s = c->loop->s;
  if (c->state == C_BODY) return 0;
  size_t skip = 0; /* empty lines before a request are allowed */
  while (skip < c->in_len && (c->in[skip] == '\r' || c->in[skip] == '\n')) skip++;
  if (skip) {
    memmove(c->in, c->in + skip, c->in_len - skip);
    c->in_len -= skip;
    c->scan = 0;
  }
  if (c->in_len == 0) return 0;
  size_t end = lorem_http_head_end(c->in, c->in_len, &c->scan);
  if (!end) {
    if (c->in_len >= (size_t)s->l.max_header_bytes)
      return conn_fail(c, 431, "request header fields too large");
    return 0;
  }
  c->scan = 0;
  const char *err = NULL;
  int st = lorem_http_parse_head(c->in, end, &c->head, &err);
  if (st) return conn_fail(c, st, err);
  c->keep_alive = c->head.keep_alive;
  c->consumed = end;
  int64_t cl = c->head.content_length;
  if (cl > s->l.max_body_bytes) return conn_fail(c, 413, "request body too large");
  if (cl > 0) {
    c->body = malloc((size_t)cl);
    if (!c->body) return conn_fail(c, 503, "out of memory");
    c->body_want = (size_t)cl;
    size_t have = c->in_len - end;
    if (have > c->body_want) have = c->body_want;
    memcpy(c->body, c->in + end, have);
    c->body_len = have;
    c->consumed += have;
    if (c->body_len < c->body_want) {
      c->state = C_BODY;
      timer_set(c, T_HEAD, s->l.header_timeout_ms, now);
      if (c->head.expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t w = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
      }
      return 1;
    }
  }
  return dispatch(c);
}

/* Read what the socket has. A short read means it is drained for now: a
 * later byte brings a new edge. */
static int conn_recv(conn *c, int64_t now) {
  lorem_http_server *s = c->loop->s;
  char *dst;
  size_t want;
  if (c->state == C_BODY) {
    dst = c->body + c->body_len;
    want = c->body_want - c->body_len;
  } else {
    if (!c->in && !(c->in = malloc((size_t)s->l.max_header_bytes))) {
      conn_close(c);
      return -1;
    }
    dst = c->in + c->in_len;
    want = (size_t)s->l.max_header_bytes - c->in_len; /* > 0: a full buffer got 431 */
  }
  ssize_t n = recv(c->fd, dst, want, 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
    if (errno == EAGAIN) c->rd_ready = 0;
    return errno == EINTR;
  }
  if (n <= 0) {
    conn_close(c);
    return -1;
  }
  if ((size_t)n < want && !c->hup) c->rd_ready = 0; /* (an end behind the data has no edge) */
  if (c->state == C_BODY) {
    c->body_len += (size_t)n;
    return c->body_len == c->body_want ? dispatch(c) : 1;
  }
  if (c->in_len == 0 && c->timer == T_IDLE) /* a request's first byte */
    timer_set(c, T_HEAD, s->l.header_timeout_ms, now);
  c->in_len += (size_t)n;
  return 1;
}

static int conn_write(conn *c, int64_t now) {
  lorem_http_server *s = c->loop->s;
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        c->wr_ready = 0;
        timer_set(c, T_IDLE, s->l.idle_timeout_ms, now); /* a client that stops reading */
        return 0;                                        /* EPOLLOUT's edge when it drains */
      }
      conn_close(c);
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out_len = c->out_off = 0;
  if (c->out_cap > OUT_KEEP) {
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
  }
  if (!c->keep_alive) {
    linger_start(c, now);
    return 1;
  }
  c->state = C_HEAD;
  if (c->in_len) timer_set(c, T_HEAD, s->l.header_timeout_ms, now); /* pipelined */
  else timer_set(c, T_IDLE, s->l.idle_timeout_ms, now);
  return 1;
}

static int conn_linger(conn *c) {
  char sink[4096];
  for (int i = 0; i < 16; i++) { /* then wait for the next edge: others get a turn */
    ssize_t n = recv(c->fd, sink, sizeof sink, 0);
    if (n > 0 || (n < 0 && errno == EINTR)) continue;
    if (n < 0 && errno == EAGAIN) {
      c->rd_ready = 0;
      return 0;
    }
    conn_close(c); /* the client closed (or reset): done */
    return -1;
  }
  return 0;
}

static void conn_run(conn *c, int64_t now) {
  for (;;) {
    int r = 0;
    switch (c->state) {
    case C_HANDLER: return;
    case C_WRITE:
      if (!c->wr_ready) return;
      r = conn_write(c, now);
      break;
    case C_HEAD:
    case C_BODY:
      r = conn_input(c, now);
      if (r == 0 && c->rd_ready) r = conn_recv(c, now);
      break;
    case C_LINGER:
      if (!c->rd_ready) return;
      r = conn_linger(c);
      break;
    }
    if (r <= 0) return;
  }
}

static void conn_event(conn *c, uint32_t ev, int64_t now) {
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->rd_ready = 1;
  if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->hup = 1;
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->wr_ready = 1;
  if (c->state == C_HANDLER) { /* parked: keep the marks, and say so to give_back */
    pthread_mutex_lock(&c->loop->mu);
    c->parked_ev = 1;
    pthread_mutex_unlock(&c->loop->mu);
    return;
  }
  conn_run(c, now);
}

/* --- accepting --- */

static void accept_some(struct loop *lp, int64_t now) {
  lorem_http_server *s = lp->s;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* out of descriptors: leave the backlog to the kernel a while */
        struct epoll_event e = {0};
        epoll_ctl(lp->ep, EPOLL_CTL_DEL, s->lfd, &e);
        lp->listening = 0;
        lp->accept_pause_until = now + 100;
      }
      return;
    }
    lorem_http_addr a;
    lorem_http_addr_of(&ss, &a);
    if (atomic_fetch_add(&s->conns, 1) >= s->l.max_conns) {
      atomic_fetch_sub(&s->conns, 1);
      send_now(fd, s->l.name, 503, "too many connections");
      close(fd);
      continue;
    }
    if (!lorem_http_addrs_acquire(s->addrs, &a, s->l.max_conns_per_addr)) {
      atomic_fetch_sub(&s->conns, 1);
      send_now(fd, s->l.name, 503, "too many connections from your address");
      close(fd);
      continue;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
      lorem_http_addrs_release(s->addrs, &a);
      atomic_fetch_sub(&s->conns, 1);
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->loop = lp;
    c->addr = a;
    c->timer = T_NONE;
    c->state = C_HEAD;
    c->anext = lp->all;
    if (lp->all) lp->all->aprev = c;
    lp->all = c;
    c->wr_ready = 1;
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &e)) {
      conn_close(c);
      continue;
    }
    /* the first request's header timeout runs from the accept */
    timer_set(c, T_HEAD, s->l.header_timeout_ms, now);
  }
}

static void listen_on(struct loop *lp, int on) {
  if (lp->listening == on) return;
  struct epoll_event e = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &lp->tag_listen};
  if (on) {
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->s->lfd, &e)) return;
  } else {
    epoll_ctl(lp->ep, EPOLL_CTL_DEL, lp->s->lfd, &e);
  }
  lp->listening = on;
}

/* --- the loop --- */

static void wake(struct loop *lp) {
  uint64_t one = 1;
  ssize_t w = write(lp->evfd, &one, sizeof one);
  (void)w;
}

/* A handler finished off the loop (on a worker, or a suspended one on any
 * thread): write the answer from here (the socket's buffer nearly always
 * takes it whole), then give the connection back to its loop. */
static void give_back(conn *c) {
  lorem_http_job *j = &c->job;
  int urgent = !c->replied || !c->keep_alive;
  while (!urgent && c->out_off < c->out_len) {
    ssize_t n =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) c->out_off += (size_t)n;
    else if (n < 0 && errno == EINTR) continue;
    else urgent = 1; /* full, or an error: the loop takes it from here */
  }
  struct loop *lp = c->loop;
  pthread_mutex_lock(&lp->mu);
  j->next = NULL;
  if (lp->done_tail) lp->done_tail->next = j;
  else lp->done_head = j;
  lp->done_tail = j;
  /* A finished kept-alive exchange needs no wake-up while the loop is
   * awake: it looks at the queue after every batch. A sleeping loop (it
   * decided so under this lock, with the queue empty) must look at it by
   * the time the client's next request is there. That request's edge
   * wakes the loop, unless it came while the connection was parked and
   * the loop has handled it already (parked_ev, set under this lock):
   * only then is the eventfd written. So the loop is woken once per
   * request, not twice, and with no system call here. */
  int do_wake = !lp->wake_pending && (urgent || (lp->sleeping && c->parked_ev));
  if (do_wake) lp->wake_pending = 1;
  pthread_mutex_unlock(&lp->mu);
  if (do_wake) wake(lp);
}

static void run_job(void *arg, lorem_http_job *j) {
  lorem_http_server *s = arg;
  conn *c = (conn *)((char *)j - offsetof(conn, job));
  run_timed(s, &s->gates[c->route - s->routes], c, NULL);
  give_back(c);
}

void lorem_http_resume(lorem_http_req *rq) {
  lorem_http_server *s = rq->conn_->loop->s;
  give_back(rq->conn_);
  atomic_fetch_sub(&s->suspended, 1);
}

void lorem_http_server_wait_suspended(lorem_http_server *s) {
  while (atomic_load(&s->suspended) > 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

/* After a batch of events (which may name the connections given back, so
 * none may be freed before): resume the connections the workers finished. */
static void take_done(struct loop *lp, int64_t now) {
  pthread_mutex_lock(&lp->mu);
  lorem_http_job *j = lp->done_head;
  lp->done_head = lp->done_tail = NULL;
  lp->wake_pending = 0;
  for (lorem_http_job *k = j; k; k = k->next)
    ((conn *)((char *)k - offsetof(conn, job)))->parked_ev = 0;
  pthread_mutex_unlock(&lp->mu);
  while (j) {
    lorem_http_job *next = j->next;
    conn *c = (conn *)((char *)j - offsetof(conn, job));
    conn_answer(c);
    c->wr_ready = 1; /* try: an edge may have come and gone while parked */
    conn_run(c, now);
    j = next;
  }
}

static void on_wake(struct loop *lp) {
  uint64_t v;
  ssize_t r = read(lp->evfd, &v, sizeof v);
  (void)r;
  if (atomic_load(&lp->s->draining) && !atomic_load(&lp->drained)) {
    listen_on(lp, 0);
    lp->accept_pause_until = 0;
    atomic_store(&lp->drained, 1); /* the idle connections are closed after this batch */
  }
}

/* Draining: close the kept-alive connections that wait for a request (not
 * from inside a batch of events, which may still name them). */
static void close_idle(struct loop *lp) {
  for (conn *c = lp->t[T_IDLE].head, *n; c; c = n) {
    n = c->next;
    if (c->state == C_HEAD && c->in_len == 0) conn_close(c);
  }
}

static void expire(struct loop *lp, int64_t now) {
  conn *c;
  while ((c = lp->t[T_HEAD].head) && c->deadline <= now) {
    timer_stop(c);
    send_now(c->fd, lp->s->l.name, 408, "request not complete within the header timeout");
    conn_close(c);
  }
  while ((c = lp->t[T_IDLE].head) && c->deadline <= now) conn_close(c);
  while ((c = lp->t[T_LINGER].head) && c->deadline <= now) conn_close(c);
}

static int next_timeout(struct loop *lp, int64_t now) {
  int64_t t = 1000;
  for (int i = 0; i < T_COUNT; i++)
    if (lp->t[i].head && lp->t[i].head->deadline - now < t) t = lp->t[i].head->deadline - now;
  if (lp->accept_pause_until && lp->accept_pause_until - now < t) t = lp->accept_pause_until - now;
  return t < 0 ? 0 : (int)t;
}

static void *loop_main(void *vp) {
  struct loop *lp = vp;
  lorem_http_server *s = lp->s;
  struct epoll_event ev[256];
  int64_t now = now_ms();
  while (!atomic_load(&s->stopping)) {
    pthread_mutex_lock(&lp->mu);
    int idle = !lp->done_head;
    lp->sleeping = idle;
    pthread_mutex_unlock(&lp->mu);
    int n = epoll_wait(lp->ep, ev, 256, idle ? next_timeout(lp, now) : 0);
    pthread_mutex_lock(&lp->mu);
    lp->sleeping = 0;
    pthread_mutex_unlock(&lp->mu);
    now = now_ms();
    for (int i = 0; i < n; i++) {
      void *p = ev[i].data.ptr;
      lp->batch_left = n - i - 1;
      if (p == &lp->tag_listen) accept_some(lp, now);
      else if (p == &lp->tag_wake) on_wake(lp);
      else conn_event(p, ev[i].events, now);
    }
    take_done(lp, now);
    /* Each connection has at most one event in a batch and only its own
     * handling closes it, so no event here names a freed connection. */
    if (atomic_load(&lp->drained) == 1) {
      close_idle(lp);
      atomic_store(&lp->drained, 2);
    }
    if (lp->accept_pause_until && now >= lp->accept_pause_until && !atomic_load(&s->draining)) {
      lp->accept_pause_until = 0;
      listen_on(lp, 1);
    }
    expire(lp, now);
  }
  return NULL;
}

int lorem_http_server_start(int fd, const lorem_http_limits *lim, const lorem_http_route *routes,
                            size_t nroutes, void *arg, lorem_http_server **out, char *err,
                            size_t errcap) {
  lorem_http_server *s = calloc(1, sizeof *s);
  if (!s) {
    snprintf(err, errcap, "out of memory");
    return -1;
  }
  s->l = *lim;
  long nofile = lorem_http_raise_nofile();
  if (s->l.max_conns <= 0)
    s->l.max_conns = nofile > 2 * NOFILE_RESERVE ? nofile - NOFILE_RESERVE : nofile / 2;
  if (s->l.loops <= 0) s->l.loops = ncpu();
  if (s->l.workers <= 0) s->l.workers = ncpu() * 2;
  if (s->l.max_header_bytes > LOREM_HTTP_HEAD_MAX) s->l.max_header_bytes = LOREM_HTTP_HEAD_MAX;
  if (s->l.max_header_bytes < 64) s->l.max_header_bytes = 64;
  s->routes = routes;
  s->nroutes = nroutes;
  s->arg = arg;
  s->lfd = fd;
  s->addrs = lorem_http_addrs_new();
  s->loops = calloc((size_t)s->l.loops, sizeof *s->loops);
  s->gates = calloc(nroutes ? nroutes : 1, sizeof *s->gates);
  if (!s->addrs || !s->loops || !s->gates) {
    snprintf(err, errcap, "out of memory");
    lorem_http_server_free(s);
    return -1;
  }
  int blocking = 0;
  for (size_t i = 0; i < nroutes; i++) blocking |= (routes[i].flags & LOREM_HTTP_BLOCKING) != 0;
  if (blocking && !(s->pool = lorem_http_pool_new((int)s->l.workers, run_job, s))) {
    snprintf(err, errcap, "cannot start the worker threads");
    lorem_http_server_free(s);
    return -1;
  }
  /* the listening socket must not block: several loops wait on it */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK)) {
    snprintf(err, errcap, "listening socket: %s", strerror(errno));
    lorem_http_server_free(s);
    return -1;
  }
  for (int i = 0; i < s->l.loops; i++) {
    struct loop *lp = &s->loops[i];
    lp->s = s;
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&lp->mu, NULL);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &lp->tag_wake};
    if (lp->ep < 0 || lp->evfd < 0 || epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->evfd, &e)) {
      snprintf(err, errcap, "epoll: %s", strerror(errno));
      if (lp->ep >= 0) close(lp->ep);
      if (lp->evfd >= 0) close(lp->evfd);
      pthread_mutex_destroy(&lp->mu);
      lorem_http_server_free(s);
      return -1;
    }
    listen_on(lp, 1);
    if (pthread_create(&lp->th, NULL, loop_main, lp)) {
      snprintf(err, errcap, "cannot start the event-loop threads");
      close(lp->ep);
      close(lp->evfd);
      pthread_mutex_destroy(&lp->mu);
      lorem_http_server_free(s);
      return -1;
    }
    s->nloops = i + 1;
  }
  *out = s;
  return 0;
}

void lorem_http_server_quiesce(lorem_http_server *s) {
  atomic_store(&s->draining, 1);
  for (int i = 0; i < s->nloops; i++) wake(&s->loops[i]);
  /* wait until no loop watches the listening socket (a second at most), so
   * the caller may close it and have new connections refused */
  for (int i = 0, tries = 0; i < s->nloops && tries < 1000; tries++) {
    if (atomic_load(&s->loops[i].drained)) {
      i++;
      continue;
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

long lorem_http_server_conns(lorem_http_server *s) { return atomic_load(&s->conns); }

long lorem_http_server_max_conns(lorem_http_server *s) { return s->l.max_conns; }

void lorem_http_server_stop(lorem_http_server *s) {
  if (!s || s->stopped) return;
  s->stopped = 1;
  atomic_store(&s->stopping, 1);
  for (int i = 0; i < s->nloops; i++) wake(&s->loops[i]);
  for (int i = 0; i < s->nloops; i++) pthread_join(s->loops[i].th, NULL);
  /* handlers under way finish first; queued ones never run */
  lorem_http_pool_free(s->pool);
  s->pool = NULL;
}

void lorem_http_server_free(lorem_http_server *s) {
  if (!s) return;
  lorem_http_server_stop(s);
  for (int i = 0; i < s->nloops; i++) {
    struct loop *lp = &s->loops[i];
    while (lp->all) conn_close(lp->all);
    close(lp->ep);
    close(lp->evfd);
    pthread_mutex_destroy(&lp->mu);
  }
  free(s->loops);
  free(s->gates);
  lorem_http_addrs_free(s->addrs);
  free(s);
}
