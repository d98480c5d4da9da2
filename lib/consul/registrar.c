/* SPDX-License-Identifier: MIT */
/* kitd_registrar: register with the local agent, keep a TTL check alive,
 * register again when the agent forgets us, deregister on free. */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rand.h"
#include "consul/consul_impl.h"
#include "kitd/error.h"
#include "kitd/registrar.h"

#define REQ_TIMEOUT_MS 10000
#define DEREGISTER_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
/* A 403 will not fix itself quickly: try again slowly. */
#define ACL_RETRY_MS 15000
/* Without a TTL check nothing tells us the agent forgot the service: ask
 * it this often. */
#define RESYNC_MS 10000

struct kitd_registrar {
  kitd_consul *c;
  kitd_logger *lg;
  char *id, *name;
  char *body;              /* the registration, JSON */
  char *check_id_esc;      /* "service%3A<id>" */
  char *id_esc;
  kitd_check_kind kind;
  int64_t ttl_ms;
  kitd__consul_http *http;
  int stop;                /* atomic */
  pthread_mutex_t mu;      /* guards below */
  pthread_cond_t cv;       /* signalled on any change */
  bool registered;
  int last_err;
  const char *status;      /* TTL status the heartbeats send */
  bool heartbeats;
  bool dirty;              /* status or heartbeats changed: act now */
  pthread_t th;
  bool started;
  uint64_t rng;
};

static bool is_stopped(kitd_registrar *r) {
  return __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) != 0;
}

static void deadline_in(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t ns = (int64_t)ts->tv_nsec + (ms % 1000) * 1000000;
  ts->tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}

/* Sleep up to ms, waking early on stop or a status change (dirty). */
static void nap(kitd_registrar *r, int64_t ms) {
  struct timespec ts;
  deadline_in(&ts, ms);
  pthread_mutex_lock(&r->mu);
  while (!is_stopped(r) && !r->dirty)
    if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
  pthread_mutex_unlock(&r->mu);
}

static int64_t backoff(kitd_registrar *r, unsigned fails) {
  int64_t d = BACKOFF_MIN_MS;
  for (unsigned i = 1; i < fails && d < BACKOFF_MAX_MS; i++) d *= 2;
  if (d > BACKOFF_MAX_MS) d = BACKOFF_MAX_MS;
  return d / 2 + (int64_t)(kitd__xorshift64s(&r->rng) % (uint64_t)(d / 2 + 1));
}

