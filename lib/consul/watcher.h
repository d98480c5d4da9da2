/* SPDX-License-Identifier: MIT */
/* Internal: the shared Consul watcher (watcher.c). The directory uses it,
 * and client.h exposes it as kitd_consul_watcher for standalone clients;
 * its instancers are ordinary kitd_instancers.
 *
 * One thread and one curl multi handle watch every service of a
 * kitd_directory. At most `max_blocking` services hold a blocking query on
 * /v1/health/service/<name> of their own; the others are refetched
 * (non-blocking) when a blocking query on /v1/health/state/any shows one
 * of their checks changed, or when /v1/catalog/services moves. The multi
 * handle never opens more than max_blocking connections in all. */
#ifndef KITD_CONSUL_WATCHER_H
#define KITD_CONSUL_WATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "kitd/consul.h"
#include "kitd/instancer.h"
#include "kitd/log.h"

/* The public handle (client.h) is the same object. */
typedef struct kitd_consul_watcher kitd__consul_watcher;

/* A new watcher on `c` (copied): its thread starts at once. max_blocking:
 * the most connections it holds to the agent (at least 4; 0: 100).
 * Returns 0, KITD_ENOMEM or KITD_EINTERNAL. `lg` is borrowed. */
int kitd__consul_watcher_new(const kitd_consul *c, unsigned max_blocking, kitd_logger *lg,
                             kitd__consul_watcher **out);

/* Drop the owner's reference; the thread ends once the last instancer made
 * from the watcher is gone too. NULL is allowed. */
void kitd__consul_watcher_free(kitd__consul_watcher *w);

/* A new instancer for `service` watched by `w` (passing_only, tags,
 * datacenter, max_body, min_interval_ms and backoff of `o` are used; NULL:
 * defaults). Free with kitd_instancer_free(). */
int kitd__consul_watcher_instancer(kitd__consul_watcher *w, const char *service,
                                   const kitd_consul_instancer_opts *o, kitd_instancer **out);

/* For tests and benches: threads the watcher runs (1), connections it has
 * open to the agent now, and the most it had at once. */
void kitd__consul_watcher_stats(kitd__consul_watcher *w, unsigned *blocking, unsigned *polled,
                                long *refetches);

#endif
