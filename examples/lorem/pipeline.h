/* SPDX-License-Identifier: MIT */
/* The client side of the lorem example, shared by lorem-client, the gateway
 * and the benchmark: go-kit's pipeline, layer by layer.
 *
 *   instancer (Consul "lorem" passing + tag, or a static list)
 *     -> endpointer (kitd_http factory: POST /lorem/{type}/{min}/{max})
 *     -> round robin (KITD_RR_GLOBAL: a strict rotation across threads)
 *     -> retry (attempts, per-attempt timeout, overall timeout)
 *
 * A response is a lorem_response (free with lorem_response_free()): the
 * message and the instance that answered. */
#ifndef LOREM_PIPELINE_H
#define LOREM_PIPELINE_H

#include <stdint.h>

#include <kitd/kitd.h>

#include "lorem/lorem.h"

typedef struct lorem_request {
  lorem_type type;
  int min, max;
} lorem_request;

typedef struct lorem_response {
  char *message;                    /* NUL-terminated */
  char upstream[KITD_INSTANCE_MAX]; /* "host:port" that answered */
} lorem_response;

void lorem_response_free(lorem_response *r);

struct lorem_pipeline_conf {
  const char *static_list;    /* "host:port,host:port": no Consul; NULL: Consul */
  const char *consul_addr;    /* NULL: CONSUL_HTTP_ADDR, else 127.0.0.1 */
  const char *consul_port;    /* NULL: 8500 */
  const char *service;        /* default "lorem" */
  const char *tag;            /* default "lorem"; "" for none */
  unsigned attempts;          /* default 3 */
  int64_t attempt_timeout_ms; /* default 1000 */
  int64_t timeout_ms;         /* overall; default 3000 */
  unsigned rr_flags;          /* KITD_RR_GLOBAL (default) or KITD_RR_PER_THREAD */
  kitd_logger *lg;            /* may be NULL */
  const char *source;         /* a registry source string (consul://, etcd://,
                                dns+srv://, file://; see kitd/source.h):
                                wins over static_list and the Consul flags */
  kitd_metrics *metrics;      /* count the pipeline and its watch here, under
                                the service name; NULL: not counted */
  int async;                  /* build it as a kitd_client (the same stages
                                and options) for lorem_pipeline_call_async()
                                instead of lorem_pipeline_call() */
};

typedef struct lorem_pipeline lorem_pipeline;

/* Build the pipeline. Returns 0 or a KITD_E* code (logged). */
int lorem_pipeline_new(const struct lorem_pipeline_conf *c, lorem_pipeline **out);

/* Wait up to timeout_ms for a non-empty set of instances. Returns the
 * count, or 0 on timeout. */
size_t lorem_pipeline_wait(lorem_pipeline *p, int64_t timeout_ms);

/* Instances in the current snapshot. */
size_t lorem_pipeline_count(lorem_pipeline *p);

/* Why the pipeline has no instance (the registry's error, or what matched
 * nothing), into buf; returns buf. */
const char *lorem_pipeline_explain(lorem_pipeline *p, char *buf, size_t cap);

/* One call through retry. `ctx` receives attempts, status and detail.
 * Returns 0 and *out (caller frees with lorem_response_free()), or a
 * KITD_E* code. Thread-safe. */
int lorem_pipeline_call(lorem_pipeline *p, kitd_ctx *ctx, const lorem_request *rq,
                        lorem_response **out);

/* The same call without a thread: returns 0 and done(arg, rc) runs later,
 * once, on libkitd's loop thread (it must not block), with *out set on
 * rc == 0 (its upstream is empty: the instance is kitd_ctx_instance(ctx));
 * or returns an error and done never runs. ctx and out must stay valid
 * until done. Only for a pipeline built with `async`. */
int lorem_pipeline_call_async(lorem_pipeline *p, kitd_ctx *ctx, const lorem_request *rq,
                              lorem_response **out, kitd_client_done_fn done, void *arg);

/* Free the pipeline. An async pipeline's calls still in flight end first
 * (KITD_ESTOPPED), their done callbacks run before this returns. */
void lorem_pipeline_free(lorem_pipeline *p);

#endif
