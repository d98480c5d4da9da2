/* SPDX-License-Identifier: MIT */
/* Balancers: what every strategy shares (set-up, the slow path of a pick,
 * done, references). The strategies are round_robin.c, random.c,
 * weighted.c and p2c.c; outlier.c holds their shared health rules. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "lb/balancer_impl.h"
#include "lb/lb_metrics.h"

/* A pick that holds its snapshot by refcount, not by a hazard slot. */
#define PICK_REF (-2)

int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops, unsigned flags,
                       kitd_balancer **out) {
  static atomic_uint ids;
  if (!ep || !out) return KITD_EINVAL;
  kitd_balancer *b = kitd__aligned_alloc(_Alignof(kitd_balancer), sizeof *b);
  if (!b) return KITD_ENOMEM;
  memset(b, 0, sizeof *b);
  b->ops = ops;
  b->ep = kitd__endpointer_ref(ep);
  b->flags = flags;
  atomic_init(&b->refs, 1);
  atomic_init(&b->mkey, 0);
  atomic_flag_clear(&b->mbuilding);
  /* A random start: a fleet of short-lived clients (or one-shot ones) must
   * not all send their first request to the first instance. */
  b->start = kitd__seed64(b) >> 32; /* 32 bits: see round_robin.c */
  do { b->id = atomic_fetch_add_explicit(&ids, 1, memory_order_relaxed) + 1; } while (b->id == 0);
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

int kitd__pick_empty(kitd_balancer *b, kitd_pick *out, struct kitd__snap *s, int slot) {
  if (slot >= 0) kitd__hp_release(slot);
  else kitd__endpointer_unref_snap(b->ep, s);
  memset(out, 0, sizeof *out);
  out->slot_ = -1;
  return KITD_ENOENDPOINTS;
}

struct kitd__snap *kitd__pick_hold(kitd_balancer *b, int *slot) {
  kitd_endpointer *ep = b->ep;
  int s = kitd__hp_acquire();
  *slot = s;
  if (s >= 0) return kitd__hp_protect(s, (void *_Atomic *)&ep->snap);
  /* All of this thread's slots are busy (or it has no record): hold the
   * snapshot by a count instead. Slower, still correct. */
  *slot = PICK_REF;
  return kitd__endpointer_ref_snap(ep);
}

void kitd__pick_move(kitd_balancer *b, kitd_pick *p, size_t i) {
  struct kitd__snap *s = p->snap_;
  if (b->ops->tracks_load) { /* in the lane the pick was counted in */
    unsigned lane = kitd__pick_lane(p);
    atomic_fetch_sub_explicit(kitd__ist_lane(s->st[p->index], lane), 1, memory_order_relaxed);
    atomic_fetch_add_explicit(kitd__ist_lane(s->st[i], lane), 1, memory_order_relaxed);
  }
  p->index = i;
  p->endpoint = s->eps[i];
  p->instance = s->rec[i];
  if (b->mp) kitd__lb_count_pick(b, p);
}

int kitd__pick_slow(kitd_balancer *b, kitd_pick *out) {
  int slot;
  struct kitd__snap *s = kitd__pick_hold(b, &slot);
  size_t n = s->count;
  if (n == 0) return kitd__pick_empty(b, out, s, slot);
  return kitd__pick_fill(b, out, s, b->ops->next(b, n), n, slot);
}

/* A tail call into the strategy: no register is saved on the way. */
int kitd_balancer_pick(kitd_balancer *b, kitd_pick *out) {
  if (__builtin_expect(!b || !out, 0)) return KITD_EINVAL;
  return b->ops->pick(b, out);
}

/* A strategy's own done is a tail call, as is the release: no register
 * is saved on the way (round robin and random: every pick pays for it).
 * The pick was counted when made; a failure is counted here. */
void kitd_balancer_done(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  if (!b || !p || !p->snap_) return;
  if (__builtin_expect(result < 0, 0) && b->mp) { /* metrics */
    kitd__lb_done_failed(b, p, result, latency_ns);
    return;
  }
  if (b->ops->done) {
    b->ops->done(b, p, result, latency_ns);
    return;
  }
  kitd__pick_release(b, p);
}

kitd_endpointer *kitd_balancer_endpointer(kitd_balancer *b) { return b ? b->ep : NULL; }

kitd_balancer *kitd_balancer_ref(kitd_balancer *b) {
  if (b) atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
  return b;
}

void kitd_balancer_free(kitd_balancer *b) {
  if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
  if (b->mp) kitd__mblock_gc(b->mp, b, 1); /* no pick of b is left to count */
  kitd_endpointer_free(b->ep);
  kitd__mpipe_unref(b->mp);
  free(b->zone);
  free(b);
}
