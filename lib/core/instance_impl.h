/* SPDX-License-Identifier: MIT */
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

/* The attributes a reader seldom needs, after the address in the same
 * block. */
struct kitd__attrs {
  char **tags;
  size_t ntags;
  struct kitd__kv *meta; /* sorted by key, unique */
  size_t nmeta;
  struct kitd__kv *node_meta; /* sorted by key, unique */
  size_t nnode_meta;
  char *node, *datacenter, *zone; /* NULL when unset */
};

/* One 64-byte aligned block: the fields an update or a pick reads first,
 * then the address, then the other attributes. An address of up to 23
 * bytes shares the first cache line with the digest, so an update over a
 * large set reads one line per kept record. */
struct kitd_instance {
  atomic_long refs;
  bool frozen; /* set when an instancer takes it: no setter after */
  kitd_health status;
  uint32_t weight;
  /* strlen(address), at most KITD_ADDRESS_MAX: a retry copies the address
   * of the instance that served a call with one memcpy of known size. */
  uint32_t address_len;
  /* A 64-bit digest of every attribute but the address, made when the
   * record is frozen: the endpointer compares digests, not attributes. */
  uint64_t digest;
  struct kitd__attrs *a;
  char address[]; /* the identity, inline */
};

/* Freeze a record (no setter works after) and compute its digest. */
void kitd__instance_freeze(kitd_instance *i);

/* Same attributes but the address, by digest (both records frozen). */
static inline bool kitd__instance_same_attrs(const kitd_instance *a, const kitd_instance *b) {
  return a == b || a->digest == b->digest;
}

/* Sort records by address and keep one record per address (unref'ing
 * the others);
 * returns the new count. */
size_t kitd__instance_sort_unique(kitd_instance **v, size_t count);

#endif
