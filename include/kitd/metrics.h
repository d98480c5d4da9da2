/* SPDX-License-Identifier: MIT */
/* libkitd: metrics, counted per client (pipeline), per instance and per
 * watch, read by a walk or written as Prometheus text.
 *
 * Metrics are off until you make a registry and hand it to what you want
 * measured:
 *
 *   kitd_metrics *m;
 *   kitd_metrics_new(&m);
 *   o.metrics = m;                        // kitd_client_opts: the whole
 *   kitd_client_new(&o, &c);              // pipeline, named by the service
 *   ...
 *   kitd_metrics_write_prometheus(m, stdout);
 *
 * A pipeline built by hand names itself: kitd_retry_opts.metrics and
 * .metrics_name for the calls, kitd_balancer_set_metrics() for the
 * instances, kitd_metrics_watch() for the registry watch. Pipelines of one
 * registry that give the same name share their counters.
 *
 * What is counted (label `service` is the pipeline's name, `instance` an
 * address, `watch` a watch's name):
 *   kitd_calls_total{service}                calls made through the retry
 *   kitd_call_failures_total{service,code}   calls that failed, by KITD_E*
 *                                            name (ETIMEDOUT, EHTTP, ...)
 *   kitd_attempts_total{service}             attempts (calls + retries)
 *   kitd_retries_total{service}              attempts after the first
 *   kitd_retry_budget_refusals_total{service} retries the budget refused
 *   kitd_calls_outstanding{service}          calls running now
 *   kitd_call_duration_seconds{service}      histogram, fixed buckets from
 *                                            0.5 ms to 10 s; it observes
 *                                            every call when the retry reads
 *                                            the clock anyway (a timeout is
 *                                            set, as kitd_client's default,
 *                                            or the balancer learns from
 *                                            latencies), else one call in
 *                                            1024 of each thread (its
 *                                            first, then every 1024th)
 *   kitd_instance_picks_total{service,instance}     picks, counted when
 *                                            made (re-picks included)
 *   kitd_instance_failures_total{service,instance}  calls that failed there
 *   kitd_instance_ejections_total{service,instance} outlier ejections
 *   kitd_watch_up{watch}                     1 while the last answer was
 *                                            good, 0 while failing
 *   kitd_watch_error{watch,error}            the last error's text: 1 while
 *                                            failing, 0 once recovered
 *                                            (absent before any error)
 *   kitd_watch_last_good_age_seconds{watch}  age of the last good answer
 *                                            (absent before the first one)
 *   kitd_watch_instances{watch}              instances in the set
 *   kitd_watch_requests_total{watch}         registry answers received,
 *                                            good or failed (one per
 *                                            request the watch made)
 *   kitd_watch_errors_total{watch}           failed ones
 *
 * Cost: counting is per thread (each thread writes only its own slots and a
 * read sums them), so a pick or a call adds no shared write and no locked
 * instruction; with no registry set, one predictable branch. Counts are
 * exact once the counting threads are done. An instance's series go when
 * its endpoints are closed; a pipeline's when everything built with the
 * name is freed. Each thread that counts keeps 8 bytes per counter of the
 * process (about 40 per pipeline, 3 per instance). */
#ifndef KITD_METRICS_H
#define KITD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "export.h"
#include "instancer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_metrics kitd_metrics;

typedef enum kitd_metric_type {
  KITD_METRIC_COUNTER = 0,
  KITD_METRIC_GAUGE = 1,
  KITD_METRIC_HISTOGRAM = 2
} kitd_metric_type;

typedef struct kitd_metric_label {
  const char *name;
  const char *value; /* unescaped */
} kitd_metric_label;

/* One series, as the walk shows it. Everything is borrowed for the call. */
typedef struct kitd_metric {
  const char *name; /* "kitd_calls_total"; a histogram's base name */
  const char *help;
  kitd_metric_type type;
  const kitd_metric_label *labels;
  size_t nlabels;
  double value; /* counter or gauge */
  /* histogram: nbuckets upper bounds in seconds (the last is +Inf), the
   * cumulative count of each, the sum of observations and their count */
  size_t nbuckets;
  const double *bounds;
  const uint64_t *cumulative;
  double sum;
  uint64_t count;
} kitd_metric;

/* Receives one series. Series of one name come one after the other.
 * Thread-safety: runs on the walking thread. */
typedef void (*kitd_metric_fn)(void *arg, const kitd_metric *m);

/* A new, empty registry (one reference). Release with kitd_metrics_free().
 * Returns 0, KITD_EINVAL or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_metrics_new(kitd_metrics **out);

/* Add a reference; returns `m`. Thread-safety: any thread. */
KITD_API kitd_metrics *kitd_metrics_ref(kitd_metrics *m);

/* Drop the caller's reference. Clients, retries, balancers and watches
 * given the registry hold their own, so any free order is safe. NULL is
 * allowed. Thread-safety: any thread (one call per reference). */
KITD_API void kitd_metrics_free(kitd_metrics *m);

/* Count the watch of `in` under `name` (copied; a reference on `in` is
 * taken and held until the registry is freed). Returns 0, KITD_EINVAL,
 * KITD_EEXIST (this instancer, or this name, is already watched by `m`)
 * or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_metrics_watch(kitd_metrics *m, kitd_instancer *in, const char *name);

/* Call fn once per series, grouped by name, in a fixed order (pipelines,
 * then instances, then watches; each group sorted by name). Counts are
 * read while calls go on: each is exact as of its read. Returns 0,
 * KITD_EINVAL or KITD_ENOMEM (fn was then not called). Thread-safety: any
 * thread, but not from a subscriber callback of a watched instancer (the
 * walk takes its lock). */
KITD_API int kitd_metrics_walk(kitd_metrics *m, kitd_metric_fn fn, void *arg);

/* Write every series to `out` in the Prometheus text exposition format
 * 0.0.4 (HELP and TYPE lines, escaped label values, histograms as
 * _bucket{le=...}, _sum and _count, counters named *_total). Serve it with
 * Content-Type "text/plain; version=0.0.4". Returns 0, KITD_EINVAL,
 * KITD_ENOMEM or KITD_EIO (a write failed). Thread-safety: any thread. */
KITD_API int kitd_metrics_write_prometheus(kitd_metrics *m, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
