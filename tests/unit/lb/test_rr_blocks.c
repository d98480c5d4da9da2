/* SPDX-License-Identifier: MIT */
/* Round robin claimed in blocks (KITD_RR_BLOCKS): one thread rotates
 * strictly; two threads together spread exactly evenly (every claimed
 * position is used once), up to the unused rest of each thread's block. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lb_scenarios.h"

static void test_one_thread_rotates(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 5, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(s.ep, KITD_RR_BLOCKS, &b), 0);
  kitd_balancer_set_seed(b, 3);
  for (int k = 0; k < 100; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    assert_int_equal(sc_index(&p), (3 + k) % 5);
    kitd_balancer_done(b, &p, 0, -1);
  }
  kitd_balancer_free(b);
  assert_int_equal(kitd_balancer_round_robin_new(s.ep, 3, &b), KITD_EINVAL);
  sc_close(&s);
}

struct th {
  kitd_balancer *b;
  int cnt[5];
};

static void *picker(void *arg) {
  struct th *t = arg;
  for (int k = 0; k < 16000; k++) { /* a multiple of the block: none left over */
    kitd_pick p;
    if (kitd_balancer_pick(t->b, &p) != 0) return (void *)1;
    t->cnt[sc_index(&p)]++;
    kitd_balancer_done(t->b, &p, 0, -1);
  }
  return NULL;
}

static void test_two_threads_even(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 5, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(s.ep, KITD_RR_BLOCKS, &b), 0);
  struct th t[2] = {{b, {0}}, {b, {0}}};
  pthread_t id[2];
  for (int i = 0; i < 2; i++) pthread_create(&id[i], NULL, picker, &t[i]);
  for (int i = 0; i < 2; i++) {
    void *r;
    pthread_join(id[i], &r);
    assert_null(r);
  }
  /* 32,000 consecutive positions of the rotation: 6,400 each. */
  for (int k = 0; k < 5; k++) assert_int_equal(t[0].cnt[k] + t[1].cnt[k], 6400);
  kitd_balancer_free(b);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_one_thread_rotates),
      cmocka_unit_test(test_two_threads_even),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
