/* SPDX-License-Identifier: MIT */
/* Metrics: exact counts from two threads, what a pipeline with failures
 * and retries counts, the watch's state, the Prometheus text (checked by
 * promtool), the walk, argument checks and any free order. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "kitd/kitd.h"
#include "kitd/metrics.h"

/* Instance "bad:1" fails every call with KITD_EHTTP; the others succeed. */
static int ok_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st, (void)ctx;
  *resp = (void *)req;
  return 0;
}
static int bad_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st, (void)req, (void)resp;
  kitd_ctx_set_status(ctx, 503);
  kitd_ctx_set_detail(ctx, "HTTP 503");
  return KITD_EHTTP;
}
static int factory(void *arg, const kitd_instance *rec, kitd_endpoint **out) {
  (void)arg;
  int bad = !strncmp(kitd_instance_address(rec), "bad", 3);
  return kitd_endpoint_new(bad ? bad_call : ok_call, NULL, NULL, out);
}

typedef struct pipe {
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  kitd_endpoint *call;
} pipe_t;

/* A pipeline counted under `name`; the retry logs its picks to `lg`
 * (NULL: none). */
static void pipe_new_logged(pipe_t *p, kitd_metrics *m, const char *name, const char *const *addrs,
                            size_t n, int budget_percent, kitd_logger *lg) {
  assert_int_equal(kitd_static_instancer_new(addrs, n, &p->in), 0);
  assert_int_equal(kitd_endpointer_new(p->in, &(kitd_factory){factory, NULL, NULL}, NULL, &p->ep),
                   0);
  assert_int_equal(kitd_balancer_round_robin_new(p->ep, KITD_RR_GLOBAL, &p->b), 0);
  kitd_balancer_set_seed(p->b, 0);
  assert_int_equal(kitd_balancer_set_metrics(p->b, m, name), 0);
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.metrics = m;
  ro.metrics_name = name;
  ro.budget_percent = budget_percent;
  ro.budget_min_per_sec = 0;
  ro.logger = lg;
  assert_int_equal(kitd_retry_new(p->b, &ro, &p->call), 0);
  assert_int_equal(kitd_metrics_watch(m, p->in, name), 0);
}

static void pipe_new(pipe_t *p, kitd_metrics *m, const char *name, const char *const *addrs,
                     size_t n, int budget_percent) {
  pipe_new_logged(p, m, name, addrs, n, budget_percent, NULL);
}

static void pipe_free(pipe_t *p) {
  kitd_endpoint_unref(p->call);
  kitd_balancer_free(p->b);
  kitd_endpointer_free(p->ep);
  kitd_instancer_free(p->in);
}

/* n calls through `call`, each returning `want`. */
static void call_n(kitd_endpoint *call, int n, int want) {
  for (int i = 0; i < n; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp;
    assert_int_equal(kitd_endpoint_call(call, &ctx, NULL, &resp), want);
  }
}

/* The value of one series found by the walk: name and label values. */
struct find {
  const char *name, *l1, *l2;
  double value;
  uint64_t count;
  int found;
};
static void find_fn(void *arg, const kitd_metric *m) {
  struct find *f = arg;
  if (strcmp(m->name, f->name)) return;
  if (f->l1 && (m->nlabels < 1 || strcmp(m->labels[0].value, f->l1))) return;
  if (f->l2 && (m->nlabels < 2 || strcmp(m->labels[1].value, f->l2))) return;
  f->found++;
  f->value = m->value;
  f->count = m->count;
}
static double value_of(kitd_metrics *m, const char *name, const char *l1, const char *l2) {
  struct find f = {name, l1, l2, 0, 0, 0};
  assert_int_equal(kitd_metrics_walk(m, find_fn, &f), 0);
  if (f.found != 1) fail_msg("%s{%s,%s}: found %d times", name, l1, l2 ? l2 : "", f.found);
  return f.value;
}

/* The count of the service's latency histogram: the calls it observed. */
static uint64_t observed(kitd_metrics *m, const char *service) {
  struct find f = {"kitd_call_duration_seconds", service, NULL, 0, 0, 0};
  assert_int_equal(kitd_metrics_walk(m, find_fn, &f), 0);
  assert_int_equal(f.found, 1);
  return f.count;
}

