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
  bool explain; /* log each pick (o.logger writes debug) */
  /* With metrics, read by every call too (on b's cache line): the
   * pipeline's first slot (mp->base); explain only, past any thread's
   * array (so that mcall_begin takes mcall_begin_slow). */
  uint32_t mbase;
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

/* What a counted call tells its metrics: written on its failure paths
 * and when it is timed, so that a first attempt's untimed success writes
 * nothing (`flags` stays 0). The other fields are valid only under their
 * flag. MC_SLOW: the end counts through kitd__mp_end (explain only: it
 * returns at once). */
enum {
  MC_RETRIED = 1,
  MC_REFUSED = 2,
  MC_TIMED = 4,
  MC_SLOW = 8
};
struct mcall {
  unsigned flags;   /* MC_*; 0: only the end's count to make */
  unsigned retries; /* MC_RETRIED: attempts after the first */
  int64_t t0, t1;   /* MC_TIMED: start of the first attempt, end of the last */
};

/* mcall_begin when the thread's array does not cover the pipeline's slots
 * (it grows), or explain only (no pipeline). */
static __attribute__((noinline)) int mcall_begin_slow(const struct retry *r, struct mcall *mc) {
  mc->flags |= MC_SLOW;
  if (!r->mp) return 0;
  return (kitd__ctr_add(r->mbase + KITD__MP_STARTED, 1) & r->sample_mask) == 0;
}

/* A counted call has begun: count it started in the thread's slot.
 * Called once per call, at attempt 1 once its pick is made, just before
 * the attempt (or on the hedged or no-endpoint path): counted before the
 * pick, the store's chain of loads (the thread's array, the slot) delayed
 * the pick's locked add by about 3 ns. Unless MC_SLOW, the thread's array
 * then covers the pipeline's slots. Returns nonzero when the histogram
 * samples the call. */
static inline int mcall_begin(const struct retry *r, struct mcall *mc) {
  uint32_t base = r->mbase;
  if (__builtin_expect(base + KITD__MP_SLOTS > kitd__ctr.cap, 0)) return mcall_begin_slow(r, mc);
  _Atomic uint64_t *v = kitd__ctr.slots + base + KITD__MP_STARTED;
  uint64_t n = atomic_load_explicit(v, memory_order_relaxed) + 1;
  atomic_store_explicit(v, n, memory_order_relaxed);
  return (n & r->sample_mask) == 0;
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

/* One call. Inlined twice: with mc NULL (no metrics; the compiler drops
 * every mc line) and with mc (counted). */
static inline __attribute__((always_inline)) int
retry_run(struct retry *r, kitd_ctx *ctx, const void *req, void **resp, struct mcall *mc) {
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
    if (mc && attempt > 1) mc->retries = attempt - 1, mc->flags |= MC_RETRIED;
    int rc = pick_avoiding(r, &p, avoid, navoid);
    if (mc && __builtin_expect(r->explain, 0))
      explain_pick(r, rc == 0 ? &p : NULL, avoid, navoid, attempt);
    if (rc == 0 && attempt == 1 && r->hedge) {
      struct kitd__hedge_call hc = {
          r->b, &r->budget, base,  ctx,     r->o.attempt_timeout_ms, r->o.free_response,
          req,  resp,       avoid, &navoid, KITD__RETRY_AVOID_MAX};
      if (mc) mcall_begin(r, mc); /* attempt 1: hedged */
      int64_t h0 = kitd_now_ns();
      rc = kitd__hedge_first(r->hedge, &hc, &p);
      if (mc) mc->t0 = h0, mc->t1 = kitd_now_ns(), mc->flags |= MC_TIMED;
      if (rc == 0) {
        e = kitd_ctx_err(base);
        if (__builtin_expect(e != 0, 0)) {
          r->o.free_response(*resp);
          *resp = NULL;
          kitd_ctx_add_attempt(ctx, e, kitd_ctx_status(ctx), -1, ctx->instance_,
                               "answered after the deadline");
        }
        return e;
      }
    } else if (rc == 0) {
      kitd_ctx actx;
      kitd_ctx_init_child(&actx, base, r->o.attempt_timeout_ms);
      if (mc && attempt == 1 && mcall_begin(r, mc)) timed = 1;
      int64_t t0 = timed ? kitd_now_ns() : 0;
      rc = attempt_call(p.endpoint, &actx, req, resp);
      int64_t lat = timed ? kitd_now_ns() - t0 : -1;
      if (mc && timed) {
        if (attempt == 1) mc->t0 = t0, mc->flags |= MC_TIMED;
        mc->t1 = t0 + lat;
      }
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
          return e;
        }
        return 0;
      }
      kitd__attempt_failed(ctx, rc, kitd_ctx_status(&actx), lat, ctx->instance_,
                           kitd_ctx_detail(&actx), avoid, &navoid, KITD__RETRY_AVOID_MAX,
                           p.endpoint);
      kitd_balancer_done(r->b, &p, rc, lat);
    } else {
      /* Say why there is nothing to call: the registry's error, or what
       * was looked for and matched nothing. */
      char why[KITD_CTX_DETAIL_MAX];
      kitd_endpointer_explain(r->b->ep, why, sizeof why);
      kitd_ctx_set_status(ctx, 0);
      kitd_ctx_set_instance(ctx, NULL);
      kitd_ctx_add_attempt(ctx, rc, 0, -1, NULL, why);
      kitd_ctx_set_detail(ctx, "%s", why);
      if (mc && attempt == 1) mcall_begin(r, mc); /* waiting for a set: running */
    }
    timed = 1; /* past the first failure, latencies are worth a clock read */
    /* The deadline or a cancel ended the call: say so, whatever the attempt
     * returned (an endpoint may report a timeout in its own words). */
    e = kitd_ctx_err(base);
    if (e) return e;
    /* Whether to go on, and what the call returns if not (lb/retry_next.h,
     * the same decision as a client's async calls). */
    struct kitd__retry_next nx = kitd__retry_next(&r->o, &r->budget, attempt, rc, ctx);
    if (!nx.again) {
      if (mc && nx.refused) mc->flags |= MC_REFUSED;
      return nx.result;
    }
    if (nx.wait_ns > 0) {
      e = kitd_ctx_sleep_ns(base, nx.wait_ns);
      if (e) return e;
    }
  }
}

