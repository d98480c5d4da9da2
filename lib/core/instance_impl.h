/* Internal: the layout of an instance record, for the parts of the library
 * that read it on a hot path (balancers read the weight) and for the
 * instancer base (sorting, freezing). Not API. */
#ifndef KITD_CORE_INSTANCE_IMPL_H
#define KITD_CORE_INSTANCE_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kitd/instance.h"

struct kitd__kv {
  char *key;
  char *value;
};

struct kitd_instance {
  atomic_long refs;
  bool frozen;        /* set when an instancer takes it: no setter after */
  kitd_health status;
  uint32_t weight;
  char *address;
  char **tags;
  size_t ntags;
  struct kitd__kv *meta;      /* sorted by key, unique */
  size_t nmeta;
  struct kitd__kv *node_meta; /* sorted by key, unique */
  size_t nnode_meta;
  char *node, *datacenter, *zone; /* NULL when unset */
};

/* Freeze a record (no setter works after). */
static inline void kitd__instance_freeze(kitd_instance *i) { i->frozen = true; }

/* Sort records by address and keep one record per address (unref'ing
 * the others);
 * returns the new count. */
size_t kitd__instance_sort_unique(kitd_instance **v, size_t count);

#endif
