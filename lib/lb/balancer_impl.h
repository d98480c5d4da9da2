/* SPDX-License-Identifier: MIT */
/* Internal: the balancer vtable and the shared parts of a pick. A strategy
 * is a file in lib/lb that fills kitd__balancer_ops with its own pick
 * (built from the inline helpers below, so its fast path makes no call)
 * and, for the slow path, its choice of index. */
#ifndef KITD_LB_BALANCER_IMPL_H
#define KITD_LB_BALANCER_IMPL_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/counters.h"
#include "core/hazard.h"
#include "core/rand.h"
#include "kitd/balancer.h"
#include "sd/endpointer_impl.h"

_Static_assert(KITD_PICK_FAST == KITD__HP_SLOTS, "one pick per hazard slot");

struct kitd__balancer_ops {
  const char *name;
  /* The whole pick (kitd_balancer_pick() tail-calls it). */
  int (*pick)(kitd_balancer *b, kitd_pick *out);
  /* Choose an index in [0, n), n >= 1: the slow path's choice. Lock-free,
   * allocation-free. */
  size_t (*next)(kitd_balancer *b, size_t n);
  /* The whole done() of a strategy that learns from outcomes (NULL: the
   * pick is only handed back): it reads the outcome of the call on the
   * picked endpoint, then hands the pick back with kitd__pick_release().
   * kitd_balancer_done() tail-calls it, so its success path can make no
   * call and save no register. Runs on the picking thread. */
  void (*done)(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns);
  /* Nonzero: the pick counts calls in flight (in its thread's lane of
   * st->inflight, kept in the pick: kitd__pick_word), and latencies
   * are worth a clock read to the caller (kitd_retry reads one). */
  int tracks_load;
};

/* The result a caller gives done() for a pick it did not call (a retry's
 * re-pick): no outcome, only the pick handed back. */
#define KITD__RESULT_UNUSED 1

struct kitd_balancer {
  /* Read-only after set-up: every pick reads this line. */
  const struct kitd__balancer_ops *ops;
  kitd_endpointer *ep;
  struct kitd__mpipe *mp; /* metrics (kitd_balancer_set_metrics), or NULL */
  /* With metrics: the counter block of one snapshot's entries
   * (lb_metrics.c), as kitd__mkey(generation, first slot); 0: none. */
  atomic_uint_least64_t mkey;
  uint64_t start; /* random start, or the seed */
  uint32_t id;    /* unique, nonzero: tags per-thread state */
  unsigned flags;
  int seeded;
  atomic_long refs;
  atomic_flag mbuilding; /* one thread makes the counter block at a time */
  /* Health settings of the weighted and p2c balancers (kitd_balancer_opts),
   * read only when a set is not all healthy, and by done. */
  int eject_consecutive, eject_max_percent, panic_percent;
  int64_t eject_base_ns;
  char *zone;            /* local zone (owned), or NULL */
  int64_t slow_start_ns; /* the window, 0: off */
  /* The generation of a snapshot whose youngest instance is past the
   * window: its picks skip the slow-start check. */
  atomic_uint_least64_t warm_gen;
  /* Healthy instances in the local zone, for the snapshot of generation
   * gen: (gen << 24) | count, computed by the first pick that needs it. */
  atomic_uint_least64_t zone_cache;
  /* The shared counter of the global rotation, or of the seeded random
   * sequence, on a cache line of its own: the only word pickers write. */
  _Alignas(64) atomic_uint_fast64_t counter;
};

/* A strict global rotation over [0, n): the shared counter plus the start. */
static inline size_t kitd__rr_global_next(kitd_balancer *b, size_t n) {
  uint64_t x = atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed) + b->start;
  /* A 32-bit divide while the sum fits (an unseeded start is 32 bits, so
   * for the first 4 billion picks), the exact 64-bit one otherwise. */
  if (__builtin_expect(x >> 32 == 0 && n >> 32 == 0, 1)) return (uint32_t)x % (uint32_t)n;
  return (size_t)(x % (uint64_t)n);
}

/* The same with m = kitd__fastmod_magic(n), for the fast paths. */
static inline size_t kitd__rr_global_next_m(kitd_balancer *b, size_t n, uint64_t m) {
  uint64_t x = atomic_fetch_add_explicit(&b->counter, 1, memory_order_relaxed) + b->start;
  if (__builtin_expect(x >> 32 == 0 && n >> 32 == 0, 1))
    return kitd__fastmod((uint32_t)x, m, (uint32_t)n);
  return (size_t)(x % (uint64_t)n);
}

