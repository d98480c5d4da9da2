/* SPDX-License-Identifier: MIT */
/* The plain-http fast path of an endpoint: what kitd_http's endpoint call
 * does when the instance is an IP literal and the client speaks plain
 * http:// with no proxy (see client.c, fast_allowed). Same callbacks, same
 * errors and details as the libcurl path (endpoint.c); the request is
 * written and the answer parsed by our own HTTP/1.1 code (conn.c, h1.c)
 * over a per-endpoint stack of keep-alive connections. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "http/answer.h"
#include "http/conn.h"
#include "kitd/error.h"

/* "a.b.c.d:port" or "[v6]:port" into e->addr; 0 if it is not one. */
static int parse_instance(struct kitd__http_ep *e, const char *in) {
  const char *colon = strrchr(in, ':');
  if (!colon || !colon[1] || strlen(colon + 1) > 5) return 0;
  unsigned port = 0;
  for (const char *p = colon + 1; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    port = port * 10 + (unsigned)(*p - '0');
  }
  if (port == 0 || port > 65535) return 0;
  char host[64];
  size_t n = (size_t)(colon - in);
  if (n >= 2 && in[0] == '[' && in[n - 1] == ']') {
    if (n - 2 >= sizeof host) return 0;
    memcpy(host, in + 1, n - 2);
    host[n - 2] = '\0';
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&e->addr;
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return 0;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    e->addrlen = sizeof *a;
    return 1;
  }
  if (n >= sizeof host) return 0;
  memcpy(host, in, n);
  host[n] = '\0';
  struct sockaddr_in *a = (struct sockaddr_in *)&e->addr;
  if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return 0;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  e->addrlen = sizeof *a;
  return 1;
}

static char *fmt(size_t *len, const char *f, ...) __attribute__((format(printf, 2, 3)));
static char *fmt(size_t *len, const char *f, ...) {
  va_list ap;
  va_start(ap, f);
  int n = vsnprintf(NULL, 0, f, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = kitd__malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, f);
  vsnprintf(s, (size_t)n + 1, f, ap);
  va_end(ap);
  *len = (size_t)n;
  return s;
}

int kitd__http_fast_init(struct kitd__http_ep *e, const char *instance) {
  kitd_http *h = e->h;
  e->pool = NULL;
  if (!h->fast || !parse_instance(e, instance)) return 0;
  e->head = !strcmp(h->method, "HEAD");
  /* As libcurl does: a body (and its length, 0 if empty) for any method
   * but GET and HEAD, and for any encoder. */
  e->send_body = h->o.encode || (h->method_kind != 0 && !e->head);
  e->prefix = fmt(&e->prefixlen, "%s ", h->method);
  if (e->send_body)
    e->suffix = fmt(&e->suffixlen,
                    " HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\nContent-Type: %s\r\n",
                    instance, h->content_type);
  else
    e->suffix =
        fmt(&e->suffixlen, " HTTP/1.1\r\nHost: %s\r\nAccept: application/json\r\n", instance);
  struct kitd__h1_pool *p = kitd__calloc(1, sizeof *p);
  if (!e->prefix || !e->suffix || !p ||
      kitd__h1_pool_init(p, h->o.max_idle_handles, &h->fast_idle)) {
    free(p);
    free(e->prefix);
    free(e->suffix);
    e->prefix = e->suffix = NULL;
    return KITD_ENOMEM;
  }
  e->pool = p;
  return 0;
}

void kitd__http_fast_close(struct kitd__http_ep *e) {
  if (e->pool) {
    kitd__h1_pool_destroy(e->pool);
    free(e->pool);
    e->pool = NULL;
  }
  free(e->prefix);
  free(e->suffix);
  e->prefix = e->suffix = NULL;
}

/* The path must be a request-target libcurl would send as is: '/' then
 * visible ASCII (no spaces or controls that could split the request). */
static int path_ok(const char *p, size_t n) {
  if (n == 0 || p[0] != '/') return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 127) return 0;
  return 1;
}

