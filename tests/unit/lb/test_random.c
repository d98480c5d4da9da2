/* Random: spread, seeded determinism, shared handle across threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../support/fixture.h"

static const char *four[] = {"a:1", "b:2", "c:3", "d:4"};

static void test_spread(void **st) {
  (void)st;
  struct fx f;
  fx_open(&f, four, 4, 1);
  int counts[4] = {0};
  for (int i = 0; i < 40000; i++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(f.b, &p), 0);
    counts[p.index]++;
    kitd_balancer_done(f.b, &p, 0, -1);
  }
  /* 10,000 expected each; 5 sigma is about 430. */
  for (int i = 0; i < 4; i++) assert_true(counts[i] > 9400 && counts[i] < 10600);
  fx_close(&f);
}

static void seq(uint64_t seed, size_t *out, int n) {
  struct fx f;
  fx_open(&f, four, 4, 1);
  kitd_balancer_set_seed(f.b, seed);
  for (int i = 0; i < n; i++) {
    kitd_pick p;
    kitd_balancer_pick(f.b, &p);
    out[i] = p.index;
    kitd_balancer_done(f.b, &p, 0, -1);
  }
  fx_close(&f);
}

static void test_seeded_is_reproducible(void **st) {
  (void)st;
  size_t a[32], b[32], c[32];
  seq(7, a, 32);
  seq(7, b, 32);
  seq(8, c, 32);
  assert_memory_equal(a, b, sizeof a);
  assert_memory_not_equal(a, c, sizeof a);
}

static void *picks(void *arg) {
  kitd_balancer *b = arg;
  for (int i = 0; i < 20000; i++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    assert_true(p.index < 4);
    kitd_balancer_done(b, &p, 0, -1);
  }
  return NULL;
}

static void test_shared_handle_threads(void **st) {
  (void)st;
  struct fx f;
  fx_open(&f, four, 4, 1);
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, picks, f.b);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  fx_close(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spread),
      cmocka_unit_test(test_seeded_is_reproducible),
      cmocka_unit_test(test_shared_handle_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
