/* SPDX-License-Identifier: MIT */
/* The registrar against the Consul double (or a real agent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/double.h"
#include "kitd/consul.h"
#include "kitd/error.h"
#include "kitd/instance.h"
#include "kitd/kitd.h"
#include "kitd/registrar.h"

static kitd_test_agent agent;
static int seq;

static kitd_consul *client(void) {
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_int_equal(kitd_consul_set_address(c, agent.url, NULL), 0);
  const char *t = getenv("CONSUL_HTTP_TOKEN");
  if (t && *t) assert_int_equal(kitd_consul_set_token(c, t), 0);
  return c;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

/* The current set of `svc` (passing only or all) joined with ','. */
static void lookup(kitd_consul *c, const char *svc, int passing, char *out, size_t cap) {
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.passing_only = passing;
  kitd_instance **set = NULL;
  size_t n = 0;
  out[0] = '\0';
  if (kitd_consul_lookup(c, svc, &o, NULL, &set, &n) != 0) {
    snprintf(out, cap, "(error)");
    return;
  }
  size_t o2 = 0;
  for (size_t i = 0; i < n; i++)
    if (o2 < cap)
      o2 +=
          (size_t)snprintf(out + o2, cap - o2, "%s%s", i ? "," : "", kitd_instance_address(set[i]));
  kitd_instance_list_free(set, n);
}

/* Poll until lookup gives `want` (true) or the time runs out. */
static bool eventually(kitd_consul *c, const char *svc, int passing, const char *want, long ms) {
  char got[1024];
  int64_t end = kitd_now_ns() + kitd_test_ms(ms) * 1000000;
  do {
    lookup(c, svc, passing, got, sizeof got);
    if (strcmp(got, want) == 0) return true;
    sleep_ms(50);
  } while (kitd_now_ns() < end);
  fprintf(stderr, "%s: want [%s] got [%s]\n", svc, want, got);
  return false;
}

static bool have_agent;

static int setup(void **state) {
  (void)state;
  kitd_global_init();
  int rc = kitd_test_agent_start(&agent, NULL);
  have_agent = rc == 0;
  return rc < 0 ? -1 : 0;
}

/* Before each test: an agent (else skip), and no fault left over. */
static int before(void **state) {
  (void)state;
  if (have_agent && !agent.real) kitd_test_agent_clear_faults(&agent);
  return 0;
}
#define NEED_AGENT()                                                                               \
  do {                                                                                             \
    if (!have_agent) skip();                                                                       \
  } while (0)

static int teardown(void **state) {
  (void)state;
  if (have_agent) kitd_test_agent_stop(&agent);
  kitd_global_cleanup();
  return 0;
}

static void ttl_reg(kitd_registration *g, const char *svc, int port, int64_t ttl_ms) {
  kitd_registration_init(g);
  g->name = svc;
  g->address = "127.0.0.1";
  g->port = port;
  g->check.kind = KITD_CHECK_TTL;
  g->check.ttl_ms = ttl_ms;
}

/* Register, stay passing on heartbeats, expire when they stop, deregister
 * on free. */
