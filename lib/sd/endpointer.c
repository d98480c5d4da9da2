/* SPDX-License-Identifier: MIT */
/* The endpointer: one endpoint per instance address, published as
 * immutable snapshots that balancers read through hazard slots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/hazard.h"
#include "core/instance_impl.h"
#include "kitd/error.h"
#include "sd/endpointer_impl.h"
#include "sd/instancer_impl.h"

void kitd_endpointer_opts_init(kitd_endpointer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->invalidate_on_error_ms = -1;
  o->logger = NULL;
}

/* The logger for warnings: the user's, or stderr when none was given (a
 * factory failure must not go unseen). */
static kitd_logger *warn_logger(const kitd_endpointer *ep) {
  return ep->opts.logger ? ep->opts.logger : kitd_logger_stderr();
}

/* One allocation: header, then the endpoint, record and birth arrays. */
static struct kitd__snap *snap_alloc(size_t n) {
  struct kitd__snap *s = kitd__aligned_alloc(
      _Alignof(struct kitd__snap), sizeof *s + n * (2 * sizeof(void *) + sizeof(uint64_t)));
  if (s) s->cap = n;
  return s;
}

static void snap_reset(struct kitd__snap *s) {
  s->count = 0;
  s->eps = (kitd_endpoint **)(s + 1);
  s->rec = (kitd_instance **)(s->eps + s->cap);
  s->born = (uint64_t *)(s->rec + s->cap);
  s->gen = 0;
  atomic_init(&s->retired, 0);
  s->next = NULL;
  atomic_init(&s->refs, 0);
}

/* A block for n entries: the spare one if it fits and is not much larger
 * (a set that shrank for good should not pin its old size), else new. */
static struct kitd__snap *snap_new(kitd_endpointer *ep, size_t n) {
  struct kitd__snap *s = ep->spare;
  if (s && s->cap >= n && s->cap <= 2 * n + 64)
    ep->spare = NULL;
  else
    s = snap_alloc(n);
  if (s) snap_reset(s);
  return s;
}

/* Keep a freed block as the spare (the larger of the two) or free it. Its
 * entries belong to the live set or to limbo and are left alone. */
static void snap_free(kitd_endpointer *ep, struct kitd__snap *s) {
  if (ep->spare && ep->spare->cap >= s->cap) {
    free(s);
    return;
  }
  free(ep->spare);
  ep->spare = s;
}

static void drop_release(struct kitd__drop *d) {
  kitd_endpoint_unref(d->ep);
  kitd_instance_unref(d->rec);
}

/* Generations of the retired snapshots a picker still holds: up to
 * HELD_MAX exactly, then a conservative [lo, hi] range. */
#define HELD_MAX 16
struct held {
  uint64_t gen[HELD_MAX];
  unsigned n;
  int overflow;
  uint64_t lo, hi;
};

static void held_add(struct held *h, uint64_t g) {
  if (h->n == 0 && !h->overflow) h->lo = h->hi = g;
  if (g < h->lo) h->lo = g;
  if (g > h->hi) h->hi = g;
  if (h->n < HELD_MAX)
    h->gen[h->n++] = g;
  else
    h->overflow = 1;
}

static int held_in(const struct held *h, uint64_t born, uint64_t died) {
  if (h->overflow) return !(died < h->lo || born > h->hi);
  for (unsigned i = 0; i < h->n; i++)
    if (h->gen[i] >= born && h->gen[i] <= died) return 1;
  return 0;
}

/* Free every retired snapshot no picker holds, and every removed entry
 * that no held snapshot can reach. A pick that is never handed back thus
 * pins its own snapshot's entries, never a later update's. */
