/* SPDX-License-Identifier: MIT */
/* Consul benchmarks against the Consul double:
 *   consul/propagation/p50, /p99  registry write → subscriber sees the new
 *                                 set, over >= 1,000 changes (TTL pass/fail)
 *   consul/idle_requests_per_min  one idle watcher, scaled to the default
 *                                 5-minute wait (measured with wait=2s)
 *   consul/outage_requests_per_min one watcher with the agent down, after
 *                                 the first second
 * Every change is isolated for its watcher: the bench spreads changes over
 * 64 services and changes each service at most once per 1.1 s, so the
 * watch loop's token bucket (burst 2, one token per second) never delays
 * one. The figure is the propagation of an isolated change, which is what
 * the bucket promises not to slow down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/double.h"
#include "../support/recorder.h"
#include "kitd/consul.h"
#include "kitd/error.h"
#include "kitd/kitd.h"

#define NSVC 64

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void sleep_ns(int64_t ns) {
  if (ns <= 0) return;
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  nanosleep(&ts, NULL);
}

static kitd_consul *client(const kitd_test_agent *a) {
  kitd_consul *c = NULL;
  if (kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c) || kitd_consul_set_address(c, a->url, NULL)) {
    fprintf(stderr, "bench: cannot make a client\n");
    exit(1);
  }
  return c;
}

static int propagation(kitd_test_agent *a, int changes) {
  kitd_consul *c = client(a);
  static kitd_test_recorder rec[NSVC];
  kitd_instancer *in[NSVC];
  char svc[NSVC][64], idA[NSVC][80], idB[NSVC][80];
  int state[NSVC];
  int64_t last[NSVC];
  for (int s = 0; s < NSVC; s++) {
    snprintf(svc[s], sizeof svc[s], "bench-%d-%d", (int)getpid(), s);
    snprintf(idA[s], sizeof idA[s], "%s-a", svc[s]);
    snprintf(idB[s], sizeof idB[s], "%s-b", svc[s]);
    if (kitd_test_agent_register(a, svc[s], idA[s], "127.0.0.1", 8001, NULL, "passing", 3600) !=
            200 ||
        kitd_test_agent_register(a, svc[s], idB[s], "127.0.0.1", 8002, NULL, "critical", 3600) !=
            200) {
      fprintf(stderr, "bench: cannot register\n");
      return 1;
    }
    kitd_test_recorder_init(&rec[s]);
    if (kitd_consul_instancer_new(c, svc[s], NULL, NULL, &in[s]) ||
        kitd_instancer_subscribe(in[s], kitd_test_recorder_fn, &rec[s])) {
      fprintf(stderr, "bench: cannot watch\n");
      return 1;
    }
    state[s] = 0;
    last[s] = 0;
  }
  for (int s = 0; s < NSVC; s++)
    if (!kitd_test_recorder_wait_set(&rec[s], "127.0.0.1:8001", 5000)) return 1;
  /* Let every watcher settle into its long poll. */
  sleep_ns(1200 * 1000000LL);
  int64_t *lat = calloc((size_t)changes, sizeof *lat);
  int64_t *put = calloc((size_t)changes, sizeof *put);
  int done = 0;
  for (int i = 0; i < changes; i++) {
    int s = i % NSVC;
    sleep_ns(last[s] + 1100 * 1000000LL - kitd_now_ns());
    state[s] ^= 1;
    const char *want = state[s] ? "127.0.0.1:8001,127.0.0.1:8002" : "127.0.0.1:8001";
    int64_t t0 = kitd_now_ns();
    if (kitd_test_agent_ttl(a, idB[s], state[s] ? "pass" : "fail") != 200) {
      fprintf(stderr, "bench: TTL update failed\n");
      break;
    }
    put[done] = kitd_now_ns() - t0;
    if (!kitd_test_recorder_wait_set(&rec[s], want, 10000)) break;
    pthread_mutex_lock(&rec[s].mu);
    lat[done++] = rec[s].last_ns - t0;
    pthread_mutex_unlock(&rec[s].mu);
    last[s] = kitd_now_ns();
  }
  int rc = 0;
  if (done < changes) {
    fprintf(stderr, "bench: only %d of %d changes seen\n", done, changes);
    rc = 1;
  }
  if (done > 0) {
    qsort(lat, (size_t)done, sizeof *lat, cmp64);
    printf("bench consul/propagation/p50 %.3f ms\n", (double)lat[done / 2] / 1e6);
    printf("bench consul/propagation/p99 %.3f ms\n", (double)lat[(done * 99) / 100] / 1e6);
    printf("bench consul/propagation/changes %d count\n", done);
    qsort(put, (size_t)done, sizeof *put, cmp64);
    printf("bench consul/propagation/put_p50 %.3f ms\n", (double)put[done / 2] / 1e6);
  }
  free(lat);
  free(put);
  for (int s = 0; s < NSVC; s++) {
    kitd_instancer_unsubscribe(in[s], kitd_test_recorder_fn, &rec[s]);
    kitd_instancer_free(in[s]);
    kitd_test_recorder_destroy(&rec[s]);
    kitd_test_agent_deregister(a, idA[s]);
    kitd_test_agent_deregister(a, idB[s]);
  }
  kitd_consul_free(c);
  return rc;
}

