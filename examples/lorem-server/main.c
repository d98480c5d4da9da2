/* SPDX-License-Identifier: MIT */
/* lorem-server: the lorem service of go-kit's lorem-consul example, on
 * the examples' own HTTP/1.1 server (lorem/http_server.h), registering
 * itself in Consul.
 *
 *   POST /lorem/{word|sentence|paragraph}/{min}/{max} -> {"message": "..."}
 *   GET  /health                                      -> {"status": true}
 *   GET  /metrics                  -> Prometheus text (kitd/metrics.h; the
 *                                     server builds no client, so the
 *                                     registry it serves is empty so far)
 *
 * It binds first, then registers (retrying in the background until the
 * agent answers). On SIGINT/SIGTERM it drains: /health answers 503, it
 * deregisters, keeps serving for -drain.grace (2 s) while watchers see it
 * go, stops accepting, waits for the requests in flight (-drain.timeout,
 * 10 s) and exits 0. A second signal exits at once, with status 1. */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kitd/kitd.h>

#include "lorem/flags.h"
#include "lorem/httpd.h"
#include "lorem/lorem.h"
#include "lorem/metrics.h"
#include "lorem/route.h"
#include "register.h"

static uint64_t g_seed;
static atomic_uint g_thread_no;
static kitd_metrics *g_metrics;
/* Draining: /health fails so checks and gateways stop sending. */
static atomic_int g_draining;

/* One generator per server thread: reentrant, no lock on the request path. */
static _Thread_local lorem_rng t_rng;
static _Thread_local int t_seeded;
static _Thread_local char t_out[LOREM_OUT_MAX + 32];

/* Every route is fast, so every request runs on its event loop. The routes
 * themselves are lorem_route_parse()'s (route.c); the body, if any, is
 * dropped (none of them takes one). */
static void serve(lorem_http_req *rq) {
  lorem_route rt;
  lorem_route_parse(rq->method, rq->path, rq->path_len, &rt);
  switch (rt.kind) {
  case LOREM_ROUTE_HEALTH:
    if (atomic_load(&g_draining)) {
      static const char draining[] = "{\"status\":false,\"reason\":\"draining\"}";
      lorem_reply(rq, 503, draining, sizeof draining - 1, NULL, NULL);
      return;
    }
    static const char health[] = "{\"status\":true}";
    lorem_reply(rq, 200, health, sizeof health - 1, NULL, NULL);
    return;
  case LOREM_ROUTE_METRICS: {
    size_t len;
    char *text = lorem_metrics_text(g_metrics, &len);
    if (!text) {
      lorem_reply_error(rq, 500, "no memory", NULL);
      return;
    }
    lorem_http_reply(rq, 200, LOREM_METRICS_TYPE, text, len, NULL);
    free(text);
    return;
  }
  case LOREM_ROUTE_ERROR: lorem_reply_error(rq, rt.status, rt.error, rt.allow); return;
  case LOREM_ROUTE_LOREM: break;
  }
  if (!t_seeded) {
    lorem_seed(&t_rng, g_seed + 0x9e3779b97f4a7c15ULL * atomic_fetch_add(&g_thread_no, 1));
    t_seeded = 1;
  }
  static const char head[] = "{\"message\":\"";
  memcpy(t_out, head, sizeof head - 1);
  /* the text is letters, spaces, commas and dots: nothing to escape */
  int n = lorem_generate(&t_rng, rt.type, rt.min, rt.max, t_out + sizeof head - 1, LOREM_OUT_MAX);
  if (n < 0) {
    lorem_reply_error(rq, 500, "generator failed", NULL);
    return;
  }
  size_t len = sizeof head - 1 + (size_t)n;
  memcpy(t_out + len, "\"}", 2);
  len += 2;
  lorem_reply(rq, 200, t_out, len, NULL, NULL);
}

/* The route table: add a route here (path, flags, handler). */
static const lorem_http_route routes[] = {
    {NULL, 0, serve}, /* every path: lorem_route_parse() sorts them */
};

/* A graceful stop: fail /health, deregister, give watchers `grace` ms to
 * see it while still serving, stop accepting, then wait (up to `timeout`
 * ms) for the requests in flight. A second signal ends it at once: 1. */
static int drain(lorem_http_server *d, int *fd, lorem_reg *reg, int64_t grace, int64_t timeout,
                 kitd_logger *lg) {
  atomic_store(&g_draining, 1);
  lorem_reg_stop(reg);
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=drain step=deregistered grace_ms=%lld",
           (long long)grace);
  if (grace > 0 && lorem_wait_signal((long)grace) != 0) {
    kitd_log(lg, KITD_LOG_WARN, "lorem-server", "action=drain step=abort msg=\"second signal\"");
    return 1;
  }
  /* no new connections; idle kept-alive ones close, the others after their
   * answer: the open connections are the requests still in flight */
  lorem_http_server_quiesce(d);
  close(*fd); /* new connections are refused, not left in the backlog */
  *fd = -1;
  int64_t t0 = kitd_now_ns();
  long left;
  while ((left = lorem_http_server_conns(d)) > 0 && kitd_now_ns() - t0 < timeout * 1000000) {
    if (lorem_wait_signal(10) != 0) {
      kitd_log(lg, KITD_LOG_WARN, "lorem-server", "action=drain step=abort inflight=%ld", left);
      return 1;
    }
  }
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=drain step=done inflight=%ld", left);
  return 0;
}

