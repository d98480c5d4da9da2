/* SPDX-License-Identifier: MIT */
/* libkitd: kitd_client, one handle per service.
 *
 * A client owns the whole pipeline of one service: the registry watch
 * (instancer), the endpointer, the balancer, retry and the transport
 * (kitd_http unless a custom factory is given). It is built from one
 * options value and called with kitd_client_call():
 *
 *   kitd_client_opts o;
 *   kitd_client_opts_init(&o);
 *   o.service = "users";
 *   o.path = "/users/42";
 *   kitd_client *c;
 *   kitd_client_new(&o, &c);            // watches Consul (CONSUL_HTTP_ADDR)
 *   kitd_client_resp r;
 *   kitd_client_call(c, &ctx, NULL, &r); // GET /users/42 on an instance
 *   kitd_client_resp_clear(&r);
 *   kitd_client_free(c);
 *
 * Codecs: KITD_CODEC_RAW (the default) sends a kitd_client_req and fills a
 * kitd_client_resp; KITD_CODEC_JSON sends a json_t and returns a new json_t
 * (jansson); KITD_CODEC_CUSTOM uses kitd_http's path/encode/decode
 * callbacks given in `http`.
 *
 * The first call waits (up to ready_timeout_ms, and never past the ctx's
 * deadline) for the registry's first answer, so no wait loop is needed.
 *
 * Lifetime: a client is reference-counted; kitd_client_free() drops the
 * caller's reference, and a call in progress on another thread keeps what
 * it uses alive. See docs/api/client.md. */
#ifndef KITD_CLIENT_H
#define KITD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "consul.h"
#include "ctx.h"
#include "endpoint.h"
#include "export.h"
#include "http.h"
#include "instancer.h"
#include "log.h"
#include "metrics.h"
#include "retry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_client kitd_client;

/* A shared Consul watcher: one thread and at most `max_blocking` agent
 * connections for the watches of every client given it (a kitd_directory
 * makes its own). Consul refuses a client address past
 * limits.http_max_conns_per_client (200 by default). */
typedef struct kitd_consul_watcher kitd_consul_watcher;

/* How requests and answers are encoded. */
typedef enum kitd_codec {
  KITD_CODEC_RAW = 0,   /* request: const kitd_client_req * (NULL: an empty
                          request); response: kitd_client_resp * to fill */
  KITD_CODEC_JSON = 1,  /* request: const json_t * (NULL: no body);
                          response: json_t ** (a new reference: json_decref) */
  KITD_CODEC_CUSTOM = 2 /* `http`'s callbacks; response: void ** receiving
                           what decode produced */
} kitd_codec;

/* The balancer. */
typedef enum kitd_client_balancer {
  KITD_BALANCE_ROUND_ROBIN = 0, /* with balancer_flags (KITD_RR_*) */
  KITD_BALANCE_RANDOM = 1
} kitd_client_balancer;

/* A raw request. Every field may be left zero. */
typedef struct kitd_client_req {
  const char *method; /* NULL: the client's method */
  const char *path;   /* NULL: the client's path; else '/' then
                               visible ASCII (query allowed) */
  const char *body;   /* `len` bytes; NULL: no body */
  size_t len;
  const char *content_type; /* of the body; NULL: the client's */
} kitd_client_req;

/* A raw answer, filled by kitd_client_call(); release its memory with
 * kitd_client_resp_clear(). */
typedef struct kitd_client_resp {
  int status; /* HTTP status (2xx, 3xx or 4xx: a 5xx answer
                               is a failed attempt, retried elsewhere) */
  char *body; /* `len` bytes plus a NUL not counted */
  size_t len;
  char *content_type; /* the answer's Content-Type, or NULL */
} kitd_client_resp;

