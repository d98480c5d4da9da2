/* SPDX-License-Identifier: MIT */
/* A balancer's metrics: the pipeline it counts under and the instance
 * counters it hangs on endpoints (lb_metrics.h). */
#include "lb/lb_metrics.h"

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

/* The thread's array does not reach the slots yet: one by one (grows it). */
static __attribute__((noinline)) void count_grow(uint32_t i, int result) {
  kitd__ctr_add(i + KITD__MI_PICKS, 1);
  if (result < 0) kitd__ctr_add(i + KITD__MI_FAILS, 1);
}

/* Count into mi's slots: both in one check. The rare paths are calls in
 * tail position, so the common one saves no register. */
static inline void count(const struct kitd__minst *mi, int result) {
  uint32_t i = mi->base;
  if (__builtin_expect(i + KITD__MI_FAILS >= kitd__ctr.cap, 0)) {
    count_grow(i, result);
    return;
  }
  _Atomic uint64_t *v = kitd__ctr.slots + i;
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
  if (result < 0)
    atomic_store_explicit(v + 1, atomic_load_explicit(v + 1, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The first counted pick of an endpoint (or one whose counters belong to
 * another pipeline): find or make its instance's counters, then count. */
static __attribute__((noinline)) void count_slow(kitd_balancer *b, const kitd_pick *p, int result) {
  struct kitd__minst *mi = attach(b, p->endpoint, p->instance);
  if (mi) count(mi, result);
}

void kitd__lb_count(kitd_balancer *b, const kitd_pick *p, int result) {
  struct kitd__minst *mi = atomic_load_explicit(&p->endpoint->minst, memory_order_acquire);
  if (__builtin_expect(mi == NULL || mi->p != b->mp, 0)) {
    count_slow(b, p, result);
    return;
  }
  count(mi, result);
}

void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec) {
  struct kitd__minst *mi = attach(b, e, rec);
  if (mi) kitd__ctr_add(mi->base + KITD__MI_EJECTS, 1);
}
