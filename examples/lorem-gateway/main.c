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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kitd/kitd.h>

#include "lorem/flags.h"
#include "lorem/gwreq.h"
#include "lorem/httpd.h"
#include "lorem/metrics.h"
#include "lorem/pipeline.h"
#include "lorem/route.h"

static lorem_pipeline *g_p;
static kitd_metrics *g_metrics;
static int64_t g_timeout_ms;

struct body {
  size_t len;
  int too_big;
  char data[]; /* LOREM_GWREQ_MAX + 1 */
};

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode code) {
  (void)cls, (void)c, (void)code;
  if (*state != (void *)1) free(*state);
  *state = NULL;
}

/* 502/504 with every attempt's error, so the caller can see what happened. */
static enum MHD_Result reply_failure(struct MHD_Connection *c, int rc, kitd_ctx *ctx) {
  unsigned status = rc == KITD_ETIMEDOUT ? MHD_HTTP_GATEWAY_TIMEOUT : MHD_HTTP_BAD_GATEWAY;
  int all_timeouts = kitd_ctx_attempt(ctx, 0) != NULL;
  for (unsigned i = 0; kitd_ctx_attempt(ctx, i); i++)
    if (kitd_ctx_attempt(ctx, i)->err != KITD_ETIMEDOUT) all_timeouts = 0;
  if (all_timeouts) status = MHD_HTTP_GATEWAY_TIMEOUT;
  /* an upstream 4xx that retry did not repeat: the request's own fault */
  int st = kitd_ctx_status(ctx);
  if (rc == KITD_EHTTP && st >= 400 && st < 500) status = (unsigned)st;
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
  return lorem_reply(c, status, body, n, NULL, NULL);
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **state) {
  (void)cls, (void)version;
  int is_lorem = !strcmp(url, "/sd-lorem");
  if (!*state) {
    if (!is_lorem) { /* no body to keep: answer on the final call */
      *state = (void *)1;
      return MHD_YES;
    }
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > LOREM_GWREQ_MAX)
      return lorem_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);
    struct body *b = malloc(sizeof *b + LOREM_GWREQ_MAX + 1);
    if (!b) return MHD_NO;
    b->len = 0;
    b->too_big = 0;
    *state = b;
    return MHD_YES;
  }
  if (*upload_size) {
    if (*state != (void *)1) {
      struct body *b = *state;
      if (b->len + *upload_size > LOREM_GWREQ_MAX) b->too_big = 1;
      else memcpy(b->data + b->len, upload, *upload_size), b->len += *upload_size;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (!strcmp(url, "/health")) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
      return lorem_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", "GET, HEAD");
    static const char ok[] = "{\"status\":true}";
    if (lorem_pipeline_count(g_p) > 0)
      return lorem_reply(c, MHD_HTTP_OK, ok, sizeof ok - 1, NULL, NULL);
    /* Not ready: no instance to send to. Say why, as JSON. */
    char why[256], q[600], body[700];
    lorem_pipeline_explain(g_p, why, sizeof why);
    if (lorem_json_string(q, sizeof q, why) < 0) strcpy(q, "\"\"");
    int n = snprintf(body, sizeof body, "{\"status\":false,\"reason\":%s}", q);
    if (n < 0 || (size_t)n >= sizeof body) n = snprintf(body, sizeof body, "{\"status\":false}");
    return lorem_reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, body, (size_t)n, NULL, NULL);
  }
  if (!strcmp(url, "/metrics")) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
      return lorem_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", "GET, HEAD");
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
  if (!is_lorem) return lorem_reply_error(c, MHD_HTTP_NOT_FOUND, "not found", NULL);
  if (strcmp(method, "POST"))
    return lorem_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed", "POST");
  struct body *b = *state;
  if (b->too_big)
    return lorem_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL);

  lorem_request rq;
  char err[256];
  if (lorem_gw_parse(b->data, b->len, &rq, err, sizeof err))
    return lorem_reply_error(c, MHD_HTTP_BAD_REQUEST, err, NULL);
  if (lorem_pipeline_count(g_p) == 0)
    return lorem_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no endpoints available", NULL);

  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_attempt_error attempts[8]; /* for reply_failure's report */
  kitd_ctx_set_attempt_log(&ctx, attempts, 8);
  kitd_ctx_set_timeout_ms(&ctx, g_timeout_ms);
  lorem_response *r = NULL;
  int rc = lorem_pipeline_call(g_p, &ctx, &rq, &r);
  if (rc == KITD_ENOENDPOINTS)
    return lorem_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no endpoints available", NULL);
  if (rc) return reply_failure(c, rc, &ctx);
  /* the message is letters, spaces and punctuation, but escape anyway: it
   * came from another process */
  size_t cap = strlen(r->message) * 6 + 32;
  char *out = malloc(cap);
  enum MHD_Result ret = MHD_NO;
  if (out) {
    memcpy(out, "{\"message\":", 11);
    int m = lorem_json_string(out + 11, cap - 13, r->message);
    if (m >= 0) {
      size_t n = 11 + (size_t)m;
      out[n++] = '}';
      ret = lorem_reply(c, MHD_HTTP_OK, out, n, NULL, r->upstream);
    }
    free(out);
  }
  lorem_response_free(r);
  return ret;
}

int main(int argc, char **argv) {
  const char *consul_addr = NULL, *consul_port = NULL, *static_list = NULL, *source = NULL;
  const char *listen_on = ":8080", *service = "lorem", *tag = "lorem";
  long attempts = 3, threads = -1;
  int64_t attempt_ms = 1000, timeout_ms = 3000;
  lorem_flag flags[] = {
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
      {"threads", FLAG_INT, &threads, "server threads (default -1: one per connection)"},
  };
  int pr = lorem_flags_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "lorem-gateway [flags]");
  if (pr) return pr > 0 ? 0 : 2;
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
      attempt_ms,  timeout_ms,  KITD_RR_GLOBAL, lg,      source, g_metrics};
  if (lorem_pipeline_new(&pc, &g_p)) return 1;
  int port = 0;
  int fd = lorem_listen(listen_on, &port);
  if (fd < 0) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-gateway", "action=listen addr=%s err=\"%s\"", listen_on,
             strerror(errno));
    lorem_pipeline_free(g_p);
    return 1;
  }
  struct MHD_Daemon *d = lorem_httpd_start(fd, (int)threads, serve, NULL, completed);
  if (!d) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-gateway",
             "action=listen err=\"cannot start the HTTP daemon\"");
    lorem_pipeline_free(g_p);
    return 1;
  }
  kitd_log(lg, KITD_LOG_INFO, "lorem-gateway",
           "action=listen addr=%s port=%d discovery=%s attempts=%ld attempt_timeout_ms=%lld "
           "timeout_ms=%lld",
           listen_on, port, static_list ? "static" : "consul", attempts, (long long)attempt_ms,
           (long long)timeout_ms);
  int sig = lorem_wait_signal(-1);
  kitd_log(lg, KITD_LOG_INFO, "lorem-gateway", "action=stop signal=%s",
           sig == 2 ? "SIGINT" : "SIGTERM");
  MHD_stop_daemon(d);
  close(fd);
  lorem_pipeline_free(g_p);
  kitd_metrics_free(g_metrics);
  kitd_global_cleanup();
  return 0;
}