int main(int argc, char **argv) {
  const char *consul_addr = NULL, *consul_port = NULL, *adv_addr = "127.0.0.1", *adv_port = NULL;
  const char *listen_on = NULL, *check = "http", *service = "lorem";
  long seed = -1;
  lorem_http_limits hl;
  lorem_http_limits_init(&hl);
  hl.name = "lorem-server";
  hl.max_body_bytes = LOREM_BODY_MAX;
  int no_register = 0;
  int64_t interval = 10000, timeout = 1000, ttl = 15000, dereg = 0;
  int64_t grace = 2000, drain_timeout = 10000;
  lorem_flag flags[32] = {
      {"consul.addr", FLAG_STR, &consul_addr,
       "Consul agent address (default: CONSUL_HTTP_ADDR, else 127.0.0.1)"},
      {"consul.port", FLAG_STR, &consul_port, "Consul agent port (default 8500)"},
      {"advertise.addr", FLAG_STR, &adv_addr, "address registered in Consul (default 127.0.0.1)"},
      {"advertise.port", FLAG_STR, &adv_port,
       "port registered in Consul (default: the bound port)"},
      {"listen", FLAG_STR, &listen_on,
       "host:port to listen on (default :<advertise.port>, else :7002; port 0: any free port)"},
      {"check", FLAG_STR, &check, "Consul check kind: http (GET /health) or ttl (default http)"},
      {"check.interval", FLAG_DURATION, &interval, "HTTP check interval (default 10s)"},
      {"check.timeout", FLAG_DURATION, &timeout, "HTTP check timeout (default 1s)"},
      {"check.ttl", FLAG_DURATION, &ttl, "TTL check TTL, heartbeats every third (default 15s)"},
      {"check.deregister", FLAG_DURATION, &dereg,
       "DeregisterCriticalServiceAfter (default: never)"},
      {"seed", FLAG_INT, &seed, "generator seed (default: from the clock)"},
      {"no-register", FLAG_BOOL, &no_register, "do not register in Consul"},
      {"service", FLAG_STR, &service, "service name registered in Consul (default lorem)"},
      {"drain.grace", FLAG_DURATION, &grace,
       "on SIGTERM, time for watchers to see the deregistration before the listener closes "
       "(default 2s)"},
      {"drain.timeout", FLAG_DURATION, &drain_timeout,
       "on SIGTERM, longest wait for requests in flight (default 10s)"},
      {"max.body", FLAG_INT, &hl.max_body_bytes,
       "largest request body in bytes, past it 413 (default 65536)"},
  };
  int nf = 0;
  while (flags[nf].name) nf++;
  nf = lorem_http_flags(flags, nf, &hl, 0);
  int pr = lorem_flags_parse(argc, argv, flags, nf, "lorem-server [flags]");
  if (pr) return pr > 0 ? 0 : 2;
  if (lorem_http_limits_check(&hl, "lorem-server")) return 2;
  if (strcmp(check, "http") && strcmp(check, "ttl")) {
    fprintf(stderr, "lorem-server: -check must be http or ttl\n");
    return 2;
  }
  char listen_buf[300];
  if (!listen_on) {
    snprintf(listen_buf, sizeof listen_buf, ":%s", adv_port ? adv_port : "7002");
    listen_on = listen_buf;
  }
  g_seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

  lorem_block_signals();
  kitd_global_init();
  kitd_logger *lg = kitd_logger_stderr();
  if (kitd_metrics_new(&g_metrics)) return 1;

  int port = 0;
  int fd = lorem_listen(listen_on, &port);
  if (fd < 0) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server", "action=listen addr=%s err=\"%s\"", listen_on,
             strerror(errno));
    return 1;
  }
  lorem_http_server *d = NULL;
  char err[128];
  if (lorem_http_server_start(fd, &hl, routes, sizeof routes / sizeof routes[0], NULL, &d, err,
                              sizeof err)) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server", "action=listen addr=%s err=\"%s\"", listen_on,
             err);
    return 1;
  }
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=listen addr=%s port=%d", listen_on, port);

  lorem_reg *reg = NULL;
  if (!no_register) {
    struct lorem_reg_conf rc = {
        consul_addr, consul_port, adv_addr, adv_port ? atoi(adv_port) : port,
        check,       interval,    timeout,  ttl,
        dereg,       service};
    if (lorem_reg_start(&rc, lg, &reg)) {
      lorem_http_server_free(d);
      return 1;
    }
  }
  int sig;
  while ((sig = lorem_wait_signal(reg ? 200 : -1)) == 0) lorem_reg_poll(reg);
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=stop signal=%s",
           sig == 2 ? "SIGINT" : "SIGTERM");
  int rc = drain(d, &fd, reg, grace, drain_timeout, lg);
  lorem_http_server_free(d);
  if (fd >= 0) close(fd);
  kitd_metrics_free(g_metrics);
  kitd_global_cleanup();
  return rc;
}
