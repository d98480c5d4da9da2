/* Round robin: rotation order, random start, seed, per-thread mode, empty set. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../support/fixture.h"

static const char *four[] = {"a:1", "b:2", "c:3", "d:4"};

static void test_rotation_with_seed(void **st) {
  (void)st;
  struct fx f;
  fx_open(&f, four, 4, 0);
  kitd_balancer_set_seed(f.b, 2);
  const char *want[] = {"c:3", "d:4", "a:1", "b:2", "c:3"};
  for (int i = 0; i < 5; i++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(f.b, &p), 0);
    assert_string_equal(kitd_instance_address(p.instance), want[i]);
    assert_int_equal(p.count, 4);
    kitd_balancer_done(f.b, &p, 0, 10);
  }
  fx_close(&f);
}

static void test_random_start(void **st) {
  (void)st;
  /* New balancers start at different places: over 40 balancers, more than
   * one start position shows up (all equal would be 4^-39 by chance). */
  int seen[4] = {0};
  for (int k = 0; k < 40; k++) {
    struct fx f;
    fx_open(&f, four, 4, 0);
    kitd_pick p;
    kitd_balancer_pick(f.b, &p);
    seen[p.index]++;
    kitd_balancer_done(f.b, &p, 0, -1);
    fx_close(&f);
  }
  int distinct = 0;
  for (int i = 0; i < 4; i++) distinct += seen[i] > 0;
  assert_true(distinct >= 2);
}

static void test_empty_set(void **st) {
  (void)st;
  struct fx f;
  fx_open(&f, NULL, 0, 0);
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(f.b, &p), KITD_ENOENDPOINTS);
  assert_null(p.endpoint);
  kitd_balancer_done(f.b, &p, 0, -1); /* harmless */
  fx_close(&f);
}

static void test_many_picks_held(void **st) {
  (void)st;
  /* More picks held at once than the fast slots: still protected. */
  struct fx f;
  fx_open(&f, four, 4, 0);
  kitd_pick p[3 * KITD_PICK_FAST];
  for (int i = 0; i < 3 * KITD_PICK_FAST; i++) assert_int_equal(kitd_balancer_pick(f.b, &p[i]), 0);
  kitd_static_instancer_set(f.in, four, 1);
  /* hand them back out of order */
  for (int i = 0; i < 3 * KITD_PICK_FAST; i += 2) kitd_balancer_done(f.b, &p[i], 0, -1);
  for (int i = 1; i < 3 * KITD_PICK_FAST; i += 2) kitd_balancer_done(f.b, &p[i], 0, -1);
  kitd_pick q;
  assert_int_equal(kitd_balancer_pick(f.b, &q), 0);
  assert_string_equal(kitd_instance_address(q.instance), "a:1");
  kitd_balancer_done(f.b, &q, 0, -1);
  fx_close(&f);
}

static void *per_thread_picks(void *arg) {
  kitd_balancer *b = arg;
  int counts[4] = {0};
  for (int i = 0; i < 4000; i++) {
    kitd_pick p;
    kitd_balancer_pick(b, &p);
    counts[p.index]++;
    kitd_balancer_done(b, &p, 0, -1);
  }
  for (int i = 0; i < 4; i++) assert_int_equal(counts[i], 1000); /* exact rotation per thread */
  return NULL;
}

static void test_per_thread_mode(void **st) {
  (void)st;
  fx_reset();
  kitd_instancer *in;
  kitd_static_instancer_new(four, 4, &in);
  kitd_endpointer *ep;
  kitd_endpointer_new(in, &(kitd_factory){fx_factory, NULL, NULL}, NULL, &ep);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 99, &b), KITD_EINVAL);
  assert_int_equal(kitd_balancer_round_robin_new(ep, KITD_RR_PER_THREAD, &b), 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, per_thread_picks, b);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

static void *global_picks(void *arg) {
  kitd_balancer *b = arg;
  for (int i = 0; i < 4000; i++) {
    kitd_pick p;
    kitd_balancer_pick(b, &p);
    kitd_balancer_done(b, &p, 0, -1);
  }
  return NULL;
}

static void test_global_rotation_is_exact_across_threads(void **st) {
  (void)st;
  struct fx f;
  fx_open(&f, four, 4, 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, global_picks, f.b);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  /* 8000 picks over 4 with one shared counter: exactly 2000 each; the
   * next pick continues the rotation. */
  kitd_pick a, b;
  kitd_balancer_pick(f.b, &a);
  kitd_balancer_done(f.b, &a, 0, -1);
  kitd_balancer_pick(f.b, &b);
  kitd_balancer_done(f.b, &b, 0, -1);
  assert_int_equal(b.index, (a.index + 1) % 4);
  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rotation_with_seed),
      cmocka_unit_test(test_random_start),
      cmocka_unit_test(test_empty_set),
      cmocka_unit_test(test_many_picks_held),
      cmocka_unit_test(test_per_thread_mode),
      cmocka_unit_test(test_global_rotation_is_exact_across_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
