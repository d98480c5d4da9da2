/* SPDX-License-Identifier: MIT */
/* Internal: the library's one backoff-with-jitter helper, used by every
 * registry watch, the registrars and retry. */
#ifndef KITD_CORE_BACKOFF_H
#define KITD_CORE_BACKOFF_H

#include <stdint.h>

/* How the delay is spread. FULL: uniform in [0, d] (spreads a fleet's
 * retries best: AWS's "full jitter"; retry uses it). HALF: uniform in
 * [d/2, d] (a watch or registrar that must not come back at once). */
enum kitd__jitter {
  KITD__JITTER_FULL,
  KITD__JITTER_HALF
};

/* The delay before attempt `n` + 1 after `n` >= 1 consecutive failures:
 * d = base_ns * 2^(n-1), capped at max_ns (max_ns < base_ns: base_ns), then
 * jittered. base_ns <= 0 gives 0. Never overflows, whatever n is. */
int64_t kitd__backoff_ns(int64_t base_ns, int64_t max_ns, unsigned n, enum kitd__jitter j);

#endif
