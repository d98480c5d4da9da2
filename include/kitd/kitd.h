/* SPDX-License-Identifier: MIT */
/* libkitd: client-side service discovery and load balancing for C.
 *
 * The umbrella header: include it, or only the layers you use.
 *
 * Ownership words used in every header:
 *  - new:      the caller owns the result and releases it with the function
 *              named in the comment.
 *  - borrowed: valid until the stated event; do not free it.
 *  - copied:   libkitd copies the input; the caller may free it on return.
 *  - takes:    ownership passes to libkitd on every path, failure included,
 *              unless the comment says otherwise.
 * Every _free and _unref accepts NULL. Every fallible call returns 0 or a
 * negative KITD_E* code (error.h); a call that fails leaves its out
 * parameters untouched and never runs the callbacks it was given.
 *
 * Threads: each function's comment ends with its thread-safety line; the
 * list of exceptions is in docs/threads.md. */
#ifndef KITD_KITD_H
#define KITD_KITD_H

#include "export.h"
#include "version.h"
#include "error.h"
#include "ctx.h"
#include "log.h"
#include "metrics.h"
#include "endpoint.h"
#include "instance.h"
#include "instancer.h"
#include "endpointer.h"
#include "balancer.h"
#include "retry.h"
#include "http.h"
#include "etcd.h"
#include "client.h"
#include "directory.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Take a reference on libcurl's global state (curl_global_init runs for
 * the first one). Call once before other threads start if you use the
 * Consul or HTTP layers. libkitd's own objects also take one while they
 * live, under a lock, so creating them from several threads is safe; this
 * call keeps the state up between them, and makes the set-up happen before
 * any other thread of yours uses libcurl (curl_global_init is not
 * thread-safe before libcurl 7.84). Returns 0 or KITD_EINTERNAL.
 * Thread-safety: before other threads start. */
KITD_API int kitd_global_init(void);

/* Undo kitd_global_init(): drop its reference; curl_global_cleanup runs when
 * the last libkitd object holding one is freed as well.
 * Thread-safety: before other threads start. */
KITD_API void kitd_global_cleanup(void);

#ifdef __cplusplus
}
#endif
#endif
