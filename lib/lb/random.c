/* SPDX-License-Identifier: MIT */
/* Random: safe on one shared handle (go-kit's is not). Each thread draws
 * from its own generator, so picks share no written word; a seeded balancer
 * draws from one reproducible sequence instead (a shared counter). */
#include "kitd/error.h"
#include "lb/balancer_impl.h"

static inline size_t random_next(kitd_balancer *b, size_t n) {
  uint64_t x;
  if (__builtin_expect(b->seeded, 0))
    x = kitd__mix64(b->start + atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed));
  else x = kitd__rand64();
  return kitd__reduce((uint32_t)(x >> 32), n);
}

static size_t random_next_fn(kitd_balancer *b, size_t n) { return random_next(b, n); }

/* The fast path makes no call but tail calls, so it saves no register: a
 * seeded balancer and a thread's first draw (its generator seeds itself
 * with a call) take the slow path, checked before a slot is taken. The
 * register saves that call forced on every pick cost about 2 ns. */
static int random_pick(kitd_balancer *b, kitd_pick *out) {
  if (__builtin_expect(b->seeded || kitd__rand_state == 0, 0)) return kitd__pick_slow(b, out);
  int slot;
  struct kitd__snap *s = kitd__pick_protect(b, &slot);
  if (__builtin_expect(!s, 0)) return kitd__pick_slow(b, out);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return kitd__pick_empty(b, out, s, slot);
  uint64_t x = kitd__xorshift64s(&kitd__rand_state);
  return kitd__pick_fill(b, out, s, kitd__reduce((uint32_t)(x >> 32), n), n, slot);
}

static const struct kitd__balancer_ops random_ops = {"random", random_pick, random_next_fn, NULL,
                                                     0};

int kitd_balancer_random_new(kitd_endpointer *ep, kitd_balancer **out) {
  return kitd__balancer_new(ep, &random_ops, 0, out);
}