int kitd__http_fast_head(struct kitd__http_ep *e, struct kitd__h1_conn *c, size_t pstart,
                         kitd_ctx *ctx) {
  kitd_http *h = e->h;
  size_t plen = c->head.len - pstart;
  if (!path_ok(c->head.data + pstart, plen)) {
    kitd_ctx_set_detail(ctx, "%s %s%.*s: bad request path", h->method, e->base,
                        (int)(plen > 200 ? 200 : plen), c->head.data + pstart);
    return KITD_EINVAL;
  }
  int rc = kitd_http_buf_append(&c->head, e->suffix, e->suffixlen);
  if (!rc && e->send_body)
    rc = kitd_http_buf_printf(&c->head, "Content-Length: %zu\r\n", c->body.len);
  if (!rc) rc = kitd_http_buf_append(&c->head, "\r\n", 2);
  return rc;
}

int kitd__http_fast_answer(struct kitd__http_ep *e, struct kitd__h1_conn *c, int rc,
                           const kitd__h1_resp *r, const char *why, size_t pstart, size_t plen,
                           kitd_ctx *ctx, void **response) {
  kitd_http *h = e->h;
  if (rc) {
    if (rc == KITD_ETOOBIG)
      kitd_ctx_set_detail(ctx, "%s %s%.*s: answer body over %zu bytes", h->method, e->base,
                          (int)plen, c->head.data + pstart, h->o.max_body);
    else
      kitd_ctx_set_detail(ctx, "%s %s%.*s: %s", h->method, e->base, (int)plen,
                          c->head.data + pstart, why);
    return rc;
  }
  const char *body = c->rbuf + r->body_off;
  kitd_ctx_set_status(ctx, r->status);
  if ((r->status < 200 || r->status > 299) && !h->o.decode_all_status) {
    kitd__http_error_detail(ctx, r->status, body, r->body_len);
    return KITD_EHTTP;
  }
  if (h->o.decode) {
    void *resp = NULL;
    kitd__http_answer_set(r->ctype_len ? c->rbuf + r->ctype_off : NULL, r->ctype_len);
    rc = h->o.decode(h->o.arg, r->status, body, r->body_len, &resp, ctx);
    kitd__http_answer_set(NULL, 0);
    if (rc == 0 && response) *response = resp;
  }
  return rc;
}

int kitd__http_fast_call(struct kitd__http_ep *e, kitd_ctx *ctx, const void *request,
                         void **response) {
  kitd_http *h = e->h;
  int64_t ms = kitd_ctx_remaining_ms(ctx);
  if (ms == 0) return KITD_ETIMEDOUT;
  int64_t deadline = kitd_ctx_deadline_ns(ctx);
  if (ms < 0) deadline = h->o.timeout_ms > 0 ? kitd_now_ns() + h->o.timeout_ms * 1000000 : 0;

  struct kitd__h1_conn *c = kitd__h1_pool_get(e->pool);
  if (!c) return KITD_ENOMEM;
  int rc;
  kitd__http_buf_reset(&c->head);
  kitd__http_buf_reset(&c->body);
  if ((rc = kitd_http_buf_append(&c->head, e->prefix, e->prefixlen))) goto out;
  size_t pstart = c->head.len;
  if ((rc = kitd__http_build(h, request, &c->head, &c->body, ctx))) goto out;
  size_t plen = c->head.len - pstart;
  if ((rc = kitd__http_fast_head(e, c, pstart, ctx))) goto out;

  struct kitd__h1_io io = {
      .addr = (const struct sockaddr *)&e->addr,
      .addrlen = e->addrlen,
      .deadline_ns = deadline,
      .connect_timeout_ms = h->o.connect_timeout_ms,
      .ctx = ctx,
      .parse = {.max_body = h->o.max_body, .head = e->head},
      .opened = &h->fast_opened,
  };
  kitd__h1_resp r;
  char why[160];
  rc = kitd__h1_exchange(c, &io, &r, why, sizeof why);
  rc = kitd__http_fast_answer(e, c, rc, &r, why, pstart, plen, ctx, response);
out:
  kitd__h1_pool_put(e->pool, c);
  return rc;
}
