/* SPDX-License-Identifier: MIT */
/* Internal: the parts of a kitd_client that its blocking call (client.c)
 * and its asynchronous call (async.c) share. Not API. */
#ifndef KITD_CLIENT_CLIENT_IMPL_H
#define KITD_CLIENT_CLIENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "kitd/client.h"

/* A user-controlled method or Content-Type must not grow a client without
 * bound: past this many variants a request that needs a new one fails. */
#define CLIENT_MAX_VARIANTS 8

struct variant {
  char *method, *ctype;
  kitd_endpointer *ep;
  kitd_balancer *lb;
  kitd_endpoint *call;
  kitd_http *h;                /* the transport (a reference), NULL with a custom factory */
  struct kitd__budget *budget; /* call's retry budget, shared by async calls */
  struct variant *next;
};

struct kitd_client {
  atomic_long refs;
  atomic_int ready; /* the first wait for the registry is over */
  char *service;
  kitd_instancer *in;
  struct variant *def;             /* the client's own method and type */
  _Atomic(struct variant *) extra; /* others, prepended, never removed */
  pthread_mutex_t mu;              /* serialises making variants */
  unsigned nvariants;
  kitd_codec codec;
  int custom_factory;  /* transport is the user's factory */
  kitd_http_opts http; /* copy; strings below */
  char *path;
  kitd_retry_opts retry;
  kitd_client_balancer balancer;
  unsigned balancer_flags;
  int64_t ready_timeout_ms;
  kitd_logger *lg;
  kitd_metrics *m;                         /* or NULL */
  _Atomic(struct kitd__client_async *) as; /* made by the first async call */
};

/* What the raw decoder hands back; kitd_client_resp.body points into it. */
struct raw_ans {
  size_t len;
  char *ctype;
  char body[];
};

/* The variant a call's request needs (the default one, or one for the
 * method and Content-Type a raw request names): 0 or KITD_EINVAL (detail
 * in ctx), KITD_ENOMEM. */
int kitd__client_variant(kitd_client *c, const void *request, kitd_ctx *ctx, struct variant **out);

/* Hand what the variant's endpoint produced (out) to the caller's response
 * as the codec says. */
void kitd__client_fill(kitd_client *c, kitd_ctx *ctx, void *out, void *response);

/* The wait for the registry's first answer is over: later calls skip it. */
void kitd__client_set_ready(kitd_client *c);

/* Free the client's pipeline (the last reference is gone). */
void kitd__client_destroy(kitd_client *c);

/* async.c: the last reference is gone; end the client's calls in flight
 * (KITD_ESTOPPED). Returns 1 when the loop will destroy the client (called
 * on the loop thread with calls in flight), 0 when the caller destroys it
 * now (every done has run). */
int kitd__client_async_stop(kitd_client *c);
/* async.c: release what async calls made (the loop reference). */
void kitd__client_async_free(kitd_client *c);

#endif
