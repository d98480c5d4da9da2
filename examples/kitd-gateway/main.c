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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kitd/kitd.h>

#include "lorem/flags.h"
#include "lorem/httpd.h"

static kitd_directory *g_dir;
static int64_t g_timeout_ms;
static size_t g_max_body;

/* One request: its raw URI (the handler only sees the decoded path) and
 * its body, grown as it arrives. */
struct rq {
  char *uri;
  char *body;
  size_t len, cap;
  int too_big;
  int headers_seen; /* the handler's first call (headers only) is over */
};

static void *on_uri(void *arg, const char *uri, struct MHD_Connection *c) {
  (void)arg, (void)c;
  struct rq *q = calloc(1, sizeof *q);
  if (q && !(q->uri = strdup(uri))) {
    free(q);
    q = NULL;
  }
  return q;
}

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode code) {
  (void)cls, (void)c, (void)code;
  struct rq *q = *state;
  if (q) {
    free(q->uri);
    free(q->body);
    free(q);
  }
  *state = NULL;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             size_t len, const char *ctype) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  if (ctype) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

/* {"error": msg, "service": s, "attempts": [...]} */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *msg,
                                   const char *service, const kitd_ctx *ctx) {
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
  if (!s) return MHD_NO;
  enum MHD_Result ret = reply(c, status, s, strlen(s), "application/json");
  free(s);
  return ret;
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

static enum MHD_Result forward(struct MHD_Connection *c, const char *method, struct rq *q) {
  char *service = malloc(strlen(q->uri) + 1);
  if (!service) return MHD_NO;
  const char *rest;
  if (split(q->uri, service, &rest)) {
    free(service);
    return reply_error(c, MHD_HTTP_BAD_REQUEST, "malformed path: want /<service>/<path>", NULL,
                       NULL);
  }
  /* "/users" and "/users?x" go to "/" and "/?x" */
  char *path = NULL;
  if (asprintf(&path, "%s%s", rest[0] == '/' ? "" : "/", rest) < 0) {
    free(service);
    return MHD_NO;
  }
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  kitd_client_req rq = {.method = method,
                        .path = path,
                        .body = q->body,
                        .len = q->len,
                        .content_type = ct       ? ct
                                        : q->len ? "application/octet-stream"
                                                 : NULL};
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, g_timeout_ms);
  kitd_attempt_error attempts[8]; /* every attempt, for a 503's body */
  kitd_ctx_set_attempt_log(&ctx, attempts, 8);
  kitd_client_resp resp = {0};
  int rc = kitd_directory_call(g_dir, service, &ctx, &rq, &resp);
  enum MHD_Result ret;
  if (rc == 0) {
    ret = reply(c, (unsigned)resp.status, resp.body, resp.len, resp.content_type);
    kitd_client_resp_clear(&resp);
  } else if (rc == KITD_EINVAL) {
    ret = reply_error(c, MHD_HTTP_BAD_REQUEST, kitd_ctx_detail(&ctx), service, NULL);
  } else if (rc == KITD_ENOENDPOINTS) {
    /* 404 only when the registry answered: an outage is not "no such service" */
    int known = registry_answered(service);
    char msg[KITD_CTX_DETAIL_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", known ? "no such service" : "registry unavailable",
             kitd_ctx_detail(&ctx));
    ret = reply_error(c, known ? MHD_HTTP_NOT_FOUND : MHD_HTTP_SERVICE_UNAVAILABLE, msg, service,
                      NULL);
  } else {
    char msg[KITD_CTX_DETAIL_MAX + 64];
    snprintf(msg, sizeof msg, "%s: %s", kitd_strerror(rc), kitd_ctx_detail(&ctx));
    ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg, service, &ctx);
  }
  free(path);
  free(service);
  return ret;
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **state) {
  (void)cls, (void)url, (void)version;
  struct rq *q = *state;
  if (!q) return MHD_NO;  /* no memory for the request */
  if (!q->headers_seen) { /* the body, if any, comes in the next calls */
    q->headers_seen = 1;
    return MHD_YES;
  }
  if (*upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (q->too_big || q->len + n > g_max_body) {
      q->too_big = 1;
      return MHD_YES;
    }
    if (q->len + n > q->cap) {
      size_t cap = q->cap ? q->cap : 4096;
      while (cap < q->len + n) cap *= 2;
      char *b = realloc(q->body, cap);
      if (!b) return MHD_NO;
      q->body = b;
      q->cap = cap;
    }
    memcpy(q->body + q->len, upload, n);
    q->len += n;
    return MHD_YES;
  }
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (q->too_big || (cl && strtoull(cl, NULL, 10) > g_max_body))
    return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL, NULL);
  if (!strcmp(q->uri, "/health")) { /* the gateway's own */
    static const char ok[] = "{\"status\":true}";
    return reply(c, MHD_HTTP_OK, ok, sizeof ok - 1, "application/json");
  }
  return forward(c, method, q);
}

