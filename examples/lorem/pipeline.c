/* SPDX-License-Identifier: MIT */
/* The lorem client pipeline (see pipeline.h). */
#include "lorem/pipeline.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kitd/source.h>

#if __has_include(<kitd/consul.h>)
#include <kitd/consul.h>
#define LOREM_HAVE_CONSUL 1
#endif

struct lorem_pipeline {
  kitd_instancer *in;
  kitd_http *http;
  kitd_endpointer *ep;
  kitd_balancer *lb;
  kitd_endpoint *call;
  kitd_client *client; /* async: the whole pipeline (instead of ep, lb, call) */
};

void lorem_response_free(lorem_response *r) {
  if (!r) return;
  free(r->message);
  free(r);
}

/* ---- transport callbacks: go-kit's encodeRequest / decodeResponse ---- */

static int path_fn(void *arg, const void *request, kitd_http_buf *path, kitd_ctx *ctx) {
  (void)arg, (void)ctx;
  const lorem_request *rq = request;
  return kitd_http_buf_printf(path, "/lorem/%s/%d/%d", lorem_type_name(rq->type), rq->min, rq->max);
}

static int decode(void *arg, int status, const char *body, size_t len, void **response,
                  kitd_ctx *ctx) {
  (void)arg, (void)status;
  json_error_t je;
  json_t *root = json_loadb(body, len, 0, &je);
  const char *msg = json_string_value(json_object_get(root, "message"));
  if (!msg) {
    kitd_ctx_set_detail(ctx, "no \"message\" in the answer: %s", root ? "missing" : je.text);
    json_decref(root);
    return KITD_EPROTO;
  }
  lorem_response *r = malloc(sizeof *r);
  if (r) r->message = strdup(msg);
  json_decref(root);
  if (!r || !r->message) {
    free(r);
    return KITD_ENOMEM;
  }
  r->upstream[0] = '\0';
  *response = r;
  return 0;
}

/* ---- a thin endpoint around the HTTP one that stamps the instance ---- */

struct stamped {
  kitd_endpoint *inner;
  char instance[KITD_INSTANCE_MAX];
};

static int stamped_call(void *state, kitd_ctx *ctx, const void *request, void **response) {
  struct stamped *s = state;
  void *resp = NULL;
  int rc = kitd_endpoint_call(s->inner, ctx, request, &resp);
  if (rc == 0) {
    lorem_response *r = resp;
    memcpy(r->upstream, s->instance, sizeof r->upstream);
    *response = r;
  }
  return rc;
}

static void stamped_close(void *state) {
  struct stamped *s = state;
  kitd_endpoint_unref(s->inner);
  free(s);
}

static int factory(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *instance = kitd_instance_address(rec_);
  struct stamped *s = calloc(1, sizeof *s);
  if (!s) return KITD_ENOMEM;
  snprintf(s->instance, sizeof s->instance, "%s", instance);
  int rc = kitd_http_endpoint_new(arg, instance, &s->inner);
  if (rc) {
    free(s);
    return rc;
  }
  return kitd_endpoint_new(stamped_call, stamped_close, s, out); /* takes s */
}

/* Retry what another instance might answer; a 4xx is our own fault. */
static int should_retry(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)arg, (void)attempt;
  if (*err == KITD_ECANCELED || *err == KITD_EINVAL || *err == KITD_ENOMEM) return 0;
  if (*err == KITD_EHTTP) return kitd_ctx_status(ctx) >= 500;
  return 1;
}

static int static_instancer(const char *list, kitd_instancer **out) {
  char *copy = strdup(list);
  if (!copy) return KITD_ENOMEM;
  const char *v[64];
  size_t n = 0;
  for (char *save, *t = strtok_r(copy, ", ", &save); t && n < 64; t = strtok_r(NULL, ", ", &save))
    v[n++] = t;
  int rc = kitd_static_instancer_new(v, n, out);
  free(copy);
  return rc;
}

