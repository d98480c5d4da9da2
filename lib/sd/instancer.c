/* SPDX-License-Identifier: MIT */
/* The instancer base: subscribers, the last good set, the last error,
 * references, readiness, and calls made from inside a callback. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "kitd/ctx.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

/* The instancers delivering an event on this thread, innermost first: a
 * call from inside a callback finds its instancer here and does not take
 * the lock it already holds. */
struct deliv {
  const kitd_instancer *in;
  struct deliv *up;
};
/* initial-exec, as every thread-local of the library: the general model
 * goes through __tls_get_addr, which some sanitizer runtimes intercept
 * badly in a shared library. */
static __thread struct deliv *tls_deliv __attribute__((tls_model("initial-exec")));

static int in_callback(const kitd_instancer *in) {
  for (struct deliv *d = tls_deliv; d; d = d->up)
    if (d->in == in) return 1;
  return 0;
}

/* Lock unless this thread already holds the lock in a delivery. Returns
 * whether it locked (pass it to unlock_maybe). */
static int lock_maybe(kitd_instancer *in) {
  if (in_callback(in)) return 0;
  pthread_mutex_lock(&in->mu);
  return 1;
}
static void unlock_maybe(kitd_instancer *in, int locked) {
  if (locked) pthread_mutex_unlock(&in->mu);
}

int kitd__instancer_init(kitd_instancer *in, const struct kitd__instancer_ops *ops) {
  memset(in, 0, sizeof *in);
  in->ops = ops;
  atomic_init(&in->refs, 1);
  if (pthread_mutex_init(&in->mu, NULL) != 0) return KITD_ENOMEM;
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) {
    pthread_mutex_destroy(&in->mu);
    return KITD_ENOMEM;
  }
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  in->cond_ok = pthread_cond_init(&in->ready, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!in->cond_ok) {
    pthread_mutex_destroy(&in->mu);
    return KITD_ENOMEM;
  }
  return 0;
}

int kitd__instancer_set_what(kitd_instancer *in, const char *what) {
  char *w = kitd__strdup(what);
  if (!w) return KITD_ENOMEM;
  free(in->what);
  in->what = w;
  return 0;
}

const char *kitd_instancer_describe(const kitd_instancer *in) {
  if (!in) return "";
  return in->what ? in->what : "instances";
}

kitd_instancer *kitd__instancer_ref(kitd_instancer *in) {
  atomic_fetch_add_explicit(&in->refs, 1, memory_order_relaxed);
  return in;
}

static void set_free(kitd_instance **v, size_t n) { kitd_instance_list_free(v, n); }

/* Deliver the current state to one subscriber; called with in->mu held. */
static void deliver(kitd_instancer *in, const struct kitd__subscriber *s) {
  kitd_event ev;
  ev.err = in->err;
  ev.detail = in->detail ? in->detail : "";
  ev.instances = (const kitd_instance *const *)in->set;
  ev.count = in->count;
  ev.last_good_ns = in->last_good_ns;
  struct deliv d = {in, tls_deliv};
  tls_deliv = &d;
  in->delivering++;
  s->fn(s->arg, &ev);
  in->delivering--;
  tls_deliv = d.up;
}

static void compact(kitd_instancer *in) {
  size_t o = 0;
  for (size_t i = 0; i < in->nsubs; i++)
    if (in->subs[i].fn) in->subs[o++] = in->subs[i];
  in->nsubs = o;
  in->compact = false;
}

static void apply_good(kitd_instancer *in, kitd_instance **v, size_t n);
static void apply_error(kitd_instancer *in, int err, char *detail);

/* Deliver what a callback published meanwhile (mu held, not in a delivery). */
static void flush_pending(kitd_instancer *in) {
  while (in->pending && !in->delivering && !in->stopped) {
    in->pending = false;
    if (in->pend_err) {
      int e = in->pend_err;
      in->pend_err = 0;
      apply_error(in, e, in->pend_detail);
      in->pend_detail = NULL;
    } else {
      kitd_instance **v = in->pend_set;
      size_t n = in->pend_count;
      in->pend_set = NULL;
      in->pend_count = 0;
      apply_good(in, v, n);
    }
  }
}

/* Tell every subscriber (those subscribed during this delivery already got
 * the state), then any state a callback published meanwhile. */