static void test_ttl_lifecycle(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-reg-%d-%d", (int)getpid(), ++seq);
  kitd_consul *c = client();
  static const char *const tags[] = {"a", "b"};
  static const char *const meta[] = {"version", "2", "team", "kitd"};
  kitd_registration g;
  ttl_reg(&g, svc, 7101, 1500);
  g.tags = tags;
  g.ntags = 2;
  g.meta = meta;
  g.nmeta = 2;
  g.weight_passing = 5;
  g.weight_warning = 1;
  kitd_registrar *r = NULL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0);
  assert_int_equal(kitd_registrar_wait_registered(r, kitd_test_ms(3000)), 0);
  assert_int_equal(kitd_registrar_registered(r, NULL), 1);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7101", 2000));
  /* Heartbeats every 500 ms keep it passing past several TTLs. */
  for (int i = 0; i < 8; i++) {
    sleep_ms(500);
    char got[256];
    lookup(c, svc, 1, got, sizeof got);
    assert_string_equal(got, "127.0.0.1:7101");
  }
  /* The check's ID is ours: service:<id>. */
  char *checks = NULL;
  assert_int_equal(kitd_test_agent_http(&agent, "GET", "/v1/agent/checks", NULL, &checks), 200);
  char want[128];
  snprintf(want, sizeof want, "\"service:%s-127.0.0.1-7101\"", svc);
  assert_non_null(strstr(checks, want));
  free(checks);
  /* Stop the heartbeats: the TTL expires, the instance leaves the passing set
   * but stays registered. */
  assert_int_equal(kitd_registrar_set_heartbeats(r, 0), 0);
  assert_true(eventually(c, svc, 1, "", 4000));
  assert_true(eventually(c, svc, 0, "127.0.0.1:7101", 100));
  assert_int_equal(kitd_registrar_set_heartbeats(r, 1), 0);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7101", 2000));
  /* Warning is reported, and is not passing. */
  assert_int_equal(kitd_registrar_set_status(r, "warning"), 0);
  assert_true(eventually(c, svc, 1, "", 2000));
  assert_int_equal(kitd_registrar_set_status(r, "passing"), 0);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7101", 2000));
  assert_int_equal(kitd_registrar_set_status(r, "bogus"), KITD_EINVAL);
  int64_t t0 = kitd_now_ns();
  kitd_registrar_free(r);
  assert_true((kitd_now_ns() - t0) / 1000000 < 2500);
  assert_true(eventually(c, svc, 0, "", 100));
  kitd_consul_free(c);
}

/* The agent restarts (dev mode: forgets everything): the heartbeat gets a
 * 404 and the registrar registers again. */
static void test_reregister_after_restart(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-rereg-%d-%d", (int)getpid(), ++seq);
  kitd_consul *c = client();
  kitd_registration g;
  ttl_reg(&g, svc, 7102, 1200);
  g.id = "rereg-1";
  kitd_registrar *r = NULL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0);
  assert_int_equal(kitd_registrar_wait_registered(r, kitd_test_ms(3000)), 0);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7102", 2000));
  assert_int_equal(kitd_test_agent_restart(&agent), 0);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7102", 5000));
  kitd_registrar_free(r);
  assert_true(eventually(c, svc, 0, "", 100));
  kitd_consul_free(c);
}

/* Agent down at first: the registrar keeps trying, and registers once it
 * is up. Uses a port where nothing listens, then the double's address. */
static void test_agent_down_then_up(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-down-%d-%d", (int)getpid(), ++seq);
  kitd_consul *c = client();
  assert_int_equal(kitd_test_agent_fault(&agent, "down", NULL), 200);
  kitd_registration g;
  ttl_reg(&g, svc, 7103, 3000);
  kitd_registrar *r = NULL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0);
  assert_int_equal(kitd_registrar_wait_registered(r, 700), KITD_ETIMEDOUT);
  int err = 0;
  assert_int_equal(kitd_registrar_registered(r, &err), 0);
  assert_int_not_equal(err, 0);
  assert_int_equal(kitd_test_agent_clear_faults(&agent), 200);
  assert_int_equal(kitd_registrar_wait_registered(r, kitd_test_ms(12000)), 0);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7103", 2000));
  kitd_registrar_free(r);
  kitd_consul_free(c);
}

/* HTTP and TCP checks: the agent (which rejects unknown fields) accepts
 * our body; an initial status of passing makes it visible at once. */
