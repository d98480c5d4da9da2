/* SPDX-License-Identifier: MIT */
/* The DNS SRV instancer against the real dnsmasq on 127.0.0.1. */
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kitd/ctx.h"
#include "kitd/dns.h"
#include "kitd/error.h"
#include "kitd/instance.h"
#include "kitd/instancer.h"
#include "../support/dnsmasq_server.h"
#include "../support/recorder.h"
#include "../support/fixture.h"

#define SRV_LOG "query[SRV] _lorem._tcp.test"

static const char *const two_targets[] = {
    "--srv-host=_lorem._tcp.test,a.test,8001,0,10", "--host-record=a.test,127.0.0.1",
    "--srv-host=_lorem._tcp.test,b.test,8002,1,5", "--host-record=b.test,127.0.0.2", NULL};

typedef struct watch {
  kitd_test_dnsmasq dm;
  kitd_instancer *in;
  kitd_test_recorder rec;
} watch;

static int skip_without_dnsmasq(void **state) {
  (void)state;
  if (!kitd_test_dnsmasq_available()) {
    fprintf(stderr, "dnsmasq not installed: run `make deps`\n");
    return -1;
  }
  return 0;
}

static void opts_fast(kitd_dns_instancer_opts *o, const char *server) {
  kitd_dns_instancer_opts_init(o);
  o->server = server;
  o->min_refresh_ms = 100;
  o->max_refresh_ms = 10000;
  o->timeout_ms = 300;
  o->attempts = 1;
  o->backoff_min_ms = 50;
  o->backoff_max_ms = 200;
}

static void watch_start(watch *w, const char *const *args, const char *name,
                        kitd_dns_instancer_opts *o) {
  memset(w, 0, sizeof *w);
  assert_int_equal(kitd_test_dnsmasq_start(&w->dm, args), 0);
  kitd_test_recorder_init(&w->rec);
  kitd_dns_instancer_opts def;
  if (!o) {
    opts_fast(&def, w->dm.addr);
    o = &def;
  }
  o->server = w->dm.addr;
  assert_int_equal(kitd_dns_instancer_new(name, o, NULL, &w->in), 0);
  assert_int_equal(kitd_instancer_subscribe(w->in, kitd_test_recorder_fn, &w->rec), 0);
}

/* Idempotent: the teardown calls it again after a failed assertion, so
 * that no watch thread outlives its test. */
static void watch_stop(watch *w) {
  if (w->in) {
    kitd_instancer_unsubscribe(w->in, kitd_test_recorder_fn, &w->rec);
    kitd_instancer_free(w->in);
    kitd_test_recorder_destroy(&w->rec);
  }
  kitd_test_dnsmasq_free(&w->dm);
  memset(w, 0, sizeof *w);
}

static watch W;

static int teardown(void **state) {
  (void)state;
  watch_stop(&W);
  return 0;
}

static long T(long ms) { return ms * kt_scale(); }

