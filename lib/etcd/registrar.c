/* SPDX-License-Identifier: MIT */
/* The etcd registrar: one key under a lease of its own, kept alive by a
 * thread (go-kit's sd/etcdv3.Registrar). Grant, put with the lease, then a
 * one-shot /v3/lease/keepalive every TTL/3; a keepalive answer without a
 * TTL means etcd lost the lease (expired while we could not reach it,
 * revoked): grant a new one and put again. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/backoff.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"

struct kitd_etcd_registrar {
  kitd__etcd_client cl;
  char *key, *qkey, *key_b64, *val_b64;
  int64_t ttl_s, backoff_min_ms, backoff_max_ms;
  kitd_logger *lg;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* naps, and the registered state */
  pthread_t th;
  bool started;
  bool registered; /* under mu */
  bool done;       /* the thread has ended (under mu) */
  int last_err;    /* under mu */
  /* Thread only: */
  int64_t lease; /* 0: none */
  int64_t granted_s;
  unsigned fails;
};

void kitd_etcd_registrar_opts_init(kitd_etcd_registrar_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->ttl_s = 10;
  o->backoff_min_ms = 100;
  o->backoff_max_ms = 5000;
}

static bool is_stopped(kitd_etcd_registrar *r) { return kitd__etcd_client_stopped(&r->cl); }

static void nap(kitd_etcd_registrar *r, int64_t ns) { kitd__etcd_nap(&r->cl, &r->mu, &r->cv, ns); }

static void set_state(kitd_etcd_registrar *r, bool registered, int err) {
  pthread_mutex_lock(&r->mu);
  r->registered = registered;
  if (err) r->last_err = err;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void failed(kitd_etcd_registrar *r, const char *what, int err, const char *detail) {
  r->fails++;
  set_state(r, r->lease != 0 && r->registered, err);
  int64_t d = kitd__backoff_ns(r->backoff_min_ms * 1000000, r->backoff_max_ms * 1000000, r->fails,
                               KITD__JITTER_HALF);
  if (kitd_log_enabled(r->lg, KITD_LOG_WARN)) {
    char dq[400];
    kitd_log(r->lg, r->fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN, "etcd",
             "key=%s msg=\"%s failed\" err=%s detail=%s failures=%u retry_ms=%lld", r->qkey, what,
             kitd_err_name(err), kitd_log_quote(dq, sizeof dq, detail), r->fails,
             (long long)(d / 1000000));
  }
  nap(r, d);
}

static int grant(kitd_etcd_registrar *r, char *detail) {
  json_t *req = json_pack("{s:I}", "TTL", (json_int_t)r->ttl_s), *resp = NULL;
  if (!req) return KITD_ENOMEM;
  int rc = kitd__etcd_call(&r->cl, "/v3/lease/grant", req, 0, &resp, NULL, detail);
  json_decref(req);
  if (rc) return rc;
  int64_t id = kitd__etcd_int(json_object_get(resp, "ID"), 0);
  int64_t ttl = kitd__etcd_int(json_object_get(resp, "TTL"), 0);
  json_decref(resp);
  if (id <= 0 || ttl <= 0) {
    snprintf(detail, KITD__ETCD_DETAIL, "/v3/lease/grant: answer without ID or TTL");
    return KITD_EPROTO;
  }
  r->lease = id;
  r->granted_s = ttl;
  return 0;
}

static int put(kitd_etcd_registrar *r, char *detail) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)r->lease);
  /* Always with the lease: a put without one detaches the key from it. */
  json_t *req = json_pack("{s:s, s:s, s:s}", "key", r->key_b64, "value", r->val_b64, "lease", id),
         *resp = NULL;
  if (!req) return KITD_ENOMEM;
  int code = 0;
  int rc = kitd__etcd_call(&r->cl, "/v3/kv/put", req, 0, &resp, &code, detail);
  json_decref(req);
  json_decref(resp);
  if (rc && code == KITD__GRPC_NOT_FOUND) r->lease = 0; /* lease gone: grant again */
  return rc;
}