int lorem_pipeline_new(const struct lorem_pipeline_conf *c, lorem_pipeline **out) {
  lorem_pipeline *p = calloc(1, sizeof *p);
  if (!p) return KITD_ENOMEM;
  int rc;
  const char *what = "instancer";
  if (c->source) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_source_opts so;
    kitd_source_opts_init(&so);
    so.ctx = &ctx;
    rc = kitd_source_instancer_new(c->source, &so, c->lg, &p->in);
    what = "source";
  } else if (c->static_list) {
    rc = static_instancer(c->static_list, &p->in);
  } else {
#ifdef LOREM_HAVE_CONSUL
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_consul *cc = NULL;
    rc = kitd_consul_new(0, &ctx, &cc);
    if (rc == 0 && (c->consul_addr || c->consul_port)) {
      char addr[300];
      snprintf(addr, sizeof addr, "%s:%s", c->consul_addr ? c->consul_addr : "127.0.0.1",
               c->consul_port ? c->consul_port : "8500");
      rc = kitd_consul_set_address(cc, addr, &ctx);
    }
    if (rc == 0) {
      kitd_consul_instancer_opts o;
      kitd_consul_instancer_opts_init(&o);
      const char *tag = c->tag ? c->tag : "lorem";
      if (*tag) o.tags = &tag, o.ntags = 1;
      rc = kitd_consul_instancer_new(cc, c->service ? c->service : "lorem", &o, c->lg, &p->in);
    }
    if (rc)
      kitd_log(c->lg, KITD_LOG_ERROR, "lorem", "action=consul err=%s detail=\"%s\"",
               kitd_err_name(rc), kitd_ctx_detail(&ctx));
    kitd_consul_free(cc);
#else
    rc = KITD_ECONFIG;
#endif
  }
  if (rc) goto fail;
  kitd_http_opts ho;
  kitd_http_opts_init(&ho);
  ho.method = "POST";
  ho.path_fn = path_fn;
  ho.decode = decode;
  const char *name = c->service ? c->service : "lorem";
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.logger = c->lg; /* KITD_LOG_LEVEL=debug: each pick explained */
  ro.metrics = c->metrics;
  ro.metrics_name = c->metrics ? name : NULL;
  ro.max_attempts = c->attempts ? c->attempts : 3;
  ro.attempt_timeout_ms = c->attempt_timeout_ms ? c->attempt_timeout_ms : 1000;
  ro.timeout_ms = c->timeout_ms ? c->timeout_ms : 3000;
  ro.should_retry = should_retry;
  if (c->async) {
    /* the same stages, owned by a client: its calls need no thread */
    kitd_client_opts co;
    kitd_client_opts_init(&co);
    co.service = name;
    co.instancer = p->in;
    co.codec = KITD_CODEC_CUSTOM;
    co.http = &ho;
    co.balancer = KITD_BALANCE_ROUND_ROBIN;
    co.balancer_flags = c->rr_flags;
    co.retry = &ro;
    co.logger = c->lg;
    co.metrics = c->metrics;
    what = "client";
    if ((rc = kitd_client_new(&co, &p->client))) goto fail;
    *out = p;
    return 0;
  }
  what = "http";
  if ((rc = kitd_http_new(&ho, &p->http))) goto fail;
  kitd_endpointer_opts eo;
  kitd_endpointer_opts_init(&eo);
  eo.logger = c->lg;
  what = "endpointer";
  /* kitd_http_factory() carries a reference on the client for the
   * endpointer; our factory wraps its endpoints, so it keeps the argument
   * and the release function and replaces the function. */
  kitd_factory hf = kitd_http_factory(p->http);
  hf.fn = factory;
  if ((rc = kitd_endpointer_new(p->in, &hf, &eo, &p->ep))) goto fail;
  what = "balancer";
  if ((rc = kitd_balancer_round_robin_new(p->ep, c->rr_flags, &p->lb))) goto fail;
  what = "metrics";
  if (c->metrics && ((rc = kitd_balancer_set_metrics(p->lb, c->metrics, name)) ||
                     (rc = kitd_metrics_watch(c->metrics, p->in, name))))
    goto fail;
  what = "retry";
  if ((rc = kitd_retry_new(p->lb, &ro, &p->call))) goto fail;
  *out = p;
  return 0;
fail:
  kitd_log(c->lg, KITD_LOG_ERROR, "lorem", "action=pipeline stage=%s err=%s", what,
           kitd_err_name(rc));
  lorem_pipeline_free(p);
  return rc;
}

size_t lorem_pipeline_count(lorem_pipeline *p) {
  return p->client ? kitd_client_count(p->client) : kitd_endpointer_count(p->ep);
}

const char *lorem_pipeline_explain(lorem_pipeline *p, char *buf, size_t cap) {
  if (!p->client) return kitd_endpointer_explain(p->ep, buf, cap);
  kitd_instance **set = NULL;
  size_t n = 0;
  int rc = kitd_instancer_state(p->in, &set, &n);
  kitd_instance_list_free(set, n);
  const char *what = kitd_instancer_describe(p->in);
  if (rc == KITD_ENOTFOUND) snprintf(buf, cap, "no answer yet from the registry for %s", what);
  else if (rc) snprintf(buf, cap, "%s: %s", what, kitd_strerror(rc));
  else snprintf(buf, cap, "%zu %s", n, what);
  return buf;
}

size_t lorem_pipeline_wait(lorem_pipeline *p, int64_t timeout_ms) {
  int64_t end = kitd_now_ns() + timeout_ms * 1000000;
  for (;;) {
    size_t n = kitd_endpointer_count(p->ep);
    if (n || kitd_now_ns() >= end) return n;
    kitd_ctx_sleep_ns(NULL, 10 * 1000000);
  }
}

int lorem_pipeline_call(lorem_pipeline *p, kitd_ctx *ctx, const lorem_request *rq,
                        lorem_response **out) {
  void *resp = NULL;
  int rc = kitd_endpoint_call(p->call, ctx, rq, &resp);
  if (rc == 0) *out = resp;
  return rc;
}

int lorem_pipeline_call_async(lorem_pipeline *p, kitd_ctx *ctx, const lorem_request *rq,
                              lorem_response **out, kitd_client_done_fn done, void *arg) {
  if (!p->client) return KITD_EINVAL;
  return kitd_client_call_async(p->client, ctx, rq, out, done, arg);
}

void lorem_pipeline_free(lorem_pipeline *p) {
  if (!p) return;
  kitd_client_free(p->client);
  kitd_endpoint_unref(p->call);
  kitd_balancer_free(p->lb);
  kitd_endpointer_free(p->ep);
  kitd_http_free(p->http); /* endpoints still alive keep it */
  kitd_instancer_free(p->in);
  free(p);
}