static void deliver_all(kitd_instancer *in) {
  size_t n = in->nsubs;
  for (size_t i = 0; i < n && !in->stopped; i++) {
    struct kitd__subscriber s = in->subs[i];
    if (s.fn) deliver(in, &s);
  }
  if (in->delivering == 0 && in->compact) compact(in);
  if (in->cond_ok) pthread_cond_broadcast(&in->ready);
  flush_pending(in);
}

static int same_set(kitd_instance **a, size_t na, kitd_instance **b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i]->address, b[i]->address) != 0 || !kitd__instance_same_attrs(a[i], b[i]))
      return 0;
  return 1;
}

/* Install a good set (taken) unless nothing changed; mu held, not in a
 * delivery of `in`. Returns whether subscribers must be told. */
static int install_good(kitd_instancer *in, kitd_instance **v, size_t n) {
  in->last_good_ns = kitd_now_ns();
  in->answers++;
  int changed = !in->has_state || in->err != 0 || !same_set(in->set, in->count, v, n);
  in->has_good = true;
  if (!changed) {
    set_free(v, n);
    return 0;
  }
  set_free(in->set, in->count);
  in->set = v;
  in->count = n;
  in->err = 0;
  free(in->detail);
  in->detail = NULL;
  in->has_state = true;
  return 1;
}

static void apply_good(kitd_instancer *in, kitd_instance **v, size_t n) {
  if (install_good(in, v, n)) deliver_all(in);
  else if (in->cond_ok) pthread_cond_broadcast(&in->ready);
}

static void apply_error(kitd_instancer *in, int err, char *detail) {
  /* Keep the last good set on an error: a registry outage or a half-read
   * answer must never empty the pool while the servers are healthy. */
  free(in->detail);
  in->detail = detail;
  in->err = err ? err : KITD_EINTERNAL;
  in->last_err = in->err;
  in->answers++, in->errors++;
  char *keep = kitd__strdup(detail ? detail : kitd_strerror(in->err));
  if (keep) free(in->last_detail), in->last_detail = keep; /* no memory: the older one stays */
  in->has_state = true;
  deliver_all(in);
}

static void drop_pending(kitd_instancer *in) {
  set_free(in->pend_set, in->pend_count);
  in->pend_set = NULL;
  in->pend_count = 0;
  free(in->pend_detail);
  in->pend_detail = NULL;
  in->pend_err = 0;
  in->pending = false;
}

int kitd__instancer_publish(kitd_instancer *in, kitd_instance **instances, size_t count) {
  if (count && !instances) return KITD_EINVAL;
  for (size_t i = 0; i < count; i++) kitd__instance_freeze(instances[i]);
  /* Sorting happens outside the lock: subscribers and the state readers
   * never wait for a qsort of a large answer. */
  count = kitd__instance_sort_unique(instances, count);
  int locked = lock_maybe(in);
  if (in->stopped) {
    unlock_maybe(in, locked);
    set_free(instances, count);
    return KITD_ESTOPPED;
  }
  if (!locked) { /* from a callback: after the current event */
    drop_pending(in);
    in->pending = true;
    in->pend_set = instances;
    in->pend_count = count;
    return 0;
  }
  apply_good(in, instances, count);
  pthread_mutex_unlock(&in->mu);
  return 0;
}

void kitd__instancer_publish_error(kitd_instancer *in, int err, const char *detail) {
  char *d = detail ? kitd__strdup(detail) : NULL;
  int locked = lock_maybe(in);
  if (in->stopped) {
    unlock_maybe(in, locked);
    free(d);
    return;
  }
  if (!locked) {
    drop_pending(in);
    in->pending = true;
    in->pend_err = err ? err : KITD_EINTERNAL;
    in->pend_detail = d;
    return;
  }
  apply_error(in, err, d);
  pthread_mutex_unlock(&in->mu);
}

int kitd__instancer_stopped(kitd_instancer *in) {
  int locked = lock_maybe(in);
  int s = in->stopped;
  unlock_maybe(in, locked);
  return s;
}

