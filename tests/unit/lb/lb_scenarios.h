/* SPDX-License-Identifier: MIT */
/* Scenarios of the balancers that learn from outcomes, shared by their
 * tests (which assert the limits) and bench_lb (which prints the figures).
 * Fake endpoints only: latencies are reported to kitd_balancer_done(), not
 * slept, so a scenario takes milliseconds and its figures do not depend on
 * the machine's load. */
#ifndef KITD_TEST_LB_SCENARIOS_H
#define KITD_TEST_LB_SCENARIOS_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kitd/kitd.h"

/* An endpoint that answers at once, or fails while *fail is set. */
struct sc_ep {
  atomic_int calls;
  atomic_int fail;
};

static inline int sc_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx;
  (void)req;
  struct sc_ep *e = st;
  atomic_fetch_add(&e->calls, 1);
  if (atomic_load(&e->fail)) return KITD_ECONNECT;
  *resp = e;
  return 0;
}

/* The endpoints of one scenario, by position in address order. */
struct sc {
  kitd_instancer *in;
  kitd_endpointer *ep;
  struct sc_ep eps[16];
  int n;
};

static inline int sc_factory(void *arg, const kitd_instance *rec, kitd_endpoint **out) {
  struct sc *s = arg;
  /* Addresses are "10.0.0.<k>:80": k is the slot. */
  const char *a = kitd_instance_address(rec);
  int k = atoi(strrchr(a, '.') + 1);
  if (k < 0 || k >= 16) return KITD_EINVAL;
  return kitd_endpoint_new(sc_call, NULL, &s->eps[k], out);
}

/* n instances 10.0.0.0:80..., with weights w (NULL: 1), statuses st
 * (NULL: passing) and zones z (NULL: none). */
static inline void sc_open_z(struct sc *s, int n, const uint32_t *w, const kitd_health *st,
                             const char *const *z) {
  memset(s, 0, sizeof *s);
  s->n = n;
  kitd_instance *r[16];
  for (int i = 0; i < n; i++) {
    char a[32];
    snprintf(a, sizeof a, "10.0.0.%d:80", i);
    kitd_instance_new(a, &r[i]);
    if (w) kitd_instance_set_weight(r[i], w[i]);
    if (st) kitd_instance_set_status(r[i], st[i]);
    if (z) kitd_instance_set_zone(r[i], z[i]);
  }
  kitd_static_instancer_new(NULL, 0, &s->in);
  kitd_static_instancer_set_records(s->in, r, (size_t)n);
  for (int i = 0; i < n; i++) kitd_instance_unref(r[i]);
  kitd_endpointer_new(s->in, &(kitd_factory){sc_factory, s, NULL}, NULL, &s->ep);
}

static inline void sc_open(struct sc *s, int n, const uint32_t *w, const kitd_health *st) {
  sc_open_z(s, n, w, st, NULL);
}

static inline void sc_close(struct sc *s) {
  kitd_endpointer_free(s->ep);
  kitd_instancer_free(s->in);
}

static inline int sc_index(const kitd_pick *p) {
  const char *a = kitd_instance_address(p->instance);
  return atoi(strrchr(a, '.') + 1);
}

/* Weighted 1:2:7 over `picks` picks: each share in percent (out[3]) and
 * how often an instance whose share is under 50% came twice in a row. */
static inline int sc_wrr_shares(long picks, double out[3]) {
  struct sc s;
  const uint32_t w[3] = {1, 2, 7};
  sc_open(&s, 3, w, NULL);
  kitd_balancer *b;
  kitd_balancer_weighted_new(s.ep, NULL, &b);
  long cnt[3] = {0};
  int prev = -1, twice = 0;
  for (long k = 0; k < picks; k++) {
    kitd_pick p;
    if (kitd_balancer_pick(b, &p) != 0) abort();
    int i = sc_index(&p);
    cnt[i]++;
    if (i == prev && w[i] * 2 < 10) twice++;
    prev = i;
    kitd_balancer_done(b, &p, 0, -1);
  }
  for (int i = 0; i < 3; i++) out[i] = 100.0 * (double)cnt[i] / (double)picks;
  kitd_balancer_free(b);
  sc_close(&s);
  return twice;
}

