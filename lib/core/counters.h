/* SPDX-License-Identifier: MIT */
/* Internal: per-thread counter slots, the storage of every metric.
 *
 * A counter is an index into a per-thread array of 64-bit slots. Only the
 * owning thread writes its slots (an unlocked add to memory, or a relaxed
 * load and store: no locked instruction, no shared cache line), and a
 * reader sums the slot over every thread plus what exited threads left,
 * under one lock. So an increment is a handful of instructions with no
 * shared write, and a count is exact once the writers are done (not a
 * sample). Indexes are handed out in blocks (one per
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

/* Add n to a slot of the calling thread's array (only the owner writes
 * its slots; readers load them relaxed). On x86-64 one instruction, an
 * unlocked add to memory, whose store a reader sees whole: the relaxed
 * load and store it replaces are three, and a counted call makes three
 * counts (docs/performance.md). Under ThreadSanitizer, and elsewhere, the
 * relaxed load and store, which the sanitizer checks. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KITD__CTR_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define KITD__CTR_TSAN 1
#endif
static inline void kitd__ctr_slot_add(_Atomic uint64_t *p, uint64_t n) {
#if defined(__x86_64__) && !defined(KITD__CTR_TSAN)
  __asm__("addq %1, %0" : "+m"(*(uint64_t *)p) : "er"(n));
#else
  atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n, memory_order_relaxed);
#endif
}

/* Grow the calling thread's array to hold slot `id`, then add (a count
 * lost if there is no memory to grow it). */
void kitd__ctr_add_slow(uint32_t id, uint64_t n);

/* Add n to slot `id` for the calling thread. */
static inline void kitd__ctr_add(uint32_t id, uint64_t n) {
  if (__builtin_expect(id < kitd__ctr.cap, 1)) {
    kitd__ctr_slot_add(&kitd__ctr.slots[id], n);
    return;
  }
  kitd__ctr_add_slow(id, n);
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
