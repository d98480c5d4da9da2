/* SPDX-License-Identifier: MIT */
/* The Consul instancer: one thread per watched service running blocking
 * queries on /v1/health/service/<name>, following the client rules of
 * shared/consul-api.md (index reset, index >= 1, rate limit, timeout). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/backoff.h"
#include "consul/consul_impl.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

/* Extra time the HTTP timeout allows beyond wait + wait/16: the agent may
 * hold a request ~7 s looking for a leader, so at least 10 s. */
#define MARGIN_MS 11000
/* Timeout of a non-blocking request. */
#define PLAIN_TIMEOUT_MS 20000
#define BUCKET_BURST 2.0

struct consul_instancer {
  struct kitd_instancer base; /* first: kitd_instancer * points here */
  kitd_consul *c;
  char *service;
  char *path; /* /v1/health/service/<escaped> */
  char **tags;
  size_t ntags;
  char *dc;
  char *zone_key; /* NULL: the record's default */
  bool passing;
  int64_t wait_ms, min_interval_ms, backoff_min_ms, backoff_max_ms;
  size_t max_body;
  kitd_logger *lg;
  kitd__consul_http *http;
  int stop;           /* atomic */
  pthread_mutex_t mu; /* for interruptible sleeps */
  pthread_cond_t cv;
  pthread_t th;
  bool started;
  bool sync_ok; /* mu and cv were initialised */
};

void kitd_consul_instancer_opts_init(kitd_consul_instancer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->passing_only = 1;
  o->wait_ms = 5 * 60 * 1000;
  o->min_interval_ms = 1000;
  o->backoff_min_ms = 50;
  o->backoff_max_ms = 10000;
}

static bool is_stopped(struct consul_instancer *ci) {
  return __atomic_load_n(&ci->stop, __ATOMIC_ACQUIRE) != 0;
}

/* Sleep up to ms; returns false if stopped meanwhile. */
static bool nap(struct consul_instancer *ci, int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
  ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&ci->mu);
  while (!is_stopped(ci))
    if (pthread_cond_timedwait(&ci->cv, &ci->mu, &ts) != 0) break;
  pthread_mutex_unlock(&ci->mu);
  return !is_stopped(ci);
}

