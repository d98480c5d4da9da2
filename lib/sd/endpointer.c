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

static struct kitd__snap *snap_new(size_t cap) {
  struct kitd__snap *s = kitd__calloc(1, sizeof *s);
  if (!s) return NULL;
  if (cap) {
    s->eps = kitd__malloc(cap * sizeof *s->eps);
    s->inst = kitd__malloc(cap * sizeof *s->inst);
    if (!s->eps || !s->inst) {
      free(s->eps);
      free(s->inst);
      free(s);
      return NULL;
    }
  }
  return s;
}

/* Free a snapshot and what it was handed to drop. Its live entries belong
 * to the endpointer (or to a newer snapshot) and are left alone. */
static void snap_free(struct kitd__snap *s) {
  for (size_t i = 0; i < s->ndrop; i++) {
    kitd_endpoint_unref(s->drop_eps[i]);
    free(s->drop_inst[i]);
  }
  free(s->drop_eps);
  free(s->drop_inst);
  free(s->eps);
  free(s->inst);
  free(s);
}

/* Free retired snapshots oldest first, stopping at the first one a picker
 * still holds: an endpoint dropped at update k may still be in use through
 * any snapshot up to k, so none of them may go before the older ones. */
static void reclaim_locked(kitd_endpointer *ep) {
  struct kitd__snap *h;
  while ((h = ep->retired_head) != NULL) {
    if (kitd__hp_in_use(h)) break;
    ep->retired_head = h->next;
    if (!ep->retired_head) ep->retired_tail = NULL;
    snap_free(h);
  }
}

void kitd__endpointer_try_reclaim(kitd_endpointer *ep) {
  if (pthread_mutex_trylock(&ep->mu) != 0) return; /* the holder reclaims */
  reclaim_locked(ep);
  pthread_mutex_unlock(&ep->mu);
}

/* Replace the live set by `in` (sorted, unique). Called with ep->mu held.
 * Cost: one merge over both sets plus the factory for new instances only. */
static int update_locked(kitd_endpointer *ep, const char *const *in, size_t n) {
  struct kitd__snap *old = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  struct kitd__snap *s = snap_new(n);
  if (!s) return KITD_ENOMEM;
  /* Room for every old entry to be dropped, reserved up front so that the
   * merge below cannot fail half-way. */
  if (old->count) {
    old->drop_eps = kitd__malloc(old->count * sizeof *old->drop_eps);
    old->drop_inst = kitd__malloc(old->count * sizeof *old->drop_inst);
    if (!old->drop_eps || !old->drop_inst) {
      free(old->drop_eps);
      free(old->drop_inst);
      old->drop_eps = NULL;
      old->drop_inst = NULL;
      snap_free(s);
      return KITD_ENOMEM;
    }
  }
  size_t i = 0, j = 0, k = 0, added = 0;
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
        char q[KITD_INSTANCE_MAX + 8];
        kitd_log(ep->opts.logger, KITD_LOG_WARN, "endpointer",
                 "msg=\"factory failed; instance skipped\" instance=%s err=%s",
                 kitd_log_quote(q, sizeof q, in[i]), kitd_err_name(rc));
      }
      i++;
    } else {
      old->drop_eps[old->ndrop] = old->eps[j];
      old->drop_inst[old->ndrop] = old->inst[j];
      old->ndrop++;
      j++;
    }
  }
  s->count = k;
  if (added == 0 && old->ndrop == 0) {
    snap_free(s); /* nothing changed */
    free(old->drop_eps);
    free(old->drop_inst);
    old->drop_eps = NULL;
    old->drop_inst = NULL;
    return 0;
  }
  size_t removed = old->ndrop; /* `old` may be freed by the reclaim below */
  atomic_store_explicit(&ep->snap, s, memory_order_seq_cst);
  atomic_store_explicit(&old->retired, 1, memory_order_release);
  if (ep->retired_tail)
    ep->retired_tail->next = old;
  else
    ep->retired_head = old;
  ep->retired_tail = old;
  reclaim_locked(ep);
  kitd_log(ep->opts.logger, KITD_LOG_DEBUG, "endpointer", "endpoints=%zu added=%zu removed=%zu",
           k, added, removed);
  return 0;
}

