/* SPDX-License-Identifier: MIT */
/* kitd_directory: clients by name, made on first use (directory.h).
 *
 * The hot path is a lookup in an immutable open-addressing table, read
 * without a lock: the caller publishes the table in one of its hazard
 * slots (lib/core/hazard.h) for the whole call, so a table, and every
 * client it names, stays alive until no call that found it is running.
 * Writers (a new name, an eviction) hold the mutex, build a new table,
 * publish it and retire the old one; a retired table, and the clients
 * evicted when it was replaced, are released once no hazard slot holds it
 * or any older retired table (a client evicted at table N may still be
 * reached through tables before N, never after).
 *
 * Recency costs no clock read on the call path: the eviction thread
 * advances a coarse tick, and a call stores it in its entry only when it
 * changed, so a busy name is a read, not a shared write, on most calls. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kitd/client.h"
#include "consul/consul_impl.h"
#include "consul/watcher.h"
#include "core/alloc.h"
#include "core/hazard.h"
#include "kitd/directory.h"
#include "kitd/error.h"

struct entry {
  char *name;
  uint64_t hash;
  kitd_client *c;             /* the directory's reference */
  _Atomic uint64_t last_used; /* the tick of the latest call */
};

struct table {
  size_t mask;          /* capacity - 1 (a power of two) */
  struct entry *slot[]; /* NULL: empty */
};

/* A replaced table, and the entries evicted when it was replaced. */
struct retired {
  struct table *t;
  struct entry **gone;
  size_t ngone;
  struct retired *next;
};

struct kitd_directory {
  void *_Atomic tab;     /* struct table *, read under a hazard slot */
  _Atomic uint64_t tick; /* coarse milliseconds, advanced by the sweeper */
  pthread_mutex_t mu;    /* writers; everything below */
  pthread_cond_t cond;   /* CLOCK_MONOTONIC: wakes the sweeper to stop */
  struct entry **all;    /* the cached clients */
  size_t n, cap;
  struct retired *rhead, *rtail;
  int stop;
  pthread_t sweeper;
  kitd_client_opts tmpl;
  kitd_factory factory; /* the template's, if any: shared by every client */
  kitd_directory_instancer_fn new_instancer;
  void *arg;
  kitd_consul *consul;           /* own copy, or NULL with new_instancer */
  kitd__consul_watcher *watcher; /* every Consul watch, on one thread */
  int64_t idle_ms;
  unsigned max;
  int64_t period_ms; /* tick and sweep period */
  kitd_logger *lg;
};

static uint64_t now_ms(void) { return (uint64_t)(kitd_now_ns() / 1000000); }

/* FNV-1a: names are short; a stronger hash costs more than it saves. */
static inline uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static inline struct entry *table_find(const struct table *t, const char *name, uint64_t h) {
  for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
    struct entry *e = t->slot[i];
    if (!e) return NULL;
    if (e->hash == h && !strcmp(e->name, name)) return e;
  }
}

/* A table of the current entries, at most half full. NULL: no memory. */
static struct table *table_build(struct entry *const *all, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n + 2) cap *= 2;
  struct table *t = kitd__calloc(1, sizeof *t + cap * sizeof t->slot[0]);
  if (!t) return NULL;
  t->mask = cap - 1;
  for (size_t k = 0; k < n; k++) {
    size_t i = all[k]->hash & t->mask;
    while (t->slot[i]) i = (i + 1) & t->mask;
    t->slot[i] = all[k];
  }
  return t;
}

static void entry_free(struct entry *e) {
  if (!e) return;
  kitd_client_free(e->c);
  free(e->name);
  free(e);
}

/* What reclaim() found free, released after the mutex is dropped: a
 * client's last reference joins its watch thread. */
struct garbage {
  struct retired *list;
};

static void garbage_release(struct garbage *g) {
  struct retired *r = g->list;
  while (r) {
    struct retired *n = r->next;
    for (size_t i = 0; i < r->ngone; i++) entry_free(r->gone[i]);
    free(r->gone);
    free(r->t);
    free(r);
    r = n;
  }
  g->list = NULL;
}

