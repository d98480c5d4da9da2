/* SPDX-License-Identifier: MIT */
/* Internal: per-thread counter slots, the storage of every metric.
 *
 * A counter is an index into a per-thread array of 64-bit slots. Only the
 * owning thread writes its slots (a relaxed load and store: plain moves, no
 * locked instruction, no shared cache line), and a reader sums the slot
 * over every thread plus what exited threads left, under one lock. So an
 * increment is a handful of instructions with no shared write, and a
 * count is exact once the writers are done (not a sample). Indexes are handed out in blocks (one per
 * pipeline, per instance) and reused once their block is freed: a freed
 * block is zeroed in every thread first. */
#ifndef KITD_CORE_COUNTERS_H
#define KITD_CORE_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

/* The calling thread's slots and how many it has (0 before its first
 * count): one thread-local, so that a count finds both with one address
 * (initial-exec, as every thread-local of the library). */
struct kitd__ctr_tls {
  _Atomic uint64_t *slots;
  uint32_t cap;
};
extern __thread struct kitd__ctr_tls kitd__ctr __attribute__((tls_model("initial-exec")));

/* Grow the calling thread's array to hold slot `id`, then add. Returns
 * as kitd__ctr_add(). */
uint64_t kitd__ctr_add_slow(uint32_t id, uint64_t n);

/* Add n to slot `id` for the calling thread. Returns the thread's new
 * value of the slot (what a caller may sample on), or 0 if the count was
 * lost (no memory to grow the thread's array). */
static inline uint64_t kitd__ctr_add(uint32_t id, uint64_t n) {
  if (__builtin_expect(id < kitd__ctr.cap, 1)) {
    _Atomic uint64_t *p = &kitd__ctr.slots[id];
    uint64_t v = atomic_load_explicit(p, memory_order_relaxed) + n;
    atomic_store_explicit(p, v, memory_order_relaxed);
    return v;
  }
  return kitd__ctr_add_slow(id, n);
}

/* A block of n consecutive slots, all 0: its first index in *base.
 * Returns 0 or KITD_ENOMEM. */
int kitd__ctr_alloc(uint32_t n, uint32_t *base);

/* Give a block back (no thread may count into it any more). */
void kitd__ctr_release(uint32_t base, uint32_t n);

/* Add slot from + k, summed over every thread, to slot to[k] (for each k
 * < n with to[k] != UINT32_MAX), then give the block back as
 * kitd__ctr_release() does. No thread may count into the block any more
 * (the totals move to what exited threads left, which readers add). */
void kitd__ctr_fold(uint32_t from, uint32_t n, const uint32_t *to);

/* Sum slots base..base+n-1 over every thread into out[0..n-1]. */
void kitd__ctr_read(uint32_t base, uint32_t n, uint64_t *out);

#endif
