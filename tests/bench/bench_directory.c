/* SPDX-License-Identifier: MIT */
/* kitd_directory benchmarks:
 *   directory/call_overhead          ns a call on a cached name costs more
 *                                    than kitd_client_call on its client
 *                                    (a no-op transport, one thread)
 *   directory/first_call/p50         a new name, first registry answer
 *                                    included (the Consul double, loopback)
 *   directory/services=1000/...      1,000 services watched by one
 *                                    directory through the double:
 *     watch_threads                  threads the watches run on
 *     agent_connections              most connections to the agent at once
 *     propagation/p99                a TTL flip of one service until its
 *                                    client's set changes, over services
 *                                    past the blocking slots
 *     propagation_within_cap/p99     the same, services holding a slot
 *     .../polled/p99                 the same flips, until a thread that
 *                                    polls kitd_client_count sees them
 * Medians of 5 runs where a figure is a rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/double.h"
#include "kitd/kitd.h"

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* A transport that answers at once: what is left is the pipeline's cost. */
static int noop_call(void *st, kitd_ctx *ctx, const void *rq, void **resp) {
  (void)st, (void)ctx, (void)rq;
  if (resp) *resp = NULL;
  return 0;
}
static int noop_factory(void *arg, const kitd_instance *in, kitd_endpoint **out) {
  (void)arg, (void)in;
  return kitd_endpoint_new(noop_call, NULL, NULL, out);
}

static int static_one(void *arg, const char *service, kitd_instancer **out) {
  (void)arg, (void)service;
  const char *a = "10.0.0.1:80";
  return kitd_static_instancer_new(&a, 1, out);
}

static kitd_client_opts noop_template(kitd_factory *f) {
  kitd_client_opts co;
  kitd_client_opts_init(&co);
  *f = (kitd_factory){noop_factory, NULL, NULL};
  co.factory = f;
  return co;
}

static void call_overhead(void) {
  kitd_factory f;
  kitd_client_opts co = noop_template(&f);
  kitd_directory_opts o;
  kitd_directory_opts_init(&o);
  o.new_instancer = static_one;
  o.client = &co;
  kitd_directory *d;
  if (kitd_directory_new(&o, &d)) return;
  /* some other names in the table, as in a real process */
  char name[32];
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp;
  for (int i = 0; i < 50; i++) {
    snprintf(name, sizeof name, "svc-%d", i);
    kitd_directory_call(d, name, &ctx, NULL, &resp);
  }
  kitd_client *c;
  kitd_directory_get(d, "svc-7", &c);
  enum {
    N = 2000000,
    RUNS = 5
  };
  int64_t diff[RUNS], base[RUNS];
  for (int r = 0; r < RUNS; r++) {
    int64_t t0 = kitd_now_ns();
    for (int i = 0; i < N; i++) kitd_client_call(c, &ctx, NULL, &resp);
    int64_t t1 = kitd_now_ns();
    for (int i = 0; i < N; i++) kitd_directory_call(d, "svc-7", &ctx, NULL, &resp);
    int64_t t2 = kitd_now_ns();
    base[r] = (t1 - t0) / (N / 1000); /* ps per call */
    diff[r] = ((t2 - t1) - (t1 - t0)) / (N / 1000);
  }
  qsort(diff, RUNS, sizeof diff[0], cmp64);
  qsort(base, RUNS, sizeof base[0], cmp64);
  printf("bench directory/client_call %.1f ns\n", (double)base[RUNS / 2] / 1000.0);
  printf("bench directory/call_overhead %.1f ns\n", (double)diff[RUNS / 2] / 1000.0);
  kitd_client_free(c);
  kitd_directory_free(d);
}

static kitd_directory *consul_dir(const kitd_test_agent *a, unsigned max_clients) {
  static kitd_factory f;
  kitd_client_opts co = noop_template(&f);
  kitd_consul *c = NULL;
  if (kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c) || kitd_consul_set_address(c, a->url, NULL))
    return NULL;
  kitd_directory_opts o;
  kitd_directory_opts_init(&o);
  o.consul = c;
  o.client = &co;
  o.max_clients = max_clients;
  kitd_directory *d = NULL;
  kitd_directory_new(&o, &d);
  kitd_consul_free(c);
  return d;
}

static int call_once(kitd_directory *d, const char *name) {
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, 5000);
  void *resp;
  return kitd_directory_call(d, name, &ctx, NULL, &resp);
}

/* When the client's set became empty: the instancer tells its subscribers
 * in the order they came, so this runs just after the client's own
 * endpointer has the new set, on the watch thread. */
struct emptied {
  int64_t at;
};

static void on_event(void *arg, const kitd_event *ev) {
  struct emptied *e = arg;
  if (ev->err == 0 && ev->count == 0 && e->at == 0) e->at = kitd_now_ns();
}

/* TTL flips of `n` services from name[first..]: in lat, from the PUT until
 * the client's set changed; in polled, until a thread polling
 * kitd_client_count every 100 us saw it (that adds the poller's wake-up,
 * which on a busy 2-core machine can be milliseconds). */
