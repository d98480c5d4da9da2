/* SPDX-License-Identifier: MIT */
/* Retry: an endpoint made of a balancer (go-kit's lb.Retry,
 * RetryWithCallback and RetryError in one). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/endpoint_impl.h"
#include "core/instance_impl.h"
#include "core/metrics_impl.h"
#include "kitd/error.h"
#include "kitd/retry.h"
#include "lb/attempt.h"
#include "lb/balancer_impl.h"
#include "lb/budget.h"
#include "lb/hedge.h"
#include "lb/lb_explain.h"
#include "lb/retry_next.h"
#include "sd/endpointer_impl.h"

struct retry {
  kitd_balancer *b;
  /* Read by every call, beside b: the first attempt reads the clock (a
   * timeout, or a balancer that learns from latencies), and the budget's
   * per-call deposit is on (budget.deposit > 0). */
  bool timed;
  bool deposit;
  /* With metrics, read by every call too (on b's cache line): the
   * pipeline's calls-ended slot (mp->base + KITD__MP_FINISHED, just past
   * its calls-begun slot); explain only, past any thread's array (so that
   * mcall_begin takes mcall_begin_slow). */
  uint32_t mfin;
  const struct kitd__mpipe *mp; /* metrics, or NULL */
  uint64_t sample_mask;         /* calls n with n & mask == 0 are timed:
                                   2^SAMPLE_BITS - 1, or 0 (all: every
                                   call reads the clock anyway) */
  kitd_retry_opts o;
  struct kitd__budget budget;
  struct kitd__hedge *hedge; /* NULL: no hedging */
};

/* Untimed calls timed for the histogram: one in 2^SAMPLE_BITS per
 * thread. Two clock reads cost about 50 ns (the clock is 25 ns here):
 * one call in 64 added about 0.8 ns to every call, one in 1024 adds 0.05
 * (docs/performance.md). */
#define SAMPLE_BITS 10

/* What a counted call keeps for its end: nothing when its first attempt
 * succeeds untimed (the end then only adds to the thread's calls-ended
 * slot; a store less per call, about 0.3 ns here, than zeroing a flags
 * word at the start: docs/performance.md). Any other end reads t0,
 * written on the way there: the start of the first attempt, or -1 when
 * that attempt was not timed; t1 is the end of the last timed attempt. */
struct mcall {
  int64_t t0, t1;
};

/* mcall_begin when the thread's array does not cover the pipeline's two
 * slots (it grows), or explain only (no pipeline). */
static __attribute__((noinline)) int mcall_begin_slow(const struct retry *r) {
  if (!r->mp) return 0;
  uint32_t id = r->mp->base + KITD__MP_STARTED;
  kitd__ctr_add(id, 1);
  /* Lost (no memory to grow): timed, so that the end is not the untimed
   * success's, which adds to the array without a check. */
  if (id + 1 >= kitd__ctr.cap) return 1;
  uint64_t n = atomic_load_explicit(&kitd__ctr.slots[id], memory_order_relaxed);
  return ((n - 1) & r->sample_mask) == 0;
}

/* A counted call has begun: count it started in the thread's slot.
 * Called once per call, at attempt 1 once its pick is made, just before
 * the attempt (or on the hedged or no-endpoint path): counted before the
 * pick, the store's chain of loads (the thread's array, the slot) delayed
 * the pick's locked add by about 3 ns. Returns nonzero when the histogram
 * samples the call: the slot held a multiple of 2^SAMPLE_BITS before (the
 * thread's first call, and every 2^SAMPLE_BITS-th after it). */
_Static_assert(KITD__MP_STARTED + 1 == KITD__MP_FINISHED, "calls begun, then ended");
static inline int mcall_begin(const struct retry *r) {
  uint32_t fin = r->mfin;
  if (__builtin_expect(fin >= kitd__ctr.cap, 0)) return mcall_begin_slow(r);
  _Atomic uint64_t *v = kitd__ctr.slots + (size_t)fin - 1;
  uint64_t n = atomic_load_explicit(v, memory_order_relaxed);
  kitd__ctr_slot_add(v, 1);
  return (n & r->sample_mask) == 0;
}

/* The end of a counted call after `attempt` attempts that is not a first
 * attempt's untimed success (or of an explain-only call); mc NULL: not
 * timed. Returns rc. */
static __attribute__((noinline)) int mcall_end(const struct retry *r, const struct mcall *mc,
                                               int rc, unsigned attempt, bool refused) {
  const struct kitd__mpipe *mp = r->mp;
  if (!mp) return rc; /* explain only */
  if (attempt > 1) kitd__mp_count(mp, KITD__MP_RETRIES, attempt - 1);
  if (refused) kitd__mp_count(mp, KITD__MP_REFUSED, 1);
  kitd__mp_end(mp, rc, mc && mc->t0 >= 0 ? mc->t1 - mc->t0 : -1);
  return rc;
}

