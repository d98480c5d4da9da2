/* SPDX-License-Identifier: MIT */
/* Metrics registries: pipelines, instances and watches, and the walk over
 * their series (kitd/metrics.h). The counts live in per-thread slots
 * (counters.c); the Prometheus writer is prometheus.c. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/metrics_impl.h"
#include "kitd/ctx.h"
#include "kitd/error.h"

struct mwatch {
  char *name;
  const void *key;
  void *obj;
  kitd__mwatch_read_fn read;
  void (*release)(void *obj);
  struct mwatch *next;
};

struct kitd_metrics {
  atomic_long refs;
  pthread_mutex_t mu; /* guards pipes, and pipeline and instance refs */
  struct kitd__mpipe *pipes;
  /* Watches have a lock of their own, taken before an instancer's: the
   * other one is taken under instancer locks (an endpoint closed by an
   * update drops its instance counters). */
  pthread_mutex_t wmu;
  struct mwatch *watches;
};

static const int64_t bounds_ns[KITD__MBOUNDS] = {
    500000,    1000000,   2500000,   5000000,    10000000,   25000000,   50000000,
    100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};

int kitd_metrics_new(kitd_metrics **out) {
  if (!out) return KITD_EINVAL;
  kitd_metrics *m = kitd__calloc(1, sizeof *m);
  if (!m) return KITD_ENOMEM;
  if (pthread_mutex_init(&m->mu, NULL) != 0) {
    free(m);
    return KITD_ENOMEM;
  }
  if (pthread_mutex_init(&m->wmu, NULL) != 0) {
    pthread_mutex_destroy(&m->mu);
    free(m);
    return KITD_ENOMEM;
  }
  atomic_init(&m->refs, 1);
  *out = m;
  return 0;
}

kitd_metrics *kitd_metrics_ref(kitd_metrics *m) {
  if (m) atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void kitd_metrics_free(kitd_metrics *m) {
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  /* Pipelines hold a reference: none is left. Watches are ours. */
  while (m->watches) {
    struct mwatch *w = m->watches;
    m->watches = w->next;
    w->release(w->obj);
    free(w->name);
    free(w);
  }
  pthread_mutex_destroy(&m->mu);
  pthread_mutex_destroy(&m->wmu);
  free(m);
}

struct kitd__mpipe *kitd__mpipe_get(kitd_metrics *m, const char *name) {
  pthread_mutex_lock(&m->mu);
  struct kitd__mpipe *p = m->pipes;
  while (p && strcmp(p->name, name)) p = p->next;
  if (p) {
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&m->mu);
    return p;
  }
  p = kitd__calloc(1, sizeof *p);
  if (p && !(p->name = kitd__strdup(name))) free(p), p = NULL;
  if (p && kitd__ctr_alloc(KITD__MP_SLOTS, &p->base) != 0) free(p->name), free(p), p = NULL;
  if (p) {
    atomic_init(&p->refs, 1);
    p->m = kitd_metrics_ref(m);
    p->next = m->pipes;
    m->pipes = p;
  }
  pthread_mutex_unlock(&m->mu);
  return p;
}

void kitd__mpipe_unref(struct kitd__mpipe *p) {
  if (!p) return;
  kitd_metrics *m = p->m;
  pthread_mutex_lock(&m->mu);
  if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) {
    pthread_mutex_unlock(&m->mu);
    return;
  }
  struct kitd__mpipe **pp = &m->pipes;
  while (*pp != p) pp = &(*pp)->next;
  *pp = p->next;
  pthread_mutex_unlock(&m->mu);
  kitd__ctr_release(p->base, KITD__MP_SLOTS);
  free(p->name);
  free(p);
  kitd_metrics_free(m);
}

struct kitd__minst *kitd__minst_get(struct kitd__mpipe *p, const char *addr) {
  kitd_metrics *m = p->m;
  pthread_mutex_lock(&m->mu);
  struct kitd__minst *mi = p->insts;
  while (mi && strcmp(mi->addr, addr)) mi = mi->next;
  if (mi) {
    mi->refs++;
    pthread_mutex_unlock(&m->mu);
    return mi;
  }
  mi = kitd__calloc(1, sizeof *mi);
  if (mi && !(mi->addr = kitd__strdup(addr))) free(mi), mi = NULL;
  if (mi && kitd__ctr_alloc(KITD__MI_SLOTS, &mi->base) != 0) free(mi->addr), free(mi), mi = NULL;
  if (mi) {
    mi->refs = 1;
    mi->p = p;
    /* The instance keeps its pipeline (and so the registry) alive. */
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    mi->next = p->insts;
    p->insts = mi;
  }
  pthread_mutex_unlock(&m->mu);
  return mi;
}