/* Two SRV records become two instance records with their attributes. */
static void test_records(void **state) {
  (void)state;
  watch_start(&W, two_targets, "_lorem._tcp.test", NULL);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001,127.0.0.2:8002", T(5000)));
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(W.in, &set, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(kitd_instance_weight(set[0]), 10);
  assert_string_equal(kitd_instance_meta(set[0], "priority"), "0");
  assert_string_equal(kitd_instance_meta(set[0], "srv_weight"), "10");
  assert_string_equal(kitd_instance_meta(set[0], "target"), "a.test");
  assert_int_equal(kitd_instance_weight(set[1]), 5);
  assert_string_equal(kitd_instance_meta(set[1], "priority"), "1");
  kitd_instance_list_free(set, n);
  assert_string_equal(kitd_instancer_describe(W.in), "SRV targets of '_lorem._tcp.test'");
  watch_stop(&W);
}

/* An SRV weight of 0 leaves the record's default weight (1), and a target
 * without an address in the answer is resolved by its own query. */
static void test_zero_weight_and_lookup(void **state) {
  (void)state;
  static const char *const args[] = {"--srv-host=_lorem._tcp.test,c.test,9000,3,0",
                                     "--host-record=c.test,127.0.0.3,::3", NULL};
  watch_start(&W, args, "_lorem._tcp.test", NULL);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.3:9000,[::3]:9000", T(5000)));
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(W.in, &set, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(kitd_instance_weight(set[0]), 1);
  assert_string_equal(kitd_instance_meta(set[0], "srv_weight"), "0");
  assert_string_equal(kitd_instance_meta(set[0], "priority"), "3");
  kitd_instance_list_free(set, n);
  watch_stop(&W);
}

/* A target whose address the SRV answer does not carry (dnsmasq forwards
 * its zone to a second dnsmasq) is resolved by an A/AAAA query of its own. */
static void test_target_lookup(void **state) {
  (void)state;
  static const char *const second[] = {"--host-record=x.other.test,127.0.0.5", NULL};
  kitd_test_dnsmasq dm2;
  assert_int_equal(kitd_test_dnsmasq_start(&dm2, second), 0);
  char fwd[64];
  snprintf(fwd, sizeof fwd, "--server=/other.test/127.0.0.1#%d", dm2.port);
  const char *const first[] = {"--srv-host=_lorem._tcp.test,x.other.test,9000,0,1", fwd, NULL};
  watch_start(&W, first, "_lorem._tcp.test", NULL);
  bool ok = kitd_test_recorder_wait_set(&W.rec, "127.0.0.5:9000", T(5000));
  long a = kitd_test_dnsmasq_count(&W.dm, "query[A] x.other.test");
  long aaaa = kitd_test_dnsmasq_count(&W.dm, "query[AAAA] x.other.test");
  kitd_test_dnsmasq_free(&dm2);
  assert_true(ok);
  assert_true(a >= 1);
  assert_true(aaaa >= 1);
  watch_stop(&W);
}

/* go-kit's TestRefresh: the set is asked again on the TTL tick, and a
 * change on the server shows up without any other trigger. */
static void test_refresh(void **state) {
  (void)state;
  static const char *const args[] = {"--local-ttl=1",
                                     "--srv-host=_lorem._tcp.test,a.test,8001,0,10", NULL};
  watch_start(&W, args, "_lorem._tcp.test", NULL);
  assert_int_equal(kitd_test_dnsmasq_set_hosts(&W.dm, "127.0.0.1 a.test\n"), 0);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001", T(5000)));
  long before = kitd_test_dnsmasq_count(&W.dm, SRV_LOG);
  assert_int_equal(kitd_test_dnsmasq_set_hosts(&W.dm, "127.0.0.9 a.test\n"), 0);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.9:8001", T(5000)));
  kt_sleep_ms(2500);
  long after = kitd_test_dnsmasq_count(&W.dm, SRV_LOG);
  /* TTL 1 s: about one SRV query a second, never a burst. */
  assert_true(after - before >= 2);
  assert_true(after - before <= 4 + 3 * kt_scale());
  watch_stop(&W);
}

/* go-kit's TestIssue892: a lookup that fails after a good one must not
 * clear the set. Here the failure is dnsmasq forwarding the name to a
 * server that does not answer (SERVFAIL or a timeout). */
static void test_issue892(void **state) {
  (void)state;
  watch_start(&W, two_targets, "_lorem._tcp.test", NULL);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001,127.0.0.2:8002", T(5000)));
  long errs = kitd_test_recorder_errors(&W.rec);
  char fwd[64];
  snprintf(fwd, sizeof fwd, "--server=/_lorem._tcp.test/127.0.0.1#%d", 1);
  const char *const bad[] = {fwd, NULL};
  assert_int_equal(kitd_test_dnsmasq_restart(&W.dm, bad), 0);
  assert_true(kitd_test_recorder_wait_error(&W.rec, errs, T(8000)));
  pthread_mutex_lock(&W.rec.mu);
  assert_string_equal(W.rec.set, "127.0.0.1:8001,127.0.0.2:8002");
  assert_int_not_equal(W.rec.err, 0);
  fprintf(stderr, "issue892: err=%s detail=%s\n", kitd_err_name(W.rec.err), W.rec.detail);
  pthread_mutex_unlock(&W.rec.mu);
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(W.in, &set, &n), KITD_ETIMEDOUT);
  assert_int_equal(n, 2);
  kitd_instance_list_free(set, n);
  watch_stop(&W);
}

/* A REFUSED answer (dnsmasq has no upstream for a name outside .test) is
 * an error that keeps the set, and the detail says so. */
static void test_refused(void **state) {
  (void)state;
  watch_start(&W, two_targets, "_lorem._tcp.example", NULL);
  assert_true(kitd_test_recorder_wait_error(&W.rec, 0, T(5000)));
  pthread_mutex_lock(&W.rec.mu);
  fprintf(stderr, "refused: err=%s detail=%s\n", kitd_err_name(W.rec.err), W.rec.detail);
  assert_int_equal(W.rec.err, KITD_EIO);
  assert_true(strstr(W.rec.detail, "REFUSED") != NULL || strstr(W.rec.detail, "SERVFAIL") != NULL);
  pthread_mutex_unlock(&W.rec.mu);
  watch_stop(&W);
}

/* NXDOMAIN is a good answer: the empty set, no error. */
static void test_nxdomain(void **state) {
  (void)state;
  watch_start(&W, two_targets, "_nope._tcp.test", NULL);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "", T(5000)));
  assert_int_equal(kitd_test_recorder_errors(&W.rec), 0);
  watch_stop(&W);
}

