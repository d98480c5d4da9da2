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
  /* Outcome of a call on the picked endpoint (may be NULL). Runs on the
   * picking thread before the pick is released. */
  void (*feedback)(kitd_balancer *b, const kitd_pick *p, int result, int64_t latency_ns);
};

struct kitd_balancer {
  /* Read-only after set-up: every pick reads this line. */
  const struct kitd__balancer_ops *ops;
  kitd_endpointer *ep;
  uint64_t start;    /* random start, or the seed */
  uint32_t id;       /* unique, nonzero: tags per-thread state */
  unsigned flags;
  int seeded;
  atomic_long refs;
  /* The shared counter of the global rotation, or of the seeded random
   * sequence, on a cache line of its own: the only word pickers write. */
  _Alignas(64) atomic_uint_fast64_t counter;
};

/* Allocate and fill the common part (takes a reference on ep). */
int kitd__balancer_new(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                       unsigned flags, kitd_balancer **out);

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

static inline void kitd__pick_fill(kitd_pick *out, struct kitd__snap *s, size_t i, size_t n,
                                   int slot) {
  out->endpoint = s->eps[i];
  out->instance = s->rec[i];
  out->index = i;
  out->count = n;
  out->snap_ = s;
  out->slot_ = slot;
}

/* The snapshot is empty: release it and return KITD_ENOENDPOINTS. */
int kitd__pick_empty(kitd_balancer *b, kitd_pick *out, struct kitd__snap *s, int slot);

/* The slow path: a slot (or a counted reference) and ops->next. */
int kitd__pick_slow(kitd_balancer *b, kitd_pick *out);

#endif
