/* SPDX-License-Identifier: MIT */
/* lorem-gateway: the HTTP face of go-kit's lorem-consul client.
 *
 *   POST /sd-lorem {"requestType": "sentence", "min": 5, "max": 20}
 *        -> 200 {"message": "..."} with X-Upstream: host:port
 *   GET  /health -> 200 {"status": true}, or 503 {"status": false, "reason": "..."}
 *                   while its pipeline has no instance
 *   GET  /metrics -> the pipeline's metrics, Prometheus text (kitd/metrics.h)
 *
 * One pipeline (instancer -> endpointer -> round robin -> retry) lives as
 * long as the process, so its round robin keeps its place between requests
 * and two instances take turns. A one-shot client builds a new balancer for
 * every run: with go-kit's round robin it would always hit the first
 * instance (ours starts at a random place, which spreads but does not
 * alternate). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kitd/kitd.h>

#include "lorem/callq.h"
#include "lorem/flags.h"
#include "lorem/gwreq.h"
#include "lorem/httpd.h"
#include "lorem/metrics.h"
#include "lorem/pipeline.h"
#include "lorem/route.h"

static lorem_pipeline *g_p;
static lorem_callq *g_q;      /* -mode async: the calls in flight */
static atomic_int g_stopping; /* -mode async: start no more calls */
static kitd_metrics *g_metrics;
static int64_t g_timeout_ms;

/* 502/504 with every attempt's error, so the caller can see what happened. */
static void reply_failure(lorem_http_req *c, int rc, kitd_ctx *ctx) {
  int status = rc == KITD_ETIMEDOUT ? 504 : 502;
  int all_timeouts = kitd_ctx_attempt(ctx, 0) != NULL;
  for (unsigned i = 0; kitd_ctx_attempt(ctx, i); i++)
    if (kitd_ctx_attempt(ctx, i)->err != KITD_ETIMEDOUT) all_timeouts = 0;
  if (all_timeouts) status = 504;
  /* an upstream 4xx that retry did not repeat: the request's own fault */
  int st = kitd_ctx_status(ctx);
  if (rc == KITD_EHTTP && st >= 400 && st < 500) status = st;
  char msg[KITD_CTX_DETAIL_MAX + 64];
  snprintf(msg, sizeof msg, "%s: %s", kitd_strerror(rc), kitd_ctx_detail(ctx));
  char body[8192], tmp[600];
  size_t n = 0;
  int m = lorem_json_string(tmp, sizeof tmp, msg);
  n += (size_t)snprintf(body + n, sizeof body - n, "{\"error\":%s,\"attempts\":[",
                        m > 0 ? tmp : "\"error\"");
  const kitd_attempt_error *a;
  for (unsigned i = 0; (a = kitd_ctx_attempt(ctx, i)) && n < sizeof body - 1024; i++) {
    char inst[300], det[300];
    if (lorem_json_string(inst, sizeof inst, a->instance) < 0) strcpy(inst, "\"\"");
    if (lorem_json_string(det, sizeof det, a->detail) < 0) strcpy(det, "\"\"");
    n += (size_t)snprintf(body + n, sizeof body - n,
                          "%s{\"instance\":%s,\"error\":\"%s\",\"status\":%d,\"detail\":%s}",
                          i ? "," : "", inst, kitd_err_name(a->err), a->status, det);
  }
  n += (size_t)snprintf(body + n, sizeof body - n, "]}");
  lorem_reply(c, status, body, n, NULL, NULL);
}

/* GET /health: on the event loop (it only reads the pipeline's state). */
static void serve_health(lorem_http_req *c) {
  if (strcmp(c->method, "GET") && strcmp(c->method, "HEAD")) {
    lorem_reply_error(c, 405, "method not allowed", "GET, HEAD");
    return;
  }
  static const char ok[] = "{\"status\":true}";
  if (lorem_pipeline_count(g_p) > 0) {
    lorem_reply(c, 200, ok, sizeof ok - 1, NULL, NULL);
    return;
  }
  /* Not ready: no instance to send to. Say why, as JSON. */
  char why[256], q[600], body[700];
  lorem_pipeline_explain(g_p, why, sizeof why);
  if (lorem_json_string(q, sizeof q, why) < 0) strcpy(q, "\"\"");
  int n = snprintf(body, sizeof body, "{\"status\":false,\"reason\":%s}", q);
  if (n < 0 || (size_t)n >= sizeof body) n = snprintf(body, sizeof body, "{\"status\":false}");
  lorem_reply(c, 503, body, (size_t)n, NULL, NULL);
}

/* GET /metrics: on the event loop. */
static void serve_metrics(lorem_http_req *c) {
  if (strcmp(c->method, "GET") && strcmp(c->method, "HEAD")) {
    lorem_reply_error(c, 405, "method not allowed", "GET, HEAD");
    return;
  }
  size_t len;
  char *text = lorem_metrics_text(g_metrics, &len);
  if (!text) {
    lorem_reply_error(c, 500, "no memory", NULL);
    return;
  }
  lorem_http_reply(c, 200, LOREM_METRICS_TYPE, text, len, NULL);
  free(text);
}

