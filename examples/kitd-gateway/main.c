/* SPDX-License-Identifier: MIT */
/* kitd-gateway: call any service by name over HTTP.
 *
 *   METHOD /<service>/<rest>  ->  METHOD /<rest> on an instance of <service>
 *
 * The instance is found through a kitd_directory: the first request for a
 * service makes its client (and its Consul watch), later ones reuse it, and
 * a service nobody asks for is forgotten after -idle. The method, the body,
 * the query, the request's and the answer's Content-Type and the answer's
 * status pass through. Errors are JSON {"error": "..."}:
 *   400  a malformed path (no service, a name Consul refuses, bytes that
 *        cannot go into a request line)
 *   404  the registry answered and the service has no (passing) instance
 *   503  every instance failed (with each attempt), or the registry is
 *        unreachable
 *   413  a body over -max.body */
#include <errno.h>
#include <stdatomic.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kitd/kitd.h>

#include "lorem/callq.h"
#include "lorem/flags.h"
#include "lorem/httpd.h"

static kitd_directory *g_dir;
static lorem_callq *g_q;      /* -mode async: the calls in flight */
static atomic_int g_stopping; /* -mode async: start no more calls */
/* -mode async: a reference on the first client that made a call, dropped
 * by main at exit. The clients' last references are otherwise dropped in
 * the calls' done callbacks, on libkitd's loop thread, and a loop whose
 * last client went from its own thread was seen to stay in epoll_wait, so
 * that the exit hung joining it. */
static _Atomic(kitd_client *) g_held;
static int64_t g_timeout_ms;

static void reply(lorem_http_req *c, int status, const char *body, size_t len, const char *ctype) {
  lorem_http_reply(c, status, ctype, body, len, NULL);
}

/* {"error": msg, "service": s, "attempts": [...]} */
static void reply_error(lorem_http_req *c, int status, const char *msg, const char *service,
                        const kitd_ctx *ctx) {
  json_t *o = json_object();
  json_object_set_new(o, "error", json_string(msg));
  if (service) json_object_set_new(o, "service", json_string(service));
  if (ctx && kitd_ctx_attempt(ctx, 0)) {
    json_t *a = json_array();
    const kitd_attempt_error *e;
    for (unsigned i = 0; (e = kitd_ctx_attempt(ctx, i)); i++) {
      json_array_append_new(a, json_pack("{s:s,s:s,s:i,s:s}", "instance", e->instance, "error",
                                         kitd_err_name(e->err), "status", e->status, "detail",
                                         e->detail));
    }
    json_object_set_new(o, "attempts", a);
  }
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) return; /* the server answers 500 */
  reply(c, status, s, strlen(s), "application/json");
  free(s);
}

/* "/users/v1/x?y=1" -> service "users" (written into `service`, which has
 * room for the URI) and rest "/v1/x?y=1". 0, or -1 for a malformed path. */
static int split(const char *uri, char *service, const char **rest) {
  if (uri[0] != '/') return -1;
  const char *s = uri + 1;
  size_t n = strcspn(s, "/?");
  memcpy(service, s, n);
  service[n] = '\0';
  *rest = s + n;
  for (const char *p = uri; *p; p++) /* no byte that could split a request line */
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 127) return -1;
  return kitd_service_name_ok(service) ? 0 : -1;
}

/* Has the registry answered for `service`, its last watch succeeding? */
static int registry_answered(const char *service) {
  kitd_client *cl = NULL;
  if (kitd_directory_get(g_dir, service, &cl)) return 0;
  kitd_instance **set = NULL;
  size_t n = 0;
  int ok = kitd_client_wait_ready(cl, 0) == 0 &&
           kitd_instancer_state(kitd_client_instancer(cl), &set, &n) == 0;
  kitd_instance_list_free(set, n);
  kitd_client_free(cl);
  return ok;
}

/* Is the client of the URI's service made and its registry answered, so
 * that a call does not wait for a first answer? */
static int service_ready(const char *uri) {
  char name[256];
  size_t n = strcspn(uri + 1, "/?");
  if (uri[0] != '/' || n == 0 || n >= sizeof name) return 0;
  memcpy(name, uri + 1, n);
  name[n] = '\0';
  kitd_client *cl = NULL;
  if (!kitd_service_name_ok(name) || kitd_directory_get(g_dir, name, &cl)) return 0;
  int ok = kitd_client_wait_ready(cl, 0) == 0;
  kitd_client_free(cl);
  return ok;
}

/* One forwarded request: what the call reads and fills. */
struct fwd {
  lorem_callq_item item; /* -mode async: first, waiting for a slot */
  lorem_http_req *c;
  char *service; /* room for the URI */
  char *path;
  kitd_client_req rq;
  kitd_ctx ctx;
  kitd_attempt_error attempts[8]; /* every attempt, for a 503's body */
  kitd_client_resp resp;
  kitd_client *cl; /* -mode async: the service's client, held for the call */
};

/* Fill f from the request: 0, or -1 after answering (f then holds
 * nothing). */
