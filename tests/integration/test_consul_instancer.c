/* SPDX-License-Identifier: MIT */
/* The Consul instancer against the Consul double (or a real agent when
 * CONSUL_HTTP_ADDR is set: then the fault tests skip). */
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

#include "kitd/balancer.h"
#include "kitd/consul.h"
#include "kitd/endpoint.h"
#include "kitd/endpointer.h"
#include "kitd/instance.h"
#include "kitd/retry.h"
#include "kitd/error.h"
#include "kitd/kitd.h"
#include "../support/double.h"
#include "../support/recorder.h"

static kitd_test_agent agent;
static int seq;

/* Unique service names per test, so tests never see each other. */
static void svc_name(char *buf, size_t cap, const char *base) {
  snprintf(buf, cap, "kitd-%s-%d-%d", base, (int)getpid(), ++seq);
}

static kitd_consul *client(void) {
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_int_equal(kitd_consul_set_address(c, agent.url, NULL), 0);
  const char *t = getenv("CONSUL_HTTP_TOKEN");
  if (t && *t) assert_int_equal(kitd_consul_set_token(c, t), 0);
  return c;
}

typedef struct watch {
  kitd_consul *c;
  kitd_instancer *in;
  kitd_test_recorder rec;
} watch;

static void watch_start(watch *w, const char *service, kitd_consul_instancer_opts *o,
                        kitd_logger *lg) {
  kitd_test_recorder_init(&w->rec);
  w->c = client();
  kitd_consul_instancer_opts def;
  if (!o) {
    kitd_consul_instancer_opts_init(&def);
    o = &def;
  }
  /* Short backoff so that recovery tests do not wait 10 s. */
  if (o->backoff_max_ms == 10000) o->backoff_max_ms = 400;
  assert_int_equal(kitd_consul_instancer_new(w->c, service, o, lg, &w->in), 0);
  assert_int_equal(kitd_instancer_subscribe(w->in, kitd_test_recorder_fn, &w->rec), 0);
}

static void watch_stop(watch *w) {
  kitd_instancer_unsubscribe(w->in, kitd_test_recorder_fn, &w->rec);
  kitd_instancer_free(w->in);
  kitd_consul_free(w->c);
  kitd_test_recorder_destroy(&w->rec);
}

static void reg(const char *svc, const char *id, int port, const char *tags, const char *status) {
  assert_int_equal(kitd_test_agent_register(&agent, svc, id, "127.0.0.1", port, tags, status, 60),
                   200);
}

static bool have_agent;

static int setup(void **state) {
  (void)state;
  kitd_global_init();
  /* A node meta "rack" (the zone tests read it; "zone" stays free so that
   * the default still comes from service meta). */
  static const char *const extra[] = {"--node-meta", "rack:r7", NULL};
  int rc = kitd_test_agent_start(&agent, extra);
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

static void test_discovery_and_changes(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64], id1[80], id2[80], id3[80];
  svc_name(svc, sizeof svc, "disc");
  snprintf(id1, sizeof id1, "%s-1", svc);
  snprintf(id2, sizeof id2, "%s-2", svc);
  snprintf(id3, sizeof id3, "%s-3", svc);
  reg(svc, id1, 7001, NULL, "passing");
  reg(svc, id2, 7002, NULL, "passing");
  watch w;
  watch_start(&w, svc, NULL, NULL);
  assert_true(
      kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001,127.0.0.1:7002", kitd_test_ms(3000)));
  reg(svc, id3, 7003, NULL, "passing");
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
                                          kitd_test_ms(3000)));
  assert_int_equal(kitd_test_agent_deregister(&agent, id1), 200);
  assert_true(
      kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7002,127.0.0.1:7003", kitd_test_ms(3000)));
  kitd_test_agent_deregister(&agent, id2);
  kitd_test_agent_deregister(&agent, id3);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "", kitd_test_ms(3000)));
  /* The one-shot lookup agrees. */
  kitd_instance **set = NULL;
  size_t n = 5;
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_consul_lookup(w.c, svc, NULL, &ctx, &set, &n), 0);
  assert_int_equal(n, 0);
  kitd_instance_list_free(set, n);
  watch_stop(&w);
}