/* POST /sd-lorem, before the call: 0 and the request in *rq, or -1 after
 * answering. */
static int lorem_begin(lorem_http_req *c, lorem_request *rq) {
  if (strcmp(c->method, "POST")) {
    lorem_reply_error(c, 405, "method not allowed", "POST");
    return -1;
  }
  char err[256];
  if (lorem_gw_parse(c->body, c->body_len, rq, err, sizeof err)) {
    lorem_reply_error(c, 400, err, NULL);
    return -1;
  }
  if (lorem_pipeline_count(g_p) == 0) {
    lorem_reply_error(c, 503, "no endpoints available", NULL);
    return -1;
  }
  return 0;
}

/* A call's state: its ctx, with room for every attempt's error. */
struct call {
  lorem_callq_item item; /* -mode async: first, waiting for a slot */
  lorem_request rq;
  lorem_http_req *c;
  kitd_ctx ctx;
  kitd_attempt_error attempts[8]; /* for reply_failure's report */
  lorem_response *r;
};

static void call_init(struct call *k, lorem_http_req *c) {
  k->c = c;
  k->r = NULL;
  kitd_ctx_init(&k->ctx);
  kitd_ctx_set_attempt_log(&k->ctx, k->attempts, 8);
  kitd_ctx_set_timeout_ms(&k->ctx, g_timeout_ms);
}

/* Answer from the call's outcome, and free its response. */
static void lorem_answer(struct call *k, int rc) {
  lorem_http_req *c = k->c;
  lorem_response *r = k->r;
  if (rc == KITD_ENOENDPOINTS) {
    lorem_reply_error(c, 503, "no endpoints available", NULL);
    return;
  }
  if (rc) {
    reply_failure(c, rc, &k->ctx);
    return;
  }
  const char *upstream = r->upstream[0] ? r->upstream : kitd_ctx_instance(&k->ctx);
  /* the message is letters, spaces and punctuation, but escape anyway: it
   * came from another process */
  size_t cap = strlen(r->message) * 6 + 32;
  char *out = malloc(cap);
  if (out) {
    memcpy(out, "{\"message\":", 11);
    int m = lorem_json_string(out + 11, cap - 13, r->message);
    if (m >= 0) {
      size_t n = 11 + (size_t)m;
      out[n++] = '}';
      lorem_reply(c, 200, out, n, NULL, upstream);
    }
    free(out);
  }
  lorem_response_free(r);
}

/* POST /sd-lorem, -mode pool: on a worker thread (the upstream call
 * blocks), or inline on the loop while calls are fast. */
static void serve_lorem(lorem_http_req *c) {
  lorem_request rq;
  if (lorem_begin(c, &rq)) return;
  struct call k;
  call_init(&k, c);
  lorem_answer(&k, lorem_pipeline_call(g_p, &k.ctx, &rq, &k.r));
}

/* -mode async: the call's end (on libkitd's loop thread), or its failed
 * start: answer, free k, hand the connection back. */
static void async_end(lorem_callq_item *it, int rc) {
  struct call *k = (struct call *)it;
  lorem_http_req *c = k->c;
  lorem_answer(k, rc);
  free(k);
  lorem_http_resume(c);
}

static int async_start(lorem_callq_item *it) {
  struct call *k = (struct call *)it;
  if (atomic_load(&g_stopping)) return KITD_ESTOPPED;
  return lorem_pipeline_call_async(g_p, &k->ctx, &k->rq, &k->r, lorem_callq_call_done, k);
}

/* POST /sd-lorem, -mode async: on the loop, which goes on with other
 * connections while the call waits for a slot and runs; async_end()
 * answers. */
static void serve_lorem_async(lorem_http_req *c) {
  lorem_request rq;
  if (lorem_begin(c, &rq)) return;
  struct call *k = malloc(sizeof *k);
  if (!k) {
    lorem_reply_error(c, 503, "out of memory", NULL);
    return;
  }
  call_init(k, c);
  k->rq = rq;
  k->item.start = async_start;
  k->item.end = async_end;
  lorem_http_suspend(c); /* before the call: its end may come at once */
  lorem_callq_submit(g_q, &k->item);
}

static void serve_other(lorem_http_req *c) { lorem_reply_error(c, 404, "not found", NULL); }

/* The route table: add a route here (path, flags, handler). */
static const lorem_http_route routes[] = {
    {"/health", 0, serve_health},
    {"/metrics", 0, serve_metrics},
    {"/sd-lorem", LOREM_HTTP_BLOCKING, serve_lorem},
    {NULL, 0, serve_other},
};
static const lorem_http_route async_routes[] = {
    {"/health", 0, serve_health},
    {"/metrics", 0, serve_metrics},
    {"/sd-lorem", 0, serve_lorem_async},
    {NULL, 0, serve_other},
};

