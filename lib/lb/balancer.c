/* Balancers: the shared pick and done, over the endpointer's snapshot. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "lb/balancer_impl.h"
#include "sd/endpointer_impl.h"
#include "sd/hazard.h"

/* A pick that holds its snapshot by refcount, not by a hazard slot. */
#define PICK_REF (-2)

static __thread uint64_t rand_state __attribute__((tls_model("initial-exec")));

uint64_t kitd__seed64(const void *salt) {
  static atomic_uint_fast64_t calls;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t c = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return kitd__mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     (uint64_t)(uintptr_t)salt ^ (c << 48) ^
                     (uint64_t)(uintptr_t)&rand_state);
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
  static atomic_uint ids;
  if (!ep || !out) return KITD_EINVAL;
  kitd_balancer *b = kitd__aligned_alloc(_Alignof(kitd_balancer), sizeof *b);
  if (!b) return KITD_ENOMEM;
  memset(b, 0, sizeof *b);
  b->ops = ops;
  b->ep = ep;
  b->flags = flags;
  /* A random start: a fleet of short-lived clients (or one-shot ones) must
   * not all send their first request to the first instance. */
  b->start = kitd__seed64(b);
  do {
    b->id = atomic_fetch_add_explicit(&ids, 1, memory_order_relaxed) + 1;
  } while (b->id == 0);
  atomic_init(&b->counter, 0);
  *out = b;
  return 0;
}

void kitd_balancer_set_seed(kitd_balancer *b, uint64_t seed) {
  if (!b) return;
  b->start = seed;
  b->seeded = 1;
  atomic_store_explicit(&b->counter, 0, memory_order_relaxed);
}

int kitd_balancer_pick(kitd_balancer *b, kitd_pick *out) {
  if (__builtin_expect(!b || !out, 0)) return KITD_EINVAL;
  kitd_endpointer *ep = b->ep;
  struct kitd__snap *s;
  int slot = kitd__hp_acquire();
  if (__builtin_expect(slot >= 0, 1)) {
    s = kitd__hp_protect(slot, (void *_Atomic *)&ep->snap);
  } else {
    /* All of this thread's slots are busy (or it has no record): hold the
     * snapshot by a count instead. Slower, still correct. */
    slot = PICK_REF;
    s = kitd__endpointer_ref_snap(ep);
  }
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) {
    if (slot >= 0)
      kitd__hp_release(slot);
    else
      kitd__endpointer_unref_snap(ep, s);
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
  out->slot_ = slot;
  return 0;
}

void kitd_balancer_done(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  if (!b || !p || !p->snap_) return;
  if (b->ops->feedback) b->ops->feedback(b, p, result, latency_ns);
  struct kitd__snap *s = p->snap_;
  int slot = p->slot_;
  p->snap_ = NULL;
  p->slot_ = -1;
  p->endpoint = NULL;
  p->instance = NULL;
  if (__builtin_expect(slot < 0, 0)) {
    kitd__endpointer_unref_snap(b->ep, s);
    return;
  }
  /* Read before the slot is cleared (the release store keeps it there):
   * after that `s` may be freed. Same cache line as the pick read. */
  int retired = atomic_load_explicit(&s->retired, memory_order_relaxed);
  kitd__hp_release(slot);
  /* The snapshot was replaced while we held it: the updater could not free
   * it then, so try now instead of waiting for the next update. */
  if (__builtin_expect(retired, 0)) kitd__endpointer_try_reclaim(b->ep);
}

kitd_endpointer *kitd_balancer_endpointer(kitd_balancer *b) { return b ? b->ep : NULL; }

void kitd_balancer_free(kitd_balancer *b) { free(b); }