static void test_passing_filter(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64], id1[80], id2[80];
  svc_name(svc, sizeof svc, "pass");
  snprintf(id1, sizeof id1, "%s-1", svc);
  snprintf(id2, sizeof id2, "%s-2", svc);
  reg(svc, id1, 7001, NULL, "passing");
  reg(svc, id2, 7002, NULL, "critical");
  watch w, all;
  watch_start(&w, svc, NULL, NULL);
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.passing_only = 0;
  watch_start(&all, svc, &o, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(3000)));
  assert_true(
      kitd_test_recorder_wait_set(&all.rec, "127.0.0.1:7001,127.0.0.1:7002", kitd_test_ms(3000)));
  assert_int_equal(kitd_test_agent_ttl(&agent, id2, "pass"), 200);
  assert_true(
      kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001,127.0.0.1:7002", kitd_test_ms(3000)));
  /* warning is not passing */
  assert_int_equal(kitd_test_agent_ttl(&agent, id1, "warn"), 200);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7002", kitd_test_ms(3000)));
  assert_true(
      kitd_test_recorder_wait_set(&all.rec, "127.0.0.1:7001,127.0.0.1:7002", kitd_test_ms(3000)));
  kitd_test_agent_deregister(&agent, id1);
  kitd_test_agent_deregister(&agent, id2);
  watch_stop(&w);
  watch_stop(&all);
}

static void test_tags(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64], id1[80], id2[80], id3[80];
  svc_name(svc, sizeof svc, "tags");
  snprintf(id1, sizeof id1, "%s-1", svc);
  snprintf(id2, sizeof id2, "%s-2", svc);
  snprintf(id3, sizeof id3, "%s-3", svc);
  reg(svc, id1, 7001, "[\"prod\",\"V2\"]", "passing");
  reg(svc, id2, 7002, "[\"prod\"]", "passing");
  reg(svc, id3, 7003, "[\"v2\",\"canary\",\"PROD\"]", "passing");
  const char *tags[] = {"prod", "v2"};
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.tags = tags;
  o.ntags = 2;
  watch w;
  watch_start(&w, svc, &o, NULL);
  assert_true(
      kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001,127.0.0.1:7003", kitd_test_ms(3000)));
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_consul_lookup(w.c, svc, &o, NULL, &set, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(kitd_instance_address(set[0]), "127.0.0.1:7001");
  kitd_instance_list_free(set, n);
  kitd_test_agent_deregister(&agent, id1);
  kitd_test_agent_deregister(&agent, id2);
  kitd_test_agent_deregister(&agent, id3);
  watch_stop(&w);
}

/* A dev agent restart: index goes backwards, registrations are gone. With a
 * 60 s wait, a watcher that kept its old index would see nothing for a
 * minute. */
static void test_dev_restart(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id1[80];
  svc_name(svc, sizeof svc, "restart");
  snprintf(id1, sizeof id1, "%s-1", svc);
  /* Push the index up so the restarted agent's index is surely lower. */
  for (int i = 0; i < 20; i++) reg(svc, id1, 7001, NULL, "passing");
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.wait_ms = 60000;
  watch w;
  watch_start(&w, svc, &o, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(3000)));
  assert_int_equal(kitd_test_agent_restart(&agent), 0);
  /* The restart is an outage first; the last good set stays. */
  reg(svc, id1, 7009, NULL, "passing");
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7009", kitd_test_ms(5000)));
  kitd_test_agent_deregister(&agent, id1);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "", kitd_test_ms(5000)));
  watch_stop(&w);
}

/* Freeing in the middle of a long poll returns in well under 100 ms. */
static void test_prompt_stop(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64], id1[80];
  svc_name(svc, sizeof svc, "stop");
  snprintf(id1, sizeof id1, "%s-1", svc);
  reg(svc, id1, 7001, NULL, "passing");
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o); /* 5 minute wait */
  watch w;
  watch_start(&w, svc, &o, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(3000)));
  struct timespec ts = {0, 300 * 1000 * 1000}; /* be inside the long poll */
  nanosleep(&ts, NULL);
  int64_t t0 = kitd_now_ns();
  kitd_instancer_stop(w.in);
  int64_t ms = (kitd_now_ns() - t0) / 1000000;
  kitd_instancer_stop(w.in); /* twice is harmless */
  fprintf(stderr, "stop took %lld ms\n", (long long)ms);
  assert_true(ms < kitd_test_ms(100));
  /* The set stays readable after stop. */
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(w.in, &set, &n), 0);
  assert_int_equal(n, 1);
  kitd_instance_list_free(set, n);
  watch_stop(&w);
  kitd_test_agent_deregister(&agent, id1);
}

