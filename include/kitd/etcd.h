/* SPDX-License-Identifier: MIT */
/* libkitd: the etcd v3 client (go-kit's sd/etcdv3).
 *
 * kitd_etcd is the client configuration: the endpoint URLs, the user and
 * password, TLS and timeouts. It talks to etcd through etcd's JSON gateway
 * (the /v3/ paths of etcd 3.4 and later) over libcurl. From it you make
 * instancers, which watch a key prefix, and registrars, which keep one key
 * alive under a lease. See docs/api/etcd.md.
 *
 * The password and the auth token are never logged and never put into an
 * error text.
 *
 * Objects made from a kitd_etcd copy what they need: the config may be
 * freed once they are made. */
#ifndef KITD_ETCD_H
#define KITD_ETCD_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "export.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_etcd kitd_etcd;

/* Client options. Fill with kitd_etcd_opts_init() first: it sets `size`,
 * so that fields can be appended without breaking programs built against
 * an older header. Strings are borrowed for the call (copied). */
typedef struct kitd_etcd_opts {
  size_t size; /* set by kitd_etcd_opts_init() */
  /* Comma-separated endpoint URLs, "http://host:port" or
   * "https://host:port" (IPv6 hosts in brackets). Default
   * "http://127.0.0.1:2379". On a failure the next one is tried. */
  const char *endpoints;
  /* etcd user and password (/v3/auth/authenticate); NULL: no auth. */
  const char *user;
  const char *password;
  /* TLS: CA file to verify the server with (NULL: the system's), client
   * certificate and key for mutual TLS (both or neither). */
  const char *ca_file;
  const char *cert_file;
  const char *key_file;
  int tls_verify;             /* default 1 */
  int64_t connect_timeout_ms; /* default 5000 */
  int64_t request_timeout_ms; /* one unary request; default 10000 */
  size_t max_body;            /* largest answer or watch message; default 64 MiB */
} kitd_etcd_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_etcd_opts_init(kitd_etcd_opts *o);

/* A new client configuration from `o` (NULL: the defaults). Returns 0 and
 * a new config in *out (caller frees with kitd_etcd_free()), KITD_EINVAL,
 * KITD_ENOMEM, or KITD_ECONFIG when an option is wrong (an endpoint that
 * is not an http(s) URL, a certificate without its key, an `o->size` this
 * library does not know); then the reason is in `ctx`'s detail when `ctx`
 * is not NULL, and *out is untouched. Thread-safety: any thread. */
KITD_API int kitd_etcd_new(const kitd_etcd_opts *o, kitd_ctx *ctx, kitd_etcd **out);

/* NULL is allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_etcd_free(kitd_etcd *c);

/* The first endpoint URL, for messages. Borrowed: valid until
 * kitd_etcd_free(). Thread-safety: any thread. */
KITD_API const char *kitd_etcd_endpoint(const kitd_etcd *c);

/* --- Watching a key prefix: the etcd instancer --- */

typedef struct kitd_etcd_instancer_opts {
  size_t size; /* set by kitd_etcd_instancer_opts_init() */
  /* Backoff after a failure: `backoff_min_ms` (default 100) doubling up to
   * `backoff_max_ms` (default 10000), jittered in [d/2, d]; reset once a
   * watch is established again. */
  int64_t backoff_min_ms;
  int64_t backoff_max_ms;
} kitd_etcd_instancer_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_etcd_instancer_opts_init(kitd_etcd_instancer_opts *o);

/* A new instancer for the keys under `prefix` (copied; not empty), on its
 * own thread: one /v3/kv/range, then one long-lived /v3/watch stream from
 * the next revision. Each key's value is one instance, either
 * "host:port" or a JSON object
 *   {"address": "host:port", "weight": 2, "tags": ["a"], "meta": {"k": "v"},
 *    "zone": "z"}
 * (only "address" required). A value that is neither is logged and
 * skipped; the other keys still count. After a broken stream the watch
 * resumes from the revision after the last one it saw, so no change is
 * lost or seen twice; if that revision was compacted it lists the prefix
 * again. A failure (etcd down, an error answer) is an error event that
 * carries the last good set, and the watch retries with backoff.
 * `c` and `o` (NULL: defaults) are copied; `lg` is borrowed (may be NULL)
 * and must outlive the instancer. Returns 0 and a new instancer in *out
 * (free with kitd_instancer_free()), KITD_EINVAL, KITD_ENOMEM, KITD_ECONFIG
 * (unknown `o->size`) or KITD_EINTERNAL (no thread).
 * Thread-safety: any thread. */
KITD_API int kitd_etcd_instancer_new(const kitd_etcd *c, const char *prefix,
                                     const kitd_etcd_instancer_opts *o, kitd_logger *lg,
                                     kitd_instancer **out);

/* --- Registering one key under a lease: the etcd registrar --- */

typedef struct kitd_etcd_registrar kitd_etcd_registrar;

typedef struct kitd_etcd_registrar_opts {
  size_t size; /* set by kitd_etcd_registrar_opts_init() */
  /* Lease TTL in seconds (default 10; etcd raises it to at least 2). The
   * lease is renewed every ttl_s / 3 seconds. */
  int64_t ttl_s;
  /* Backoff while etcd is down or refuses (default 100 to 5000 ms). */
  int64_t backoff_min_ms;
  int64_t backoff_max_ms;
} kitd_etcd_registrar_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_etcd_registrar_opts_init(kitd_etcd_registrar_opts *o);

/* Put `key` = `value` (both copied; key not empty; value as the instancer
 * reads it, e.g. "10.0.0.1:8080") under a lease of its own, and keep it
 * there on a thread: the lease is renewed at a third of its TTL, and
 * granted again and the key put again when etcd has lost it (expired,
 * revoked). When the process dies the key goes away within the TTL.
 * `c` and `o` (NULL: defaults) are copied; `lg` is borrowed (may be NULL)
 * and must outlive the registrar. Returns 0 and a new registrar in *out
 * (free with kitd_etcd_registrar_free()), KITD_EINVAL, KITD_ENOMEM,
 * KITD_ECONFIG (unknown `o->size`) or KITD_EINTERNAL. The first
 * registration happens in the background: see
 * kitd_etcd_registrar_wait_registered(). Thread-safety: any thread. */
KITD_API int kitd_etcd_registrar_new(const kitd_etcd *c, const char *key, const char *value,
                                     const kitd_etcd_registrar_opts *o, kitd_logger *lg,
                                     kitd_etcd_registrar **out);

/* Wait up to timeout_ms (< 0: forever) until the key is in etcd under our
 * lease. Returns 0, KITD_ETIMEDOUT or KITD_ESTOPPED.
 * Thread-safety: any thread. */
KITD_API int kitd_etcd_registrar_wait_registered(kitd_etcd_registrar *r, int64_t timeout_ms);

/* 1 if the key is registered (as far as we know), else 0; *last_err (may
 * be NULL) gets the last error met (0 if none). Thread-safety: any thread. */
KITD_API int kitd_etcd_registrar_registered(kitd_etcd_registrar *r, int *last_err);

/* Stop the thread, delete the key and revoke the lease (each request
 * waits at most 1 s for etcd), and free. NULL is allowed.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_etcd_registrar_free(kitd_etcd_registrar *r);

#ifdef __cplusplus
}
#endif
#endif
