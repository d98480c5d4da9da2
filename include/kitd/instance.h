/* SPDX-License-Identifier: MIT */
/* libkitd: instance records, what a registry says of one instance.
 *
 * A record holds the instance's address ("host:port", an IPv6 host in
 * brackets), its health status, its weight, its tags, the service's meta
 * data, the node it runs on with the node's meta data, the datacenter, and
 * a zone. The address is the record's identity: the endpointer keeps one
 * endpoint per address, and a record whose address stays while its other
 * attributes change updates the endpointer's snapshot without a new
 * endpoint. (To tell a change cheaply, a record gets a 64-bit digest of its
 * attributes when it is frozen; the instancer and the endpointer compare
 * digests. kitd_instance_equal() compares the attributes themselves.)
 *
 * Records are built by a registry (or by the program, for the static
 * instancer) with kitd_instance_new() and the kitd_instance_set_* calls,
 * then frozen when handed to an instancer: from then on they are immutable
 * and shared by reference between threads. Readers get `const` records
 * and may keep one with kitd_instance_ref().
 *
 * Ownership: kitd_instance_new() gives one reference; kitd_instance_unref()
 * drops one. Thread-safety: a frozen record may be read and ref'd from any
 * thread; the setters are for the one thread that built the record, before
 * it is handed over. */
#ifndef KITD_INSTANCE_H
#define KITD_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_instance kitd_instance;

/* Health status, as Consul's checks report it (the worst check wins). */
typedef enum kitd_health {
  KITD_HEALTH_PASSING = 0,
  KITD_HEALTH_WARNING = 1,
  KITD_HEALTH_CRITICAL = 2
} kitd_health;

/* Longest address accepted: "[" + 253-byte host + "]:" + 5 digits. */
#define KITD_ADDRESS_MAX 261

/* A new record for `address` (copied; 1 to KITD_ADDRESS_MAX bytes, no
 * control characters or spaces) with status passing, weight 1 and nothing
 * else set. Returns 0, KITD_EINVAL or KITD_ENOMEM; on failure *out is
 * untouched. Thread-safety: any thread. */
KITD_API int kitd_instance_new(const char *address, kitd_instance **out);

/* Setters, for a record not yet handed to an instancer. Strings are copied.
 * Each returns 0, KITD_EINVAL (NULL argument, bad value, or the record is
 * frozen) or KITD_ENOMEM (the record is unchanged).
 * - status: one of kitd_health;
 * - weight: >= 1 (0 is refused: an instance nobody should pick is one the
 *   registry should not list);
 * - tag: appended (duplicates kept, as Consul keeps them);
 * - meta / node_meta: set key to value (replacing an earlier value);
 * - node, datacenter, zone: replace the earlier value. An explicit zone
 *   wins over the meta data (see kitd_instance_zone()). */
KITD_API int kitd_instance_set_status(kitd_instance *i, kitd_health status);
KITD_API int kitd_instance_set_weight(kitd_instance *i, uint32_t weight);
KITD_API int kitd_instance_add_tag(kitd_instance *i, const char *tag);
KITD_API int kitd_instance_set_meta(kitd_instance *i, const char *key, const char *value);
KITD_API int kitd_instance_set_node(kitd_instance *i, const char *node);
KITD_API int kitd_instance_set_node_meta(kitd_instance *i, const char *key, const char *value);
KITD_API int kitd_instance_set_datacenter(kitd_instance *i, const char *dc);
KITD_API int kitd_instance_set_zone(kitd_instance *i, const char *zone);

/* Add a reference; returns `i` (cast away const: a reference is not a
 * right to change it). NULL gives NULL. Thread-safety: any thread. */
KITD_API kitd_instance *kitd_instance_ref(const kitd_instance *i);

/* Drop a reference; the last one frees the record. NULL is allowed.
 * Thread-safety: any thread. */
KITD_API void kitd_instance_unref(const kitd_instance *i);

/* Readers. Strings are borrowed from the record (valid while you hold a
 * reference, or for the callback that received it); "" when unset, never
 * NULL, except kitd_instance_meta() and kitd_instance_node_meta(), which
 * return NULL for a key that is not there. Thread-safety: any thread. */
KITD_API const char *kitd_instance_address(const kitd_instance *i);
KITD_API kitd_health kitd_instance_status(const kitd_instance *i);
KITD_API uint32_t kitd_instance_weight(const kitd_instance *i);
KITD_API size_t kitd_instance_tag_count(const kitd_instance *i);
/* The k-th tag, or NULL past the count. */
KITD_API const char *kitd_instance_tag(const kitd_instance *i, size_t k);
/* 1 if the record has tag `tag`, else 0. */
KITD_API int kitd_instance_has_tag(const kitd_instance *i, const char *tag);
KITD_API const char *kitd_instance_meta(const kitd_instance *i, const char *key);
/* Meta entries in key order: the k-th one's key and value, 0; or
 * KITD_ENOTFOUND past the count. */
KITD_API size_t kitd_instance_meta_count(const kitd_instance *i);
KITD_API int kitd_instance_meta_at(const kitd_instance *i, size_t k, const char **key,
                                   const char **value);
KITD_API const char *kitd_instance_node(const kitd_instance *i);
KITD_API const char *kitd_instance_node_meta(const kitd_instance *i, const char *key);
KITD_API size_t kitd_instance_node_meta_count(const kitd_instance *i);
KITD_API int kitd_instance_node_meta_at(const kitd_instance *i, size_t k, const char **key,
                                        const char **value);
KITD_API const char *kitd_instance_datacenter(const kitd_instance *i);
/* The zone: the one set with kitd_instance_set_zone() (a registry sets it
 * from the meta key its user names), else node meta "zone", else service
 * meta "zone", else "". */
KITD_API const char *kitd_instance_zone(const kitd_instance *i);

/* 1 if every attribute of `a` and `b` is the same (address included),
 * else 0. Thread-safety: any thread. */
KITD_API int kitd_instance_equal(const kitd_instance *a, const kitd_instance *b);

/* "passing", "warning" or "critical" ("unknown" otherwise). Static string.
 * Thread-safety: any thread. */
KITD_API const char *kitd_health_name(kitd_health status);

/* Unref each record and free the array (as returned by
 * kitd_instancer_state()). NULL is allowed. Thread-safety: any thread. */
KITD_API void kitd_instance_list_free(kitd_instance **list, size_t count);

#ifdef __cplusplus
}
#endif
#endif