static void reclaim_locked(kitd_endpointer *ep) {
  if (!ep->retired && !ep->nlimbo) return;
  struct held h = {{0}, 0, 0, 0, 0};
  if (ep->retired) kitd__hp_scan_begin();
  struct kitd__snap **pp = &ep->retired;
  while (*pp) {
    struct kitd__snap *s = *pp;
    if (atomic_load_explicit(&s->refs, memory_order_acquire) != 0 || kitd__hp_in_use(s)) {
      held_add(&h, s->gen);
      pp = &s->next;
    } else {
      *pp = s->next;
      snap_free(ep, s);
    }
  }
  size_t o = 0;
  for (size_t i = 0; i < ep->nlimbo; i++) {
    struct kitd__drop *d = &ep->limbo[i];
    if ((h.n || h.overflow) && held_in(&h, d->born, d->died))
      ep->limbo[o++] = *d;
    else
      drop_release(d);
  }
  ep->nlimbo = o;
}

void kitd__endpointer_try_reclaim(kitd_endpointer *ep) {
  if (pthread_mutex_trylock(&ep->mu) != 0) return;
  reclaim_locked(ep);
  pthread_mutex_unlock(&ep->mu);
}

struct kitd__snap *kitd__endpointer_ref_snap(kitd_endpointer *ep) {
  /* Under the lock, so the reclaimer (also under it) never sees a count
   * that is about to rise from 0. */
  pthread_mutex_lock(&ep->mu);
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&ep->mu);
  return s;
}

void kitd__endpointer_unref_snap(kitd_endpointer *ep, struct kitd__snap *s) {
  int retired = atomic_load_explicit(&s->retired, memory_order_relaxed);
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release) == 1 && retired)
    kitd__endpointer_try_reclaim(ep);
}

/* Room in limbo for n more entries, reserved before a merge so that it
 * cannot fail half-way. */
static int limbo_reserve(kitd_endpointer *ep, size_t n) {
  if (ep->nlimbo + n <= ep->caplimbo) return 0;
  size_t cap = ep->caplimbo ? ep->caplimbo : 16;
  while (cap < ep->nlimbo + n) cap *= 2;
  struct kitd__drop *d = kitd__realloc(ep->limbo, cap * sizeof *d);
  if (!d) return KITD_ENOMEM;
  ep->limbo = d;
  ep->caplimbo = cap;
  return 0;
}

static void limbo_add(kitd_endpointer *ep, kitd_endpoint *e, kitd_instance *r, uint64_t born,
                      uint64_t died) {
  struct kitd__drop *d = &ep->limbo[ep->nlimbo++];
  d->ep = e;
  d->rec = r;
  d->born = born;
  d->died = died;
}

/* A new endpoint for in, or NULL (logged). */
static kitd_endpoint *make_endpoint(kitd_endpointer *ep, const kitd_instance *in) {
  kitd_endpoint *e = NULL;
  int rc = ep->factory.fn(ep->factory.arg, in, &e);
  if (rc == 0 && e) return e;
  if (rc == 0) rc = KITD_EINTERNAL;
  ep->factory_failed++;
  ep->factory_err = rc;
  /* Skipped, not fatal: the instance is tried again on the next event that
   * still lists it (it is not in the live set, so it is "new"). */
  char q[KITD_ADDRESS_MAX + 8];
  kitd_log(warn_logger(ep), KITD_LOG_WARN, "endpointer",
           "msg=\"factory failed; instance skipped\" instance=%s err=%s",
           kitd_log_quote(q, sizeof q, kitd_instance_address(in)), kitd_err_name(rc));
  return NULL;
}

/* Replace the live set by `in` (sorted by address, unique). Called with
 * ep->mu held. Cost: one merge over both sets, the factory for new
 * addresses only, and pointer copies for kept entries: no refcount traffic
 * on those. */
