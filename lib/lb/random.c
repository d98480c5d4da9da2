/* Random: safe on one shared handle (go-kit's is not). Each thread draws
 * from its own generator; a seeded balancer draws from one reproducible
 * sequence instead. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static size_t random_next(kitd_balancer *b, size_t n) {
  uint64_t x;
  if (__builtin_expect(b->seeded, 0))
    x = kitd__mix64(b->seed + atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed));
  else
    x = kitd__rand64();
  return kitd__reduce((uint32_t)(x >> 32), n);
}

static const struct kitd__balancer_ops random_ops = {"random", random_next, NULL};

int kitd_balancer_random_new(kitd_endpointer *ep, kitd_balancer **out) {
  return kitd__balancer_new(ep, &random_ops, 0, out);
}
