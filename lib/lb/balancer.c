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

__thread uint64_t kitd__rand_state __attribute__((tls_model("initial-exec")));

uint64_t kitd__seed64(const void *salt) {
  static atomic_uint_fast64_t calls;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t c = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  return kitd__mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     (uint64_t)(uintptr_t)salt ^ (c << 48) ^
                     (uint64_t)(uintptr_t)&kitd__rand_state);
}

uint64_t kitd__rand_seed_thread(void) {
  uint64_t x = kitd__seed64(&x);
  return x ? x : 0x2545f4914f6cdd1dull;
}

int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                       int kind, unsigned flags, kitd_balancer **out) {
  static atomic_uint ids;
  if (!ep || !out) return KITD_EINVAL;
  kitd_balancer *b = kitd__aligned_alloc(_Alignof(kitd_balancer), sizeof *b);
  if (!b) return KITD_ENOMEM;
  memset(b, 0, sizeof *b);
  b->ops = ops;
  b->kind = kind;
  b->ep = ep;
  b->flags = flags;
  /* A random start: a fleet of short-lived clients (or one-shot ones) must
   * not all send their first request to the first instance. */
  b->start = kitd__seed64(b) >> 32; /* 32 bits: see kitd__rr_global_next */
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

static void fill(kitd_pick *out, struct kitd__snap *s, size_t i, size_t n, int slot) {
  out->endpoint = s->eps[i];
  out->instance = s->inst[i];
  out->index = i;
  out->count = n;
  out->snap_ = s;
  out->slot_ = slot;
}

static int empty(kitd_endpointer *ep, kitd_pick *out, struct kitd__snap *s, int slot) {
  if (slot >= 0)
    kitd__hp_release(slot);
  else
    kitd__endpointer_unref_snap(ep, s);
  memset(out, 0, sizeof *out);
  out->slot_ = -1;
  return KITD_ENOENDPOINTS;
}

/* The choice of index when it needs a call: another strategy's ops->next, a
 * thread's first round-robin pick, a thread's first random draw. */
static __attribute__((noinline)) int pick_next_slow(kitd_balancer *b, kitd_pick *out,
                                                   struct kitd__snap *s, int slot, size_t n) {
  size_t i;
  switch (b->kind) {
    case KITD__LB_RR_GLOBAL: i = kitd__rr_global_next(b, n); break;
    case KITD__LB_RR_THREAD: i = kitd__rr_thread_next(b, n); break;
    case KITD__LB_RANDOM: i = kitd__random_next(b, n); break;
    default: i = b->ops->next(b, n); break;
  }
  fill(out, s, i, n, slot);
  return 0;
}

/* No free hazard slot (or no record yet). */
static __attribute__((noinline)) int pick_slow(kitd_balancer *b, kitd_pick *out) {
  kitd_endpointer *ep = b->ep;
  struct kitd__snap *s;
  int slot = kitd__hp_acquire();
  if (slot >= 0) {
    s = kitd__hp_protect(slot, (void *_Atomic *)&ep->snap);
  } else {
    /* All of this thread's slots are busy (or it has no record): hold the
     * snapshot by a count instead. Slower, still correct. */
    slot = PICK_REF;
    s = kitd__endpointer_ref_snap(ep);
  }
  size_t n = s->count;
  if (n == 0) return empty(ep, out, s, slot);
  return pick_next_slow(b, out, s, slot, n);
}

/* The fast path makes no call but a tail call, so it saves no registers:
 * an indirect call here used to cost a third of the pick. */
int kitd_balancer_pick(kitd_balancer *b, kitd_pick *out) {
  if (__builtin_expect(!b || !out, 0)) return KITD_EINVAL;
  unsigned used = kitd__hp_used;
  if (__builtin_expect(kitd__hp_tls == NULL || used == KITD__HP_FULL, 0)) return pick_slow(b, out);
  int slot = __builtin_ctz(~used);
  kitd__hp_used = used | (1u << slot);
  struct kitd__snap *s = kitd__hp_protect(slot, (void *_Atomic *)&b->ep->snap);
  size_t n = s->count;
  if (__builtin_expect(n == 0, 0)) return empty(b->ep, out, s, slot);
  size_t i;
  if (b->kind == KITD__LB_RR_GLOBAL) {
    i = kitd__rr_global_next(b, n);
  } else if (b->kind == KITD__LB_RR_THREAD) {
    struct kitd__rr_pos *e = &kitd__rr_tls[b->id % KITD__RR_TLS_SLOTS];
    if (__builtin_expect(e->id != b->id || e->pos >= n, 0)) return pick_next_slow(b, out, s, slot, n);
    i = e->pos;
    e->pos = (uint32_t)(i + 1 == n ? 0 : i + 1);
  } else if (b->kind == KITD__LB_RANDOM && !b->seeded && kitd__rand_state != 0) {
    i = kitd__random_next(b, n);
  } else {
    return pick_next_slow(b, out, s, slot, n);
  }
  fill(out, s, i, n, slot);
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