/* --- exactness: 10^6 calls from 2 threads count 10^6 --- */

#define CALLS_PER_THREAD 500000
static void *caller(void *arg) {
  kitd_endpoint *call = arg;
  for (int i = 0; i < CALLS_PER_THREAD; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp;
    if (kitd_endpoint_call(call, &ctx, NULL, &resp) != 0) abort();
  }
  return NULL;
}

static void exact_two_threads(void **state) {
  (void)state;
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(&m), 0);
  const char *addrs[] = {"a:1", "b:1", "c:1"};
  pipe_t p;
  pipe_new(&p, m, "exact", addrs, 3, 20);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, caller, p.call), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  assert_true(value_of(m, "kitd_calls_total", "exact", NULL) == 2 * CALLS_PER_THREAD);
  assert_true(value_of(m, "kitd_attempts_total", "exact", NULL) == 2 * CALLS_PER_THREAD);
  assert_true(value_of(m, "kitd_retries_total", "exact", NULL) == 0);
  assert_true(value_of(m, "kitd_calls_outstanding", "exact", NULL) == 0);
  double picks = 0;
  for (int i = 0; i < 3; i++) picks += value_of(m, "kitd_instance_picks_total", "exact", addrs[i]);
  assert_true(picks == 2 * CALLS_PER_THREAD);
  /* A global rotation over 3: each instance a third, to the call. */
  assert_true(value_of(m, "kitd_instance_picks_total", "exact", "a:1") ==
              2 * CALLS_PER_THREAD / 3 + (2 * CALLS_PER_THREAD % 3 > 0));
  /* Untimed retry: the histogram samples one call in 1024 per thread, its
   * first and every 1024th after it. */
  assert_true(observed(m, "exact") == 2 * ((CALLS_PER_THREAD + 1023) / 1024));
  pipe_free(&p);
  kitd_metrics_free(m);
}

/* --- failures, retries, budget, ejections, the watch --- */

/* Records of a logger that keeps none. */
static void drop_record(void *arg, const kitd_log_record *rec) { (void)arg, (void)rec; }

/* The checks of failures_and_retries, on a retry logging its picks to lg
 * (its loop with the log calls) or not. */
