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

/* An immutable view of the endpoints: sorted by instance. Endpoints and
 * instance strings belong to the endpointer's live set while they are in the
 * current snapshot; those removed by an update are handed to the snapshot
 * being retired (drop lists) and released when it is freed. */
struct kitd__snap {
  size_t count;
  kitd_endpoint **eps;
  char **inst;
  atomic_int retired;        /* set when replaced; done() then tries a reclaim */
  struct kitd__snap *next;   /* retire FIFO */
  kitd_endpoint **drop_eps;  /* to unref when this snapshot is freed */
  char **drop_inst;          /* to free likewise */
  size_t ndrop, capdrop;
};

struct kitd_endpointer {
  _Atomic(struct kitd__snap *) snap; /* read by pickers */
  pthread_mutex_t mu;                /* guards all below and reclamation */
  kitd_instancer *src;
  kitd_factory_fn factory;
  void *arg;
  kitd_endpointer_opts opts;
  struct kitd__snap *retired_head, *retired_tail; /* oldest first */
  /* invalidate-on-error */
  pthread_t timer;
  bool timer_running, closing, erroring, invalidated;
  int64_t invalidate_at_ns;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
};

/* Try to free retired snapshots no picker holds (takes mu if free). */
void kitd__endpointer_try_reclaim(kitd_endpointer *ep);

#endif
