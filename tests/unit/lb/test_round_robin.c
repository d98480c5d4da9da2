/* SPDX-License-Identifier: MIT */
/* Round robin: order, seed, random start, per-thread mode, set changes,
 * empty set, many picks held, strict rotation across threads. */
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

typedef struct env {
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep;
} env;

static int setup(void **state) {
  env *e = calloc(1, sizeof *e);
  kt_factory_init(&e->f);
  e->in = kt_static("h0:1,h1:1,h2:1,h3:1,h4:1");
  if (kitd_endpointer_new(e->in, &(kitd_factory){kt_factory_fn, &e->f, NULL}, NULL, &e->ep))
    return -1;
  *state = e;
  return 0;
}

static int teardown(void **state) {
  env *e = *state;
  kitd_endpointer_free(e->ep);
  kitd_instancer_free(e->in);
  kt_factory_destroy(&e->f);
  free(e);
  return 0;
}

static size_t pick_index(kitd_balancer *b) {
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  size_t i = p.index;
  assert_int_equal(p.count, 5);
  assert_int_equal(kitd_instance_address(p.instance)[1] - '0', (int)i);
  kitd_balancer_done(b, &p, 0, -1);
  return i;
}

static void check_rotation(kitd_balancer *b) {
  size_t first = pick_index(b);
  for (size_t k = 1; k < 12; k++) assert_int_equal(pick_index(b), (first + k) % 5);
}

static void test_order_seeded(void **state) {
  env *e = *state;
  for (unsigned flags = 0; flags <= KITD_RR_BLOCKS; flags++) {
    kitd_balancer *b;
    assert_int_equal(kitd_balancer_round_robin_new(e->ep, flags, &b), 0);
    kitd_balancer_set_seed(b, 7); /* 7 % 5 == 2 */
    assert_int_equal(pick_index(b), 2);
    assert_int_equal(pick_index(b), 3);
    assert_int_equal(pick_index(b), 4);
    assert_int_equal(pick_index(b), 0);
    check_rotation(b);
    kitd_balancer_free(b);
  }
}

static void test_large_seed_mod_n(void **state) {
  env *e = *state;
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0, &b), 0);
  uint64_t seed = 0x123456789abcdefull;
  kitd_balancer_set_seed(b, seed);
  assert_int_equal(pick_index(b), seed % 5);
  kitd_balancer_free(b);
}

/* Unseeded balancers start at a random position: over 40 new balancers
 * the first pick is not always the same instance (go-kit's always is). */
static void test_random_start(void **state) {
  env *e = *state;
  for (unsigned flags = 0; flags <= KITD_RR_BLOCKS; flags++) {
    int seen[5] = {0}, distinct = 0;
    for (int k = 0; k < 40; k++) {
      kitd_balancer *b;
      assert_int_equal(kitd_balancer_round_robin_new(e->ep, flags, &b), 0);
      seen[pick_index(b)]++;
      check_rotation(b);
      kitd_balancer_free(b);
    }
    for (int i = 0; i < 5; i++) distinct += seen[i] > 0;
    assert_true(distinct >= 3);
  }
}

static void test_set_changes(void **state) {
  env *e = *state;
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, KITD_RR_PER_THREAD, &b), 0);
  kitd_balancer_set_seed(b, 4);
  assert_int_equal(pick_index(b), 4);
  kt_set(e->in, "h0:1,h1:1");
  kitd_pick p;
  for (int k = 0; k < 10; k++) {
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    assert_true(p.index < 2);
    assert_int_equal(p.count, 2);
    kitd_balancer_done(b, &p, 0, -1);
  }
  kt_set(e->in, "h0:1,h1:1,h2:1,h3:1,h4:1");
  kitd_balancer_free(b);
}

/* An empty pick holds nothing: had it kept a slot on the empty snapshot,
 * that snapshot could never be freed, and (freed oldest first) neither
 * could any later one, so a removed endpoint would never close. */
static void test_empty_no_slot_held(void **state) {
  env *e = *state;
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0, &b), 0);
  kt_set(e->in, "");
  kitd_pick p;
  for (int k = 0; k < 3 * KITD_PICK_FAST; k++) {
    memset(&p, 0xff, sizeof p);
    assert_int_equal(kitd_balancer_pick(b, &p), KITD_ENOENDPOINTS);
    assert_null(p.endpoint);
    assert_null(p.instance);
    kitd_balancer_done(b, &p, 0, -1); /* harmless on a cleared pick */
  }
  kt_set(e->in, "h0:1");
  kt_ep *h0 = kt_find(&e->f, "h0:1");
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  kitd_balancer_done(b, &p, 0, -1);
  kt_set(e->in, "h1:1");
  assert_int_equal(atomic_load(&h0->closed), 1);
  kt_set(e->in, "h0:1,h1:1,h2:1,h3:1,h4:1");
  kitd_balancer_free(b);
}

