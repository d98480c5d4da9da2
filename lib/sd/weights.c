/* SPDX-License-Identifier: MIT */
/* The weighted order of a snapshot: what a weighted round robin walks.
 *
 * Made once per update, here and not in the balancer, because a pick may
 * neither allocate nor lock: the order lives and dies with its snapshot and
 * is protected by the same hazard slot. Only a set whose weights differ
 * gets one; an all-equal set (the common case) costs nothing.
 *
 * The order is earliest-deadline-first over the weights: instance i, of
 * weight w, is due at times (k + 1/2) / w for k = 0..w-1 within one cycle,
 * and the cycle lists every due time in order. Each instance is thus spread
 * evenly over the cycle (the same interleaving as nginx's smooth weighted
 * round robin, not runs of w picks), built in O(L log L) for a cycle of L
 * entries, where nginx's method costs O(L * n). */
#include <stdlib.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "sd/endpointer_impl.h"

/* The longest cycle: weights are scaled down (keeping each nonzero weight at
 * least 1) when their sum, divided by their gcd, exceeds this. Large enough
 * that 1% shares stay exact for sets of up to a few hundred instances. */
#define WORDER_MIN_CAP 4096
#define WORDER_PER_ENTRY 16

struct due {
  uint64_t num; /* the due time is num / den */
  uint64_t den;
  uint32_t idx;
};

static int due_cmp(const void *a, const void *b) {
  const struct due *x = a, *y = b;
  /* num and den stay below 2^32, so the cross products fit. */
  uint64_t l = x->num * y->den, r = y->num * x->den;
  if (l != r) return l < r ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static uint64_t gcd64(uint64_t a, uint64_t b) {
  while (b) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

int kitd__worder_build(struct kitd__snap *s) {
  size_t n = s->count;
  s->order = NULL;
  if (n < 2 || n > UINT32_MAX) return 0;
  uint64_t g = 0, sum = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t w = kitd_instance_weight(s->rec[i]);
    g = gcd64(g, w);
    sum += w;
  }
  if (sum == 0) return 0; /* all zero (records refuse it): as all equal */
  uint64_t len = sum / g;
  uint64_t cap = n * WORDER_PER_ENTRY > WORDER_MIN_CAP ? n * WORDER_PER_ENTRY : WORDER_MIN_CAP;
  /* Scaled weights: w / g, or w * cap / sum rounded (at least 1) when the
   * exact cycle would be too long. */
  int scale = len > cap;
  if (scale) {
    len = 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t w = kitd_instance_weight(s->rec[i]);
      if (w) len += (w * cap + sum / 2) / sum ? (w * cap + sum / 2) / sum : 1;
    }
  }
  struct due *d = kitd__malloc(len * sizeof *d);
  struct kitd__worder *o = kitd__malloc(sizeof *o + len * sizeof o->idx[0]);
  if (!d || !o) {
    free(d);
    free(o);
    return KITD_ENOMEM;
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t w = kitd_instance_weight(s->rec[i]);
    if (!w) continue;
    if (scale) {
      w = (w * cap + sum / 2) / sum;
      if (!w) w = 1;
    } else {
      w /= g;
    }
    for (uint64_t k = 0; k < w; k++) d[m++] = (struct due){2 * k + 1, 2 * w, (uint32_t)i};
  }
  qsort(d, m, sizeof *d, due_cmp);
  for (size_t k = 0; k < m; k++) o->idx[k] = d[k].idx;
  o->len = m;
  o->len_m = kitd__fastmod_magic(m);
  free(d);
  s->order = o;
  return 0;
}
