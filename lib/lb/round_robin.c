/* Round robin: a strict global rotation (one shared counter) or a
 * per-thread rotation (no shared write). Both start at a random position. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

/* Per-thread positions, one per balancer slot (balancers beyond 64 share
 * slots: still a rotation, a little less even). 0 means "not started". */
#define RR_TLS_SLOTS 64
static __thread uint32_t rr_pos[RR_TLS_SLOTS] __attribute__((tls_model("initial-exec")));

static size_t rr_global_next(kitd_balancer *b, size_t n) {
  uint64_t c = atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed);
  return (size_t)(((uint32_t)c + b->start) % (uint32_t)n);
}

static size_t rr_thread_next(kitd_balancer *b, size_t n) {
  uint32_t *pos = &rr_pos[b->tls_index % RR_TLS_SLOTS];
  uint32_t p = *pos;
  /* Stored one past the index, so a fresh thread starts at the balancer's
   * random start instead of at 0. */
  size_t i = p == 0 ? (size_t)(b->start % (uint32_t)n) : (size_t)(p - 1);
  if (i >= n) i %= n; /* the set shrank */
  *pos = (uint32_t)(i + 1 == n ? 0 : i + 1) + 1;
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