static void failures_and_retries_on(kitd_logger *lg) {
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(&m), 0);
  const char *addrs[] = {"bad:1", "good:1"};
  pipe_t p;
  pipe_new_logged(&p, m, "lorem", addrs, 2, -1, lg); /* no budget */
  /* seed 0 and one shared rotation: every call picks bad:1 first, fails,
   * and its retry takes good:1. 10 calls: 10 retried. */
  call_n(p.call, 10, 0);
  assert_true(value_of(m, "kitd_calls_total", "lorem", NULL) == 10);
  assert_true(value_of(m, "kitd_retries_total", "lorem", NULL) == 10);
  assert_true(value_of(m, "kitd_attempts_total", "lorem", NULL) == 20);
  assert_true(value_of(m, "kitd_instance_failures_total", "lorem", "bad:1") == 10);
  assert_true(value_of(m, "kitd_instance_failures_total", "lorem", "good:1") == 0);
  assert_true(value_of(m, "kitd_instance_picks_total", "lorem", "bad:1") == 10);
  assert_true(value_of(m, "kitd_instance_picks_total", "lorem", "good:1") == 10);
  /* Untimed: the histogram sampled the thread's first call of the
   * pipeline (timed from its first attempt to its retry's end), and not
   * the others, whose first attempt read no clock. */
  assert_true(observed(m, "lorem") == 1);
  /* A set of only the bad instance: calls fail with EHTTP. */
  const char *only_bad[] = {"bad:1"};
  assert_int_equal(kitd_static_instancer_set(p.in, only_bad, 1), 0);
  call_n(p.call, 4, KITD_EHTTP);
  assert_true(value_of(m, "kitd_call_failures_total", "lorem", "EHTTP") == 4);
  assert_true(value_of(m, "kitd_calls_total", "lorem", NULL) == 14);
  /* 3 attempts each: 8 more retries. */
  assert_true(value_of(m, "kitd_retries_total", "lorem", NULL) == 18);
  assert_true(value_of(m, "kitd_calls_outstanding", "lorem", NULL) == 0);
  assert_true(observed(m, "lorem") == 1);
  /* The watch: a good set, then a failure with its text. */
  assert_true(value_of(m, "kitd_watch_up", "lorem", NULL) == 1);
  assert_true(value_of(m, "kitd_watch_instances", "lorem", NULL) == 1);
  assert_int_equal(kitd_static_instancer_fail(p.in, KITD_ECONNECT, "connect \"x\" refused\n"), 0);
  assert_true(value_of(m, "kitd_watch_up", "lorem", NULL) == 0);
  assert_true(value_of(m, "kitd_watch_error", "lorem", "connect \"x\" refused\n") == 1);
  assert_true(value_of(m, "kitd_watch_requests_total", "lorem", NULL) == 3);
  assert_true(value_of(m, "kitd_watch_errors_total", "lorem", NULL) == 1);
  assert_true(value_of(m, "kitd_watch_last_good_age_seconds", "lorem", NULL) >= 0);
  /* Recovered: up again, the last error kept at 0. */
  assert_int_equal(kitd_static_instancer_set(p.in, addrs, 2), 0);
  assert_true(value_of(m, "kitd_watch_up", "lorem", NULL) == 1);
  assert_true(value_of(m, "kitd_watch_error", "lorem", "connect \"x\" refused\n") == 0);
  assert_true(value_of(m, "kitd_watch_requests_total", "lorem", NULL) == 4);
  /* First attempts that succeed untimed: counted, not observed. */
  const char *only_good[] = {"good:1"};
  assert_int_equal(kitd_static_instancer_set(p.in, only_good, 1), 0);
  call_n(p.call, 5, 0);
  assert_true(value_of(m, "kitd_calls_total", "lorem", NULL) == 19);
  assert_true(value_of(m, "kitd_retries_total", "lorem", NULL) == 18);
  assert_true(value_of(m, "kitd_calls_outstanding", "lorem", NULL) == 0);
  assert_true(observed(m, "lorem") == 1);
  /* The registry outlives what it counted, or not: any order. */
  kitd_metrics_free(m);
  pipe_free(&p);
}

static void failures_and_retries(void **state) {
  (void)state;
  failures_and_retries_on(NULL);
  /* A retry with a debug logger runs another copy of its loop: it counts
   * the same. */
  kitd_logger *lg;
  assert_int_equal(kitd_logger_new(KITD_LOG_DEBUG, drop_record, NULL, KITD_LOG_LOGFMT, &lg), 0);
  failures_and_retries_on(lg);
  kitd_logger_free(lg);
}

static void budget_refusals(void **state) {
  (void)state;
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(&m), 0);
  const char *addrs[] = {"bad:1", "bad:2"};
  pipe_t p;
  pipe_new(&p, m, "spent", addrs, 2, 0); /* 0 %, 0 per second: no retry */
  call_n(p.call, 3, KITD_EHTTP);
  assert_true(value_of(m, "kitd_retry_budget_refusals_total", "spent", NULL) == 3);
  assert_true(value_of(m, "kitd_retries_total", "spent", NULL) == 0);
  pipe_free(&p);
  kitd_metrics_free(m);
}

static void ejections(void **state) {
  (void)state;
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(&m), 0);
  const char *addrs[] = {"bad:1", "good:1", "good:2"};
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  assert_int_equal(kitd_static_instancer_new(addrs, 3, &in), 0);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  kitd_balancer_opts bo;
  kitd_balancer_opts_init(&bo);
  bo.eject_consecutive = 2;
  bo.eject_max_percent = 50;
  bo.slow_start_ms = 0;
  assert_int_equal(kitd_balancer_weighted_new(ep, &bo, &b), 0);
  assert_int_equal(kitd_balancer_set_metrics(b, m, "w"), 0);
  assert_int_equal(kitd_balancer_set_metrics(b, m, "w"), KITD_EINVAL);
  for (int i = 0; i < 30; i++) {
    kitd_pick pk;
    assert_int_equal(kitd_balancer_pick(b, &pk), 0);
    int bad = !strcmp(kitd_instance_address(pk.instance), "bad:1");
    kitd_balancer_done(b, &pk, bad ? KITD_ECONNECT : 0, 1000);
  }
  assert_true(value_of(m, "kitd_instance_ejections_total", "w", "bad:1") == 1);
  assert_true(value_of(m, "kitd_instance_failures_total", "w", "bad:1") == 2);
  assert_true(value_of(m, "kitd_instance_picks_total", "w", "good:1") +
                  value_of(m, "kitd_instance_picks_total", "w", "good:2") ==
              28);
  /* An instance that leaves takes its series with it. */
  assert_int_equal(kitd_static_instancer_set(in, addrs + 1, 2), 0);
  struct find f = {"kitd_instance_picks_total", "w", "bad:1", 0, 0, 0};
  assert_int_equal(kitd_metrics_walk(m, find_fn, &f), 0);
  assert_int_equal(f.found, 0);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_metrics_free(m);
}

