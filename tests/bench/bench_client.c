/* SPDX-License-Identifier: MIT */
/* kitd_client against one real lorem-server on 127.0.0.1 (the fast path),
 * asynchronous and blocking, in alternated rounds of one run:
 *
 *   client/async/c64          calls/s with 64 calls always in flight
 *                             through kitd_client_call_async(): this
 *                             thread starts 64, and each done starts the
 *                             next one, so libkitd's one loop thread does
 *                             all the client's work
 *   client/blocking/4threads  calls/s of kitd_client_call() looping on 4
 *                             threads
 *
 * Each is the median of ROUNDS rounds of ROUND_MS, A B A B ...; the rounds
 * are printed to stderr. With each, NAME/cpu: the client process's CPU
 * time per call in µs (CLOCK_PROCESS_CPUTIME_ID; the server's is not in
 * it), a figure that depends less on how busy the machine is than calls/s:
 * on a shared machine 4 threads get more of the CPU than one. Every call has a 5 s deadline (a clock read on
 * both sides) and the raw codec; a failed call fails the bench. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/lorem_proc.h"
#include "kitd/kitd.h"

#define ROUNDS 7
#define ROUND_MS 1000
#define INFLIGHT 64
#define THREADS 4

static kitd_client *g_c;
static atomic_int g_stop;
static atomic_long g_calls, g_failed;

/* ---- async ---- */

struct slot {
  kitd_ctx ctx;
  kitd_client_resp resp;
};
static struct slot g_slots[INFLIGHT];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_active;

static void slot_done(void *arg, int rc);

static int slot_start(struct slot *s) {
  kitd_ctx_init(&s->ctx);
  kitd_ctx_set_timeout_ms(&s->ctx, 5000);
  return kitd_client_call_async(g_c, &s->ctx, NULL, &s->resp, slot_done, s);
}

static void slot_end(void) {
  pthread_mutex_lock(&g_mu);
  if (--g_active == 0) pthread_cond_signal(&g_cv);
  pthread_mutex_unlock(&g_mu);
}

static void slot_done(void *arg, int rc) {
  struct slot *s = arg;
  if (rc) {
    if (atomic_fetch_add(&g_failed, 1) == 0)
      fprintf(stderr, "bench_client: async call: %s: %s\n", kitd_err_name(rc),
              kitd_ctx_detail(&s->ctx));
  } else {
    atomic_fetch_add_explicit(&g_calls, 1, memory_order_relaxed);
    kitd_client_resp_clear(&s->resp);
  }
  if (atomic_load_explicit(&g_stop, memory_order_relaxed) || slot_start(s)) slot_end();
}

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

/* Client CPU per call of the last round, µs. */
static double g_cpu_us;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static double round_async(void) {
  atomic_store(&g_stop, 0);
  atomic_store(&g_calls, 0);
  g_active = INFLIGHT;
  double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  for (int i = 0; i < INFLIGHT; i++)
    if (slot_start(&g_slots[i])) slot_end();
  sleep_ms(ROUND_MS);
  atomic_store(&g_stop, 1);
  double t1 = now_s();
  long n = atomic_load(&g_calls);
  pthread_mutex_lock(&g_mu);
  while (g_active > 0) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);
  g_cpu_us = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e6 / (double)atomic_load(&g_calls);
  return (double)n / (t1 - t0);
}

/* ---- blocking ---- */

static void *blocking_loop(void *arg) {
  (void)arg;
  kitd_ctx ctx;
  kitd_client_resp r;
  while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 5000);
    int rc = kitd_client_call(g_c, &ctx, NULL, &r);
    if (rc) {
      if (atomic_fetch_add(&g_failed, 1) == 0)
        fprintf(stderr, "bench_client: call: %s: %s\n", kitd_err_name(rc), kitd_ctx_detail(&ctx));
      continue;
    }
    atomic_fetch_add_explicit(&g_calls, 1, memory_order_relaxed);
    kitd_client_resp_clear(&r);
  }
  return NULL;
}

static double round_blocking(void) {
  atomic_store(&g_stop, 0);
  atomic_store(&g_calls, 0);
  pthread_t t[THREADS];
  double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, blocking_loop, NULL);
  sleep_ms(ROUND_MS);
  atomic_store(&g_stop, 1);
  double t1 = now_s();
  long n = atomic_load(&g_calls);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  g_cpu_us = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e6 / (double)atomic_load(&g_calls);
  return (double)n / (t1 - t0);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, const char *unit, const char *fmt, double *v) {
  fprintf(stderr, "%s rounds:", name);
  for (int i = 0; i < ROUNDS; i++) fprintf(stderr, fmt, v[i]);
  qsort(v, ROUNDS, sizeof *v, cmp);
  fprintf(stderr, " (median");
  fprintf(stderr, fmt, v[ROUNDS / 2]);
  fprintf(stderr, ", range");
  fprintf(stderr, fmt, v[0]);
  fprintf(stderr, " to");
  fprintf(stderr, fmt, v[ROUNDS - 1]);
  fprintf(stderr, ")\n");
  printf("bench %s", name);
  printf(fmt, v[ROUNDS / 2]);
  printf(" %s\n", unit);
}

int main(void) {
  kitd_global_init();
  static const char *const flags[] = {"-max.conns.per.addr", "4000", NULL};
  pid_t pid;
  int port;
  if (kitd_test_lorem_start(flags, &pid, &port)) {
    fprintf(stderr, "bench_client: no lorem-server; skipped\n");
    kitd_global_cleanup();
    return 0;
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  const char *list[] = {addr};
  kitd_instancer *in = NULL;
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "lorem";
  o.method = "POST";
  o.path = "/lorem/word/1/3";
  int rc = kitd_static_instancer_new(list, 1, &in);
  o.instancer = in;
  if (!rc) rc = kitd_client_new(&o, &g_c);
  kitd_instancer_free(in);
  if (rc) {
    fprintf(stderr, "bench_client: client: %s\n", kitd_err_name(rc));
    kitd_test_lorem_stop(pid);
    return 1;
  }
  round_async(); /* warm: the loop, the connections on both sides */
  round_blocking();
  double a[ROUNDS], b[ROUNDS], ac[ROUNDS], bc[ROUNDS];
  for (int i = 0; i < ROUNDS; i++) {
    a[i] = round_async();
    ac[i] = g_cpu_us;
    b[i] = round_blocking();
    bc[i] = g_cpu_us;
  }
  long failed = atomic_load(&g_failed);
  report("client/async/c64", "calls/s", " %.0f", a);
  report("client/blocking/4threads", "calls/s", " %.0f", b);
  report("client/async/c64/cpu", "us/call", " %.2f", ac);
  report("client/blocking/4threads/cpu", "us/call", " %.2f", bc);
  kitd_client_free(g_c);
  kitd_test_lorem_stop(pid);
  kitd_global_cleanup();
  if (failed) fprintf(stderr, "bench_client: %ld calls failed\n", failed);
  return failed != 0;
}
