/* SPDX-License-Identifier: MIT */
/* Internal: what a balancer counts per instance when it has metrics
 * (kitd_balancer_set_metrics): picks and failures at done(), ejections. */
#ifndef KITD_LB_LB_METRICS_H
#define KITD_LB_LB_METRICS_H

#include "core/endpoint_impl.h"
#include "core/metrics_impl.h"
#include "lb/balancer_impl.h"

/* The first counted pick of an endpoint (or one whose counters belong to
 * another pipeline): find or make its instance's counters, then count. */
void kitd__lb_count_slow(kitd_balancer *b, const kitd_pick *p, int result);

/* A pick handed back: one pick, and a failure if the call failed. The
 * instance's counters hang off its endpoint: a load and two stores. */
static inline void kitd__lb_count(kitd_balancer *b, const kitd_pick *p, int result) {
  struct kitd__minst *mi = atomic_load_explicit(&p->endpoint->minst, memory_order_acquire);
  if (__builtin_expect(mi == NULL || mi->p != b->mp, 0)) {
    kitd__lb_count_slow(b, p, result);
    return;
  }
  kitd__ctr_add(mi->base + KITD__MI_PICKS, 1);
  if (result < 0) kitd__ctr_add(mi->base + KITD__MI_FAILS, 1);
}

/* Outlier detection ejected the instance of `e`. */
void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec);

#endif