/* --- the Prometheus text --- */

static void prometheus_text(void **state) {
  (void)state;
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(&m), 0);
  const char *addrs[] = {"bad:1", "good:1"};
  pipe_t p;
  pipe_new(&p, m, "lo\"rem\\x", addrs, 2, -1);
  call_n(p.call, 6, 0);
  kitd_static_instancer_fail(p.in, KITD_ETIMEDOUT, "registry slow\nsecond line");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_int_equal(kitd_metrics_write_prometheus(m, f), 0);
  fclose(f);
  assert_non_null(strstr(text, "# TYPE kitd_calls_total counter\n"
                               "kitd_calls_total{service=\"lo\\\"rem\\\\x\"} 6\n"));
  assert_non_null(strstr(text, "# TYPE kitd_call_duration_seconds histogram\n"));
  assert_non_null(strstr(text, "kitd_call_duration_seconds_bucket{service=\"lo\\\"rem\\\\x\","
                               "le=\"+Inf\"}"));
  assert_non_null(strstr(text, "kitd_call_duration_seconds_count{service=\"lo\\\"rem\\\\x\"}"));
  assert_non_null(strstr(text, "error=\"registry slow\\nsecond line\"} 1\n"));
  assert_non_null(strstr(text, "kitd_instance_failures_total{service=\"lo\\\"rem\\\\x\","
                               "instance=\"bad:1\"} 6\n"));
  /* promtool (Debian's prometheus package) must accept it. */
  FILE *pt = popen("promtool check metrics", "w");
  assert_non_null(pt);
  fwrite(text, 1, len, pt);
  int st = pclose(pt);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("promtool rejected:\n%s", text);
  free(text);
  pipe_free(&p);
  kitd_metrics_free(m);
}

/* kitd_client_opts.metrics: calls, instances and the watch under the
 * service name, gone with the client. */
static void client_counts(void **state) {
  (void)state;
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(&m), 0);
  const char *addrs[] = {"a:1", "bad:1"};
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(addrs, 2, &in), 0);
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "users";
  o.instancer = in;
  o.factory = &(kitd_factory){factory, NULL, NULL};
  o.metrics = m;
  kitd_client *c;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  for (int i = 0; i < 4; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp = NULL;
    assert_int_equal(kitd_client_call(c, &ctx, NULL, &resp), 0);
  }
  assert_true(value_of(m, "kitd_calls_total", "users", NULL) == 4);
  assert_true(value_of(m, "kitd_instance_picks_total", "users", "a:1") +
                  value_of(m, "kitd_instance_picks_total", "users", "bad:1") ==
              4 + value_of(m, "kitd_retries_total", "users", NULL));
  assert_true(value_of(m, "kitd_watch_instances", "users", NULL) == 2);
  /* The client's retry has a timeout (10 s by default): every call timed. */
  assert_true(observed(m, "users") == 4);
  kitd_client_free(c);
  kitd_instancer_free(in);
  struct find f = {"kitd_calls_total", NULL, NULL, 0, 0, 0};
  assert_int_equal(kitd_metrics_walk(m, find_fn, &f), 0);
  assert_int_equal(f.found, 0);
  kitd_metrics_free(m);
}

/* --- calls in flight --- */

