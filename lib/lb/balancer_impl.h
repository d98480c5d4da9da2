/* Internal: the balancer vtable. A new strategy (p2c, weighted) is a new
 * file in lib/lb that fills these ops; pick and done stay shared. */
#ifndef KITD_LB_BALANCER_IMPL_H
#define KITD_LB_BALANCER_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/rand.h"
#include "kitd/balancer.h"

struct kitd__balancer_ops {
  const char *name;
  /* Choose an index in [0, n), n >= 1. Lock-free, allocation-free. */
  size_t (*next)(kitd_balancer *b, size_t n);
  /* Outcome of a call on the picked endpoint (may be NULL). Runs on the
   * picking thread before the pick is released. */
  void (*feedback)(kitd_balancer *b, const kitd_pick *p, int result, int64_t latency_ns);
};

/* The built-in strategies, dispatched inline by kitd_balancer_pick (an
 * indirect call costs a third of a pick: it forces the caller to save six
 * registers). Others go through ops->next. */
enum kitd__lb_kind { KITD__LB_OTHER = 0, KITD__LB_RR_GLOBAL, KITD__LB_RR_THREAD, KITD__LB_RANDOM };

struct kitd_balancer {
  /* Read-only after set-up: every pick reads this line. */
  const struct kitd__balancer_ops *ops;
  int kind; /* enum kitd__lb_kind */
  kitd_endpointer *ep;
  uint64_t start;    /* random start, or the seed */
  uint32_t id;       /* unique, nonzero: tags per-thread state */
  unsigned flags;
  int seeded;
  /* The shared counter of the global rotation, or of the seeded random
   * sequence, on a cache line of its own: the only word pickers write. */
  _Alignas(64) atomic_uint_fast64_t counter;
};

/* Allocate and fill the common part. */
int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                       int kind, unsigned flags, kitd_balancer **out);

/* A 64-bit seed that differs between balancers, threads and runs. */
uint64_t kitd__seed64(const void *salt);

/* splitmix64: a good 64-bit mix of a counter. */
static inline uint64_t kitd__mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Per-thread xorshift64* generator (lazily seeded); any thread. */
extern __thread uint64_t kitd__rand_state __attribute__((tls_model("initial-exec")));
uint64_t kitd__rand_seed_thread(void);
static inline uint64_t kitd__rand64(void) {
  if (__builtin_expect(kitd__rand_state == 0, 0)) kitd__rand_state = kitd__rand_seed_thread();
  return kitd__xorshift64s(&kitd__rand_state);
}

/* Map a 32-bit random value onto [0, n) without a divide (Lemire). */
static inline size_t kitd__reduce(uint32_t x, size_t n) {
  return (size_t)(((uint64_t)x * (uint64_t)n) >> 32);
}

/* --- the built-in strategies' choice of index (round_robin.c, random.c) --- */

static inline size_t kitd__rr_global_next(kitd_balancer *b, size_t n) {
  uint64_t x = atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed) + b->start;
  /* A 32-bit divide while the sum fits (an unseeded start is 32 bits, so
   * for the first 4 billion picks), the exact 64-bit one otherwise. */
  if (__builtin_expect(x >> 32 == 0 && n >> 32 == 0, 1)) return (uint32_t)x % (uint32_t)n;
  return (size_t)(x % (uint64_t)n);
}

/* Per-thread positions: a small table indexed by the balancer's id. An
 * entry belongs to the balancer whose id it carries; a balancer meeting an
 * entry of another one (more than KITD__RR_TLS_SLOTS balancers used by one
 * thread, or a freed one) starts afresh. */
#define KITD__RR_TLS_SLOTS 64
struct kitd__rr_pos {
  uint32_t id;
  uint32_t pos;
};
extern __thread struct kitd__rr_pos kitd__rr_tls[KITD__RR_TLS_SLOTS]
    __attribute__((tls_model("initial-exec")));
size_t kitd__rr_thread_start(kitd_balancer *b, struct kitd__rr_pos *e, size_t n);

static inline size_t kitd__rr_thread_next(kitd_balancer *b, size_t n) {
  struct kitd__rr_pos *e = &kitd__rr_tls[b->id % KITD__RR_TLS_SLOTS];
  size_t i;
  if (__builtin_expect(e->id == b->id, 1)) {
    i = e->pos;
    if (__builtin_expect(i >= n, 0)) i %= n; /* the set shrank */
  } else {
    i = kitd__rr_thread_start(b, e, n);
  }
  e->pos = (uint32_t)(i + 1 == n ? 0 : i + 1);
  return i;
}

static inline size_t kitd__random_next(kitd_balancer *b, size_t n) {
  uint64_t x;
  if (__builtin_expect(b->seeded, 0))
    x = kitd__mix64(b->start + atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed));
  else
    x = kitd__rand64();
  return kitd__reduce((uint32_t)(x >> 32), n);
}

#endif