static int update_locked(kitd_endpointer *ep, const kitd_instance *const *in, size_t n) {
  struct kitd__snap *old = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  if (limbo_reserve(ep, old->count) != 0) return KITD_ENOMEM;
  struct kitd__snap *s = snap_new(ep, n);
  if (!s) return KITD_ENOMEM;
  uint64_t gen = ep->gen + 1;
  size_t i = 0, j = 0, k = 0, added = 0, ndrop = 0, nrec = 0;
  ep->factory_failed = 0;
  while (i < n || j < old->count) {
    int c = i < n && j < old->count
                ? strcmp(in[i]->address, old->rec[j]->address)
                : (i < n ? -1 : 1);
    if (c == 0) {
      s->eps[k] = old->eps[j];
      s->born[k] = old->born[j];
      if (kitd__instance_same_attrs(old->rec[j], in[i])) {
        s->rec[k] = old->rec[j];
      } else { /* same address, new attributes: same endpoint */
        s->rec[k] = kitd_instance_ref(in[i]);
        limbo_add(ep, NULL, old->rec[j], old->born[j], old->gen);
        nrec++;
      }
      k++, i++, j++;
    } else if (c < 0) {
      kitd_endpoint *e = make_endpoint(ep, in[i]);
      if (e) {
        s->eps[k] = e;
        s->rec[k] = kitd_instance_ref(in[i]);
        s->born[k] = gen;
        k++, added++;
      }
      i++;
    } else {
      limbo_add(ep, old->eps[j], old->rec[j], old->born[j], old->gen);
      ndrop++;
      j++;
    }
  }
  if (added == 0 && ndrop == 0 && nrec == 0) { /* nothing changed */
    snap_free(ep, s);
    return 0;
  }
  s->count = k;
  s->gen = gen;
  ep->gen = gen;
  atomic_store_explicit(&ep->snap, s, memory_order_seq_cst);
  atomic_store_explicit(&old->retired, 1, memory_order_relaxed);
  old->next = ep->retired;
  ep->retired = old;
  reclaim_locked(ep);
  kitd_log(ep->opts.logger, KITD_LOG_DEBUG, "endpointer",
           "endpoints=%zu added=%zu removed=%zu updated=%zu", k, added, ndrop, nrec);
  return 0;
}

/* go-kit's InvalidateOnError: close every endpoint as if the set were
 * empty. Called with ep->mu held. */
static int invalidate_locked(kitd_endpointer *ep) {
  int rc = update_locked(ep, NULL, 0);
  if (rc == 0) {
    ep->invalidated = true;
    kitd_log(warn_logger(ep), KITD_LOG_WARN, "endpointer",
             "msg=\"registry error outlasted invalidate_on_error; endpoints closed\" "
             "invalidate_on_error_ms=%lld",
             (long long)ep->opts.invalidate_on_error_ms);
  }
  return rc;
}

static void remember(kitd_endpointer *ep, const kitd_event *ev) {
  ep->seen = true;
  ep->last_err = ev->err;
  ep->last_good_ns = ev->last_good_ns;
  ep->last_count = ev->count;
  char *d = ev->err && ev->detail[0] ? kitd__strdup(ev->detail) : NULL;
  free(ep->last_detail);
  ep->last_detail = d; /* NULL on ENOMEM: the code's name stands in */
}

static void on_event(void *arg, const kitd_event *ev) {
  kitd_endpointer *ep = arg;
  pthread_mutex_lock(&ep->mu);
  remember(ep, ev);
  int rc = 0;
  if (ev->err) {
    if (ep->opts.invalidate_on_error_ms >= 0 && !ep->erroring) {
      ep->erroring = true;
      if (ep->opts.invalidate_on_error_ms == 0) {
        /* Out of memory: the next error event tries again. */
        if (invalidate_locked(ep) != 0) ep->erroring = false;
      } else {
        ep->invalidate_at_ns = kitd_now_ns() + ep->opts.invalidate_on_error_ms * 1000000;
        pthread_cond_signal(&ep->cond);
      }
    }
    /* An error event carries the last good set: a late subscriber serves it
     * (and instances a factory skipped get another try), unless the error
     * has lasted long enough to invalidate it. */
    if (!ep->invalidated) rc = update_locked(ep, ev->instances, ev->count);
  } else {
    ep->erroring = false;
    ep->invalidated = false;
    if (ep->timer_running) pthread_cond_signal(&ep->cond);
    rc = update_locked(ep, ev->instances, ev->count);
  }
  if (rc)
    kitd_log(warn_logger(ep), KITD_LOG_ERROR, "endpointer",
             "msg=\"update failed; previous endpoints kept\" err=%s", kitd_err_name(rc));
  pthread_mutex_unlock(&ep->mu);
}

