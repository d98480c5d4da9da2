/* SPDX-License-Identifier: MIT */
/* The retry budget (see budget.h). Every call deposits percent/100 of a
 * token, every retry withdraws one; when the deposits are spent, a reserve
 * of min_per_sec tokens a second (a GCRA limiter with 10 s of burst)
 * still lets a quiet client retry. Deposits are counted per thread and
 * added to the shared balance every KITD__BUDGET_BATCH calls, so the success
 * path writes no shared cache line; at most KITD__BUDGET_BATCH - 1 calls per
 * thread go uncounted, which only errs toward fewer retries. */
#include "lb/budget.h"

#include <time.h>

#include "kitd/ctx.h"

/* The window of deposits (Finagle's ttl), and the reserve's burst: 10 s of
 * min_per_sec. */
#define WINDOW_NS (10LL * 1000000000)

__thread struct kitd__budget_calls kitd__budget_tls[KITD__BUDGET_TLS]
    __attribute__((tls_model("initial-exec")));

void kitd__budget_init(struct kitd__budget *g, int percent, int min_per_sec) {
  static atomic_uint ids;
  g->deposit = percent < 0 ? -1 : (int64_t)percent * 10;
  g->interval_ns = min_per_sec > 0 ? 1000000000 / min_per_sec : 0;
  do { g->id = atomic_fetch_add_explicit(&ids, 1, memory_order_relaxed) + 1; } while (g->id == 0);
  atomic_init(&g->balance, 0);
  atomic_init(&g->win, 0);
  atomic_init(&g->win_cur, 0);
  atomic_init(&g->win_prev, 0);
  atomic_init(&g->tat, 0);
}

/* The window index needs seconds, not nanoseconds: the coarse clock (a
 * kernel tick, about 5 ns to read) instead of the precise one (about 25 ns,
 * a cost every KITD__BUDGET_BATCH-th call paid on the success path). */
static int64_t coarse_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void kitd__budget_deposit_slow(struct kitd__budget *g, struct kitd__budget_calls *c) {
  if (c->id != g->id) {
    c->id = g->id; /* another budget's entry: its few uncounted calls are lost */
    c->n = 1;
    return;
  }
  c->n = 0;
  int64_t add = g->deposit * KITD__BUDGET_BATCH;
  /* Deposits per window: whoever sees a new window first moves the count
   * along (approximate under races: a cap, not an account). */
  int64_t w = coarse_now_ns() / WINDOW_NS, cw = atomic_load_explicit(&g->win, memory_order_relaxed);
  if (w != cw && atomic_compare_exchange_strong_explicit(&g->win, &cw, w, memory_order_relaxed,
                                                         memory_order_relaxed)) {
    int64_t last = atomic_exchange_explicit(&g->win_cur, 0, memory_order_relaxed);
    atomic_store_explicit(&g->win_prev, w == cw + 1 ? last : 0, memory_order_relaxed);
  }
  int64_t cap = atomic_fetch_add_explicit(&g->win_cur, add, memory_order_relaxed) + add +
                atomic_load_explicit(&g->win_prev, memory_order_relaxed);
  int64_t b = atomic_load_explicit(&g->balance, memory_order_relaxed);
  for (;;) {
    int64_t nb = b + add > cap ? cap : b + add;
    if (nb <= b) return;
    if (atomic_compare_exchange_weak_explicit(&g->balance, &b, nb, memory_order_relaxed,
                                              memory_order_relaxed))
      return;
  }
}

int kitd__budget_withdraw(struct kitd__budget *g) {
  if (g->deposit < 0) return 1;
  int64_t b = atomic_load_explicit(&g->balance, memory_order_relaxed);
  while (b >= 1000)
    if (atomic_compare_exchange_weak_explicit(&g->balance, &b, b - 1000, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  if (!g->interval_ns) return 0;
  /* The reserve: one token every interval, up to 10 s worth banked (tat
   * may run ahead of now by at most the window). */
  int64_t now = kitd_now_ns();
  int64_t t = atomic_load_explicit(&g->tat, memory_order_relaxed);
  for (;;) {
    int64_t nt = (t > now ? t : now) + g->interval_ns;
    if (nt - now > WINDOW_NS) return 0;
    if (atomic_compare_exchange_weak_explicit(&g->tat, &t, nt, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  }
}
