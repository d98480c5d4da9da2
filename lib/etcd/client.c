/* SPDX-License-Identifier: MIT */
/* etcd calls on top of http.c: endpoint rotation, the auth token, and
 * etcd's JSON error answers ({"error":..,"message":..,"code":N}). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"

int kitd__etcd_client_init(kitd__etcd_client *cl, const kitd_etcd *c) {
  memset(cl, 0, sizeof *cl);
  int e = kitd__etcd_dup(c, &cl->c);
  if (!e) e = kitd__etcd_http_new(cl->c, &cl->stop, &cl->http);
  if (e) kitd__etcd_client_clear(cl);
  return e;
}

void kitd__etcd_client_drop_token(kitd__etcd_client *cl) {
  if (!cl->token) return;
  memset(cl->token, 0, strlen(cl->token));
  free(cl->token);
  cl->token = NULL;
}

void kitd__etcd_client_clear(kitd__etcd_client *cl) {
  kitd__etcd_client_drop_token(cl);
  kitd__etcd_http_free(cl->http);
  kitd_etcd_free(cl->c);
  memset(cl, 0, sizeof *cl);
}

void kitd__etcd_client_stop(kitd__etcd_client *cl) {
  __atomic_store_n(&cl->stop, 1, __ATOMIC_RELEASE);
  kitd__etcd_http_wake(cl->http);
}

int kitd__etcd_client_stopped(kitd__etcd_client *cl) {
  return __atomic_load_n(&cl->stop, __ATOMIC_ACQUIRE) != 0;
}

void kitd__etcd_cond_init(pthread_cond_t *cv) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &ca);
  pthread_condattr_destroy(&ca);
}

struct timespec kitd__etcd_after(int64_t ns) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t t = (int64_t)ts.tv_nsec + ns % 1000000000;
  ts.tv_sec += (time_t)(ns / 1000000000 + t / 1000000000);
  ts.tv_nsec = (long)(t % 1000000000);
  return ts;
}

void kitd__etcd_nap(kitd__etcd_client *cl, pthread_mutex_t *mu, pthread_cond_t *cv, int64_t ns) {
  struct timespec ts = kitd__etcd_after(ns);
  pthread_mutex_lock(mu);
  while (!kitd__etcd_client_stopped(cl))
    if (pthread_cond_timedwait(cv, mu, &ts) != 0) break;
  pthread_mutex_unlock(mu);
}

void kitd__etcd_client_rotate(kitd__etcd_client *cl) {
  if (cl->c->nurls > 1) cl->cur = (cl->cur + 1) % cl->c->nurls;
}

static char *make_url(const kitd__etcd_client *cl, const char *path) {
  const char *base = cl->c->urls[cl->cur];
  size_t n = strlen(base) + strlen(path) + 1;
  char *u = kitd__malloc(n);
  if (!u) return NULL;
  int k = snprintf(u, n, "%s%s", base, path);
  if (k < 0 || (size_t)k >= n) {
    free(u);
    return NULL;
  }
  return u;
}

/* Copy etcd's message into detail, printable bytes only. */
static void error_detail(char *detail, const char *path, int status, int code, const char *msg) {
  int n = snprintf(detail, KITD__ETCD_DETAIL, "%s: HTTP %d, code %d: ", path, status, code);
  if (n < 0 || n >= KITD__ETCD_DETAIL) return;
  size_t o = (size_t)n;
  for (const char *p = msg ? msg : "(no message)"; *p && o + 1 < KITD__ETCD_DETAIL; p++)
    detail[o++] = ((unsigned char)*p < ' ' || *p == 0x7f) ? ' ' : *p;
  detail[o] = '\0';
}

/* Read an error body: the gRPC code and message (3.4: error + message +
 * code; 3.6: code + message). Returns the code, 0 if there is none. */
