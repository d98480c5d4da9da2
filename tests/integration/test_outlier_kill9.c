/* SPDX-License-Identifier: MIT */
/* kill -9 of one of three real lorem-server processes while a client
 * calls them at a steady 1,000 calls a second (four threads, 250 each)
 * through retry over a balancer with outlier ejection (issue 12): no call
 * may fail, the dead instance must be ejected soon after the kill, and at
 * most 10 attempts may reach it after its ejection.
 *
 * The servers listen on 127.0.0.1 only. Every one is killed at the end,
 * whatever happened: the teardown kills and reaps them, and each is
 * started with PR_SET_PDEATHSIG, so that it dies with this process even if
 * the test itself is killed (a timeout). Figures go to stderr as
 * `bench lb/outlier/...` lines. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/double.h"
#include "../support/lorem_proc.h"
#include "kitd/kitd.h"

#define SERVERS 3
#define THREADS 4
#define RATE 1000       /* calls a second, all threads together */
#define RUN_MS 6000     /* the whole run */
#define KILL_AT_MS 2000 /* the victim's SIGKILL */
#define EJECT_AFTER 5   /* consecutive failures (the balancer's default) */

struct server {
  pid_t pid;
  char addr[64];
};

static struct server srv[SERVERS];
static int have_servers;

/* Attempts as the transport saw them, for the victim's address. */
static struct {
  char victim[64];
  atomic_long attempts, failed;
  atomic_long streak;      /* consecutive failures so far */
  atomic_llong ejected_ns; /* when the EJECT_AFTER-th one in a row returned */
  atomic_long after_eject; /* attempts started after that */
  atomic_llong killed_ns;
} V;

static void stop_servers(void) {
  for (int i = 0; i < SERVERS; i++)
    if (srv[i].pid > 0) {
      kitd_test_lorem_stop(srv[i].pid);
      srv[i].pid = 0;
    }
}

static int setup(void **state) {
  (void)state;
  kitd_global_init();
  char bin[512];
  if (kitd_test_lorem_bin(bin, sizeof bin)) {
    fprintf(stderr, "SKIP: %s is not built\n", bin);
    return 0;
  }
  for (int i = 0; i < SERVERS; i++) {
    int port;
    if (kitd_test_lorem_start(NULL, &srv[i].pid, &port)) {
      fprintf(stderr, "lorem-server %d did not start\n", i);
      stop_servers();
      return -1;
    }
    snprintf(srv[i].addr, sizeof srv[i].addr, "127.0.0.1:%d", port);
  }
  have_servers = 1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  stop_servers();
  kitd_global_cleanup();
  return 0;
}

/* ---- a transport that counts the victim's attempts ---- */

struct counted {
  kitd_endpoint *inner;
  int victim;
};

static int counted_call(void *st, kitd_ctx *ctx, const void *rq, void **resp) {
  struct counted *c = st;
  if (!c->victim) return kitd_endpoint_call(c->inner, ctx, rq, resp);
  atomic_fetch_add(&V.attempts, 1);
  if (atomic_load(&V.ejected_ns)) atomic_fetch_add(&V.after_eject, 1);
  int rc = kitd_endpoint_call(c->inner, ctx, rq, resp);
  if (rc == 0) {
    atomic_store(&V.streak, 0);
    return 0;
  }
  atomic_fetch_add(&V.failed, 1);
  long long zero = 0;
  if (atomic_fetch_add(&V.streak, 1) + 1 >= EJECT_AFTER)
    atomic_compare_exchange_strong(&V.ejected_ns, &zero, (long long)kitd_now_ns());
  return rc;
}

static void counted_close(void *st) {
  struct counted *c = st;
  kitd_endpoint_unref(c->inner);
  free(c);
}

static int counted_factory(void *arg, const kitd_instance *in, kitd_endpoint **out) {
  struct counted *c = calloc(1, sizeof *c);
  if (!c) return KITD_ENOMEM;
  c->victim = strcmp(kitd_instance_address(in), V.victim) == 0;
  int rc = kitd_http_endpoint_new(arg, kitd_instance_address(in), &c->inner);
  if (rc) {
    free(c);
    return rc;
  }
  return kitd_endpoint_new(counted_call, counted_close, c, out);
}

static void release_http(void *arg) { kitd_http_free(arg); }

/* ---- the callers ---- */

struct caller {
  pthread_t th;
  kitd_endpoint *call;
  int64_t start_ns;
  int index;
  long calls, failed;
  int first_err;
  int64_t *lat;
  size_t nlat;
};