static void set_state(kitd_registrar *r, bool registered, int err) {
  pthread_mutex_lock(&r->mu);
  r->registered = registered;
  r->last_err = err;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void rlog(kitd_registrar *r, kitd_log_level lvl, const char *msg, int err,
                 const char *detail) {
  if (!kitd_log_enabled(r->lg, lvl)) return;
  char svc[300], id[300], m[200], d[600];
  kitd_log(r->lg, lvl, "registrar", "service=%s id=%s msg=%s%s%s%s%s",
           kitd_log_quote(svc, sizeof svc, r->name), kitd_log_quote(id, sizeof id, r->id),
           kitd_log_quote(m, sizeof m, msg), err ? " err=" : "", err ? kitd_err_name(err) : "",
           detail ? " detail=" : "", detail ? kitd_log_quote(d, sizeof d, detail) : "");
}

static int put(kitd_registrar *r, kitd__consul_http *h, const char *path,
               const char *body, int64_t timeout_ms, kitd__consul_resp *resp) {
  kitd__consul_req q = {0};
  q.method = "PUT";
  q.path = path;
  q.body = body;
  q.body_len = body ? strlen(body) : 0;
  q.timeout_ms = timeout_ms;
  q.max_body = 1 << 20;
  (void)r;
  return kitd__consul_http_do(h, &q, resp);
}

/* Did the agent forget our check (restart, deregistration)? */
static bool forgotten(const kitd__consul_resp *resp) {
  if (resp->status == 404) return true;
  if (resp->status == 500 && resp->body &&
      (strstr(resp->body, "does not have associated TTL") ||
       strstr(resp->body, "Unknown check")))
    return true;
  return false;
}

static void *run(void *arg) {
  kitd_registrar *r = arg;
  unsigned fails = 0;
  bool registered = false;
  int64_t next_beat = 0, next_resync = 0;
  char path[1024];
  while (!is_stopped(r)) {
    kitd__consul_resp resp;
    if (!registered) {
      int rc = put(r, r->http, "/v1/agent/service/register", r->body, REQ_TIMEOUT_MS, &resp);
      if (rc == KITD_ESTOPPED) {
        kitd__consul_resp_clear(&resp);
        break;
      }
      if (rc) {
        fails++;
        set_state(r, false, rc);
        rlog(r, fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN,
             rc == KITD_EACL ? "registration refused: check the ACL token"
                             : "registration failed",
             rc, resp.detail);
        kitd__consul_resp_clear(&resp);
        int64_t d = backoff(r, fails);
        nap(r, rc == KITD_EACL && d < ACL_RETRY_MS ? ACL_RETRY_MS : d);
        continue;
      }
      kitd__consul_resp_clear(&resp);
      registered = true;
      fails = 0;
      set_state(r, true, 0);
      rlog(r, KITD_LOG_INFO, "registered", 0, NULL);
      next_beat = 0; /* report the TTL status at once */
      next_resync = kitd_now_ns() + (int64_t)RESYNC_MS * 1000000;
      continue;
    }
    pthread_mutex_lock(&r->mu);
    bool beats = r->heartbeats;
    const char *status = r->status;
    if (r->dirty) {
      r->dirty = false;
      next_beat = 0;
    }
    pthread_mutex_unlock(&r->mu);
    int64_t now = kitd_now_ns();
    if (r->kind == KITD_CHECK_TTL) {
      if (!beats) {
        nap(r, 3600 * 1000);
        continue;
      }
      if (now < next_beat) {
        nap(r, (next_beat - now) / 1000000 + 1);
        continue;
      }
      const char *verb = strcmp(status, "passing") == 0   ? "pass"
                         : strcmp(status, "warning") == 0 ? "warn"
                                                          : "fail";
      snprintf(path, sizeof path, "/v1/agent/check/%s/%s", verb, r->check_id_esc);
      int rc = put(r, r->http, path, NULL, REQ_TIMEOUT_MS, &resp);
      if (rc == KITD_ESTOPPED) {
        kitd__consul_resp_clear(&resp);
        break;
      }
      int64_t third = r->ttl_ms / 3 > 0 ? r->ttl_ms / 3 : 1;
      if (!rc) {
        fails = 0;
        set_state(r, true, 0);
        next_beat = kitd_now_ns() + third * 1000000;
      } else if (forgotten(&resp)) {
        rlog(r, KITD_LOG_WARN, "the agent forgot us: registering again", rc, resp.detail);
        registered = false;
        set_state(r, false, rc);
      } else {
        fails++;
        set_state(r, true, rc);
        rlog(r, KITD_LOG_WARN,
             rc == KITD_EACL ? "heartbeat refused: check the ACL token" : "heartbeat failed",
             rc, resp.detail);
        int64_t d = rc == KITD_EACL ? ACL_RETRY_MS : backoff(r, fails);
        if (rc != KITD_EACL && d > third) d = third;
        next_beat = kitd_now_ns() + d * 1000000;
      }
      kitd__consul_resp_clear(&resp);
      continue;
    }
    /* No TTL: ask the agent now and then whether it still knows us. */
    if (now < next_resync) {
      nap(r, (next_resync - now) / 1000000 + 1);
      continue;
    }
    next_resync = now + (int64_t)RESYNC_MS * 1000000;
    snprintf(path, sizeof path, "/v1/agent/health/service/id/%s", r->id_esc);
    kitd__consul_req q = {0};
    q.method = "GET";
    q.path = path;
    q.query = "format=text";
    q.timeout_ms = REQ_TIMEOUT_MS;
    q.max_body = 1 << 20;
    int rc = kitd__consul_http_do(r->http, &q, &resp);
    if (rc != KITD_ESTOPPED && resp.status == 404) {
      rlog(r, KITD_LOG_WARN, "the agent forgot us: registering again", rc, resp.detail);
      registered = false;
      set_state(r, false, rc);
    }
    kitd__consul_resp_clear(&resp);
  }
  return NULL;
}

static int dur(json_t *o, const char *key, int64_t ms) {
  char buf[32];
  kitd__consul_duration(buf, sizeof buf, ms);
  return json_object_set_new(o, key, json_string(buf));
}

/* The registration body, with Consul's field names only (an unknown key is
 * a 400 on Consul >= 1.7). */
static int build_body(const kitd_registration *g, const char *id, const char *check_id,
                      char **out) {
  json_t *o = json_object(), *a;
  if (!o) return KITD_ENOMEM;
  int bad = 0;
  bad |= json_object_set_new(o, "Name", json_string(g->name));
  bad |= json_object_set_new(o, "ID", json_string(id));
  if (g->ntags) {
    bad |= json_object_set_new(o, "Tags", a = json_array());
    for (size_t i = 0; a && i < g->ntags; i++) bad |= json_array_append_new(a, json_string(g->tags[i]));
  }
  if (g->address && *g->address) bad |= json_object_set_new(o, "Address", json_string(g->address));
  bad |= json_object_set_new(o, "Port", json_integer(g->port));
  if (g->nmeta) {
    json_t *m = json_object();
    bad |= json_object_set_new(o, "Meta", m);
    for (size_t i = 0; m && i < g->nmeta; i++)
      bad |= json_object_set_new(m, g->meta[2 * i], json_string(g->meta[2 * i + 1]));
  }
  if (g->weight_passing > 0) {
    json_t *w = json_object();
    bad |= json_object_set_new(o, "Weights", w);
    bad |= json_object_set_new(w, "Passing", json_integer(g->weight_passing));
    bad |= json_object_set_new(w, "Warning", json_integer(g->weight_warning));
  }
  const kitd_check *c = &g->check;
  if (c->kind != KITD_CHECK_NONE) {
    json_t *k = json_object();
    bad |= json_object_set_new(o, "Check", k);
    bad |= json_object_set_new(k, "CheckID", json_string(check_id));
    if (c->kind == KITD_CHECK_TTL) {
      bad |= dur(k, "TTL", c->ttl_ms);
    } else {
      bad |= json_object_set_new(k, c->kind == KITD_CHECK_HTTP ? "HTTP" : "TCP",
                                 json_string(c->target));
      bad |= dur(k, "Interval", c->interval_ms);
      if (c->timeout_ms > 0) bad |= dur(k, "Timeout", c->timeout_ms);
    }
    if (c->deregister_after_ms > 0)
      bad |= dur(k, "DeregisterCriticalServiceAfter", c->deregister_after_ms);
    if (c->initial_status) bad |= json_object_set_new(k, "Status", json_string(c->initial_status));
  }
  char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) return KITD_EINVAL; /* a NULL or non-UTF-8 string somewhere */
  *out = s;
  return 0;
}