static int parse_error(const char *body, size_t len, char **msg) {
  *msg = NULL;
  if (!body || !len) return 0;
  json_t *root = json_loadb(body, len, 0, NULL);
  if (!root) return 0;
  json_t *o = root, *e = json_object_get(root, "error");
  if (json_is_object(e)) o = e; /* a watch stream's {"error":{..}} */
  int code = (int)kitd__etcd_int(json_object_get(o, "code"), 0);
  if (!code) code = (int)kitd__etcd_int(json_object_get(o, "grpc_code"), 0);
  const char *m = json_string_value(json_object_get(o, "message"));
  if (!m) m = json_string_value(json_object_get(o, "error"));
  if (m) *msg = kitd__strdup(m);
  json_decref(root);
  return code;
}

/* POST once, at the current endpoint. */
static int post(kitd__etcd_client *cl, const char *path, json_t *req, bool send_token,
                int64_t timeout_ms, kitd__etcd_line_fn on_line, void *arg, kitd__etcd_reply *r) {
  char *body = json_dumps(req, JSON_COMPACT);
  char *url = make_url(cl, path);
  int rc;
  if (!body || !url) {
    memset(r, 0, sizeof *r);
    snprintf(r->detail, sizeof r->detail, "out of memory");
    rc = KITD_ENOMEM;
  } else {
    kitd__etcd_post p = {0};
    p.url = url;
    p.auth = send_token ? cl->token : NULL;
    p.body = body;
    p.body_len = strlen(body);
    p.timeout_ms = timeout_ms;
    p.on_line = on_line;
    p.arg = arg;
    rc = kitd__etcd_http_post(cl->http, &p, r);
    if (rc && rc != KITD_ESTOPPED && rc != KITD_ENOMEM) kitd__etcd_client_rotate(cl);
  }
  free(url);
  if (body) {
    memset(body, 0, strlen(body)); /* it may hold the password */
    free(body);
  }
  return rc;
}

static int status_error(kitd__etcd_client *cl, const char *path, kitd__etcd_reply *r,
                        int *grpc_code, char *detail) {
  (void)cl;
  char *msg = NULL;
  int code = parse_error(r->body, r->len, &msg);
  if (grpc_code) *grpc_code = code;
  error_detail(detail, path, r->status, code, msg);
  free(msg);
  if (code == KITD__GRPC_PERMISSION_DENIED || code == KITD__GRPC_UNAUTHENTICATED ||
      r->status == 401 || r->status == 403)
    return KITD_EACL;
  return KITD_EHTTP;
}

/* Get a token for the configured user. */
static int authenticate(kitd__etcd_client *cl, int *grpc_code, char *detail) {
  json_t *req = json_pack("{s:s, s:s}", "name", cl->c->user, "password",
                          cl->c->password ? cl->c->password : "");
  if (!req) {
    snprintf(detail, KITD__ETCD_DETAIL, "out of memory");
    return KITD_ENOMEM;
  }
  kitd__etcd_reply r;
  int rc = post(cl, "/v3/auth/authenticate", req, false, cl->c->request_timeout_ms, NULL, NULL, &r);
  json_decref(req);
  if (rc) {
    snprintf(detail, KITD__ETCD_DETAIL, "%s", r.detail);
    kitd__etcd_reply_clear(&r);
    return rc;
  }
  if (r.status != 200) {
    int code = 0;
    rc = status_error(cl, "/v3/auth/authenticate", &r, &code, detail);
    if (grpc_code) *grpc_code = code;
    kitd__etcd_reply_clear(&r);
    if (code == KITD__GRPC_FAILED_PRECONDITION) {
      /* "authentication is not enabled": go on without a token. */
      cl->auth_off = true;
      return 0;
    }
    /* A wrong user or password (code 3, invalid argument) is an ACL
     * failure, not a malformed call; "no leader" and the like stay what
     * they are. */
    return code == KITD__GRPC_INVALID_ARGUMENT ? KITD_EACL : rc;
  }
  json_t *o = json_loadb(r.body, r.len, 0, NULL);
  kitd__etcd_reply_clear(&r);
  const char *tok = json_string_value(json_object_get(o, "token"));
  if (!tok || !*tok) {
    json_decref(o);
    snprintf(detail, KITD__ETCD_DETAIL, "/v3/auth/authenticate: answer without a token");
    return KITD_EPROTO;
  }
  kitd__etcd_client_drop_token(cl);
  cl->token = kitd__strdup(tok);
  json_decref(o);
  if (!cl->token) {
    snprintf(detail, KITD__ETCD_DETAIL, "out of memory");
    return KITD_ENOMEM;
  }
  cl->auth_off = false;
  return 0;
}

