/* SPDX-License-Identifier: MIT */
/* A balancer's metrics: the pipeline it counts under and the instance
 * counters it hangs on endpoints (lb_metrics.h). */
#include "lb/lb_metrics.h"

#include "core/hazard.h"
#include "kitd/error.h"

int kitd_balancer_set_metrics(kitd_balancer *b, kitd_metrics *m, const char *name) {
  if (!b || !m || !name || !name[0] || b->mp) return KITD_EINVAL;
  struct kitd__mpipe *p = kitd__mpipe_get(m, name);
  if (!p) return KITD_ENOMEM;
  b->mp = p;
  return 0;
}

/* The endpoint's instance counters for b's pipeline, made on first use;
 * NULL when another pipeline's hang there (an endpointer shared by two
 * named pipelines: only the first counts its instances) or no memory. */
static struct kitd__minst *attach(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec) {
  struct kitd__minst *mi = atomic_load_explicit(&e->minst, memory_order_acquire);
  if (mi) return mi->p == b->mp ? mi : NULL;
  mi = kitd__minst_get(b->mp, kitd_instance_address(rec));
  if (!mi) return NULL;
  struct kitd__minst *none = NULL;
  if (atomic_compare_exchange_strong_explicit(&e->minst, &none, mi, memory_order_acq_rel,
                                              memory_order_acquire))
    return mi;
  kitd__minst_unref(mi); /* another thread attached first */
  return none->p == b->mp ? none : NULL;
}

/* Through the endpoint (endpoint, its counters, their slot: three
 * dependent loads, which the next pick's locked add waits for) a counted
 * pick + done took 13 ns against 5.6 ns uncounted; by position at done(),
 * 8.7 ns; by position at the pick, see docs/performance.md. Larger sets
 * count through the endpoint (the block's set-up attaches every entry). */
#define MBLOCK_MAX 4096

/* The block can be folded once b no longer publishes it and no hazard slot
 * holds its snapshot (a pick counts into a block only while it holds the
 * snapshot in a slot). A block still published is withdrawn
 * first, unless its snapshot is the current one. */
static int block_idle(struct kitd__mblock *blk) {
  kitd_balancer *b = (kitd_balancer *)blk->owner;
  uint64_t key = kitd__mkey(blk->gen, blk->base);
  uint64_t cur = atomic_load_explicit(&b->mkey, memory_order_relaxed);
  if (cur == key) {
    if (atomic_load_explicit(&b->ep->snap, memory_order_acquire) == blk->key) return 0;
    if (!atomic_compare_exchange_strong_explicit(&b->mkey, &cur, 0, memory_order_relaxed,
                                                 memory_order_relaxed))
      return 0;
  }
  return kitd__hp_scan_begin() == 0 && !kitd__hp_in_use(blk->key);
}

/* Make and publish the block of s, held by the caller's pick (one thread
 * at a time: others count through the endpoint meanwhile); fold b's blocks
 * of older snapshots that nothing counts into any more. */
static void block_make(kitd_balancer *b, const struct kitd__snap *s) {
  size_t n = s->count;
  struct kitd__mblock *blk = kitd__mblock_new((uint32_t)n);
  if (!blk) return;
  if (blk->base >> (64 - KITD__MKEY_GEN_BITS)) {
    kitd__mblock_free(blk);
    return;
  }
  for (size_t k = 0; k < n; k++) blk->mi[k] = attach(b, s->eps[k], s->rec[k]);
  blk->owner = b;
  blk->key = s;
  blk->gen = s->gen;
  blk->idle = block_idle;
  kitd__mblock_add(b->mp, blk);
  atomic_store_explicit(&b->mkey, kitd__mkey(s->gen, blk->base), memory_order_relaxed);
  kitd__mblock_gc(b->mp, b, 0);
}

/* The inline count of kitd__pick_fill() could not: the thread's array
 * does not reach the block yet (it grows), or the pick is not counted by
 * position (the first counted picks of a snapshot, a pick held by a
 * count, an entry a retry moved to). Those count through the endpoint
 * (finding or making the instance's counters) and make the snapshot's
 * block if it is the current one. */
int kitd__lb_count_pick(kitd_balancer *b, kitd_pick *p) {
  const struct kitd__snap *s = p->snap_;
  uint64_t key = atomic_load_explicit(&b->mkey, memory_order_relaxed);
  if (p->slot_ >= 0 && ((key ^ s->gen) << (64 - KITD__MKEY_GEN_BITS)) == 0) {
    kitd__ctr_add((uint32_t)(key >> KITD__MKEY_GEN_BITS) + (uint32_t)p->index, 1);
    return 0;
  }
  struct kitd__minst *mi = attach(b, p->endpoint, p->instance);
  if (mi) kitd__ctr_add(mi->base + KITD__MI_PICKS, 1);
  if (p->slot_ >= 0 && s->count <= MBLOCK_MAX &&
      atomic_load_explicit(&b->ep->snap, memory_order_acquire) == s &&
      !atomic_flag_test_and_set_explicit(&b->mbuilding, memory_order_acquire)) {
    block_make(b, s);
    atomic_flag_clear_explicit(&b->mbuilding, memory_order_release);
  }
  return 0;
}

void kitd__lb_done_failed(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  struct kitd__minst *mi = attach(b, p->endpoint, p->instance);
  if (mi) kitd__ctr_add(mi->base + KITD__MI_FAILS, 1);
  if (b->ops->done) {
    b->ops->done(b, p, result, latency_ns);
    return;
  }
  kitd__pick_release(b, p);
}

void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec) {
  struct kitd__minst *mi = attach(b, e, rec);
  if (mi) kitd__ctr_add(mi->base + KITD__MI_EJECTS, 1);
}