typedef struct kitd_client_opts {
  size_t size;         /* sizeof(kitd_client_opts), set by _init */
  const char *service; /* the service name; copied; required */
  /* The registry, one of (tried in this order):
   *  - source (below): a source string naming any registry;
   *  - instancer: any instancer (a reference is taken);
   *  - consul: a Consul configuration (copied at kitd_client_new());
   *  - neither: Consul from the environment (CONSUL_HTTP_ADDR, ...). */
  kitd_instancer *instancer;
  const kitd_consul *consul;
  kitd_consul_watcher *watcher;            /* when set (and no instancer): watch
                                   through this shared watcher, with its
                                   Consul configuration (`consul` is then
                                   ignored), instead of a thread of its own;
                                   the client holds a reference on it */
  const kitd_consul_instancer_opts *watch; /* Consul watch options; NULL:
                                              defaults; copied */
  /* Transport: kitd_http with these, unless `factory` is set. */
  const char *method;          /* default "GET" (RAW without body), "POST"
                               otherwise; copied */
  const char *path;            /* default "/"; copied */
  const char *content_type;    /* default "application/json"; copied */
  kitd_codec codec;            /* default KITD_CODEC_RAW */
  const kitd_http_opts *http;  /* full kitd_http options (callbacks for
                                 KITD_CODEC_CUSTOM, timeouts, scheme);
                                 copied; method/path/content_type above
                                 override its fields when set */
  const kitd_factory *factory; /* a custom transport: endpoints for each
                                  instance; the request and response go to
                                  it unchanged. Copied; its release runs on
                                  every path. */
  kitd_client_balancer balancer;
  unsigned balancer_flags;      /* KITD_RR_GLOBAL (default) or KITD_RR_PER_THREAD */
  const kitd_retry_opts *retry; /* NULL: 3 attempts, 10 s overall, 5xx and
                                   connection errors retried; copied */
  int64_t ready_timeout_ms;     /* how long a call waits for the registry's
                               first answer (default 5000) */
  kitd_logger *logger;          /* borrowed, must outlive the client; NULL: none */
  const char *source;           /* the registry as a source string (source.h:
                               consul://HOST:PORT/SERVICE?tag=T,
                               etcd://HOST:PORT/PREFIX, dns+srv://…,
                               file:///PATH); when set it wins over
                               instancer, consul and watcher; `watch` gives
                               its Consul options; copied at _new */
  kitd_metrics *metrics;        /* count the pipeline in this registry
                               (metrics.h) under the service name: calls,
                               instances and the watch; the client holds a
                               reference. NULL (default): not counted */
} kitd_client_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_client_opts_init(kitd_client_opts *o);

/* A new client. Returns 0 and a new client in *out (release with
 * kitd_client_free()), or KITD_EINVAL (no service, a name Consul would
 * refuse, an unknown size field, bad http or retry options), KITD_ENOMEM,
 * KITD_ECONFIG (the environment's Consul settings do not parse) or
 * KITD_EINTERNAL. The watch starts at once. Thread-safety: any thread. */
KITD_API int kitd_client_new(const kitd_client_opts *o, kitd_client **out);

/* Call the service: pick an instance, call it, retry elsewhere on failure.
 * `ctx` may not be NULL; its deadline bounds the whole call, waiting for
 * the first registry answer included. `request` and `response` depend on
 * the codec (see kitd_codec). Returns 0 (the response is filled), or the
 * codes of kitd_retry_new()'s endpoint (KITD_ENOENDPOINTS with the reason
 * in the ctx detail, KITD_ECONNECT, KITD_EHTTP, KITD_ETIMEDOUT, ...), or
 * KITD_EINVAL. On failure the response is left untouched.
 * Thread-safety: any thread. */
KITD_API int kitd_client_call(kitd_client *c, kitd_ctx *ctx, const void *request, void *response);

/* Called once when an asynchronous call ends, on the library's loop thread.
 * rc: what kitd_client_call() would have returned for the same call; on 0 the
 * response is filled. It must not block; it may start other async calls. */
typedef void (*kitd_client_done_fn)(void *arg, int rc);

