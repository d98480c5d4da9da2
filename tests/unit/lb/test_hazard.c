/* SPDX-License-Identifier: MIT */
/* Hazard slots under concurrency: pickers on 4 threads while another thread
 * keeps changing the set; records reused after thread exit. Pick/done live
 * in lib/lb, the slots in lib/sd/hazard.c. */
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

static kitd_balancer *bal;
static atomic_int stop_flag;
static atomic_long picks, empties;

static void *picker(void *arg) {
  (void)arg;
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
    kitd_pick p[3];
    int held = 0;
    /* Hold several picks at once now and then, like nested calls do. */
    int want = 1 + (int)(atomic_load(&picks) % 3);
    for (int k = 0; k < want; k++) {
      if (kitd_balancer_pick(bal, &p[held]) != 0) {
        atomic_fetch_add(&empties, 1);
        continue;
      }
      kt_ep *e = kitd_endpoint_state(p[held].endpoint);
      if (atomic_load(&e->magic) != KT_ALIVE || atomic_load(&e->closed) != 0) {
        fprintf(stderr, "picked a closed endpoint %s\n", e->inst);
        abort();
      }
      assert_string_equal(e->inst, kitd_instance_address(p[held].instance));
      held++;
    }
    for (int k = 0; k < held; k++) {
      void *resp;
      /* kt_call aborts if the endpoint was closed meanwhile. */
      assert_int_equal(kitd_endpoint_call(p[k].endpoint, &ctx, NULL, &resp), 0);
      kt_ep *e = kitd_endpoint_state(p[k].endpoint);
      assert_int_equal(atomic_load(&e->closed), 0);
      kitd_balancer_done(bal, &p[k], 0, -1);
      atomic_fetch_add(&picks, 1);
    }
  }
  return NULL;
}

static void stress(unsigned flags, int use_random) {
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("a:1,b:1,c:1");
  kitd_endpointer *ep;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, &f, NULL}, NULL, &ep), 0);
  if (use_random) assert_int_equal(kitd_balancer_random_new(ep, &bal), 0);
  else assert_int_equal(kitd_balancer_round_robin_new(ep, flags, &bal), 0);
  atomic_store(&stop_flag, 0);
  atomic_store(&picks, 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, picker, NULL);
  /* The changer: a new set every iteration, sometimes empty, for 200 ms
   * (scaled) or 20,000 updates, and at least 200 updates (within 5 s,
   * scaled: on a loaded machine the changer may get little CPU). */
  int64_t t0 = kt_ms(), end = t0 + 200 * kt_scale(), hard = t0 + 5000 * kt_scale();
  unsigned long x = 88172645463325252ul;
  long updates = 0;
  char set[256];
  while (((kt_ms() < end || updates < 200) && kt_ms() < hard) && updates < 20000) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    set[0] = '\0';
    for (int i = 0; i < 10; i++)
      if (x >> i & 1)
        snprintf(set + strlen(set), sizeof set - strlen(set), "%sh%d:%lu", set[0] ? "," : "", i,
                 (x >> 20) % 3);
    kt_set(in, set);
    updates++;
  }
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  assert_true(atomic_load(&picks) > 0);
  assert_true(updates > 10);
  kitd_balancer_free(bal);
  kitd_endpointer_free(ep);
  assert_int_equal(kt_live(&f), 0);
  kitd_instancer_free(in);
  kt_factory_destroy(&f); /* aborts on any double close */
}

static void test_stress_rr_global(void **s) {
  (void)s;
  stress(KITD_RR_GLOBAL, 0);
}
static void test_stress_rr_per_thread(void **s) {
  (void)s;
  stress(KITD_RR_PER_THREAD, 0);
}
static void test_stress_random(void **s) {
  (void)s;
  stress(0, 1);
}

static void *one_pick(void *arg) {
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(arg, &p), 0);
  kitd_balancer_done(arg, &p, 0, -1);
  return NULL;
}

/* A thread's record goes back to the pool when it exits: 50 short-lived
 * threads one after another allocate at most one record. */
static void test_records_reused(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("a:1");
  kitd_endpointer *ep;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, &f, NULL}, NULL, &ep), 0);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  pthread_t t;
  pthread_create(&t, NULL, one_pick, b);
  pthread_join(t, NULL);
  unsigned long before = kitd__alloc_count();
  for (int i = 0; i < 50; i++) {
    pthread_create(&t, NULL, one_pick, b);
    pthread_join(t, NULL);
  }
  assert_true(kitd__alloc_count() - before <= 1);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kt_factory_destroy(&f);
}

/* The first pick of a thread cannot get a record (allocation fails): the
 * pick still works, through the refcount path. */
static void *pick_no_record(void *arg) {
  kitd_pick p;
  kitd__alloc_fail_after(0);
  int rc = kitd_balancer_pick(arg, &p);
  kitd__alloc_fail_after(-1);
  assert_int_equal(rc, 0);
  kitd_balancer_done(arg, &p, 0, -1);
  return NULL;
}

static void test_pick_without_record(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("a:1");
  kitd_endpointer *ep;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, &f, NULL}, NULL, &ep), 0);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  /* Occupy every free record first, so the new thread must allocate one. */
  pthread_t t;
  pthread_create(&t, NULL, pick_no_record, b);
  pthread_join(t, NULL);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kt_factory_destroy(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pick_without_record),  cmocka_unit_test(test_stress_rr_global),
      cmocka_unit_test(test_stress_rr_per_thread), cmocka_unit_test(test_stress_random),
      cmocka_unit_test(test_records_reused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