void kitd__minst_unref(struct kitd__minst *mi) {
  if (!mi) return;
  struct kitd__mpipe *p = (struct kitd__mpipe *)mi->p;
  kitd_metrics *m = p->m;
  pthread_mutex_lock(&m->mu);
  if (--mi->refs > 0) {
    pthread_mutex_unlock(&m->mu);
    return;
  }
  struct kitd__minst **pp = &p->insts;
  while (*pp != mi) pp = &(*pp)->next;
  *pp = mi->next;
  pthread_mutex_unlock(&m->mu);
  kitd__ctr_release(mi->base, KITD__MI_SLOTS);
  free(mi->addr);
  free(mi);
  kitd__mpipe_unref(p);
}

struct kitd__mblock *kitd__mblock_new(uint32_t n) {
  struct kitd__mblock *blk = kitd__calloc(1, sizeof *blk);
  if (!blk) return NULL;
  blk->n = n;
  blk->mi = kitd__calloc(n ? n : 1, sizeof *blk->mi);
  blk->to = kitd__calloc(n ? n : 1, sizeof *blk->to);
  if (!blk->mi || !blk->to || kitd__ctr_alloc(n, &blk->base) != 0) {
    free(blk->mi);
    free(blk->to);
    free(blk);
    return NULL;
  }
  return blk;
}

void kitd__mblock_free(struct kitd__mblock *blk) {
  kitd__ctr_release(blk->base, blk->n);
  free(blk->mi);
  free(blk->to);
  free(blk);
}

void kitd__mblock_add(struct kitd__mpipe *p, struct kitd__mblock *blk) {
  kitd_metrics *m = p->m;
  pthread_mutex_lock(&m->mu);
  for (uint32_t k = 0; k < blk->n; k++) {
    blk->to[k] = blk->mi[k] ? blk->mi[k]->base + KITD__MI_PICKS : UINT32_MAX;
    if (blk->mi[k]) blk->mi[k]->refs++;
  }
  blk->next = p->blocks;
  p->blocks = blk;
  pthread_mutex_unlock(&m->mu);
}

/* Under the registry's lock: move p's idle blocks of owner (any owner if
 * NULL; all of them if `all`) to *dead, their totals folded into their
 * instances. */
static void gc_locked(struct kitd__mpipe *p, const void *owner, int all,
                      struct kitd__mblock **dead) {
  for (struct kitd__mblock **pp = &p->blocks; *pp;) {
    struct kitd__mblock *blk = *pp;
    if ((owner && blk->owner != owner) || !(all || blk->idle(blk))) {
      pp = &blk->next;
      continue;
    }
    *pp = blk->next;
    kitd__ctr_fold(blk->base, blk->n, blk->to);
    blk->next = *dead;
    *dead = blk;
  }
}

/* After the lock: drop the dead blocks' references and free them (their
 * slots were given back by the fold). */
static void free_dead(struct kitd__mblock *dead) {
  while (dead) {
    struct kitd__mblock *blk = dead;
    dead = blk->next;
    for (uint32_t k = 0; k < blk->n; k++) kitd__minst_unref(blk->mi[k]);
    free(blk->mi);
    free(blk->to);
    free(blk);
  }
}

void kitd__mblock_gc(struct kitd__mpipe *p, const void *owner, int all) {
  struct kitd__mblock *dead = NULL;
  pthread_mutex_lock(&p->m->mu);
  gc_locked(p, owner, all, &dead);
  pthread_mutex_unlock(&p->m->mu);
  free_dead(dead);
}

void kitd__mp_end(const struct kitd__mpipe *p, int result, int64_t ns) {
  if (result) {
    unsigned c = result < 0 && -result < KITD__MCODES ? (unsigned)-result : 0;
    kitd__mp_count(p, KITD__MP_FAIL0 + c, 1);
  }
  if (ns >= 0) {
    unsigned b = 0;
    while (b < KITD__MBOUNDS && ns > bounds_ns[b]) b++;
    kitd__mp_count(p, KITD__MP_BUCKET0 + b, 1);
    kitd__mp_count(p, KITD__MP_SUM_NS, (uint64_t)ns);
    kitd__mp_count(p, KITD__MP_TIMED, 1);
  }
  kitd__mp_count(p, KITD__MP_FINISHED, 1);
}

