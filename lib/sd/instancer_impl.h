/* Internal: the base every instancer embeds (static, Consul, later DNS SRV).
 * Not API. An implementation puts `struct kitd_instancer base;` first in its
 * own struct, calls kitd__instancer_init() with its ops, and reports what it
 * sees with kitd__instancer_publish() / kitd__instancer_publish_error(). The
 * base keeps the last good set, the last error, and the subscribers. */
#ifndef KITD_SD_INSTANCER_IMPL_H
#define KITD_SD_INSTANCER_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "kitd/instancer.h"

struct kitd__instancer_ops {
  const char *kind; /* "static", "consul", ... */
  /* Stop the watch (abort a long poll, join the thread). Called once, from
   * kitd_instancer_stop() or kitd_instancer_free(), never under the base
   * lock. May be NULL. */
  void (*stop)(kitd_instancer *in);
  /* Free the implementation's own memory (after stop and base cleanup). */
  void (*destroy)(kitd_instancer *in);
};

struct kitd__subscriber {
  kitd_event_fn fn;
  void *arg;
};

struct kitd_instancer {
  const struct kitd__instancer_ops *ops;
  pthread_mutex_t mu;   /* guards everything below; held while notifying */
  struct kitd__subscriber *subs;
  size_t nsubs, capsubs;
  char **set;           /* last good set: sorted, unique */
  size_t count;
  int err;              /* last watch error, 0 after a good answer */
  char *detail;         /* its detail, or NULL */
  bool has_state;       /* a set or an error has been published */
  bool stopped;
};

/* Initialise the base. Returns 0 or KITD_ENOMEM. */
int kitd__instancer_init(kitd_instancer *in, const struct kitd__instancer_ops *ops);

/* Publish a good answer. Takes `instances` (an array of `count` malloc'd
 * strings, itself malloc'd; any order, duplicates allowed) on every path.
 * Sorts and de-duplicates; tells subscribers if the set changed or if the
 * previous state was an error. Returns 0, KITD_EINVAL (count > 0 with a NULL
 * array) or KITD_ESTOPPED (after kitd_instancer_stop(): nothing delivered). */
int kitd__instancer_publish(kitd_instancer *in, char **instances, size_t count);

/* Publish a failed watch: subscribers get an error event that carries the
 * last good set. `detail` is copied (may be NULL). Repeated identical errors
 * are still delivered (a subscriber may count them). */
void kitd__instancer_publish_error(kitd_instancer *in, int err, const char *detail);

/* Sort (strcmp) and de-duplicate v in place, freeing duplicates; returns the
 * new count. */
size_t kitd__strv_sort_unique(char **v, size_t count);

#endif
