/* SPDX-License-Identifier: MIT */
/* Round robin: a strict global rotation (one shared counter) or a
 * per-thread rotation (no shared write). Both start at a random position,
 * or at seed % n once kitd_balancer_set_seed() is called. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static inline size_t global_next(kitd_balancer *b, size_t n) {
  uint64_t x = atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed) + b->start;
  /* A 32-bit divide while the sum fits (an unseeded start is 32 bits, so
   * for the first 4 billion picks), the exact 64-bit one otherwise. */
  if (__builtin_expect(x >> 32 == 0 && n >> 32 == 0, 1)) return (uint32_t)x % (uint32_t)n;
  return (size_t)(x % (uint64_t)n);
}

/* Per-thread positions: a small table indexed by the balancer's id. An
 * entry belongs to the balancer whose id it carries; a balancer meeting an
 * entry of another one (more than TLS_SLOTS balancers used by one thread,
 * or a freed one) starts afresh. */
#define TLS_SLOTS 64
struct rr_pos {
  uint32_t id;
  uint32_t pos;
};
static __thread struct rr_pos rr_tls[TLS_SLOTS] __attribute__((tls_model("initial-exec")));

/* A thread's first pick from this balancer (or its slot was another's). */
static size_t thread_start(kitd_balancer *b, struct rr_pos *e, size_t n) {
  /* Seeded: seed % n on every thread. Otherwise each thread starts at its
   * own random place, so threads do not march in step. */
  uint64_t start = b->seeded ? b->start : b->start ^ kitd__mix64((uintptr_t)e);
  e->id = b->id;
  return (size_t)(start % (uint64_t)n);
}

static inline size_t thread_next(kitd_balancer *b, size_t n) {
  struct rr_pos *e = &rr_tls[b->id % TLS_SLOTS];
  size_t i;
  if (__builtin_expect(e->id == b->id, 1)) {
    i = e->pos;
    if (__builtin_expect(i >= n, 0)) i %= n; /* the set shrank */
  } else {
    i = thread_start(b, e, n);
  }
  e->pos = (uint32_t)(i + 1 == n ? 0 : i + 1);
  return i;
}

static size_t rr_global_next(kitd_balancer *b, size_t n) { return global_next(b, n); }
static size_t rr_thread_next(kitd_balancer *b, size_t n) { return thread_next(b, n); }

static int rr_global_pick(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return kitd__pick_slow(b, out);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  kitd__pick_fill(out, s, global_next(b, n), n, slot);
  return 0;
}

static int rr_thread_pick(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return kitd__pick_slow(b, out);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  kitd__pick_fill(out, s, thread_next(b, n), n, slot);
  return 0;
}

static const struct kitd__balancer_ops rr_global_ops = {"round_robin", rr_global_pick,
                                                        rr_global_next, NULL};
static const struct kitd__balancer_ops rr_thread_ops = {"round_robin_per_thread", rr_thread_pick,
                                                        rr_thread_next, NULL};

int kitd_balancer_round_robin_new(kitd_endpointer *ep, unsigned flags, kitd_balancer **out) {
  if (flags & ~(unsigned)KITD_RR_PER_THREAD) return KITD_EINVAL;
  return kitd__balancer_new(ep, flags & KITD_RR_PER_THREAD ? &rr_thread_ops : &rr_global_ops,
                            flags, out);
}
