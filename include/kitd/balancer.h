/* SPDX-License-Identifier: MIT */
/* libkitd: balancers (go-kit's lb.Balancer): round robin, random,
 * smooth weighted round robin, and P2C least loaded.
 *
 * A balancer picks one endpoint from its endpointer's current snapshot. The
 * pick path takes no lock and allocates nothing; any number of threads may
 * pick from one balancer at once. A pick protects what it returns: the
 * endpoint stays valid, even if its instance leaves the registry, until the
 * pick is handed back with kitd_balancer_done(), which also reports how the
 * call went (for least-loaded and outlier-ejecting balancers; round robin
 * and random ignore it). Each thread may hold up to KITD_PICK_FAST picks at
 * once on the fast path; more still work, on a slower path. A pick that is
 * never handed back pins the endpoints of its own snapshot (they are not
 * closed), never those of later updates.
 *
 * Lifetime: a balancer holds a reference on its endpointer; a retry
 * endpoint holds one on its balancer. */
#ifndef KITD_BALANCER_H
#define KITD_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "endpointer.h"
#include "export.h"
#include "instance.h"
#include "metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KITD_PICK_FAST 8

typedef struct kitd_balancer kitd_balancer;

/* A pick: a value the caller keeps on its stack between pick and done. */
typedef struct kitd_pick {
  kitd_endpoint *endpoint;       /* borrowed until kitd_balancer_done() */
  const kitd_instance *instance; /* its record (address, weight, zone...);
                                    borrowed likewise */
  size_t index;                  /* position in the snapshot */
  size_t count;                  /* size of the snapshot picked from */
  /* private */
  void *snap_;
  int slot_;
} kitd_pick;

/* Round robin flags. */
enum {
  /* One shared counter: a strict global rotation (a shared atomic add per
   * pick). The default, KITD_RR_PER_THREAD clear. */
  KITD_RR_GLOBAL = 0,
  /* Each thread rotates on its own: no shared write on the pick path; as even
   * over many picks, but two threads may pick the same endpoint in a row. */
  KITD_RR_PER_THREAD = 1,
  /* The global rotation claimed in blocks: each thread takes 16 positions
   * of the shared counter at a time and walks them, so the shared line
   * moves once per 16 picks. As even as KITD_RR_GLOBAL over many picks
   * (every position is used once), and one thread's consecutive picks
   * rotate; picks of different threads interleave by blocks. */
  KITD_RR_BLOCKS = 2
};

/* A round-robin balancer over `ep` (the balancer takes a reference on it),
 * starting at a random position unless kitd_balancer_set_seed() is called.
 * Caller frees with kitd_balancer_free(). Returns 0, KITD_EINVAL or
 * KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_balancer_round_robin_new(kitd_endpointer *ep, unsigned flags,
                                           kitd_balancer **out);

/* A random balancer over `ep` (a reference is taken). Thread-safe on one handle, unlike
 * go-kit's. Returns 0, KITD_EINVAL or KITD_ENOMEM.
 * Thread-safety: any thread. */
KITD_API int kitd_balancer_random_new(kitd_endpointer *ep, kitd_balancer **out);

/* Settings of the balancers that learn from outcomes (weighted, p2c): which
 * instances they avoid, and when they stop avoiding any. */
typedef struct kitd_balancer_opts {
  size_t size; /* sizeof(kitd_balancer_opts), set by _init */
  /* Outlier ejection: after this many consecutive failed calls (reported
   * to kitd_balancer_done()) an instance is left out for eject_base_ms
   * times the number of times it was ejected (at most 10 times the base).
   * Default 5; 0 turns ejection off. */
  int eject_consecutive;
  int64_t eject_base_ms; /* default 30000 */
  int eject_max_percent; /* at most this share ejected at once (at least
                              one instance); default 10 */
  /* Panic: when fewer than this percentage of the instances are healthy
   * (status passing and not ejected), balance over all of them, as if all
   * were healthy. Default 50; 0: never panic (unhealthy instances are
   * then used only when no healthy one is left). */
  int panic_percent;
  /* Zone-aware: the caller's zone (copied; NULL or "": no preference).
   * Picks stay among the healthy instances whose kitd_instance_zone() is
   * this one while the local zone is whole. When some of its instances
   * are not passing, the share it lost spills to the other zones: a pick
   * stays local with probability (passing local instances) / (local
   * instances), so all of them spill when none is passing. */
  const char *zone;
  /* Slow start: an instance that joins a running set gets a share of the
   * picks that grows linearly from 0 to its full share over this window
   * (Envoy's slow start), so a cold cache or JIT is not flooded. Default
   * 30000; 0: off. */
  int64_t slow_start_ms;
} kitd_balancer_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_balancer_opts_init(kitd_balancer_opts *o);

