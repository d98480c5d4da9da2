/* SPDX-License-Identifier: MIT */
/* libkitd: the Consul client (go-kit's sd/consul).
 *
 * kitd_consul is the client configuration: the agent's address, the ACL
 * token, TLS, datacenter, namespace and partition. kitd_consul_new() reads
 * the same environment variables as the consul CLI (CONSUL_HTTP_ADDR,
 * CONSUL_HTTP_TOKEN, CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_AUTH,
 * CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY, CONSUL_CACERT, CONSUL_CAPATH,
 * CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME,
 * CONSUL_NAMESPACE, CONSUL_PARTITION); the setters override them.
 * See docs/consul.md and docs/api/consul.md.
 *
 * The token is never logged and never put into an error text.
 *
 * Objects made from a kitd_consul (instancers, registrars) copy what they
 * need: the config may be changed or freed once they are made. */
#ifndef KITD_CONSUL_H
#define KITD_CONSUL_H

#include <stddef.h>
#include <stdint.h>

#include "ctx.h"
#include "export.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_consul kitd_consul;

/* Flags for kitd_consul_new(). */
#define KITD_CONSUL_NO_ENV 1u /* ignore the environment: defaults only */

/* A new client configuration: defaults (http://127.0.0.1:8500, no token,
 * no TLS), then the CONSUL_* environment unless KITD_CONSUL_NO_ENV.
 * Returns 0 and a new config in *out (caller frees with kitd_consul_free()),
 * or KITD_EINVAL, KITD_ENOMEM, or KITD_ECONFIG when a variable does not
 * parse; then the reason (naming the variable, never the token) is in
 * `ctx`'s detail when `ctx` is not NULL, and *out is untouched.
 * Thread-safety: any thread (reads the environment: not while another
 * thread calls setenv). */
KITD_API int kitd_consul_new(unsigned flags, kitd_ctx *ctx, kitd_consul **out);

/* NULL is allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_consul_free(kitd_consul *c);

/* The setters below override the environment. Strings are copied; NULL or
 * "" clears the setting. Each returns 0, KITD_EINVAL, KITD_ENOMEM or
 * KITD_ECONFIG (with the reason in `ctx` when it takes one); on failure the
 * previous setting stays.
 * Thread-safety (all setters and getters): one thread at a time per handle. */

/* Agent address, same forms as CONSUL_HTTP_ADDR: "host:port",
 * "http://host:port[/prefix]", "https://host:port[/prefix]",
 * "unix:///path/to.sock". Another scheme is KITD_ECONFIG. */
KITD_API int kitd_consul_set_address(kitd_consul *c, const char *addr, kitd_ctx *ctx);
/* ACL token, sent as X-Consul-Token. */
KITD_API int kitd_consul_set_token(kitd_consul *c, const char *token);
/* Read the token from a file now (whitespace trimmed). KITD_ECONFIG if the
 * file cannot be read or is empty. */
KITD_API int kitd_consul_set_token_file(kitd_consul *c, const char *path, kitd_ctx *ctx);
/* HTTP basic auth, "user:password" or "user". */
KITD_API int kitd_consul_set_auth(kitd_consul *c, const char *userpass);
/* Use https (on != 0). Once on, an http:// address does not turn it off. */
KITD_API int kitd_consul_set_tls(kitd_consul *c, int on);
/* Verify the agent's certificate (default on). */
KITD_API int kitd_consul_set_tls_verify(kitd_consul *c, int on);
/* CA file and/or CA directory (either may be NULL). */
KITD_API int kitd_consul_set_ca(kitd_consul *c, const char *cafile, const char *capath);
/* Client certificate and key for mutual TLS: both or neither
 * (KITD_ECONFIG otherwise). */
KITD_API int kitd_consul_set_client_cert(kitd_consul *c, const char *cert, const char *key,
                                         kitd_ctx *ctx);
/* Name to verify and send as SNI instead of the host (":port" dropped). */
KITD_API int kitd_consul_set_tls_server_name(kitd_consul *c, const char *name);
/* Datacenter for reads (dc=); default: the agent's. */
KITD_API int kitd_consul_set_datacenter(kitd_consul *c, const char *dc);
/* Enterprise namespace / partition (ns= / partition=), sent only when set. */
KITD_API int kitd_consul_set_namespace(kitd_consul *c, const char *ns);
KITD_API int kitd_consul_set_partition(kitd_consul *c, const char *partition);
/* Largest answer body accepted, in bytes (default 64 MiB; 0 restores the
 * default). A larger answer fails with KITD_ETOOBIG. */
KITD_API int kitd_consul_set_max_body(kitd_consul *c, size_t bytes);

/* The agent's base URL as it will be used ("http://127.0.0.1:8500",
 * "unix:///run/consul.sock"), without credentials. Borrowed: valid until
 * the next setter call or kitd_consul_free(). */