/* Start a call and return at once: 0 (done will be called exactly once,
 * later, never from inside this function) or an error code (done is never
 * called). request is encoded before return (the caller may free it then);
 * ctx and response must stay valid until done runs.
 *
 * The call is kitd_client_call()'s, run without a thread of its own: the
 * first registry wait, the balancer's pick and done, retries within the
 * retry options and budget, the overall deadline, the ctx's cancel flag,
 * its detail, status, served instance and attempt log, and the codecs are
 * the same. It runs on libkitd's loop thread (one epoll loop, started by
 * the first async call and stopped when the last client that made one is
 * freed), which drives the fast path's keep-alive sockets and a libcurl
 * multi handle without blocking. A cancel is seen within 10 ms. Path and
 * encode callbacks run here, once; decode runs on the loop thread. Not
 * done asynchronously: hedging. Async and blocking calls share one retry
 * budget. See docs/api/client.md.
 * Returns 0, or KITD_EINVAL (NULL c, ctx or done; a ctx never
 * initialised; a client with a custom factory; a bad method or
 * Content-Type), the ctx's error when it is already done (KITD_ECANCELED,
 * KITD_ETIMEDOUT), what the path or encode callback returned, KITD_ENOMEM,
 * KITD_ESTOPPED (the client is being freed) or KITD_EINTERNAL (the loop
 * could not start).
 * Freeing: when kitd_client_free() drops the last reference, the client's
 * calls still in flight end with KITD_ESTOPPED (done runs for each), and
 * kitd_client_free() returns after their done callbacks have run (do not
 * hold a lock done takes), unless it is called from a done callback (then
 * they end just after it, and the loop frees the client).
 * done may call kitd_client_call_async(), kitd_client_free() and
 * kitd_client_resp_clear(); not kitd_client_call() or anything else that
 * waits. Thread-safety: any thread. */
KITD_API int kitd_client_call_async(kitd_client *c, kitd_ctx *ctx, const void *request,
                                    void *response, kitd_client_done_fn done, void *arg);

/* Wait up to timeout_ms (< 0: no limit) for the registry's first answer.
 * Returns 0, or what kitd_instancer_wait_ready() returns.
 * Thread-safety: any thread. */
KITD_API int kitd_client_wait_ready(kitd_client *c, int64_t timeout_ms);

/* The service name. Borrowed, valid as long as the client.
 * Thread-safety: any thread. */
KITD_API const char *kitd_client_service(const kitd_client *c);

/* Instances in the client's current set. Thread-safety: any thread. */
KITD_API size_t kitd_client_count(kitd_client *c);

/* The instancer the client watches (borrowed, valid as long as the
 * client). Thread-safety: any thread. */
KITD_API kitd_instancer *kitd_client_instancer(kitd_client *c);

/* Add a reference; returns `c`. Thread-safety: any thread. */
KITD_API kitd_client *kitd_client_ref(kitd_client *c);

/* Drop a reference; the last one stops the watch and frees the pipeline.
 * Calls running on other threads keep what they use. NULL is allowed.
 * Thread-safety: any thread (one call per reference). */
KITD_API void kitd_client_free(kitd_client *c);

/* Free what kitd_client_call() put in `r` and zero it. NULL is allowed.
 * Thread-safety: one thread at a time per handle. */
KITD_API void kitd_client_resp_clear(kitd_client_resp *r);

/* A new shared watcher on `c` (copied; NULL: the environment, as
 * kitd_consul_new() reads it). max_blocking: the most agent connections it
 * holds (0: 100; at least 7): up to max_blocking - 6 services hold a
 * blocking query each, the others are refetched when
 * /v1/health/state/any or /v1/catalog/services says they changed. Its
 * thread starts at once. `lg` is borrowed and must outlive it. Returns 0
 * and a new watcher in *out (kitd_consul_watcher_free()), or KITD_EINVAL,
 * KITD_ENOMEM, KITD_ECONFIG or KITD_EINTERNAL. Thread-safety: any thread. */
KITD_API int kitd_consul_watcher_new(const kitd_consul *c, unsigned max_blocking, kitd_logger *lg,
                                     kitd_consul_watcher **out);

/* Drop the caller's reference: clients made on the watcher keep it (and
 * its thread) until they are freed. NULL is allowed. Thread-safety: any
 * thread but the watcher's own (not from a subscriber callback). */
KITD_API void kitd_consul_watcher_free(kitd_consul_watcher *w);

/* Is `name` a service name Consul accepts in a path: not empty, at most
 * 255 bytes, no '/', no control bytes? 1 or 0. Thread-safety: any thread. */
KITD_API int kitd_service_name_ok(const char *name);

#ifdef __cplusplus
}
#endif
#endif
