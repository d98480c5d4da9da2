/* Retry: an endpoint made of a balancer (go-kit's lb.Retry). */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "kitd/retry.h"
#include "lb/balancer_impl.h"
#include "sd/endpointer_impl.h"

/* Endpoints that failed in this call, remembered to avoid them. */
#define RETRY_AVOID_MAX 16
/* With no endpoints and no backoff configured, wait this long between
 * attempts rather than spin on an empty set. */
#define RETRY_EMPTY_WAIT_MS 10

struct retry {
  kitd_balancer *b;
  kitd_retry_opts o;
};

void kitd_retry_opts_init(kitd_retry_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->max_attempts = 3;
  o->backoff_max_ms = 1000;
  o->repick_limit = 4;
}

static int avoided(kitd_endpoint *const *avoid, unsigned n, const kitd_endpoint *e) {
  for (unsigned i = 0; i < n; i++)
    if (avoid[i] == e) return 1;
  return 0;
}

/* Pick, re-picking (a bounded number of times) while the pick is an
 * endpoint that already failed in this call and others exist. */
static int pick_avoiding(struct retry *r, kitd_pick *p, kitd_endpoint *const *avoid,
                         unsigned navoid) {
  int rc = kitd_balancer_pick(r->b, p);
  for (unsigned t = 0; rc == 0 && navoid && t < r->o.repick_limit; t++) {
    if (!avoided(avoid, navoid, p->endpoint) || p->count <= navoid) return 0;
    kitd_balancer_done(r->b, p, 0, -1);
    rc = kitd_balancer_pick(r->b, p);
  }
  if (rc != 0 || !navoid || !avoided(avoid, navoid, p->endpoint)) return rc;
  /* The balancer kept landing on failed endpoints (a random one can): take
   * the next endpoint that has not failed from the same snapshot, which the
   * pick still protects. */
  const struct kitd__snap *s = p->snap_;
  for (size_t k = 1; k < s->count; k++) {
    size_t i = (p->index + k) % s->count;
    if (!avoided(avoid, navoid, s->eps[i])) {
      p->index = i;
      p->endpoint = s->eps[i];
      p->instance = s->inst[i];
      break;
    }
  }
  return 0;
}

static int64_t backoff_ns(const struct retry *r, unsigned attempt, int err) {
  int64_t base = r->o.backoff_base_ms;
  if (base <= 0) return err == KITD_ENOENDPOINTS ? (int64_t)RETRY_EMPTY_WAIT_MS * 1000000 : 0;
  int64_t cap = r->o.backoff_max_ms > 0 ? r->o.backoff_max_ms : base;
  int64_t d = base;
  for (unsigned i = 1; i < attempt && d < cap; i++) d *= 2;
  if (d > cap) d = cap;
  /* Full jitter: uniform in [d/2, d], so attempts from many callers spread
   * out but a backoff never collapses to nothing. */
  int64_t ns = d * 1000000;
  return ns / 2 + (int64_t)(kitd__rand64() % (uint64_t)(ns / 2 + 1));
}

static int retry_call(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  struct retry *r = state;
  kitd_ctx overall;
  kitd_ctx *base = ctx;
  if (r->o.timeout_ms > 0) {
    kitd_ctx_init_child(&overall, ctx, r->o.timeout_ms);
    base = &overall;
  }
  const int timed = base != ctx || r->o.attempt_timeout_ms > 0;
  kitd_endpoint *avoid[RETRY_AVOID_MAX];
  unsigned navoid = 0;
  int last = KITD_ENOENDPOINTS;
  for (unsigned attempt = 1;; attempt++) {
    int e = kitd_ctx_err(base);
    if (e) {
      last = e;
      break;
    }
    kitd_pick p;
    int rc = pick_avoiding(r, &p, avoid, navoid);
    if (rc == 0) {
      kitd_ctx actx;
      kitd_ctx *use = ctx;
      kitd_ctx_set_status(ctx, 0);
      if (timed) {
        kitd_ctx_init_child(&actx, base, r->o.attempt_timeout_ms);
        use = &actx;
      }
      /* The success path reads no clock unless a timeout is set: the clock
       * read costs about as much as the whole pick. */
      int64_t t0 = timed ? kitd_now_ns() : 0;
      rc = kitd_endpoint_call(p.endpoint, use, req, resp);
      if (rc == 0) {
        kitd_balancer_done(r->b, &p, 0, timed ? kitd_now_ns() - t0 : -1);
        if (use != ctx) kitd_ctx_set_status(ctx, kitd_ctx_status(use));
        return 0;
      }
      int64_t lat = timed ? kitd_now_ns() - t0 : -1;
      if (use != ctx) {
        kitd_ctx_set_status(ctx, kitd_ctx_status(use));
        kitd_ctx_set_detail(ctx, "%s", kitd_ctx_detail(use));
      }
      kitd_ctx_add_attempt(ctx, rc, kitd_ctx_status(ctx), lat, p.instance, kitd_ctx_detail(ctx));
      if (navoid < RETRY_AVOID_MAX) avoid[navoid++] = p.endpoint;
      kitd_balancer_done(r->b, &p, rc, lat);
    } else {
      kitd_ctx_set_detail(ctx, "%s", kitd_strerror(rc));
      kitd_ctx_add_attempt(ctx, rc, 0, -1, NULL, "no endpoints available");
    }
    last = rc;
    e = kitd_ctx_err(base);
    if (e) {
      last = e;
      break;
    }
    if (attempt >= r->o.max_attempts) break;
    int keep = r->o.should_retry ? r->o.should_retry(r->o.arg, attempt, &last, ctx)
                                 : rc != KITD_ECANCELED;
    if (!keep) break;
    kitd_ctx_set_detail(ctx, "%s", ""); /* the next attempt's detail is its own */
    int64_t wait = backoff_ns(r, attempt, rc);
    if (wait > 0) {
      e = kitd_ctx_sleep_ns(base, wait);
      if (e) {
        last = e;
        break;
      }
    }
  }
  return last;
}

int kitd_retry_new(kitd_balancer *b, const kitd_retry_opts *opts, kitd_endpoint **out) {
  if (!b || !out) return KITD_EINVAL;
  struct retry *r = kitd__malloc(sizeof *r);
  if (!r) return KITD_ENOMEM;
  r->b = b;
  if (opts)
    r->o = *opts;
  else
    kitd_retry_opts_init(&r->o);
  if (r->o.max_attempts == 0) r->o.max_attempts = 1;
  int rc = kitd_endpoint_new(retry_call, free, r, out);
  if (rc) free(r);
  return rc;
}
