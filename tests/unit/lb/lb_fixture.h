/* A small fleet of fake endpoints for the balancer and retry tests. */
#ifndef KITD_TEST_LB_FIXTURE_H
#define KITD_TEST_LB_FIXTURE_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kitd/kitd.h"

/* Behaviour of an instance, chosen by its name's prefix:
 * "ok:N" answers at once, "fail:N" fails with KITD_ECONNECT,
 * "hang:N" blocks until its ctx is done, "slow:N" takes 30 ms. */
struct fx_ep {
  char inst[64];
  atomic_int calls;
};

static struct fx_ep *fx_eps[64];
static int fx_n;

static inline int fx_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)req;
  struct fx_ep *e = st;
  atomic_fetch_add(&e->calls, 1);
  if (strncmp(e->inst, "fail", 4) == 0) {
    kitd_ctx_set_status(ctx, 503);
    kitd_ctx_set_detail(ctx, "refused by %s", e->inst);
    return KITD_ECONNECT;
  }
  if (strncmp(e->inst, "hang", 4) == 0) {
    int rc = kitd_ctx_sleep_ns(ctx, 10LL * 1000000000);
    return rc ? rc : KITD_EINTERNAL;
  }
  if (strncmp(e->inst, "slow", 4) == 0) {
    int rc = kitd_ctx_sleep_ns(ctx, 30LL * 1000000);
    if (rc) return rc;
  }
  *resp = e->inst;
  return 0;
}

static inline int fx_factory(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *instance = kitd_instance_address(rec_);
  (void)arg;
  struct fx_ep *e = calloc(1, sizeof *e);
  snprintf(e->inst, sizeof e->inst, "%s", instance);
  int rc = kitd_endpoint_new(fx_call, free, e, out); /* takes e */
  if (rc) return rc;
  if (fx_n < 64) fx_eps[fx_n++] = e;
  return 0;
}

static inline int fx_calls(const char *inst) {
  for (int i = 0; i < fx_n; i++)
    if (strcmp(fx_eps[i]->inst, inst) == 0) return atomic_load(&fx_eps[i]->calls);
  return -1;
}

struct fx {
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
};

static inline void fx_open(struct fx *f, const char *const *v, size_t n, int random_lb) {
  fx_n = 0;
  kitd_static_instancer_new(v, n, &f->in);
  kitd_endpointer_new(f->in, &(kitd_factory){fx_factory, NULL, NULL}, NULL, &f->ep);
  if (random_lb)
    kitd_balancer_random_new(f->ep, &f->b);
  else
    kitd_balancer_round_robin_new(f->ep, 0, &f->b);
}

static inline void fx_close(struct fx *f) {
  kitd_balancer_free(f->b);
  kitd_endpointer_free(f->ep);
  kitd_instancer_free(f->in);
}

#endif
