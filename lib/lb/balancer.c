/* Balancers: the shared pick and done, over the endpointer's snapshot. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kitd/error.h"
#include "lb/balancer_impl.h"
#include "sd/endpointer_impl.h"
#include "sd/hazard.h"

static __thread uint64_t rand_state __attribute__((tls_model("initial-exec")));

uint64_t kitd__seed64(const void *salt) {
  static atomic_uint_fast64_t calls;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t c = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return kitd__mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     (uint64_t)(uintptr_t)salt ^ (c << 48) ^ (uint64_t)(uintptr_t)&rand_state);
}

uint64_t kitd__rand64(void) {
  uint64_t x = rand_state;
  if (__builtin_expect(x == 0, 0)) {
    x = kitd__seed64(&x);
    if (x == 0) x = 0x2545f4914f6cdd1dull;
  }
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rand_state = x;
  return x * 0x2545f4914f6cdd1dull;
}

int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                       unsigned flags, kitd_balancer **out) {
  if (!ep || !out) return KITD_EINVAL;
  kitd_balancer *b = aligned_alloc(64, sizeof *b);
  if (!b) return KITD_ENOMEM;
  memset(b, 0, sizeof *b);
  static atomic_uint tls_counter;
  b->ops = ops;
  b->ep = ep;
  b->flags = flags;
  b->start = (uint32_t)(kitd__seed64(b) >> 32);
  b->tls_index = atomic_fetch_add_explicit(&tls_counter, 1, memory_order_relaxed);
  atomic_init(&b->counter, 0);
  *out = b;
  return 0;
}

void kitd_balancer_set_seed(kitd_balancer *b, uint64_t seed) {
  if (!b) return;
  b->start = (uint32_t)seed;
  b->seed = seed;
  b->seeded = 1;
  atomic_store_explicit(&b->counter, 0, memory_order_relaxed);
}

int kitd_balancer_pick(kitd_balancer *b, kitd_pick *out) {
  if (__builtin_expect(!b || !out, 0)) return KITD_EINVAL;
  struct kitd__hp_rec *r;
  int slot;
  int rc = kitd__hp_acquire(&r, &slot);
  if (__builtin_expect(rc != 0, 0)) return rc;
  struct kitd__snap *s = kitd__hp_protect(r, slot, (void *_Atomic *)&b->ep->snap);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) {
    kitd__hp_release(r, slot);
    memset(out, 0, sizeof *out);
    out->slot_ = -1;
    return KITD_ENOENDPOINTS;
  }
  size_t i = b->ops->next(b, n);
  out->endpoint = s->eps[i];
  out->instance = s->inst[i];
  out->index = i;
  out->count = n;
  out->snap_ = s;
  out->rec_ = r;
  out->slot_ = slot;
  return 0;
}

void kitd_balancer_done(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  if (!b || !p || p->slot_ < 0 || !p->rec_) return;
  if (b->ops->feedback) b->ops->feedback(b, p, result, latency_ns);
  struct kitd__snap *s = p->snap_;
  /* Read before the slot is cleared: after that `s` may be freed. */
  int retired = atomic_load_explicit(&s->retired, memory_order_acquire);
  kitd__hp_release(p->rec_, p->slot_);
  p->slot_ = -1;
  p->rec_ = NULL;
  p->endpoint = NULL;
  p->instance = NULL;
  if (__builtin_expect(retired, 0)) kitd__endpointer_try_reclaim(b->ep);
}

kitd_endpointer *kitd_balancer_endpointer(kitd_balancer *b) { return b ? b->ep : NULL; }

void kitd_balancer_free(kitd_balancer *b) { free(b); }
