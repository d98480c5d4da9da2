/* SPDX-License-Identifier: MIT */
/* Internal: a registry's pipelines, instances and watches, and the hooks
 * the request path calls (kitd/metrics.h says what each counts). */
#ifndef KITD_CORE_METRICS_IMPL_H
#define KITD_CORE_METRICS_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/counters.h"
#include "kitd/metrics.h"

/* Upper bounds of the latency buckets, in ns (then +Inf). */
#define KITD__MBOUNDS 14
/* Failure slots: one per KITD_E* code (by -code), slot 0 for any other. */
#define KITD__MCODES 19

/* A pipeline's slots. */
enum {
  KITD__MP_STARTED = 0, /* calls begun */
  KITD__MP_FINISHED,    /* calls ended (kitd_calls_total) */
  KITD__MP_RETRIES,
  KITD__MP_REFUSED,
  KITD__MP_TIMED, /* observations of the histogram */
  KITD__MP_SUM_NS,
  KITD__MP_BUCKET0, /* KITD__MBOUNDS + 1 buckets, not cumulative */
  KITD__MP_FAIL0 = KITD__MP_BUCKET0 + KITD__MBOUNDS + 1,
  KITD__MP_SLOTS = KITD__MP_FAIL0 + KITD__MCODES
};

/* An instance's slots. */
enum {
  KITD__MI_PICKS = 0,
  KITD__MI_FAILS,
  KITD__MI_EJECTS,
  KITD__MI_SLOTS
};

struct kitd__minst;

/* The counters of one pipeline name in one registry. */
struct kitd__mpipe {
  uint32_t base; /* first slot; read by every counted call */
  atomic_long refs;
  kitd_metrics *m;
  char *name;
  struct kitd__minst *insts;   /* under the registry's lock */
  struct kitd__mblock *blocks; /* under the registry's lock */
  struct kitd__mpipe *next;
};

/* The counters of one instance address under one pipeline. */
struct kitd__minst {
  const struct kitd__mpipe *p;
  uint32_t base;
  long refs; /* under the registry's lock */
  char *addr;
  struct kitd__minst *next;
  size_t ix; /* the walk's entry for it, under the registry's lock */
};

/* Picks counted by the position of their entry in a snapshot rather than
 * through the endpoint (lib/lb/lb_metrics.c: the address of the count then
 * waits on no chain of loads): a block of n counter slots, the picks of
 * entry k at slot base + k. A walk adds slot base + k to the instance
 * mi[k]; once no thread can count into the block any more (idle() says
 * so), its totals move into the instances' counters and it is freed. */
struct kitd__mblock {
  uint32_t base, n;
  struct kitd__minst **mi; /* entry k's instance (a reference), or NULL */
  uint32_t *to;            /* mi[k]'s picks slot, or UINT32_MAX */
  const void *owner;       /* what counts into it (a balancer) */
  const void *key;         /* the owner's: the snapshot, never read */
  uint64_t gen;            /* the owner's: the snapshot's generation */
  /* 1 when no thread can count into blk any more; called under the
   * registry's lock (it may not take it). */
  int (*idle)(struct kitd__mblock *blk);
  struct kitd__mblock *next; /* in the pipeline's list, under the lock */
};

/* A block of n entries with its n slots, mi[] all NULL; NULL on no
 * memory. Fill mi[] (no reference needed) and the owner's fields, then
 * kitd__mblock_add(), or kitd__mblock_free() it. */
struct kitd__mblock *kitd__mblock_new(uint32_t n);
void kitd__mblock_free(struct kitd__mblock *blk);

/* Count into blk from now on: references on its instances, and the walks
 * of p read it. */
void kitd__mblock_add(struct kitd__mpipe *p, struct kitd__mblock *blk);

/* Fold and free p's blocks of `owner` that are idle (all of them if
 * `all`: the owner counts no more). */
void kitd__mblock_gc(struct kitd__mpipe *p, const void *owner, int all);

/* The pipeline `name` of m (made on first use), with a reference; NULL on
 * no memory. Release with kitd__mpipe_unref(). */
struct kitd__mpipe *kitd__mpipe_get(kitd_metrics *m, const char *name);
void kitd__mpipe_unref(struct kitd__mpipe *p);

/* The instance `addr` of p, with a reference; NULL on no memory. */
struct kitd__minst *kitd__minst_get(struct kitd__mpipe *p, const char *addr);
void kitd__minst_unref(struct kitd__minst *mi);

static inline void kitd__mp_count(const struct kitd__mpipe *p, unsigned slot, uint64_t n) {
  kitd__ctr_add(p->base + slot, n);
}

/* A call's end: its result and, if it was timed, its duration (ns; < 0:
 * not timed). */
void kitd__mp_end(const struct kitd__mpipe *p, int result, int64_t ns);

/* What a watch says, read at walk time. */
struct kitd__mwatch_state {
  int err;              /* 0: the last answer was good */
  int last_err;         /* the last error ever met, 0: none */
  const char *detail;   /* the last error's text ("" if none) */
  int64_t last_good_ns; /* 0: none yet */
  size_t count;
  uint64_t answers, errors;
};
/* Fill *st from obj and call done(arg, st) while its strings are valid. */
typedef void (*kitd__mwatch_read_fn)(void *obj,
                                     void (*done)(void *arg, const struct kitd__mwatch_state *st),
                                     void *arg);

/* Register a watch: m keeps obj until freed, then calls release(obj).
 * `key` identifies it (KITD_EEXIST for a key already watched). Returns 0,
 * KITD_EEXIST or KITD_ENOMEM (release has then run). */
int kitd__metrics_add_watch(kitd_metrics *m, const char *name, const void *key, void *obj,
                            kitd__mwatch_read_fn read, void (*release)(void *obj));

/* Forget the watch registered under `key` (release runs); no-op if none. */
void kitd__metrics_drop_watch(kitd_metrics *m, const void *key);

#endif
