/* Round robin: a strict global rotation (one shared counter) or a
 * per-thread rotation (no shared write). Both start at a random position,
 * or at seed % n once kitd_balancer_set_seed() is called. The per-pick code
 * is inline in balancer_impl.h. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

__thread struct kitd__rr_pos kitd__rr_tls[KITD__RR_TLS_SLOTS]
    __attribute__((tls_model("initial-exec")));

/* A thread's first pick from this balancer (or its slot was another's). */
size_t kitd__rr_thread_start(kitd_balancer *b, struct kitd__rr_pos *e, size_t n) {
  /* Seeded: seed % n on every thread. Otherwise each thread starts at its
   * own random place, so threads do not march in step. */
  uint64_t start = b->seeded ? b->start : b->start ^ kitd__mix64((uintptr_t)e);
  e->id = b->id;
  return (size_t)(start % (uint64_t)n);
}

static size_t rr_global_next(kitd_balancer *b, size_t n) { return kitd__rr_global_next(b, n); }
static size_t rr_thread_next(kitd_balancer *b, size_t n) { return kitd__rr_thread_next(b, n); }

static const struct kitd__balancer_ops rr_global_ops = {"round_robin", rr_global_next, NULL};
static const struct kitd__balancer_ops rr_thread_ops = {"round_robin_per_thread",
                                                        rr_thread_next, NULL};

int kitd_balancer_round_robin_new(kitd_endpointer *ep, unsigned flags, kitd_balancer **out) {
  if (flags & ~(unsigned)KITD_RR_PER_THREAD) return KITD_EINVAL;
  if (flags & KITD_RR_PER_THREAD)
    return kitd__balancer_new(ep, &rr_thread_ops, KITD__LB_RR_THREAD, flags, out);
  return kitd__balancer_new(ep, &rr_global_ops, KITD__LB_RR_GLOBAL, flags, out);
}