int main(int argc, char **argv) {
  const char *consul_addr = NULL, *consul_port = NULL, *static_list = NULL, *source = NULL;
  const char *listen_on = ":8080", *service = "lorem", *tag = "lorem", *mode = LOREM_MODE_DEFAULT;
  long attempts = 3;
  lorem_http_limits hl;
  lorem_http_limits_init(&hl);
  hl.name = "lorem-gateway";
  hl.max_body_bytes = LOREM_GWREQ_MAX;
  int64_t attempt_ms = 1000, timeout_ms = 3000;
  lorem_flag flags[32] = {
      {"consul.addr", FLAG_STR, &consul_addr,
       "Consul agent address (default: CONSUL_HTTP_ADDR, else 127.0.0.1)"},
      {"consul.port", FLAG_STR, &consul_port, "Consul agent port (default 8500)"},
      {"static", FLAG_STR, &static_list,
       "host:port,host:port: use these instances instead of Consul"},
      {"source", FLAG_STR, &source,
       "the registry as a source string: consul://HOST:PORT/SERVICE?tag=T, "
       "etcd://HOST:PORT/PREFIX, dns+srv://SERVER:PORT/NAME, file:///PATH (wins over -static and "
       "-consul.*)"},
      {"service", FLAG_STR, &service, "Consul service name (default lorem)"},
      {"tag", FLAG_STR, &tag, "Consul tag the instances must carry (default lorem; \"\" for none)"},
      {"listen", FLAG_STR, &listen_on,
       "host:port to listen on (default :8080; port 0: any free port)"},
      {"attempts", FLAG_INT, &attempts, "attempts per request, across instances (default 3)"},
      {"attempt.timeout", FLAG_DURATION, &attempt_ms, "deadline of one attempt (default 1s)"},
      {"timeout", FLAG_DURATION, &timeout_ms,
       "overall deadline of a request, across attempts (default 3s)"},
      {"max.body", FLAG_INT, &hl.max_body_bytes,
       "largest request body in bytes, past it 413 (default 4096)"},
  };
  int nf = 0;
  while (flags[nf].name) nf++;
  nf = lorem_http_flags(flags, nf, &hl, 1);
  long inflight = LOREM_INFLIGHT_DEFAULT;
  nf = lorem_mode_flags(flags, nf, &mode, &inflight);
  int pr = lorem_flags_parse(argc, argv, flags, nf, "lorem-gateway [flags]");
  if (pr) return pr > 0 ? 0 : 2;
  if (lorem_http_limits_check(&hl, "lorem-gateway")) return 2;
  int async = lorem_mode_async(mode, inflight, "lorem-gateway");
  if (async < 0) return 2;
  if (attempts < 1 || attempts > 16 || timeout_ms <= 0) {
    fprintf(stderr, "lorem-gateway: bad -attempts or -timeout\n");
    return 2;
  }
  g_timeout_ms = timeout_ms;
  lorem_block_signals();
  kitd_global_init();
  kitd_logger *lg = kitd_logger_stderr();
  if (kitd_metrics_new(&g_metrics)) return 1;
  struct lorem_pipeline_conf pc = {
      static_list, consul_addr, consul_port,    service, tag,    (unsigned)attempts,
      attempt_ms,  timeout_ms,  KITD_RR_GLOBAL, lg,      source, g_metrics,
      async};
  if (lorem_pipeline_new(&pc, &g_p)) return 1;
  if (async && !(g_q = lorem_callq_new(inflight))) return 1;
  int port = 0;
  int fd = lorem_listen(listen_on, &port);
  if (fd < 0) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-gateway", "action=listen addr=%s err=\"%s\"", listen_on,
             strerror(errno));
    lorem_pipeline_free(g_p);
    return 1;
  }
  lorem_http_server *d = NULL;
  char err[128];
  if (lorem_http_server_start(fd, &hl, async ? async_routes : routes,
                              sizeof routes / sizeof routes[0], NULL, &d, err, sizeof err)) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-gateway", "action=listen err=\"%s\"", err);
    lorem_pipeline_free(g_p);
    return 1;
  }
  kitd_log(lg, KITD_LOG_INFO, "lorem-gateway",
           "action=listen addr=%s port=%d discovery=%s attempts=%ld attempt_timeout_ms=%lld "
           "timeout_ms=%lld mode=%s",
           listen_on, port, static_list ? "static" : "consul", attempts, (long long)attempt_ms,
           (long long)timeout_ms, async ? "async" : "pool");
  int sig = lorem_wait_signal(-1);
  kitd_log(lg, KITD_LOG_INFO, "lorem-gateway", "action=stop signal=%s",
           sig == 2 ? "SIGINT" : "SIGTERM");
  /* no handler runs after the stop; async calls still in flight end when
   * the pipeline is freed, and give their connections back before the free */
  lorem_http_server_stop(d);
  atomic_store(&g_stopping, 1); /* the waiting calls end with KITD_ESTOPPED */
  lorem_pipeline_free(g_p);
  lorem_http_server_wait_suspended(d);
  lorem_http_server_free(d);
  lorem_callq_free(g_q);
  close(fd);
  kitd_metrics_free(g_metrics);
  kitd_global_cleanup();
  return 0;
}