int kitd__metrics_add_watch(kitd_metrics *m, const char *name, const void *key, void *obj,
                            kitd__mwatch_read_fn read, void (*release)(void *obj)) {
  struct mwatch *w = kitd__calloc(1, sizeof *w);
  if (w && !(w->name = kitd__strdup(name))) free(w), w = NULL;
  if (!w) {
    release(obj);
    return KITD_ENOMEM;
  }
  w->key = key;
  w->obj = obj;
  w->read = read;
  w->release = release;
  pthread_mutex_lock(&m->wmu);
  for (struct mwatch *o = m->watches; o; o = o->next) {
    if (o->key == key || !strcmp(o->name, name)) { /* one series per name */
      pthread_mutex_unlock(&m->wmu);
      release(obj);
      free(w->name);
      free(w);
      return KITD_EEXIST;
    }
  }
  w->next = m->watches;
  m->watches = w;
  pthread_mutex_unlock(&m->wmu);
  return 0;
}

void kitd__metrics_drop_watch(kitd_metrics *m, const void *key) {
  pthread_mutex_lock(&m->wmu);
  struct mwatch **pp = &m->watches;
  while (*pp && (*pp)->key != key) pp = &(*pp)->next;
  struct mwatch *w = *pp;
  if (w) *pp = w->next;
  pthread_mutex_unlock(&m->wmu);
  if (!w) return;
  w->release(w->obj);
  free(w->name);
  free(w);
}

/* ---- the walk ---- */

/* What a walk read, so that the series can be given family by family. */
struct pipe_snap {
  const char *name;
  uint64_t v[KITD__MP_SLOTS];
};
struct inst_snap {
  const char *service, *addr;
  uint64_t v[KITD__MI_SLOTS];
};
struct watch_snap {
  const char *name;
  char *detail; /* the last error's, or NULL if none ever */
  int err;
  int last_err_seen;
  double age; /* < 0: no good answer yet */
  size_t count;
  uint64_t answers, errors;
};

static int by_pipe(const void *a, const void *b) {
  return strcmp(((const struct pipe_snap *)a)->name, ((const struct pipe_snap *)b)->name);
}
static int by_inst(const void *a, const void *b) {
  const struct inst_snap *x = a, *y = b;
  int c = strcmp(x->service, y->service);
  return c ? c : strcmp(x->addr, y->addr);
}
static int by_watch(const void *a, const void *b) {
  return strcmp(((const struct watch_snap *)a)->name, ((const struct watch_snap *)b)->name);
}

static void watch_got(void *arg, const struct kitd__mwatch_state *st) {
  struct watch_snap *w = arg;
  w->err = st->err;
  w->last_err_seen = st->last_err != 0;
  w->detail = st->last_err ? kitd__strdup(st->detail && st->detail[0] ? st->detail
                                                                      : kitd_strerror(st->last_err))
                           : NULL;
  w->age = st->last_good_ns ? (double)(kitd_now_ns() - st->last_good_ns) / 1e9 : -1;
  w->count = st->count;
  w->answers = st->answers;
  w->errors = st->errors;
}

static void emit(kitd_metric_fn fn, void *arg, const char *name, const char *help,
                 kitd_metric_type t, const kitd_metric_label *l, size_t nl, double v) {
  kitd_metric x;
  memset(&x, 0, sizeof x);
  x.name = name;
  x.help = help;
  x.type = t;
  x.labels = l;
  x.nlabels = nl;
  x.value = v;
  fn(arg, &x);
}

struct pipe_family {
  const char *name, *help;
  kitd_metric_type type;
};