/* The end of a counted call that is not a first attempt's untimed
 * success (or of an explain-only call): what mc noted. */
static __attribute__((noinline)) int mcall_end(const struct retry *r, const struct mcall *mc,
                                               int rc) {
  const struct kitd__mpipe *mp = r->mp;
  if (!mp) return rc; /* explain only */
  if (mc->flags & MC_RETRIED) kitd__mp_count(mp, KITD__MP_RETRIES, mc->retries);
  if (mc->flags & MC_REFUSED) kitd__mp_count(mp, KITD__MP_REFUSED, 1);
  kitd__mp_end(mp, rc, mc->flags & MC_TIMED ? mc->t1 - mc->t0 : -1);
  return rc;
}

/* Neither metrics nor explain: the plain loop. */
static int retry_call(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  return retry_run(state, ctx, req, resp, NULL);
}

/* With metrics or explain: the counted loop (the endpoint's function is
 * chosen when it is made, so neither loop tests which it is). With
 * metrics, a call counts itself started (mcall_begin, in the loop) and
 * finished. The end finds the thread's array again, as the call may have
 * grown (moved) it; mcall_begin saw it cover the pipeline's slots. */
static int retry_call_counted(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  struct retry *r = state;
  struct mcall mc;
  mc.flags = 0; /* the other fields are written before they are read */
  int rc = retry_run(r, ctx, req, resp, &mc);
  if (__builtin_expect((rc | (int)mc.flags) != 0, 0)) return mcall_end(r, &mc, rc);
  _Atomic uint64_t *v = kitd__ctr.slots + r->mbase + KITD__MP_FINISHED;
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
  return 0;
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
  r->explain = r->o.logger && kitd_log_enabled(r->o.logger, KITD_LOG_DEBUG);
  if ((r->o.metrics && !(r->mp = kitd__mpipe_get(r->o.metrics, r->o.metrics_name))) ||
      (r->o.hedge_quantile > 0 && kitd__hedge_new(r->o.hedge_quantile, &r->hedge))) {
    kitd__mpipe_unref((struct kitd__mpipe *)r->mp);
    kitd_balancer_free(r->b);
    free(r);
    return KITD_ENOMEM;
  }
  r->mbase = r->mp ? r->mp->base : UINT32_MAX - KITD__MP_SLOTS;
  r->o.metrics = NULL, r->o.metrics_name = NULL; /* not kept: the pipeline holds both */
  /* The endpoint takes its state on every path: retry_close releases the
   * balancer reference and the state if this fails. */
  return kitd_endpoint_new(r->explain || r->mp ? retry_call_counted : retry_call, retry_close, r,
                           out);
}
