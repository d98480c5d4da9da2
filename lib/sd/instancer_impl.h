/* SPDX-License-Identifier: MIT */
/* Internal: the base every instancer embeds (static, Consul, etcd, DNS,
 * file). Not API. An implementation puts `struct kitd_instancer base;`
 * first in its own struct, calls kitd__instancer_init() with its ops, and
 * reports what it sees with kitd__instancer_publish() /
 * kitd__instancer_publish_error(). The base keeps the last good set, the
 * last error, the subscribers and the reference count. */
#ifndef KITD_SD_INSTANCER_IMPL_H
#define KITD_SD_INSTANCER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kitd/instancer.h"
#include "core/instance_impl.h"

struct kitd__instancer_ops {
  const char *kind; /* "static", "consul", ... */
  /* Stop the watch (abort a long poll, join the thread). Called once, from
   * kitd_instancer_stop() or the last unref, never under the base lock and
   * never from a callback of this instancer. May be NULL. A watch loop
   * that sees kitd__instancer_publish() return KITD_ESTOPPED should end
   * by itself: a callback may have stopped the instancer. */
  void (*stop)(kitd_instancer *in);
  /* Free the implementation's own memory (after stop and base cleanup). */
  void (*destroy)(kitd_instancer *in);
};

struct kitd__subscriber {
  kitd_event_fn fn; /* NULL: unsubscribed during a delivery (compacted later) */
  void *arg;
};

struct kitd_instancer {
  const struct kitd__instancer_ops *ops;
  atomic_long refs;
  pthread_mutex_t mu;   /* guards everything below; held while notifying */
  pthread_cond_t ready; /* CLOCK_MONOTONIC; signalled on every state */
  struct kitd__subscriber *subs;
  size_t nsubs, capsubs;
  kitd_instance **set; /* last good set: sorted by address, unique */
  size_t count;
  int err;              /* last watch error, 0 after a good answer */
  char *detail;         /* its detail, or NULL */
  int last_err;         /* the last error ever met (for wait_ready) */
  int64_t last_good_ns; /* when the last good answer came; 0: none */
  bool has_state;       /* a set or an error has been published */
  bool has_good;        /* a good answer has been published */
  bool stopped;         /* no event follows */
  bool stop_done;       /* ops->stop has run */
  bool cond_ok;
  unsigned delivering; /* nesting depth of deliveries (under mu) */
  bool compact;        /* a subscriber was removed during a delivery */
  /* A state published from inside a callback, delivered after it. */
  bool pending;
  kitd_instance **pend_set;
  size_t pend_count;
  int pend_err;
  char *pend_detail;
  char *what; /* kitd_instancer_describe(); NULL: "instances" */
  /* Registry answers published, good or failed, and the failed ones:
   * one per request the watch made (read by kitd_metrics_watch). */
  uint64_t answers, errors;
  char *last_detail; /* the last error's detail, kept after a recovery */
};

/* Initialise the base (one reference). Returns 0 or KITD_ENOMEM. */
int kitd__instancer_init(kitd_instancer *in, const struct kitd__instancer_ops *ops);

/* Set the text kitd_instancer_describe() returns (copied). Call before the
 * instancer is shared. Returns 0 or KITD_ENOMEM. */
int kitd__instancer_set_what(kitd_instancer *in, const char *what);

/* Add a reference (what an endpointer or client takes). */
kitd_instancer *kitd__instancer_ref(kitd_instancer *in);

/* Publish a good answer. Takes `instances` (an array of `count` records,
 * one reference each, itself from kitd__malloc; any order, duplicates
 * allowed) on every path, and freezes the records. Sorts and
 * de-duplicates; tells subscribers if the set changed (an attribute
 * counts) or if the previous state was an error. Returns 0, KITD_EINVAL
 * (count > 0 with a NULL array) or KITD_ESTOPPED (after a stop: nothing
 * delivered). From inside a callback of `in`, the state is delivered once
 * the current event is done. */
int kitd__instancer_publish(kitd_instancer *in, kitd_instance **instances, size_t count);

/* Publish a failed watch: subscribers get an error event that carries the
 * last good set. `detail` is copied (may be NULL). Repeated identical errors
 * are still delivered (a subscriber may count them). */
void kitd__instancer_publish_error(kitd_instancer *in, int err, const char *detail);

/* The watch's state for a metrics registry (kitd__mwatch_read_fn; `obj`
 * is the instancer). Not from a callback of that instancer. */
struct kitd__mwatch_state;
void kitd__instancer_metrics_read(void *obj,
                                  void (*done)(void *arg, const struct kitd__mwatch_state *st),
                                  void *arg);

/* 1 once the instancer is stopped (a watch loop may poll it). */
int kitd__instancer_stopped(kitd_instancer *in);

#endif
