/* The endpointer: one endpoint per instance, published as immutable
 * snapshots that balancers read through hazard slots (hazard.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "sd/endpointer_impl.h"
#include "sd/hazard.h"

void kitd_endpointer_opts_init(kitd_endpointer_opts *o) {
  if (!o) return;
  o->invalidate_on_error_ms = -1;
  o->logger = NULL;
}

/* One allocation: header, endpoint array, instance array. */
static struct kitd__snap *snap_alloc(size_t n) {
  struct kitd__snap *s =
      kitd__aligned_alloc(_Alignof(struct kitd__snap), sizeof *s + 2 * n * sizeof(void *));
  if (s) s->cap = n;
  return s;
}

static void snap_reset(struct kitd__snap *s) {
  s->count = 0;
  s->eps = (kitd_endpoint **)(s + 1);
  s->inst = (char **)(s->eps + s->cap);
  atomic_init(&s->retired, 0);
  s->next = NULL;
  s->drop = NULL;
  s->ndrop = s->capdrop = 0;
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

static struct kitd__drop *drop_new(kitd_endpointer *ep, size_t n, size_t *cap) {
  if (ep->spare_drop && ep->spare_drop_cap >= n && ep->spare_drop_cap <= 2 * n + 64) {
    struct kitd__drop *d = ep->spare_drop;
    *cap = ep->spare_drop_cap;
    ep->spare_drop = NULL;
    return d;
  }
  *cap = n;
  return kitd__malloc(n * sizeof(struct kitd__drop));
}

static void drop_keep(kitd_endpointer *ep, struct kitd__drop *d, size_t cap) {
  if (!d) return;
  if (ep->spare_drop && ep->spare_drop_cap >= cap) {
    free(d);
    return;
  }
  free(ep->spare_drop);
  ep->spare_drop = d;
  ep->spare_drop_cap = cap;
}

/* Release what a snapshot was handed to drop, then keep the block as the
 * spare (the larger of the two) or free it. Its live entries belong to the
 * endpointer (or to a newer snapshot) and are left alone. */
static void snap_free(kitd_endpointer *ep, struct kitd__snap *s) {
  for (size_t i = 0; i < s->ndrop; i++) {
    kitd_endpoint_unref(s->drop[i].ep);
    free(s->drop[i].inst);
  }
  drop_keep(ep, s->drop, s->capdrop);
  if (ep->spare && ep->spare->cap >= s->cap) {
    free(s);
    return;
  }
  free(ep->spare);
  ep->spare = s;
}

/* Free retired snapshots oldest first, stopping at the first one a picker
 * still holds. An endpoint dropped at update k is reachable through every
 * snapshot from the one that added it up to k, but sits only in k's drop
 * list; freeing in order makes "k is free" imply "all of them are". */
static void reclaim_locked(kitd_endpointer *ep) {
  struct kitd__snap *h;
  if (ep->retired_head) kitd__hp_scan_begin();
  while ((h = ep->retired_head) != NULL) {
    if (atomic_load_explicit(&h->refs, memory_order_acquire) != 0 || kitd__hp_in_use(h)) break;
    ep->retired_head = h->next;
    if (!ep->retired_head) ep->retired_tail = NULL;
    snap_free(ep, h);
  }
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

/* Replace the live set by `in` (sorted, unique). Called with ep->mu held.
 * Cost: one merge over both sets, the factory for new instances only, and
 * one pointer copy per kept endpoint: no refcount traffic on those. */
static int update_locked(kitd_endpointer *ep, const char *const *in, size_t n) {
  struct kitd__snap *old = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  struct kitd__snap *s = snap_new(ep, n);
  if (!s) return KITD_ENOMEM;
  /* Room for every old entry to be dropped, reserved up front so that the
   * merge below cannot fail half-way. */
  struct kitd__drop *drop = NULL;
  size_t capdrop = 0;
  if (old->count) {
    drop = drop_new(ep, old->count, &capdrop);
    if (!drop) {
      snap_free(ep, s);
      return KITD_ENOMEM;
    }
  }
  size_t i = 0, j = 0, k = 0, added = 0, ndrop = 0;
  while (i < n || j < old->count) {
    int c = i < n && j < old->count ? strcmp(in[i], old->inst[j]) : (i < n ? -1 : 1);
    if (c == 0) {
      s->eps[k] = old->eps[j];
      s->inst[k] = old->inst[j];
      k++, i++, j++;
    } else if (c < 0) {
      kitd_endpoint *e = NULL;
      int rc = ep->factory(ep->arg, in[i], &e);
      char *copy = rc == 0 && e ? kitd__strdup(in[i]) : NULL;
      if (copy) {
        s->eps[k] = e;
        s->inst[k] = copy;
        k++, added++;
      } else {
        if (rc == 0) {
          kitd_endpoint_unref(e);
          rc = e ? KITD_ENOMEM : KITD_EINTERNAL;
        }
        /* Skipped, not fatal: the instance is tried again on the next event
         * that still lists it (it is not in the live set, so it is "new"). */
        char q[KITD_INSTANCE_MAX + 8];
        kitd_log(ep->opts.logger, KITD_LOG_WARN, "endpointer",
                 "msg=\"factory failed; instance skipped\" instance=%s err=%s",
                 kitd_log_quote(q, sizeof q, in[i]), kitd_err_name(rc));
      }
      i++;
    } else {
      drop[ndrop].ep = old->eps[j];
      drop[ndrop].inst = old->inst[j];
      ndrop++;
      j++;
    }
  }
  if (added == 0 && ndrop == 0) { /* nothing changed */
    snap_free(ep, s);
    drop_keep(ep, drop, capdrop);
    return 0;
  }
  s->count = k;
  old->drop = drop;
  old->ndrop = ndrop;
  old->capdrop = capdrop;
  atomic_store_explicit(&ep->snap, s, memory_order_seq_cst);
  atomic_store_explicit(&old->retired, 1, memory_order_relaxed);
  if (ep->retired_tail)
    ep->retired_tail->next = old;
  else
    ep->retired_head = old;
  ep->retired_tail = old;
  reclaim_locked(ep);
  kitd_log(ep->opts.logger, KITD_LOG_DEBUG, "endpointer", "endpoints=%zu added=%zu removed=%zu",
           k, added, ndrop);
  return 0;
}

/* go-kit's InvalidateOnError: close every endpoint as if the set were
 * empty. Called with ep->mu held. */
static int invalidate_locked(kitd_endpointer *ep) {
  int rc = update_locked(ep, NULL, 0);
  if (rc == 0) {
    ep->invalidated = true;
    kitd_log(ep->opts.logger, KITD_LOG_WARN, "endpointer",
             "msg=\"registry error outlasted invalidate_on_error; endpoints closed\" "
             "invalidate_on_error_ms=%lld",
             (long long)ep->opts.invalidate_on_error_ms);
  }
  return rc;
}

static void on_event(void *arg, const kitd_event *ev) {
  kitd_endpointer *ep = arg;
  pthread_mutex_lock(&ep->mu);
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
    kitd_log(ep->opts.logger, KITD_LOG_ERROR, "endpointer",
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

static void release_all(kitd_endpointer *ep) {
  while (ep->retired_head) {
    struct kitd__snap *h = ep->retired_head;
    ep->retired_head = h->next;
    snap_free(ep, h);
  }
  ep->retired_tail = NULL;
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  if (s) {
    for (size_t i = 0; i < s->count; i++) {
      kitd_endpoint_unref(s->eps[i]);
      free(s->inst[i]);
    }
    snap_free(ep, s);
  }
  free(ep->spare);
  free(ep->spare_drop);
  ep->spare = NULL;
  ep->spare_drop = NULL;
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
  if (ep->cond_ok) pthread_cond_destroy(&ep->cond);
  pthread_mutex_destroy(&ep->mu);
  free(ep);
}

int kitd_endpointer_new(kitd_instancer *src, kitd_factory_fn factory, void *arg,
                        const kitd_endpointer_opts *opts, kitd_endpointer **out) {
  if (!src || !factory || !out) return KITD_EINVAL;
  kitd_endpointer *ep = kitd__aligned_alloc(_Alignof(kitd_endpointer), sizeof *ep);
  if (!ep) return KITD_ENOMEM;
  memset(ep, 0, sizeof *ep);
  if (opts)
    ep->opts = *opts;
  else
    kitd_endpointer_opts_init(&ep->opts);
  kitd__hp_init(); /* before any pick or reclaim can involve this endpointer */
  ep->src = src;
  ep->factory = factory;
  ep->arg = arg;
  if (pthread_mutex_init(&ep->mu, NULL) != 0) {
    free(ep);
    return KITD_ENOMEM;
  }
  struct kitd__snap *empty = snap_new(ep, 0);
  atomic_init(&ep->snap, empty);
  if (!empty) {
    destroy(ep);
    return KITD_ENOMEM;
  }
  if (ep->opts.invalidate_on_error_ms > 0) {
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
      destroy(ep);
      return KITD_ENOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ep->cond_ok = pthread_cond_init(&ep->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ep->cond_ok || pthread_create(&ep->timer, NULL, invalidate_thread, ep) != 0) {
      destroy(ep);
      return KITD_ENOMEM;
    }
    ep->timer_running = true;
  }
  int rc = kitd_instancer_subscribe(src, on_event, ep);
  if (rc) {
    destroy(ep);
    return rc;
  }
  *out = ep;
  return 0;
}

void kitd_endpointer_free(kitd_endpointer *ep) {
  if (!ep) return;
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

void kitd_endpoint_list_free(kitd_endpoint **list, size_t count) {
  if (!list) return;
  for (size_t i = 0; i < count; i++) kitd_endpoint_unref(list[i]);
  free(list);
}
