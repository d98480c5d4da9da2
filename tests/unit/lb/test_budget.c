/* SPDX-License-Identifier: MIT */
/* The retry budget, on by default: against a backend that fails every
 * call, attempts stay under 1.2 × calls + 10 per second; off, retry(3)
 * makes 3 attempts per call; options are checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lb_scenarios.h"

static void test_budget_bounds_attempts(void **st) {
  (void)st;
  double bound;
  double per = sc_budget(5000, &bound);
  assert_true(per <= bound);
  assert_true(per >= 1.0);
}

static void test_budget_off(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 1, NULL, NULL);
  atomic_store(&s.eps[0].fail, 1);
  kitd_balancer *b;
  kitd_balancer_round_robin_new(s.ep, 0, &b);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  assert_int_equal(o.budget_percent, 20);
  assert_int_equal(o.budget_min_per_sec, 10);
  o.budget_percent = -1;
  kitd_endpoint *r;
  assert_int_equal(kitd_retry_new(b, &o, &r), 0);
  for (int k = 0; k < 100; k++) {
    kitd_ctx c;
    kitd_ctx_init(&c);
    void *resp;
    assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), KITD_ECONNECT);
  }
  assert_int_equal(atomic_load(&s.eps[0].calls), 300);
  kitd_endpoint_unref(r);
  /* Only the reserve: 100 retries at once (10 s of 10/s), then one per
   * 100 ms. */
  o.budget_percent = 0;
  assert_int_equal(kitd_retry_new(b, &o, &r), 0);
  atomic_store(&s.eps[0].calls, 0);
  int64_t t0 = kitd_now_ns();
  for (int k = 0; k < 100; k++) {
    kitd_ctx c;
    kitd_ctx_init(&c);
    void *resp;
    kitd_endpoint_call(r, &c, NULL, &resp);
  }
  int calls = atomic_load(&s.eps[0].calls);
  assert_true(calls >= 200 && calls <= 201 + (kitd_now_ns() - t0) / 100000000);
  kitd_endpoint_unref(r);
  o.budget_percent = 1001;
  assert_int_equal(kitd_retry_new(b, &o, &r), KITD_EINVAL);
  o.budget_percent = 20;
  o.budget_min_per_sec = -1;
  assert_int_equal(kitd_retry_new(b, &o, &r), KITD_EINVAL);
  kitd_balancer_free(b);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_budget_bounds_attempts),
      cmocka_unit_test(test_budget_off),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
