/* SPDX-License-Identifier: MIT */
/* Internal: what a balancer counts per instance when it has metrics
 * (kitd_balancer_set_metrics): picks and failures at done(), ejections. */
#ifndef KITD_LB_LB_METRICS_H
#define KITD_LB_LB_METRICS_H

#include "core/endpoint_impl.h"
#include "core/metrics_impl.h"
#include "lb/balancer_impl.h"

/* kitd_balancer_done() of a balancer with metrics: one pick, and a
 * failure if the call failed, then the strategy's done or the release.
 * The instance's counters hang off its endpoint: a few loads and a store.
 * done() tail-calls it: called and returned from, it made done() save
 * four registers around the call (stores that the next pick's locked add
 * waits for), and inlined, it made every done() save three more, metrics
 * or not. */
void kitd__lb_done_counted(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns);

/* Outlier detection ejected the instance of `e`. */
void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec);

#endif