static void test_invalid(void **state) {
  env *e = *state;
  kitd_balancer *b = NULL;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0x10, &b), KITD_EINVAL);
  assert_int_equal(kitd_balancer_round_robin_new(NULL, 0, &b), KITD_EINVAL);
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0, NULL), KITD_EINVAL);
  assert_null(b);
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(NULL, &p), KITD_EINVAL);
  kitd__alloc_fail_after(0);
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0, &b), KITD_ENOMEM);
  kitd__alloc_fail_after(-1);
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0, &b), 0);
  assert_int_equal(kitd_balancer_pick(b, NULL), KITD_EINVAL);
  assert_ptr_equal(kitd_balancer_endpointer(b), e->ep);
  assert_null(kitd_balancer_endpointer(NULL));
  kitd_balancer_free(b);
  kitd_balancer_free(NULL);
}

/* More picks held at once than the fast slots: still protected. */
static void test_many_picks_held(void **state) {
  env *e = *state;
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 0, &b), 0);
  kitd_pick p[3 * KITD_PICK_FAST];
  for (int i = 0; i < 3 * KITD_PICK_FAST; i++) assert_int_equal(kitd_balancer_pick(b, &p[i]), 0);
  kt_set(e->in, "h0:1");
  /* hand them back out of order */
  for (int i = 0; i < 3 * KITD_PICK_FAST; i += 2) kitd_balancer_done(b, &p[i], 0, -1);
  for (int i = 1; i < 3 * KITD_PICK_FAST; i += 2) kitd_balancer_done(b, &p[i], 0, -1);
  kitd_pick q;
  assert_int_equal(kitd_balancer_pick(b, &q), 0);
  assert_string_equal(kitd_instance_address(q.instance), "h0:1");
  kitd_balancer_done(b, &q, 0, -1);
  /* The endpoints dropped by the set change are closed once their picks
   * have come back. */
  for (int i = 1; i < 5; i++) {
    char inst[8];
    snprintf(inst, sizeof inst, "h%d:1", i);
    assert_int_equal(atomic_load(&kt_find(&e->f, inst)->closed), 1);
  }
  kt_set(e->in, "h0:1,h1:1,h2:1,h3:1,h4:1");
  kitd_balancer_free(b);
}

/* Per-thread mode: each thread has its own exact rotation. */
static void *per_thread_picks(void *arg) {
  kitd_balancer *b = arg;
  int counts[5] = {0};
  for (int i = 0; i < 5000; i++) {
    kitd_pick p;
    kitd_balancer_pick(b, &p);
    counts[p.index]++;
    kitd_balancer_done(b, &p, 0, -1);
  }
  for (int i = 0; i < 5; i++) assert_int_equal(counts[i], 1000);
  return NULL;
}

static void test_per_thread_mode(void **state) {
  env *e = *state;
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, 99, &b), KITD_EINVAL);
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, KITD_RR_PER_THREAD, &b), 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, per_thread_picks, b);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  kitd_balancer_free(b);
}

/* Global mode from 4 threads: strict rotation means every endpoint gets
 * exactly the same number of picks overall, and the next pick continues
 * the rotation. */
static kitd_balancer *shared;
static atomic_long global_counts[5];
static void *global_picks(void *arg) {
  (void)arg;
  for (int k = 0; k < 5000; k++) {
    kitd_pick p;
    if (kitd_balancer_pick(shared, &p) == 0) {
      atomic_fetch_add(&global_counts[p.index], 1);
      kitd_balancer_done(shared, &p, 0, -1);
    }
  }
  return NULL;
}

static void test_global_rotation_threads(void **state) {
  env *e = *state;
  assert_int_equal(kitd_balancer_round_robin_new(e->ep, KITD_RR_GLOBAL, &shared), 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, global_picks, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 5; i++) assert_int_equal(atomic_load(&global_counts[i]), 4000);
  check_rotation(shared);
  kitd_balancer_free(shared);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_order_seeded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_seed_mod_n, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_set_changes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_no_slot_held, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_picks_held, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_per_thread_mode, setup, teardown),
      cmocka_unit_test_setup_teardown(test_global_rotation_threads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