static void test_http_and_tcp_checks(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-chk-%d-%d", (int)getpid(), ++seq);
  kitd_consul *c = client();
  kitd_registration g;
  kitd_registration_init(&g);
  g.name = svc;
  g.id = "chk-http";
  g.address = "127.0.0.1";
  g.port = 7104;
  g.check.kind = KITD_CHECK_HTTP;
  char url[400];
  snprintf(url, sizeof url, "%s/v1/status/leader", agent.url);
  g.check.target = url;
  g.check.interval_ms = 10000;
  g.check.timeout_ms = 1000;
  g.check.deregister_after_ms = 90000;
  g.check.initial_status = "passing";
  kitd_registrar *r1 = NULL, *r2 = NULL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r1), 0);
  g.id = "chk-tcp";
  g.port = 7105;
  g.check.kind = KITD_CHECK_TCP;
  g.check.target = agent.addr;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r2), 0);
  assert_int_equal(kitd_registrar_wait_registered(r1, kitd_test_ms(3000)), 0);
  assert_int_equal(kitd_registrar_wait_registered(r2, kitd_test_ms(3000)), 0);
  assert_true(eventually(c, svc, 1, "127.0.0.1:7104,127.0.0.1:7105", 2000));
  assert_int_equal(kitd_registrar_set_status(r1, "passing"), KITD_EINVAL); /* not TTL */
  kitd_registrar_free(r1);
  kitd_registrar_free(r2);
  assert_true(eventually(c, svc, 0, "", 100));
  kitd_consul_free(c);
}

static void test_invalid(void **state) {
  (void)state;
  NEED_AGENT();
  kitd_consul *c = client();
  kitd_registration g;
  kitd_registrar *r = NULL;
  memset(&g, 0, sizeof g);
  g.name = "x";
  /* Not set up by kitd_registration_init(): the size is unknown. */
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), KITD_EINVAL);
  kitd_registration_init(&g);
  assert_int_equal(g.size, sizeof g);
  g.name = "x";
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0); /* valid: proves the above */
  kitd_registrar_free(r);
  r = NULL;
  kitd_registration_init(&g);
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), KITD_EINVAL); /* no name */
  g.name = "x";
  g.check.kind = KITD_CHECK_TTL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), KITD_EINVAL); /* no TTL */
  g.check.kind = KITD_CHECK_HTTP;
  g.check.target = "http://x/";
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), KITD_EINVAL); /* no interval */
  g.check.kind = KITD_CHECK_NONE;
  g.port = 70000;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), KITD_EINVAL);
  assert_null(r);
  kitd_registrar_free(NULL);
  kitd_consul_free(c);
}

/* An ID of 650 characters with spaces: every path that carries it is
 * escaped in full (a fixed 1 KiB buffer once cut it, and the agent
 * answered 404 to each heartbeat and to the deregistration). */
static void test_long_escaped_id(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-longid-%d-%d", (int)getpid(), ++seq);
  char id[651];
  /* Every other byte a space: ~1,300 bytes once escaped, past the old
   * 1 KiB buffer. */
  for (size_t i = 0; i < 650; i++) id[i] = i % 2 ? ' ' : (char)('a' + i % 26);
  id[650] = '\0';
  kitd_consul *c = client();
  kitd_registration g;
  ttl_reg(&g, svc, 7106, 900);
  g.id = id;
  kitd_registrar *r = NULL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0);
  assert_int_equal(kitd_registrar_wait_registered(r, kitd_test_ms(3000)), 0);
  /* Heartbeats reach the check: still passing after more than two TTLs. */
  assert_true(eventually(c, svc, 1, "127.0.0.1:7106", 2000));
  sleep_ms(2000);
  char got[256];
  lookup(c, svc, 1, got, sizeof got);
  assert_string_equal(got, "127.0.0.1:7106");
  int err = -1;
  assert_int_equal(kitd_registrar_registered(r, &err), 1);
  assert_int_equal(err, 0);
  char *services = NULL;
  assert_int_equal(kitd_test_agent_http(&agent, "GET", "/v1/agent/services", NULL, &services), 200);
  assert_non_null(strstr(services, id));
  free(services);
  /* Deregistration reaches the same ID: the agent holds nothing after. */
  assert_int_equal(kitd_registrar_deregister(r), 0);
  assert_int_equal(kitd_registrar_deregister(r), 0); /* once */
  services = NULL;
  assert_int_equal(kitd_test_agent_http(&agent, "GET", "/v1/agent/services", NULL, &services), 200);
  assert_null(strstr(services, svc));
  free(services);
  assert_true(eventually(c, svc, 0, "", 100));
  kitd_registrar_free(r);
  kitd_consul_free(c);
}

