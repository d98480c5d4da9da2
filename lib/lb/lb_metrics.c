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

/* Count into mi's slots. */
static void count(const struct kitd__minst *mi, int result) {
  kitd__ctr_add(mi->base + KITD__MI_PICKS, 1);
  if (result < 0) kitd__ctr_add(mi->base + KITD__MI_FAILS, 1);
}

/* What follows the count: the strategy's done, or the release. */
static inline __attribute__((always_inline)) void finish(kitd_balancer *b, kitd_pick *p, int result,
                                                         int64_t latency_ns) {
  if (b->ops->done) {
    b->ops->done(b, p, result, latency_ns);
    return;
  }
  kitd__pick_release(b, p);
}

/* The first counted pick of an endpoint (or one whose counters belong to
 * another pipeline), or a thread whose array does not reach the slots yet:
 * find or make the instance's counters, count (growing the array), go on. */
static __attribute__((noinline)) void done_slow(kitd_balancer *b, kitd_pick *p, int result,
                                                int64_t latency_ns) {
  struct kitd__minst *mi = attach(b, p->endpoint, p->instance);
  if (mi) count(mi, result);
  finish(b, p, result, latency_ns);
}

/* The common case, both slots in one check; the rare ones are tail calls,
 * so that it saves no register. */
void kitd__lb_done_counted(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns) {
  struct kitd__minst *mi = atomic_load_explicit(&p->endpoint->minst, memory_order_acquire);
  uint32_t i;
  if (__builtin_expect(
          mi == NULL || mi->p != b->mp || (i = mi->base) + KITD__MI_FAILS >= kitd__ctr.cap, 0)) {
    done_slow(b, p, result, latency_ns);
    return;
  }
  _Atomic uint64_t *v = kitd__ctr.slots + i;
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1, memory_order_relaxed);
  if (result < 0)
    atomic_store_explicit(v + 1, atomic_load_explicit(v + 1, memory_order_relaxed) + 1,
                          memory_order_relaxed);
  finish(b, p, result, latency_ns);
}

void kitd__lb_count_eject(kitd_balancer *b, kitd_endpoint *e, const kitd_instance *rec) {
  struct kitd__minst *mi = attach(b, e, rec);
  if (mi) kitd__ctr_add(mi->base + KITD__MI_EJECTS, 1);
}