/* Allocate and fill the common part (takes a reference on ep). */
int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops, unsigned flags,
                       kitd_balancer **out);

/* Map a 32-bit random value onto [0, n) without a divide (Lemire). */
static inline size_t kitd__reduce(uint32_t x, size_t n) {
  return (size_t)(((uint64_t)x * (uint64_t)n) >> 32);
}

/* --- the pieces of a pick --- */

/* Fast path: protect the current snapshot in a free hazard slot of this
 * thread. NULL when the slow path must run (no slot free, or the thread has
 * no hazard record yet). */
static inline struct kitd__snap *kitd__pick_protect(kitd_balancer *b, int *slot) {
  unsigned used = kitd__hp_used;
  if (__builtin_expect(kitd__hp_tls == NULL || used == KITD__HP_FULL, 0)) return NULL;
  int s = __builtin_ctz(~used);
  kitd__hp_used = used | (1u << s);
  *slot = s;
  return kitd__hp_protect(s, (void *_Atomic *)&b->ep->snap);
}

/* --- metrics: a pick is counted when it is made --- */

/* The counter block of the snapshot of generation g whose first slot is
 * `base` is published as b->mkey = base << 40 | (g mod 2^40); 0: none
 * (generation 0 is the endpointer's first, empty snapshot). See
 * lb_metrics.c. */
#define KITD__MKEY_GEN_BITS 40
static inline uint64_t kitd__mkey(uint64_t gen, uint32_t base) {
  return (uint64_t)base << KITD__MKEY_GEN_BITS | (gen & ((UINT64_C(1) << KITD__MKEY_GEN_BITS) - 1));
}

/* Count the pick *out of a balancer with metrics when the inline count of
 * kitd__pick_fill() could not: by position into the thread's slot after
 * growing its array, or through the endpoint (finding or making the
 * instance's counters, and the snapshot's block if it is the current
 * one). Returns 0 (the pick's result). */
int kitd__lb_count_pick(kitd_balancer *b, kitd_pick *out);

/* A pick's private word slot_: the hazard slot that holds its snapshot
 * (>= 0), or < 0 when a count holds it (or nothing), and above the low
 * KITD__PICK_LANE_SHIFT bits of its magnitude the in-flight lane the pick
 * was counted in (p2c; 0 for the others). The sign stays the slot's, so
 * `slot_ < 0` still tells a pick held by a count, and a bare slot is the
 * word of lane 0. */
#define KITD__PICK_LANE_SHIFT 8
static inline int kitd__pick_word(int slot, unsigned lane) {
  int l = (int)(lane << KITD__PICK_LANE_SHIFT);
  return slot < 0 ? slot - l : slot + l;
}
static inline unsigned kitd__pick_lane(const kitd_pick *p) {
  int w = p->slot_;
  return (unsigned)(w < 0 ? -w : w) >> KITD__PICK_LANE_SHIFT;
}
/* The hazard slot of a word whose slot is >= 0. */
static inline int kitd__pick_slot(int word) { return word & ((1 << KITD__PICK_LANE_SHIFT) - 1); }

/* Fill *out with entry i of s (held in hazard slot `slot`, or by a count
 * if slot < 0; a word of kitd__pick_word) and, if b has metrics, count
 * the pick: 1 added to the thread's slot base + i of the block that b
 * publishes for s. The slot's address comes from i while it is still in
 * a register, so the count runs beside the loads of the entry rather than
 * after a reload of the pick (counted at done(), it lengthened the chain
 * that the next pick's locked add waits for by about 3 ns). Returns 0: a
 * pick's result, so that callers tail-call it. */
static inline int kitd__pick_fill(kitd_balancer *b, kitd_pick *out, struct kitd__snap *s, size_t i,
                                  size_t n, int slot) {
  out->endpoint = s->eps[i];
  out->instance = s->rec[i];
  out->index = i;
  out->count = n;
  out->snap_ = s;
  out->slot_ = slot;
  if (__builtin_expect(b->mp != NULL, 0)) {
    uint64_t key = atomic_load_explicit(&b->mkey, memory_order_relaxed);
    uint32_t k = (uint32_t)(key >> KITD__MKEY_GEN_BITS) + (uint32_t)i;
    if (__builtin_expect(slot < 0 || ((key ^ s->gen) << (64 - KITD__MKEY_GEN_BITS)) != 0 ||
                             k >= kitd__ctr.cap,
                         0))
      return kitd__lb_count_pick(b, out);
    kitd__ctr_slot_add(kitd__ctr.slots + k, 1);
  }
  return 0;
}

