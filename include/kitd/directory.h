/* SPDX-License-Identifier: MIT */
/* libkitd: kitd_directory, services by name, on demand.
 *
 * A directory makes a kitd_client for a service name the first time it is
 * called, caches it, and evicts clients unused for idle_ms and, past
 * max_clients, the least recently used one. Every client shares one
 * registry configuration and one client template (transport, codec,
 * balancer, retry):
 *
 *   kitd_directory *dir;
 *   kitd_directory_new(NULL, &dir);               // Consul from the environment
 *   kitd_client_req rq = {.method = "GET", .path = "/users/42"};
 *   kitd_client_resp r;
 *   kitd_directory_call(dir, "users", &ctx, &rq, &r);
 *   kitd_client_resp_clear(&r);
 *   kitd_directory_free(dir);
 *
 * Consul watches of a directory share one thread and at most max_blocking
 * connections to the agent (Consul refuses a client past 200 by default).
 *
 * The lookup of a cached name takes no lock: it reads an immutable hash
 * table published with an atomic pointer and protected by a hazard slot
 * while the call runs. See docs/api/directory.md. */
#ifndef KITD_DIRECTORY_H
#define KITD_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "consul.h"
#include "ctx.h"
#include "export.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_directory kitd_directory;

/* Make the instancer for `service` (a custom registry). Return 0 and a new
 * instancer in *out (the directory's client takes it over), or a negative
 * KITD_E* code. Thread-safety: any thread (called from the thread that
 * first asks for a name, under the directory's lock: keep it quick). */
typedef int (*kitd_directory_instancer_fn)(void *arg, const char *service, kitd_instancer **out);

typedef struct kitd_directory_opts {
  size_t size; /* sizeof(kitd_directory_opts), set by _init */
  /* The registry shared by every client, one of (in this order):
   *  - new_instancer(arg, service, &out): any registry;
   *  - consul: a Consul configuration, copied at kitd_directory_new();
   *  - neither: Consul from the environment (CONSUL_HTTP_ADDR, ...). */
  kitd_directory_instancer_fn new_instancer;
  void *arg; /* for new_instancer; borrowed */
  const kitd_consul *consul;
  /* The template of every client: all of kitd_client_opts but service,
   * instancer and consul (ignored), and logger (the directory's). Copied;
   * what it points to (http, retry, watch options) is borrowed and must
   * outlive the directory. A factory is shared by every client: its
   * argument must stay valid until kitd_directory_free() (which runs its
   * release, once, even if kitd_directory_new() fails) and until the last
   * client a caller still holds is freed. NULL: defaults. */
  const kitd_client_opts *client;
  int64_t idle_ms;       /* evict a client unused this long (default
                                 300000: 5 minutes); <= 0: default */
  unsigned max_clients;  /* at most this many clients (default 1000);
                                 0: default */
  unsigned max_blocking; /* Consul: the most connections (blocking
                                 queries) the directory holds to the agent
                                 (default 100, at least 7; 0: default).
                                 Every Consul watch runs on one shared
                                 thread: up to max_blocking - 6 services
                                 hold a blocking query each and see a
                                 change at once; the others are refetched
                                 when a blocking query on
                                 /v1/health/state/any or
                                 /v1/catalog/services says they changed. */
  kitd_logger *logger;   /* borrowed, must outlive the directory */
} kitd_directory_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_directory_opts_init(kitd_directory_opts *o);

/* A new, empty directory. `o` may be NULL (defaults). Returns 0 and a new
 * directory in *out (caller frees with kitd_directory_free()), or
 * KITD_EINVAL, KITD_ENOMEM, KITD_ECONFIG (the environment's Consul
 * settings do not parse) or KITD_EINTERNAL (no thread). It starts one
 * thread that evicts idle clients. Thread-safety: any thread. */
KITD_API int kitd_directory_new(const kitd_directory_opts *o, kitd_directory **out);

/* Call `service` as kitd_client_call() does, making its client first if
 * the directory has none (one client per name, however many threads ask
 * at once). Returns what kitd_client_call() returns, or KITD_EINVAL for a
 * name Consul would refuse (empty, longer than 255 bytes, holding '/' or a
 * control byte: no client and no watch is made), or what
 * kitd_client_new() returned. Thread-safety: any thread. */
KITD_API int kitd_directory_call(kitd_directory *dir, const char *service, kitd_ctx *ctx,
                                 const void *request, void *response);

/* The client of `service`, made if need be, with a new reference in *out
 * (release with kitd_client_free(); it stays usable after an eviction or
 * kitd_directory_free()). Returns 0, KITD_EINVAL or what kitd_client_new()
 * returned. Thread-safety: any thread. */
KITD_API int kitd_directory_get(kitd_directory *dir, const char *service, kitd_client **out);

/* Clients cached now. Thread-safety: any thread. */
KITD_API size_t kitd_directory_count(kitd_directory *dir);

/* Stop the eviction thread and drop the directory's clients (clients that
 * callers still hold stay usable). No call may be running on `dir`.
 * NULL is allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_directory_free(kitd_directory *dir);

#ifdef __cplusplus
}
#endif
#endif