int main(int argc, char **argv) {
  const char *consul_addr = getenv("CONSUL_HTTP_ADDR"), *listen_on = ":8080";
  int64_t timeout_ms = 10000, idle_ms = 300000;
  long max_clients = 100, max_body = 16 << 20;
  lorem_flag flags[] = {
      {"listen", FLAG_STR, &listen_on,
       "host:port to listen on (default :8080; port 0: any free port)"},
      {"consul.addr", FLAG_STR, &consul_addr,
       "Consul agent host:port (default CONSUL_HTTP_ADDR, else 127.0.0.1:8500)"},
      {"timeout", FLAG_DURATION, &timeout_ms,
       "deadline of one request, across attempts (default 10s)"},
      {"idle", FLAG_DURATION, &idle_ms, "forget a service unused this long (default 5m)"},
      {"max.clients", FLAG_INT, &max_clients, "services watched at most at once (default 100)"},
      {"max.body", FLAG_INT, &max_body, "largest request body in bytes (default 16 MiB)"},
  };
  int pr = lorem_flags_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "kitd-gateway [flags]");
  if (pr) return pr > 0 ? 0 : 2;
  if (timeout_ms <= 0 || idle_ms <= 0 || max_clients < 1 || max_body < 0) {
    fprintf(stderr, "kitd-gateway: -timeout, -idle, -max.clients and -max.body must be positive\n");
    return 2;
  }
  g_timeout_ms = timeout_ms;
  g_max_body = (size_t)max_body;
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
  kitd_consul_free(consul); /* the directory keeps a copy */
  if (rc) {
    kitd_log(lg, KITD_LOG_ERROR, "kitd-gateway", "action=start err=%s detail=\"%s\"",
             kitd_err_name(rc), kitd_ctx_detail(&ctx));
    return 1;
  }
  int port = 0;
  int fd = lorem_listen(listen_on, &port);
  struct MHD_Daemon *d =
      fd < 0 ? NULL : lorem_httpd_start_uri(fd, -1, serve, NULL, completed, on_uri);
  if (!d) {
    kitd_log(lg, KITD_LOG_ERROR, "kitd-gateway", "action=listen addr=%s err=\"%s\"", listen_on,
             fd < 0 ? strerror(errno) : "cannot start the HTTP daemon");
    kitd_directory_free(g_dir);
    return 1;
  }
  kitd_log(lg, KITD_LOG_INFO, "kitd-gateway", "action=listen addr=%s port=%d max_clients=%ld",
           listen_on, port, max_clients);
  int sig = lorem_wait_signal(-1);
  kitd_log(lg, KITD_LOG_INFO, "kitd-gateway", "action=stop signal=%s",
           sig == 2 ? "SIGINT" : "SIGTERM");
  MHD_stop_daemon(d);
  close(fd);
  kitd_directory_free(g_dir);
  kitd_global_cleanup();
  return 0;
}
