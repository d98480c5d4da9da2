/* SPDX-License-Identifier: MIT */
/* Least loaded by the power of two choices over peak-EWMA latency (the
 * balancer Finagle defaults to). A pick draws two distinct entries and
 * takes the one whose cost, latency estimate × (calls in flight + 1), is
 * lower. The calls in flight compared are the picking thread's own: each
 * thread counts its picks not yet handed back in its lane of the
 * instance's counts (lib/sd/endpointer_impl.h), so a pick and its done
 * write only a line of the thread's lane, never one another thread
 * writes, and each thread balances its own load (with one calling thread,
 * the same as one global count). The pick keeps its lane: done takes the
 * count back from it on whichever thread it runs.
 *
 * The estimate is "peak" EWMA, shared by the threads: a latency above it
 * replaces it at once (a slowing instance is avoided within one call), a
 * lower one pulls it down gradually, sampled (ewma_feed). It ages with
 * time: a pick divides it by 1 + age / TAU, where age is how long ago it
 * was last fed, so an instance that P2C stopped choosing gets tried again
 * after a while and can prove it has recovered. Picks read no clock
 * (25 ns): the age comes from the coarse clock that done() reads when it
 * has a latency, published in the endpointer. */
#include <time.h>

#include "kitd/error.h"
#include "lb/balancer_impl.h"

#define TAU_NS 10000000000.0 /* 10 s, Finagle's decay time */
/* A failed call counts as a latency of at least the estimate and at least
 * this: a refusing instance answers fast and must not look fastest (and a
 * failure never makes an instance look faster). */
#define FAIL_PENALTY_NS (10 * 1000 * 1000)
/* Latencies are clamped to this (an hour): the cost products stay finite. */
#define LATENCY_MAX_NS (3600LL * 1000000000)

static inline int64_t coarse_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The calling thread's in-flight lane (lane 0 for a thread without a
 * hazard record, whose picks are held by a count). */
static inline unsigned p2c_lane(void) {
  const struct kitd__hp_rec *r = kitd__hp_tls;
  return r ? r->index % KITD__IST_LANES : 0;
}

/* The better of entries a and c for a pick counted in `lane`: the loads
 * compared are that lane's, the calls this thread (and any sharing its
 * lane) has in flight. */
static inline __attribute__((always_inline)) size_t
p2c_better(const kitd_balancer *b, const struct kitd__snap *s, size_t a, size_t c, unsigned lane) {
  struct kitd__ist *x = s->st[a], *y = s->st[c];
  int64_t ex = atomic_load_explicit(&x->ewma, memory_order_relaxed);
  int64_t ey = atomic_load_explicit(&y->ewma, memory_order_relaxed);
  int px = atomic_load_explicit(kitd__ist_lane(x, lane), memory_order_relaxed);
  int py = atomic_load_explicit(kitd__ist_lane(y, lane), memory_order_relaxed);
  /* An entry with no latency yet (just joined) is taken to be as fast as
   * the other, so load alone decides: it is tried, not flooded. */
  if (ex == 0 || ey == 0) return px <= py ? a : c;
  int64_t now = atomic_load_explicit(&b->ep->clock, memory_order_relaxed);
  int64_t ax = now - atomic_load_explicit(&x->stamp, memory_order_relaxed);
  int64_t ay = now - atomic_load_explicit(&y->stamp, memory_order_relaxed);
  double dx = TAU_NS + (double)(ax > 0 ? ax : 0), dy = TAU_NS + (double)(ay > 0 ? ay : 0);
  /* ex (px+1) / dx <= ey (py+1) / dy, without a divide. */
  return (double)ex * (px + 1) * dy <= (double)ey * (py + 1) * dx ? a : c;
}

/* Two distinct entries at random (n >= 2). */
static inline void p2c_draw(size_t n, size_t *a, size_t *c) {
  uint64_t r = kitd__rand64();
  *a = kitd__reduce((uint32_t)(r >> 32), n);
  *c = kitd__reduce((uint32_t)r, n - 1);
  if (*c >= *a) (*c)++;
}