/* The invalidate-on-error timer: sleeps on the condition variable until the
 * error deadline (or a change of plan), so invalidation happens on time and
 * not at the next event, which in an outage may never come. */
static void *invalidate_thread(void *arg) {
  kitd_endpointer *ep = arg;
  pthread_mutex_lock(&ep->mu);
  while (!ep->closing) {
    if (!ep->erroring || ep->invalidated) {
      pthread_cond_wait(&ep->cond, &ep->mu);
      continue;
    }
    int64_t now = kitd_now_ns();
    if (now >= ep->invalidate_at_ns) {
      if (invalidate_locked(ep) != 0) ep->invalidate_at_ns = now + 100 * 1000000;
      continue;
    }
    struct timespec ts = {(time_t)(ep->invalidate_at_ns / 1000000000),
                          (long)(ep->invalidate_at_ns % 1000000000)};
    pthread_cond_timedwait(&ep->cond, &ep->mu, &ts);
  }
  pthread_mutex_unlock(&ep->mu);
  return NULL;
}

/* Every snapshot and entry, at the end (no picker is left: each holds a
 * reference on a balancer, which holds one on us). */
static void release_all(kitd_endpointer *ep) {
  while (ep->retired) {
    struct kitd__snap *h = ep->retired;
    ep->retired = h->next;
    snap_free(ep, h);
  }
  for (size_t i = 0; i < ep->nlimbo; i++) drop_release(&ep->limbo[i]);
  free(ep->limbo);
  ep->limbo = NULL;
  ep->nlimbo = ep->caplimbo = 0;
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  if (s) {
    for (size_t i = 0; i < s->count; i++) {
      kitd_endpoint_unref(s->eps[i]);
      kitd_instance_unref(s->rec[i]);
    }
    snap_free(ep, s);
  }
  free(ep->spare);
  ep->spare = NULL;
}

static void stop_timer(kitd_endpointer *ep) {
  if (!ep->timer_running) return;
  pthread_mutex_lock(&ep->mu);
  ep->closing = true;
  pthread_cond_signal(&ep->cond);
  pthread_mutex_unlock(&ep->mu);
  pthread_join(ep->timer, NULL);
  ep->timer_running = false;
}

static void destroy(kitd_endpointer *ep) {
  stop_timer(ep);
  release_all(ep);
  free(ep->last_detail);
  if (ep->cond_ok) pthread_cond_destroy(&ep->cond);
  pthread_mutex_destroy(&ep->mu);
  if (ep->factory.release) ep->factory.release(ep->factory.arg);
  kitd_instancer_free(ep->src);
  free(ep);
}

static int start_timer(kitd_endpointer *ep) {
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) return KITD_ENOMEM;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  ep->cond_ok = pthread_cond_init(&ep->cond, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ep->cond_ok || pthread_create(&ep->timer, NULL, invalidate_thread, ep) != 0)
    return KITD_ENOMEM;
  ep->timer_running = true;
  return 0;
}

