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
#include "core/backoff.h"
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
  char *body; /* the registration, JSON */
  /* Every path that carries the ID, escaped and allocated to size: a fixed
   * buffer once cut a long ID, and the agent answered each heartbeat 404. */
  char *path_beat[3]; /* /v1/agent/check/{pass,warn,fail}/service%3A<id> */
  char *path_health;  /* /v1/agent/health/service/id/<id> */
  char *path_dereg;   /* /v1/agent/service/deregister/<id> */
  kitd_check_kind kind;
  int64_t ttl_ms;
  kitd__consul_http *http;
  int stop;           /* atomic */
  pthread_mutex_t mu; /* guards below */
  pthread_cond_t cv;  /* signalled on any change */
  bool registered;
  int last_err;
  const char *status; /* TTL status the heartbeats send */
  bool heartbeats;
  bool dirty; /* status or heartbeats changed: act now */
  pthread_t th;
  bool started;
  bool sync_ok;      /* mu and cv were initialised */
  bool deregistered; /* kitd_registrar_deregister() has run */
  int dereg_rc;      /* and what it returned */
};

/* What the thread keeps between rounds. */
struct run_state {
  bool registered;
  unsigned fails;        /* consecutive failed requests */
  unsigned forgets;      /* times the agent forgot us with no good beat since */
  int64_t next_register; /* monotonic ns: not before */
  int64_t next_beat, next_resync;
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

/* The delay after `n` >= 1 consecutive failures, in ms: the library's one
 * backoff, jittered in [d/2, d] so registrars that failed together (an
 * agent restart) come back spread out. */
static int64_t backoff_ms(unsigned n) {
  return kitd__backoff_ns((int64_t)BACKOFF_MIN_MS * 1000000, (int64_t)BACKOFF_MAX_MS * 1000000, n,
                          KITD__JITTER_HALF) /
         1000000;
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

static int put(kitd__consul_http *h, const char *path, const char *body, int64_t timeout_ms,
               kitd__consul_resp *resp) {
  kitd__consul_req q = {0};
  q.method = "PUT";
  q.path = path;
  q.body = body;
  q.body_len = body ? strlen(body) : 0;
  q.timeout_ms = timeout_ms;
  q.max_body = 1 << 20;
  return kitd__consul_http_do(h, &q, resp);
}

/* Did the agent forget our check (restart, deregistration)? */
static bool forgotten(const kitd__consul_resp *resp) {
  if (resp->status == 404) return true;
  if (resp->status == 500 && resp->body &&
      (strstr(resp->body, "does not have associated TTL") || strstr(resp->body, "Unknown check")))
    return true;
  return false;
}

/* The agent no longer holds us: register again, but not at once if it
 * keeps forgetting (an agent that drops us on every beat, a path it cannot
 * route): without this a registrar once sent ~8,000 registrations a second. */
static void forget(kitd_registrar *r, struct run_state *st, int rc, const char *detail) {
  st->forgets++;
  int64_t d = backoff_ms(st->forgets);
  rlog(r, st->forgets == 1 ? KITD_LOG_WARN : KITD_LOG_ERROR,
       "the agent forgot us: registering again", rc, detail);
  st->registered = false;
  st->next_register = kitd_now_ns() + d * 1000000;
  set_state(r, false, rc);
}

/* One registration attempt; on failure sleeps the backoff. Returns false
 * when stopped. */
static bool try_register(kitd_registrar *r, struct run_state *st) {
  int64_t now = kitd_now_ns();
  if (now < st->next_register) {
    nap(r, (st->next_register - now) / 1000000 + 1);
    return !is_stopped(r);
  }
  kitd__consul_resp resp;
  int rc = put(r->http, "/v1/agent/service/register", r->body, REQ_TIMEOUT_MS, &resp);
  if (rc == KITD_ESTOPPED) {
    kitd__consul_resp_clear(&resp);
    return false;
  }
  if (rc) {
    st->fails++;
    set_state(r, false, rc);
    rlog(r, st->fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN,
         rc == KITD_EACL ? "registration refused: check the ACL token" : "registration failed", rc,
         resp.detail);
    kitd__consul_resp_clear(&resp);
    int64_t d = backoff_ms(st->fails);
    nap(r, rc == KITD_EACL && d < ACL_RETRY_MS ? ACL_RETRY_MS : d);
    return !is_stopped(r);
  }
  kitd__consul_resp_clear(&resp);
  st->registered = true;
  st->fails = 0;
  set_state(r, true, 0);
  rlog(r, KITD_LOG_INFO, "registered", 0, NULL);
  st->next_beat = 0; /* report the TTL status at once */
  st->next_resync = kitd_now_ns() + (int64_t)RESYNC_MS * 1000000;
  return true;
}

/* TTL check: send the status at a third of the TTL. Returns false when
 * stopped. */
static bool heartbeat(kitd_registrar *r, struct run_state *st) {
  pthread_mutex_lock(&r->mu);
  bool beats = r->heartbeats;
  const char *status = r->status;
  if (r->dirty) {
    r->dirty = false;
    st->next_beat = 0;
  }
  pthread_mutex_unlock(&r->mu);
  int64_t now = kitd_now_ns();
  if (!beats) {
    nap(r, 3600 * 1000);
    return !is_stopped(r);
  }
  if (now < st->next_beat) {
    nap(r, (st->next_beat - now) / 1000000 + 1);
    return !is_stopped(r);
  }
  int v = strcmp(status, "passing") == 0 ? 0 : strcmp(status, "warning") == 0 ? 1 : 2;
  kitd__consul_resp resp;
  int rc = put(r->http, r->path_beat[v], NULL, REQ_TIMEOUT_MS, &resp);
  if (rc == KITD_ESTOPPED) {
    kitd__consul_resp_clear(&resp);
    return false;
  }
  int64_t third = r->ttl_ms / 3 > 0 ? r->ttl_ms / 3 : 1;
  if (!rc) {
    st->fails = 0;
    st->forgets = 0;
    set_state(r, true, 0);
    st->next_beat = kitd_now_ns() + third * 1000000;
  } else if (forgotten(&resp)) {
    forget(r, st, rc, resp.detail);
  } else {
    st->fails++;
    set_state(r, true, rc);
    rlog(r, KITD_LOG_WARN,
         rc == KITD_EACL ? "heartbeat refused: check the ACL token" : "heartbeat failed", rc,
         resp.detail);
    int64_t d = rc == KITD_EACL ? ACL_RETRY_MS : backoff_ms(st->fails);
    if (rc != KITD_EACL && d > third) d = third;
    st->next_beat = kitd_now_ns() + d * 1000000;
  }
  kitd__consul_resp_clear(&resp);
  return true;
}

/* No TTL: ask the agent now and then whether it still knows us. Returns
 * false when stopped. */
static bool resync(kitd_registrar *r, struct run_state *st) {
  int64_t now = kitd_now_ns();
  if (now < st->next_resync) {
    nap(r, (st->next_resync - now) / 1000000 + 1);
    return !is_stopped(r);
  }
  st->next_resync = now + (int64_t)RESYNC_MS * 1000000;
  kitd__consul_req q = {0};
  q.method = "GET";
  q.path = r->path_health;
  q.query = "format=text";
  q.timeout_ms = REQ_TIMEOUT_MS;
  q.max_body = 1 << 20;
  kitd__consul_resp resp;
  int rc = kitd__consul_http_do(r->http, &q, &resp);
  if (rc == KITD_ESTOPPED) {
    kitd__consul_resp_clear(&resp);
    return false;
  }
  if (resp.status == 404) forget(r, st, rc, resp.detail);
  else if (!rc) st->forgets = 0;
  kitd__consul_resp_clear(&resp);
  return true;
}

static void *run(void *arg) {
  kitd_registrar *r = arg;
  struct run_state st = {0};
  bool go = true;
  while (go && !is_stopped(r)) {
    if (!st.registered) go = try_register(r, &st);
    else if (r->kind == KITD_CHECK_TTL) go = heartbeat(r, &st);
    else go = resync(r, &st);
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
    for (size_t i = 0; a && i < g->ntags; i++)
      bad |= json_array_append_new(a, json_string(g->tags[i]));
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
  return s &&
         (strcmp(s, "passing") == 0 || strcmp(s, "warning") == 0 || strcmp(s, "critical") == 0);
}

void kitd_registration_init(kitd_registration *g) {
  if (!g) return;
  memset(g, 0, sizeof *g);
  g->size = sizeof *g;
}

static int validate(const kitd_registration *g) {
  /* A size this build does not know: the caller's struct may lack fields
   * we would read (or skipped _init and left it 0). */
  if (!g || g->size != sizeof *g || !g->name || !*g->name) return KITD_EINVAL;
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
  for (int i = 0; i < 3; i++) free(r->path_beat[i]);
  free(r->path_health);
  free(r->path_dereg);
  if (r->sync_ok) {
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
  }
  free(r);
}

/* "<name>-<address or host name>-<port>", allocated to size. */
static char *default_id(const kitd_registration *reg) {
  char host[256] = "";
  const char *addr = reg->address;
  if (!addr || !*addr) {
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    addr = host;
  }
  int n = snprintf(NULL, 0, "%s-%s-%d", reg->name, addr, reg->port);
  char *id = n < 0 ? NULL : kitd__malloc((size_t)n + 1);
  if (id) snprintf(id, (size_t)n + 1, "%s-%s-%d", reg->name, addr, reg->port);
  return id;
}

static int make_paths(kitd_registrar *r, const char *check_id) {
  static const char *const beat[3] = {"/v1/agent/check/pass/", "/v1/agent/check/warn/",
                                      "/v1/agent/check/fail/"};
  for (int i = 0; i < 3; i++)
    if (!(r->path_beat[i] = kitd__consul_path(beat[i], check_id))) return KITD_ENOMEM;
  if (!(r->path_health = kitd__consul_path("/v1/agent/health/service/id/", r->id)) ||
      !(r->path_dereg = kitd__consul_path("/v1/agent/service/deregister/", r->id)))
    return KITD_ENOMEM;
  return 0;
}

/* Copy what the thread needs from `reg`. */
static int fill(kitd_registrar *r, const kitd_registration *reg) {
  r->kind = reg->check.kind;
  r->ttl_ms = reg->check.ttl_ms;
  r->status = "passing";
  r->heartbeats = true;
  r->id = reg->id && *reg->id ? kitd__strdup(reg->id) : default_id(reg);
  if (!r->id || !(r->name = kitd__strdup(reg->name))) return KITD_ENOMEM;
  size_t cl = strlen("service:") + strlen(r->id) + 1;
  char *check_id = kitd__malloc(cl);
  if (!check_id) return KITD_ENOMEM;
  snprintf(check_id, cl, "service:%s", r->id);
  int e = make_paths(r, check_id);
  if (!e) e = build_body(reg, r->id, check_id, &r->body);
  free(check_id);
  return e;
}

int kitd_registrar_new(const kitd_consul *c, const kitd_registration *reg, kitd_logger *lg,
                       kitd_registrar **out) {
  if (!c || !out) return KITD_EINVAL;
  int e = validate(reg);
  if (e) return e;
  kitd_registrar *r = kitd__calloc(1, sizeof *r);
  if (!r) return KITD_ENOMEM;
  r->lg = lg;
  e = kitd__consul_sync_init(&r->mu, &r->cv);
  r->sync_ok = !e;
  if (!e) e = fill(r, reg);
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

/* Stop the thread (once). */
static void stop_thread(kitd_registrar *r) {
  pthread_mutex_lock(&r->mu);
  __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  kitd__consul_http_wake(r->http);
  if (r->started) {
    pthread_join(r->th, NULL);
    r->started = false;
  }
}

int kitd_registrar_deregister(kitd_registrar *r) {
  if (!r) return KITD_EINVAL;
  if (r->deregistered) return r->dereg_rc;
  stop_thread(r);
  /* A fresh connection (the old one sees the stop flag), bounded so that a
   * dead agent cannot hold up the caller. */
  kitd__consul_http *h = NULL;
  int rc = kitd__consul_http_new(r->c, NULL, &h);
  if (rc) {
    rlog(r, KITD_LOG_ERROR, "deregistration failed", rc, NULL);
  } else {
    kitd__consul_resp resp;
    rc = put(h, r->path_dereg, NULL, DEREGISTER_TIMEOUT_MS, &resp);
    /* A 404 is a failure too: the agent did not hold this ID, so whatever it
     * holds (a cut or mis-escaped ID) is still registered. */
    if (rc)
      rlog(r, KITD_LOG_ERROR,
           resp.status == 404 ? "deregistration failed: the agent does not know this ID"
                              : "deregistration failed",
           rc, resp.detail);
    else rlog(r, KITD_LOG_INFO, "deregistered", 0, NULL);
    kitd__consul_resp_clear(&resp);
    kitd__consul_http_free(h);
  }
  set_state(r, false, rc);
  r->deregistered = true;
  r->dereg_rc = rc;
  return rc;
}

void kitd_registrar_free(kitd_registrar *r) {
  if (!r) return;
  kitd_registrar_deregister(r);
  reg_free_fields(r);
}
