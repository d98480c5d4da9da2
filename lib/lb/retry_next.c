/* SPDX-License-Identifier: MIT */
/* What a kitd_retry call does after a failed attempt (lb/retry_next.h). */
#include "lb/retry_next.h"

#include "core/backoff.h"
#include "kitd/error.h"

struct kitd__retry_next kitd__retry_next(const kitd_retry_opts *o, struct kitd__budget *g,
                                         unsigned attempt, int rc, kitd_ctx *ctx) {
  struct kitd__retry_next n = {0, rc, 0, 0};
  int replaced = rc;
  int again =
      o->should_retry ? o->should_retry(o->arg, attempt, &replaced, ctx) : rc != KITD_ECANCELED;
  if (!again) {
    n.result = replaced;
    return n;
  }
  if (attempt >= (unsigned)o->max_attempts) return n;
  if (rc != KITD_ENOENDPOINTS && !kitd__budget_withdraw(g)) {
    n.refused = 1;
    return n;
  }
  n.again = 1;
  n.wait_ns = kitd__backoff_ns(o->backoff_base_ms * 1000000, o->backoff_max_ms * 1000000, attempt,
                               KITD__JITTER_FULL);
  if (rc == KITD_ENOENDPOINTS && n.wait_ns < KITD__RETRY_EMPTY_WAIT_NS)
    n.wait_ns = KITD__RETRY_EMPTY_WAIT_NS;
  if (n.wait_ns < 0) n.wait_ns = 0;
  return n;
}
