/* SPDX-License-Identifier: MIT */
/* kitd_directory over the Consul double: every watch on one thread, never
 * more agent connections than max_blocking (the double refuses a client
 * past its limit as Consul does), services past the blocking slots kept
 * fresh through health/state/any and catalog/services, and a flood of
 * unknown names within the caps. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/double.h"
#include "kitd/kitd.h"

#define MAX_BLOCKING 12 /* 6 services block; the others are polled */
static kitd_test_agent agent;
static int have_agent;

static void *nothing(void *arg) { return arg; }

static int setup(void **state) {
  (void)state;
  kitd_global_init();
  /* Thread counts below compare before and after: start what starts with
   * the first thread first (ThreadSanitizer's background thread). */
  pthread_t t;
  if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
  /* the double enforces a limit just above the directory's own cap (the
   * test's helper requests share the address) */
  const char *extra[] = {"--max-conns-per-client", "16", NULL};
  int rc = kitd_test_agent_start(&agent, extra);
  have_agent = rc == 0 && !agent.real;
  return rc < 0 ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  if (have_agent) kitd_test_agent_stop(&agent);
  kitd_global_cleanup();
  return 0;
}

#define NEED_AGENT()                                                                               \
  do {                                                                                             \
    if (!have_agent) {                                                                             \
      skip();                                                                                      \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

static kitd_directory *new_dir(unsigned max_clients) {
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_int_equal(kitd_consul_set_address(c, agent.url, NULL), 0);
  kitd_directory_opts o;
  kitd_directory_opts_init(&o);
  o.consul = c;
  o.max_blocking = MAX_BLOCKING;
  o.max_clients = max_clients;
  kitd_directory *d = NULL;
  assert_int_equal(kitd_directory_new(&o, &d), 0);
  kitd_consul_free(c);
  return d;
}

/* Wait until the client of `svc` has `want` instances. */
static int wait_count(kitd_directory *d, const char *svc, size_t want, long ms) {
  kitd_client *c = NULL;
  if (kitd_directory_get(d, svc, &c)) return 0;
  int64_t end = kitd_now_ns() + kitd_test_ms(ms) * 1000000;
  while (kitd_client_count(c) != want && kitd_now_ns() < end) usleep(2000);
  int ok = kitd_client_count(c) == want;
  kitd_client_free(c);
  return ok;
}

static size_t count_now(kitd_directory *d, const char *svc) {
  kitd_client *c = NULL;
  if (kitd_directory_get(d, svc, &c)) return (size_t)-1;
  size_t n = kitd_client_count(c);
  kitd_client_free(c);
  return n;
}

static void test_many_services_one_thread(void **s) {
  (void)s;
  NEED_AGENT();
  enum {
    N = 30
  };
  char name[N][48], id[N][64 + 48];
  for (int i = 0; i < N; i++) {
    snprintf(name[i], sizeof name[i], "dir-svc-%d-%d", (int)getpid() % 100000, i);
    snprintf(id[i], sizeof id[i], "%s-a", name[i]);
    assert_int_equal(kitd_test_agent_register(&agent, name[i], id[i], "10.1.0.1", 1000 + i, NULL,
                                              "passing", 3600),
                     200);
  }
  kitd_test_agent_http(&agent, "PUT", "/_double/stats/reset", NULL, NULL);
  int before = kitd_test_threads();
  kitd_directory *d = new_dir(100);
  for (int i = 0; i < N; i++) assert_true(wait_count(d, name[i], 1, 3000));
  /* the directory's own threads: its sweeper and one watcher, whatever N */
  assert_true(kitd_test_threads() - before <= 2);
  /* a health flip of every service reaches its client, polled or not */
  for (int i = 0; i < N; i++) {
    assert_int_equal(kitd_test_agent_ttl(&agent, id[i], "fail"), 200);
    assert_true(wait_count(d, name[i], 0, 2000));
    assert_int_equal(kitd_test_agent_ttl(&agent, id[i], "pass"), 200);
    assert_true(wait_count(d, name[i], 1, 2000));
  }
  /* a second instance (a catalog change), then a deregistration */
  char id2[80];
  snprintf(id2, sizeof id2, "%s-b", name[N - 1]);
  assert_int_equal(
      kitd_test_agent_register(&agent, name[N - 1], id2, "10.1.0.2", 2000, NULL, "passing", 3600),
      200);
  assert_true(wait_count(d, name[N - 1], 2, 2000));
  assert_int_equal(kitd_test_agent_deregister(&agent, id2), 200);
  assert_true(wait_count(d, name[N - 1], 1, 2000));
  /* never past the cap: the double would have refused with a 429 */
  long most = kitd_test_agent_stat(&agent, "max_connections");
  assert_true(most > 0 && most <= MAX_BLOCKING + 2);
  kitd_directory_free(d);
  for (int i = 0; i < N; i++) kitd_test_agent_deregister(&agent, id[i]);
}

/* Distinct unknown names, one after another: the clients, and so the
 * watches and connections, stay within the caps. */
static void test_flood_of_unknown_names(void **s) {
  (void)s;
  NEED_AGENT();
  kitd_test_agent_http(&agent, "PUT", "/_double/stats/reset", NULL, NULL);
  kitd_directory *d = new_dir(20);
  int64_t end = kitd_now_ns() + kitd_test_ms(30000) * 1000000;
  int i;
  for (i = 0; i < 2000 && kitd_now_ns() < end; i++) {
    char name[48];
    snprintf(name, sizeof name, "nobody-%d-%d", (int)getpid(), i);
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, kitd_test_ms(2000));
    assert_int_equal(kitd_directory_call(d, name, &ctx, NULL, NULL), KITD_ENOENDPOINTS);
    assert_true(kitd_directory_count(d) <= 20);
  }
  assert_true(i >= 200); /* however slow the machine, a real flood went through */
  long most = kitd_test_agent_stat(&agent, "max_connections");
  assert_true(most > 0 && most <= MAX_BLOCKING + 2);
  kitd_directory_free(d);
}

/* The fault knob's "text" parameter, percent-encoded. */
static void set_state_garbage(const char *body) {
  char path[1024];
  int n = snprintf(path, sizeof path, "/_double/fault?mode=garbage&paths=/v1/health/state/&text=");
  for (const unsigned char *p = (const unsigned char *)body; *p && n < (int)sizeof path - 4; p++)
    n += snprintf(path + n, sizeof path - (size_t)n, "%%%02X", *p);
  assert_int_equal(kitd_test_agent_http(&agent, "PUT", path, NULL, NULL), 200);
}

/* health/state/any answers are read a slice of checks at a time: JSON
 * punctuation inside strings does not split a check, a change of one
 * polled service refetches that service only, and a malformed answer
 * keeps every last good set until the answers are good again. */
static void test_state_answers_in_slices(void **s) {
  (void)s;
  NEED_AGENT();
  enum {
    N = 150 /* more checks than one slice reads */
  };
  static char name[N][48], id[N][112];
  const char *tags = "[\"a]},{\\\"x\\\":[\", \"b\\\\\\\\\", \"c,]\"]";
  for (int i = 0; i < N; i++) {
    snprintf(name[i], sizeof name[i], "slice-%d-%d", (int)getpid() % 100000, i);
    snprintf(id[i], sizeof id[i], "%s-a", name[i]);
    assert_int_equal(
        kitd_test_agent_register(&agent, name[i], id[i], "10.5.0.1", 80, tags, "passing", 3600),
        200);
  }
  char waker[64]; /* a service nobody watches: its check writes wake health/state/any */
  snprintf(waker, sizeof waker, "slice-waker-%d", (int)getpid() % 100000);
  assert_int_equal(
      kitd_test_agent_register(&agent, waker, waker, "10.5.0.2", 80, NULL, "passing", 3600), 200);
  kitd_directory *d = new_dir(N);
  for (int i = 0; i < N; i++) assert_true(wait_count(d, name[i], 1, 3000));
  usleep(200 * 1000); /* the first refetches are over */
  /* the last registered is polled, and its check is the answer's last */
  int last = N - 1;
  long before = kitd_test_agent_requests(&agent, "/v1/health/service/");
  assert_int_equal(kitd_test_agent_ttl(&agent, id[last], "fail"), 200);
  assert_true(wait_count(d, name[last], 0, 2000));
  assert_int_equal(kitd_test_agent_ttl(&agent, id[last], "pass"), 200);
  assert_true(wait_count(d, name[last], 1, 2000));
  long refetched = kitd_test_agent_requests(&agent, "/v1/health/service/") - before;
  /* a diff that failed would refetch all of them (N - 6) */
  assert_true(refetched >= 1 && refetched <= 8);
  const char *bad[] = {
      "[{\"ServiceName\":\"x\",\"ModifyIndex\":1}",       /* unterminated */
      "[{\"ServiceName\":\"x\",\"ModifyIndex\":1}] tail", /* bytes after it */
      "[{\"ServiceName\":\"x\"},,{}]",                    /* an empty element */
      "[{\"ServiceName\":\"x\"}, {\"Node\": ]",           /* a broken element */
      "[{\"ServiceName\":\"x\",\"ModifyIndex\":1,}]",     /* a comma before the brace */
      "[{\"ServiceName\":\"x\",\"ModifyIndex\":01}]",     /* not a JSON number */
      "{\"ServiceName\":\"x\"}",                          /* not an array */
  };
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    long faulted = kitd_test_agent_stat(&agent, "faulted");
    set_state_garbage(bad[k]);
    /* a check write wakes the watcher's health/state/any query */
    assert_int_equal(kitd_test_agent_ttl(&agent, waker, "fail"), 200);
    assert_int_equal(kitd_test_agent_ttl(&agent, waker, "pass"), 200);
    int64_t end = kitd_now_ns() + kitd_test_ms(3000) * 1000000;
    while (kitd_test_agent_stat(&agent, "faulted") == faulted && kitd_now_ns() < end) usleep(5000);
    assert_true(kitd_test_agent_stat(&agent, "faulted") > faulted);
    for (int i = 0; i < N; i++) assert_int_equal(count_now(d, name[i]), 1);
    kitd_test_agent_clear_faults(&agent);
  }
  /* good answers again: a polled service's change still comes through,
   * once the health/state/any query's backoff is over (seven failures in
   * a row: the next try comes 1.6 to 3.2 s after the last, more if a
   * bad answer came twice, at most 10 s) */
  assert_int_equal(kitd_test_agent_ttl(&agent, id[N - 2], "fail"), 200);
  assert_true(wait_count(d, name[N - 2], 0, 12000));
  kitd_directory_free(d);
  for (int i = 0; i < N; i++) kitd_test_agent_deregister(&agent, id[i]);
  kitd_test_agent_deregister(&agent, waker);
}