static void walk_pipes(struct pipe_snap *ps, size_t np, kitd_metric_fn fn, void *arg) {
  static const char *const help[] = {
      "Calls made through the retry.",
      "Attempts made by calls (calls plus retries).",
      "Attempts after the first of a call.",
      "Retries the retry budget refused.",
      "Calls running now.",
  };
  static const char *const names[] = {"kitd_calls_total", "kitd_attempts_total",
                                      "kitd_retries_total", "kitd_retry_budget_refusals_total",
                                      "kitd_calls_outstanding"};
  for (int f = 0; f < 5; f++) {
    for (size_t i = 0; i < np; i++) {
      const uint64_t *v = ps[i].v;
      kitd_metric_label l = {"service", ps[i].name};
      double x = f == 0   ? (double)v[KITD__MP_FINISHED]
                 : f == 1 ? (double)(v[KITD__MP_FINISHED] + v[KITD__MP_RETRIES])
                 : f == 2 ? (double)v[KITD__MP_RETRIES]
                 : f == 3 ? (double)v[KITD__MP_REFUSED]
                 : v[KITD__MP_STARTED] > v[KITD__MP_FINISHED]
                     ? (double)(v[KITD__MP_STARTED] - v[KITD__MP_FINISHED])
                     : 0;
      emit(fn, arg, names[f], help[f], f == 4 ? KITD_METRIC_GAUGE : KITD_METRIC_COUNTER, &l, 1, x);
    }
  }
  for (size_t i = 0; i < np; i++) {
    for (unsigned c = 0; c < KITD__MCODES; c++) {
      uint64_t n = ps[i].v[KITD__MP_FAIL0 + c];
      if (!n) continue;
      kitd_metric_label l[2] = {{"service", ps[i].name},
                                {"code", c ? kitd_err_name(-(int)c) : "UNKNOWN"}};
      emit(fn, arg, "kitd_call_failures_total", "Calls that failed, by error code.",
           KITD_METRIC_COUNTER, l, 2, (double)n);
    }
  }
  double bounds[KITD__MBOUNDS + 1];
  for (int b = 0; b < KITD__MBOUNDS; b++) bounds[b] = (double)bounds_ns[b] / 1e9;
  bounds[KITD__MBOUNDS] = INFINITY;
  for (size_t i = 0; i < np; i++) {
    uint64_t cum[KITD__MBOUNDS + 1], run = 0;
    for (int b = 0; b <= KITD__MBOUNDS; b++) cum[b] = run += ps[i].v[KITD__MP_BUCKET0 + b];
    kitd_metric_label l = {"service", ps[i].name};
    kitd_metric x;
    memset(&x, 0, sizeof x);
    x.name = "kitd_call_duration_seconds";
    x.help = "Duration of calls, backoff included (all calls when timed, else a sample).";
    x.type = KITD_METRIC_HISTOGRAM;
    x.labels = &l;
    x.nlabels = 1;
    x.nbuckets = KITD__MBOUNDS + 1;
    x.bounds = bounds;
    x.cumulative = cum;
    x.sum = (double)ps[i].v[KITD__MP_SUM_NS] / 1e9;
    /* The buckets are read apart from the count: take their total. */
    x.count = run;
    fn(arg, &x);
  }
}

static void walk_insts(struct inst_snap *is, size_t ni, kitd_metric_fn fn, void *arg) {
  static const char *const names[] = {"kitd_instance_picks_total", "kitd_instance_failures_total",
                                      "kitd_instance_ejections_total"};
  static const char *const help[] = {"Picks of the instance (a retry's re-picks included).",
                                     "Calls that failed on the instance.",
                                     "Times outlier detection ejected the instance."};
  for (int f = 0; f < KITD__MI_SLOTS; f++)
    for (size_t i = 0; i < ni; i++) {
      kitd_metric_label l[2] = {{"service", is[i].service}, {"instance", is[i].addr}};
      emit(fn, arg, names[f], help[f], KITD_METRIC_COUNTER, l, 2, (double)is[i].v[f]);
    }
}

static void walk_watches(struct watch_snap *ws, size_t nw, kitd_metric_fn fn, void *arg) {
  for (size_t i = 0; i < nw; i++) {
    kitd_metric_label l = {"watch", ws[i].name};
    emit(fn, arg, "kitd_watch_up", "1 while the watch's last answer was good, 0 while failing.",
         KITD_METRIC_GAUGE, &l, 1, ws[i].err ? 0 : 1);
  }
  for (size_t i = 0; i < nw; i++) {
    if (!ws[i].detail) continue;
    kitd_metric_label l[2] = {{"watch", ws[i].name}, {"error", ws[i].detail}};
    emit(fn, arg, "kitd_watch_error", "The watch's last error: 1 while failing, 0 once recovered.",
         KITD_METRIC_GAUGE, l, 2, ws[i].err ? 1 : 0);
  }
  for (size_t i = 0; i < nw; i++) {
    if (ws[i].age < 0) continue;
    kitd_metric_label l = {"watch", ws[i].name};
    emit(fn, arg, "kitd_watch_last_good_age_seconds", "Age of the watch's last good answer.",
         KITD_METRIC_GAUGE, &l, 1, ws[i].age);
  }
  for (size_t i = 0; i < nw; i++) {
    kitd_metric_label l = {"watch", ws[i].name};
    emit(fn, arg, "kitd_watch_instances", "Instances in the watch's set.", KITD_METRIC_GAUGE, &l, 1,
         (double)ws[i].count);
  }
  for (size_t i = 0; i < nw; i++) {
    kitd_metric_label l = {"watch", ws[i].name};
    emit(fn, arg, "kitd_watch_requests_total", "Registry answers the watch received, good or not.",
         KITD_METRIC_COUNTER, &l, 1, (double)ws[i].answers);
  }
  for (size_t i = 0; i < nw; i++) {
    kitd_metric_label l = {"watch", ws[i].name};
    emit(fn, arg, "kitd_watch_errors_total", "Registry answers that were errors.",
         KITD_METRIC_COUNTER, &l, 1, (double)ws[i].errors);
  }
}

