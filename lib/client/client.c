/* SPDX-License-Identifier: MIT */
/* kitd_client: one service's whole pipeline behind one handle (client.h).
 *
 * A client owns an instancer and one "variant" per (method, Content-Type)
 * it has been asked to send: kitd_http fixes both per handle, and a raw
 * request may name its own (the gateway passes them through). Each variant
 * is an endpointer, a balancer and a retry endpoint over the shared
 * instancer, so the registry is watched once whatever the variants. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_impl.h"
#include "consul/watcher.h"
#include "core/alloc.h"
#include "core/metrics_impl.h"
#include "http/answer.h"
#include "kitd/balancer.h"
#include "kitd/client.h"
#include "kitd/endpointer.h"
#include "kitd/error.h"
#include "kitd/source.h"
#include "lb/budget.h"
#include "sd/instancer_impl.h"

int kitd_service_name_ok(const char *name) {
  if (!name) return 0;
  size_t n = strnlen(name, 256);
  if (n == 0 || n > 255) return 0;
  for (size_t i = 0; i < n; i++)
    if (name[i] == '/' || (unsigned char)name[i] < 0x20 || name[i] == 0x7f) return 0;
  return 1;
}

void kitd_client_opts_init(kitd_client_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->codec = KITD_CODEC_RAW;
  o->balancer = KITD_BALANCE_ROUND_ROBIN;
  o->ready_timeout_ms = 5000;
}

static void raw_ans_free(void *p) {
  struct raw_ans *a = p;
  if (a) free(a->ctype);
  free(a);
}

static void json_free(void *p) { json_decref(p); }

/* ---- codecs over kitd_http ---- */

static int raw_path(void *arg, const void *request, kitd_http_buf *path, kitd_ctx *ctx) {
  (void)ctx;
  const kitd_client *c = arg;
  const kitd_client_req *rq = request;
  const char *p = rq && rq->path ? rq->path : c->path;
  return kitd_http_buf_append(path, p, strlen(p));
}

static int raw_encode(void *arg, const void *request, kitd_http_buf *body, kitd_ctx *ctx) {
  (void)arg, (void)ctx;
  const kitd_client_req *rq = request;
  if (!rq || !rq->body || !rq->len) return 0;
  return kitd_http_buf_append(body, rq->body, rq->len);
}

/* A 5xx answer is the instance's failure: retry elsewhere. Anything else
 * is the service's answer and goes back to the caller as is. */
static int fail_5xx(int status, const char *body, size_t len, kitd_ctx *ctx) {
  size_t n = 0;
  while (n < len && n < 120 && body[n] != '\n' && body[n] != '\r') n++;
  kitd_ctx_set_detail(ctx, "HTTP %d%s%.*s", status, n ? ": " : "", (int)n, body);
  return KITD_EHTTP;
}

static int raw_decode(void *arg, int status, const char *body, size_t len, void **response,
                      kitd_ctx *ctx) {
  (void)arg;
  if (status >= 500) return fail_5xx(status, body, len, ctx);
  struct raw_ans *a = kitd__malloc(sizeof *a + len + 1);
  if (!a) return KITD_ENOMEM;
  a->len = len;
  a->ctype = NULL;
  size_t ctn;
  const char *ct = kitd__http_answer_content_type(&ctn);
  if (ct && !(a->ctype = kitd__strndup(ct, ctn))) {
    free(a);
    return KITD_ENOMEM;
  }
  memcpy(a->body, body, len);
  a->body[len] = '\0';
  *response = a;
  return 0;
}

