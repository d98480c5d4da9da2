/* SPDX-License-Identifier: MIT */
/* libkitd: kitd_endpoint, a refcounted callable (go-kit's endpoint.Endpoint).
 *
 * An endpoint is a function with state and a close function. References are
 * counted; the close function runs exactly once, when the last reference is
 * dropped. Endpoints made by a factory for an endpointer are shared by every
 * thread that picks them. */
#ifndef KITD_ENDPOINT_H
#define KITD_ENDPOINT_H

#include "ctx.h"
#include "export.h"
#include "instance.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_endpoint kitd_endpoint;

/* The call itself. `state` is the pointer given to kitd_endpoint_new().
 * Returns 0 and may set *response (its ownership is defined by whoever made
 * the endpoint: kitd_http documents its own), or a negative KITD_E* code,
 * with detail in `ctx`. Runs on the caller's thread, on many threads at
 * once: it must be thread-safe. */
typedef int (*kitd_endpoint_fn)(void *state, kitd_ctx *ctx, const void *request, void **response);

/* Releases `state`; runs once, on the thread that drops the last reference. */
typedef void (*kitd_endpoint_close_fn)(void *state);

/* A new endpoint with one reference (release with kitd_endpoint_unref()).
 * `state` is taken on every path: `close` (may be NULL) receives it when
 * the last reference goes, or at once on failure (KITD_EINVAL if fn or out
 * is NULL, KITD_ENOMEM; *out is then untouched). So
 * kitd_endpoint_new(fn, free, strdup(x), &e) cannot leak.
 * Thread-safety: any thread. */
KITD_API int kitd_endpoint_new(kitd_endpoint_fn fn, kitd_endpoint_close_fn close, void *state,
                               kitd_endpoint **out);

/* Make an endpoint for `instance` (borrowed for the call; take
 * kitd_instance_ref() to keep it). Returns 0 and a new endpoint in *out
 * (the endpointer takes that reference), or a negative code: the instance
 * is then skipped and logged (to the endpointer's logger, or to stderr if
 * it has none), and tried again when a later set still holds it.
 * Thread-safety: watch thread (the instancer's, or the subscribing thread).
 * kitd_endpointer_new() takes a kitd_factory. */
typedef int (*kitd_factory_fn)(void *arg, const kitd_instance *instance, kitd_endpoint **out);

/* A factory: its function, its argument, and what releases the argument. */
typedef struct kitd_factory {
  kitd_factory_fn fn;
  void *arg;
  /* NULL, or called once with `arg` when the endpointer no longer needs it
   * (also when kitd_endpointer_new() fails): the endpointer takes over one
   * reference on `arg`. kitd_http_factory() fills it. */
  void (*release)(void *arg);
} kitd_factory;

/* Add a reference; returns `ep`. Thread-safety: any thread. */
KITD_API kitd_endpoint *kitd_endpoint_ref(kitd_endpoint *ep);

/* Drop a reference; the last one runs the close function. NULL is allowed.
 * Thread-safety: any thread. */
KITD_API void kitd_endpoint_unref(kitd_endpoint *ep);

/* Call the endpoint. Returns what the endpoint returns; KITD_EINVAL, and
 * the endpoint does not run, if `ep`, `ctx` or `response` is NULL or `ctx`
 * was never initialised (kitd_ctx_init()); or kitd_ctx_err() if `ctx` is
 * already done. Pass a response pointer even to an endpoint that sets none:
 * a NULL one would leave a decoded answer nobody can free.
 * Thread-safety: any thread (the caller must hold a reference or a pick). */
KITD_API int kitd_endpoint_call(kitd_endpoint *ep, kitd_ctx *ctx, const void *request,
                                void **response);

/* The state pointer given at creation. Borrowed.
 * Thread-safety: any thread. */
KITD_API void *kitd_endpoint_state(const kitd_endpoint *ep);

#ifdef __cplusplus
}
#endif
#endif
