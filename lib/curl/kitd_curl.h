/* SPDX-License-Identifier: MIT */
/* Internal: the one libcurl module, shared by lib/consul and lib/http. Not API.
 *
 * It owns the three things both transports used to do each their own way:
 * libcurl's global set-up (global.c), the perform loop that waits on a multi
 * handle and can be cut short by another thread, a ctx deadline or a cancel
 * flag (perform.c), and the CURLcode -> KITD_E* map (errors.c). It also
 * builds URLs in a growable string (str.c). It knows lib/core only.
 *
 * The header is not named curl.h: with -Ilib, <curl/curl.h> would find it. */
#ifndef KITD_CURL_KITD_CURL_H
#define KITD_CURL_KITD_CURL_H

#include <curl/curl.h>
#include <stddef.h>

#include "kitd/ctx.h"

/* --- global set-up (global.c) --- */

/* Take a reference on libcurl's global state: the first one runs
 * curl_global_init(). Returns 0 or KITD_EINTERNAL (no reference taken).
 * Every kitd_http, every Consul connection and kitd_global_init() hold one.
 * Thread-safety: any thread (a mutex orders the calls among libkitd's
 * objects; an application calling curl_global_init itself on another thread
 * still races with it before libcurl 7.84). */
int kitd__curl_acquire(void);
/* Drop a reference: the last one runs curl_global_cleanup(). Call it only
 * after a successful kitd__curl_acquire(). Thread-safety: any thread. */
void kitd__curl_release(void);

/* --- the perform loop (perform.c) --- */

/* What may end a transfer before libcurl does. */
typedef struct kitd__curl_stop {
  const kitd_ctx *ctx; /* deadline and cancel flag, read between waits; NULL: none */
  const int *flag;     /* nonzero (read atomically): stop; NULL: none */
  /* Wait with curl_multi_poll(), which kitd__curl_wake() interrupts at
   * once. Otherwise curl_multi_wait(), which does not poll the multi's
   * wake-up pipe: one fd fewer per wait, for callers with no other thread
   * to wake them (kitd_http's calls, which read the ctx instead). */
  int wakeable;
} kitd__curl_stop;

/* Add `easy` to `multi`, run it to its end and remove it again. Returns 0
 * when libcurl finished the transfer, its result in *cc (which may be an
 * error: map it with kitd__curl_code()); else KITD_ESTOPPED (the flag),
 * the ctx's error (KITD_ECANCELED, KITD_ETIMEDOUT), KITD_ENOMEM or
 * KITD_EINTERNAL (the multi handle failed), with *cc untouched.
 * Between waits it checks the flag and the ctx; a wait lasts at most 10 ms
 * while there is a ctx, less when libcurl's own timers are due sooner.
 * Thread-safety: one thread at a time per multi handle. */
int kitd__curl_perform(CURLM *multi, CURL *easy, const kitd__curl_stop *stop, CURLcode *cc);

/* Wake a kitd__curl_perform() waiting on `multi` (wakeable only), so that
 * it sees a flag set just before. Thread-safety: any thread. */
void kitd__curl_wake(CURLM *multi);

/* --- a multi handle driven by an event loop (multi.c) --- */

/* Many transfers at once on one multi handle, through libcurl's socket
 * interface: the loop watches the sockets and the one timer libcurl asks
 * for, and calls kitd__curl_multi_action() when one is ready. The multi's
 * connection cache keeps keep-alive connections between transfers. */
typedef struct kitd__curl_multi kitd__curl_multi;

/* What the loop does for libcurl. watch: start, change or (what ==
 * CURL_POLL_REMOVE) stop watching fd for CURL_POLL_IN, _OUT or _INOUT;
 * 0 or a KITD_E* code. timer: call kitd__curl_multi_action(m,
 * CURL_SOCKET_TIMEOUT, 0) in `ms` ms (0: soon, from the loop, not from
 * inside this callback); -1: no timer. */
typedef struct kitd__curl_loop_ops {
  int (*watch)(void *arg, curl_socket_t fd, int what);
  void (*timer)(void *arg, long ms);
  void *arg;
} kitd__curl_loop_ops;

/* One transfer: `easy` set up by the caller; done runs (from
 * kitd__curl_multi_action) when libcurl ends it, after it was taken out
 * of the multi, with its result (map it with kitd__curl_code()). */
struct kitd__curl_xfer {
  CURL *easy;
  void (*done)(struct kitd__curl_xfer *x, CURLcode cc);
};

/* A new driver (takes a reference on libcurl's global state): 0,
 * KITD_ENOMEM or KITD_EINTERNAL. `ops` is copied. */
int kitd__curl_multi_new(const kitd__curl_loop_ops *ops, kitd__curl_multi **out);
/* Free it; no transfer may still be in it. NULL is allowed. */
void kitd__curl_multi_free(kitd__curl_multi *m);
/* Start x (its easy handle's CURLOPT_PRIVATE becomes x): 0, KITD_ENOMEM
 * or KITD_EINTERNAL. */
int kitd__curl_multi_add(kitd__curl_multi *m, struct kitd__curl_xfer *x);
/* Stop x before its end (its connection is closed); done does not run. */
void kitd__curl_multi_remove(kitd__curl_multi *m, struct kitd__curl_xfer *x);
/* fd is ready (events: CURL_CSELECT_IN, _OUT, _ERR bits), or fd
 * CURL_SOCKET_TIMEOUT: the timer is due. Runs done of every transfer
 * that ended. All of this: one thread at a time per multi. */
void kitd__curl_multi_action(kitd__curl_multi *m, curl_socket_t fd, int events);

/* --- CURLcode -> KITD_E* (errors.c) --- */

/* The KITD_E* code for a transfer that ended with `cc` (0 for CURLE_OK).
 * `write_err` is the code the caller's write callback recorded when it
 * refused data (KITD_ETOOBIG, KITD_ENOMEM), 0 if it never refused: it is
 * what CURLE_WRITE_ERROR means. The table and its reasons are in errors.c.
 * Thread-safety: any thread. */
int kitd__curl_code(CURLcode cc, int write_err);

/* --- a growable string for URLs (str.c) --- */

typedef struct kitd__curl_str {
  char *data; /* NUL-terminated once anything was added; NULL before */
  size_t len, cap;
  int err; /* first failure (KITD_ENOMEM, KITD_EINVAL): later adds do nothing */
} kitd__curl_str;

/* Append formatted text. Failures are kept in s->err, so a caller checks
 * once at the end. */
void kitd__curl_str_printf(kitd__curl_str *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append `v` percent-encoded for a query value or path segment (RFC 3986
 * unreserved bytes as they are, every other byte as %XX). */
void kitd__curl_str_escape(kitd__curl_str *s, const char *v);
/* The same encoding into dst (room for the result and a NUL), or with dst
 * NULL only the length. Returns the length, without the NUL. */
size_t kitd__curl_escape(char *dst, const char *v);
/* Free the text and reset s. */
void kitd__curl_str_free(kitd__curl_str *s);

#endif