static int do_call(kitd__etcd_client *cl, const char *path, json_t *req, int64_t timeout_ms,
                   kitd__etcd_line_fn on_line, void *arg, json_t **resp, int *grpc_code,
                   char *detail) {
  if (grpc_code) *grpc_code = 0;
  detail[0] = '\0';
  /* A refused connection is quick to see: try the other endpoints at once
   * (post() has moved on to the next). Slower failures, and watches, wait
   * for the caller's backoff. */
  size_t others = cl->c->nurls - 1;
  for (int attempt = 0;; attempt++) {
    if (cl->c->user && !cl->token && !cl->auth_off) {
      int rc = authenticate(cl, grpc_code, detail);
      if (rc == KITD_ECONNECT && others > 0) {
        others--;
        attempt--;
        continue;
      }
      if (rc) return rc;
    }
    kitd__etcd_reply r;
    int rc = post(cl, path, req, !cl->auth_off, timeout_ms, on_line, arg, &r);
    if (rc) {
      snprintf(detail, KITD__ETCD_DETAIL, "%s", r.detail);
      kitd__etcd_reply_clear(&r);
      /* Not a watch: one that broke after delivering is the caller's to
       * resume from its own revision. */
      if (rc == KITD_ECONNECT && others > 0 && !on_line) {
        others--;
        attempt--;
        continue;
      }
      return rc;
    }
    if (r.status < 200 || r.status > 299) {
      int code = 0, st = r.status;
      rc = status_error(cl, path, &r, &code, detail);
      if (grpc_code) *grpc_code = code;
      kitd__etcd_reply_clear(&r);
      /* An expired or unknown token: drop it and authenticate once more.
       * Without a user configured, a 401 is final. */
      if ((code == KITD__GRPC_UNAUTHENTICATED || st == 401) && cl->c->user && attempt == 0) {
        kitd__etcd_client_drop_token(cl);
        cl->auth_off = false;
        continue;
      }
      return rc;
    }
    if (resp) {
      json_error_t je;
      *resp = r.body ? json_loadb(r.body, r.len, 0, &je) : NULL;
      if (!json_is_object(*resp)) {
        json_decref(*resp);
        *resp = NULL;
        snprintf(detail, KITD__ETCD_DETAIL, "%s: answer is not a JSON object", path);
        kitd__etcd_reply_clear(&r);
        return KITD_EPROTO;
      }
    }
    kitd__etcd_reply_clear(&r);
    return 0;
  }
}

int kitd__etcd_call(kitd__etcd_client *cl, const char *path, json_t *req, int64_t timeout_ms,
                    json_t **resp, int *grpc_code, char *detail) {
  if (timeout_ms <= 0) timeout_ms = cl->c->request_timeout_ms;
  return do_call(cl, path, req, timeout_ms, NULL, NULL, resp, grpc_code, detail);
}

int kitd__etcd_watch(kitd__etcd_client *cl, json_t *req, kitd__etcd_line_fn on_line, void *arg,
                     int *grpc_code, char *detail) {
  return do_call(cl, "/v3/watch", req, 0, on_line, arg, NULL, grpc_code, detail);
}