/* --- faults: an error event, the last good set kept, recovery after the
 * fault ends, and a bounded number of requests --- */

static void fault_case(const char *knob, const char *value, long error_within_ms, int want_err) {
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id1[80];
  svc_name(svc, sizeof svc, knob);
  snprintf(id1, sizeof id1, "%s-1", svc);
  reg(svc, id1, 7001, NULL, "passing");
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.wait_ms = 2000;     /* so stalled or slow polls end soon */
  o.max_body = 1 << 20; /* "oversized" answers exceed this */
  watch w;
  watch_start(&w, svc, &o, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(3000)));
  long errs = kitd_test_recorder_errors(&w.rec);
  long req0 = kitd_test_agent_requests(&agent, "/v1/health/service/");
  int st = kitd_test_agent_fault(&agent, knob, value);
  assert_int_equal(st, 200);
  /* Wake the watcher: a change makes its long poll return into the fault
   * (with the agent down this fails, and the 2 s wait ends the poll). */
  kitd_test_agent_register(&agent, svc, id1, "127.0.0.1", 7001, "[\"x\"]", "passing", 60);
  /* The poll in flight when the fault was set started before it and
   * answers well; the next one is faulted, and a faulted blocking query
   * still answers only when its index moves: change the service again. */
  struct timespec gap = {0, 300 * 1000000L};
  nanosleep(&gap, NULL);
  kitd_test_agent_register(&agent, svc, id1, "127.0.0.1", 7001, "[\"y\"]", "passing", 60);
  int64_t t0 = kitd_now_ns();
  assert_true(kitd_test_recorder_wait_error(&w.rec, errs, kitd_test_ms(error_within_ms)));
  pthread_mutex_lock(&w.rec.mu);
  fprintf(stderr, "%s: err=%s detail=%s\n", knob, kitd_err_name(w.rec.err), w.rec.detail);
  if (want_err) assert_int_equal(w.rec.err, want_err);
  assert_string_equal(w.rec.set, "127.0.0.1:7001"); /* last good set kept */
  pthread_mutex_unlock(&w.rec.mu);
  /* Let the fault last 3 s: requests stay bounded (no hot loop). */
  struct timespec ts = {3, 0};
  nanosleep(&ts, NULL);
  int64_t el_ms = (kitd_now_ns() - t0) / 1000000;
  long req1 = kitd_test_agent_requests(&agent, "/v1/health/service/");
  if (req0 >= 0 && req1 >= 0) {
    fprintf(stderr, "%s: %ld requests in %lld ms\n", knob, req1 - req0, (long long)el_ms);
    /* backoff 400 ms cap + bucket 1/s: at most ~ 2/s plus the first few */
    assert_true(req1 - req0 <= 4 + 2 * (el_ms / 1000 + 1));
  }
  assert_int_equal(kitd_test_agent_clear_faults(&agent), 200);
  reg(svc, id1, 7002, NULL, "passing");
  /* A request in flight when the fault ends may still run into its
   * timeout (stall): allow as long as the error took. */
  assert_true(
      kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7002", kitd_test_ms(error_within_ms + 5000)));
  watch_stop(&w);
  kitd_test_agent_deregister(&agent, id1);
}

/* The agent dies: the poll in flight is cut (EPROTO or ECONNECT first),
 * then connections are refused. */
static void test_fault_down(void **s) {
  (void)s;
  fault_case("down", NULL, 3000, 0);
}
static void test_fault_500(void **s) {
  (void)s;
  fault_case("500", NULL, 3000, KITD_EHTTP);
}
static void test_fault_429(void **s) {
  (void)s;
  fault_case("429", NULL, 3000, KITD_EHTTP);
}
static void test_fault_garbage(void **s) {
  (void)s;
  fault_case("garbage", NULL, 3000, KITD_EPROTO);
}
static void test_fault_truncated(void **s) {
  (void)s;
  fault_case("truncated", NULL, 3000, KITD_EPROTO);
}
static void test_fault_oversized(void **s) {
  (void)s;
  fault_case("oversized", "2097152", 3000, KITD_ETOOBIG);
}
/* A stalled agent: the poll is cut by the timeout (wait + wait/16 + 11 s). */
static void test_fault_stall(void **s) {
  (void)s;
  fault_case("stall", NULL, 20000, KITD_ETIMEDOUT);
}