/* The agent forgets the check on every heartbeat: the registrar registers
 * again with a growing backoff, not in a tight loop (once ~8,000 a second). */
static void test_forgetful_agent_backs_off(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-forget-%d-%d", (int)getpid(), ++seq);
  kitd_consul *c = client();
  assert_int_equal(kitd_test_agent_http(&agent, "PUT",
                                        "/_double/fault?mode=500&paths=/v1/agent/check/"
                                        "&text=Unknown%20check%20ID",
                                        NULL, NULL),
                   200);
  assert_int_equal(kitd_test_agent_http(&agent, "PUT", "/_double/stats/reset", NULL, NULL), 200);
  kitd_registration g;
  ttl_reg(&g, svc, 7107, 3000);
  kitd_registrar *r = NULL;
  int64_t t0 = kitd_now_ns();
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0);
  sleep_ms(1000);
  long regs = kitd_test_agent_requests(&agent, "/v1/agent/service/register");
  long beats = kitd_test_agent_requests(&agent, "/v1/agent/check/");
  double secs = (double)(kitd_now_ns() - t0) / 1e9;
  fprintf(stderr, "forgetful agent: %ld registrations, %ld heartbeats in %.2f s\n", regs, beats,
          secs);
  /* 100 ms doubling, drawn in [d/2, d]: at most ~6 in a second; allow a
   * slow machine some slack, but nothing like a loop. */
  assert_true(regs >= 1);
  assert_true(regs <= 12);
  assert_true(beats <= 12);
  assert_int_equal(kitd_registrar_registered(r, NULL), 0);
  assert_int_equal(kitd_test_agent_clear_faults(&agent), 200);
  /* Once the agent keeps the check again, the registrar settles. */
  assert_true(eventually(c, svc, 1, "127.0.0.1:7107", 15000));
  assert_int_equal(kitd_registrar_deregister(r), 0);
  kitd_registrar_free(r);
  kitd_consul_free(c);
}

/* The service was removed behind the registrar's back: deregistration gets
 * a 404 and reports it as the failure it is. */
static void test_failed_deregistration(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64];
  snprintf(svc, sizeof svc, "kitd-dereg-%d-%d", (int)getpid(), ++seq);
  kitd_consul *c = client();
  kitd_registration g;
  ttl_reg(&g, svc, 7108, 60000);
  g.id = "dereg 1";
  kitd_registrar *r = NULL;
  assert_int_equal(kitd_registrar_new(c, &g, NULL, &r), 0);
  assert_int_equal(kitd_registrar_wait_registered(r, kitd_test_ms(3000)), 0);
  /* Pause the heartbeats so that nothing notices the removal. */
  assert_int_equal(kitd_registrar_set_heartbeats(r, 0), 0);
  sleep_ms(100);
  assert_int_equal(kitd_test_agent_deregister(&agent, "dereg%201"), 200);
  assert_int_equal(kitd_registrar_deregister(r), KITD_EHTTP);
  int err = 0;
  assert_int_equal(kitd_registrar_registered(r, &err), 0);
  assert_int_equal(err, KITD_EHTTP);
  kitd_registrar_free(r);
  kitd_consul_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_invalid, before),
      cmocka_unit_test_setup(test_ttl_lifecycle, before),
      cmocka_unit_test_setup(test_http_and_tcp_checks, before),
      cmocka_unit_test_setup(test_agent_down_then_up, before),
      cmocka_unit_test_setup(test_reregister_after_restart, before),
      cmocka_unit_test_setup(test_long_escaped_id, before),
      cmocka_unit_test_setup(test_forgetful_agent_backs_off, before),
      cmocka_unit_test_setup(test_failed_deregistration, before),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