/* One idle watcher with wait=2s for `secs` seconds: requests per wait period
 * and per minute at the default 5-minute wait. */
static int idle(kitd_test_agent *a, int secs) {
  kitd_consul *c = client(a);
  char svc[64], id[80];
  snprintf(svc, sizeof svc, "bench-idle-%d", (int)getpid());
  snprintf(id, sizeof id, "%s-1", svc);
  kitd_test_agent_register(a, svc, id, "127.0.0.1", 8001, NULL, "passing", 3600);
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.wait_ms = 2000;
  kitd_test_recorder rec;
  kitd_test_recorder_init(&rec);
  kitd_instancer *in = NULL;
  if (kitd_consul_instancer_new(c, svc, &o, NULL, &in) ||
      kitd_instancer_subscribe(in, kitd_test_recorder_fn, &rec) ||
      !kitd_test_recorder_wait_set(&rec, "127.0.0.1:8001", 5000))
    return 1;
  sleep_ns(500 * 1000000LL);
  long r0 = kitd_test_agent_requests(a, "/v1/health/service/");
  int64_t t0 = kitd_now_ns();
  sleep_ns((int64_t)secs * 1000000000LL);
  long r1 = kitd_test_agent_requests(a, "/v1/health/service/");
  double el = (double)(kitd_now_ns() - t0) / 1e9;
  int rc = 0;
  if (r0 < 0 || r1 < 0) {
    fprintf(stderr, "bench: the agent has no request stats\n");
    rc = 1;
  } else {
    double per_wait = (double)(r1 - r0) / (el / 2.0);
    printf("bench consul/idle_requests_per_wait %.2f requests\n", per_wait);
    /* At the default 5-minute wait (+ jitter up to wait/16). */
    printf("bench consul/idle_requests_per_min %.3f req/min\n", per_wait * 60.0 / 300.0);
  }
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &rec);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&rec);
  kitd_test_agent_deregister(a, id);
  kitd_consul_free(c);
  return rc;
}

/* The agent is down (nothing listens): count the failed requests (one
 * error event each) after the first second. */
static int outage(int secs) {
  kitd_consul *c = NULL;
  kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c);
  kitd_consul_set_address(c, "127.0.0.1:1", NULL);
  kitd_test_recorder rec;
  kitd_test_recorder_init(&rec);
  kitd_instancer *in = NULL;
  if (kitd_consul_instancer_new(c, "bench-outage", NULL, NULL, &in) ||
      kitd_instancer_subscribe(in, kitd_test_recorder_fn, &rec))
    return 1;
  sleep_ns(1000000000LL);
  long e0 = kitd_test_recorder_errors(&rec);
  int64_t t0 = kitd_now_ns();
  sleep_ns((int64_t)secs * 1000000000LL);
  long e1 = kitd_test_recorder_errors(&rec);
  double el = (double)(kitd_now_ns() - t0) / 1e9;
  printf("bench consul/outage_requests_per_min %.1f req/min\n", (double)(e1 - e0) * 60.0 / el);
  printf("bench consul/outage_first_second_requests %ld requests\n", e0);
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &rec);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&rec);
  kitd_consul_free(c);
  return 0;
}

int main(int argc, char **argv) {
  int changes = argc > 1 ? atoi(argv[1]) : 1000;
  if (changes < 1) changes = 1000;
  kitd_global_init();
  kitd_test_agent a;
  if (kitd_test_agent_start(&a, NULL) != 0) return 1;
  int rc = propagation(&a, changes);
  if (!a.real) rc |= idle(&a, 20);
  rc |= outage(20);
  kitd_test_agent_stop(&a);
  kitd_global_cleanup();
  return rc;
}