static int fwd_begin(struct fwd *f, lorem_http_req *c) {
  memset(f, 0, sizeof *f);
  f->c = c;
  f->service = malloc(strlen(c->uri) + 1);
  if (!f->service) return -1; /* the server answers 500 */
  const char *rest;
  if (split(c->uri, f->service, &rest)) {
    free(f->service);
    reply_error(c, 400, "malformed path: want /<service>/<path>", NULL, NULL);
    return -1;
  }
  /* "/users" and "/users?x" go to "/" and "/?x" */
  if (asprintf(&f->path, "%s%s", rest[0] == '/' ? "" : "/", rest) < 0) {
    free(f->service);
    return -1;
  }
  const char *ct = lorem_http_header(c, "Content-Type");
  f->rq = (kitd_client_req){.method = c->method,
                            .path = f->path,
                            .body = c->body,
                            .len = c->body_len,
                            .content_type = ct            ? ct
                                            : c->body_len ? "application/octet-stream"
                                                          : NULL};
  kitd_ctx_init(&f->ctx);
  kitd_ctx_set_timeout_ms(&f->ctx, g_timeout_ms);
  kitd_ctx_set_attempt_log(&f->ctx, f->attempts, 8);
  return 0;
}

/* Answer from the call's outcome and free what f holds. */
static void fwd_finish(struct fwd *f, int rc) {
  lorem_http_req *c = f->c;
  if (rc == 0) {
    reply(c, f->resp.status, f->resp.body, f->resp.len, f->resp.content_type);
    kitd_client_resp_clear(&f->resp);
  } else if (rc == KITD_EINVAL) {
    reply_error(c, 400, kitd_ctx_detail(&f->ctx), f->service, NULL);
  } else if (rc == KITD_ENOENDPOINTS) {
    /* 404 only when the registry answered: an outage is not "no such service" */
    int known = registry_answered(f->service);
    char msg[KITD_CTX_DETAIL_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", known ? "no such service" : "registry unavailable",
             kitd_ctx_detail(&f->ctx));
    reply_error(c, known ? 404 : 503, msg, f->service, NULL);
  } else {
    char msg[KITD_CTX_DETAIL_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", kitd_strerror(rc), kitd_ctx_detail(&f->ctx));
    reply_error(c, 503, msg, f->service, &f->ctx);
  }
  kitd_client_free(f->cl);
  free(f->path);
  free(f->service);
}

/* Every path but /health, -mode pool: on a worker thread (the upstream
 * call blocks), or inline on the loop while calls are fast. */
static void forward(lorem_http_req *c) {
  if (!service_ready(c->uri) && lorem_http_to_pool(c)) return; /* it would wait: not on the loop */
  struct fwd f;
  if (fwd_begin(&f, c)) return;
  fwd_finish(&f, kitd_directory_call(g_dir, f.service, &f.ctx, &f.rq, &f.resp));
}

/* -mode async: the call's end (on libkitd's loop thread), or its failed
 * start: answer, free f, hand the connection back. */
static void async_end(lorem_callq_item *it, int rc) {
  struct fwd *f = (struct fwd *)it;
  lorem_http_req *c = f->c;
  fwd_finish(f, rc);
  free(f);
  lorem_http_resume(c);
}

static int async_start(lorem_callq_item *it) {
  struct fwd *f = (struct fwd *)it;
  if (atomic_load(&g_stopping)) return KITD_ESTOPPED;
  int rc = kitd_directory_get(g_dir, f->service, &f->cl);
  if (rc == KITD_EINVAL) kitd_ctx_set_detail(&f->ctx, "not a service name Consul accepts");
  if (rc == 0 && !atomic_load(&g_held)) {
    kitd_client *none = NULL, *r = kitd_client_ref(f->cl);
    if (!atomic_compare_exchange_strong(&g_held, &none, r)) kitd_client_free(r); /* not the last */
  }
  if (rc == 0)
    rc = kitd_client_call_async(f->cl, &f->ctx, &f->rq, &f->resp, lorem_callq_call_done, f);
  return rc;
}

/* Every path but /health, -mode async: on the loop, which goes on with
 * other connections while the call waits for a slot and runs;
 * async_end() answers. */
static void forward_async(lorem_http_req *c) {
  struct fwd *f = malloc(sizeof *f);
  if (!f) return;
  if (fwd_begin(f, c)) {
    free(f);
    return;
  }
  f->item.start = async_start;
  f->item.end = async_end;
  lorem_http_suspend(c); /* before the call: its end may come at once */
  lorem_callq_submit(g_q, &f->item);
}

/* GET /health: the gateway's own, on the event loop. */
static void serve_health(lorem_http_req *c) {
  static const char ok[] = "{\"status\":true}";
  reply(c, 200, ok, sizeof ok - 1, "application/json");
}

/* The route table: add a route here (path, flags, handler). A path not
 * listed is a service's. */
static const lorem_http_route routes[] = {
    {"/health", 0, serve_health},
    {NULL, LOREM_HTTP_BLOCKING, forward},
};
static const lorem_http_route async_routes[] = {
    {"/health", 0, serve_health},
    {NULL, 0, forward_async},
};

int main(int argc, char **argv) {
  const char *consul_addr = getenv("CONSUL_HTTP_ADDR"), *listen_on = ":8080";
  const char *mode = LOREM_MODE_DEFAULT;
  int64_t timeout_ms = 10000, idle_ms = 300000;
  long max_clients = 100;
  lorem_http_limits hl;
  lorem_http_limits_init(&hl);
  hl.name = "kitd-gateway";
  hl.max_body_bytes = 16 << 20;
  lorem_flag flags[32] = {
      {"listen", FLAG_STR, &listen_on,
       "host:port to listen on (default :8080; port 0: any free port)"},
      {"consul.addr", FLAG_STR, &consul_addr,
       "Consul agent host:port (default CONSUL_HTTP_ADDR, else 127.0.0.1:8500)"},
      {"timeout", FLAG_DURATION, &timeout_ms,
       "deadline of one request, across attempts (default 10s)"},
      {"idle", FLAG_DURATION, &idle_ms, "forget a service unused this long (default 5m)"},
      {"max.clients", FLAG_INT, &max_clients, "services watched at most at once (default 100)"},
      {"max.body", FLAG_INT, &hl.max_body_bytes,
       "largest request body in bytes, past it 413 (default 16 MiB)"},
  };
  int nf = 0;
  while (flags[nf].name) nf++;
  nf = lorem_http_flags(flags, nf, &hl, 1);
  long inflight = LOREM_INFLIGHT_DEFAULT;
  nf = lorem_mode_flags(flags, nf, &mode, &inflight);
  int pr = lorem_flags_parse(argc, argv, flags, nf, "kitd-gateway [flags]");
  if (pr) return pr > 0 ? 0 : 2;
  if (lorem_http_limits_check(&hl, "kitd-gateway")) return 2;
  int async = lorem_mode_async(mode, inflight, "kitd-gateway");
  if (async < 0) return 2;
  if (timeout_ms <= 0 || idle_ms <= 0 || max_clients < 1) {
    fprintf(stderr, "kitd-gateway: -timeout, -idle and -max.clients must be positive\n");
    return 2;
  }
  g_timeout_ms = timeout_ms;
  lorem_block_signals();
  kitd_global_init();
  kitd_logger *lg = kitd_logger_stderr();

  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *consul = NULL;
  int rc = kitd_consul_new(0, &ctx, &consul);
  if (rc == 0 && consul_addr && *consul_addr)
    rc = kitd_consul_set_address(consul, consul_addr, &ctx);
  kitd_directory_opts o;
  kitd_directory_opts_init(&o);
  o.consul = consul;
  o.idle_ms = idle_ms;
  o.max_clients = (unsigned)max_clients;
  o.logger = lg;
  if (rc == 0) rc = kitd_directory_new(&o, &g_dir);
  if (rc == 0 && async && !(g_q = lorem_callq_new(inflight))) rc = KITD_ENOMEM;
  kitd_consul_free(consul); /* the directory keeps a copy */
  if (rc) {
    kitd_log(lg, KITD_LOG_ERROR, "kitd-gateway", "action=start err=%s detail=\"%s\"",
             kitd_err_name(rc), kitd_ctx_detail(&ctx));
    return 1;
  }
  int port = 0;
  int fd = lorem_listen(listen_on, &port);
  lorem_http_server *d = NULL;
  char err[128];
  if (fd < 0) snprintf(err, sizeof err, "%s", strerror(errno));
  if (fd < 0 ||
      lorem_http_server_start(fd, &hl, async ? async_routes : routes,
                              sizeof routes / sizeof routes[0], NULL, &d, err, sizeof err)) {
    kitd_log(lg, KITD_LOG_ERROR, "kitd-gateway", "action=listen addr=%s err=\"%s\"", listen_on,
             err);
    if (fd >= 0) close(fd);
    kitd_directory_free(g_dir);
    return 1;
  }
  kitd_log(lg, KITD_LOG_INFO, "kitd-gateway",
           "action=listen addr=%s port=%d max_clients=%ld mode=%s", listen_on, port, max_clients,
           async ? "async" : "pool");
  int sig = lorem_wait_signal(-1);
  kitd_log(lg, KITD_LOG_INFO, "kitd-gateway", "action=stop signal=%s",
           sig == 2 ? "SIGINT" : "SIGTERM");
  /* no handler runs after the stop; the async calls still in flight hold
   * their clients: wait for their ends before the connections go */
  lorem_http_server_stop(d);
  atomic_store(&g_stopping, 1); /* the waiting calls end with KITD_ESTOPPED */
  kitd_directory_free(g_dir);
  lorem_http_server_wait_suspended(d);
  kitd_client_free(atomic_load(&g_held));
  lorem_http_server_free(d);
  lorem_callq_free(g_q);
  close(fd);
  kitd_global_cleanup();
  return 0;
}
