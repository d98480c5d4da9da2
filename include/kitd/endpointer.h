/* libkitd: the endpointer (go-kit's sd.Endpointer).
 *
 * Subscribes to an instancer and keeps one endpoint per instance, made by a
 * factory. On each new set it calls the factory only for new instances,
 * keeps the others, and publishes an immutable snapshot that balancers read
 * without a lock. An endpoint whose instance left the set is released once
 * no picked call uses it any more (docs/threads.md says how). */
#ifndef KITD_ENDPOINTER_H
#define KITD_ENDPOINTER_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "export.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_endpointer kitd_endpointer;

/* Make an endpoint for `instance` ("host:port", borrowed for the call).
 * Returns 0 and a new endpoint in *out (the endpointer takes that
 * reference), or a negative code: the instance is then skipped and logged,
 * and tried again when a later set still holds it.
 * Thread-safety: watch thread (the instancer's, or the subscribing thread). */
typedef int (*kitd_factory_fn)(void *arg, const char *instance,
                               kitd_endpoint **out);

typedef struct kitd_endpointer_opts {
  /* go-kit's InvalidateOnError: after an error event, keep serving the last
   * good set for this long, then close every endpoint (as if the set were
   * empty) unless a good event came first. < 0 (the default): never. */
  int64_t invalidate_on_error_ms;
  kitd_logger *logger; /* borrowed; NULL: silent */
} kitd_endpointer_opts;

/* Fill `o` with the defaults. Thread-safety: any thread. */
KITD_API void kitd_endpointer_opts_init(kitd_endpointer_opts *o);

/* A new endpointer over `src` (borrowed: it must outlive the endpointer)
 * with `factory(arg, …)`. `opts` is copied; NULL means defaults. The
 * endpointer subscribes at once, so the factory may run before this returns.
 * Caller frees with kitd_endpointer_free(). Returns 0, KITD_EINVAL,
 * KITD_ENOMEM, or what kitd_instancer_subscribe() returned.
 * Thread-safety: any thread. */
KITD_API int kitd_endpointer_new(kitd_instancer *src, kitd_factory_fn factory,
                                 void *arg, const kitd_endpointer_opts *opts,
                                 kitd_endpointer **out);

/* Unsubscribe and release every endpoint (each closes when its last
 * reference goes). Balancers over it must be freed first, and no pick may be
 * outstanding. NULL is allowed.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_endpointer_free(kitd_endpointer *ep);

/* Copies of the current endpoints, each with a new reference, in instance
 * order: *out is an array of *count endpoints; release with
 * kitd_endpoint_list_free(). Returns 0 or KITD_ENOMEM.
 * Thread-safety: any thread. */
KITD_API int kitd_endpointer_endpoints(kitd_endpointer *ep, kitd_endpoint ***out,
                                       size_t *count);

/* How many endpoints the current snapshot holds. Thread-safety: any thread. */
KITD_API size_t kitd_endpointer_count(kitd_endpointer *ep);

/* Unref each endpoint and free the array. NULL is allowed.
 * Thread-safety: any thread. */
KITD_API void kitd_endpoint_list_free(kitd_endpoint **list, size_t count);

#ifdef __cplusplus
}
#endif
#endif