/* The end of a call after `attempt` attempts: rc, counted if mc. */
static inline __attribute__((always_inline)) int
run_end(const struct retry *r, const struct mcall *mc, int rc, unsigned attempt, bool refused) {
  return mc ? mcall_end(r, mc, rc, attempt, refused) : rc;
}

void kitd_retry_opts_init(kitd_retry_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->max_attempts = 3;
  o->backoff_max_ms = 1000;
  o->repick_limit = 4;
  o->budget_percent = 20;
  o->budget_min_per_sec = 10;
}

/* Pick, re-picking (at most repick_limit times) while the pick is an
 * endpoint that already failed in this call and the snapshot holds others.
 * Always inlined: with the retry loop inlined twice (with and without
 * metrics) the compiler stopped inlining it, a call on every attempt. */
static inline __attribute__((always_inline)) int
pick_avoiding(struct retry *r, kitd_pick *p, kitd_endpoint *const *avoid, unsigned navoid) {
  int rc = kitd_balancer_pick(r->b, p);
  for (unsigned t = 0; rc == 0 && navoid && t < r->o.repick_limit; t++) {
    if (p->count <= navoid || !kitd__avoided(avoid, navoid, p->endpoint)) return 0;
    kitd_balancer_done(r->b, p, KITD__RESULT_UNUSED, -1); /* not used: no outcome */
    rc = kitd_balancer_pick(r->b, p);
  }
  if (rc != 0 || !navoid || p->count <= navoid || !kitd__avoided(avoid, navoid, p->endpoint))
    return rc;
  /* The balancer kept landing on failed endpoints (a random one can): take
   * the next endpoint that has not failed from the same snapshot, which the
   * pick still protects. */
  const struct kitd__snap *s = p->snap_;
  for (size_t k = 1; k < s->count; k++) {
    size_t i = (p->index + k) % s->count;
    if (!kitd__avoided(avoid, navoid, s->eps[i])) {
      kitd__pick_move(r->b, p, i);
      break;
    }
  }
  return 0;
}

/* An attempt: the endpoint's function, without kitd_endpoint_call()'s
 * checks, which would repeat what the loop already knows (about 40
 * instructions of a 390-instruction call): the arguments are the retry's
 * own, checked by the caller's kitd_endpoint_call(); `base` was checked just
 * before (by that call for the first attempt, by the failure path and the
 * backoff's sleep for the others); and `actx` is new, its timeout not yet
 * run. */
static inline int attempt_call(kitd_endpoint *e, kitd_ctx *actx, const void *req, void **resp) {
  return e->fn(e->state, actx, req, resp);
}

/* The debug record of a pick (kitd_retry_opts.logger). */
static __attribute__((noinline, cold)) void explain_pick(struct retry *r, const kitd_pick *p,
                                                         kitd_endpoint *const *avoid,
                                                         unsigned navoid, unsigned attempt) {
  char why[1024];
  kitd__pick_explain(r->b, p, avoid, navoid, why, sizeof why);
  kitd_log(r->o.logger, KITD_LOG_DEBUG, "retry", "msg=pick attempt=%u %s", attempt, why);
}

/* One call. Inlined three times: with mc NULL (no metrics; the compiler
 * drops every mc line), with mc (counted), and with mc and explain (each
 * pick logged; with or without metrics), so that neither of the first two
 * tests for the logger. */
