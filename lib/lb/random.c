/* Random: safe on one shared handle (go-kit's is not). Each thread draws
 * from its own generator, so picks share no written word; a seeded balancer
 * draws from one reproducible sequence instead (a shared counter). The
 * per-pick code is inline in balancer_impl.h. */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static size_t random_next(kitd_balancer *b, size_t n) { return kitd__random_next(b, n); }

static const struct kitd__balancer_ops random_ops = {"random", random_next, NULL};

int kitd_balancer_random_new(kitd_endpointer *ep, kitd_balancer **out) {
  return kitd__balancer_new(ep, &random_ops, KITD__LB_RANDOM, 0, out);
}
