/* SPDX-License-Identifier: MIT */
/* Internal: what a balancer counts per instance when it has metrics
 * (kitd_balancer_set_metrics): picks and failures at done(), ejections. */
#ifndef KITD_LB_LB_METRICS_H
#define KITD_LB_LB_METRICS_H

#include "core/endpoint_impl.h"
#include "core/metrics_impl.h"
#include "lb/balancer_impl.h"

/* Picks by snapshot position (metrics_impl.h, struct kitd__mblock): the
 * block of the snapshot of generation g whose first slot is `base` is
 * published as b->mkey = base << 40 | (g mod 2^40); 0: none (generation
 * 0 is the endpointer's first, empty snapshot). */
#define KITD__MKEY_GEN_BITS 40
static inline uint64_t kitd__mkey(uint64_t gen, uint32_t base) {
  return (uint64_t)base << KITD__MKEY_GEN_BITS | (gen & ((UINT64_C(1) << KITD__MKEY_GEN_BITS) - 1));
}

/* The common case of a counted done(), inline in kitd_balancer_done(): a
 * success (or an unused re-pick) of a pick held by a hazard slot, from
 * the snapshot whose block is published, adds 1 to the thread's slot
 * base + index: an address that waits on no load but the pick's own
 * fields. 0 when it could not (kitd__lb_done_counted() then counts). */
static inline int kitd__lb_count_fast(kitd_balancer *b, const kitd_pick *p, int result) {
  const struct kitd__snap *s = p->snap_;
  uint64_t key = atomic_load_explicit(&b->mkey, memory_order_relaxed);
  uint32_t i = (uint32_t)(key >> KITD__MKEY_GEN_BITS) + (uint32_t)p->index;
  if (__builtin_expect((result | p->slot_) < 0 ||
                           (key ^ s->gen) << (64 - KITD__MKEY_GEN_BITS) != 0 || i >= kitd__ctr.cap,
                       0))
    return 0;
  _Atomic uint64_t *v = kitd__ctr.slots + i;
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
  return 1;
}

/* kitd_balancer_done() of a balancer with metrics when
 * kitd__lb_count_fast() could not count: one pick, and a failure if the
 * call failed, counted through the endpoint (the instance's counters hang
 * off it), then the strategy's done or the release. done() tail-calls
 * it: called and returned from, it made done() save four registers. */
void kitd__lb_done_counted(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns);

/* Outlier detection ejected the instance of `e`. */
void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec);

#endif