static inline __attribute__((always_inline)) int retry_run(struct retry *r, kitd_ctx *ctx,
                                                           const void *req, void **resp,
                                                           struct mcall *mc, bool explain) {
  /* The overall deadline lives in a child of the caller's ctx, made once
   * and only when there is one. A child gets no attempt log: attempts are
   * recorded on the caller's ctx, whose log the caller lent. */
  kitd_ctx overall;
  kitd_ctx *base = ctx;
  if (r->o.timeout_ms > 0) {
    kitd_ctx_init_child(&overall, ctx, r->o.timeout_ms);
    base = &overall;
  }
  /* The clock is read only when a timeout makes latency cheap to know, the
   * balancer learns from latencies, or after a failure: the success path
   * of an untimed call through round robin reads none. */
  int timed = base != ctx || r->timed;
  kitd_endpoint *avoid[KITD__RETRY_AVOID_MAX];
  unsigned navoid = 0;
  if (r->deposit) kitd__budget_deposit_on(&r->budget);
  for (unsigned attempt = 1;; attempt++) {
    /* No kitd_ctx_err(base) here: the caller's kitd_endpoint_call checked
     * before the first attempt, the failure path and the backoff sleep
     * check before the others (see attempt_call). */
    int e;
    kitd_pick p;
    int rc = pick_avoiding(r, &p, avoid, navoid);
    if (explain) explain_pick(r, rc == 0 ? &p : NULL, avoid, navoid, attempt);
    if (rc == 0 && attempt == 1 && __builtin_expect(r->hedge != NULL, 0)) {
      struct kitd__hedge_call hc = {
          r->b, &r->budget, base,  ctx,     r->o.attempt_timeout_ms, r->o.free_response,
          req,  resp,       avoid, &navoid, KITD__RETRY_AVOID_MAX};
      if (mc) mcall_begin(r); /* attempt 1: hedged */
      int64_t h0 = kitd_now_ns();
      rc = kitd__hedge_first(r->hedge, &hc, &p);
      if (mc) mc->t0 = h0, mc->t1 = kitd_now_ns();
      if (rc == 0) {
        e = kitd_ctx_err(base);
        if (__builtin_expect(e != 0, 0)) {
          r->o.free_response(*resp);
          *resp = NULL;
          kitd_ctx_add_attempt(ctx, e, kitd_ctx_status(ctx), -1, ctx->instance_,
                               "answered after the deadline");
        }
        return run_end(r, mc, e, attempt, false);
      }
    } else if (rc == 0) {
      kitd_ctx actx;
      kitd_ctx_init_child(&actx, base, r->o.attempt_timeout_ms);
      /* This attempt reads the clock: as the call does, or sampled. */
      int tm = timed;
      if (mc && attempt == 1 && __builtin_expect(mcall_begin(r), 0)) tm = 1;
      int64_t t0 = tm ? kitd_now_ns() : 0;
      if (mc && tm && attempt == 1) mc->t0 = t0;
      rc = attempt_call(p.endpoint, &actx, req, resp);
      int64_t lat = tm ? kitd_now_ns() - t0 : -1; /* < 0: not timed */
      if (mc && tm) mc->t1 = t0 + lat;
      /* The ctx was checked by kitd_endpoint_call: its fields are written
       * directly, as this is the success path. */
      ctx->status_ = actx.status_;
      /* Copied before the pick is handed back: the record is borrowed from
       * the pick's snapshot. */
      kitd__copy_address(ctx->instance_, p.instance);
      if (rc == 0) {
        kitd_balancer_done(r->b, &p, 0, lat);
        if (actx.detail_[0]) kitd_ctx_set_detail(ctx, "%s", actx.detail_);
        /* An endpoint that ignored its ctx and answered after the overall
         * deadline: the caller asked for an answer by then, so the call
         * fails, and the late answer goes to free_response. */
        e = base != ctx || (ctx->parent_ ? kitd_ctx_deadline_ns(ctx) : ctx->deadline_ns_)
                ? kitd_ctx_err(base)
                : 0;
        if (__builtin_expect(e != 0, 0)) {
          if (r->o.free_response && resp && *resp) {
            r->o.free_response(*resp);
            *resp = NULL;
          }
          /* The pick is handed back by now: its record is gone, the
           * ctx's copy of the address is not. */
          kitd_ctx_add_attempt(ctx, e, kitd_ctx_status(&actx), lat, ctx->instance_,
                               "answered after the deadline");
          if (mc && lat < 0) mc->t0 = -1;
          return run_end(r, mc, e, attempt, false);
        }
        if (mc) {
          /* Counted: a first attempt's untimed success (untimed implies
           * the first: a failure sets timed) only adds to the thread's
           * calls-ended slot, which mcall_begin saw the array cover
           * unless it timed the call (the array may have moved since, so
           * it is found again; it only grows). Explain only has no slot. */
          if (__builtin_expect(lat >= 0, 0)) return run_end(r, mc, 0, attempt, false);
          if (explain) return mcall_end(r, NULL, 0, 1, false); /* untimed */
          kitd__ctr_slot_add(kitd__ctr.slots + r->mfin, 1);
        }
        return 0;
      }
      kitd__attempt_failed(ctx, rc, kitd_ctx_status(&actx), lat, ctx->instance_,
                           kitd_ctx_detail(&actx), avoid, &navoid, KITD__RETRY_AVOID_MAX,
                           p.endpoint);
      kitd_balancer_done(r->b, &p, rc, lat);
      if (mc && lat < 0) mc->t0 = -1;
    } else {
      /* Say why there is nothing to call: the registry's error, or what
       * was looked for and matched nothing. */
      char why[KITD_CTX_DETAIL_MAX];
      kitd_endpointer_explain(r->b->ep, why, sizeof why);
      kitd_ctx_set_status(ctx, 0);
      kitd_ctx_set_instance(ctx, NULL);
      kitd_ctx_add_attempt(ctx, rc, 0, -1, NULL, why);
      kitd_ctx_set_detail(ctx, "%s", why);
      if (mc && attempt == 1) mcall_begin(r), mc->t0 = -1; /* waiting for a set: running */
    }
    timed = 1; /* past the first failure, latencies are worth a clock read */
    /* The deadline or a cancel ended the call: say so, whatever the attempt
     * returned (an endpoint may report a timeout in its own words). */
    e = kitd_ctx_err(base);
    if (e) return run_end(r, mc, e, attempt, false);
    /* Whether to go on, and what the call returns if not (lb/retry_next.h,
     * the same decision as a client's async calls). */
    struct kitd__retry_next nx = kitd__retry_next(&r->o, &r->budget, attempt, rc, ctx);
    if (!nx.again) return run_end(r, mc, nx.result, attempt, nx.refused);
    if (nx.wait_ns > 0) {
      e = kitd_ctx_sleep_ns(base, nx.wait_ns);
      if (e) return run_end(r, mc, e, attempt, false);
    }
  }
}

