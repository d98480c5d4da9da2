/* SPDX-License-Identifier: MIT */
/* GET /metrics of the lorem programs: a registry as Prometheus text. */
#ifndef LOREM_METRICS_H
#define LOREM_METRICS_H

#include <stddef.h>

#include <kitd/metrics.h>

/* The Content-Type of the answer. */
#define LOREM_METRICS_TYPE "text/plain; version=0.0.4"

/* The text of `m` (kitd_metrics_write_prometheus()) in a new buffer of
 * *len bytes (free() it), or NULL (no memory, or the write failed). */
char *lorem_metrics_text(kitd_metrics *m, size_t *len);

#endif
