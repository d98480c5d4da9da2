/* lorem-server: the lorem service of go-kit's lorem-consul example, on
 * libmicrohttpd, registering itself in Consul.
 *
 *   POST /lorem/{word|sentence|paragraph}/{min}/{max} -> {"message": "..."}
 *   GET  /health                                      -> {"status": true}
 *
 * It binds first, then registers (retrying in the background until the
 * agent answers), and deregisters on SIGINT/SIGTERM. */
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
#include "lorem/route.h"
#include "register.h"

static uint64_t g_seed;
static atomic_uint g_thread_no;
static struct MHD_Response *g_health;

/* One generator per server thread: reentrant, no lock on the request path. */
static _Thread_local lorem_rng t_rng;
static _Thread_local int t_seeded;
static _Thread_local char t_out[LOREM_OUT_MAX + 32];

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version,
                             const char *upload, size_t *upload_size, void **state) {
  (void)cls, (void)version, (void)upload;
  /* *state counts the body bytes seen + 1: no allocation per request. */
  uintptr_t seen = (uintptr_t)*state;
  if (seen == 0) {
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
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
    return MHD_queue_response(c, MHD_HTTP_OK, g_health);
  case LOREM_ROUTE_ERROR:
    return lorem_reply_error(c, (unsigned)rt.status, rt.error, rt.allow);
  case LOREM_ROUTE_LOREM:
    break;
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

int main(int argc, char **argv) {
  const char *consul_addr = NULL, *consul_port = NULL, *adv_addr = "127.0.0.1", *adv_port = NULL;
  const char *listen_on = NULL, *check = "http", *service = "lorem";
  long seed = -1, threads = 0;
  int no_register = 0;
  int64_t interval = 10000, timeout = 1000, ttl = 15000, dereg = 0;
  lorem_flag flags[] = {
      {"consul.addr", FLAG_STR, &consul_addr, "Consul agent address (default: CONSUL_HTTP_ADDR, else 127.0.0.1)"},
      {"consul.port", FLAG_STR, &consul_port, "Consul agent port (default 8500)"},
      {"advertise.addr", FLAG_STR, &adv_addr, "address registered in Consul (default 127.0.0.1)"},
      {"advertise.port", FLAG_STR, &adv_port, "port registered in Consul (default: the bound port)"},
      {"listen", FLAG_STR, &listen_on, "host:port to listen on (default :<advertise.port>, else :7002; port 0: any free port)"},
      {"check", FLAG_STR, &check, "Consul check kind: http (GET /health) or ttl (default http)"},
      {"check.interval", FLAG_DURATION, &interval, "HTTP check interval (default 10s)"},
      {"check.timeout", FLAG_DURATION, &timeout, "HTTP check timeout (default 1s)"},
      {"check.ttl", FLAG_DURATION, &ttl, "TTL check TTL, heartbeats every third (default 15s)"},
      {"check.deregister", FLAG_DURATION, &dereg, "DeregisterCriticalServiceAfter (default: never)"},
      {"seed", FLAG_INT, &seed, "generator seed (default: from the clock)"},
      {"threads", FLAG_INT, &threads, "server threads (default: one per CPU)"},
      {"no-register", FLAG_BOOL, &no_register, "do not register in Consul"},
      {"service", FLAG_STR, &service, "service name registered in Consul (default lorem)"},
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

  int port = 0;
  int fd = lorem_listen(listen_on, &port);
  if (fd < 0) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server", "action=listen addr=%s err=\"%s\"", listen_on,
             strerror(errno));
    return 1;
  }
  static const char health[] = "{\"status\":true}";
  g_health = MHD_create_response_from_buffer(sizeof health - 1, (void *)health,
                                             MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(g_health, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  struct MHD_Daemon *d = lorem_httpd_start(fd, (int)threads, serve, NULL, NULL);
  if (!d) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server", "action=listen addr=%s err=\"cannot start the HTTP daemon\"", listen_on);
    return 1;
  }
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=listen addr=%s port=%d", listen_on, port);

  lorem_reg *reg = NULL;
  if (!no_register) {
    struct lorem_reg_conf rc = {consul_addr, consul_port, adv_addr,
                                adv_port ? atoi(adv_port) : port, check, interval, timeout,
                                ttl, dereg, service};
    if (lorem_reg_start(&rc, lg, &reg)) {
      MHD_stop_daemon(d);
      return 1;
    }
  }
  int sig;
  while ((sig = lorem_wait_signal(reg ? 200 : -1)) == 0) lorem_reg_poll(reg);
  kitd_log(lg, KITD_LOG_INFO, "lorem-server", "action=stop signal=%s", sig == 2 ? "SIGINT" : "SIGTERM");
  lorem_reg_stop(reg);
  MHD_stop_daemon(d);
  MHD_destroy_response(g_health);
  close(fd);
  kitd_global_cleanup();
  return 0;
}
