/* SPDX-License-Identifier: MIT */
/* Hedged requests: options, a hedge that beats a hanging first attempt, a
 * late first answer freed, no hedge without budget or without another
 * endpoint, every answer freed once, and the threads stopped at free. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/balancer.h"
#include "kitd/error.h"
#include "kitd/retry.h"

/* Instances behave as the flags say: "x:1" hangs until its ctx is done
 * when hang_x is set, or answers after 50 ms ignoring its ctx when late_x
 * is; otherwise (and "y:1" always) it answers at once. Every answer is a
 * malloc'd copy of the instance's name, counted. */
static atomic_int hang_x, late_x;
static atomic_long answers, freed;
static atomic_long calls_x, calls_y;

struct ep {
  char name[32];
};

static int call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)req;
  struct ep *e = st;
  int x = e->name[0] == 'x';
  atomic_fetch_add(x ? &calls_x : &calls_y, 1);
  if (x && atomic_load(&hang_x)) {
    int rc = kitd_ctx_sleep_ns(ctx, 10LL * 1000000000);
    return rc ? rc : KITD_EINTERNAL;
  }
  if (x && atomic_load(&late_x)) {
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  *resp = strdup(e->name);
  atomic_fetch_add(&answers, 1);
  return 0;
}

static int factory(void *arg, const kitd_instance *in, kitd_endpoint **out) {
  (void)arg;
  struct ep *e = calloc(1, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", kitd_instance_address(in));
  return kitd_endpoint_new(call, free, e, out);
}

static void free_answer(void *p) {
  atomic_fetch_add(&freed, 1);
  free(p);
}

typedef struct env {
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
} env;

static int setup_csv(void **state, const char *csv) {
  env *e = calloc(1, sizeof *e);
  atomic_store(&hang_x, 0);
  atomic_store(&late_x, 0);
  atomic_store(&answers, 0);
  atomic_store(&freed, 0);
  atomic_store(&calls_x, 0);
  atomic_store(&calls_y, 0);
  e->in = kt_static(csv);
  if (kitd_endpointer_new(e->in, &(kitd_factory){factory, NULL, NULL}, NULL, &e->ep)) return -1;
  if (kitd_balancer_round_robin_new(e->ep, 0, &e->b)) return -1;
  *state = e;
  return 0;
}

static int setup(void **state) { return setup_csv(state, "x:1,y:1"); }
static int setup_one(void **state) { return setup_csv(state, "x:1"); }

static int teardown(void **state) {
  env *e = *state;
  kitd_balancer_free(e->b);
  kitd_endpointer_free(e->ep);
  kitd_instancer_free(e->in);
  free(e);
  /* Every answer made was freed once: by the test or by free_response. */
  assert_int_equal(atomic_load(&answers), atomic_load(&freed));
  return 0;
}

static kitd_endpoint *hedged(env *e, int budget_percent, int budget_min) {
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.hedge_quantile = 0.9;
  o.free_response = free_answer;
  o.max_attempts = 1;
  o.attempt_timeout_ms = 300;
  o.budget_percent = budget_percent;
  o.budget_min_per_sec = budget_min;
  kitd_endpoint *r = NULL;
  assert_int_equal(kitd_retry_new(e->b, &o, &r), 0);
  return r;
}

/* A call; its answer freed. Returns the code, the instance in inst. */
static int do_call(kitd_endpoint *r, char inst[KITD_INSTANCE_MAX], int64_t *ms) {
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp = NULL;
  int64_t t0 = kt_ms();
  int rc = kitd_endpoint_call(r, &ctx, NULL, &resp);
  if (ms) *ms = kt_ms() - t0;
  if (inst) snprintf(inst, KITD_INSTANCE_MAX, "%s", kitd_ctx_instance(&ctx));
  if (rc == 0) {
    assert_non_null(resp);
    assert_string_equal(resp, kitd_ctx_instance(&ctx)); /* the winner's answer */
    free_answer(resp);
  }
  return rc;
}

/* The first 256 calls teach the delay; none is hedged. */
static void warm(kitd_endpoint *r) {
  for (int i = 0; i < 256; i++) assert_int_equal(do_call(r, NULL, NULL), 0);
  assert_int_equal(atomic_load(&calls_x) + atomic_load(&calls_y), 256);
}

static void test_options(void **state) {
  env *e = *state;
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  assert_true(o.hedge_quantile == 0);
  kitd_endpoint *r = NULL;
  o.hedge_quantile = 0.95; /* without free_response */
  assert_int_equal(kitd_retry_new(e->b, &o, &r), KITD_EINVAL);
  o.free_response = free_answer;
  o.hedge_quantile = 0.4;
  assert_int_equal(kitd_retry_new(e->b, &o, &r), KITD_EINVAL);
  o.hedge_quantile = 1.0;
  assert_int_equal(kitd_retry_new(e->b, &o, &r), KITD_EINVAL);
  o.hedge_quantile = -0.9;
  assert_int_equal(kitd_retry_new(e->b, &o, &r), KITD_EINVAL);
  assert_null(r);
  o.hedge_quantile = 0.999;
  assert_int_equal(kitd_retry_new(e->b, &o, &r), 0);
  kitd_endpoint_unref(r); /* never hedged: no thread to stop */
}

/* x hangs: every call that lands on it is answered by y's hedge, long
 * before the attempt timeout, with y's answer. */
static void test_hedge_beats_hang(void **state) {
  env *e = *state;
  kitd_endpoint *r = hedged(e, -1, 0);
  warm(r);
  atomic_store(&hang_x, 1);
  long x0 = atomic_load(&calls_x);
  for (int i = 0; i < 20; i++) {
    char inst[KITD_INSTANCE_MAX];
    int64_t ms;
    assert_int_equal(do_call(r, inst, &ms), 0);
    assert_string_equal(inst, "y:1");
    assert_true(ms < 250 * kt_scale()); /* attempt timeout: 300 ms */
  }
  assert_true(atomic_load(&calls_x) - x0 >= 5); /* round robin sent some to x */
  kitd_endpoint_unref(r);                       /* joins the hedge threads */
}

/* x answers late (50 ms, ignoring its ctx): y's hedge wins, and x's late
 * answer goes to free_response (teardown counts). */
static void test_late_answer_freed(void **state) {
  env *e = *state;
  kitd_endpoint *r = hedged(e, -1, 0);
  warm(r);
  atomic_store(&late_x, 1);
  for (int i = 0; i < 10; i++) {
    char inst[KITD_INSTANCE_MAX];
    assert_int_equal(do_call(r, inst, NULL), 0);
    assert_string_equal(inst, "y:1");
  }
  kitd_endpoint_unref(r);
}

/* A budget of nothing: no hedge, so a call on the hanging x times out. */
static void test_no_budget_no_hedge(void **state) {
  env *e = *state;
  kitd_endpoint *r = hedged(e, 0, 0);
  warm(r);
  atomic_store(&hang_x, 1);
  long y0 = atomic_load(&calls_y);
  int timeouts = 0;
  for (int i = 0; i < 4; i++) {
    int64_t ms;
    int rc = do_call(r, NULL, &ms);
    if (rc) {
      assert_int_equal(rc, KITD_ETIMEDOUT);
      assert_true(ms >= 290);
      timeouts++;
    }
  }
  assert_int_equal(timeouts, 2);                   /* the two calls on x */
  assert_int_equal(atomic_load(&calls_y) - y0, 2); /* and no hedge to y */
  kitd_endpoint_unref(r);
}

/* One instance, hanging: nowhere to hedge; the call times out, nothing
 * else happens. */
static void test_single_instance(void **state) {
  env *e = *state;
  kitd_endpoint *r = hedged(e, -1, 0);
  warm(r);
  atomic_store(&hang_x, 1);
  int64_t ms;
  assert_int_equal(do_call(r, NULL, &ms), KITD_ETIMEDOUT);
  assert_int_equal(atomic_load(&calls_x), 257);
  kitd_endpoint_unref(r);
}

/* Two threads calling through hedges at once, then free. */
static void *hammer(void *arg) {
  kitd_endpoint *r = arg;
  for (int i = 0; i < 40; i++)
    if (do_call(r, NULL, NULL) != 0) return arg;
  return NULL;
}

static void test_threads(void **state) {
  env *e = *state;
  kitd_endpoint *r = hedged(e, -1, 0);
  warm(r);
  atomic_store(&late_x, 1);
  pthread_t t[2];
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, hammer, r);
  for (int i = 0; i < 2; i++) {
    void *bad;
    pthread_join(t[i], &bad);
    assert_null(bad);
  }
  kitd_endpoint_unref(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hedge_beats_hang, setup, teardown),
      cmocka_unit_test_setup_teardown(test_late_answer_freed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_budget_no_hedge, setup, teardown),
      cmocka_unit_test_setup_teardown(test_single_instance, setup_one, teardown),
      cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
