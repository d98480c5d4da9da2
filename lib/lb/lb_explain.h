/* SPDX-License-Identifier: MIT */
/* Internal: the text of kitd_balancer_explain(), with the endpoints a
 * retry already tried in this call (lib/lb/explain.c). */
#ifndef KITD_LB_LB_EXPLAIN_H
#define KITD_LB_LB_EXPLAIN_H

#include <stddef.h>

#include "kitd/balancer.h"

/* Explain pick p (held: between pick and done; NULL or cleared: why the
 * set is empty) into buf, always terminated, cut at cap - 1. Returns the
 * length the whole text needs. */
size_t kitd__pick_explain(kitd_balancer *b, const kitd_pick *p, kitd_endpoint *const *avoid,
                          unsigned navoid, char *buf, size_t cap);

#endif