int kitd_metrics_walk(kitd_metrics *m, kitd_metric_fn fn, void *arg) {
  if (!m || !fn) return KITD_EINVAL;
  /* Blocks no thread counts into any more are folded first, so that an
   * instance only they kept is gone from this walk. */
  struct kitd__mblock *dead = NULL;
  pthread_mutex_lock(&m->mu);
  for (struct kitd__mpipe *p = m->pipes; p; p = p->next) gc_locked(p, NULL, 0, &dead);
  pthread_mutex_unlock(&m->mu);
  free_dead(dead);
  pthread_mutex_lock(&m->mu);
  size_t np = 0, ni = 0, nw = 0;
  for (struct kitd__mpipe *p = m->pipes; p; p = p->next, np++)
    for (struct kitd__minst *mi = p->insts; mi; mi = mi->next) ni++;
  /* Names are copied: the locks are let go before fn runs. */
  struct pipe_snap *ps = kitd__calloc(np ? np : 1, sizeof *ps);
  struct inst_snap *is = kitd__calloc(ni ? ni : 1, sizeof *is);
  int rc = ps && is ? 0 : KITD_ENOMEM;
  size_t i = 0, k = 0, j = 0;
  for (struct kitd__mpipe *p = m->pipes; !rc && p; p = p->next, i++) {
    if (!(ps[i].name = kitd__strdup(p->name))) rc = KITD_ENOMEM;
    kitd__ctr_read(p->base, KITD__MP_SLOTS, ps[i].v);
    for (struct kitd__minst *mi = p->insts; !rc && mi; mi = mi->next, k++) {
      is[k].service = ps[i].name;
      if (!(is[k].addr = kitd__strdup(mi->addr))) rc = KITD_ENOMEM;
      kitd__ctr_read(mi->base, KITD__MI_SLOTS, is[k].v);
      mi->ix = k;
    }
    /* Picks counted by snapshot position: each to its entry's instance. */
    for (struct kitd__mblock *blk = p->blocks; !rc && blk; blk = blk->next)
      for (uint32_t e = 0; e < blk->n; e++) {
        uint64_t v;
        if (!blk->mi[e]) continue;
        kitd__ctr_read(blk->base + e, 1, &v);
        is[blk->mi[e]->ix].v[KITD__MI_PICKS] += v;
      }
  }
  pthread_mutex_unlock(&m->mu);
  pthread_mutex_lock(&m->wmu);
  for (struct mwatch *w = m->watches; w; w = w->next) nw++;
  struct watch_snap *ws = kitd__calloc(nw ? nw : 1, sizeof *ws);
  if (!ws) rc = KITD_ENOMEM;
  for (struct mwatch *w = m->watches; !rc && w; w = w->next, j++) {
    if (!(ws[j].name = kitd__strdup(w->name))) rc = KITD_ENOMEM;
    w->read(w->obj, watch_got, &ws[j]);
    if (ws[j].last_err_seen && !ws[j].detail) rc = KITD_ENOMEM;
  }
  pthread_mutex_unlock(&m->wmu);
  if (!rc) {
    qsort(ps, np, sizeof *ps, by_pipe);
    qsort(is, ni, sizeof *is, by_inst);
    qsort(ws, nw, sizeof *ws, by_watch);
    walk_pipes(ps, np, fn, arg);
    walk_insts(is, ni, fn, arg);
    walk_watches(ws, nw, fn, arg);
  }
  for (size_t x = 0; ps && x < np; x++) free((char *)ps[x].name);
  for (size_t x = 0; is && x < ni; x++) free((char *)is[x].addr);
  for (size_t x = 0; ws && x < nw; x++) free((char *)ws[x].name), free(ws[x].detail);
  free(ps);
  free(is);
  free(ws);
  return rc;
}