/* A slow agent is not an error: answers come late, but they come. */
static void test_fault_slow(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id1[80];
  svc_name(svc, sizeof svc, "slow");
  snprintf(id1, sizeof id1, "%s-1", svc);
  reg(svc, id1, 7001, NULL, "passing");
  assert_int_equal(kitd_test_agent_fault(&agent, "slow", "500ms"), 200);
  watch w;
  watch_start(&w, svc, NULL, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(5000)));
  reg(svc, id1, 7002, NULL, "passing");
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7002", kitd_test_ms(5000)));
  assert_int_equal(kitd_test_recorder_errors(&w.rec), 0);
  kitd_test_agent_clear_faults(&agent);
  watch_stop(&w);
  kitd_test_agent_deregister(&agent, id1);
}

/* The index goes backwards without a restart (snapshot restore): the
 * watcher starts again from 0 and keeps seeing changes. */
static void test_fault_index_reset(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id1[80];
  svc_name(svc, sizeof svc, "idxreset");
  snprintf(id1, sizeof id1, "%s-1", svc);
  for (int i = 0; i < 10; i++) reg(svc, id1, 7001, NULL, "passing");
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.wait_ms = 60000;
  watch w;
  watch_start(&w, svc, &o, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(3000)));
  /* A restore wakes the queries blocked at that moment; a query that starts
   * later with the old, higher index blocks for its whole wait, as Consul's
   * does. Reset only once the watcher is blocked (the rate limiter may hold
   * its next poll back a little, more so under sanitizers). */
  for (long t = 0; t < kitd_test_ms(5000); t += 20) {
    char *st = NULL;
    kitd_test_agent_http(&agent, "GET", "/_double/stats", NULL, &st);
    int blocked = st && strstr(st, "\"blocking\":0") == NULL;
    free(st);
    if (blocked) break;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(kitd_test_agent_fault(&agent, "index-reset", NULL), 200);
  reg(svc, id1, 7005, NULL, "passing");
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7005", kitd_test_ms(5000)));
  reg(svc, id1, 7006, NULL, "passing");
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7006", kitd_test_ms(5000)));
  kitd_test_agent_clear_faults(&agent);
  watch_stop(&w);
  kitd_test_agent_deregister(&agent, id1);
}

/* --- the token: sent, and never in a log line or an event detail --- */

struct logcap {
  pthread_mutex_t mu;
  char lines[65536];
  size_t len;
};

static void capture(void *arg, const kitd_log_record *rec_) {
  kitd_log_level level = rec_->level;
  char line[4096];
  kitd_log_format_record(rec_, KITD_LOG_LOGFMT, line, sizeof line);
  (void)level;
  struct logcap *lc = arg;
  pthread_mutex_lock(&lc->mu);
  size_t n = strlen(line);
  if (lc->len + n + 2 < sizeof lc->lines) {
    memcpy(lc->lines + lc->len, line, n);
    lc->len += n;
    lc->lines[lc->len++] = '\n';
    lc->lines[lc->len] = '\0';
  }
  pthread_mutex_unlock(&lc->mu);
}

