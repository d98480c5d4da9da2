/* SPDX-License-Identifier: MIT */
/* Slow start: an instance that joins a running set gets a small share at
 * first (<= 25% of its fair share in the first tenth of the window) and
 * its full share once the window is over; the instances of the first set
 * are not held back. Both weighted and p2c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../support/fixture.h"
#include "lb_scenarios.h"

static const char *five[] = {"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80",
                             "10.0.0.4:80"};

/* Picks of instance 4 among `*total` picks made until `until_ns`
 * (kitd_now_ns), or among `count` picks if until_ns is 0. */
static long picks_of_new(kitd_balancer *b, int64_t until_ns, long count, long *total) {
  long got = 0, k = 0;
  while (until_ns ? kitd_now_ns() < until_ns : k < count) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    got += sc_index(&p) == 4;
    kitd_balancer_done(b, &p, 0, 1000000);
    k++;
  }
  *total = k;
  return got;
}

static void run(int p2c) {
  struct sc s;
  sc_open(&s, 4, NULL, NULL);
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  assert_int_equal(o.slow_start_ms, 30000);
  o.slow_start_ms = 1000 * kt_scale();
  kitd_balancer *b;
  assert_int_equal(
      p2c ? kitd_balancer_p2c_new(s.ep, &o, &b) : kitd_balancer_weighted_new(s.ep, &o, &b), 0);
  /* The first set is not held back: all four share evenly at once. */
  long total, got0 = 0;
  for (int k = 0; k < 400; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    got0 += sc_index(&p) == 0;
    kitd_balancer_done(b, &p, 0, 1000000);
  }
  assert_true(got0 > 50);
  int64_t t0 = kitd_now_ns();
  kitd_static_instancer_set(s.in, five, 5);
  /* The first tenth of the window: at most 25% of a fair fifth. */
  long got = picks_of_new(b, t0 + o.slow_start_ms * 100000, 0, &total);
  assert_true(total > 0);
  assert_true((double)got <= 0.25 * (double)total / 5);
  /* After the window: its fair share, within 10%. */
  while (kitd_now_ns() < t0 + o.slow_start_ms * 1000000 + 10000000) kt_sleep_ms(20);
  got = picks_of_new(b, 0, 20000, &total);
  assert_true(got >= 0.9 * 20000 / 5 && got <= 1.1 * 20000 / 5);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_weighted(void **st) {
  (void)st;
  run(0);
}

static void test_p2c(void **st) {
  (void)st;
  run(1);
}

static void test_off(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 4, NULL, NULL);
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.slow_start_ms = 0;
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, &o, &b), 0);
  kitd_static_instancer_set(s.in, five, 5);
  long total;
  assert_int_equal(picks_of_new(b, 0, 500, &total), 100); /* at once */
  kitd_balancer_free(b);
  o.slow_start_ms = -1;
  assert_int_equal(kitd_balancer_weighted_new(s.ep, &o, &b), KITD_EINVAL);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_weighted),
      cmocka_unit_test(test_p2c),
      cmocka_unit_test(test_off),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