int kitd_endpointer_new(kitd_instancer *src, const kitd_factory *factory,
                        const kitd_endpointer_opts *opts, kitd_endpointer **out) {
  int bad = !src || !factory || !factory->fn || !out ||
            (opts && opts->size != sizeof *opts);
  kitd_endpointer *ep = bad ? NULL : kitd__aligned_alloc(_Alignof(kitd_endpointer), sizeof *ep);
  if (!ep || pthread_mutex_init(&ep->mu, NULL) != 0) {
    /* The factory argument is taken on every path. */
    if (factory && factory->release) factory->release(factory->arg);
    free(ep);
    return bad ? KITD_EINVAL : KITD_ENOMEM;
  }
  memset((char *)ep + offsetof(kitd_endpointer, refs), 0,
         sizeof *ep - offsetof(kitd_endpointer, refs));
  atomic_init(&ep->refs, 1);
  if (opts)
    ep->opts = *opts;
  else
    kitd_endpointer_opts_init(&ep->opts);
  kitd__hp_init(); /* before any pick or reclaim can involve this endpointer */
  ep->src = kitd__instancer_ref(src);
  ep->factory = *factory;
  struct kitd__snap *empty = snap_new(ep, 0);
  atomic_init(&ep->snap, empty);
  int rc = empty ? 0 : KITD_ENOMEM;
  if (!rc && ep->opts.invalidate_on_error_ms > 0) rc = start_timer(ep);
  if (!rc) rc = kitd_instancer_subscribe(src, on_event, ep);
  if (rc) {
    destroy(ep);
    return rc;
  }
  *out = ep;
  return 0;
}

kitd_endpointer *kitd__endpointer_ref(kitd_endpointer *ep) {
  atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
  return ep;
}

void kitd_endpointer_free(kitd_endpointer *ep) {
  if (!ep) return;
  if (atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) != 1) return;
  /* After this no event arrives: the instancer guarantees the callback is
   * not running and never runs again. */
  kitd_instancer_unsubscribe(ep->src, on_event, ep);
  destroy(ep);
}

int kitd_endpointer_endpoints(kitd_endpointer *ep, kitd_endpoint ***out, size_t *count) {
  if (!ep || !out || !count) return KITD_EINVAL;
  pthread_mutex_lock(&ep->mu);
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  kitd_endpoint **v = kitd__malloc((s->count ? s->count : 1) * sizeof *v);
  if (!v) {
    pthread_mutex_unlock(&ep->mu);
    return KITD_ENOMEM;
  }
  for (size_t i = 0; i < s->count; i++) v[i] = kitd_endpoint_ref(s->eps[i]);
  *count = s->count;
  pthread_mutex_unlock(&ep->mu);
  *out = v;
  return 0;
}

size_t kitd_endpointer_count(kitd_endpointer *ep) {
  if (!ep) return 0;
  pthread_mutex_lock(&ep->mu);
  size_t n = atomic_load_explicit(&ep->snap, memory_order_relaxed)->count;
  pthread_mutex_unlock(&ep->mu);
  return n;
}

const char *kitd_endpointer_explain(kitd_endpointer *ep, char *buf, size_t cap) {
  if (!buf || cap == 0) return buf;
  buf[0] = '\0';
  if (!ep) return buf;
  const char *what = kitd_instancer_describe(ep->src);
  pthread_mutex_lock(&ep->mu);
  size_t live = atomic_load_explicit(&ep->snap, memory_order_relaxed)->count;
  int n;
  if (!ep->seen) {
    n = snprintf(buf, cap, "no answer yet from the registry for %s", what);
  } else if (ep->last_err) {
    const char *d = ep->last_detail ? ep->last_detail : kitd_strerror(ep->last_err);
    if (ep->last_good_ns) {
      long long age = (long long)((kitd_now_ns() - ep->last_good_ns) / 1000000000);
      n = snprintf(buf, cap, "%s; last good answer %lld s ago", d, age);
    } else {
      n = snprintf(buf, cap, "%s; no good answer yet", d);
    }
  } else if (ep->last_count > 0 && live == 0) {
    n = snprintf(buf, cap, "%zu %s, none usable: the endpoint factory failed (%s)",
                 ep->last_count, what, kitd_err_name(ep->factory_err));
  } else {
    n = snprintf(buf, cap, "%zu %s", live, what);
  }
  pthread_mutex_unlock(&ep->mu);
  (void)n; /* truncation is documented: the message is cut at cap - 1 */
  return buf;
}

void kitd_endpoint_list_free(kitd_endpoint **list, size_t count) {
  if (!list) return;
  for (size_t i = 0; i < count; i++) kitd_endpoint_unref(list[i]);
  free(list);
}