static int json_encode(void *arg, const void *request, kitd_http_buf *body, kitd_ctx *ctx) {
  (void)arg;
  if (!request) return 0;
  size_t n = json_dumpb(request, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
  if (n == 0) {
    kitd_ctx_set_detail(ctx, "the request is not JSON that can be encoded");
    return KITD_EINVAL;
  }
  char *s = kitd__malloc(n);
  if (!s) return KITD_ENOMEM;
  json_dumpb(request, s, n, JSON_COMPACT | JSON_ENCODE_ANY);
  int rc = kitd_http_buf_append(body, s, n);
  free(s);
  return rc;
}

static int json_decode(void *arg, int status, const char *body, size_t len, void **response,
                       kitd_ctx *ctx) {
  (void)arg, (void)status;
  json_t *j;
  if (len == 0) {
    j = json_null();
  } else {
    json_error_t je;
    j = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!j) {
      kitd_ctx_set_detail(ctx, "answer is not JSON: %s (line %d)", je.text, je.line);
      return KITD_EPROTO;
    }
  }
  *response = j;
  return 0;
}

/* Retry what another instance might answer; a 4xx or a bad request is the
 * caller's own fault and would fail everywhere, and an empty set (the
 * registry's answer) will not fill up within one call's backoff. */
static int default_should_retry(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)arg, (void)attempt;
  if (*err == KITD_ECANCELED || *err == KITD_EINVAL || *err == KITD_ENOMEM ||
      *err == KITD_ENOENDPOINTS)
    return 0;
  if (*err == KITD_EHTTP) { /* retry copies each attempt's status to the ctx */
    int status = kitd_ctx_status(ctx);
    return status == 0 || status >= 500;
  }
  return 1;
}

/* ---- variants ---- */

static void variant_free(struct variant *v) {
  if (!v) return;
  kitd_endpoint_unref(v->call);
  kitd_balancer_free(v->lb);
  kitd_endpointer_free(v->ep);
  kitd_http_free(v->h);
  free(v->method);
  free(v->ctype);
  free(v);
}

static int variant_new(kitd_client *c, const char *method, const char *ctype,
                       const kitd_factory *custom, struct variant **out) {
  struct variant *v = kitd__calloc(1, sizeof *v);
  if (!v) {
    if (custom && custom->release) custom->release(custom->arg);
    return KITD_ENOMEM;
  }
  kitd_factory f;
  int rc;
  if (custom) {
    f = *custom;
  } else {
    v->method = kitd__strdup(method);
    v->ctype = kitd__strdup(ctype);
    if (!v->method || !v->ctype) {
      variant_free(v);
      return KITD_ENOMEM;
    }
    kitd_http_opts ho = c->http;
    ho.method = method;
    ho.content_type = ctype;
    ho.path = c->path;
    int nobody = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (c->codec == KITD_CODEC_RAW) {
      ho.path_fn = raw_path;
      ho.encode = nobody ? NULL : raw_encode;
      ho.decode = raw_decode;
      ho.arg = c;
      ho.decode_all_status = 1;
    } else if (c->codec == KITD_CODEC_JSON) {
      ho.path_fn = NULL;
      ho.encode = nobody ? NULL : json_encode;
      ho.decode = json_decode;
      ho.arg = c;
      ho.decode_all_status = 0;
    }
    kitd_http *h = NULL;
    if ((rc = kitd_http_new(&ho, &h))) {
      variant_free(v);
      return rc;
    }
    f = kitd_http_factory(h);
    v->h = h; /* the variant's own reference, for async calls */
  }
  kitd_endpointer_opts eo;
  kitd_endpointer_opts_init(&eo);
  eo.logger = c->lg;
  if ((rc = kitd_endpointer_new(c->in, &f, &eo, &v->ep))) goto fail;
  rc = c->balancer == KITD_BALANCE_RANDOM
           ? kitd_balancer_random_new(v->ep, &v->lb)
           : kitd_balancer_round_robin_new(v->ep, c->balancer_flags, &v->lb);
  if (rc) goto fail;
  kitd_retry_opts ro = c->retry;
  if (!ro.logger) ro.logger = c->lg; /* picks explained at debug level */
  if (c->m) {
    ro.metrics = c->m;
    ro.metrics_name = c->service;
    if ((rc = kitd_balancer_set_metrics(v->lb, c->m, c->service))) goto fail;
  }
  if ((rc = kitd_retry_new(v->lb, &ro, &v->call))) goto fail;
  v->budget = kitd__retry_budget(v->call); /* async calls spend from it too */
  *out = v;
  return 0;
fail:
  variant_free(v);
  return rc;
}

