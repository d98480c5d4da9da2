/* SPDX-License-Identifier: MIT */
/* Passive outlier ejection: after N consecutive failures an instance is
 * left out for base × times ejected, at most 10% (at least one) at once,
 * and comes back when its time is up; through a retry, no call fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../support/fixture.h"
#include "lb_scenarios.h"
#include "sd/endpointer_impl.h"

static void test_retry_with_ejection_no_failed_call(void **st) {
  (void)st;
  int after = 0;
  assert_int_equal(sc_outlier(3000, &after), 0);
  assert_true(after >= 0 && after <= 10);
}

/* One call on the balancer: pick, and report failure if the picked
 * instance is marked failing. Returns the index picked. */
static int one_call(struct sc *s, kitd_balancer *b) {
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  int i = sc_index(&p);
  kitd_balancer_done(b, &p, atomic_load(&s->eps[i].fail) ? KITD_ECONNECT : 0, 1000);
  return i;
}

static void test_eject_return_eject_longer(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.eject_consecutive = 3;
  o.eject_base_ms = 100 * kt_scale();
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, &o, &b), 0);
  atomic_store(&s.eps[0].fail, 1);
  int hits = 0;
  for (int k = 0; k < 30; k++) hits += one_call(&s, b) == 0;
  assert_int_equal(hits, 3); /* ejected on its third failure in a row */
  int64_t t0 = kitd_now_ns();
  /* Back after base: it fails 3 more times, then is out for 2 × base. */
  while (kitd_now_ns() - t0 < o.eject_base_ms * 1000000 + 20000000) kt_sleep_ms(10);
  hits = 0;
  for (int k = 0; k < 30; k++) hits += one_call(&s, b) == 0;
  assert_int_equal(hits, 3);
  int64_t t1 = kitd_now_ns();
  /* Still out after 1.5 × base (the second ejection lasts 2 × base). */
  while (kitd_now_ns() - t1 < o.eject_base_ms * 1500000) kt_sleep_ms(10);
  if (kitd_now_ns() - t1 < o.eject_base_ms * 1900000) { /* not if this thread was starved */
    hits = 0;
    for (int k = 0; k < 30; k++) hits += one_call(&s, b) == 0;
    assert_int_equal(hits, 0);
  }
  /* A success resets the streak: failures that are not consecutive never
   * eject. */
  atomic_store(&s.eps[0].fail, 0);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_at_most_ten_percent(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 12, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  for (int i = 0; i < 4; i++) atomic_store(&s.eps[i].fail, 1);
  /* 12 × 10% = 1 (at least one): one of the four failing ones is out. */
  int cnt[12] = {0};
  for (int k = 0; k < 1200; k++) cnt[one_call(&s, b)]++;
  int out = 0;
  for (int i = 0; i < 4; i++) out += cnt[i] < 20;
  assert_int_equal(out, 1);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_not_consecutive_not_ejected(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 2, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, NULL, &b), 0);
  int cnt[2] = {0};
  for (int k = 0; k < 400; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    int i = sc_index(&p);
    cnt[i]++;
    /* Instance 0 fails every other call it gets: 4 in a row never happen. */
    kitd_balancer_done(b, &p, i == 0 && cnt[0] % 2 ? KITD_ECONNECT : 0, -1);
  }
  assert_true(cnt[0] > 50);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_ejected_leaves_set(void **st) {
  (void)st;
  /* An ejected instance removed from the set gives its place back. */
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, NULL, &b), 0);
  atomic_store(&s.eps[0].fail, 1);
  for (int k = 0; k < 30; k++) one_call(&s, b);
  assert_int_equal(atomic_load(&s.ep->ejected), 1);
  const char *two[] = {"10.0.0.1:80", "10.0.0.2:80"};
  kitd_static_instancer_set(s.in, two, 2);
  assert_int_equal(atomic_load(&s.ep->ejected), 0);
  kitd_balancer_free(b);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_retry_with_ejection_no_failed_call),
      cmocka_unit_test(test_eject_return_eject_longer),
      cmocka_unit_test(test_at_most_ten_percent),
      cmocka_unit_test(test_not_consecutive_not_ejected),
      cmocka_unit_test(test_ejected_leaves_set),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
