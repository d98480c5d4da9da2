/* SPDX-License-Identifier: MIT */
/* Smooth weighted round robin: shares, interleaving, weight changes,
 * health (unhealthy skipped, panic), options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lb_scenarios.h"

static void test_shares_1_2_7(void **st) {
  (void)st;
  double sh[3];
  int twice = sc_wrr_shares(100000, sh);
  const double want[3] = {10, 20, 70};
  for (int i = 0; i < 3; i++) { assert_true(sh[i] > want[i] - 1 && sh[i] < want[i] + 1); }
  assert_int_equal(twice, 0);
}

static int pick_index(kitd_balancer *b) {
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  int i = sc_index(&p);
  kitd_balancer_done(b, &p, 0, -1);
  return i;
}

static void test_order_is_smooth(void **st) {
  (void)st;
  struct sc s;
  const uint32_t w[3] = {1, 2, 7};
  sc_open(&s, 3, w, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  kitd_balancer_set_seed(b, 0);
  /* Earliest due first: C C B C A C C B C C, then again. */
  const int want[10] = {2, 2, 1, 2, 0, 2, 2, 1, 2, 2};
  for (int k = 0; k < 20; k++) assert_int_equal(pick_index(b), want[k % 10]);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_weights_change(void **st) {
  (void)st;
  struct sc s;
  const uint32_t w[3] = {1, 3, 3};
  sc_open(&s, 3, w, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  int cnt[3] = {0};
  for (int k = 0; k < 700; k++) cnt[pick_index(b)]++;
  assert_int_equal(cnt[0], 100);
  assert_int_equal(cnt[1], 300);
  assert_int_equal(cnt[2], 300);
  /* The weights change: the next snapshot's order follows. */
  kitd_instance *r[3];
  const uint32_t w2[3] = {1, 1, 2};
  for (int i = 0; i < 3; i++) {
    char a[32];
    snprintf(a, sizeof a, "10.0.0.%d:80", i);
    kitd_instance_new(a, &r[i]);
    kitd_instance_set_weight(r[i], w2[i]);
  }
  kitd_static_instancer_set_records(s.in, r, 3);
  for (int i = 0; i < 3; i++) kitd_instance_unref(r[i]);
  memset(cnt, 0, sizeof cnt);
  for (int k = 0; k < 400; k++) cnt[pick_index(b)]++;
  assert_int_equal(cnt[0], 100);
  assert_int_equal(cnt[1], 100);
  assert_int_equal(cnt[2], 200);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_large_weights_scaled(void **st) {
  (void)st;
  /* A cycle of 100,000 + 1 entries is scaled down; the shares hold. */
  struct sc s;
  const uint32_t w[2] = {100000, 1};
  sc_open(&s, 2, w, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  int cnt[2] = {0};
  for (int k = 0; k < 100000; k++) cnt[pick_index(b)]++;
  assert_true(cnt[1] >= 1 && cnt[1] <= 100); /* one per scaled cycle */
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_unhealthy_skipped_then_panic(void **st) {
  (void)st;
  struct sc s;
  const kitd_health h[4] = {KITD_HEALTH_PASSING, KITD_HEALTH_CRITICAL, KITD_HEALTH_PASSING,
                            KITD_HEALTH_PASSING};
  sc_open(&s, 4, NULL, h);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  int cnt[4] = {0};
  for (int k = 0; k < 300; k++) cnt[pick_index(b)]++;
  assert_int_equal(cnt[1], 0);
  assert_int_equal(cnt[0] + cnt[2] + cnt[3], 300);
  kitd_balancer_free(b);
  sc_close(&s);
  /* 1 of 4 healthy (< 50%): panic, all four are used. */
  const kitd_health h2[4] = {KITD_HEALTH_PASSING, KITD_HEALTH_CRITICAL, KITD_HEALTH_CRITICAL,
                             KITD_HEALTH_WARNING};
  sc_open(&s, 4, NULL, h2);
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  memset(cnt, 0, sizeof cnt);
  for (int k = 0; k < 400; k++) cnt[pick_index(b)]++;
  for (int i = 0; i < 4; i++) assert_int_equal(cnt[i], 100);
  kitd_balancer_free(b);
  /* panic_percent 0: never panic, the healthy one takes all. */
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.panic_percent = 0;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, &o, &b), 0);
  for (int k = 0; k < 50; k++) assert_int_equal(pick_index(b), 0);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_bad_opts(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 2, NULL, NULL);
  kitd_balancer *b = NULL;
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.size--;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, &o, &b), KITD_EINVAL);
  kitd_balancer_opts_init(&o);
  o.panic_percent = 101;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, &o, &b), KITD_EINVAL);
  assert_int_equal(kitd_balancer_p2c_new(s.ep, &o, &b), KITD_EINVAL);
  kitd_balancer_opts_init(&o);
  o.eject_consecutive = -1;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, &o, &b), KITD_EINVAL);
  assert_null(b);
  assert_int_equal(kitd_balancer_weighted_new(NULL, NULL, &b), KITD_EINVAL);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_shares_1_2_7),
      cmocka_unit_test(test_order_is_smooth),
      cmocka_unit_test(test_weights_change),
      cmocka_unit_test(test_large_weights_scaled),
      cmocka_unit_test(test_unhealthy_skipped_then_panic),
      cmocka_unit_test(test_bad_opts),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