static void test_token_never_logged(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  static const char secret[] = "9b1c7e2a-kitd-secret-token-5d3f";
  static struct logcap lc;
  memset(&lc, 0, sizeof lc);
  pthread_mutex_init(&lc.mu, NULL);
  kitd_logger *lg = NULL;
  assert_int_equal(kitd_logger_new(KITD_LOG_DEBUG, capture, &lc, KITD_LOG_LOGFMT, &lg), 0);
  char svc[64], id1[80];
  svc_name(svc, sizeof svc, "token");
  snprintf(id1, sizeof id1, "%s-1", svc);
  reg(svc, id1, 7001, NULL, "passing");
  watch w;
  kitd_test_recorder_init(&w.rec);
  w.c = client();
  assert_int_equal(kitd_consul_set_token(w.c, secret), 0);
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.backoff_max_ms = 300;
  o.wait_ms = 2000;
  assert_int_equal(kitd_consul_instancer_new(w.c, svc, &o, lg, &w.in), 0);
  assert_int_equal(kitd_instancer_subscribe(w.in, kitd_test_recorder_fn, &w.rec), 0);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7001", kitd_test_ms(3000)));
  /* Errors are logged: make some. */
  long errs = kitd_test_recorder_errors(&w.rec);
  assert_int_equal(kitd_test_agent_fault(&agent, "500", NULL), 200);
  reg(svc, id1, 7002, NULL, "passing");
  assert_true(kitd_test_recorder_wait_error(&w.rec, errs, kitd_test_ms(3000)));
  pthread_mutex_lock(&w.rec.mu);
  assert_null(strstr(w.rec.detail, secret));
  pthread_mutex_unlock(&w.rec.mu);
  kitd_test_agent_clear_faults(&agent);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7002", kitd_test_ms(5000)));
  /* The double saw the token (its stats record the last token it got). */
  char *stats = NULL;
  int st = kitd_test_agent_http(&agent, "GET", "/_double/stats", NULL, &stats);
  if (st == 200 && stats && strstr(stats, "token")) assert_non_null(strstr(stats, secret));
  free(stats);
  watch_stop(&w);
  kitd_logger_free(lg);
  pthread_mutex_lock(&lc.mu);
  assert_true(lc.len > 0);
  if (strstr(lc.lines, secret)) fail_msg("token found in logs:\n%s", lc.lines);
  pthread_mutex_unlock(&lc.mu);
  kitd_test_agent_deregister(&agent, id1);
}

/* No agent at all: the lookup fails with ECONNECT and a clear detail. */
static void test_lookup_refused(void **state) {
  (void)state;
  NEED_AGENT();
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_int_equal(kitd_consul_set_address(c, "127.0.0.1:1", NULL), 0);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_consul_lookup(c, "x", NULL, &ctx, &set, &n), KITD_ECONNECT);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "connect"));
  kitd_consul_free(c);
}

/* --- instance attributes --- */

/* Register with weights, tags and meta through the agent API. */
static void reg_attrs(const char *svc, const char *id, int port, const char *zone,
                      const char *status) {
  char body[1024];
  snprintf(body, sizeof body,
           "{\"Name\":\"%s\",\"ID\":\"%s\",\"Address\":\"127.0.0.1\",\"Port\":%d,"
           "\"Tags\":[\"v2\",\"blue\"],\"Meta\":{\"zone\":\"%s\",\"version\":\"2.1\"},"
           "\"Weights\":{\"Passing\":10,\"Warning\":1},"
           "\"Check\":{\"CheckID\":\"service:%s\",\"TTL\":\"60s\",\"Status\":\"%s\"}}",
           svc, id, port, zone, id, status);
  assert_int_equal(kitd_test_agent_http(&agent, "PUT", "/v1/agent/service/register", body, NULL),
                   200);
}

/* The zone of the one instance in `in`'s state, or "" (copied into buf). */
static const char *state_zone(kitd_instancer *in, char *buf, size_t cap) {
  kitd_instance **set = NULL;
  size_t n = 0;
  buf[0] = '\0';
  if (kitd_instancer_state(in, &set, &n) == 0 && n == 1 && kitd_instance_zone(set[0]))
    snprintf(buf, cap, "%s", kitd_instance_zone(set[0]));
  kitd_instance_list_free(set, n);
  return buf;
}

/* Weights, a warning check, tags, service meta, node and datacenter reach
 * the record; a change of attributes at the same address is an event with a
 * record that differs. */
