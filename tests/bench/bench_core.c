/* SPDX-License-Identifier: MIT */
/* Benchmarks of the request path and of endpointer updates.
 *
 *   pick/<balancer>/<threads>        pick + done over 8 endpoints, ns/op
 *                                    (wrr: weights 1..8; p2c: done
 *                                    without a latency, as the others)
 *                                    (per thread: wall time / picks of one
 *                                    thread, both threads picking at once)
 *   retry/success                    a retry endpoint's call that succeeds
 *                                    at once (pick, call, done), ns/op
 *   .../metrics                      the same with metrics on (the pick's
 *                                    balancer, or the retry and its
 *                                    balancer, count into a registry);
 *                                    run alternated with the line without,
 *                                    in the same process, so that the
 *                                    machine's noise falls on both
 *   alloc/...                        library allocations per op (counted by
 *                                    the internal allocator, lib/core/alloc.c)
 *   endpointer/update/N=<n>/<kind>   one set event delivered to the
 *                                    endpointer until its callback returns
 *                                    (the new snapshot is visible before
 *                                    that; the figure also includes closing
 *                                    the removed endpoints), µs
 * Each figure is the median of 5 runs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kitd/kitd.h"
#include "sd/instancer_impl.h"

unsigned long kitd__alloc_count(void);

#define RUNS 5
static long pick_iters = 10 * 1000 * 1000;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v) {
  qsort(v, RUNS, sizeof *v, cmp_d);
  return v[RUNS / 2];
}

static int noop_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st;
  (void)ctx;
  *resp = (void *)req;
  return 0;
}
static int factory(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *inst = kitd_instance_address(rec_);
  (void)arg;
  (void)inst;
  return kitd_endpoint_new(noop_call, NULL, NULL, out);
}

/* --- picks --- */

typedef struct job {
  kitd_balancer *b;
  kitd_endpoint *retry;
  long iters;
  pthread_barrier_t *bar;
  double ns;
} job;

static void *pick_loop(void *arg) {
  job *j = arg;
  kitd_pick p;
  /* Warm-up: the thread's first pick takes its hazard record. */
  kitd_balancer_pick(j->b, &p);
  kitd_balancer_done(j->b, &p, 0, -1);
  if (j->bar) pthread_barrier_wait(j->bar);
  int64_t t0 = kitd_now_ns();
  for (long i = 0; i < j->iters; i++) {
    if (kitd_balancer_pick(j->b, &p) != 0) abort();
    __asm__ volatile("" : : "r"(p.endpoint) : "memory");
    kitd_balancer_done(j->b, &p, 0, -1);
  }
  j->ns = (double)(kitd_now_ns() - t0) / (double)j->iters;
  return NULL;
}

static void *retry_loop(void *arg) {
  job *j = arg;
  kitd_ctx ctx;
  void *resp;
  kitd_ctx_init(&ctx);
  kitd_endpoint_call(j->retry, &ctx, NULL, &resp);
  int64_t t0 = kitd_now_ns();
  for (long i = 0; i < j->iters; i++) {
    kitd_ctx_init(&ctx);
    if (kitd_endpoint_call(j->retry, &ctx, &ctx, &resp) != 0) abort();
    __asm__ volatile("" : : "r"(resp) : "memory");
  }
  j->ns = (double)(kitd_now_ns() - t0) / (double)j->iters;
  return NULL;
}

static double run_threads(void *(*fn)(void *), kitd_balancer *b, kitd_endpoint *retry, int nthreads,
                          long iters) {
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
  job j[8];
  pthread_t t[8];
  for (int i = 0; i < nthreads; i++) {
    j[i] = (job){b, retry, iters, nthreads > 1 ? &bar : NULL, 0};
    pthread_create(&t[i], NULL, fn, &j[i]);
  }
  double sum = 0;
  for (int i = 0; i < nthreads; i++) {
    pthread_join(t[i], NULL);
    sum += j[i].ns;
  }
  pthread_barrier_destroy(&bar);
  return sum / nthreads;
}

/* Runs of a and b alternated; the two medians. */
static void alternated(void *(*fn)(void *), kitd_balancer *ba, kitd_endpoint *ra, kitd_balancer *bb,
                       kitd_endpoint *rb, long iters, double *ma, double *mb) {
  double va[RUNS], vb[RUNS];
  for (int r = 0; r < RUNS; r++) {
    va[r] = run_threads(fn, ba, ra, 1, iters);
    vb[r] = run_threads(fn, bb, rb, 1, iters);
  }
  *ma = median(va);
  *mb = median(vb);
}