/* The better of a and c, with slow start: a candidate in its window is
 * replaced by another draw with probability 1 - age / window (not simply
 * beaten by the other: that would hand a slow instance the young one's
 * share). */
static size_t p2c_choose(const kitd_balancer *b, const struct kitd__snap *s, size_t a, size_t c,
                         int warm, int64_t now, unsigned lane) {
  size_t n = s->count;
  for (int t = 0; warm && t < 4; t++) {
    int ka = kitd__warm_accept(b, s, a, now), kc = kitd__warm_accept(b, s, c, now);
    if (ka && kc) break;
    if (!ka) {
      a = kitd__reduce((uint32_t)(kitd__rand64() >> 32), n - 1);
      if (a >= c) a++;
    }
    if (!kc) {
      c = kitd__reduce((uint32_t)(kitd__rand64() >> 32), n - 1);
      if (c >= a) c++;
    }
  }
  return p2c_better(b, s, a, c, lane);
}

/* Not all healthy, a zone preferred, or an instance in slow start: draw
 * again (a few times) for usable candidates, in the local zone first if it
 * has any; a usable one always beats an unusable one. */
static size_t p2c_slow(kitd_balancer *b, const struct kitd__snap *s, size_t n, size_t a, size_t c,
                       unsigned lane) {
  int64_t now = 0;
  int warm = kitd__warming(b, s, &now);
  if (kitd__all_healthy(b, s) || kitd__panic(b, s)) return p2c_choose(b, s, a, c, warm, now, lane);
  /* In the zone chosen first (local, or the others for a spilled pick),
   * then, if none is usable there, in any zone. */
  int first = kitd__zone_pick(b, s);
  for (int pass = 0, local = first; pass < 1 + (first != 0); pass++, local = 0) {
    for (int t = 0; t < 8; t++) {
      int ua = kitd__usable(b, s, a, &now, local), uc = kitd__usable(b, s, c, &now, local);
      if (ua && uc) return p2c_choose(b, s, a, c, warm, now, lane);
      if (ua) return a;
      if (uc) return c;
      p2c_draw(n, &a, &c);
    }
    for (size_t k = 0; k < n; k++)
      if (kitd__usable(b, s, (a + k) % n, &now, local)) return (a + k) % n;
  }
  return a;
}

static size_t p2c_next_fn(kitd_balancer *b, size_t n) {
  (void)b;
  return kitd__reduce((uint32_t)(kitd__rand64() >> 32), n);
}

/* Take entry i of s: count it in flight in `lane`, which the pick keeps
 * for done(). */
static inline int p2c_take(kitd_balancer *b, kitd_pick *out, struct kitd__snap *s, size_t i,
                           size_t n, int slot, unsigned lane) {
  atomic_fetch_add_explicit(kitd__ist_lane(s->st[i], lane), 1, memory_order_relaxed);
  return kitd__pick_fill(b, out, s, i, n, kitd__pick_word(slot, lane));
}

/* The pick once s is held, when it is not the common case: fewer than two
 * entries, not all healthy, or warming up. */
static __attribute__((noinline)) int p2c_pick_slow(kitd_balancer *b, kitd_pick *out,
                                                   struct kitd__snap *s, int slot) {
  size_t n = s->count;
  if (n == 0) return kitd__pick_empty(b, out, s, slot);
  unsigned lane = p2c_lane();
  if (n == 1) return p2c_take(b, out, s, 0, n, slot, lane);
  size_t a, c;
  p2c_draw(n, &a, &c);
  return p2c_take(b, out, s, p2c_slow(b, s, n, a, c, lane), n, slot, lane);
}

/* No free slot: the snapshot held by a count. */
static __attribute__((noinline)) int p2c_pick_held(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_hold(b, &slot);
  return p2c_pick_slow(b, out, s, slot);
}

/* The fast path makes no call but tail calls (the rare cases are apart, as
 * is a thread's first draw, which seeds its generator), so it saves no
 * register. */
