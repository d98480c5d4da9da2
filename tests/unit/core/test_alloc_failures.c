/* SPDX-License-Identifier: MIT */
/* Fail the Nth allocation, N rising until success, in every constructor
 * and in an endpointer update: each failure is KITD_ENOMEM (or a skipped
 * instance), never a crash or a leak (the sanitizer and valgrind runs of
 * this test catch leaks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "kitd/consul.h"
#include "kitd/kitd.h"
#include "kitd/registrar.h"

static int ok_call(void *st, kitd_ctx *c, const void *req, void **resp) {
  (void)c;
  (void)req;
  *resp = st;
  return 0;
}

static int factory(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *instance = kitd_instance_address(rec_);
  (void)arg;
  (void)instance;
  return kitd_endpoint_new(ok_call, NULL, NULL, out);
}

static const char *fleet[] = {"a:1", "b:2", "c:3"};

/* Build the whole pipeline; on any failure, free what was built. */
static int build(void) {
  kitd_instancer *in = NULL;
  kitd_endpointer *ep = NULL;
  kitd_balancer *b = NULL;
  kitd_endpoint *r = NULL;
  kitd_logger *lg = NULL;
  int rc = kitd_logger_new(KITD_LOG_INFO, NULL, NULL, KITD_LOG_LOGFMT, &lg);
  if (!rc) rc = kitd_static_instancer_new(fleet, 3, &in);
  if (!rc) rc = kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep);
  if (!rc) rc = kitd_balancer_round_robin_new(ep, 0, &b);
  if (!rc) rc = kitd_retry_new(b, NULL, &r);
  if (!rc) {
    kitd_ctx c;
    kitd_ctx_init(&c);
    void *resp = NULL;
    rc = kitd_endpoint_call(r, &c, NULL, &resp);
    /* endpoints whose factory call failed were skipped: fewer, not broken */
    if (rc == KITD_ENOENDPOINTS || rc == KITD_ENOMEM) rc = 0;
  }
  kitd_endpoint_unref(r);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_logger_free(lg);
  return rc;
}

static void test_constructors(void **st) {
  (void)st;
  int failures = 0;
  for (long n = 0; n < 200; n++) {
    kitd__alloc_fail_after(n);
    int rc = build();
    kitd__alloc_fail_after(-1);
    if (rc == 0) break;
    assert_int_equal(rc, KITD_ENOMEM);
    failures++;
  }
  assert_true(failures >= 5); /* the pipeline does allocate: the hook bites */
}

static void test_update_failure_keeps_old_set(void **st) {
  (void)st;
  kitd_instancer *in;
  kitd_endpointer *ep;
  assert_int_equal(kitd_static_instancer_new(fleet, 3, &in), 0);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  const char *next[] = {"a:1", "d:4", "e:5"};
  for (long n = 0; n < 50; n++) {
    kitd_static_instancer_set(in, fleet, 3);
    kitd__alloc_fail_after(n);
    int rc = kitd_static_instancer_set(in, next, 3);
    kitd__alloc_fail_after(-1);
    size_t c = kitd_endpointer_count(ep);
    assert_true(rc == 0 || rc == KITD_ENOMEM);
    assert_true(c <= 3);
    if (rc == 0 && c == 3) break;
  }
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

/* The Consul config and a watching instancer (pointed at a closed port). */
static int build_consul(void) {
  kitd_consul *c = NULL;
  kitd_instancer *in = NULL;
  int rc = kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c);
  if (!rc) rc = kitd_consul_set_address(c, "http://127.0.0.1:1/prefix", NULL);
  if (!rc) rc = kitd_consul_set_token(c, "secret");
  const char *tags[] = {"a", "b"};
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.tags = tags;
  o.ntags = 2;
  if (!rc) rc = kitd_consul_instancer_new(c, "web", &o, NULL, &in);
  kitd_instancer_free(in);
  kitd_consul_free(c);
  return rc;
}

static void test_consul_constructors(void **st) {
  (void)st;
  int failures = 0;
  for (long n = 0; n < 300; n++) {
    kitd__alloc_fail_after(n);
    int rc = build_consul();
    kitd__alloc_fail_after(-1);
    if (rc == 0) break;
    assert_true(rc == KITD_ENOMEM || rc == KITD_EINTERNAL);
    failures++;
  }
  assert_true(failures >= 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constructors),
      cmocka_unit_test(test_update_failure_keeps_old_set),
      cmocka_unit_test(test_consul_constructors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
