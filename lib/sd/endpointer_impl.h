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

/* What an update removed: released when the snapshot that last held it is
 * freed (and every older one before it). */
struct kitd__drop {
  kitd_endpoint *ep;
  char *inst;
};

/* An immutable view of the endpoints, sorted by instance, in one block:
 * the header, then eps[count], then inst[count]. Endpoints and instance
 * strings belong to the endpointer's live set while they are in the current
 * snapshot; those removed by an update go to the drop list of the snapshot
 * being retired and are released when it is freed. */
struct kitd__snap {
  size_t count;
  kitd_endpoint **eps;
  char **inst;
  atomic_int retired;       /* set once replaced: done() then tries a reclaim */
  struct kitd__snap *next;  /* retire FIFO */
  struct kitd__drop *drop;  /* to release when this snapshot is freed */
  size_t ndrop, capdrop;
  size_t cap;               /* room in eps/inst (a reused block may be larger) */
  /* Pickers that found no free hazard slot hold the snapshot by this count
   * (taken under the endpointer's lock). On its own cache line: the line
   * above is read by every pick. */
  _Alignas(64) atomic_long refs;
};

struct kitd_endpointer {
  /* The only word pickers read, on a line of its own. */
  _Alignas(64) _Atomic(struct kitd__snap *) snap;
  _Alignas(64) pthread_mutex_t mu; /* guards all below and reclamation */
  kitd_instancer *src;
  kitd_factory_fn factory;
  void *arg;
  kitd_endpointer_opts opts;
  struct kitd__snap *retired_head, *retired_tail; /* oldest first */
  /* One freed snapshot block and one drop array kept for the next update:
   * allocating them anew (160 KB each for 10,000 instances) made glibc
   * consolidate every small chunk the update had just freed. */
  struct kitd__snap *spare;
  struct kitd__drop *spare_drop;
  size_t spare_drop_cap;
  /* invalidate-on-error */
  pthread_t timer;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  bool cond_ok, timer_running, closing, erroring, invalidated;
  int64_t invalidate_at_ns;
};

/* The current snapshot with a reference (the pickers' slow path; takes the
 * lock), and its release. */
struct kitd__snap *kitd__endpointer_ref_snap(kitd_endpointer *ep);
void kitd__endpointer_unref_snap(kitd_endpointer *ep, struct kitd__snap *s);

/* Try to free retired snapshots no picker holds (only if the lock is free:
 * whoever holds it reclaims before letting go, or the next update does). */
void kitd__endpointer_try_reclaim(kitd_endpointer *ep);

#endif