static int flips(kitd_test_agent *a, kitd_directory *d, char (*name)[48], char (*id)[64], int first,
                 int n, int64_t *lat, int64_t *polled) {
  int done = 0;
  for (int k = 0; k < n; k++) {
    int i = first + k;
    kitd_client *c = NULL;
    if (kitd_directory_get(d, name[i], &c)) break;
    struct emptied e = {0};
    kitd_instancer *in = kitd_client_instancer(c);
    if (kitd_instancer_subscribe(in, on_event, &e)) {
      kitd_client_free(c);
      break;
    }
    int64_t t0 = kitd_now_ns();
    int ok = kitd_test_agent_ttl(a, id[i], "fail") == 200;
    while (ok && kitd_client_count(c) != 0 && kitd_now_ns() - t0 < 5000000000LL) usleep(100);
    int64_t t1 = kitd_now_ns();
    ok = ok && kitd_client_count(c) == 0;
    kitd_instancer_unsubscribe(in, on_event, &e);
    kitd_client_free(c);
    if (!ok || e.at == 0) break;
    lat[done] = e.at - t0;
    polled[done++] = t1 - t0;
    kitd_test_agent_ttl(a, id[i], "pass");
  }
  return done;
}

static void print_ms(const char *what, int64_t *v, int n) {
  qsort(v, (size_t)n, sizeof v[0], cmp64);
  printf("bench directory/services=1000/%s/p50 %.3f ms\n", what, (double)v[n / 2] / 1e6);
  printf("bench directory/services=1000/%s/p99 %.3f ms\n", what, (double)v[(n * 99) / 100] / 1e6);
}

static int services_1000(kitd_test_agent *a) {
  enum {
    N = 1000,
    FLIPS = 90
  };
  static char name[N][48], id[N][64];
  for (int i = 0; i < N; i++) {
    snprintf(name[i], sizeof name[i], "bench-svc-%d", i);
    snprintf(id[i], sizeof id[i], "bench-svc-%d-1", i);
    if (kitd_test_agent_register(a, name[i], id[i], "10.2.0.1", 1000 + i, NULL, "passing", 3600) !=
        200)
      return -1;
  }
  kitd_test_agent_http(a, "PUT", "/_double/stats/reset", NULL, NULL);
  int t_before = kitd_test_threads();
  kitd_directory *d = consul_dir(a, N);
  if (!d) return -1;
  for (int i = 0; i < N; i++)
    if (call_once(d, name[i])) {
      fprintf(stderr, "bench: first call to %s failed\n", name[i]);
      kitd_directory_free(d);
      return -1;
    }
  int t_after = kitd_test_threads();
  /* the directory's eviction thread is not a watch thread */
  printf("bench directory/services=1000/watch_threads %d threads\n", t_after - t_before - 1);
  static int64_t lat[FLIPS], latcap[FLIPS], pol[FLIPS], polcap[FLIPS];
  /* created first: services 0..93 hold the blocking slots (100 - 6) */
  int n1 = flips(a, d, name, id, 0, FLIPS, latcap, polcap);
  int n2 = flips(a, d, name, id, 200, FLIPS, lat, pol);
  long conns = kitd_test_agent_stat(a, "max_connections");
  /* the bench's own helper holds one kept-alive connection too */
  printf("bench directory/services=1000/agent_connections %ld connections\n", conns - 1);
  if (n1 > 0) {
    print_ms("propagation_within_cap", latcap, n1);
    print_ms("propagation_within_cap/polled", polcap, n1);
  }
  if (n2 > 0) {
    print_ms("propagation", lat, n2);
    print_ms("propagation/polled", pol, n2);
  }
  kitd_directory_free(d);
  return n1 == FLIPS && n2 == FLIPS ? 0 : -1;
}

static int first_call(kitd_test_agent *a) {
  enum {
    N = 100
  };
  char name[48], id[64];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "first-%d", i);
    snprintf(id, sizeof id, "first-%d-1", i);
    if (kitd_test_agent_register(a, name, id, "10.3.0.1", 80, NULL, "passing", 3600) != 200)
      return -1;
  }
  kitd_directory *d = consul_dir(a, 1000);
  if (!d) return -1;
  int64_t lat[N];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "first-%d", i);
    int64_t t0 = kitd_now_ns();
    if (call_once(d, name)) {
      kitd_directory_free(d);
      return -1;
    }
    lat[i] = kitd_now_ns() - t0;
  }
  kitd_directory_free(d);
  qsort(lat, N, sizeof lat[0], cmp64);
  printf("bench directory/first_call/p50 %.3f ms\n", (double)lat[N / 2] / 1e6);
  return 0;
}

int main(void) {
  kitd_global_init();
  call_overhead();
  kitd_test_agent a;
  const char *extra[] = {"--max-conns-per-client", "200", NULL};
  int rc = kitd_test_agent_start(&a, extra);
  if (rc) {
    fprintf(stderr, "bench_directory: no Consul double; Consul benches skipped\n");
    kitd_global_cleanup();
    return rc < 0;
  }
  /* 1,000 services first, on a fresh agent: a freed directory's blocking
   * queries keep their agent connections until their wait ends, as with
   * Consul, and would count in the next one's figure */
  rc = services_1000(&a) || first_call(&a);
  kitd_test_agent_stop(&a);
  kitd_global_cleanup();
  return rc;
}