static int p2c_pick(kitd_balancer *b, kitd_pick *out) {
  if (__builtin_expect(kitd__rand_state == 0, 0)) return p2c_pick_held(b, out);
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return p2c_pick_held(b, out);
  size_t n = s->count;
  if (__builtin_expect(n < 2 || !kitd__all_healthy(b, s) || !kitd__settled(b, s), 0))
    return p2c_pick_slow(b, out, s, slot);
  uint64_t r = kitd__xorshift64s(&kitd__rand_state);
  size_t a = kitd__reduce((uint32_t)(r >> 32), n), c = kitd__reduce((uint32_t)r, n - 1);
  if (c >= a) c++;
  unsigned lane = p2c_lane();
  return p2c_take(b, out, s, p2c_better(b, s, a, c, lane), n, slot, lane);
}

/* Feed one latency into the estimate. A sample above it replaces it at
 * once; one at or below it is fed on one done in LOWER_EVERY, drawn at
 * random, with LOWER_EVERY times the weight (the same pull on average, and
 * the instance's line is written on a quarter of those calls); the stamp
 * is written only when the coarse clock has moved. Concurrent feeds of one
 * instance may lose a sample (plain loads and stores): an estimate, not an
 * account. */
#define LOWER_EVERY 4
static void ewma_feed(kitd_endpointer *ep, struct kitd__ist *st, int result, int64_t lat) {
  int64_t old = atomic_load_explicit(&st->ewma, memory_order_relaxed);
  if (result != 0) {
    int64_t pen = old > FAIL_PENALTY_NS ? old : FAIL_PENALTY_NS;
    if (lat < pen) lat = pen;
  }
  if (lat < 1) lat = 1; /* 0 means "no sample" */
  if (lat > LATENCY_MAX_NS) lat = LATENCY_MAX_NS;
  int lower = old != 0 && lat <= old;
  if (lower && kitd__rand64() % LOWER_EVERY != 0) return;
  int64_t now = coarse_now();
  if (atomic_load_explicit(&ep->clock, memory_order_relaxed) < now)
    atomic_store_explicit(&ep->clock, now, memory_order_relaxed);
  int64_t stamp = atomic_load_explicit(&st->stamp, memory_order_relaxed);
  int64_t v = lat;
  if (lower) {
    /* Move toward the sample by LOWER_EVERY / 16, or by age / (age + TAU)
     * when that is more (an estimate not fed for long counts for less). */
    double age = (double)(now - stamp);
    double w = age > 0 ? age / (age + TAU_NS) : 0;
    if (w < (double)LOWER_EVERY / 16) w = (double)LOWER_EVERY / 16;
    v = old + (int64_t)((double)(lat - old) * w);
  }
  if (v != old) atomic_store_explicit(&st->ewma, v, memory_order_relaxed);
  if (stamp != now) atomic_store_explicit(&st->stamp, now, memory_order_relaxed);
}

/* A latency to learn, or an outcome to count. */
static __attribute__((noinline)) void p2c_done_learn(kitd_balancer *b, kitd_pick *p, int result,
                                                     int64_t latency_ns) {
  if (result != KITD__RESULT_UNUSED && latency_ns >= 0 && result != KITD_ECANCELED)
    ewma_feed(b->ep, ((struct kitd__snap *)p->snap_)->st[p->index], result, latency_ns);
  if (!kitd__outcome_none(b, p, result)) kitd__outcome(b, p, result);
  kitd__pick_release(b, p);
}

static void p2c_done(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  const struct kitd__snap *s = p->snap_;
  atomic_fetch_sub_explicit(kitd__ist_lane(s->st[p->index], kitd__pick_lane(p)), 1,
                            memory_order_relaxed);
  if (__builtin_expect(latency_ns >= 0 || !kitd__outcome_none(b, p, result), 0)) {
    p2c_done_learn(b, p, result, latency_ns);
    return;
  }
  kitd__pick_release(b, p);
}

static const struct kitd__balancer_ops p2c_ops = {"p2c", p2c_pick, p2c_next_fn, p2c_done, 1};

int kitd_balancer_p2c_new(kitd_endpointer *ep, const kitd_balancer_opts *opts,
                          kitd_balancer **out) {
  return kitd__balancer_new_health(ep, &p2c_ops, opts, out);
}
