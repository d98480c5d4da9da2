/* SPDX-License-Identifier: MIT */
/* Zone-aware picks: with equal zones every call stays in the local zone;
 * with no healthy instance there, all of them spill to the other zones;
 * with some, a share in proportion to what the local zone lost spills;
 * weights hold inside the zone. Both weighted and p2c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lb_scenarios.h"

static const char *const zones[6] = {"a", "a", "a", "b", "b", "b"};

static kitd_balancer *make(struct sc *s, int p2c, const char *zone) {
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.zone = zone;
  kitd_balancer *b = NULL;
  assert_int_equal(
      p2c ? kitd_balancer_p2c_new(s->ep, &o, &b) : kitd_balancer_weighted_new(s->ep, &o, &b), 0);
  return b;
}

/* Picks in zone "a" (instances 0..2) out of `n`. */
static int local_picks(kitd_balancer *b, int n) {
  int local = 0;
  for (int k = 0; k < n; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    local += sc_index(&p) < 3;
    kitd_balancer_done(b, &p, 0, 1000000);
  }
  return local;
}

static void test_stays_local(void **st) {
  (void)st;
  for (int p2c = 0; p2c < 2; p2c++) {
    struct sc s;
    sc_open_z(&s, 6, NULL, NULL, zones);
    kitd_balancer *b = make(&s, p2c, "a");
    assert_int_equal(local_picks(b, 1000), 1000); /* >= 95% asked; all */
    kitd_balancer_free(b);
    b = make(&s, p2c, NULL); /* no preference: both zones */
    int l = local_picks(b, 1000);
    assert_true(l > 300 && l < 700);
    kitd_balancer_free(b);
    sc_close(&s);
  }
}

static void test_spills_when_local_down(void **st) {
  (void)st;
  const kitd_health h[6] = {KITD_HEALTH_CRITICAL, KITD_HEALTH_CRITICAL, KITD_HEALTH_CRITICAL,
                            KITD_HEALTH_PASSING,  KITD_HEALTH_PASSING,  KITD_HEALTH_PASSING};
  for (int p2c = 0; p2c < 2; p2c++) {
    struct sc s;
    sc_open_z(&s, 6, NULL, h, zones);
    kitd_balancer_opts o;
    kitd_balancer_opts_init(&o);
    o.zone = "a";
    o.panic_percent = 0; /* half the set is down: no panic, spill */
    kitd_balancer *b;
    assert_int_equal(
        p2c ? kitd_balancer_p2c_new(s.ep, &o, &b) : kitd_balancer_weighted_new(s.ep, &o, &b), 0);
    assert_int_equal(local_picks(b, 600), 0);
    kitd_balancer_free(b);
    sc_close(&s);
  }
}

/* The local zone lost two of its three instances: it keeps about a third
 * of the picks (its remaining capacity) and the rest spill to the other
 * zone, instead of all of them landing on its one survivor. */
static void test_spills_in_proportion(void **st) {
  (void)st;
  const kitd_health h[6] = {KITD_HEALTH_CRITICAL, KITD_HEALTH_CRITICAL, KITD_HEALTH_PASSING,
                            KITD_HEALTH_PASSING,  KITD_HEALTH_PASSING,  KITD_HEALTH_PASSING};
  for (int p2c = 0; p2c < 2; p2c++) {
    struct sc s;
    sc_open_z(&s, 6, NULL, h, zones);
    kitd_balancer *b = make(&s, p2c, "a");
    int n = 6000, local = 0, dead = 0;
    for (int k = 0; k < n; k++) {
      kitd_pick p;
      assert_int_equal(kitd_balancer_pick(b, &p), 0);
      local += sc_index(&p) < 3;
      dead += sc_index(&p) < 2;
      kitd_balancer_done(b, &p, 0, 1000000);
    }
    assert_int_equal(dead, 0);
    /* 1/3 expected (2,000 of 6,000); the old all-or-nothing rule kept all. */
    assert_in_range(local, 1700, 2300);
    kitd_balancer_free(b);
    sc_close(&s);
  }
}

static void test_weights_inside_zone(void **st) {
  (void)st;
  struct sc s;
  const uint32_t w[6] = {1, 1, 2, 5, 5, 5};
  sc_open_z(&s, 6, w, NULL, zones);
  kitd_balancer *b = make(&s, 0, "a");
  int cnt[6] = {0};
  for (int k = 0; k < 400; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    cnt[sc_index(&p)]++;
    kitd_balancer_done(b, &p, 0, -1);
  }
  assert_int_equal(cnt[0] + cnt[1] + cnt[2], 400);
  assert_true(cnt[2] > cnt[0] + cnt[0] / 2 && cnt[2] > cnt[1] + cnt[1] / 2);
  kitd_balancer_free(b);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_stays_local),
      cmocka_unit_test(test_spills_when_local_down),
      cmocka_unit_test(test_spills_in_proportion),
      cmocka_unit_test(test_weights_inside_zone),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