/* P2C over 3 instances, the last 10 times slower (1 ms against 10 ms), with
 * `inflight` calls in flight that end in latency order (a simulated clock):
 * the slow instance's share of `calls`, in percent. */
static inline double sc_slow_share(long calls, int inflight) {
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer *b;
  kitd_balancer_p2c_new(s.ep, NULL, &b);
  kitd_pick held[64];
  int64_t end[64];
  int nheld = 0;
  int64_t now = 0;
  long slow = 0;
  if (inflight > 64) inflight = 64;
  for (long k = 0; k < calls; k++) {
    if (nheld == inflight) { /* finish the call that ends first */
      int m = 0;
      for (int j = 1; j < nheld; j++)
        if (end[j] < end[m]) m = j;
      now = end[m];
      int64_t lat = sc_index(&held[m]) == 2 ? 10000000 : 1000000;
      kitd_balancer_done(b, &held[m], 0, lat);
      held[m] = held[nheld - 1];
      end[m] = end[nheld - 1];
      nheld--;
    }
    kitd_pick *p = &held[nheld];
    if (kitd_balancer_pick(b, p) != 0) abort();
    int slow_one = sc_index(p) == 2;
    slow += slow_one;
    end[nheld++] = now + (slow_one ? 10000000 : 1000000);
  }
  for (int j = 0; j < nheld; j++) kitd_balancer_done(b, &held[j], 0, -1);
  kitd_balancer_free(b);
  sc_close(&s);
  return 100.0 * (double)slow / (double)calls;
}

/* Outlier ejection through a retry: 3 instances, the second starts failing
 * after `calls`/10 calls. Returns the calls that failed; *after counts the
 * attempts that reached it after the 5 failures that eject it. */
static inline int sc_outlier(long calls, int *after) {
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer *b;
  kitd_balancer_weighted_new(s.ep, NULL, &b);
  kitd_endpoint *r;
  kitd_retry_new(b, NULL, &r);
  int failed = 0, at_fail = 0;
  for (long k = 0; k < calls; k++) {
    if (k == calls / 10) {
      at_fail = atomic_load(&s.eps[1].calls);
      atomic_store(&s.eps[1].fail, 1);
    }
    kitd_ctx c;
    kitd_ctx_init(&c);
    void *resp;
    failed += kitd_endpoint_call(r, &c, NULL, &resp) != 0;
  }
  *after = atomic_load(&s.eps[1].calls) - at_fail - 5;
  kitd_endpoint_unref(r);
  kitd_balancer_free(b);
  sc_close(&s);
  return failed;
}

/* A retry(3) against one instance that always fails, `calls` calls: the
 * attempts per call, and *bound the limit 1.2 + 10/s × (elapsed + 10 s of
 * reserve) / calls. */
static inline double sc_budget(long calls, double *bound) {
  struct sc s;
  sc_open(&s, 1, NULL, NULL);
  atomic_store(&s.eps[0].fail, 1);
  kitd_balancer *b;
  kitd_balancer_round_robin_new(s.ep, 0, &b);
  kitd_endpoint *r;
  kitd_retry_new(b, NULL, &r);
  int64_t t0 = kitd_now_ns();
  for (long k = 0; k < calls; k++) {
    kitd_ctx c;
    kitd_ctx_init(&c);
    void *resp;
    kitd_endpoint_call(r, &c, NULL, &resp);
  }
  double secs = (double)(kitd_now_ns() - t0) / 1e9;
  double per = (double)atomic_load(&s.eps[0].calls) / (double)calls;
  *bound = 1.2 + 10.0 * (secs + 10.0) / (double)calls;
  kitd_endpoint_unref(r);
  kitd_balancer_free(b);
  sc_close(&s);
  return per;
}

#endif