KITD_API const char *kitd_consul_address(const kitd_consul *c);

/* --- Watching a service: the Consul instancer --- */

typedef struct kitd_consul_instancer_opts {
  /* sizeof the struct, set by kitd_consul_instancer_opts_init(): fields
   * can then be added without breaking callers built against an older
   * header. An opts with another size is refused (KITD_EINVAL): always
   * call the _init function first. */
  size_t size;
  /* Only instances whose every check is passing (passing=1). Default 1. */
  int passing_only;
  /* Tags an instance must all carry (matched without regard to case).
   * Borrowed for the call; copied. */
  const char *const *tags;
  size_t ntags;
  /* Datacenter (dc=); NULL: the client's, else the agent's. */
  const char *datacenter;
  /* Blocking-query wait in ms. Default 5 minutes; Consul caps it at 10. */
  int64_t wait_ms;
  /* Largest answer; 0: the client's (default 64 MiB). */
  size_t max_body;
  /* Rate limit of the watch loop: a token bucket of 2 requests, refilled
   * one token every `min_interval_ms` (default 1000). Quick successive
   * changes are delivered at once; a service that changes all the time is
   * polled about once per interval. */
  int64_t min_interval_ms;
  /* Backoff after a failed request: `backoff_min_ms` (default 50) doubling
   * up to `backoff_max_ms` (default 10000), each with jitter (the delay is
   * drawn in [d/2, d]); reset after a good answer. The library's one
   * backoff, shared with the registrar and retry. */
  int64_t backoff_min_ms;
  int64_t backoff_max_ms;
  /* Meta key the zone of each record is read from, node meta first, then
   * service meta (kitd_instance_zone()); an instance without it has zone
   * "". NULL (default): node meta "zone", else service meta "zone".
   * Copied. */
  const char *zone_meta_key;
} kitd_consul_instancer_opts;

/* Fill `o` with the defaults above, size included. Thread-safety: any
 * thread. */
KITD_API void kitd_consul_instancer_opts_init(kitd_consul_instancer_opts *o);

/* A new instancer watching `service` through blocking queries on
 * /v1/health/service/<service>, on its own thread. Each instance is a
 * record (instance.h): its address is Service.Address, else Node.Address,
 * with the port (IPv6 in brackets); its status the worst of its checks;
 * its weight Service.Weights.Passing or .Warning by status (an instance
 * whose weight is 0 is left out); its tags, service meta, node, node meta
 * and datacenter as Consul gives them; its zone from `zone_meta_key`.
 * A failed watch (agent down, error status, bad answer) becomes an error
 * event carrying the last good set, and the watch retries with backoff.
 * The event's detail names the agent and the failure, e.g. "consul:
 * connect 127.0.0.1:8500 refused"; kitd_instancer_describe() names the
 * service and the filter, e.g. "passing instances of 'users' with tags
 * [v2] in dc2". A subscriber's callback may call kitd_instancer_stop(): the
 * watch thread then ends by itself once the callback returns.
 * `o` may be NULL (defaults). `c` and `o` are copied; `lg` is borrowed (may
 * be NULL) and must outlive the instancer.
 * Returns 0 and a new instancer in *out (free with kitd_instancer_free()),
 * or KITD_EINVAL (also an `o` not filled by
 * kitd_consul_instancer_opts_init()), KITD_ENOMEM, KITD_EINTERNAL (no
 * thread). Thread-safety: any thread. */
KITD_API int kitd_consul_instancer_new(const kitd_consul *c, const char *service,
                                       const kitd_consul_instancer_opts *o, kitd_logger *lg,
                                       kitd_instancer **out);

/* One non-blocking lookup of `service` (for command-line tools): the
 * set sorted by address, one record per address, in *instances (*count
 * records; caller frees with kitd_instance_list_free()). `o` may be NULL
 * (else filled by kitd_consul_instancer_opts_init(): KITD_EINVAL
 * otherwise); only passing_only, tags, datacenter, max_body and
 * zone_meta_key are used. `ctx` may be NULL; its deadline
 * (default 30 s) and cancel flag are honoured and it receives the detail of
 * a failure. Returns 0, KITD_EINVAL, KITD_ENOMEM, KITD_ECONNECT, KITD_EHTTP,
 * KITD_EACL, KITD_EIO, KITD_EPROTO, KITD_ETOOBIG, KITD_ETLS, KITD_ETIMEDOUT
 * or KITD_ECANCELED. Thread-safety: any thread. */
KITD_API int kitd_consul_lookup(const kitd_consul *c, const char *service,
                                const kitd_consul_instancer_opts *o, kitd_ctx *ctx,
                                kitd_instance ***instances, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