/* The variant for a raw request naming its own method or type. */
static int variant_for(kitd_client *c, const char *method, const char *ctype, kitd_ctx *ctx,
                       struct variant **out) {
  for (struct variant *v = atomic_load_explicit(&c->extra, memory_order_acquire); v; v = v->next)
    if (!strcmp(v->method, method) && !strcmp(v->ctype, ctype)) return *out = v, 0;
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  struct variant *v = atomic_load_explicit(&c->extra, memory_order_acquire);
  for (; v; v = v->next)
    if (!strcmp(v->method, method) && !strcmp(v->ctype, ctype)) break;
  if (!v) {
    if (c->nvariants >= CLIENT_MAX_VARIANTS) {
      kitd_ctx_set_detail(ctx, "'%s': more than %d method and Content-Type pairs", c->service,
                          CLIENT_MAX_VARIANTS);
      rc = KITD_EINVAL;
    } else if ((rc = variant_new(c, method, ctype, NULL, &v)) == 0) {
      v->next = atomic_load_explicit(&c->extra, memory_order_relaxed);
      atomic_store_explicit(&c->extra, v, memory_order_release);
      c->nvariants++;
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (rc == 0) *out = v;
  return rc;
}

/* A method is an HTTP token; a Content-Type has no control bytes. */
static int token_ok(const char *s, int allow_space) {
  if (!*s || strlen(s) > 255) return 0;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch < 0x20 || ch >= 0x7f || (ch == ' ' && !allow_space)) return 0;
  }
  return 1;
}

/* ---- the client ---- */

void kitd__client_destroy(kitd_client *c) {
  kitd__client_async_free(c);
  variant_free(c->def);
  struct variant *v = atomic_load_explicit(&c->extra, memory_order_acquire);
  while (v) {
    struct variant *n = v->next;
    variant_free(v);
    v = n;
  }
  if (c->m) kitd__metrics_drop_watch(c->m, c);
  kitd_metrics_free(c->m);
  kitd_instancer_free(c->in);
  pthread_mutex_destroy(&c->mu);
  free((char *)c->http.scheme);
  free(c->path);
  free(c->service);
  free(c);
}

static void client_watch_release(void *obj) { kitd_instancer_free(obj); }

static int make_instancer(const kitd_client_opts *o, kitd_instancer **out) {
  if (o->source) { /* consul://, etcd://, dns+srv://, file:// (source.h) */
    kitd_source_opts so;
    kitd_source_opts_init(&so);
    so.consul = o->watch;
    return kitd_source_instancer_new(o->source, &so, o->logger, out);
  }
  if (o->instancer) {
    *out = kitd__instancer_ref(o->instancer);
    return 0;
  }
  if (o->watcher) return kitd__consul_watcher_instancer(o->watcher, o->service, o->watch, out);
  kitd_consul *own = NULL;
  const kitd_consul *cc = o->consul;
  if (!cc) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    int rc = kitd_consul_new(0, &ctx, &own);
    if (rc) {
      kitd_log(o->logger, KITD_LOG_ERROR, "client", "action=consul err=%s detail=\"%s\"",
               kitd_err_name(rc), kitd_ctx_detail(&ctx));
      return rc;
    }
    cc = own;
  }
  int rc = kitd_consul_instancer_new(cc, o->service, o->watch, o->logger, out);
  kitd_consul_free(own);
  return rc;
}

int kitd_consul_watcher_new(const kitd_consul *c, unsigned max_blocking, kitd_logger *lg,
                            kitd_consul_watcher **out) {
  if (!out) return KITD_EINVAL;
  kitd_consul *own = NULL;
  if (!c) {
    int rc = kitd_consul_new(0, NULL, &own);
    if (rc) return rc;
    c = own;
  }
  int rc = kitd__consul_watcher_new(c, max_blocking, lg, out);
  kitd_consul_free(own);
  return rc;
}