static void bench_pick(const char *name, kitd_balancer *b, int nthreads) {
  double v[RUNS];
  for (int r = 0; r < RUNS; r++) v[r] = run_threads(pick_loop, b, NULL, nthreads, pick_iters);
  printf("bench pick/%s/%s %.2f ns/op\n", name, nthreads == 1 ? "1thread" : "2threads", median(v));
  fflush(stdout);
}

/* --- endpointer updates --- */

/* An instancer whose events the bench hands to subscribers itself, so the
 * figure is the endpointer's work only (no qsort of the answer). */
static void bi_destroy(kitd_instancer *in) { free(in); }
static const struct kitd__instancer_ops bi_ops = {"bench", NULL, bi_destroy};

static void deliver(kitd_instancer *in, kitd_instance **set, size_t n) {
  kitd_event ev = {0, "", (const kitd_instance *const *)set, n, 0};
  pthread_mutex_lock(&in->mu);
  for (size_t i = 0; i < in->nsubs; i++) in->subs[i].fn(in->subs[i].arg, &ev);
  pthread_mutex_unlock(&in->mu);
}

/* A record as a registry makes it: a fresh one on every answer, so the
 * endpointer compares attributes, not pointers. */
static kitd_instance *rec(const char *addr) {
  kitd_instance *r;
  if (kitd_instance_new(addr, &r) || kitd_instance_set_weight(r, 1) ||
      kitd_instance_add_tag(r, "lorem"))
    abort();
  kitd__instance_freeze(r); /* as an instancer's publish does */
  return r;
}

static kitd_instance **make_set(size_t n, unsigned base) {
  kitd_instance **v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    unsigned x = base + (unsigned)i;
    char a[32];
    snprintf(a, sizeof a, "10.%u.%u.%u:8080", (x >> 16) & 255, (x >> 8) & 255, x & 255);
    v[i] = rec(a);
  }
  kitd__instance_sort_unique(v, n);
  return v;
}

static void bench_update(size_t n, int full) {
  kitd_instancer *in = malloc(sizeof *in);
  kitd__instancer_init(in, &bi_ops);
  kitd_endpointer *ep;
  if (kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep)) abort();
  kitd_instance **a = make_set(n, 0);
  kitd_instance **b;
  size_t churn = n / 100 ? n / 100 : 1;
  if (full) {
    b = make_set(n, 1u << 20);
  } else {
    /* b: a with every 100th instance replaced by a new one. */
    b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) b[i] = rec(kitd_instance_address(a[i]));
    for (size_t k = 0; k < churn; k++) {
      size_t i = k * (n / churn);
      char addr[32];
      snprintf(addr, sizeof addr, "11.0.%zu.%zu:8080", k >> 8, k & 255);
      kitd_instance_unref(b[i]);
      b[i] = rec(addr);
    }
    kitd__instance_sort_unique(b, n);
  }
  deliver(in, a, n);
  int per_run = n >= 10000 ? 20 : 200;
  double v[RUNS];
  for (int r = 0; r < RUNS; r++) {
    double total = 0;
    for (int k = 0; k < per_run; k++) {
      int64_t t0 = kitd_now_ns();
      deliver(in, (k & 1) ? a : b, n);
      total += (double)(kitd_now_ns() - t0);
    }
    v[r] = total / per_run / 1000.0;
  }
  if (kitd_endpointer_count(ep) != n) abort();
  printf("bench endpointer/update/N=%zu/%s %.1f us\n", n, full ? "full" : "churn1pct", median(v));
  fflush(stdout);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_instance_list_free(a, n);
  kitd_instance_list_free(b, n);
}

