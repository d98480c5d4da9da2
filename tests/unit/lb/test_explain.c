/* SPDX-License-Identifier: MIT */
/* Explain a pick: round robin names its policy, candidates and choice; a
 * weighted balancer also the instances it passed over (not passing,
 * ejected, other zone); an empty set gives the endpointer's reason; the
 * retry's debug record adds the instances already tried in the call; and
 * without a debug logger the retry logs nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kitd/kitd.h"

static int ok_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st, (void)ctx;
  *resp = (void *)req;
  return 0;
}
static int bad_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st, (void)ctx, (void)req, (void)resp;
  return KITD_ECONNECT;
}
static int factory(void *arg, const kitd_instance *rec, kitd_endpoint **out) {
  (void)arg;
  int bad = !strncmp(kitd_instance_address(rec), "bad", 3);
  return kitd_endpoint_new(bad ? bad_call : ok_call, NULL, NULL, out);
}

static kitd_instance *rec(const char *addr, const char *zone, kitd_health h) {
  kitd_instance *r;
  assert_int_equal(kitd_instance_new(addr, &r), 0);
  assert_int_equal(kitd_instance_set_zone(r, zone), 0);
  assert_int_equal(kitd_instance_set_status(r, h), 0);
  return r;
}

static void round_robin(void **state) {
  (void)state;
  const char *addrs[] = {"a:1", "b:1", "c:1"};
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  assert_int_equal(kitd_static_instancer_new(addrs, 3, &in), 0);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  assert_int_equal(kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &b), 0);
  kitd_balancer_set_seed(b, 1);
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  char buf[256];
  assert_string_equal(kitd_balancer_explain(b, &p, buf, sizeof buf),
                      "policy=round_robin candidates=3 chosen=b:1");
  /* cut to the buffer, always terminated */
  assert_string_equal(kitd_balancer_explain(b, &p, buf, 10), "policy=ro");
  kitd_balancer_done(b, &p, 0, -1);
  /* an empty set: the endpointer's reason */
  assert_int_equal(kitd_static_instancer_set(in, NULL, 0), 0);
  assert_int_equal(kitd_balancer_pick(b, &p), KITD_ENOENDPOINTS);
  kitd_balancer_explain(b, &p, buf, sizeof buf);
  assert_non_null(strstr(buf, "policy=round_robin candidates=0 reason=\"0 instances"));
  assert_ptr_equal(kitd_balancer_explain(NULL, &p, buf, sizeof buf), buf);
  assert_string_equal(buf, "");
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

static void weighted_reasons(void **state) {
  (void)state;
  kitd_instance *r[4] = {
      rec("bad:1", "a", KITD_HEALTH_PASSING), rec("far:1", "b", KITD_HEALTH_PASSING),
      rec("sick:1", "a", KITD_HEALTH_CRITICAL), rec("good:1", "a", KITD_HEALTH_PASSING)};
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  assert_int_equal(kitd_static_instancer_set_records(in, r, 4), 0);
  for (int i = 0; i < 4; i++) kitd_instance_unref(r[i]);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.zone = "a";
  o.eject_consecutive = 1;
  o.eject_max_percent = 50;
  o.panic_percent = 0;
  assert_int_equal(kitd_balancer_weighted_new(ep, &o, &b), 0);
  /* Fail bad:1 once: ejected. */
  int failed = 0;
  for (int k = 0; k < 400 && !failed; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    int bad = !strcmp(kitd_instance_address(p.instance), "bad:1");
    kitd_balancer_done(b, &p, bad ? KITD_ECONNECT : 0, 1000);
    failed = bad;
  }
  assert_true(failed);
  /* One healthy local instance of three: zone "a" keeps a third of the
   * picks and spills the rest to "b" (balancer.h); find a local one. */
  kitd_pick p;
  int local = 0;
  for (int k = 0; k < 200 && !local; k++) {
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    local = !strcmp(kitd_instance_address(p.instance), "good:1");
    if (!local) {
      assert_string_equal(kitd_instance_address(p.instance), "far:1");
      kitd_balancer_done(b, &p, 0, 1000);
    }
  }
  assert_true(local);
  char buf[512];
  kitd_balancer_explain(b, &p, buf, sizeof buf);
  assert_string_equal(buf, "policy=weighted candidates=4 chosen=good:1 skipped=\"bad:1 ejected, "
                           "far:1 other zone, sick:1 critical\"");
  kitd_balancer_done(b, &p, 0, 1000);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

/* The retry's debug records, kept as lines. */
struct lines {
  char text[8][512];
  int n;
};
static void keep(void *arg, const kitd_log_record *rec) {
  struct lines *l = arg;
  if (l->n < 8) kitd_log_format_record(rec, KITD_LOG_LOGFMT, l->text[l->n++], 512);
}

static void retry_debug_line(void **state) {
  (void)state;
  const char *addrs[] = {"bad:1", "good:1"};
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
  assert_int_equal(kitd_static_instancer_new(addrs, 2, &in), 0);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  assert_int_equal(kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &b), 0);
  kitd_balancer_set_seed(b, 0);
  struct lines got = {{{0}}, 0};
  kitd_logger *dbg, *info;
  assert_int_equal(kitd_logger_new(KITD_LOG_DEBUG, keep, &got, KITD_LOG_LOGFMT, &dbg), 0);
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, keep, &got, KITD_LOG_LOGFMT, &info), 0);
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.logger = dbg;
  kitd_endpoint *call;
  assert_int_equal(kitd_retry_new(b, &ro, &call), 0);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp;
  assert_int_equal(kitd_endpoint_call(call, &ctx, NULL, &resp), 0);
  /* Whatever KITD_LOG_LEVEL says, a line per attempt when it is debug. */
  if (kitd_log_enabled(dbg, KITD_LOG_DEBUG)) {
    assert_int_equal(got.n, 2);
    assert_non_null(strstr(got.text[0], "component=retry msg=pick attempt=1 policy=round_robin "
                                        "candidates=2 chosen=bad:1"));
    assert_non_null(strstr(got.text[1], "msg=pick attempt=2 policy=round_robin candidates=2 "
                                        "chosen=good:1 skipped=\"bad:1 tried in this call\""));
  }
  kitd_endpoint_unref(call);
  /* A logger not at debug: nothing. */
  got.n = 0;
  ro.logger = info;
  assert_int_equal(kitd_retry_new(b, &ro, &call), 0);
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(call, &ctx, NULL, &resp), 0);
  if (!kitd_log_enabled(info, KITD_LOG_DEBUG)) assert_int_equal(got.n, 0);
  kitd_endpoint_unref(call);
  kitd_logger_free(dbg);
  kitd_logger_free(info);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(round_robin),
      cmocka_unit_test(weighted_reasons),
      cmocka_unit_test(retry_debug_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
