/* SPDX-License-Identifier: MIT */
/* Round robin: a strict global rotation (one shared counter), the same
 * rotation claimed in blocks, or a per-thread rotation (no shared write).
 * All start at a random position,
 * or at seed % n once kitd_balancer_set_seed() is called. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static inline size_t global_next(kitd_balancer *b, size_t n) { return kitd__rr_global_next(b, n); }

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
static __attribute__((noinline)) size_t thread_start(kitd_balancer *b, struct rr_pos *e, size_t n) {
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

/* Blocks of the global rotation: a thread claims RR_BLOCK positions with
 * one atomic add and walks them from its own table (indexed like rr_tls). */
#define RR_BLOCK 16
struct rr_blk {
  uint32_t id;
  uint32_t left;
  uint64_t pos;
};
static __thread struct rr_blk rr_btls[TLS_SLOTS] __attribute__((tls_model("initial-exec")));

static inline size_t block_next(kitd_balancer *b, size_t n, uint64_t m) {
  struct rr_blk *e = &rr_btls[b->id % TLS_SLOTS];
  if (__builtin_expect(e->id != b->id || e->left == 0, 0)) {
    e->id = b->id;
    e->pos = atomic_fetch_add_explicit(&b->counter, RR_BLOCK, memory_order_relaxed) + b->start;
    e->left = RR_BLOCK;
  }
  uint64_t x = e->pos++;
  e->left--;
  if (__builtin_expect(x >> 32 == 0 && n >> 32 == 0, 1))
    return kitd__fastmod((uint32_t)x, m, (uint32_t)n);
  return (size_t)(x % (uint64_t)n);
}

static size_t rr_global_next(kitd_balancer *b, size_t n) { return global_next(b, n); }
static size_t rr_block_next(kitd_balancer *b, size_t n) {
  return block_next(b, n, kitd__fastmod_magic(n));
}
static size_t rr_thread_next(kitd_balancer *b, size_t n) { return thread_next(b, n); }

static int rr_global_pick(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return kitd__pick_slow(b, out);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  return kitd__pick_fill(b, out, s, kitd__rr_global_next_m(b, n, s->count_m), n, slot);
}

/* A thread's first pick from b (its table entry is another's) takes the
 * slow path, checked before a slot is taken: the fast path then makes no
 * call but tail calls, and saves no register. */
static int rr_thread_pick(kitd_balancer *b, kitd_pick *out) {
  struct rr_pos *e = &rr_tls[b->id % TLS_SLOTS];
  if (__builtin_expect(e->id != b->id, 0)) return kitd__pick_slow(b, out);
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return kitd__pick_slow(b, out);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  size_t i = e->pos;
  if (__builtin_expect(i >= n, 0)) i %= n; /* the set shrank */
  e->pos = (uint32_t)(i + 1 == n ? 0 : i + 1);
  return kitd__pick_fill(b, out, s, i, n, slot);
}

static int rr_block_pick(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return kitd__pick_slow(b, out);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  return kitd__pick_fill(b, out, s, block_next(b, n, s->count_m), n, slot);
}

static const struct kitd__balancer_ops rr_block_ops = {"round_robin_blocks", rr_block_pick,
                                                       rr_block_next, NULL, 0};
static const struct kitd__balancer_ops rr_global_ops = {"round_robin", rr_global_pick,
                                                        rr_global_next, NULL, 0};
static const struct kitd__balancer_ops rr_thread_ops = {"round_robin_per_thread", rr_thread_pick,
                                                        rr_thread_next, NULL, 0};

int kitd_balancer_round_robin_new(kitd_endpointer *ep, unsigned flags, kitd_balancer **out) {
  const struct kitd__balancer_ops *ops = flags == KITD_RR_PER_THREAD ? &rr_thread_ops
                                         : flags == KITD_RR_BLOCKS   ? &rr_block_ops
                                         : flags == KITD_RR_GLOBAL   ? &rr_global_ops
                                                                     : NULL;
  if (!ops) return KITD_EINVAL;
  return kitd__balancer_new(ep, ops, flags, out);
}
