/* SPDX-License-Identifier: MIT */
/* Internal: what a kitd_retry call does after a failed attempt, whether it
 * runs on the caller's thread (retry.c) or on the library's loop (a
 * client's async call, lib/client/async.c): one decision for both. */
#ifndef KITD_LB_RETRY_NEXT_H
#define KITD_LB_RETRY_NEXT_H

#include <stdint.h>

#include "kitd/ctx.h"
#include "kitd/retry.h"
#include "lb/budget.h"

/* Endpoints that failed in one call, remembered to avoid. */
#define KITD__RETRY_AVOID_MAX 16
/* With no endpoints, wait at least this long between attempts, whatever the
 * backoff says: an empty set must not become a hot loop. */
#define KITD__RETRY_EMPTY_WAIT_NS (10 * 1000 * 1000)

/* The decision after a failed attempt. */
struct kitd__retry_next {
  int again;       /* 1: attempt again after wait_ns; 0: the call ends */
  int result;      /* when it ends: the call's result */
  int refused;     /* it ends because the budget refused the retry */
  int64_t wait_ns; /* when again: the backoff, ≥ 0 */
};

/* Attempt `attempt` (1 for the first) failed with rc, and the call's own
 * ctx has not ended (its caller checked). The should_retry callback may
 * replace the error it is shown; the replacement is the result only if the
 * callback stops the call. When max_attempts or the budget ends it, the
 * result is the raw last error, as in go-kit (the earlier ones are in the
 * ctx's attempt log). Retries that would reach a backend spend the budget
 * g; waiting for an empty set to fill does not, and waits at
 * least KITD__RETRY_EMPTY_WAIT_NS. The backoff is exponential with full
 * jitter: uniform in [0, min(max, base × 2^attempt)]. */
struct kitd__retry_next kitd__retry_next(const kitd_retry_opts *o, struct kitd__budget *g,
                                         unsigned attempt, int rc, kitd_ctx *ctx);

#endif
