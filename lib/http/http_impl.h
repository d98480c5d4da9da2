/* SPDX-License-Identifier: MIT */
/* Internal: the pieces of the HTTP transport shared by its files. Not API. */
#ifndef KITD_HTTP_IMPL_H
#define KITD_HTTP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "curl/kitd_curl.h"
#include "kitd/http.h"

struct kitd_http_buf {
  char *data; /* NUL-terminated after every append (the NUL is not counted) */
  size_t len, cap;
};

/* Clear without freeing: buffers are kept for the next call. */
static inline void kitd__http_buf_reset(kitd_http_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}
void kitd__http_buf_release(kitd_http_buf *b);

/* One pooled easy handle with its buffers. Borrowed by one call at a time. */
struct kitd__http_conn {
  CURLM *multi; /* owns the connection cache of `easy` */
  CURL *easy;
  struct kitd__http_conn *next; /* idle stack link */
  kitd_http_buf url, body, resp;
  size_t max_body;
  int write_err; /* why on_write refused data: ETOOBIG, ENOMEM */
  char errbuf[CURL_ERROR_SIZE];
};

struct kitd_http {
  atomic_int refs;  /* the user's handle + one per endpoint */
  kitd_http_opts o; /* strings point into the copies below */
  char *method, *path, *content_type, *scheme;
  int method_kind;            /* 0 GET, 1 POST, 2 custom */
  struct curl_slist *headers; /* shared read-only by every easy handle */
  pthread_mutex_t mu;         /* guards the idle stack and counters */
  struct kitd__http_conn *idle;
  unsigned nidle;
  unsigned long created;
  int fast;                 /* plain-http endpoints may use the fast path */
  atomic_ulong fast_opened; /* fast-path connections made */
  atomic_uint fast_idle;    /* fast-path connections idle in the pools */
};

/* An endpoint: one instance. Plain http:// to an IP literal goes through
 * the fast path (fast.c, conn.c, h1.c) with its own pool of keep-alive
 * connections; anything else through libcurl (endpoint.c). */
struct kitd__h1_pool;
struct kitd__http_ep {
  kitd_http *h;               /* a reference */
  struct kitd__h1_pool *pool; /* NULL: libcurl */
  struct sockaddr_storage addr;
  socklen_t addrlen;
  char *prefix; /* "METHOD " */
  char *suffix; /* " HTTP/1.1\r\nHost: ...\r\n...": up to the
                                   Content-Length line */
  size_t prefixlen, suffixlen;
  int send_body; /* Content-Length (and the body) are sent */
  int head;      /* HEAD: the answer has no body */
  size_t baselen;
  char base[]; /* "http://host:port" */
};

/* Set up the fast path for `e` if its instance and the client allow it
 * (0 and e->pool NULL otherwise). Returns 0 or KITD_ENOMEM. */
int kitd__http_fast_init(struct kitd__http_ep *e, const char *instance);
void kitd__http_fast_close(struct kitd__http_ep *e);
/* The fast path in pieces, shared with the loop (async.c). head: the
 * path is in c->head from pstart (after the method), the body in c->body:
 * check the path and end the head. answer: the exchange ended with rc
 * (why: its message) and *r: the call's code, with the status, detail and
 * decoded response as the endpoint sets them. */
struct kitd__h1_conn;
struct kitd__h1_resp;
int kitd__http_fast_head(struct kitd__http_ep *e, struct kitd__h1_conn *c, size_t pstart,
                         kitd_ctx *ctx);
int kitd__http_fast_answer(struct kitd__http_ep *e, struct kitd__h1_conn *c, int rc,
                           const struct kitd__h1_resp *r, const char *why, size_t pstart,
                           size_t plen, kitd_ctx *ctx, void **response);
/* One call over the fast path. */
int kitd__http_fast_call(struct kitd__http_ep *e, kitd_ctx *ctx, const void *request,
                         void **response);

/* The request's path (appended to `path`) and body (to `body`), from
 * the client's fixed path or path callback and its encoder. */
int kitd__http_build(kitd_http *h, const void *request, kitd_http_buf *path, kitd_http_buf *body,
                     kitd_ctx *ctx);

/* The libcurl path in two halves, around a transfer of c->easy (blocking
 * in endpoint.c, on the loop in async.c). setup: c->url and c->body are
 * built; set the URL, the body and the timeout (ms, 0: none) on the easy
 * handle. answer: the transfer ended with rc (a KITD_E* code for a
 * transfer cut short, 0 when libcurl ended it) and cc: the call's code,
 * with the status, detail and decoded response as the endpoint sets
 * them. */
void kitd__http_curl_setup(kitd_http *h, struct kitd__http_conn *c, int64_t ms);
int kitd__http_curl_answer(kitd_http *h, struct kitd__http_conn *c, int rc, CURLcode cc,
                           kitd_ctx *ctx, void **response);

/* The detail of a non-2xx answer: the JSON `error` text, else the body's
 * first line, else "HTTP <status>". In errors.c, which both the libcurl
 * path (endpoint.c) and the fast path (fast.c) use, so neither of those
 * two files depends on the other for it. */
void kitd__http_error_detail(kitd_ctx *ctx, int status, const char *body, size_t len);

void kitd__http_ref(kitd_http *h);
void kitd__http_unref(kitd_http *h);

/* Borrow a handle from the pool (or make one): NULL only when out of memory. */
struct kitd__http_conn *kitd__http_conn_get(kitd_http *h);
/* Give it back (or free it when the pool is full). */
void kitd__http_conn_put(kitd_http *h, struct kitd__http_conn *c);

/* Free a handle that is not in the pool. */
void kitd__http_conn_free(struct kitd__http_conn *c);

#endif
