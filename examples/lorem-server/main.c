/* SPDX-License-Identifier: MIT */
/* lorem-server: the lorem service of go-kit's lorem-consul example, on
 * libmicrohttpd, registering itself in Consul.
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
static struct MHD_Response *g_health;
static kitd_metrics *g_metrics;
/* Draining: /health fails so checks and gateways stop sending; requests in
 * flight are counted so the server exits only once they are answered. */
static atomic_int g_draining;
static atomic_long g_inflight;

static void request_done(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)c, (void)toe;
  if (*state) atomic_fetch_sub(&g_inflight, 1);
}

/* One generator per server thread: reentrant, no lock on the request path. */
static _Thread_local lorem_rng t_rng;
static _Thread_local int t_seeded;
static _Thread_local char t_out[LOREM_OUT_MAX + 32];

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload;
  /* *state counts the body bytes seen + 1: no allocation per request. */
  uintptr_t seen = (uintptr_t)*state;
  if (seen == 0) {
    atomic_fetch_add(&g_inflight, 1); /* request_done takes it back */
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > LOREM_BODY_MAX)
      return lorem_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);
    *state = (void *)(uintptr_t)1;
    return MHD_YES;
  }
  if (*upload_size) { /* the routes take no body: count it and drop it */
    seen += *upload_size;
    *upload_size = 0;
    *state = (void *)seen;
    if (seen - 1 > LOREM_BODY_MAX)
      return lorem_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);
    return MHD_YES;
  }
  if (seen - 1 > LOREM_BODY_MAX)
    return lorem_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);

  lorem_route rt;
  lorem_route_parse(method, url, strlen(url), &rt);
  switch (rt.kind) {
  case LOREM_ROUTE_HEALTH:
    if (atomic_load(&g_draining)) {
      static const char draining[] = "{\"status\":false,\"reason\":\"draining\"}";
      return lorem_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, draining, sizeof draining - 1, NULL,
                         NULL);
    }
    return MHD_queue_response(c, MHD_HTTP_OK, g_health);
  case LOREM_ROUTE_METRICS: {
    size_t len;
    char *text = lorem_metrics_text(g_metrics, &len);
    if (!text) return lorem_reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "no memory", NULL);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
      free(text);
      return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, LOREM_METRICS_TYPE);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
  }
  case LOREM_ROUTE_ERROR: return lorem_reply_error(c, (unsigned)rt.status, rt.error, rt.allow);
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
  if (n < 0) return lorem_reply_error(c, 500, "generator failed", NULL);
  size_t len = sizeof head - 1 + (size_t)n;
  memcpy(t_out + len, "\"}", 2);
  len += 2;
  return lorem_reply(c, MHD_HTTP_OK, t_out, len, NULL, NULL);
}

/* A graceful stop: fail /health, deregister, give watchers `grace` ms to
 * see it while still serving, stop accepting, then wait (up to `timeout`
 * ms) for the requests in flight. A second signal ends it at once: 1. */
static int drain(struct MHD_Daemon *d, lorem_reg *reg, int64_t grace, int64_t timeout,
                 kitd_logger *lg) {
  atomic_store(&g_draining, 1);
  lorem_reg_stop(reg);
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=drain step=deregistered grace_ms=%lld",
           (long long)grace);
  if (grace > 0 && lorem_wait_signal((long)grace) != 0) {
    kitd_log(lg, KITD_LOG_WARN, "lorem-server", "action=drain step=abort msg=\"second signal\"");
    return 1;
  }
  MHD_socket lfd = MHD_quiesce_daemon(d); /* no new connections */
  (void)lfd;
  int64_t t0 = kitd_now_ns();
  long left;
  while ((left = atomic_load(&g_inflight)) > 0 && kitd_now_ns() - t0 < timeout * 1000000) {
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
  long seed = -1, threads = 0;
  int no_register = 0;
  int64_t interval = 10000, timeout = 1000, ttl = 15000, dereg = 0;
  int64_t grace = 2000, drain_timeout = 10000;
  lorem_flag flags[] = {
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
      {"threads", FLAG_INT, &threads, "server threads (default: one per CPU)"},
      {"no-register", FLAG_BOOL, &no_register, "do not register in Consul"},
      {"service", FLAG_STR, &service, "service name registered in Consul (default lorem)"},
      {"drain.grace", FLAG_DURATION, &grace,
       "on SIGTERM, time for watchers to see the deregistration before the listener closes "
       "(default 2s)"},
      {"drain.timeout", FLAG_DURATION, &drain_timeout,
       "on SIGTERM, longest wait for requests in flight (default 10s)"},
  };
  int pr = lorem_flags_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "lorem-server [flags]");
  if (pr) return pr > 0 ? 0 : 2;
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
  static const char health[] = "{\"status\":true}";
  g_health =
      MHD_create_response_from_buffer(sizeof health - 1, (void *)health, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(g_health, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  struct MHD_Daemon *d = lorem_httpd_start(fd, (int)threads, serve, NULL, request_done);
  if (!d) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server",
             "action=listen addr=%s err=\"cannot start the HTTP daemon\"", listen_on);
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
      MHD_stop_daemon(d);
      return 1;
    }
  }
  int sig;
  while ((sig = lorem_wait_signal(reg ? 200 : -1)) == 0) lorem_reg_poll(reg);
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=stop signal=%s",
           sig == 2 ? "SIGINT" : "SIGTERM");
  int rc = drain(d, reg, grace, drain_timeout, lg);
  MHD_stop_daemon(d);
  MHD_destroy_response(g_health);
  kitd_metrics_free(g_metrics);
  close(fd);
  kitd_global_cleanup();
  return rc;
}
