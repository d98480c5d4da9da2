/* SPDX-License-Identifier: MIT */
/* libkitd: kitd_ctx, the per-call context (go-kit's context.Context).
 *
 * A kitd_ctx carries a deadline on the monotonic clock, a cancel flag that
 * any thread may set, a detail message, the instance that served the call,
 * and the count and last error of the attempts a retry made (every
 * attempt's record too, in storage the caller lends with
 * kitd_ctx_set_attempt_log()). It is a plain struct of at most 512 bytes
 * so that a call needs no allocation: put it on the stack, kitd_ctx_init()
 * it, and read it through the functions below. The fields are private:
 * their layout may change between releases.
 *
 * Ownership: the caller owns the kitd_ctx; libkitd never keeps a pointer to
 * it after the call that received it returns.
 * Deadlines: an endpoint must honour the ctx it is given (libkitd's HTTP
 * endpoints turn it into libcurl timeouts and poll the cancel flag); a user
 * endpoint that blocks should wait with kitd_ctx_sleep_ns() or poll
 * kitd_ctx_err(). See docs/api/ctx.md. */
#ifndef KITD_CTX_H
#define KITD_CTX_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "instance.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KITD_CTX_DETAIL_MAX 192
#define KITD_ATTEMPT_DETAIL_MAX 128
/* Room for an address and its NUL ("host:port"; see instance.h). */
#define KITD_INSTANCE_MAX (KITD_ADDRESS_MAX + 1)

/* One attempt of a call, as kitd_retry records it in the caller's attempt
 * log (see kitd_ctx_set_attempt_log()). */
typedef struct kitd_attempt_error {
  int err;                              /* KITD_E* code of the attempt */
  int status;                           /* HTTP status, or 0 */
  int64_t latency_ns;                   /* how long the attempt took, or -1 */
  char instance[KITD_INSTANCE_MAX];     /* address it went to, or "" */
  char detail[KITD_ATTEMPT_DETAIL_MAX]; /* the attempt's detail text */
} kitd_attempt_error;

typedef struct kitd_ctx {
  /* private */
  int64_t deadline_ns_; /* absolute CLOCK_MONOTONIC ns; 0: none */
  const struct kitd_ctx *parent_;
  kitd_attempt_error *log_; /* caller's attempt log, or NULL */
  unsigned logcap_;
  unsigned nattempts_; /* every attempt, logged or not */
  int lasterr_;        /* code of the last attempt, 0 if none */
  int canceled_;       /* set with atomic builtins */
  int status_;         /* HTTP status of the last answer, or 0 */
  uint32_t magic_;     /* set by kitd_ctx_init: catches a ctx used
                                  before it */
  char detail_[KITD_CTX_DETAIL_MAX];
  char instance_[KITD_INSTANCE_MAX];
} kitd_ctx;

/* A ctx lives on the stack of every call (three in a retry with timeouts):
 * it must stay small, and fields must not be added past this bound. */
#ifdef __cplusplus
static_assert(sizeof(kitd_ctx) <= 512, "kitd_ctx must stay within 512 bytes");
#else
_Static_assert(sizeof(kitd_ctx) <= 512, "kitd_ctx must stay within 512 bytes");
#endif

/* CLOCK_MONOTONIC in nanoseconds. Thread-safety: any thread. */
KITD_API int64_t kitd_now_ns(void);

/* Initialise `c` with no deadline, not canceled, empty detail and instance,
 * no attempts and no attempt log. Every other kitd_ctx_* call needs an
 * initialised ctx: on one never initialised, kitd_ctx_err() (and so
 * kitd_endpoint_call()) returns KITD_EINVAL, getters return their empty
 * value and setters do nothing. The check reads a marker that init writes,
 * so it catches a ctx in zeroed or reused memory; uninitialised stack
 * memory that happens to hold the marker cannot be told apart.
 * NULL is ignored. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_init(kitd_ctx *c);

/* Initialise `child` as a context derived from `parent` (borrowed: it must
 * outlive `child`): the child is canceled when the parent is, and its
 * deadline is the earlier of the parent's and now + timeout_ms
 * (timeout_ms <= 0: the parent's alone). The child starts with its own
 * empty detail, instance and attempt count, and no attempt log: the
 * parent's log is not shared. A NULL parent makes a root ctx.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_init_child(kitd_ctx *child, const kitd_ctx *parent, int64_t timeout_ms);

/* Set the deadline to now + ms (ms <= 0 removes the deadline).
 * NULL is ignored. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_timeout_ms(kitd_ctx *c, int64_t ms);

/* Set an absolute deadline in kitd_now_ns() terms; 0 removes it.
 * NULL is ignored. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_deadline_ns(kitd_ctx *c, int64_t deadline_ns);

/* The effective deadline (the earliest along the parent chain), 0 if none
 * (or `c` is NULL). Thread-safety: any thread. */
