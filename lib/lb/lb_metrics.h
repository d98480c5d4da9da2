/* SPDX-License-Identifier: MIT */
/* Internal: what a balancer counts per instance when it has metrics
 * (kitd_balancer_set_metrics): picks and failures at done(), ejections. */
#ifndef KITD_LB_LB_METRICS_H
#define KITD_LB_LB_METRICS_H

#include "core/endpoint_impl.h"
#include "core/metrics_impl.h"
#include "lb/balancer_impl.h"

/* A pick handed back: one pick, and a failure if the call failed. The
 * instance's counters hang off its endpoint: a few loads and a store.
 * Out of line on purpose: inlined, its registers made every done() save
 * three more, metrics or not. */
void kitd__lb_count(kitd_balancer *b, const kitd_pick *p, int result);

/* Outlier detection ejected the instance of `e`. */
void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec);

#endif
