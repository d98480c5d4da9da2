/* SPDX-License-Identifier: MIT */
/* libkitd: instancers (go-kit's sd.Instancer) and the static instancer.
 *
 * An instancer watches a registry and tells its subscribers the current set
 * of instances, as immutable instance records (instance.h) sorted by
 * address with one record per address, or an error. After an error the
 * last good set stays available: an error event carries it too, so an
 * outage never empties a pool.
 *
 * Lifetime: an instancer is reference-counted. kitd_instancer_free() drops
 * the caller's reference; whatever is built on the instancer (an
 * endpointer, a client) holds its own, so any free order is safe. The
 * watch stops when the last reference goes, or at kitd_instancer_stop().
 *
 * Callbacks: subscribers are called one event at a time, in order, under
 * the instancer's lock, on the watch thread (or on the subscribing thread
 * for the first event). A callback must be quick. From inside a callback
 * it may call, on the same instancer: kitd_instancer_state(),
 * kitd_instancer_subscribe(), kitd_instancer_unsubscribe() (also its own
 * subscription: no event reaches it after that), kitd_instancer_stop() (no
 * event follows; the watch thread is joined later, by the next stop from
 * outside a callback or by the last free), kitd_static_instancer_set() and
 * kitd_static_instancer_fail() (the new state is delivered once the
 * current event has reached every subscriber), and kitd_instancer_free()
 * of a reference it owns, as long as another reference remains. It must
 * not wait for another thread that calls into the same instancer. */
#ifndef KITD_INSTANCER_H
#define KITD_INSTANCER_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "instance.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_instancer kitd_instancer;

typedef struct kitd_event {
  int err;                               /* 0, or the KITD_E* code of a failed watch */
  const char *detail;                    /* error detail ("" when err is 0); never NULL */
  const kitd_instance *const *instances; /* sorted by address, unique; on
                                            error: the last good set */
  size_t count;                          /* number of instances */
  int64_t last_good_ns;                  /* kitd_now_ns() of the last good answer; 0: none */
} kitd_event;

/* Receives an event. Everything in `ev` is borrowed for the call only:
 * take kitd_instance_ref() on a record you keep.
 * Thread-safety: watch thread. */
typedef void (*kitd_event_fn)(void *arg, const kitd_event *ev);

/* Subscribe fn(arg, …). If the instancer already has a state (a set or an
 * error), fn receives it before this returns, on the calling thread. The
 * same (fn, arg) pair may be subscribed once. Returns 0, KITD_EINVAL,
 * KITD_EEXIST, KITD_ENOMEM or KITD_ESTOPPED; on failure fn is never called.
 * Thread-safety: any thread, also from a callback. */
KITD_API int kitd_instancer_subscribe(kitd_instancer *in, kitd_event_fn fn, void *arg);

/* Remove (fn, arg). Once this returns, fn is not running (unless this is
 * called from fn itself) and never runs again for this subscription.
 * Returns 0, KITD_EINVAL or KITD_ENOTFOUND.
 * Thread-safety: any thread, also from a callback. */
KITD_API int kitd_instancer_unsubscribe(kitd_instancer *in, kitd_event_fn fn, void *arg);

/* A copy of the current state: the last good set in *instances (an array
 * of *count records, each with a reference; release with
 * kitd_instance_list_free()) and, as return value, 0 if the last watch
 * succeeded or the last error code (the set is filled either way);
 * KITD_ENOTFOUND with an empty set before any state. KITD_EINVAL and
 * KITD_ENOMEM leave the out parameters untouched.
 * Thread-safety: any thread, also from a callback. */
KITD_API int kitd_instancer_state(kitd_instancer *in, kitd_instance ***instances, size_t *count);

/* Wait up to timeout_ms (< 0: no limit) for the registry's first good
 * answer (an empty set is an answer). Returns 0 once there is one (at once
 * if there already is); else, at the timeout, the last error the watch met
 * (its detail is in kitd_instancer_state()'s error, and in the log) or
 * KITD_ETIMEDOUT if it met none; KITD_ESTOPPED if the instancer is stopped
 * without an answer; KITD_EINVAL. Thread-safety: any thread, not from a
 * callback (KITD_EINVAL there: the answer cannot come while it waits). */
KITD_API int kitd_instancer_wait_ready(kitd_instancer *in, int64_t timeout_ms);

/* What the instancer watches, for messages: "passing instances of 'users'
 * with tags [v2]", "instances of the static list". Borrowed, valid as long
 * as the instancer. Thread-safety: any thread. */
KITD_API const char *kitd_instancer_describe(const kitd_instancer *in);

/* Stop watching: a running long poll is aborted, no event follows. The set
 * stays readable. Calling it twice is harmless. NULL is allowed.
 * Thread-safety: any thread, also from a callback (see above). */
KITD_API void kitd_instancer_stop(kitd_instancer *in);

/* Drop the caller's reference; the last one stops the watch and frees the
 * instancer. Endpointers and clients built on it hold their own reference,
 * so this is safe in any order. NULL is allowed.
 * Thread-safety: any thread (one call per reference). */
KITD_API void kitd_instancer_free(kitd_instancer *in);

/* --- The static instancer (go-kit's sd.FixedInstancer, but settable) --- */

/* A new instancer whose set is the records made from `addresses` ("host:port"
 * each, copied; status passing, weight 1; duplicates dropped; count 0
 * allowed). Caller frees with kitd_instancer_free(). Returns 0, KITD_EINVAL
 * (a NULL or malformed address: see kitd_instance_new()) or KITD_ENOMEM.
 * Thread-safety: any thread. */
KITD_API int kitd_static_instancer_new(const char *const *addresses, size_t count,
                                       kitd_instancer **out);

/* Replace the set by records made from `addresses`; subscribers are told
 * if the set changed. Returns 0, KITD_EINVAL (not a static instancer, or a
 * bad address) or KITD_ENOMEM (the old set stays).
 * Thread-safety: any thread, also from a callback. */
KITD_API int kitd_static_instancer_set(kitd_instancer *in, const char *const *addresses,
                                       size_t count);

/* Replace the set by `records` (each gets a reference from the instancer
 * and is frozen: the caller keeps its own reference, but may not change the
 * record any more). The instancer keeps one record per address. Returns as
 * kitd_static_instancer_set(). Thread-safety: any thread, also from a
 * callback. */
KITD_API int kitd_static_instancer_set_records(kitd_instancer *in, kitd_instance *const *records,
                                               size_t count);

/* Publish an error event (for tests and for wrappers that learn of a
 * failure elsewhere); the set is kept. `err` must be a KITD_E* code (< 0);
 * `detail` is copied and may be NULL. Returns 0 or KITD_EINVAL.
 * Thread-safety: any thread, also from a callback. */
KITD_API int kitd_static_instancer_fail(kitd_instancer *in, int err, const char *detail);

#ifdef __cplusplus
}
#endif
#endif