/* Move retired tables no reader holds, oldest first, to `g`. Under mu. */
static void reclaim(kitd_directory *d, struct garbage *g) {
  if (!d->rhead || kitd__hp_scan_begin() != 0) return; /* the next one tries again */
  while (d->rhead && !kitd__hp_in_use(d->rhead->t)) {
    struct retired *r = d->rhead;
    d->rhead = r->next;
    if (!d->rhead) d->rtail = NULL;
    r->next = g->list;
    g->list = r;
  }
}

/* Publish a table of d->all, retiring the old one with `gone` (taken on
 * every path). Under mu. Returns 0 or KITD_ENOMEM (nothing changed then,
 * except that `gone` entries are put back). */
static int publish(kitd_directory *d, struct entry **gone, size_t ngone) {
  struct table *t = table_build(d->all, d->n);
  struct retired *r = kitd__calloc(1, sizeof *r);
  if (!t || !r) {
    free(t);
    free(r);
    return KITD_ENOMEM;
  }
  r->t = atomic_exchange_explicit(&d->tab, t, memory_order_acq_rel);
  r->gone = gone;
  r->ngone = ngone;
  if (d->rtail) d->rtail->next = r;
  else d->rhead = r;
  d->rtail = r;
  return 0;
}

/* Remove the entries for which `pick` says so; publish. Under mu. */
static void evict_where(kitd_directory *d, int (*pick)(kitd_directory *, struct entry *, void *),
                        void *arg) {
  size_t ngone = 0;
  for (size_t i = 0; i < d->n; i++) ngone += pick(d, d->all[i], arg) != 0;
  if (!ngone) return;
  struct entry **gone = kitd__malloc(ngone * sizeof *gone);
  if (!gone) return; /* try again at the next sweep */
  struct entry **keep = d->all;
  size_t k = 0, g = 0, n = d->n;
  for (size_t i = 0; i < n; i++) {
    if (pick(d, keep[i], arg)) gone[g++] = keep[i];
    else keep[k++] = keep[i];
  }
  d->n = k;
  if (publish(d, gone, g)) { /* put them back: evict later */
    for (size_t i = 0; i < g; i++) d->all[d->n++] = gone[i];
    free(gone);
    return;
  }
  for (size_t i = 0; i < g; i++)
    kitd_log(d->lg, KITD_LOG_DEBUG, "directory", "action=evict service=%s", gone[i]->name);
}

static int is_idle(kitd_directory *d, struct entry *e, void *arg) {
  uint64_t now = *(const uint64_t *)arg;
  uint64_t last = atomic_load_explicit(&e->last_used, memory_order_relaxed);
  return now > last && now - last >= (uint64_t)d->idle_ms;
}