/* Neither metrics nor explain: the plain loop. */
static int retry_call(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  return retry_run(state, ctx, req, resp, NULL, false);
}

/* With metrics, no explain: the counted loop (the endpoint's function is
 * chosen when it is made, so no loop tests which it is). A call counts
 * itself started (mcall_begin) and ended (at its return). */
static int retry_call_counted(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  struct mcall mc; /* written before it is read */
  return retry_run(state, ctx, req, resp, &mc, false);
}

/* With explain (a logger writing debug), with or without metrics. */
static int retry_call_explained(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  struct mcall mc; /* written before it is read */
  return retry_run(state, ctx, req, resp, &mc, true);
}

struct kitd__budget *kitd__retry_budget(kitd_endpoint *retry) {
  struct retry *r = kitd_endpoint_state(retry);
  return &r->budget;
}

static void retry_close(void *state) {
  struct retry *r = state;
  kitd__hedge_free(r->hedge);
  kitd__mpipe_unref((struct kitd__mpipe *)r->mp);
  kitd_balancer_free(r->b);
  free(r);
}

int kitd_retry_new(kitd_balancer *b, const kitd_retry_opts *opts, kitd_endpoint **out) {
  if (!b || !out) return KITD_EINVAL;
  if (opts &&
      (opts->size != sizeof *opts || opts->max_attempts < 1 ||
       opts->max_attempts > KITD_RETRY_MAX_ATTEMPTS || opts->budget_percent < -1 ||
       opts->budget_percent > 1000 || opts->budget_min_per_sec < 0 ||
       opts->budget_min_per_sec > 1000000 || !opts->metrics != !opts->metrics_name ||
       (opts->metrics_name && !opts->metrics_name[0]) ||
       (opts->hedge_quantile != 0 &&
        !(opts->hedge_quantile >= 0.5 && opts->hedge_quantile <= 0.999 && opts->free_response))))
    return KITD_EINVAL;
  struct retry *r = kitd__aligned_alloc(_Alignof(struct retry), sizeof *r);
  if (!r) return KITD_ENOMEM;
  r->b = kitd_balancer_ref(b);
  if (opts) r->o = *opts;
  else kitd_retry_opts_init(&r->o);
  kitd__budget_init(&r->budget, r->o.budget_percent, r->o.budget_min_per_sec);
  r->timed = r->o.attempt_timeout_ms > 0 || b->ops->tracks_load;
  r->deposit = r->budget.deposit > 0;
  r->hedge = NULL;
  r->mp = NULL;
  r->sample_mask = r->o.timeout_ms > 0 || r->o.attempt_timeout_ms > 0 || b->ops->tracks_load
                       ? 0
                       : (UINT64_C(1) << SAMPLE_BITS) - 1;
  if ((r->o.metrics && !(r->mp = kitd__mpipe_get(r->o.metrics, r->o.metrics_name))) ||
      (r->o.hedge_quantile > 0 && kitd__hedge_new(r->o.hedge_quantile, &r->hedge))) {
    kitd__mpipe_unref((struct kitd__mpipe *)r->mp);
    kitd_balancer_free(r->b);
    free(r);
    return KITD_ENOMEM;
  }
  r->mfin = r->mp ? r->mp->base + KITD__MP_FINISHED : UINT32_MAX;
  r->o.metrics = NULL, r->o.metrics_name = NULL; /* not kept: the pipeline holds both */
  /* The endpoint takes its state on every path: retry_close releases the
   * balancer reference and the state if this fails. */
  kitd_endpoint_fn fn = r->o.logger && kitd_log_enabled(r->o.logger, KITD_LOG_DEBUG)
                            ? retry_call_explained
                        : r->mp ? retry_call_counted
                                : retry_call;
  return kitd_endpoint_new(fn, retry_close, r, out);
}
