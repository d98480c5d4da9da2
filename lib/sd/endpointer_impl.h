/* SPDX-License-Identifier: MIT */
/* Internal: the endpointer's snapshot, read by balancers without a lock. */
#ifndef KITD_SD_ENDPOINTER_IMPL_H
#define KITD_SD_ENDPOINTER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kitd/endpointer.h"
#include "kitd/log.h"

/* What an update removed (an endpoint and its record, or only a record
 * replaced by a newer one of the same address): it is reachable through
 * the snapshots of generations born..died, and released once no picker
 * holds any of them. */
struct kitd__drop {
  kitd_endpoint *ep; /* NULL when only the record was replaced */
  kitd_instance *rec;
  uint64_t born, died;
};

/* An immutable view of the endpoints, sorted by address, in one block: the
 * header, then eps[cap], rec[cap], born[cap]. Entries belong to the
 * endpointer's live set while they are in the current snapshot; an update
 * moves those it removes to the endpointer's limbo list. */
struct kitd__snap {
  size_t count;
  kitd_endpoint **eps;
  kitd_instance **rec;
  uint64_t *born;           /* generation each entry first appeared in */
  uint64_t gen;
  atomic_int retired;       /* set once replaced: done() then tries a reclaim */
  struct kitd__snap *next;  /* retired list */
  size_t cap;               /* room in the arrays (a reused block may be larger) */
  /* Pickers that found no free hazard slot hold the snapshot by this count
   * (taken under the endpointer's lock). On its own cache line: the line
   * above is read by every pick. */
  _Alignas(64) atomic_long refs;
};

struct kitd_endpointer {
  /* The only word pickers read, on a line of its own. */
  _Alignas(64) _Atomic(struct kitd__snap *) snap;
  _Alignas(64) pthread_mutex_t mu; /* guards all below and reclamation */
  atomic_long refs;
  kitd_instancer *src;
  kitd_factory factory;
  kitd_endpointer_opts opts;
  uint64_t gen;                   /* of the current snapshot */
  struct kitd__snap *retired;     /* replaced snapshots not yet freed */
  struct kitd__drop *limbo;       /* removed entries not yet released */
  size_t nlimbo, caplimbo;
  /* One freed snapshot block kept for the next update: allocating it anew
   * (240 KB for 10,000 instances) made glibc consolidate every small chunk
   * the update had just freed. */
  struct kitd__snap *spare;
  /* What the last event said, to explain an empty snapshot. */
  bool seen;
  int last_err;
  char *last_detail;
  int64_t last_good_ns;
  size_t last_count, factory_failed;
  int factory_err;
  /* invalidate-on-error */
  pthread_t timer;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  bool cond_ok, timer_running, closing, erroring, invalidated;
  int64_t invalidate_at_ns;
};

/* Add a reference (what a balancer takes). */
kitd_endpointer *kitd__endpointer_ref(kitd_endpointer *ep);

/* The current snapshot with a reference (the pickers' slow path; takes the
 * lock), and its release. */
struct kitd__snap *kitd__endpointer_ref_snap(kitd_endpointer *ep);
void kitd__endpointer_unref_snap(kitd_endpointer *ep, struct kitd__snap *s);

/* Try to free retired snapshots no picker holds (only if the lock is free:
 * whoever holds it reclaims before letting go, or the next update does). */
void kitd__endpointer_try_reclaim(kitd_endpointer *ep);

#endif
