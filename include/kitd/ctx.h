/* SPDX-License-Identifier: MIT */
/* libkitd: kitd_ctx, the per-call context (go-kit's context.Context).
 *
 * A kitd_ctx carries a deadline on the monotonic clock, a cancel flag that
 * any thread may set, a detail message, and the error of every attempt a
 * retry made. It is a plain struct so that a call needs no allocation: put
 * it on the stack, kitd_ctx_init() it, and read it through the functions
 * below. The fields are private: their layout may change between releases.
 *
 * Ownership: the caller owns the kitd_ctx; libkitd never keeps a pointer to
 * it after the call that received it returns.
 * Deadlines: an endpoint must honour the ctx it is given (libkitd's HTTP
 * endpoints turn it into libcurl timeouts and poll the cancel flag); a user
 * endpoint that blocks should wait with kitd_ctx_sleep_ns() or poll
 * kitd_ctx_err(). See docs/ctx.md. */
#ifndef KITD_CTX_H
#define KITD_CTX_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KITD_CTX_DETAIL_MAX 256
#define KITD_CTX_MAX_ATTEMPTS 16
#define KITD_ATTEMPT_DETAIL_MAX 128
#define KITD_INSTANCE_MAX 262 /* "[" + 253-byte host + "]:" + 5 digits + NUL */

/* One failed attempt of a call, as kept by kitd_retry. */
typedef struct kitd_attempt_error {
  int err;                                /* KITD_E* code of the attempt */
  int status;                             /* HTTP status, or 0 */
  int64_t latency_ns;                     /* how long the attempt took */
  char instance[KITD_INSTANCE_MAX];       /* "host:port" it went to, or "" */
  char detail[KITD_ATTEMPT_DETAIL_MAX];   /* the attempt's detail text */
} kitd_attempt_error;

typedef struct kitd_ctx {
  /* private */
  int64_t deadline_ns_;        /* absolute CLOCK_MONOTONIC ns; 0: none */
  int canceled_;               /* set with atomic builtins */
  int status_;                 /* HTTP status of the last answer, or 0 */
  const struct kitd_ctx *parent_;
  unsigned nattempts_;
  char detail_[KITD_CTX_DETAIL_MAX];
  kitd_attempt_error attempts_[KITD_CTX_MAX_ATTEMPTS];
} kitd_ctx;

/* CLOCK_MONOTONIC in nanoseconds. Thread-safety: any thread. */
KITD_API int64_t kitd_now_ns(void);

/* Initialise `c` with no deadline, not canceled, empty detail and no
 * attempts. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_init(kitd_ctx *c);

/* Initialise `child` as a context derived from `parent` (borrowed: it must
 * outlive `child`): the child is canceled when the parent is, and its
 * deadline is the earlier of the parent's and now + timeout_ms
 * (timeout_ms <= 0: the parent's alone).
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_init_child(kitd_ctx *child, const kitd_ctx *parent,
                                  int64_t timeout_ms);

/* Set the deadline to now + ms (ms <= 0 removes the deadline).
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_timeout_ms(kitd_ctx *c, int64_t ms);

/* Set an absolute deadline in kitd_now_ns() terms; 0 removes it.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_deadline_ns(kitd_ctx *c, int64_t deadline_ns);

/* The effective deadline (the earliest along the parent chain), 0 if none.
 * Thread-safety: any thread. */
KITD_API int64_t kitd_ctx_deadline_ns(const kitd_ctx *c);

/* Milliseconds left before the deadline (0 once passed), or -1 if none.
 * Thread-safety: any thread. */
KITD_API int64_t kitd_ctx_remaining_ms(const kitd_ctx *c);

/* Ask every call running under `c` (or a child of it) to stop.
 * Thread-safety: any thread, also while another thread uses `c`. */
KITD_API void kitd_ctx_cancel(kitd_ctx *c);

/* 0 while the call may go on; KITD_ECANCELED once `c` or a parent is
 * canceled; KITD_ETIMEDOUT once the deadline has passed.
 * Thread-safety: any thread. */
KITD_API int kitd_ctx_err(const kitd_ctx *c);

/* Sleep up to `ns`, waking early (and returning kitd_ctx_err()) if `c` is
 * canceled or its deadline comes first; 0 after a full sleep. `c` may be
 * NULL. Thread-safety: any thread. */
KITD_API int kitd_ctx_sleep_ns(const kitd_ctx *c, int64_t ns);

/* Set the detail text (printf format; truncated to KITD_CTX_DETAIL_MAX-1).
 * `c` may be NULL (then nothing happens).
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_detail(kitd_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
KITD_API void kitd_ctx_set_detailv(kitd_ctx *c, const char *fmt, va_list ap);

/* The detail text, "" if none. Borrowed: valid until `c` changes.
 * Thread-safety: one thread at a time per handle. */
KITD_API const char *kitd_ctx_detail(const kitd_ctx *c);

/* The HTTP status of the last answer an endpoint saw under `c`, or 0.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_status(kitd_ctx *c, int status);
KITD_API int kitd_ctx_status(const kitd_ctx *c);

/* Attempt errors recorded by kitd_retry (the first KITD_CTX_MAX_ATTEMPTS).
 * kitd_ctx_attempt() returns NULL past the count. Borrowed: valid until `c`
 * changes. Thread-safety: one thread at a time per handle. */
KITD_API unsigned kitd_ctx_attempt_count(const kitd_ctx *c);
KITD_API const kitd_attempt_error *kitd_ctx_attempt(const kitd_ctx *c,
                                                    unsigned i);
/* Record an attempt (used by kitd_retry; available to custom wrappers).
 * `instance` and `detail` are copied and may be NULL.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_add_attempt(kitd_ctx *c, int err, int status,
                                   int64_t latency_ns, const char *instance,
                                   const char *detail);

#ifdef __cplusplus
}
#endif
#endif