void kitd_consul_watcher_free(kitd_consul_watcher *w) { kitd__consul_watcher_free(w); }

int kitd_client_new(const kitd_client_opts *o, kitd_client **out) {
  const kitd_factory *custom = o ? o->factory : NULL;
  int rc = KITD_EINVAL;
  if (!o || !out || o->size != sizeof *o || !kitd_service_name_ok(o->service) ||
      (unsigned)o->codec > KITD_CODEC_CUSTOM || (unsigned)o->balancer > KITD_BALANCE_RANDOM ||
      (o->method && !token_ok(o->method, 0)) ||
      (o->content_type && !token_ok(o->content_type, 1)) || (o->path && o->path[0] != '/') ||
      (o->retry && o->retry->size != sizeof *o->retry))
    goto early;
  if (o->codec == KITD_CODEC_CUSTOM && !custom && (!o->http || !o->http->decode)) goto early;
  rc = KITD_ENOMEM;
  kitd_client *c = kitd__calloc(1, sizeof *c);
  if (!c) goto early;
  if (pthread_mutex_init(&c->mu, NULL)) {
    free(c);
    rc = KITD_EINTERNAL;
    goto early;
  }
  atomic_init(&c->refs, 1);
  atomic_init(&c->ready, 0);
  atomic_init(&c->extra, NULL);
  atomic_init(&c->as, NULL);
  c->codec = o->codec;
  c->balancer = o->balancer;
  c->balancer_flags = o->balancer_flags;
  c->ready_timeout_ms = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : 0;
  c->lg = o->logger;
  if (o->http) c->http = *o->http;
  else kitd_http_opts_init(&c->http);
  const char *path = o->path ? o->path : o->http && o->http->path ? o->http->path : "/";
  c->service = kitd__strdup(o->service);
  c->path = kitd__strdup(path);
  /* kitd_http copies its strings; keep only what a later variant needs */
  c->http.scheme = o->http && o->http->scheme ? kitd__strdup(o->http->scheme) : NULL;
  c->http.method = c->http.content_type = c->http.path = NULL;
  if (!c->service || !c->path || (o->http && o->http->scheme && !c->http.scheme)) {
    kitd__client_destroy(c);
    goto early;
  }
  if (o->retry) {
    c->retry = *o->retry;
  } else {
    kitd_retry_opts_init(&c->retry);
    c->retry.timeout_ms = 10000;
  }
  if (!c->retry.should_retry) c->retry.should_retry = default_should_retry;
  if (!c->retry.free_response && !custom) { /* an answer that came too late */
    if (c->codec == KITD_CODEC_RAW) c->retry.free_response = raw_ans_free;
    else if (c->codec == KITD_CODEC_JSON) c->retry.free_response = json_free;
  }

  if ((rc = make_instancer(o, &c->in))) {
    kitd__client_destroy(c);
    goto early;
  }
  if (o->metrics) {
    /* The watch is counted under the service name; a second client of the
     * same name in the registry leaves the first one's (EEXIST). */
    c->m = kitd_metrics_ref(o->metrics);
    rc = kitd__metrics_add_watch(c->m, c->service, c, kitd__instancer_ref(c->in),
                                 kitd__instancer_metrics_read, client_watch_release);
    if (rc && rc != KITD_EEXIST) {
      kitd__client_destroy(c);
      goto early;
    }
  }
  const char *method = o->method                    ? o->method
                       : o->http && o->http->method ? o->http->method
                       : c->codec == KITD_CODEC_CUSTOM && o->http && o->http->encode ? "POST"
                       : c->codec == KITD_CODEC_JSON                                 ? "POST"
                                                                                     : "GET";
  const char *ctype = o->content_type                    ? o->content_type
                      : o->http && o->http->content_type ? o->http->content_type
                                                         : "application/json";
  c->custom_factory = custom != NULL;
  rc = variant_new(c, method, ctype, custom, &c->def); /* takes the factory */
  custom = NULL;
  if (rc) {
    kitd__client_destroy(c);
    goto early;
  }
  *out = c;
  return 0;
early:
  if (custom && custom->release) custom->release(custom->arg);
  return rc;
}