static bool valid_status(const char *s) {
  return s && (strcmp(s, "passing") == 0 || strcmp(s, "warning") == 0 ||
               strcmp(s, "critical") == 0);
}

static int validate(const kitd_registration *g) {
  if (!g || !g->name || !*g->name) return KITD_EINVAL;
  if (g->port < 0 || g->port > 65535) return KITD_EINVAL;
  if ((g->ntags && !g->tags) || (g->nmeta && !g->meta)) return KITD_EINVAL;
  if (g->weight_passing < 0 || g->weight_passing > 65535 || g->weight_warning < 0 ||
      g->weight_warning > 65535)
    return KITD_EINVAL;
  const kitd_check *c = &g->check;
  if (c->initial_status && !valid_status(c->initial_status)) return KITD_EINVAL;
  switch (c->kind) {
    case KITD_CHECK_NONE: return 0;
    case KITD_CHECK_TTL: return c->ttl_ms > 0 ? 0 : KITD_EINVAL;
    case KITD_CHECK_HTTP:
    case KITD_CHECK_TCP: return c->target && *c->target && c->interval_ms > 0 ? 0 : KITD_EINVAL;
  }
  return KITD_EINVAL;
}

static void reg_free_fields(kitd_registrar *r) {
  kitd__consul_http_free(r->http);
  kitd_consul_free(r->c);
  free(r->id);
  free(r->name);
  free(r->body);
  free(r->check_id_esc);
  free(r->id_esc);
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

static char *escape_dup(const char *s) {
  size_t cap = 3 * strlen(s) + 1;
  char *e = kitd__malloc(cap);
  if (!e) return NULL;
  e[0] = '\0';
  kitd__consul_escape(e, cap, s);
  return e;
}

int kitd_registrar_new(const kitd_consul *c, const kitd_registration *reg,
                       kitd_logger *lg, kitd_registrar **out) {
  if (!c || !out) return KITD_EINVAL;
  int e = validate(reg);
  if (e) return e;
  kitd_registrar *r = kitd__calloc(1, sizeof *r);
  if (!r) return KITD_ENOMEM;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&r->mu, NULL);
  r->lg = lg;
  r->kind = reg->check.kind;
  r->ttl_ms = reg->check.ttl_ms;
  r->status = "passing";
  r->heartbeats = true;
  r->rng = (uint64_t)kitd_now_ns() ^ (uint64_t)(uintptr_t)r;
  if (!r->rng) r->rng = 1;
  char idbuf[600];
  const char *id = reg->id;
  if (!id || !*id) {
    char host[256] = "";
    const char *addr = reg->address;
    if (!addr || !*addr) {
      gethostname(host, sizeof host - 1);
      addr = host;
    }
    snprintf(idbuf, sizeof idbuf, "%s-%s-%d", reg->name, addr, reg->port);
    id = idbuf;
  }
  char check_id[700];
  snprintf(check_id, sizeof check_id, "service:%s", id);
  if (!(r->id = kitd__strdup(id)) || !(r->name = kitd__strdup(reg->name)) ||
      !(r->check_id_esc = escape_dup(check_id)) || !(r->id_esc = escape_dup(id)))
    e = KITD_ENOMEM;
  if (!e) e = build_body(reg, id, check_id, &r->body);
  if (!e) e = kitd__consul_dup(c, &r->c);
  if (!e) e = kitd__consul_http_new(r->c, &r->stop, &r->http);
  if (!e && pthread_create(&r->th, NULL, run, r) != 0) e = KITD_EINTERNAL;
  if (e) {
    reg_free_fields(r);
    return e;
  }
  r->started = true;
  *out = r;
  return 0;
}

