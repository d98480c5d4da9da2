/* SPDX-License-Identifier: MIT */
/* libkitd: retry (go-kit's lb.Retry / RetryWithCallback / RetryError).
 *
 * kitd_retry_new() wraps a balancer into an endpoint. A call through it picks
 * an endpoint and calls it, up to max_attempts times, inside one overall
 * deadline, with an optional per-attempt timeout and exponential backoff
 * with jitter between attempts. A retry does not go back to an endpoint that
 * already failed in the same call while another one is available. Every
 * failed attempt is recorded in the caller's kitd_ctx: its count and last
 * code always, and a full record (code, status, latency, instance, detail)
 * in the attempt log the caller lends with kitd_ctx_set_attempt_log().
 *
 * The call returns at the overall deadline or on cancellation: each attempt
 * runs under a child ctx whose deadline is the earlier of the two timeouts,
 * and backoff sleeps wake on cancel. An endpoint must honour its ctx for this
 * (see ctx.h); kitd_http endpoints do. */
#ifndef KITD_RETRY_H
#define KITD_RETRY_H

#include <stdint.h>

#include "balancer.h"
#include "ctx.h"
#include "endpoint.h"
#include "export.h"
#include "log.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Decide after a failed attempt. `attempt` counts from 1; `*err` holds the
 * attempt's code and may be replaced (the call then returns the replacement
 * if it stops here). The attempt's status, detail and instance are
 * kitd_ctx_status(ctx), kitd_ctx_detail(ctx) and kitd_ctx_instance(ctx)
 * (and its record is in the ctx's attempt log, if one was set). Return
 * nonzero to try again (within max_attempts and the deadline), 0 to stop.
 * Thread-safety: runs on the calling thread, from many threads at once. */
typedef int (*kitd_retry_fn)(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx);

/* The most attempts one call may make. */
#define KITD_RETRY_MAX_ATTEMPTS 1000

typedef struct kitd_retry_opts {
  size_t size;                /* sizeof(kitd_retry_opts), set by _init */
  int max_attempts;           /* default 3; 1 to KITD_RETRY_MAX_ATTEMPTS,
                                 else kitd_retry_new() says KITD_EINVAL */
  int64_t timeout_ms;         /* overall, across attempts; <= 0: only ctx's */
  int64_t attempt_timeout_ms; /* per attempt; <= 0: none */
  int64_t backoff_base_ms;    /* first backoff; <= 0: retry at once (default) */
  int64_t backoff_max_ms;     /* cap of the doubling backoff; default 1000 */
  unsigned repick_limit;      /* re-picks to avoid a failed endpoint; default 4 */
  kitd_retry_fn should_retry; /* NULL: retry every error but ECANCELED */
  void *arg;                  /* for should_retry */
  /* Frees a response that came too late: an endpoint that ignores its ctx
   * may succeed after the overall deadline; the call then returns
   * KITD_ETIMEDOUT and hands the answer here (NULL: it is left in
   * *response, for the caller to free as after a success). */
  void (*free_response)(void *response);
  /* Retry budget (Finagle's default): retries may add at most
   * budget_percent % to the calls of the last 10 to 20 s, plus
   * budget_min_per_sec retries a second (10 s of it may be used at once). A call whose retry the budget
   * refuses returns its last error. Retries while the set is empty are not
   * charged. Defaults 20 and 10; budget_percent -1: no budget (0 to 1000,
   * min_per_sec 0 to 1000000, else KITD_EINVAL). */
  int budget_percent;
  int budget_min_per_sec;
  /* Hedged requests (opt-in). When a call's first attempt has run longer
   * than this quantile of recent first-attempt latencies, a second attempt
   * goes to another endpoint; the first success wins, the other attempt is
   * canceled, and the call returns once both are over (the request it lent
   * is not read after). A hedge spends a retry budget token (none left: no
   * hedge) and is not counted in max_attempts. The delay is learned from
   * the first 256 calls (no hedge before) and again every 256. A losing
   * answer goes to free_response, which hedging needs. Hedges run on four
   * threads the endpoint starts at its first hedged call; a first attempt
   * that needs no hedge costs a clock read and two short locked sections.
   * 0: off (default); else 0.5 to 0.999, and free_response set (else
   * KITD_EINVAL). Example: 0.95 sends a hedge for about 1 call in 20. */
  double hedge_quantile;
  /* Metrics (metrics.h): count the calls in `metrics` under the pipeline
   * `metrics_name` (both set, or neither; the name is copied; the retry
   * holds a reference on the registry). NULL: not counted, at no cost
   * per call (kitd_retry_new chooses a loop without the counts). */
  kitd_metrics *metrics;
  const char *metrics_name;
  /* Explain each pick: when this logger writes debug records (its level,
   * or KITD_LOG_LEVEL=debug, at kitd_retry_new()), every attempt logs one
   * record, component "retry", msg=pick, with its attempt number and
   * kitd_balancer_explain()'s fields, the instances already tried in this
   * call among the skipped ones. Borrowed: must outlive the endpoint.
   * NULL or not at debug (the default): nothing (without metrics, the
   * loop has no such test). */
  kitd_logger *logger;
} kitd_retry_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_retry_opts_init(kitd_retry_opts *o);

/* A new endpoint (release with kitd_endpoint_unref()) that calls through
 * `b` (the endpoint takes a reference on it: free them in any order) with
 * retries. `opts` is copied; NULL means defaults; an opts whose size field
 * this library does not know, or max_attempts out of range, gives
 * KITD_EINVAL. The endpoint's call returns 0 and the successful attempt's
 * response, or:
 * - the error should_retry set, when it stopped the call;
 * - else the last attempt's raw error, when the attempts ran out (every
 *   attempt is in the ctx's attempt log);
 * - KITD_ENOENDPOINTS if no attempt found an endpoint, with the reason in
 *   the ctx detail (the registry's error and the age of its last good
 *   answer, or "0 passing instances of 'users' with tags [v2]");
 * - KITD_ETIMEDOUT once the overall deadline (or the ctx's) has passed,
 *   even if an endpoint that ignored its ctx succeeded late;
 * - KITD_ECANCELED;
 * - KITD_EINVAL (from kitd_endpoint_call()) for a NULL ctx or response, or
 *   a ctx never initialised; no attempt is made then.
 * On success the ctx's last attempt record is not written; the instance
 * that served the call is kitd_ctx_instance(ctx). The success path reads
 * no clock unless a timeout is set, and allocates nothing.
 * Returns 0, KITD_EINVAL or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_retry_new(kitd_balancer *b, const kitd_retry_opts *opts, kitd_endpoint **out);

#ifdef __cplusplus
}
#endif
#endif