/* Smooth weighted round robin over `ep` (a reference is taken): each
 * instance gets a share of picks proportional to kitd_instance_weight(),
 * spread evenly (1:2:7 gives C C B C A C C B C C, not runs). All weights
 * equal: plain round robin.
 * Avoids unhealthy and ejected instances as `opts` says (NULL: defaults).
 * One shared position, as KITD_RR_GLOBAL. Caller frees with
 * kitd_balancer_free(). Returns 0, KITD_EINVAL (opts of unknown size or a
 * value out of range) or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_balancer_weighted_new(kitd_endpointer *ep, const kitd_balancer_opts *opts,
                                        kitd_balancer **out);

/* Least loaded by the power of two choices (Finagle's P2C with peak EWMA):
 * each pick draws two instances at random and takes the one with the lower
 * latency estimate (a peak-sensitive moving average of the latencies given
 * to kitd_balancer_done(), decaying with a 10 s time constant) times the
 * calls in flight. The calls in flight are the picking thread's own (each
 * thread counts its picks not handed back, per instance, in a lane of its
 * own, so threads write no common line: each balances its own load; with
 * one calling thread, all calls); the estimate is shared. A pick keeps its
 * lane and done takes the count back from it, whichever thread runs it:
 * summed over the lanes, the count is exactly the picks not handed back.
 * A latency above the estimate replaces it at once; a lower one is fed on
 * one done in four, drawn at random, with four times the weight. A slow
 * instance quickly gets few calls; an idle one is tried again as its
 * estimate decays. Calls reported with latency -1 update the load count
 * only. Avoids unhealthy and ejected instances as `opts`
 * says (NULL: defaults). Returns 0, KITD_EINVAL or KITD_ENOMEM.
 * Thread-safety: any thread. */
KITD_API int kitd_balancer_p2c_new(kitd_endpointer *ep, const kitd_balancer_opts *opts,
                                   kitd_balancer **out);

/* Make the balancer deterministic: round robin starts at seed % n, random
 * draws from a sequence seeded with `seed` (shared by all threads, so it is
 * reproducible only from one thread). Call before the first pick.
 * Thread-safety: before other threads start. */
KITD_API void kitd_balancer_set_seed(kitd_balancer *b, uint64_t seed);

/* Count this balancer's picks, failures and ejections per instance in `m`
 * under the pipeline `name` (copied; kitd_retry_opts.metrics_name gives
 * the same name to its calls). The balancer holds a reference on `m`. An
 * endpoint's instance is counted under the first pipeline that picks it.
 * A pick is counted when made, a failure when handed back. Off by default:
 * a balancer without metrics pays one predictable branch per pick.
 * Returns 0, KITD_EINVAL (NULL argument, empty name, or metrics already
 * set) or KITD_ENOMEM. Thread-safety: before other threads start (call it
 * before the first pick). */
KITD_API int kitd_balancer_set_metrics(kitd_balancer *b, kitd_metrics *m, const char *name);

/* Pick an endpoint. Returns 0 and fills *out, or KITD_ENOENDPOINTS (the set
 * is empty; *out is then cleared and need not be handed back) or
 * KITD_EINVAL. Every successful pick must be followed by exactly one
 * kitd_balancer_done() on the same thread.
 * Thread-safety: any thread. */
KITD_API int kitd_balancer_pick(kitd_balancer *b, kitd_pick *out);

/* Hand a pick back and report the outcome: `result` is 0 or the call's
 * KITD_E* code, `latency_ns` its duration (or -1 if unknown). After this the
 * pick's endpoint and instance must not be used (take kitd_endpoint_ref()
 * first to keep the endpoint). Thread-safety: any thread (the picking one). */
KITD_API void kitd_balancer_done(kitd_balancer *b, kitd_pick *p, int result, int64_t latency_ns);

/* Why this pick: writes into buf (cap bytes, always terminated, cut if
 * need be) the policy, the candidates in the snapshot, the one chosen and
 * the ones a learning balancer passed over with the reason (not passing,
 * ejected, other zone, slow start), as logfmt:
 *   policy=weighted candidates=3 chosen=10.0.0.2:80 skipped="10.0.0.1:80 ejected"
 * `p` must be held (between kitd_balancer_pick() and kitd_balancer_done());
 * a cleared pick (after KITD_ENOENDPOINTS) is explained by
 * kitd_endpointer_explain()'s reason. kitd_retry writes the same line,
 * with the instances already tried in the call, as a debug log record
 * (kitd_retry_opts.logger). Costs nothing unless called. Returns buf.
 * Thread-safety: the picking thread. */
KITD_API const char *kitd_balancer_explain(kitd_balancer *b, const kitd_pick *p, char *buf,
                                           size_t cap);

/* Add a reference; returns `b`. Thread-safety: any thread. */
KITD_API kitd_balancer *kitd_balancer_ref(kitd_balancer *b);

/* The endpointer the balancer reads. Borrowed. Thread-safety: any thread. */
KITD_API kitd_endpointer *kitd_balancer_endpointer(kitd_balancer *b);

/* Drop the caller's reference; the last one releases the balancer and its
 * reference on the endpointer. A retry endpoint built on the balancer
 * holds its own reference, so any free order is safe. Picks not yet
 * handed back must be handed back before the last reference goes.
 * NULL is allowed. Thread-safety: any thread (one call per reference). */
KITD_API void kitd_balancer_free(kitd_balancer *b);

#ifdef __cplusplus
}
#endif
#endif