int main(int argc, char **argv) {
  if (argc > 1) pick_iters = atol(argv[1]);
  const char *insts[8];
  char buf[8][32];
  for (int i = 0; i < 8; i++) {
    snprintf(buf[i], sizeof buf[i], "10.0.0.%d:8080", i + 1);
    insts[i] = buf[i];
  }
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *rr, *rrt, *rnd;
  if (kitd_static_instancer_new(insts, 8, &in) ||
      kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep) ||
      kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &rr) ||
      kitd_balancer_round_robin_new(ep, KITD_RR_PER_THREAD, &rrt) ||
      kitd_balancer_random_new(ep, &rnd))
    abort();
  /* The same rotation with metrics on, alternated with it. */
  kitd_metrics *m;
  kitd_balancer *rrm;
  if (kitd_metrics_new(&m) || kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &rrm) ||
      kitd_balancer_set_metrics(rrm, m, "bench"))
    abort();
  double off, on;
  alternated(pick_loop, rr, NULL, rrm, NULL, pick_iters, &off, &on);
  printf("bench pick/round_robin/1thread %.2f ns/op\n", off);
  printf("bench pick/round_robin/1thread/metrics %.2f ns/op\n", on);
  fflush(stdout);
  bench_pick("round_robin", rr, 2);
  bench_pick("round_robin_per_thread", rrt, 1);
  bench_pick("round_robin_per_thread", rrt, 2);
  bench_pick("random", rnd, 1);
  bench_pick("random", rnd, 2);
  kitd_balancer *rrb;
  if (kitd_balancer_round_robin_new(ep, KITD_RR_BLOCKS, &rrb)) abort();
  bench_pick("round_robin_blocks", rrb, 1);
  bench_pick("round_robin_blocks", rrb, 2);
  kitd_balancer_free(rrb);

  /* The balancers that learn from outcomes, on a set of weights 1..8. */
  kitd_instancer *win;
  kitd_endpointer *wep;
  kitd_balancer *wrr, *p2c;
  kitd_instance *wrec[8];
  for (int i = 0; i < 8; i++) {
    if (kitd_instance_new(insts[i], &wrec[i]) || kitd_instance_set_weight(wrec[i], (uint32_t)i + 1))
      abort();
  }
  if (kitd_static_instancer_new(NULL, 0, &win) || kitd_static_instancer_set_records(win, wrec, 8) ||
      kitd_endpointer_new(win, &(kitd_factory){factory, NULL, NULL}, NULL, &wep) ||
      kitd_balancer_weighted_new(wep, NULL, &wrr) || kitd_balancer_p2c_new(wep, NULL, &p2c))
    abort();
  for (int i = 0; i < 8; i++) kitd_instance_unref(wrec[i]);
  bench_pick("wrr", wrr, 1);
  bench_pick("wrr", wrr, 2);
  bench_pick("p2c", p2c, 1);
  bench_pick("p2c", p2c, 2);
  kitd_balancer_free(wrr);
  kitd_balancer_free(p2c);
  kitd_endpointer_free(wep);
  kitd_instancer_free(win);

  kitd_endpoint *retry, *retrym;
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.metrics = m;
  ro.metrics_name = "bench";
  if (kitd_retry_new(rr, NULL, &retry) || kitd_retry_new(rrm, &ro, &retrym)) abort();
  alternated(retry_loop, NULL, retry, NULL, retrym, pick_iters / 2, &off, &on);
  printf("bench retry/success %.2f ns/op\n", off);
  printf("bench retry/success/metrics %.2f ns/op\n", on);
  fflush(stdout);
  kitd_endpoint_unref(retrym);
  kitd_balancer_free(rrm);
  kitd_metrics_free(m);
  double v[RUNS];
  for (int r = 0; r < RUNS; r++) v[r] = run_threads(retry_loop, NULL, retry, 2, pick_iters / 2);
  printf("bench retry/success/2threads %.2f ns/op\n", median(v));

  /* Allocations per op, counted over 1e6 ops after warm-up. */
  unsigned long before = kitd__alloc_count();
  run_threads(pick_loop, rr, NULL, 1, 1000000);
  unsigned long mid = kitd__alloc_count();
  run_threads(retry_loop, NULL, retry, 1, 1000000);
  unsigned long after = kitd__alloc_count();
  /* Each run_threads thread is new: its first pick may take a record (one
   * allocation per thread, not per op); the figure is per op. */
  printf("bench alloc/pick %g allocs/op\n", (double)(mid - before) / 1e6);
  printf("bench alloc/retry/success %g allocs/op\n", (double)(after - mid) / 1e6);
  fflush(stdout);
  kitd_endpoint_unref(retry);

  bench_update(100, 0);
  bench_update(100, 1);
  bench_update(1000, 0);
  bench_update(1000, 1);
  bench_update(10000, 0);
  bench_update(10000, 1);

  kitd_balancer_free(rr);
  kitd_balancer_free(rrt);
  kitd_balancer_free(rnd);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  return 0;
}
