/* SPDX-License-Identifier: MIT */
/* Hedged requests: three instances answering in about 200 us, one of which
 * slows 10 % of its calls by 100 ms. Four threads make the same calls
 * without hedging and with hedge_quantile 0.95, under round robin and
 * under p2c; printed: the p99 latency of each, their ratio
 * (hedge/p99_gain) and the extra endpoint calls hedging made
 * (hedge/extra_calls, in % of calls). The first 256 calls of each run
 * teach the delay and are not counted. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kitd/kitd.h"

#define THREADS 4
#define WARM 256
#define CALLS 1500 /* counted, after the warm-up */

static atomic_long endpoint_calls;

struct ep {
  int slow; /* the instance that slows */
  atomic_uint n;
};

static int call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)req;
  struct ep *e = st;
  atomic_fetch_add(&endpoint_calls, 1);
  unsigned k = atomic_fetch_add(&e->n, 1);
  /* 1 call in 10 on the slow instance, spread evenly. */
  int64_t ns = e->slow && k % 10 == 9 ? 100 * 1000000LL : 200 * 1000LL;
  int rc = kitd_ctx_sleep_ns(ctx, ns);
  if (rc) return rc;
  *resp = malloc(1);
  return *resp ? 0 : KITD_ENOMEM;
}

static int factory(void *arg, const kitd_instance *in, kitd_endpoint **out) {
  (void)arg;
  struct ep *e = calloc(1, sizeof *e);
  if (!e) return KITD_ENOMEM;
  e->slow = strcmp(kitd_instance_address(in), "10.0.0.1:80") == 0;
  return kitd_endpoint_new(call, free, e, out);
}

struct run {
  kitd_endpoint *r;
  atomic_int next;
  int64_t lat[CALLS];
};

static void *worker(void *arg) {
  struct run *run = arg;
  for (;;) {
    int i = atomic_fetch_add(&run->next, 1);
    if (i >= CALLS) return NULL;
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp = NULL;
    int64_t t0 = kitd_now_ns();
    int rc = kitd_endpoint_call(run->r, &ctx, NULL, &resp);
    run->lat[i] = kitd_now_ns() - t0;
    if (rc) {
      fprintf(stderr, "bench_hedge: call failed: %s\n", kitd_strerror(rc));
      exit(1);
    }
    free(resp);
  }
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* One run: p99 in ms, and the extra endpoint calls in % of calls. */
static void measure(int p2c, double q, double *p99_ms, double *extra_pct) {
  const char *v[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"};
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  if (kitd_static_instancer_new(v, 3, &in) ||
      kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep) ||
      (p2c ? kitd_balancer_p2c_new(ep, NULL, &b) : kitd_balancer_round_robin_new(ep, 0, &b))) {
    fprintf(stderr, "bench_hedge: set-up failed\n");
    exit(1);
  }
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 1;
  o.hedge_quantile = q;
  o.free_response = free;
  struct run *run = calloc(1, sizeof *run);
  if (!run || kitd_retry_new(b, &o, &run->r)) {
    fprintf(stderr, "bench_hedge: set-up failed\n");
    exit(1);
  }
  for (int i = 0; i < WARM; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp = NULL;
    if (kitd_endpoint_call(run->r, &ctx, NULL, &resp) == 0) free(resp);
  }
  atomic_store(&endpoint_calls, 0);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, run);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  qsort(run->lat, CALLS, sizeof run->lat[0], cmp);
  *p99_ms = (double)run->lat[CALLS * 99 / 100] / 1e6;
  *extra_pct = 100.0 * (double)(atomic_load(&endpoint_calls) - CALLS) / CALLS;
  kitd_endpoint_unref(run->r);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  free(run);
}

int main(void) {
  for (int p2c = 0; p2c <= 1; p2c++) {
    double off, on, x0, x1;
    measure(p2c, 0, &off, &x0);
    measure(p2c, 0.95, &on, &x1);
    const char *lb = p2c ? "p2c/" : "";
    printf("bench hedge/%sp99/off %.2f ms\n", lb, off);
    printf("bench hedge/%sp99/q95 %.2f ms\n", lb, on);
    printf("bench hedge/%sp99_gain %.1f x\n", lb, on > 0 ? off / on : 0);
    printf("bench hedge/%sextra_calls %.2f %%\n", lb, x1);
  }
  return 0;
}