/* Records that go away (NXDOMAIN after a good answer) empty the set. */
static void test_records_removed(void **state) {
  (void)state;
  watch_start(&W, two_targets, "_lorem._tcp.test", NULL);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001,127.0.0.2:8002", T(5000)));
  assert_int_equal(kitd_test_dnsmasq_restart(&W.dm, NULL), 0);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "", T(5000)));
  watch_stop(&W);
}

/* The server dies: error events that keep the last good set, with
 * backoff (no hot loop); it comes back: the watch recovers. */
static void test_server_down_and_back(void **state) {
  (void)state;
  watch_start(&W, two_targets, "_lorem._tcp.test", NULL);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001,127.0.0.2:8002", T(5000)));
  long errs = kitd_test_recorder_errors(&W.rec);
  unsigned long q0 = kitd_dns_instancer_queries(W.in);
  kitd_test_dnsmasq_kill(&W.dm);
  assert_true(kitd_test_recorder_wait_error(&W.rec, errs + 1, T(5000)));
  pthread_mutex_lock(&W.rec.mu);
  assert_string_equal(W.rec.set, "127.0.0.1:8001,127.0.0.2:8002");
  assert_true(strstr(W.rec.detail, W.dm.addr) != NULL);
  pthread_mutex_unlock(&W.rec.mu);
  kt_sleep_ms(1000);
  /* Backoff 50..200 ms over ~1.5 s: a few dozen queries at most. */
  assert_true(kitd_dns_instancer_queries(W.in) - q0 < 40);
  static const char *const back[] = {"--srv-host=_lorem._tcp.test,a.test,8001,0,10",
                                     "--host-record=a.test,127.0.0.1", NULL};
  assert_int_equal(kitd_test_dnsmasq_restart(&W.dm, back), 0);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001", T(5000)));
  watch_stop(&W);
}

/* SRV queries dnsmasq logs in `ms` while the watch runs at `ttl` with the
 * given bounds (after the first answer). */