static void test_instance_attributes(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id[80];
  svc_name(svc, sizeof svc, "attrs");
  snprintf(id, sizeof id, "%s-1", svc);
  reg_attrs(svc, id, 7011, "z1", "warning");
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.passing_only = 0;
  watch w;
  watch_start(&w, svc, &o, NULL);
  assert_true(kitd_test_recorder_wait_set(&w.rec, "127.0.0.1:7011", kitd_test_ms(3000)));
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(w.in, &set, &n), 0);
  assert_int_equal(n, 1);
  const kitd_instance *i = set[0];
  assert_int_equal(kitd_instance_status(i), KITD_HEALTH_WARNING);
  assert_int_equal(kitd_instance_weight(i), 1); /* Weights.Warning */
  assert_true(kitd_instance_has_tag(i, "v2"));
  assert_true(kitd_instance_has_tag(i, "blue"));
  assert_string_equal(kitd_instance_meta(i, "version"), "2.1");
  assert_string_equal(kitd_instance_zone(i), "z1");
  assert_string_equal(kitd_instance_datacenter(i), "dc1");
  assert_non_null(kitd_instance_node(i));
  assert_string_equal(kitd_instance_node(i), "consul-double");
  assert_string_equal(kitd_instance_node_meta(i, "rack"), "r7");
  kitd_instance_list_free(set, n);
  /* Passing: Weights.Passing. */
  assert_int_equal(kitd_test_agent_ttl(&agent, id, "pass"), 200);
  int64_t end = kitd_now_ns() + kitd_test_ms(3000) * 1000000;
  uint32_t weight = 0;
  while (weight != 10 && kitd_now_ns() < end) {
    assert_int_equal(kitd_instancer_state(w.in, &set, &n), 0);
    if (n == 1) weight = kitd_instance_weight(set[0]);
    kitd_instance_list_free(set, n);
    if (weight != 10) {
      struct timespec ts = {0, 20 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  assert_int_equal(weight, 10);
  /* Same address, another zone: an event, and the new record. */
  pthread_mutex_lock(&w.rec.mu);
  long before_events = w.rec.events;
  pthread_mutex_unlock(&w.rec.mu);
  reg_attrs(svc, id, 7011, "z2", "passing");
  char zb[32] = "";
  end = kitd_now_ns() + kitd_test_ms(3000) * 1000000;
  while (strcmp(state_zone(w.in, zb, sizeof zb), "z2") != 0 && kitd_now_ns() < end) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  assert_string_equal(zb, "z2");
  pthread_mutex_lock(&w.rec.mu);
  long after_events = w.rec.events;
  pthread_mutex_unlock(&w.rec.mu);
  assert_true(after_events > before_events);
  assert_string_equal(w.rec.set, "127.0.0.1:7011");
  kitd_test_agent_deregister(&agent, id);
  watch_stop(&w);
}

/* zone_meta_key names another key; an opts not filled by _init is refused. */
static void test_zone_key_and_opts_size(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id[80];
  svc_name(svc, sizeof svc, "zkey");
  snprintf(id, sizeof id, "%s-1", svc);
  reg_attrs(svc, id, 7012, "z1", "passing");
  kitd_consul *c = client();
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  assert_int_equal(o.size, sizeof o);
  o.zone_meta_key = "version"; /* service meta */
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_consul_lookup(c, svc, &o, NULL, &set, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(kitd_instance_zone(set[0]), "2.1");
  kitd_instance_list_free(set, n);
  o.zone_meta_key = "rack"; /* node meta */
  assert_int_equal(kitd_consul_lookup(c, svc, &o, NULL, &set, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(kitd_instance_zone(set[0]), "r7");
  kitd_instance_list_free(set, n);
  kitd_consul_instancer_opts bad;
  memset(&bad, 0, sizeof bad);
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_consul_instancer_new(c, svc, &bad, NULL, &in), KITD_EINVAL);
  assert_null(in);
  assert_int_equal(kitd_consul_lookup(c, svc, &bad, NULL, &set, &n), KITD_EINVAL);
  kitd_test_agent_deregister(&agent, id);
  kitd_consul_free(c);
}

/* --- errors that explain themselves --- */

static void test_describe(void **state) {
  (void)state;
  NEED_AGENT();
  kitd_consul *c = client();
  const char *tags[] = {"v2", "blue"};
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.tags = tags;
  o.ntags = 2;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_consul_instancer_new(c, "users", &o, NULL, &in), 0);
  assert_string_equal(kitd_instancer_describe(in),
                      "passing instances of 'users' with tags [v2,blue]");
  kitd_instancer_free(in);
  o.passing_only = 0;
  o.ntags = 0;
  o.datacenter = "dc1";
  assert_int_equal(kitd_consul_instancer_new(c, "users", &o, NULL, &in), 0);
  assert_string_equal(kitd_instancer_describe(in), "instances of 'users' in dc1");
  kitd_instancer_free(in);
  kitd_consul_free(c);
}

static int ok_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st;
  (void)ctx;
  (void)req;
  (void)resp;
  return 0;
}

static int ok_factory(void *arg, const kitd_instance *inst, kitd_endpoint **out) {
  (void)arg;
  (void)inst;
  return kitd_endpoint_new(ok_call, NULL, NULL, out);
}

typedef struct pipeline {
  kitd_consul *c;
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  kitd_endpoint *call;
} pipeline;

static void pipeline_start(pipeline *p, const char *svc) {
  memset(p, 0, sizeof *p);
  p->c = client();
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.backoff_max_ms = 200;
  assert_int_equal(kitd_consul_instancer_new(p->c, svc, &o, NULL, &p->in), 0);
  kitd_factory f = {ok_factory, NULL, NULL};
  assert_int_equal(kitd_endpointer_new(p->in, &f, NULL, &p->ep), 0);
  assert_int_equal(kitd_balancer_round_robin_new(p->ep, 0, &p->b), 0);
  assert_int_equal(kitd_retry_new(p->b, NULL, &p->call), 0);
  assert_int_equal(kitd_instancer_wait_ready(p->in, kitd_test_ms(3000)), 0);
}

static void pipeline_stop(pipeline *p) {
  kitd_endpoint_unref(p->call);
  kitd_balancer_free(p->b);
  kitd_endpointer_free(p->ep);
  kitd_instancer_free(p->in);
  kitd_consul_free(p->c);
}

/* A call through a static pipeline tells why it has no endpoint: the
 * service has none ("0 passing instances of '...'"), or the agent is down
 * ("consul: connect ... refused; last good answer N s ago"). */
static void test_call_explains_empty_and_down(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64];
  svc_name(svc, sizeof svc, "explain");
  pipeline p;
  pipeline_start(&p, svc);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(p.call, &ctx, NULL, &resp), KITD_ENOENDPOINTS);
  char want[128];
  snprintf(want, sizeof want, "0 passing instances of '%s'", svc);
  if (!strstr(kitd_ctx_detail(&ctx), want))
    fail_msg("detail \"%s\" lacks \"%s\"", kitd_ctx_detail(&ctx), want);
  /* The agent goes away: the detail names it, the failure and the age of
   * the last good answer. */
  assert_int_equal(kitd_test_agent_fault(&agent, "down", "3000"), 200);
  int64_t end = kitd_now_ns() + kitd_test_ms(3000) * 1000000;
  const char *d = "";
  do {
    kitd_ctx_init(&ctx);
    assert_int_equal(kitd_endpoint_call(p.call, &ctx, NULL, &resp), KITD_ENOENDPOINTS);
    d = kitd_ctx_detail(&ctx);
    /* The open long poll is cut first ("bad or cut answer"); the retry
     * then finds the port closed. */
    if (strstr(d, "refused")) break;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  } while (kitd_now_ns() < end);
  fprintf(stderr, "agent down: %s\n", d);
  assert_non_null(strstr(d, "consul: connect 127.0.0.1:"));
  assert_non_null(strstr(d, "refused"));
  assert_non_null(strstr(d, "last good answer"));
  pipeline_stop(&p);
  /* Let the double come back for the next tests. */
  for (int i = 0;
       i < 400 && kitd_test_agent_http(&agent, "GET", "/v1/status/leader", NULL, NULL) != 200;
       i++) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
}

