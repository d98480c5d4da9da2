/* SPDX-License-Identifier: MIT */
/* libkitd: the endpointer (go-kit's sd.Endpointer).
 *
 * Subscribes to an instancer and keeps one endpoint per instance address,
 * made by a factory. On each new set it calls the factory only for new
 * addresses, keeps the others (an instance whose attributes changed gets
 * its new record without a new endpoint), and publishes an immutable
 * snapshot that balancers read without a lock. An endpoint whose instance
 * left the set is closed once no pick of a snapshot that holds it is
 * outstanding: a pick that is never handed back pins its own snapshot's
 * endpoints and records, nothing newer (docs/threads.md).
 *
 * Lifetime: the endpointer holds a reference on its instancer and on its
 * factory's argument (released through the factory's release function);
 * balancers hold one on the endpointer. kitd_endpointer_free() drops the
 * caller's reference: any free order is safe. */
#ifndef KITD_ENDPOINTER_H
#define KITD_ENDPOINTER_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "export.h"
#include "instance.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_endpointer kitd_endpointer;

typedef struct kitd_endpointer_opts {
  size_t size; /* sizeof(kitd_endpointer_opts), set by _init */
  /* go-kit's InvalidateOnError: after an error event, keep serving the last
   * good set for this long, then close every endpoint (as if the set were
   * empty) unless a good event came first. < 0 (the default): never. */
  int64_t invalidate_on_error_ms;
  kitd_logger *logger; /* borrowed (must outlive the endpointer); NULL:
                          warnings and errors to stderr */
} kitd_endpointer_opts;

/* Fill `o` with the defaults. Thread-safety: any thread. */
KITD_API void kitd_endpointer_opts_init(kitd_endpointer_opts *o);

/* A new endpointer over `src` (a reference is taken) with `factory`
 * (copied; its release function runs on every path, failure included).
 * `opts` is copied; NULL means defaults; an opts whose size field is not
 * one this library knows gives KITD_EINVAL. The endpointer subscribes at
 * once, so the factory may run before this returns. Caller frees with
 * kitd_endpointer_free(). Returns 0, KITD_EINVAL, KITD_ENOMEM, or what
 * kitd_instancer_subscribe() returned. Thread-safety: any thread. */
KITD_API int kitd_endpointer_new(kitd_instancer *src, const kitd_factory *factory,
                                 const kitd_endpointer_opts *opts, kitd_endpointer **out);

/* Drop the caller's reference. The last reference unsubscribes, releases
 * every endpoint (each closes when its last reference goes), releases the
 * factory argument and the instancer. NULL is allowed.
 * Thread-safety: any thread (one call per reference). */
KITD_API void kitd_endpointer_free(kitd_endpointer *ep);

/* Copies of the current endpoints, each with a new reference, in address
 * order: *out is an array of *count endpoints; release with
 * kitd_endpoint_list_free(). Returns 0, KITD_EINVAL or KITD_ENOMEM.
 * Thread-safety: any thread. */
KITD_API int kitd_endpointer_endpoints(kitd_endpointer *ep, kitd_endpoint ***out, size_t *count);

/* How many endpoints the current snapshot holds. Thread-safety: any thread. */
KITD_API size_t kitd_endpointer_count(kitd_endpointer *ep);

/* Why the snapshot is empty, for an error message: the registry's error
 * with the age of the last good answer ("consul: connect 127.0.0.1:8500
 * refused; last good answer 42 s ago"), or "0 passing instances of 'users'
 * with tags [v2]", or that every instance's factory failed, or that no
 * answer came yet. Written into buf (cap bytes, always terminated,
 * truncated if need be); returns buf. Thread-safety: any thread. */
KITD_API const char *kitd_endpointer_explain(kitd_endpointer *ep, char *buf, size_t cap);

/* Unref each endpoint and free the array. NULL is allowed.
 * Thread-safety: any thread. */
KITD_API void kitd_endpoint_list_free(kitd_endpoint **list, size_t count);

#ifdef __cplusplus
}
#endif
#endif
