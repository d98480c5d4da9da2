/* SPDX-License-Identifier: MIT */
/* Internal: the retry budget of a kitd_retry endpoint (Finagle's
 * RetryBudget): retries may add at most `percent` % to the calls of the
 * last 10 to 20 s, plus `min_per_sec` per second (up to 10 s of it banked)
 * so that a client with little traffic can still retry. Against a backend
 * that fails every call, a naive retry(3) triples the load; with the
 * budget the attempts stay under (1 + percent/100) × calls +
 * min_per_sec × (seconds + 10). */
#ifndef KITD_LB_BUDGET_H
#define KITD_LB_BUDGET_H

#include <stdatomic.h>
#include <stdint.h>

struct kitd__budget {
  int64_t deposit;     /* milli-tokens per call: 10 × percent; < 0: no budget */
  int64_t interval_ns; /* of the reserve: 1 s / min_per_sec; 0: no reserve */
  uint32_t id;         /* tags per-thread call counts */
  /* Milli-tokens the calls deposited; a retry takes 1000. Capped at what
   * the calls of the current and the previous 10 s window deposited (as
   * Finagle's deposits expire after 10 s), so a long quiet spell cannot
   * fund a storm, while a busy client keeps enough for a failover. */
  _Alignas(64) atomic_int_least64_t balance;
  atomic_int_least64_t win;      /* index of the current window */
  atomic_int_least64_t win_cur;  /* milli-tokens deposited in it */
  atomic_int_least64_t win_prev; /* and in the one before */
  /* The reserve as a GCRA rate limiter: its theoretical arrival time. */
  _Alignas(64) atomic_int_least64_t tat;
};

void kitd__budget_init(struct kitd__budget *g, int percent, int min_per_sec);

/* Calls counted by this thread, per budget (a small table indexed by the
 * budget's id; a budget meeting another's entry starts it afresh). */
#define KITD__BUDGET_TLS 32
#define KITD__BUDGET_BATCH 16
struct kitd__budget_calls {
  uint32_t id;
  uint32_t n;
};
extern __thread struct kitd__budget_calls kitd__budget_tls[KITD__BUDGET_TLS]
    __attribute__((tls_model("initial-exec")));

void kitd__budget_deposit_slow(struct kitd__budget *g, struct kitd__budget_calls *c);

/* Count one call of a budget whose deposit is on (g->deposit > 0): a
 * thread-local add, and a shared one every KITD__BUDGET_BATCH calls
 * (inline: the success path of every call). */
static inline void kitd__budget_deposit_on(struct kitd__budget *g) {
  struct kitd__budget_calls *c = &kitd__budget_tls[g->id % KITD__BUDGET_TLS];
  if (__builtin_expect(c->id == g->id && ++c->n < KITD__BUDGET_BATCH, 1)) return;
  kitd__budget_deposit_slow(g, c);
}

/* May this call retry once more? 1 (a token taken) or 0. */
int kitd__budget_withdraw(struct kitd__budget *g);

struct kitd_endpoint;
/* The budget of an endpoint made by kitd_retry_new(), valid as long as the
 * endpoint: a client's async calls spend from it too, so that blocking and
 * async calls share one budget. */
struct kitd__budget *kitd__retry_budget(struct kitd_endpoint *retry);

#endif