/* What kitd_calls_outstanding said from inside a call. */
static kitd_metrics *seen_m;
static double seen_outstanding = -1;
static int seen_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st, (void)ctx;
  seen_outstanding = value_of(seen_m, "kitd_calls_outstanding", "run", NULL);
  *resp = (void *)req;
  return 0;
}
static int seen_factory(void *arg, const kitd_instance *rec, kitd_endpoint **out) {
  (void)arg, (void)rec;
  return kitd_endpoint_new(seen_call, NULL, NULL, out);
}
static int seen_retry(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)arg, (void)attempt, (void)err, (void)ctx;
  seen_outstanding = value_of(seen_m, "kitd_calls_outstanding", "run", NULL);
  return 1;
}

/* A call is outstanding while its attempt runs, and while it waits for an
 * empty set (its pick failed: it was never counted at an attempt). */
static void outstanding_while_running(void **state) {
  (void)state;
  const char *one[] = {"a:1"};
  for (int empty = 0; empty < 2; empty++) {
    assert_int_equal(kitd_metrics_new(&seen_m), 0);
    kitd_instancer *in;
    kitd_endpointer *ep;
    kitd_balancer *b;
    kitd_endpoint *call;
    assert_int_equal(kitd_static_instancer_new(one, empty ? 0 : 1, &in), 0);
    assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){seen_factory, NULL, NULL}, NULL, &ep),
                     0);
    assert_int_equal(kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &b), 0);
    kitd_retry_opts ro;
    kitd_retry_opts_init(&ro);
    ro.metrics = seen_m;
    ro.metrics_name = "run";
    ro.max_attempts = 2;
    ro.should_retry = seen_retry;
    assert_int_equal(kitd_retry_new(b, &ro, &call), 0);
    seen_outstanding = -1;
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp;
    assert_int_equal(kitd_endpoint_call(call, &ctx, &ctx, &resp), empty ? KITD_ENOENDPOINTS : 0);
    assert_true(seen_outstanding == 1);
    assert_true(value_of(seen_m, "kitd_calls_outstanding", "run", NULL) == 0);
    assert_true(value_of(seen_m, "kitd_calls_total", "run", NULL) == 1);
    kitd_endpoint_unref(call);
    kitd_balancer_free(b);
    kitd_endpointer_free(ep);
    kitd_instancer_free(in);
    kitd_metrics_free(seen_m);
  }
}

static void empty_and_args(void **state) {
  (void)state;
  kitd_metrics *m;
  assert_int_equal(kitd_metrics_new(NULL), KITD_EINVAL);
  assert_int_equal(kitd_metrics_new(&m), 0);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_int_equal(kitd_metrics_write_prometheus(m, f), 0);
  fclose(f);
  assert_int_equal(len, 0);
  free(text);
  assert_int_equal(kitd_metrics_write_prometheus(NULL, stdout), KITD_EINVAL);
  assert_int_equal(kitd_metrics_write_prometheus(m, NULL), KITD_EINVAL);
  assert_int_equal(kitd_metrics_walk(m, NULL, NULL), KITD_EINVAL);
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  assert_int_equal(kitd_metrics_watch(m, in, ""), KITD_EINVAL);
  assert_int_equal(kitd_metrics_watch(m, in, "x"), 0);
  assert_int_equal(kitd_metrics_watch(m, in, "y"), KITD_EEXIST);
  kitd_instancer_free(in); /* the registry holds its own reference */
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.metrics = m; /* without a name */
  kitd_endpointer *ep;
  kitd_balancer *b;
  kitd_endpoint *call;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  assert_int_equal(kitd_retry_new(b, &ro, &call), KITD_EINVAL);
  assert_int_equal(kitd_balancer_set_metrics(b, m, NULL), KITD_EINVAL);
  assert_int_equal(kitd_balancer_set_metrics(NULL, m, "x"), KITD_EINVAL);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_metrics_free(NULL);
  assert_ptr_equal(kitd_metrics_ref(m), m);
  kitd_metrics_free(m);
  kitd_metrics_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exact_two_threads),         cmocka_unit_test(failures_and_retries),
      cmocka_unit_test(budget_refusals),           cmocka_unit_test(ejections),
      cmocka_unit_test(prometheus_text),           cmocka_unit_test(client_counts),
      cmocka_unit_test(outstanding_while_running), cmocka_unit_test(empty_and_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