/* --- a callback that stops the instancer --- */

typedef struct stopper {
  kitd_instancer *in;
  int calls; /* atomic */
} stopper;

static void stop_from_callback(void *arg, const kitd_event *ev) {
  (void)ev;
  stopper *s = arg;
  __atomic_add_fetch(&s->calls, 1, __ATOMIC_SEQ_CST);
  kitd_instancer_stop(s->in);
}

/* Compression is asked for only of an agent that is not on this host
 * (lib/consul/config.c): the same answers of 30 instances (over the
 * 1,400 bytes Consul gzips) come plain from 127.0.0.1, and gzipped, then
 * inflated by libcurl, from the agent named as an IPv4-mapped IPv6
 * address, which the library does not take for this host. */
static void test_gzip_only_remote(void **state) {
  (void)state;
  NEED_AGENT();
  if (agent.real) skip();
  char svc[64], id[96], want[30 * 24] = "";
  svc_name(svc, sizeof svc, "gzip");
  for (int i = 0; i < 30; i++) {
    snprintf(id, sizeof id, "%s-%d", svc, i);
    reg(svc, id, 7100 + i, "[\"a-tag-to-make-the-answer-long\"]", "passing");
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s127.0.0.1:%d", i ? "," : "",
             7100 + i);
  }
  const char *port = strrchr(agent.url, ':') + 1;
  char mapped[80];
  snprintf(mapped, sizeof mapped, "http://[::ffff:127.0.0.1]:%s", port);
  for (int remote = 0; remote < 2; remote++) {
    long before = kitd_test_agent_stat(&agent, "gzipped");
    assert_true(before >= 0);
    watch w;
    kitd_test_recorder_init(&w.rec);
    w.c = client();
    if (remote) assert_int_equal(kitd_consul_set_address(w.c, mapped, NULL), 0);
    assert_int_equal(kitd_consul_instancer_new(w.c, svc, NULL, NULL, &w.in), 0);
    assert_int_equal(kitd_instancer_subscribe(w.in, kitd_test_recorder_fn, &w.rec), 0);
    assert_true(kitd_test_recorder_wait_set(&w.rec, want, kitd_test_ms(3000)));
    watch_stop(&w);
    long after = kitd_test_agent_stat(&agent, "gzipped");
    if (remote) assert_true(after > before);
    else assert_int_equal(after, before);
  }
  for (int i = 0; i < 30; i++) {
    snprintf(id, sizeof id, "%s-%d", svc, i);
    kitd_test_agent_deregister(&agent, id);
  }
}