/* Standalone clients opt in to one shared watcher: one thread for all. */
static void test_standalone_clients_share_a_watcher(void **s) {
  (void)s;
  NEED_AGENT();
  enum {
    N = 3
  };
  char name[N][48], id[N][112];
  for (int i = 0; i < N; i++) {
    snprintf(name[i], sizeof name[i], "solo-%d-%d", (int)getpid() % 100000, i);
    snprintf(id[i], sizeof id[i], "%s-a", name[i]);
    assert_int_equal(
        kitd_test_agent_register(&agent, name[i], id[i], "10.4.0.1", 80, NULL, "passing", 3600),
        200);
  }
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_int_equal(kitd_consul_set_address(c, agent.url, NULL), 0);
  int before = kitd_test_threads();
  kitd_consul_watcher *w = NULL;
  assert_int_equal(kitd_consul_watcher_new(c, MAX_BLOCKING, NULL, &w), 0);
  kitd_consul_free(c);
  kitd_client *cl[N];
  for (int i = 0; i < N; i++) {
    kitd_client_opts o;
    kitd_client_opts_init(&o);
    o.service = name[i];
    o.watcher = w;
    assert_int_equal(kitd_client_new(&o, &cl[i]), 0);
  }
  kitd_consul_watcher_free(w); /* the clients keep it */
  for (int i = 0; i < N; i++) {
    assert_int_equal(kitd_client_wait_ready(cl[i], kitd_test_ms(3000)), 0);
    assert_int_equal(kitd_client_count(cl[i]), 1);
  }
  assert_int_equal(kitd_test_threads() - before, 1);
  assert_int_equal(kitd_test_agent_ttl(&agent, id[1], "fail"), 200);
  int64_t end = kitd_now_ns() + kitd_test_ms(2000) * 1000000;
  while (kitd_client_count(cl[1]) && kitd_now_ns() < end) usleep(2000);
  assert_int_equal(kitd_client_count(cl[1]), 0);
  for (int i = 0; i < N; i++) kitd_client_free(cl[i]);
  for (int i = 0; i < N; i++) kitd_test_agent_deregister(&agent, id[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_many_services_one_thread),
      cmocka_unit_test(test_flood_of_unknown_names),
      cmocka_unit_test(test_standalone_clients_share_a_watcher),
      cmocka_unit_test(test_state_answers_in_slices),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