/* Hand a pick back: clear it and release its snapshot. */
static inline void kitd__pick_release(kitd_balancer *b, kitd_pick *p) {
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
  kitd__hp_release(kitd__pick_slot(slot));
  /* The snapshot was replaced while we held it: the updater could not free
   * it then, so try now instead of waiting for the next update. */
  if (__builtin_expect(retired, 0)) kitd__endpointer_try_reclaim(b->ep);
}

/* The snapshot is empty: release it and return KITD_ENOENDPOINTS. */
int kitd__pick_empty(kitd_balancer *b, kitd_pick *out, struct kitd__snap *s, int slot);

/* The slow path: a slot (or a counted reference) and ops->next. */
int kitd__pick_slow(kitd_balancer *b, kitd_pick *out);

/* The slow path's half of kitd__pick_protect: the current snapshot held in
 * a slot, or by a count when none is free (never NULL). */
struct kitd__snap *kitd__pick_hold(kitd_balancer *b, int *slot);

/* Point a held pick at entry i of its snapshot instead (a retry that
 * avoids a failed endpoint), moving its load count along; with metrics,
 * entry i counts a pick too (the entry it leaves counted one when it was
 * picked, as a re-pick that is not used does). */
void kitd__pick_move(kitd_balancer *b, kitd_pick *p, size_t i);

/* --- health: outlier ejection and panic (outlier.c) --- */

/* b->flags: the balancer prefers a zone (the fast check then fails). */
#define KITD__B_ZONE 0x100
/* b->flags: slow start is on. */
#define KITD__B_SLOW 0x200

/* No instance of s is in its slow-start window (or slow start is off), as
 * far as the snapshot header and b's flags tell without a clock. */
static inline int kitd__settled(const kitd_balancer *b, const struct kitd__snap *s) {
  return !s->newest_join || !(b->flags & KITD__B_SLOW) ||
         atomic_load_explicit(&b->warm_gen, memory_order_relaxed) == s->gen;
}

/* Slow start is running for s: reads the clock into *now (once); records
 * the generation as settled when the window is over. */
int kitd__warming(kitd_balancer *b, const struct kitd__snap *s, int64_t *now);

/* Whether a pick may take entry i now: always once it is out of its
 * window, else with probability age / window. */
int kitd__warm_accept(const kitd_balancer *b, const struct kitd__snap *s, size_t i, int64_t now);

/* Every entry passing, none ejected, no zone preference: the picks' fast
 * check. */
static inline int kitd__all_healthy(const kitd_balancer *b, const struct kitd__snap *s) {
  return !(b->flags & KITD__B_ZONE) && s->healthy == s->count &&
         atomic_load_explicit(&b->ep->ejected, memory_order_relaxed) == 0;
}

/* Fewer healthy entries than panic_percent: balance over all. */
int kitd__panic(const kitd_balancer *b, const struct kitd__snap *s);

/* Entry i is passing and not ejected (an ejection whose time is up ends
 * here), and in the local zone if `zone` > 0, in another zone if `zone` < 0
 * (any zone if 0). *now is read from the clock on first need (0: not
 * yet). */
int kitd__usable(const kitd_balancer *b, const struct kitd__snap *s, size_t i, int64_t *now,
                 int zone);

/* Where this pick from s should look first: 1 the local zone, -1 the
 * other zones (a spilled pick), 0 any zone (no zone set). With a zone set,
 * a pick stays local with probability (passing local instances) / (local
 * instances): all of them while the local zone is whole, none once it has
 * no passing instance, and in proportion in between, so the share the
 * local zone lost goes to the other zones. */
int kitd__zone_pick(kitd_balancer *b, const struct kitd__snap *s);

/* kitd__balancer_new plus the health settings of opts (NULL: defaults);
 * KITD_EINVAL if one is out of range. */
int kitd__balancer_new_health(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                              const kitd_balancer_opts *opts, kitd_balancer **out);

/* Count a call's outcome toward ejecting its instance. */
void kitd__outcome(kitd_balancer *b, const kitd_pick *p, int result);

/* Nothing for kitd__outcome to do: a success on an instance with no
 * failures to forget (one word read, nothing written), or no outcome. */
static inline int kitd__outcome_none(const kitd_balancer *b, const kitd_pick *p, int result) {
  if (result == KITD__RESULT_UNUSED) return 1;
  if (__builtin_expect(result != 0, 0)) return 0;
  const struct kitd__snap *s = p->snap_;
  return !b->eject_consecutive ||
         !atomic_load_explicit(&s->st[p->index]->fails, memory_order_relaxed);
}

#endif