/* Returns 0 (renewed), KITD_ENOTFOUND (etcd lost the lease) or an error. */
static int keepalive(kitd_etcd_registrar *r, char *detail) {
  char id[24];
  snprintf(id, sizeof id, "%lld", (long long)r->lease);
  json_t *req = json_pack("{s:s}", "ID", id), *resp = NULL;
  if (!req) return KITD_ENOMEM;
  int rc = kitd__etcd_call(&r->cl, "/v3/lease/keepalive", req, 0, &resp, NULL, detail);
  json_decref(req);
  if (rc) return rc;
  json_t *res = json_object_get(resp, "result");
  int64_t ttl = kitd__etcd_int(json_object_get(res, "TTL"), 0);
  json_decref(resp);
  if (!res) {
    snprintf(detail, KITD__ETCD_DETAIL, "/v3/lease/keepalive: answer without result");
    return KITD_EPROTO;
  }
  /* A dead lease still gets a 200, only without a TTL. */
  return ttl > 0 ? 0 : KITD_ENOTFOUND;
}

static void *run(void *arg) {
  kitd_etcd_registrar *r = arg;
  char detail[KITD__ETCD_DETAIL];
  bool registered = false;
  while (!is_stopped(r)) {
    if (!r->lease) {
      registered = false;
      int rc = grant(r, detail);
      if (rc == KITD_ESTOPPED) break;
      if (rc) {
        failed(r, "lease grant", rc, detail);
        continue;
      }
    }
    if (!registered) {
      int rc = put(r, detail);
      if (rc == KITD_ESTOPPED) break;
      if (rc) {
        failed(r, "put", rc, detail);
        continue;
      }
      registered = true;
      r->fails = 0;
      set_state(r, true, 0);
      kitd_log(r->lg, KITD_LOG_INFO, "etcd", "key=%s msg=registered lease=%lld ttl_s=%lld", r->qkey,
               (long long)r->lease, (long long)r->granted_s);
    }
    int64_t every = r->granted_s * 1000000000 / 3;
    nap(r, every);
    if (is_stopped(r)) break;
    /* Retry a failed keepalive with backoff, within the TTL. */
    for (;;) {
      int rc = keepalive(r, detail);
      if (rc == KITD_ESTOPPED || is_stopped(r)) goto out;
      if (!rc) {
        r->fails = 0;
        break;
      }
      if (rc == KITD_ENOTFOUND) {
        kitd_log(r->lg, KITD_LOG_WARN, "etcd", "key=%s msg=\"lease lost, registering again\"",
                 r->qkey);
        r->lease = 0;
        set_state(r, false, rc);
        break;
      }
      failed(r, "keepalive", rc, detail);
      if (is_stopped(r)) goto out;
    }
  }
out:
  pthread_mutex_lock(&r->mu);
  r->done = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

int kitd_etcd_registrar_wait_registered(kitd_etcd_registrar *r, int64_t timeout_ms) {
  if (!r) return KITD_EINVAL;
  struct timespec ts = kitd__etcd_after(timeout_ms < 0 ? 0 : timeout_ms * 1000000);
  int rc = 0;
  pthread_mutex_lock(&r->mu);
  while (!r->registered && !r->done) {
    if (timeout_ms < 0) pthread_cond_wait(&r->cv, &r->mu);
    else if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
  }
  if (!r->registered) rc = r->done ? KITD_ESTOPPED : KITD_ETIMEDOUT;
  pthread_mutex_unlock(&r->mu);
  return rc;
}

int kitd_etcd_registrar_registered(kitd_etcd_registrar *r, int *last_err) {
  if (!r) return 0;
  pthread_mutex_lock(&r->mu);
  int reg = r->registered;
  if (last_err) *last_err = r->last_err;
  pthread_mutex_unlock(&r->mu);
  return reg;
}

/* Delete the key and revoke the lease: each at most 1 s. */
static void deregister(kitd_etcd_registrar *r) {
  if (!r->lease) return;
  __atomic_store_n(&r->cl.stop, 0, __ATOMIC_RELEASE); /* the thread is gone */
  r->cl.c->request_timeout_ms = 1000;
  if (r->cl.c->connect_timeout_ms > 1000) r->cl.c->connect_timeout_ms = 1000;
  char detail[KITD__ETCD_DETAIL], id[24];
  json_t *del = json_pack("{s:s}", "key", r->key_b64);
  int rc =
      del ? kitd__etcd_call(&r->cl, "/v3/kv/deleterange", del, 0, NULL, NULL, detail) : KITD_ENOMEM;
  json_decref(del);
  snprintf(id, sizeof id, "%lld", (long long)r->lease);
  json_t *rev = json_pack("{s:s}", "ID", id);
  int rc2 =
      rev ? kitd__etcd_call(&r->cl, "/v3/lease/revoke", rev, 0, NULL, NULL, detail) : KITD_ENOMEM;
  json_decref(rev);
  if (rc || rc2)
    kitd_log(r->lg, KITD_LOG_WARN, "etcd", "key=%s msg=\"deregister failed\" err=%s", r->qkey,
             kitd_err_name(rc ? rc : rc2));
  else kitd_log(r->lg, KITD_LOG_INFO, "etcd", "key=%s msg=deregistered", r->qkey);
}

static void reg_free(kitd_etcd_registrar *r) {
  kitd__etcd_client_clear(&r->cl);
  free(r->key);
  free(r->qkey);
  free(r->key_b64);
  free(r->val_b64);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

void kitd_etcd_registrar_free(kitd_etcd_registrar *r) {
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  kitd__etcd_client_stop(&r->cl);
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if (r->started) pthread_join(r->th, NULL);
  deregister(r);
  reg_free(r);
}

int kitd_etcd_registrar_new(const kitd_etcd *c, const char *key, const char *value,
                            const kitd_etcd_registrar_opts *o, kitd_logger *lg,
                            kitd_etcd_registrar **out) {
  if (!c || !key || !*key || !value || !out) return KITD_EINVAL;
  kitd_etcd_registrar_opts ro;
  kitd_etcd_registrar_opts_init(&ro);
  if (o && kitd__etcd_copy_opts(&ro, sizeof ro, o, o->size)) return KITD_ECONFIG;
  kitd_etcd_registrar *r = kitd__calloc(1, sizeof *r);
  if (!r) return KITD_ENOMEM;
  kitd__etcd_cond_init(&r->cv);
  pthread_mutex_init(&r->mu, NULL);
  r->ttl_s = ro.ttl_s > 0 ? ro.ttl_s : 10;
  r->backoff_min_ms = ro.backoff_min_ms > 0 ? ro.backoff_min_ms : 100;
  r->backoff_max_ms = ro.backoff_max_ms > r->backoff_min_ms ? ro.backoff_max_ms : r->backoff_min_ms;
  r->lg = lg;
  int e = kitd__etcd_client_init(&r->cl, c);
  size_t kl = strlen(key), ql = kl * 4 + 3;
  if (!e && (!(r->key = kitd__strdup(key)) || !(r->qkey = kitd__malloc(ql)) ||
             !(r->key_b64 = kitd__b64_encode((const unsigned char *)key, kl)) ||
             !(r->val_b64 = kitd__b64_encode((const unsigned char *)value, strlen(value)))))
    e = KITD_ENOMEM;
  if (e) {
    reg_free(r);
    return e;
  }
  kitd_log_quote(r->qkey, ql, key);
  if (pthread_create(&r->th, NULL, run, r) != 0) {
    reg_free(r);
    return KITD_EINTERNAL;
  }
  r->started = true;
  *out = r;
  return 0;
}
