/* libkitd: instancers (go-kit's sd.Instancer) and the static instancer.
 *
 * An instancer watches a registry and tells its subscribers the current set
 * of instances ("host:port" strings, sorted with strcmp, no duplicates), or
 * an error. After an error the last good set stays available: an error event
 * carries it too, so an outage never empties a pool.
 *
 * Subscribers are called one event at a time, in order (under the
 * instancer's lock), on the watch thread, or on the subscribing thread for
 * the first event. A subscriber must be quick and must not call back into
 * the same instancer (subscribe, unsubscribe, stop, free) from the callback.
 */
#ifndef KITD_INSTANCER_H
#define KITD_INSTANCER_H

#include <stddef.h>

#include "export.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_instancer kitd_instancer;

typedef struct kitd_event {
  int err;                      /* 0, or the KITD_E* code of a failed watch */
  const char *detail;           /* error detail ("" when err is 0); never NULL */
  const char *const *instances; /* sorted, unique; on error: the last good set */
  size_t count;                 /* number of instances */
} kitd_event;

/* Receives an event. Everything in `ev` is borrowed for the call only:
 * copy what you keep. Thread-safety: watch thread. */
typedef void (*kitd_event_fn)(void *arg, const kitd_event *ev);

/* Subscribe fn(arg, …). If the instancer already has a state (a set or an
 * error), fn receives it before this returns, on the calling thread. The
 * same (fn, arg) pair may be subscribed once. Returns 0, KITD_EINVAL,
 * KITD_EEXIST, KITD_ENOMEM or KITD_ESTOPPED; on failure fn is never called.
 * Thread-safety: any thread (not from inside a callback of this instancer). */
KITD_API int kitd_instancer_subscribe(kitd_instancer *in, kitd_event_fn fn,
                                      void *arg);

/* Remove (fn, arg). Once this returns, fn is not running and never runs
 * again for this subscription. Returns 0 or KITD_ENOTFOUND.
 * Thread-safety: any thread (not from inside a callback of this instancer). */
KITD_API int kitd_instancer_unsubscribe(kitd_instancer *in, kitd_event_fn fn,
                                        void *arg);

/* A copy of the current state: the last good set in *instances (an array of
 * *count strings; caller frees with kitd_strv_free()) and, as return value,
 * 0 if the last watch succeeded or the last error code (the set is filled
 * either way). KITD_ENOENT-like "no state yet" is KITD_ENOTFOUND with an
 * empty set. Thread-safety: any thread. */
KITD_API int kitd_instancer_state(kitd_instancer *in, char ***instances,
                                  size_t *count);

/* Stop watching: a running long poll is aborted, no event follows. The set
 * stays readable. Calling it twice is harmless.
 * Thread-safety: any thread (not from inside a callback of this instancer). */
KITD_API void kitd_instancer_stop(kitd_instancer *in);

/* Stop, then release the instancer. Subscribers should be gone first (an
 * endpointer unsubscribes in kitd_endpointer_free()). NULL is allowed.
 * Thread-safety: one thread at a time per handle, not from a callback. */
KITD_API void kitd_instancer_free(kitd_instancer *in);

/* Free a string array returned by libkitd. NULL is allowed.
 * Thread-safety: any thread. */
KITD_API void kitd_strv_free(char **v, size_t count);

/* --- The static instancer (go-kit's sd.FixedInstancer, but settable) --- */

/* A new instancer holding a copy of `instances` (copied; sorted and
 * de-duplicated; count 0 allowed). Caller frees with kitd_instancer_free().
 * Returns 0, KITD_EINVAL or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_static_instancer_new(const char *const *instances,
                                       size_t count, kitd_instancer **out);

/* Replace the set (copied); subscribers are told if it changed.
 * Returns 0, KITD_EINVAL (not a static instancer) or KITD_ENOMEM (the old
 * set stays). Thread-safety: any thread. */
KITD_API int kitd_static_instancer_set(kitd_instancer *in,
                                       const char *const *instances,
                                       size_t count);

/* Publish an error event (for tests and for wrappers that learn of a
 * failure elsewhere); the set is kept. `detail` is copied and may be NULL.
 * Thread-safety: any thread. */
KITD_API int kitd_static_instancer_fail(kitd_instancer *in, int err,
                                        const char *detail);

#ifdef __cplusplus
}
#endif
#endif