static void on_event(void *arg, const kitd_event *ev) {
  kitd_endpointer *ep = arg;
  pthread_mutex_lock(&ep->mu);
  if (ev->err) {
    if (ep->opts.invalidate_on_error_ms >= 0 && !ep->erroring) {
      ep->erroring = true;
      ep->invalidate_at_ns = kitd_now_ns() + ep->opts.invalidate_on_error_ms * 1000000;
      pthread_cond_signal(&ep->cond);
    }
    /* An error event carries the last good set: a late subscriber serves it,
     * unless the error has lasted long enough to invalidate it. */
    if (!ep->invalidated) update_locked(ep, ev->instances, ev->count);
  } else {
    ep->erroring = false;
    ep->invalidated = false;
    pthread_cond_signal(&ep->cond);
    int rc = update_locked(ep, ev->instances, ev->count);
    if (rc)
      kitd_log(ep->opts.logger, KITD_LOG_ERROR, "endpointer",
               "msg=\"update failed; previous endpoints kept\" err=%s", kitd_err_name(rc));
  }
  pthread_mutex_unlock(&ep->mu);
}

/* go-kit's InvalidateOnError, on time: a thread that empties the set when an
 * error has lasted invalidate_on_error_ms without a good event. */
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
      if (update_locked(ep, NULL, 0) == 0) {
        ep->invalidated = true;
        kitd_log(ep->opts.logger, KITD_LOG_WARN, "endpointer",
                 "msg=\"registry errors outlasted invalidate_on_error; endpoints closed\"");
      } else {
        ep->invalidate_at_ns = now + 100 * 1000000; /* out of memory: try again */
      }
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
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  while (ep->retired_head) {
    struct kitd__snap *h = ep->retired_head;
    ep->retired_head = h->next;
    snap_free(h);
  }
  ep->retired_tail = NULL;
  if (s) {
    for (size_t i = 0; i < s->count; i++) {
      kitd_endpoint_unref(s->eps[i]);
      free(s->inst[i]);
    }
    snap_free(s);
  }
}

int kitd_endpointer_new(kitd_instancer *src, kitd_factory_fn factory, void *arg,
                        const kitd_endpointer_opts *opts, kitd_endpointer **out) {
  if (!src || !factory || !out) return KITD_EINVAL;
  kitd_endpointer *ep = kitd__calloc(1, sizeof *ep);
  if (!ep) return KITD_ENOMEM;
  if (opts)
    ep->opts = *opts;
  else
    kitd_endpointer_opts_init(&ep->opts);
  ep->src = src;
  ep->factory = factory;
  ep->arg = arg;
  struct kitd__snap *empty = snap_new(0);
  pthread_condattr_t ca;
  int rc = KITD_ENOMEM;
  if (!empty) goto fail_alloc;
  atomic_store_explicit(&ep->snap, empty, memory_order_relaxed);
  if (pthread_mutex_init(&ep->mu, NULL) != 0) goto fail_alloc;
  if (pthread_condattr_init(&ca) != 0) goto fail_mutex;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int crc = pthread_cond_init(&ep->cond, &ca);
  pthread_condattr_destroy(&ca);
  if (crc != 0) goto fail_mutex;
  if (ep->opts.invalidate_on_error_ms >= 0) {
    if (pthread_create(&ep->timer, NULL, invalidate_thread, ep) != 0) goto fail_cond;
    ep->timer_running = true;
  }
  rc = kitd_instancer_subscribe(src, on_event, ep);
  if (rc) goto fail_timer;
  *out = ep;
  return 0;

fail_timer:
  if (ep->timer_running) {
    pthread_mutex_lock(&ep->mu);
    ep->closing = true;
    pthread_cond_signal(&ep->cond);
    pthread_mutex_unlock(&ep->mu);
    pthread_join(ep->timer, NULL);
  }
fail_cond:
  pthread_cond_destroy(&ep->cond);
fail_mutex:
  pthread_mutex_destroy(&ep->mu);
fail_alloc:
  release_all(ep);
  free(ep);
  return rc;
}

void kitd_endpointer_free(kitd_endpointer *ep) {
  if (!ep) return;
  kitd_instancer_unsubscribe(ep->src, on_event, ep);
  if (ep->timer_running) {
    pthread_mutex_lock(&ep->mu);
    ep->closing = true;
    pthread_cond_signal(&ep->cond);
    pthread_mutex_unlock(&ep->mu);
    pthread_join(ep->timer, NULL);
  }
  release_all(ep);
  pthread_cond_destroy(&ep->cond);
  pthread_mutex_destroy(&ep->mu);
  free(ep);
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