static void test_callback_stops(void **state) {
  (void)state;
  NEED_AGENT();
  char svc[64], id[80];
  svc_name(svc, sizeof svc, "cbstop");
  snprintf(id, sizeof id, "%s-1", svc);
  reg(svc, id, 7013, NULL, "passing");
  kitd_consul *c = client();
  stopper s = {NULL, 0};
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.min_interval_ms = 10; /* else the rate limit alone would hide a loop that went on */
  assert_int_equal(kitd_consul_instancer_new(c, svc, &o, NULL, &s.in), 0);
  assert_int_equal(kitd_instancer_subscribe(s.in, stop_from_callback, &s), 0);
  int64_t end = kitd_now_ns() + kitd_test_ms(3000) * 1000000;
  while (__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST) == 0 && kitd_now_ns() < end) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 1);
  /* The watch has ended by itself: a change after the stop is neither
   * delivered nor even asked for (before, the loop went on polling). */
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  long asked = kitd_test_agent_requests(&agent, "/v1/health/service/");
  reg(svc, id, 7014, NULL, "passing");
  ts.tv_nsec = 300 * 1000000L;
  nanosleep(&ts, NULL);
  assert_int_equal(__atomic_load_n(&s.calls, __ATOMIC_SEQ_CST), 1);
  if (!agent.real) assert_int_equal(kitd_test_agent_requests(&agent, "/v1/health/service/"), asked);
  int64_t t0 = kitd_now_ns();
  kitd_instancer_unsubscribe(s.in, stop_from_callback, &s);
  kitd_instancer_free(s.in);
  assert_true((kitd_now_ns() - t0) / 1000000 < kitd_test_ms(500));
  kitd_test_agent_deregister(&agent, id);
  kitd_consul_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_discovery_and_changes, before),
      cmocka_unit_test_setup(test_passing_filter, before),
      cmocka_unit_test_setup(test_tags, before),
      cmocka_unit_test_setup(test_prompt_stop, before),
      cmocka_unit_test_setup(test_lookup_refused, before),
      cmocka_unit_test_setup(test_token_never_logged, before),
      cmocka_unit_test_setup(test_fault_500, before),
      cmocka_unit_test_setup(test_fault_429, before),
      cmocka_unit_test_setup(test_fault_garbage, before),
      cmocka_unit_test_setup(test_fault_truncated, before),
      cmocka_unit_test_setup(test_fault_oversized, before),
      cmocka_unit_test_setup(test_fault_slow, before),
      cmocka_unit_test_setup(test_fault_index_reset, before),
      cmocka_unit_test_setup(test_fault_down, before),
      cmocka_unit_test_setup(test_fault_stall, before),
      cmocka_unit_test_setup(test_dev_restart, before),
      cmocka_unit_test_setup(test_instance_attributes, before),
      cmocka_unit_test_setup(test_zone_key_and_opts_size, before),
      cmocka_unit_test_setup(test_describe, before),
      cmocka_unit_test_setup(test_callback_stops, before),
      cmocka_unit_test_setup(test_gzip_only_remote, before),
      cmocka_unit_test_setup(test_call_explains_empty_and_down, before),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
