/* Internal: the balancer vtable. A new strategy (p2c, weighted) is a new
 * file in lib/lb that fills these ops; pick and done stay shared. */
#ifndef KITD_LB_BALANCER_IMPL_H
#define KITD_LB_BALANCER_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "kitd/balancer.h"

struct kitd__balancer_ops {
  const char *name;
  /* Choose an index in [0, n), n >= 1. Lock-free, allocation-free. */
  size_t (*next)(kitd_balancer *b, size_t n);
  /* Outcome of a call on the picked endpoint (may be NULL). */
  void (*feedback)(kitd_balancer *b, const kitd_pick *p, int result, int64_t latency_ns);
};

struct kitd_balancer {
  const struct kitd__balancer_ops *ops;
  kitd_endpointer *ep;
  uint32_t start;          /* random start (or the seed) */
  unsigned flags;
  unsigned tls_index;      /* per-thread state slot (per-thread round robin) */
  int seeded;
  uint64_t seed;
  /* The shared counter of the global rotation, or the seeded random
   * sequence, on a cache line of its own: it is the only word pickers write. */
  _Alignas(64) atomic_uint_fast64_t counter;
  char pad_[64 - sizeof(atomic_uint_fast64_t)];
};

/* Allocate and fill the common part. */
int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                       unsigned flags, kitd_balancer **out);

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
uint64_t kitd__rand64(void);

/* Map a 32-bit random value onto [0, n) without a divide. */
static inline size_t kitd__reduce(uint32_t x, size_t n) {
  return (size_t)(((uint64_t)x * (uint64_t)n) >> 32);
}

#endif