static void *sweeper(void *arg) {
  kitd_directory *d = arg;
  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    int64_t at = kitd_now_ns() + d->period_ms * 1000000;
    struct timespec ts = {(time_t)(at / 1000000000), (long)(at % 1000000000)};
    pthread_cond_timedwait(&d->cond, &d->mu, &ts);
    if (d->stop) break;
    uint64_t now = now_ms();
    atomic_store_explicit(&d->tick, now, memory_order_relaxed);
    evict_where(d, is_idle, &now);
    struct garbage g = {NULL};
    reclaim(d, &g);
    pthread_mutex_unlock(&d->mu);
    garbage_release(&g);
    pthread_mutex_lock(&d->mu);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

void kitd_directory_opts_init(kitd_directory_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->idle_ms = 300000;
  o->max_clients = 1000;
  o->max_blocking = 100;
}

static int directory_new(const kitd_directory_opts *o, kitd_directory **out) {
  kitd_directory *d = kitd__calloc(1, sizeof *d);
  if (!d) return KITD_ENOMEM;
  if (o->client) d->tmpl = *o->client;
  else kitd_client_opts_init(&d->tmpl);
  d->tmpl.service = NULL;
  d->tmpl.instancer = NULL;
  d->tmpl.consul = NULL;
  d->tmpl.watcher = NULL; /* the directory's own */
  d->tmpl.logger = o->logger;
  if (d->tmpl.factory) {
    d->factory = *d->tmpl.factory;
    d->tmpl.factory = &d->factory;
  }
  d->new_instancer = o->new_instancer;
  d->arg = o->arg;
  d->idle_ms = o->idle_ms > 0 ? o->idle_ms : 300000;
  d->max = o->max_clients ? o->max_clients : 1000;
  d->period_ms = d->idle_ms / 8;
  if (d->period_ms < 1) d->period_ms = 1;
  if (d->period_ms > 1000) d->period_ms = 1000;
  d->lg = o->logger;
  int rc = 0;
  if (!d->new_instancer) {
    if (o->consul) {
      rc = kitd__consul_dup(o->consul, &d->consul);
    } else {
      kitd_ctx ctx;
      kitd_ctx_init(&ctx);
      rc = kitd_consul_new(0, &ctx, &d->consul);
      if (rc)
        kitd_log(d->lg, KITD_LOG_ERROR, "directory", "action=consul err=%s detail=\"%s\"",
                 kitd_err_name(rc), kitd_ctx_detail(&ctx));
    }
    if (rc == 0) rc = kitd__consul_watcher_new(d->consul, o->max_blocking, d->lg, &d->watcher);
    if (rc) {
      kitd_consul_free(d->consul);
      free(d);
      return rc;
    }
  }
  struct table *t = table_build(NULL, 0);
  if (!t) {
    kitd__consul_watcher_free(d->watcher);
    kitd_consul_free(d->consul);
    free(d);
    return KITD_ENOMEM;
  }
  atomic_init(&d->tab, t);
  atomic_init(&d->tick, now_ms());
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int ok = pthread_mutex_init(&d->mu, NULL) == 0;
  ok = ok && pthread_cond_init(&d->cond, &ca) == 0;
  pthread_condattr_destroy(&ca);
  kitd__hp_init();
  if (!ok || pthread_create(&d->sweeper, NULL, sweeper, d)) {
    free(t);
    kitd__consul_watcher_free(d->watcher);
    kitd_consul_free(d->consul);
    free(d);
    return KITD_EINTERNAL;
  }
  *out = d;
  return 0;
}

int kitd_directory_new(const kitd_directory_opts *o, kitd_directory **out) {
  kitd_directory_opts def;
  if (!o) {
    kitd_directory_opts_init(&def);
    o = &def;
  }
  if (o->size != sizeof *o || (o->client && o->client->size != sizeof *o->client))
    return KITD_EINVAL;
  const kitd_factory *f = o->client ? o->client->factory : NULL;
  int rc = out ? directory_new(o, out) : KITD_EINVAL;
  if (rc && f && f->release) f->release(f->arg); /* taken on every path */
  return rc;
}

/* Make the client of `name` (under mu). */
static int make_client(kitd_directory *d, const char *name, kitd_client **out) {
  kitd_client_opts o = d->tmpl;
  o.service = name;
  kitd_factory f = d->factory; /* each client gets the function, not the release */
  f.release = NULL;
  if (d->tmpl.factory) o.factory = &f;
  kitd_instancer *in = NULL;
  if (d->new_instancer) {
    int rc = d->new_instancer(d->arg, name, &in);
    if (rc) return rc;
    if (!in) return KITD_EINVAL;
    o.instancer = in;
  } else {
    int rc = kitd__consul_watcher_instancer(d->watcher, name, d->tmpl.watch, &in);
    if (rc) return rc;
    o.instancer = in;
  }
  int rc = kitd_client_new(&o, out);
  kitd_instancer_free(in); /* the client holds its own reference */
  return rc;
}

static int lru_pick(kitd_directory *d, struct entry *e, void *arg) {
  (void)d;
  return e == arg;
}

/* The client of `name`, with a new reference: found, or made. */
static int get_slow(kitd_directory *d, const char *name, kitd_client **out) {
  if (!kitd_service_name_ok(name)) return KITD_EINVAL;
  uint64_t h = name_hash(name);
  struct garbage g = {NULL};
  int rc = 0;
  pthread_mutex_lock(&d->mu);
  struct entry *e = table_find(atomic_load_explicit(&d->tab, memory_order_acquire), name, h);
  if (e) {
    *out = kitd_client_ref(e->c);
    pthread_mutex_unlock(&d->mu);
    return 0;
  }
  if (d->n >= d->max) { /* evict the least recently used */
    struct entry *lru = d->all[0];
    for (size_t i = 1; i < d->n; i++)
      if (atomic_load_explicit(&d->all[i]->last_used, memory_order_relaxed) <
          atomic_load_explicit(&lru->last_used, memory_order_relaxed))
        lru = d->all[i];
    evict_where(d, lru_pick, lru);
    if (d->n >= d->max) {
      rc = KITD_ENOMEM;
      goto out;
    }
  }
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 16;
    if (cap > d->max) cap = d->max;
    struct entry **all = kitd__realloc(d->all, cap * sizeof *all);
    if (!all) {
      rc = KITD_ENOMEM;
      goto out;
    }
    d->all = all;
    d->cap = cap;
  }
  e = kitd__calloc(1, sizeof *e);
  if (!e || !(e->name = kitd__strdup(name))) {
    free(e);
    rc = KITD_ENOMEM;
    goto out;
  }
  e->hash = h;
  atomic_init(&e->last_used, atomic_load_explicit(&d->tick, memory_order_relaxed));
  if ((rc = make_client(d, name, &e->c))) {
    kitd_log(d->lg, KITD_LOG_WARN, "directory", "action=client service=%s err=%s", name,
             kitd_err_name(rc));
    free(e->name);
    free(e);
    goto out;
  }
  d->all[d->n++] = e;
  if ((rc = publish(d, NULL, 0))) {
    d->n--;
    entry_free(e);
    goto out;
  }
  kitd_log(d->lg, KITD_LOG_DEBUG, "directory", "action=client service=%s clients=%zu", name, d->n);
  *out = kitd_client_ref(e->c);
out:
  reclaim(d, &g);
  pthread_mutex_unlock(&d->mu);
  garbage_release(&g);
  return rc;
}