void kitd__client_set_ready(kitd_client *c) {
  atomic_store_explicit(&c->ready, 1, memory_order_release);
}

static void wait_first(kitd_client *c, kitd_ctx *ctx) {
  int64_t t = c->ready_timeout_ms;
  int64_t left = kitd_ctx_remaining_ms(ctx);
  if (left >= 0 && left < t) t = left;
  /* Whatever the outcome, later calls do not wait: while the registry is
   * down they fail at once with the reason (kitd_endpointer_explain). */
  if (kitd_instancer_wait_ready(c->in, t) == 0 || t == c->ready_timeout_ms)
    kitd__client_set_ready(c);
}

int kitd__client_variant(kitd_client *c, const void *request, kitd_ctx *ctx, struct variant **out) {
  struct variant *v = c->def;
  const kitd_client_req *rq = request;
  if (c->codec == KITD_CODEC_RAW && rq && !c->custom_factory &&
      ((rq->method && strcmp(rq->method, v->method)) ||
       (rq->content_type && strcmp(rq->content_type, v->ctype)))) {
    const char *m = rq->method ? rq->method : v->method;
    const char *t = rq->content_type ? rq->content_type : v->ctype;
    if (!token_ok(m, 0) || !token_ok(t, 1)) {
      kitd_ctx_set_detail(ctx, "bad method or Content-Type");
      return KITD_EINVAL;
    }
    return variant_for(c, m, t, ctx, out);
  }
  *out = v;
  return 0;
}

void kitd__client_fill(kitd_client *c, kitd_ctx *ctx, void *out, void *response) {
  if (c->codec == KITD_CODEC_RAW && !c->custom_factory) {
    struct raw_ans *a = out;
    if (!response) {
      raw_ans_free(a);
      return;
    }
    kitd_client_resp *r = response;
    r->status = kitd_ctx_status(ctx);
    r->body = a->body;
    r->len = a->len;
    r->content_type = a->ctype;
  } else if (response) {
    *(void **)response = out;
  }
}

int kitd_client_call(kitd_client *c, kitd_ctx *ctx, const void *request, void *response) {
  if (!c || !ctx) return KITD_EINVAL;
  if (__builtin_expect(!atomic_load_explicit(&c->ready, memory_order_acquire), 0))
    wait_first(c, ctx);
  struct variant *v;
  int rc = kitd__client_variant(c, request, ctx, &v);
  if (rc) return rc;
  void *out = NULL;
  rc = kitd_endpoint_call(v->call, ctx, request, &out);
  if (rc) return rc;
  kitd__client_fill(c, ctx, out, response);
  return 0;
}

void kitd_client_resp_clear(kitd_client_resp *r) {
  if (!r) return;
  if (r->body) free(r->body - offsetof(struct raw_ans, body));
  free(r->content_type);
  memset(r, 0, sizeof *r);
}

int kitd_client_wait_ready(kitd_client *c, int64_t timeout_ms) {
  if (!c) return KITD_EINVAL;
  int rc = kitd_instancer_wait_ready(c->in, timeout_ms);
  if (rc == 0) atomic_store_explicit(&c->ready, 1, memory_order_release);
  return rc;
}

const char *kitd_client_service(const kitd_client *c) { return c ? c->service : ""; }

size_t kitd_client_count(kitd_client *c) { return c ? kitd_endpointer_count(c->def->ep) : 0; }

kitd_instancer *kitd_client_instancer(kitd_client *c) { return c ? c->in : NULL; }

kitd_client *kitd_client_ref(kitd_client *c) {
  if (c) atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
  return c;
}

void kitd_client_free(kitd_client *c) {
  if (!c) return;
  if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1) return;
  if (kitd__client_async_stop(c)) return; /* the loop frees it after its calls */
  kitd__client_destroy(c);
}
