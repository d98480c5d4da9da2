/* SPDX-License-Identifier: MIT */
/* Smooth weighted round robin: one shared position walks the snapshot's
 * weighted order (lib/sd/weights.c, made by the update when the weights
 * differ; plain rotation when they are equal). The pick is round robin's
 * plus one load: no lock, no allocation, no clock. Unhealthy and ejected
 * instances are skipped unless the set is in panic (outlier.c). */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static inline size_t wrr_next(kitd_balancer *b, const struct kitd__snap *s, size_t n) {
  const struct kitd__worder *o = s->order;
  if (o) return o->idx[kitd__rr_global_next_m(b, o->len, o->len_m)];
  return kitd__rr_global_next_m(b, n, s->count_m);
}

/* Not all healthy, a zone preferred, or an instance in slow start: walk on
 * to an entry that is usable (in the local zone first, if it has any) and
 * that slow start lets through. With at least panic_percent healthy, a few
 * steps find one; the walk is bounded, and a set with none usable gets the
 * first candidate. */
static size_t wrr_slow(kitd_balancer *b, const struct kitd__snap *s, size_t n, size_t i) {
  int64_t now = 0;
  int health = !kitd__all_healthy(b, s) && !kitd__panic(b, s);
  int warm = kitd__warming(b, s, &now);
  if (!health && !warm) return i;
  size_t len = s->order ? s->order->len : n;
  /* In the zone chosen first (local, or the others for a spilled pick),
   * then, if none is usable there, in any zone. */
  int first = health ? kitd__zone_pick(b, s) : 0;
  for (int pass = 0, local = first; pass < 1 + (first != 0); pass++, local = 0) {
    for (size_t t = 0; t < len && t < 2 * n + 16; t++) {
      if ((!health || kitd__usable(b, s, i, &now, local)) &&
          (!warm || kitd__warm_accept(b, s, i, now)))
        return i;
      i = wrr_next(b, s, n);
    }
    for (size_t k = 0; k < n; k++)
      if (!health || kitd__usable(b, s, (i + k) % n, &now, local)) return (i + k) % n;
  }
  return i;
}

static size_t wrr_next_fn(kitd_balancer *b, size_t n) { return kitd__rr_global_next(b, n); }

/* The pick once s is held, when the set is not all healthy or is warming
 * up: the rotation, then the walk. */
static __attribute__((noinline)) int wrr_pick_slow(kitd_balancer *b, kitd_pick *out,
                                                   struct kitd__snap *s, size_t n, int slot) {
  return kitd__pick_fill(b, out, s, wrr_slow(b, s, n, wrr_next(b, s, n)), n, slot);
}

/* The checks come before the rotation's locked add: loads after it wait
 * for it, loads before it run beside the loads it waits for. */
static inline __attribute__((always_inline)) int wrr_pick_from(kitd_balancer *b, kitd_pick *out,
                                                               struct kitd__snap *s, int slot) {
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  if (__builtin_expect(!kitd__all_healthy(b, s) || !kitd__settled(b, s), 0))
    return wrr_pick_slow(b, out, s, n, slot);
  return kitd__pick_fill(b, out, s, wrr_next(b, s, n), n, slot);
}

/* No free slot: the snapshot held by a count. */
static __attribute__((noinline)) int wrr_pick_held(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_hold(b, &slot);
  return wrr_pick_from(b, out, s, slot);
}

/* The fast path makes no call but tail calls (the health walk and the
 * held snapshot are apart), so it saves no register. */
static int wrr_pick(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return wrr_pick_held(b, out);
  return wrr_pick_from(b, out, s, slot);
}

static __attribute__((noinline)) void wrr_done_outcome(kitd_balancer *b, kitd_pick *p, int result) {
  kitd__outcome(b, p, result);
  kitd__pick_release(b, p);
}

static void wrr_done(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  (void)latency_ns;
  if (__builtin_expect(!kitd__outcome_none(b, p, result), 0)) {
    wrr_done_outcome(b, p, result);
    return;
  }
  kitd__pick_release(b, p);
}

static const struct kitd__balancer_ops wrr_ops = {"weighted", wrr_pick, wrr_next_fn, wrr_done, 0};

int kitd_balancer_weighted_new(kitd_endpointer *ep, const kitd_balancer_opts *opts,
                               kitd_balancer **out) {
  return kitd__balancer_new_health(ep, &wrr_ops, opts, out);
}
