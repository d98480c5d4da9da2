/* SPDX-License-Identifier: MIT */
/* Internal: hedged first attempts of a kitd_retry endpoint.
 *
 * The caller runs its first attempt on its own thread, as without hedging.
 * Before it starts, the attempt is put on a timer list; if it is still
 * running when the delay (a quantile of recent first-attempt latencies)
 * has passed, the timer thread takes a retry budget token and hands a
 * second attempt, on another endpoint, to a small pool of hedge threads.
 * The first success wins; the other attempt is canceled, and the caller
 * returns only when both attempts are over, so the request it lent and the
 * picks stay valid for as long as anyone reads them. The fast path of a
 * call that needs no hedge is a clock read, a lock to join the timer list
 * and one to leave it. */
#ifndef KITD_LB_HEDGE_H
#define KITD_LB_HEDGE_H

#include <stdint.h>

#include "kitd/balancer.h"
#include "kitd/ctx.h"
#include "lb/budget.h"

struct kitd__hedge;

/* A hedger for the quantile q (0 < q < 1). Threads start at the first
 * hedged call. Returns 0 or KITD_ENOMEM. */
int kitd__hedge_new(double q, struct kitd__hedge **out);

/* Stops and joins the threads (no call may be running). NULL is allowed. */
void kitd__hedge_free(struct kitd__hedge *h);

/* What a hedged first attempt needs from its retry. */
struct kitd__hedge_call {
  kitd_balancer *b;
  struct kitd__budget *budget;
  kitd_ctx *base;             /* the call's deadline ctx */
  kitd_ctx *ctx;              /* the caller's ctx: attempts are logged here */
  int64_t attempt_timeout_ms; /* <= 0: none */
  void (*free_response)(void *);
  const void *req;
  void **resp;
  /* Endpoints that failed, for the retries after: filled here. */
  kitd_endpoint **avoid;
  unsigned *navoid;
  unsigned avoid_max;
};

/* The first attempt of a call on the picked `p` (handed back here), with a
 * hedge if it runs past the delay. Returns 0 and the winning answer in
 * *c->resp (the ctx's instance and status are the winner's), or the
 * caller's attempt's error (each failed attempt is in the ctx's attempt
 * log; the ctx's detail is the last one's). A losing answer goes to
 * free_response. */
int kitd__hedge_first(struct kitd__hedge *h, const struct kitd__hedge_call *c, kitd_pick *p);

#endif
