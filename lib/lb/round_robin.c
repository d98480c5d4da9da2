/* Round robin: a strict global rotation (one shared counter) or a
 * per-thread rotation (no shared write). Both start at a random position,
 * or at seed % n once kitd_balancer_set_seed() is called. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static size_t rr_global_next(kitd_balancer *b, size_t n) {
  uint64_t c = atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed);
  return (size_t)((c + b->start) % (uint64_t)n);
}

/* Per-thread positions: a small table indexed by the balancer's id. An
 * entry belongs to the balancer whose id it carries; a balancer meeting an
 * entry of another one (more than RR_TLS_SLOTS balancers used by one
 * thread, or a freed one) starts afresh. */
#define RR_TLS_SLOTS 64
struct rr_pos {
  uint32_t id;
  uint32_t pos;
};
static __thread struct rr_pos rr_tls[RR_TLS_SLOTS] __attribute__((tls_model("initial-exec")));

static size_t rr_thread_next(kitd_balancer *b, size_t n) {
  struct rr_pos *e = &rr_tls[b->id % RR_TLS_SLOTS];
  size_t i;
  if (__builtin_expect(e->id == b->id, 1)) {
    i = e->pos;
    if (__builtin_expect(i >= n, 0)) i %= n; /* the set shrank */
  } else {
    /* Seeded: seed % n on every thread. Otherwise each thread starts at its
     * own random place, so threads do not march in step. */
    uint64_t start = b->seeded ? b->start : b->start ^ kitd__mix64((uintptr_t)e);
    i = (size_t)(start % (uint64_t)n);
    e->id = b->id;
  }
  e->pos = (uint32_t)(i + 1 == n ? 0 : i + 1);
  return i;
}

static const struct kitd__balancer_ops rr_global_ops = {"round_robin", rr_global_next, NULL};
static const struct kitd__balancer_ops rr_thread_ops = {"round_robin_per_thread",
                                                        rr_thread_next, NULL};

int kitd_balancer_round_robin_new(kitd_endpointer *ep, unsigned flags, kitd_balancer **out) {
  if (flags & ~(unsigned)KITD_RR_PER_THREAD) return KITD_EINVAL;
  return kitd__balancer_new(ep, (flags & KITD_RR_PER_THREAD) ? &rr_thread_ops : &rr_global_ops,
                            flags, out);
}