static long srv_queries(const char *ttl, int64_t min_ms, int64_t max_ms, long ms) {
  const char *const args[] = {ttl, "--srv-host=_lorem._tcp.test,a.test,8001,0,10",
                              "--host-record=a.test,127.0.0.1", NULL};
  kitd_dns_instancer_opts o;
  opts_fast(&o, NULL);
  o.min_refresh_ms = min_ms;
  o.max_refresh_ms = max_ms;
  watch_start(&W, args, "_lorem._tcp.test", &o);
  assert_true(kitd_test_recorder_wait_set(&W.rec, "127.0.0.1:8001", T(5000)));
  long before = kitd_test_dnsmasq_count(&W.dm, SRV_LOG);
  kt_sleep_ms(ms);
  long d = kitd_test_dnsmasq_count(&W.dm, SRV_LOG) - before;
  watch_stop(&W);
  return d;
}

/* A long TTL is capped by max_refresh_ms: about 6 in 1.5 s, never more
 * often than the cap. */
static void test_max_refresh(void **state) {
  (void)state;
  long d = srv_queries("--local-ttl=30", 100, 250, 1500);
  assert_true(d >= 3 && d <= 8);
}

/* A TTL of 0 (dnsmasq's default for its own records) is raised to
 * min_refresh_ms: about 4 in 2 s, no hot loop. */
static void test_min_refresh(void **state) {
  (void)state;
  long d = srv_queries("--local-ttl=0", 500, 10000, 2000);
  assert_true(d >= 2 && d <= 5);
}

/* A stop interrupts a query in flight: the server below never answers
 * and the timeout is long. */
static void test_prompt_stop(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  char server[32];
  snprintf(server, sizeof server, "127.0.0.1:%d", ntohs(a.sin_port));
  kitd_dns_instancer_opts o;
  opts_fast(&o, server);
  o.timeout_ms = 30000;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_dns_instancer_new("_lorem._tcp.test", &o, NULL, &in), 0);
  kt_sleep_ms(200);
  int64_t t0 = kitd_now_ns();
  kitd_instancer_free(in);
  assert_true(kitd_now_ns() - t0 < 500000000LL * kt_scale());
  close(fd);
}

static void test_bad_args(void **state) {
  (void)state;
  kitd_instancer *in = NULL;
  kitd_dns_instancer_opts o;
  kitd_dns_instancer_opts_init(&o);
  o.server = "dns.example:53";
  assert_int_equal(kitd_dns_instancer_new("_x._tcp.test", &o, NULL, &in), KITD_EINVAL);
  o.server = "127.0.0.1:99999";
  assert_int_equal(kitd_dns_instancer_new("_x._tcp.test", &o, NULL, &in), KITD_EINVAL);
  o.server = "127.0.0.1:53";
  assert_int_equal(kitd_dns_instancer_new("", &o, NULL, &in), KITD_EINVAL);
  o.size = 3;
  assert_int_equal(kitd_dns_instancer_new("_x._tcp.test", &o, NULL, &in), KITD_EINVAL);
  assert_null(in);
  assert_int_equal(kitd_dns_instancer_queries(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_prompt_stop),
      cmocka_unit_test_teardown(test_records, teardown),
      cmocka_unit_test_teardown(test_zero_weight_and_lookup, teardown),
      cmocka_unit_test_teardown(test_target_lookup, teardown),
      cmocka_unit_test_teardown(test_refresh, teardown),
      cmocka_unit_test_teardown(test_issue892, teardown),
      cmocka_unit_test_teardown(test_nxdomain, teardown),
      cmocka_unit_test_teardown(test_refused, teardown),
      cmocka_unit_test_teardown(test_records_removed, teardown),
      cmocka_unit_test_teardown(test_server_down_and_back, teardown),
      cmocka_unit_test_teardown(test_max_refresh, teardown),
      cmocka_unit_test_teardown(test_min_refresh, teardown),
  };
  if (getenv("KITD_TEST_FILTER")) cmocka_set_test_filter(getenv("KITD_TEST_FILTER"));
  return cmocka_run_group_tests(tests, skip_without_dnsmasq, NULL);
}