int kitd_directory_get(kitd_directory *d, const char *name, kitd_client **out) {
  if (!d || !name || !out) return KITD_EINVAL;
  return get_slow(d, name, out);
}

int kitd_directory_call(kitd_directory *d, const char *name, kitd_ctx *ctx, const void *request,
                        void *response) {
  if (__builtin_expect(!d || !name || !ctx, 0)) return KITD_EINVAL;
  uint64_t h = name_hash(name);
  int s = kitd__hp_acquire();
  if (__builtin_expect(s >= 0, 1)) {
    const struct table *t = kitd__hp_protect(s, &d->tab);
    struct entry *e = table_find(t, name, h);
    if (__builtin_expect(e != NULL, 1)) {
      uint64_t tick = atomic_load_explicit(&d->tick, memory_order_relaxed);
      if (atomic_load_explicit(&e->last_used, memory_order_relaxed) != tick)
        atomic_store_explicit(&e->last_used, tick, memory_order_relaxed);
      int rc = kitd_client_call(e->c, ctx, request, response);
      kitd__hp_release(s);
      return rc;
    }
    kitd__hp_release(s);
  }
  /* A new name (or no free hazard slot): hold a reference instead. */
  kitd_client *c = NULL;
  int rc = get_slow(d, name, &c);
  if (rc) {
    if (rc == KITD_EINVAL)
      kitd_ctx_set_detail(ctx, "not a service name Consul accepts (empty, over 255 bytes, "
                               "or holding '/' or a control byte)");
    return rc;
  }
  rc = kitd_client_call(c, ctx, request, response);
  kitd_client_free(c);
  return rc;
}

size_t kitd_directory_count(kitd_directory *d) {
  if (!d) return 0;
  pthread_mutex_lock(&d->mu);
  size_t n = d->n;
  pthread_mutex_unlock(&d->mu);
  return n;
}

void kitd_directory_free(kitd_directory *d) {
  if (!d) return;
  pthread_mutex_lock(&d->mu);
  d->stop = 1;
  pthread_cond_signal(&d->cond);
  pthread_mutex_unlock(&d->mu);
  pthread_join(d->sweeper, NULL);
  struct garbage g = {d->rhead};
  d->rhead = d->rtail = NULL;
  garbage_release(&g); /* no call runs: nothing holds a retired table */
  for (size_t i = 0; i < d->n; i++) entry_free(d->all[i]);
  free(d->all);
  free(atomic_load_explicit(&d->tab, memory_order_relaxed));
  pthread_mutex_destroy(&d->mu);
  pthread_cond_destroy(&d->cond);
  kitd__consul_watcher_free(d->watcher); /* ends once held clients are gone too */
  if (d->factory.release) d->factory.release(d->factory.arg);
  kitd_consul_free(d->consul);
  free(d);
}
