/* SPDX-License-Identifier: MIT */
/* Internal: what a balancer counts per instance when it has metrics
 * (kitd_balancer_set_metrics): picks when they are made (inline in
 * kitd__pick_fill, balancer_impl.h, with kitd__lb_count_pick() for the
 * rest), failures at done(), ejections. */
#ifndef KITD_LB_LB_METRICS_H
#define KITD_LB_LB_METRICS_H

#include "core/endpoint_impl.h"
#include "core/metrics_impl.h"
#include "lb/balancer_impl.h"

/* kitd_balancer_done() of a failed call (result < 0) on a balancer with
 * metrics: the failure counted through the endpoint (the instance's
 * counters hang off it), then the strategy's done or the release. done()
 * tail-calls it. */
void kitd__lb_done_failed(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns);

/* Outlier detection ejected the instance of `e`. */
void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec);

#endif
