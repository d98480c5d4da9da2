/* SPDX-License-Identifier: MIT */
/* Soak: instances register and deregister every few milliseconds in the
 * Consul double while two threads pick and call through retry. Memory must
 * stay flat: the RSS at the end within 10% of the RSS after warm-up.
 * Prints `bench soak/...` lines; exits 1 if the RSS grew more than 10%.
 * Usage: soak_churn [SECONDS=60] [WARMUP=10] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kitd/consul.h"
#include "kitd/kitd.h"
#include "../support/double.h"

#define POOL 16

static atomic_int stop;
static atomic_long calls, call_errors, churns, events;

struct fake {
  char inst[64];
  char *scratch; /* per-endpoint memory, so leaks would show */
};

static void fake_close(void *st) {
  struct fake *f = st;
  free(f->scratch);
  free(f);
}

static int fake_call(void *st, kitd_ctx *c, const void *req, void **resp) {
  (void)c;
  (void)req;
  *resp = ((struct fake *)st)->inst;
  return 0;
}

static int factory(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *instance = kitd_instance_address(rec_);
  (void)arg;
  struct fake *f = calloc(1, sizeof *f);
  if (!f) return KITD_ENOMEM;
  snprintf(f->inst, sizeof f->inst, "%s", instance);
  f->scratch = malloc(4096);
  if (!f->scratch) {
    fake_close(f);
    return KITD_ENOMEM;
  }
  return kitd_endpoint_new(fake_call, fake_close, f, out); /* takes f */
}

static void counter(void *arg, const kitd_event *ev) {
  (void)arg;
  (void)ev;
  atomic_fetch_add(&events, 1);
}

static void *caller(void *arg) {
  kitd_endpoint *r = arg;
  while (!atomic_load(&stop)) {
    kitd_ctx c;
    kitd_ctx_init(&c);
    kitd_ctx_set_timeout_ms(&c, 200);
    void *resp;
    int rc = kitd_endpoint_call(r, &c, NULL, &resp);
    atomic_fetch_add(&calls, 1);
    if (rc) atomic_fetch_add(&call_errors, 1);
  }
  return NULL;
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
  int secs = argc > 1 ? atoi(argv[1]) : 60;
  int warm = argc > 2 ? atoi(argv[2]) : 10;
  if (secs <= warm) secs = warm + 1;
  kitd_global_init();
  kitd_test_agent a;
  int rc = kitd_test_agent_start(&a, NULL);
  if (rc) {
    fprintf(stderr, "soak: no Consul double (%d)\n", rc);
    return 2;
  }
  kitd_consul *c;
  kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c);
  kitd_consul_set_address(c, a.addr, NULL);
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.min_interval_ms = 5; /* follow the churn closely */
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  kitd_endpoint *r;
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  if (kitd_consul_instancer_new(c, "soak", &o, NULL, &in) ||
      kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep) ||
      kitd_balancer_round_robin_new(ep, 0, &b) || kitd_retry_new(b, &ro, &r)) {
    fprintf(stderr, "soak: pipeline set-up failed\n");
    return 2;
  }
  kitd_instancer_subscribe(in, counter, NULL);
  /* Half the pool stays registered, so calls always have somewhere to go. */
  char id[32];
  for (int i = 0; i < POOL / 2; i++) {
    snprintf(id, sizeof id, "soak-%d", i);
    kitd_test_agent_register(&a, "soak", id, "127.0.0.1", 20000 + i, NULL, "passing", 600);
  }
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, caller, r);
  time_t start = time(NULL);
  long rss_warm = 0, rss_max = 0;
  unsigned x = 1;
  while (time(NULL) - start < secs) {
    x = x * 1103515245u + 12345u;
    int k = POOL / 2 + (int)((x >> 16) % (POOL / 2));
    snprintf(id, sizeof id, "soak-%d", k);
    if ((x >> 8) & 1)
      kitd_test_agent_register(&a, "soak", id, "127.0.0.1", 20000 + k, NULL, "passing", 600);
    else kitd_test_agent_deregister(&a, id);
    atomic_fetch_add(&churns, 1);
    usleep(3000);
    long now = rss_kb();
    if (!rss_warm && time(NULL) - start >= warm) rss_warm = now;
    if (rss_warm && now > rss_max) rss_max = now;
  }
  long rss_end = rss_kb();
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  kitd_instancer_unsubscribe(in, counter, NULL);
  kitd_endpoint_unref(r);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_consul_free(c);
  kitd_test_agent_stop(&a);
  double growth = rss_warm ? 100.0 * (double)(rss_end - rss_warm) / (double)rss_warm : 0;
  printf("bench soak/seconds %d s\n", secs);
  printf("bench soak/churn_ops %ld ops\n", atomic_load(&churns));
  printf("bench soak/instancer_events %ld events\n", atomic_load(&events));
  printf("bench soak/calls %ld calls\n", atomic_load(&calls));
  printf("bench soak/call_errors %ld calls\n", atomic_load(&call_errors));
  printf("bench soak/rss_after_warmup %ld KiB\n", rss_warm);
  printf("bench soak/rss_end %ld KiB\n", rss_end);
  printf("bench soak/rss_max %ld KiB\n", rss_max);
  printf("bench soak/rss_growth %.1f %%\n", growth);
  kitd_global_cleanup();
  return growth > 10.0 ? 1 : 0;
}