static void log_service(struct consul_instancer *ci, kitd_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_service(struct consul_instancer *ci, kitd_log_level lvl, const char *fmt, ...) {
  if (!kitd_log_enabled(ci->lg, lvl)) return;
  char svc[300], rest[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rest, sizeof rest, fmt, ap);
  va_end(ap);
  kitd_log(ci->lg, lvl, "consul", "service=%s %s", kitd_log_quote(svc, sizeof svc, ci->service),
           rest);
}

/* Build the query string of a health request. */
static char *build_query(struct consul_instancer *ci, uint64_t index, bool passing,
                         const char *const *tags, size_t ntags, int64_t wait_ms) {
  size_t cap = 128;
  for (size_t i = 0; i < ntags; i++) cap += 8 + 3 * strlen(tags[i]);
  char *q = kitd__malloc(cap);
  if (!q) return NULL;
  q[0] = '\0';
  (void)ci;
  if (passing) strcat(q, "passing=1");
  for (size_t i = 0; i < ntags; i++) {
    /* Send every tag (agents >= 1.3 match them all), and check locally. */
    strcat(q, *q ? "&tag=" : "tag=");
    if (kitd__consul_escape(q, cap, tags[i])) {
      free(q);
      return NULL;
    }
  }
  if (index > 0) {
    char w[32], buf[96];
    kitd__consul_duration(w, sizeof w, wait_ms);
    snprintf(buf, sizeof buf, "%sindex=%llu&wait=%s", *q ? "&" : "", (unsigned long long)index, w);
    strcat(q, buf);
  }
  return q;
}

static void watch_failed(struct consul_instancer *ci, int err, const char *detail,
                         unsigned *fails) {
  (*fails)++;
  /* Jitter in [d/2, d]: many watchers that failed together spread out. */
  int64_t delay = kitd__backoff_ns(ci->backoff_min_ms * 1000000, ci->backoff_max_ms * 1000000,
                                   *fails, KITD__JITTER_HALF) /
                  1000000;
  /* The detail reaches a caller's ctx through the endpointer: make it say
   * who failed ("consul: ..."); the HTTP layer's texts already do. */
  char full[sizeof((kitd__consul_resp *)0)->detail + 16];
  if (strncmp(detail, "consul:", 7) != 0) {
    snprintf(full, sizeof full, "consul: %s", detail);
    detail = full;
  }
  kitd__instancer_publish_error(&ci->base, err, detail);
  char dq[600];
  log_service(ci, *fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN,
              "msg=\"watch failed\" err=%s detail=%s failures=%u retry_ms=%lld", kitd_err_name(err),
              kitd_log_quote(dq, sizeof dq, detail), *fails, (long long)delay);
  nap(ci, delay);
}

static void *watch(void *arg) {
  struct consul_instancer *ci = arg;
  uint64_t index = 0;
  bool answered = false;
  unsigned fails = 0;
  double tokens = BUCKET_BURST;
  int64_t last_refill = kitd_now_ns();
  size_t last_count = (size_t)-1;
  /* The base's stop flag too: a subscriber's callback may stop the
   * instancer from this very thread, and then nothing else wakes us. */
  while (!is_stopped(ci) && !kitd__instancer_stopped(&ci->base)) {
    /* Rate limit: a token bucket (burst 2) instead of a fixed sleep, so an
     * isolated change costs no delay and a churning service is polled about
     * once per min_interval. */
    int64_t now = kitd_now_ns();
    tokens += (double)(now - last_refill) / ((double)ci->min_interval_ms * 1e6);
    if (tokens > BUCKET_BURST) tokens = BUCKET_BURST;
    last_refill = now;
    if (tokens < 1.0) {
      int64_t ms = (int64_t)((1.0 - tokens) * (double)ci->min_interval_ms) + 1;
      if (!nap(ci, ms)) break;
      continue;
    }
    tokens -= 1.0;

    /* Never block with an index below 1 (rule 2): 0 means "answer now". */
    char *query =
        build_query(ci, index, ci->passing, (const char *const *)ci->tags, ci->ntags, ci->wait_ms);
    if (!query) {
      watch_failed(ci, KITD_ENOMEM, "out of memory", &fails);
      continue;
    }
    kitd__consul_req q = {0};
    q.method = "GET";
    q.path = ci->path;
    q.query = query;
    q.dc = ci->dc;
    q.max_body = ci->max_body;
    /* Rule 4: the timeout exceeds wait + wait/16 + 10 s. */
    q.timeout_ms = index > 0 ? ci->wait_ms + ci->wait_ms / 16 + MARGIN_MS : PLAIN_TIMEOUT_MS;
    kitd__consul_resp r;
    int rc = kitd__consul_http_do(ci->http, &q, &r);
    free(query);
    if (rc == KITD_ESTOPPED || is_stopped(ci)) {
      kitd__consul_resp_clear(&r);
      break;
    }
    if (!rc && !r.has_index) {
      rc = KITD_EPROTO;
      snprintf(r.detail, sizeof r.detail, "answer without X-Consul-Index");
    }
    kitd_instance **set = NULL;
    size_t count = 0;
    if (!rc)
      rc = kitd__consul_parse_health(r.body, r.len, (const char *const *)ci->tags, ci->ntags,
                                     ci->passing, ci->zone_key, &set, &count, r.detail,
                                     sizeof r.detail);
    if (rc) {
      /* Keep the last good set (the base does), and ask without an index
       * next time: a restarted agent's index may be far below ours, and
       * blocking on it would hide every change for a whole wait. */
      index = 0;
      watch_failed(ci, rc, r.detail, &fails);
      kitd__consul_resp_clear(&r);
      continue;
    }
    uint64_t got = r.index;
    kitd__consul_resp_clear(&r);
    if (fails) log_service(ci, KITD_LOG_INFO, "msg=\"watch recovered\" failures=%u", fails);
    fails = 0;
    if (count != last_count)
      log_service(ci, KITD_LOG_INFO, "instances=%zu index=%llu", count, (unsigned long long)got);
    last_count = count;
    /* KITD_ESTOPPED: a subscriber's callback stopped the instancer; it
     * could not join this thread from inside the callback, so end here. */
    if (kitd__instancer_publish(&ci->base, set, count) == KITD_ESTOPPED) break;
    if (answered && got < index) {
      /* Rule 1: the index went backwards (snapshot restore, restarted dev
       * agent): start again from 0. */
      log_service(ci, KITD_LOG_INFO, "msg=\"index went backwards, reset\" old=%llu new=%llu",
                  (unsigned long long)index, (unsigned long long)got);
      index = 0;
    } else {
      /* Rule 2: never block below 1 (an agent answering 0 would make an
       * unaware client spin). */
      index = got < 1 ? 1 : got;
    }
    answered = true;
  }
  return NULL;
}

static void ci_stop(kitd_instancer *in) {
  struct consul_instancer *ci = (struct consul_instancer *)in;
  pthread_mutex_lock(&ci->mu);
  __atomic_store_n(&ci->stop, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&ci->cv);
  pthread_mutex_unlock(&ci->mu);
  kitd__consul_http_wake(ci->http);
  if (ci->started) {
    pthread_join(ci->th, NULL);
    ci->started = false;
  }
}

static void ci_free_fields(struct consul_instancer *ci) {
  kitd__consul_http_free(ci->http);
  kitd_consul_free(ci->c);
  free(ci->service);
  free(ci->path);
  for (size_t i = 0; i < ci->ntags; i++) free(ci->tags[i]);
  free(ci->tags);
  free(ci->dc);
  free(ci->zone_key);
  if (ci->sync_ok) {
    pthread_cond_destroy(&ci->cv);
    pthread_mutex_destroy(&ci->mu);
  }
  free(ci);
}

static void ci_destroy(kitd_instancer *in) { ci_free_fields((struct consul_instancer *)in); }

static const struct kitd__instancer_ops consul_ops = {"consul", ci_stop, ci_destroy};

static int make_path(const char *service, char **out) {
  size_t cap = 32 + 3 * strlen(service);
  char *p = kitd__malloc(cap);
  if (!p) return KITD_ENOMEM;
  strcpy(p, "/v1/health/service/");
  if (kitd__consul_escape(p, cap, service)) {
    free(p);
    return KITD_EINVAL;
  }
  *out = p;
  return 0;
}

/* The options this build knows: an opts that kitd_consul_instancer_opts_init()
 * did not fill (size 0) or from an unknown layout is refused, so that a
 * field added later is never read from a caller built without it. */
static int resolve_opts(const kitd_consul_instancer_opts *o, kitd_consul_instancer_opts *r) {
  kitd_consul_instancer_opts_init(r);
  if (!o) return 0;
  if (o->size != sizeof *o) return KITD_EINVAL;
  r->passing_only = o->passing_only;
  r->zone_meta_key = o->zone_meta_key;
  r->tags = o->tags;
  r->ntags = o->ntags;
  r->datacenter = o->datacenter;
  if (o->wait_ms > 0) r->wait_ms = o->wait_ms;
  if (o->max_body) r->max_body = o->max_body;
  if (o->min_interval_ms > 0) r->min_interval_ms = o->min_interval_ms;
  if (o->backoff_min_ms > 0) r->backoff_min_ms = o->backoff_min_ms;
  if (o->backoff_max_ms > 0) r->backoff_max_ms = o->backoff_max_ms;
  if (r->backoff_max_ms < r->backoff_min_ms) r->backoff_max_ms = r->backoff_min_ms;
  return 0;
}

static int copy_tags(const kitd_consul_instancer_opts *o, char ***tags, size_t *ntags) {
  *tags = NULL;
  *ntags = 0;
  if (!o->ntags) return 0;
  if (!o->tags) return KITD_EINVAL;
  char **t = kitd__calloc(o->ntags, sizeof *t);
  if (!t) return KITD_ENOMEM;
  for (size_t i = 0; i < o->ntags; i++) {
    if (!o->tags[i] || !(t[i] = kitd__strdup(o->tags[i]))) {
      for (size_t j = 0; j < i; j++) free(t[j]);
      free(t);
      return o->tags[i] ? KITD_ENOMEM : KITD_EINVAL;
    }
  }
  *tags = t;
  *ntags = o->ntags;
  return 0;
}

/* kitd_instancer_describe(): what an empty set means, e.g. "passing
 * instances of 'users' with tags [v2] in dc2". */
static int describe(struct consul_instancer *ci) {
  size_t cap = 64 + strlen(ci->service) + (ci->dc ? strlen(ci->dc) : 0);
  for (size_t i = 0; i < ci->ntags; i++) cap += strlen(ci->tags[i]) + 1;
  char *w = kitd__malloc(cap);
  if (!w) return KITD_ENOMEM;
  size_t o =
      (size_t)snprintf(w, cap, "%sinstances of '%s'", ci->passing ? "passing " : "", ci->service);
  for (size_t i = 0; i < ci->ntags; i++)
    o += (size_t)snprintf(w + o, cap - o, "%s%s", i ? "," : " with tags [", ci->tags[i]);
  if (ci->ntags) o += (size_t)snprintf(w + o, cap - o, "]");
  if (ci->dc) snprintf(w + o, cap - o, " in %s", ci->dc);
  int e = kitd__instancer_set_what(&ci->base, w);
  free(w);
  return e;
}

/* Copy the resolved options and the config into `ci`. */
static int ci_fill(struct consul_instancer *ci, const kitd_consul *c, const char *service,
                   const kitd_consul_instancer_opts *ro) {
  ci->passing = ro->passing_only != 0;
  ci->wait_ms = ro->wait_ms;
  ci->min_interval_ms = ro->min_interval_ms;
  ci->backoff_min_ms = ro->backoff_min_ms;
  ci->backoff_max_ms = ro->backoff_max_ms;
  ci->max_body = ro->max_body;
  const char *dc = ro->datacenter ? ro->datacenter : c->dc;
  int e = kitd__consul_dup(c, &ci->c);
  if (!e && !(ci->service = kitd__strdup(service))) e = KITD_ENOMEM;
  if (!e) e = make_path(service, &ci->path);
  if (!e) e = copy_tags(ro, &ci->tags, &ci->ntags);
  if (!e && dc && *dc && !(ci->dc = kitd__strdup(dc))) e = KITD_ENOMEM;
  if (!e && ro->zone_meta_key && !(ci->zone_key = kitd__strdup(ro->zone_meta_key))) e = KITD_ENOMEM;
  if (!e) e = kitd__consul_http_new(ci->c, &ci->stop, &ci->http);
  return e;
}

int kitd_consul_instancer_new(const kitd_consul *c, const char *service,
                              const kitd_consul_instancer_opts *o, kitd_logger *lg,
                              kitd_instancer **out) {
  if (!c || !service || !*service || !out) return KITD_EINVAL;
  kitd_consul_instancer_opts ro;
  if (resolve_opts(o, &ro)) return KITD_EINVAL;
  if (ro.wait_ms < 1000) ro.wait_ms = 1000; /* Consul's duration granularity */
  struct consul_instancer *ci = kitd__calloc(1, sizeof *ci);
  if (!ci) return KITD_ENOMEM;
  ci->lg = lg;
  int e = kitd__consul_sync_init(&ci->mu, &ci->cv);
  ci->sync_ok = !e;
  if (!e) e = ci_fill(ci, c, service, &ro);
  if (e) {
    ci_free_fields(ci);
    return e;
  }
  if ((e = kitd__instancer_init(&ci->base, &consul_ops))) {
    ci_free_fields(ci);
    return e;
  }
  if ((e = describe(ci))) {
    kitd_instancer_free(&ci->base); /* stop (no thread) + destroy */
    return e;
  }
  if (pthread_create(&ci->th, NULL, watch, ci) != 0) {
    kitd_instancer_free(&ci->base);
    return KITD_EINTERNAL;
  }
  ci->started = true;
  *out = &ci->base;
  return 0;
}

int kitd_consul_lookup(const kitd_consul *c, const char *service,
                       const kitd_consul_instancer_opts *o, kitd_ctx *ctx,
                       kitd_instance ***instances, size_t *count) {
  if (!c || !service || !*service || !instances || !count) return KITD_EINVAL;
  kitd_consul_instancer_opts ro;
  if (resolve_opts(o, &ro)) return KITD_EINVAL;
  char **tags = NULL, *path = NULL, *query = NULL;
  size_t ntags = 0;
  kitd__consul_http *h = NULL;
  int e = copy_tags(&ro, &tags, &ntags);
  if (!e) e = make_path(service, &path);
  if (!e &&
      !(query = build_query(NULL, 0, ro.passing_only != 0, (const char *const *)tags, ntags, 0)))
    e = KITD_ENOMEM;
  if (!e) e = kitd__consul_http_new(c, NULL, &h);
  if (e) {
    kitd_ctx_set_detail(ctx, "%s", kitd_strerror(e));
    goto out;
  }
  kitd__consul_req q = {0};
  q.method = "GET";
  q.path = path;
  q.query = query;
  q.dc = ro.datacenter ? ro.datacenter : c->dc;
  q.max_body = ro.max_body;
  int64_t left = ctx ? kitd_ctx_remaining_ms(ctx) : -1;
  q.timeout_ms = left < 0 ? 30000 : (left == 0 ? 1 : left);
  q.ctx = ctx;
  kitd__consul_resp r;
  e = kitd__consul_http_do(h, &q, &r);
  kitd_instance **set = NULL;
  size_t n = 0;
  if (!e)
    e = kitd__consul_parse_health(r.body, r.len, (const char *const *)tags, ntags,
                                  ro.passing_only != 0, ro.zone_meta_key, &set, &n, r.detail,
                                  sizeof r.detail);
  if (e) {
    kitd_ctx_set_detail(ctx, "%s", r.detail);
    if (r.status) kitd_ctx_set_status(ctx, r.status);
  } else {
    n = n ? kitd__instance_sort_unique(set, n) : 0;
    *instances = set;
    *count = n;
  }
  kitd__consul_resp_clear(&r);
out:
  kitd__consul_http_free(h);
  for (size_t i = 0; i < ntags; i++) free(tags[i]);
  free(tags);
  free(path);
  free(query);
  return e;
}
