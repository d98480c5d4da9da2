/* SPDX-License-Identifier: MIT */
/* Exponential backoff with jitter (backoff.h). */
#include "core/backoff.h"

#include "core/rand.h"

int64_t kitd__backoff_ns(int64_t base_ns, int64_t max_ns, unsigned n, enum kitd__jitter j) {
  if (base_ns <= 0) return 0;
  int64_t cap = max_ns > base_ns ? max_ns : base_ns;
  int64_t d = base_ns;
  for (unsigned i = 1; i < n && d < cap; i++) d = d > cap / 2 ? cap : d * 2;
  if (d > cap) d = cap;
  if (j == KITD__JITTER_HALF) return d / 2 + (int64_t)kitd__rand_upto((uint64_t)(d - d / 2));
  return (int64_t)kitd__rand_upto((uint64_t)d);
}