int kitd_instancer_subscribe(kitd_instancer *in, kitd_event_fn fn, void *arg) {
  if (!in || !fn) return KITD_EINVAL;
  int locked = lock_maybe(in);
  int rc = in->stopped ? KITD_ESTOPPED : 0;
  for (size_t i = 0; !rc && i < in->nsubs; i++)
    if (in->subs[i].fn == fn && in->subs[i].arg == arg) rc = KITD_EEXIST;
  if (!rc && in->nsubs == in->capsubs) {
    size_t cap = in->capsubs ? in->capsubs * 2 : 4;
    struct kitd__subscriber *n = kitd__realloc(in->subs, cap * sizeof *n);
    if (!n) {
      rc = KITD_ENOMEM;
    } else {
      in->subs = n;
      in->capsubs = cap;
    }
  }
  if (!rc) {
    struct kitd__subscriber s = {fn, arg};
    in->subs[in->nsubs++] = s;
    if (in->has_state) deliver(in, &s);
    if (!in->delivering && in->compact) compact(in);
    if (locked) flush_pending(in);
  }
  unlock_maybe(in, locked);
  return rc;
}

int kitd_instancer_unsubscribe(kitd_instancer *in, kitd_event_fn fn, void *arg) {
  if (!in || !fn) return KITD_EINVAL;
  int rc = KITD_ENOTFOUND;
  int locked = lock_maybe(in);
  for (size_t i = 0; i < in->nsubs; i++) {
    if (in->subs[i].fn == fn && in->subs[i].arg == arg) {
      if (in->delivering) { /* a loop is walking the array: mark it */
        in->subs[i].fn = NULL;
        in->compact = true;
      } else {
        memmove(&in->subs[i], &in->subs[i + 1], (in->nsubs - i - 1) * sizeof *in->subs);
        in->nsubs--;
      }
      rc = 0;
      break;
    }
  }
  unlock_maybe(in, locked);
  return rc;
}

int kitd_instancer_state(kitd_instancer *in, kitd_instance ***instances, size_t *count) {
  if (!in || !instances || !count) return KITD_EINVAL;
  int locked = lock_maybe(in);
  size_t n = in->count;
  kitd_instance **v = kitd__malloc((n ? n : 1) * sizeof *v);
  int rc = KITD_ENOMEM;
  if (v) {
    for (size_t i = 0; i < n; i++) v[i] = kitd_instance_ref(in->set[i]);
    rc = in->has_state ? in->err : KITD_ENOTFOUND;
  }
  unlock_maybe(in, locked);
  if (!v) return rc;
  *instances = v;
  *count = n;
  return rc;
}

int kitd_instancer_wait_ready(kitd_instancer *in, int64_t timeout_ms) {
  if (!in || in_callback(in)) return KITD_EINVAL;
  int64_t deadline = timeout_ms >= 0 ? kitd_now_ns() + timeout_ms * 1000000 : 0;
  pthread_mutex_lock(&in->mu);
  int rc = 0;
  while (!in->has_good) {
    if (in->stopped) {
      rc = KITD_ESTOPPED;
      break;
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&in->ready, &in->mu);
      continue;
    }
    if (kitd_now_ns() >= deadline) {
      rc = in->last_err ? in->last_err : KITD_ETIMEDOUT;
      break;
    }
    struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
    pthread_cond_timedwait(&in->ready, &in->mu, &ts);
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

void kitd_instancer_stop(kitd_instancer *in) {
  if (!in) return;
  int cb = in_callback(in);
  int locked = lock_maybe(in);
  in->stopped = true;
  drop_pending(in);
  if (in->cond_ok) pthread_cond_broadcast(&in->ready);
  /* From a callback the watch thread may be this very thread: joining it
   * here would never return. It is stopped by the next call from outside,
   * or by the last unref; meanwhile nothing is delivered. */
  bool run = !cb && !in->stop_done;
  if (run) in->stop_done = true;
  unlock_maybe(in, locked);
  if (run && in->ops && in->ops->stop) in->ops->stop(in);
}

void kitd_instancer_free(kitd_instancer *in) {
  if (!in) return;
  if (atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) != 1) return;
  /* The last reference: nobody else can reach `in` any more, so no callback
   * of it runs (a subscriber holds a reference while subscribed). */
  kitd_instancer_stop(in);
  set_free(in->set, in->count);
  drop_pending(in);
  free(in->detail);
  free(in->last_detail);
  free(in->subs);
  free(in->what);
  if (in->cond_ok) pthread_cond_destroy(&in->ready);
  pthread_mutex_destroy(&in->mu);
  if (in->ops && in->ops->destroy) in->ops->destroy(in);
}