int kitd_registrar_wait_registered(kitd_registrar *r, int64_t timeout_ms) {
  if (!r) return KITD_EINVAL;
  struct timespec ts;
  if (timeout_ms >= 0) deadline_in(&ts, timeout_ms);
  int rc = 0;
  pthread_mutex_lock(&r->mu);
  while (!r->registered && !is_stopped(r)) {
    if (timeout_ms < 0) pthread_cond_wait(&r->cv, &r->mu);
    else if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
  }
  if (!r->registered) rc = is_stopped(r) ? KITD_ESTOPPED : KITD_ETIMEDOUT;
  pthread_mutex_unlock(&r->mu);
  return rc;
}

int kitd_registrar_registered(kitd_registrar *r, int *last_err) {
  if (!r) return 0;
  pthread_mutex_lock(&r->mu);
  int reg = r->registered;
  if (last_err) *last_err = r->last_err;
  pthread_mutex_unlock(&r->mu);
  return reg;
}

int kitd_registrar_set_status(kitd_registrar *r, const char *status) {
  if (!r || r->kind != KITD_CHECK_TTL || !valid_status(status)) return KITD_EINVAL;
  pthread_mutex_lock(&r->mu);
  r->status = strcmp(status, "passing") == 0   ? "passing"
              : strcmp(status, "warning") == 0 ? "warning"
                                               : "critical";
  r->dirty = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

int kitd_registrar_set_heartbeats(kitd_registrar *r, int on) {
  if (!r || r->kind != KITD_CHECK_TTL) return KITD_EINVAL;
  pthread_mutex_lock(&r->mu);
  r->heartbeats = on != 0;
  r->dirty = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return 0;
}

void kitd_registrar_free(kitd_registrar *r) {
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  kitd__consul_http_wake(r->http);
  if (r->started) pthread_join(r->th, NULL);
  /* Deregister with a fresh connection (the old one sees the stop flag),
   * bounded so that a dead agent cannot hold up the caller. */
  kitd__consul_http *h = NULL;
  if (kitd__consul_http_new(r->c, NULL, &h) == 0) {
    char path[1024];
    snprintf(path, sizeof path, "/v1/agent/service/deregister/%s", r->id_esc);
    kitd__consul_resp resp;
    int rc = put(r, h, path, NULL, DEREGISTER_TIMEOUT_MS, &resp);
    if (rc && resp.status != 404) rlog(r, KITD_LOG_WARN, "deregistration failed", rc, resp.detail);
    else rlog(r, KITD_LOG_INFO, "deregistered", 0, NULL);
    kitd__consul_resp_clear(&resp);
    kitd__consul_http_free(h);
  }
  reg_free_fields(r);
}