KITD_API int64_t kitd_ctx_deadline_ns(const kitd_ctx *c);

/* Milliseconds left before the deadline (0 once passed), or -1 if none.
 * Thread-safety: any thread. */
KITD_API int64_t kitd_ctx_remaining_ms(const kitd_ctx *c);

/* Ask every call running under `c` (or a child of it) to stop.
 * NULL is ignored. Thread-safety: any thread, also while another thread
 * uses `c`. */
KITD_API void kitd_ctx_cancel(kitd_ctx *c);

/* 0 while the call may go on; KITD_ECANCELED once `c` or a parent is
 * canceled; KITD_ETIMEDOUT once the deadline has passed; KITD_EINVAL if
 * `c` or a parent was never initialised (see kitd_ctx_init()). A NULL `c`
 * gives 0: no ctx, nothing to stop on. Thread-safety: any thread. */
KITD_API int kitd_ctx_err(const kitd_ctx *c);

/* Sleep up to `ns`, waking early (and returning kitd_ctx_err()) if `c` is
 * canceled or its deadline comes first; 0 after a full sleep. A cancel of
 * `c` itself wakes the sleep at once, a cancel of a parent within 5 ms.
 * `c` may be NULL. Thread-safety: any thread. */
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

/* The address ("host:port") of the instance the last attempt went to: on
 * success, the one that served the call; "" if none (no attempt, or the
 * last found no endpoint). kitd_retry sets it. Borrowed: valid until `c`
 * changes. The setter copies `address` (NULL clears it; longer than
 * KITD_ADDRESS_MAX is cut). Thread-safety: one thread at a time per handle. */
KITD_API const char *kitd_ctx_instance(const kitd_ctx *c);
KITD_API void kitd_ctx_set_instance(kitd_ctx *c, const char *address);

/* Give `c` storage for `cap` attempt records (borrowed: `buf` must stay
 * valid while calls run under `c` and while you read the records). The
 * attempt count starts again from 0. Without a log (the default, or
 * buf NULL or cap 0) a ctx keeps only the count of attempts and the last
 * attempt's code. A child ctx never inherits the log.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_set_attempt_log(kitd_ctx *c, kitd_attempt_error *buf, unsigned cap);

/* Attempts recorded under `c` (by kitd_retry, or kitd_ctx_add_attempt()):
 * the count of all of them, logged or not. Thread-safety: one thread at a
 * time per handle. */
KITD_API unsigned kitd_ctx_attempt_count(const kitd_ctx *c);

/* The code of the last attempt recorded, 0 if none. Kept with or without a
 * log. Thread-safety: one thread at a time per handle. */
KITD_API int kitd_ctx_last_attempt_err(const kitd_ctx *c);

/* Attempt i (from 0) as logged, or NULL if it is not in the log: past the
 * count, past the log's capacity, or no log. Loop until NULL, not to the
 * count. Borrowed: it points into the log buffer.
 * Thread-safety: one thread at a time per handle. */
KITD_API const kitd_attempt_error *kitd_ctx_attempt(const kitd_ctx *c, unsigned i);

/* Record an attempt (used by kitd_retry; available to custom wrappers):
 * counts it, keeps its code as the last one, and if the log has room,
 * writes a record. `instance` and `detail` are copied (cut to fit) and may
 * be NULL. NULL `c` is ignored.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_ctx_add_attempt(kitd_ctx *c, int err, int status, int64_t latency_ns,
                                   const char *instance, const char *detail);

#ifdef __cplusplus
}
#endif
#endif
