/* SPDX-License-Identifier: MIT */
/* Random: even distribution, seeded determinism, one handle shared by
 * many threads, empty set. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/balancer.h"
#include "kitd/error.h"

#define N 8

static const char *eight[N] = {"h0:1", "h1:1", "h2:1", "h3:1", "h4:1", "h5:1", "h6:1", "h7:1"};

/* The fx_* fleet over eight instances with a random balancer (f->b). */
static int setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  if (!f) return -1;
  fx_open(f, eight, N, 1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx_close(*state);
  free(*state);
  return 0;
}

static size_t pick_index(kitd_balancer *b) {
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  size_t i = p.index;
  assert_true(i < N);
  kitd_balancer_done(b, &p, 0, -1);
  return i;
}

/* 80,000 picks over 8: each count within 5% of 10,000 (about 10 standard
 * deviations, so a correct generator never fails), and chi-square sane. */
static void test_distribution(void **state) {
  struct fx *f = *state;
  kitd_balancer *b = f->b;
  long c[N] = {0};
  for (int k = 0; k < 80000; k++) c[pick_index(b)]++;
  double chi = 0;
  for (int i = 0; i < N; i++) {
    assert_true(c[i] > 9500 && c[i] < 10500);
    chi += (c[i] - 10000.0) * (c[i] - 10000.0) / 10000.0;
  }
  assert_true(chi < 40.0); /* 7 degrees of freedom: p < 1e-5 */
}

static void test_seed_determinism(void **state) {
  struct fx *f = *state;
  kitd_balancer *a, *b, *c;
  assert_int_equal(kitd_balancer_random_new(f->ep, &a), 0);
  assert_int_equal(kitd_balancer_random_new(f->ep, &b), 0);
  assert_int_equal(kitd_balancer_random_new(f->ep, &c), 0);
  kitd_balancer_set_seed(a, 42);
  kitd_balancer_set_seed(b, 42);
  kitd_balancer_set_seed(c, 43);
  int differ = 0;
  for (int k = 0; k < 200; k++) {
    size_t x = pick_index(a);
    assert_int_equal(x, pick_index(b));
    differ += x != pick_index(c);
  }
  assert_true(differ > 100);
  kitd_balancer_free(a);
  kitd_balancer_free(b);
  kitd_balancer_free(c);
}

static kitd_balancer *shared;
static void *picker(void *arg) {
  long *c = arg;
  for (int k = 0; k < 20000; k++) c[pick_index(shared)]++;
  return NULL;
}

/* One unseeded handle from 4 threads: every thread sees an even spread. */
static void test_shared_handle(void **state) {
  struct fx *f = *state;
  shared = f->b;
  long c[4][N];
  memset(c, 0, sizeof c);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, picker, c[i]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < N; j++) assert_true(c[i][j] > 2000 && c[i][j] < 3000);
}

static void test_empty(void **state) {
  struct fx *f = *state;
  kitd_balancer *b = NULL;
  kt_set(f->in, "");
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(f->b, &p), KITD_ENOENDPOINTS);
  assert_null(p.endpoint);
  assert_int_equal(kitd_balancer_random_new(NULL, &b), KITD_EINVAL);
  assert_null(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_distribution, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seed_determinism, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shared_handle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