static void *caller_main(void *arg) {
  struct caller *c = arg;
  const int64_t period = (int64_t)THREADS * 1000000000LL / RATE;
  /* the threads' schedules are offset, so the calls are evenly spaced */
  int64_t next = c->start_ns + c->index * (period / THREADS);
  int64_t end = c->start_ns + (int64_t)RUN_MS * 1000000;
  while (next < end) {
    int64_t now = kitd_now_ns();
    if (now < next) {
      struct timespec ts = {(time_t)((next - now) / 1000000000), (long)((next - now) % 1000000000)};
      nanosleep(&ts, NULL);
    }
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 2000);
    void *resp = NULL;
    int64_t t0 = kitd_now_ns();
    int rc = kitd_endpoint_call(c->call, &ctx, NULL, &resp);
    if (c->nlat < (size_t)(RUN_MS * RATE / 1000 / THREADS + 16))
      c->lat[c->nlat++] = kitd_now_ns() - t0;
    c->calls++;
    if (rc) {
      if (!c->failed) c->first_err = rc;
      c->failed++;
    }
    next += period;
  }
  return NULL;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void test_kill9_at_1000_calls_per_second(void **s) {
  (void)s;
  if (!have_servers) {
    skip();
    return;
  }
  const char *addrs[SERVERS];
  for (int i = 0; i < SERVERS; i++) addrs[i] = srv[i].addr;
  const int victim = 1;
  snprintf(V.victim, sizeof V.victim, "%s", srv[victim].addr);

  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(addrs, SERVERS, &in), 0);
  kitd_http_opts ho;
  kitd_http_opts_init(&ho);
  ho.method = "POST";
  ho.path = "/lorem/word/1/3";
  kitd_http *http = NULL;
  assert_int_equal(kitd_http_new(&ho, &http), 0);
  kitd_factory f = {counted_factory, http, release_http};
  kitd_endpointer *ep = NULL;
  assert_int_equal(kitd_endpointer_new(in, &f, NULL, &ep), 0);
  kitd_instancer_free(in); /* the endpointer holds it */
  kitd_balancer_opts bo;
  kitd_balancer_opts_init(&bo); /* ejection after 5 in a row, for 30 s */
  assert_int_equal(bo.eject_consecutive, EJECT_AFTER);
  kitd_balancer *b = NULL;
  assert_int_equal(kitd_balancer_weighted_new(ep, &bo, &b), 0);
  kitd_endpointer_free(ep);
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro); /* 3 attempts, the default budget */
  kitd_endpoint *call = NULL;
  assert_int_equal(kitd_retry_new(b, &ro, &call), 0);
  kitd_balancer_free(b);

  /* warm: every server answers before the clock starts */
  for (int i = 0; i < 30; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, kitd_test_ms(2000));
    void *resp = NULL;
    assert_int_equal(kitd_endpoint_call(call, &ctx, NULL, &resp), 0);
  }
  assert_true(atomic_load(&V.attempts) > 0 && atomic_load(&V.failed) == 0);
  long before_kill = 0;

  struct caller c[THREADS];
  memset(c, 0, sizeof c);
  int64_t start = kitd_now_ns() + 20000000;
  for (int i = 0; i < THREADS; i++) {
    c[i].call = call;
    c[i].start_ns = start;
    c[i].index = i;
    c[i].lat = calloc(RUN_MS * RATE / 1000 / THREADS + 16, sizeof *c[i].lat);
    assert_non_null(c[i].lat);
    assert_int_equal(pthread_create(&c[i].th, NULL, caller_main, &c[i]), 0);
  }
  int64_t kill_at = start + (int64_t)KILL_AT_MS * 1000000;
  while (kitd_now_ns() < kill_at) usleep(1000);
  before_kill = atomic_load(&V.attempts);
  atomic_store(&V.killed_ns, (long long)kitd_now_ns());
  kill(srv[victim].pid, SIGKILL);
  waitpid(srv[victim].pid, NULL, 0);
  srv[victim].pid = 0;
  long calls = 0, failed = 0;
  int first_err = 0;
  size_t nlat = 0;
  int64_t *lat = calloc(RUN_MS * RATE / 1000 + 16 * THREADS, sizeof *lat);
  assert_non_null(lat);
  for (int i = 0; i < THREADS; i++) {
    pthread_join(c[i].th, NULL);
    calls += c[i].calls;
    failed += c[i].failed;
    if (!first_err) first_err = c[i].first_err;
    memcpy(lat + nlat, c[i].lat, c[i].nlat * sizeof *lat);
    nlat += c[i].nlat;
    free(c[i].lat);
  }
  int64_t took = kitd_now_ns() - start;
  kitd_endpoint_unref(call);
  qsort(lat, nlat, sizeof *lat, cmp64);
  long long ejected = atomic_load(&V.ejected_ns), killed = atomic_load(&V.killed_ns);
  long victim_failed = atomic_load(&V.failed), after = atomic_load(&V.after_eject);
  fprintf(stderr, "bench lb/outlier/calls %ld calls in %.2f s (%.0f a second)\n", calls,
          (double)took / 1e9, (double)calls * 1e9 / (double)took);
  fprintf(stderr, "bench lb/outlier/failed_calls %ld calls%s%s\n", failed, failed ? " first: " : "",
          failed ? kitd_err_name(first_err) : "");
  fprintf(stderr, "bench lb/outlier/victim_attempts_before_kill %ld attempts\n", before_kill);
  fprintf(stderr, "bench lb/outlier/victim_failed_attempts %ld attempts\n", victim_failed);
  if (ejected)
    fprintf(stderr, "bench lb/outlier/ejected_after_kill %.1f ms\n",
            (double)(ejected - killed) / 1e6);
  fprintf(stderr, "bench lb/outlier/attempts_after_ejection %ld attempts\n", after);
  fprintf(stderr, "bench lb/outlier/call_p99 %.3f ms (p50 %.3f ms)\n",
          (double)lat[nlat * 99 / 100] / 1e6, (double)lat[nlat / 2] / 1e6);
  free(lat);

  /* the rate held: at least 90 % of the scheduled calls were made (half
   * under valgrind or a sanitizer, whose timeouts are scaled) */
  assert_true(calls >= RUN_MS * RATE / 1000 * (kitd_test_ms(1) > 1 ? 5 : 9) / 10);
  /* the victim took its share until the kill */
  assert_true(before_kill >= KILL_AT_MS * RATE / 1000 / SERVERS / 2);
  assert_int_equal(failed, 0);
  /* ejected, and soon: its EJECT_AFTER-th failure in a row came within a
   * second of the kill */
  assert_true(ejected != 0);
  assert_true(ejected - killed < kitd_test_ms(1000) * 1000000LL);
  assert_true(after <= 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill9_at_1000_calls_per_second),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
