/* Retry: success, failover, attempts, callback, deadline, cancel, backoff. */
#include <limits.h>
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
#include "kitd/retry.h"

typedef struct env {
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
} env;

static int setup(void **state) {
  env *e = calloc(1, sizeof *e);
  kt_factory_init(&e->f);
  e->in = kt_static("a:1,b:1");
  if (kitd_endpointer_new(e->in, &(kitd_factory){kt_factory_fn, &e->f, NULL}, NULL, &e->ep)) return -1;
  if (kitd_balancer_round_robin_new(e->ep, 0, &e->b)) return -1;
  kitd_balancer_set_seed(e->b, 0); /* a first */
  *state = e;
  return 0;
}

static int teardown(void **state) {
  env *e = *state;
  kitd_balancer_free(e->b);
  kitd_endpointer_free(e->ep);
  kitd_instancer_free(e->in);
  kt_factory_destroy(&e->f);
  free(e);
  return 0;
}

static kitd_endpoint *retry_with(env *e, kitd_retry_opts *o) {
  kitd_endpoint *r = NULL;
  assert_int_equal(kitd_retry_new(e->b, o, &r), 0);
  return r;
}

/* A ctx with an attempt log, for the tests that read the records. */
static kitd_attempt_error attempt_log[8];
static void init_logged(kitd_ctx *c) {
  kitd_ctx_init(c);
  kitd_ctx_set_attempt_log(c, attempt_log, 8);
}

static long calls(env *e, const char *inst) { return atomic_load(&kt_find(&e->f, inst)->calls); }

static void test_success(void **state) {
  env *e = *state;
  kitd_endpoint *r = retry_with(e, NULL);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), 0);
  assert_string_equal(resp, "a:1");
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), 0);
  assert_string_equal(resp, "b:1");
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 0);
  kitd_endpoint_unref(r);
}

static void test_failover(void **state) {
  env *e = *state;
  strcpy(e->f.fail, "a:");
  kitd_endpoint *r = retry_with(e, NULL);
  kitd_ctx ctx;
  init_logged(&ctx);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), 0);
  assert_string_equal(resp, "b:1");
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 1);
  const kitd_attempt_error *a = kitd_ctx_attempt(&ctx, 0);
  assert_int_equal(a->err, KITD_ECONNECT);
  assert_int_equal(a->status, 503);
  assert_string_equal(a->instance, "a:1");
  assert_string_equal(a->detail, "failed on a:1");
  assert_null(kitd_ctx_attempt(&ctx, 1));
  kitd_endpoint_unref(r);
}

/* Random balancer, two failing endpoints and one good one: a call never
 * goes back to an endpoint that already failed in it. */
static void test_never_repicks_failed(void **state) {
  env *e = *state;
  kt_set(e->in, "bad1:1,bad2:1,ok:1");
  strcpy(e->f.fail, "bad");
  kitd_balancer *rb;
  assert_int_equal(kitd_balancer_random_new(e->ep, &rb), 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.repick_limit = 200;
  kitd_endpoint *r;
  assert_int_equal(kitd_retry_new(rb, &o, &r), 0);
  for (int k = 0; k < 300; k++) {
    long b1 = calls(e, "bad1:1"), b2 = calls(e, "bad2:1");
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp;
    assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), 0);
    assert_string_equal(resp, "ok:1");
    assert_true(calls(e, "bad1:1") - b1 <= 1);
    assert_true(calls(e, "bad2:1") - b2 <= 1);
  }
  kitd_endpoint_unref(r);
  kitd_balancer_free(rb);
}

static void test_max_attempts(void **state) {
  env *e = *state;
  strcpy(e->f.fail, ":1");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 5;
  kitd_endpoint *r = retry_with(e, &o);
  kitd_ctx ctx;
  init_logged(&ctx);
  void *resp;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECONNECT);
  assert_int_equal(calls(e, "a:1") + calls(e, "b:1"), 5);
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 5);
  for (unsigned i = 0; i < 5; i++) assert_int_equal(kitd_ctx_attempt(&ctx, i)->err, KITD_ECONNECT);
  /* Latency: unknown for the first attempt of an untimed call, measured
   * from the first failure on. */
  assert_int_equal(kitd_ctx_attempt(&ctx, 0)->latency_ns, -1);
  assert_true(kitd_ctx_attempt(&ctx, 1)->latency_ns >= 0);
  assert_string_equal(kitd_ctx_detail(&ctx), "failed on a:1");
  kitd_endpoint_unref(r);
}

static unsigned cb_calls;
static int stop_cb(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)arg;
  cb_calls++;
  assert_int_equal(attempt, cb_calls);
  assert_int_equal(kitd_ctx_attempt_count(ctx), attempt);
  assert_int_equal(*err, KITD_ECONNECT);
  *err = KITD_EHTTP;
  return 0;
}
static int replace_cb(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)arg;
  (void)ctx;
  cb_calls++;
  *err = attempt == 3 ? KITD_EIO : *err;
  return 1;
}

static void test_callback(void **state) {
  env *e = *state;
  strcpy(e->f.fail, ":1");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.should_retry = stop_cb;
  kitd_endpoint *r = retry_with(e, &o);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp;
  cb_calls = 0;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_EHTTP);
  assert_int_equal(cb_calls, 1);
  assert_int_equal(calls(e, "a:1") + calls(e, "b:1"), 1);
  kitd_endpoint_unref(r);
  /* Called on every failure, the last one included; a replacement with
   * "go on" does not become the result when max_attempts ends the call:
   * that is the raw last error, as in go-kit. */
  o.should_retry = replace_cb;
  r = retry_with(e, &o);
  cb_calls = 0;
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECONNECT);
  assert_int_equal(cb_calls, 3);
  kitd_endpoint_unref(r);
}

static void test_no_retry_on_canceled(void **state) {
  env *e = *state;
  strcpy(e->f.fail, ":1");
  e->f.fail_err = KITD_ECANCELED;
  kitd_endpoint *r = retry_with(e, NULL);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECANCELED);
  assert_int_equal(calls(e, "a:1") + calls(e, "b:1"), 1);
  kitd_endpoint_unref(r);
}

/* Every endpoint hangs (10 s in kitd_ctx_sleep_ns): the overall deadline
 * ends the call on time. */
static void test_overall_deadline(void **state) {
  env *e = *state;
  strcpy(e->f.hang, ":1");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.timeout_ms = 100;
  kitd_endpoint *r = retry_with(e, &o);
  kitd_ctx ctx;
  init_logged(&ctx);
  void *resp;
  int64_t t0 = kt_ms();
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ETIMEDOUT);
  int64_t took = kt_ms() - t0;
  assert_true(took >= 100);
  assert_true(took < 150 * kt_scale());
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 1);
  assert_int_equal(kitd_ctx_attempt(&ctx, 0)->err, KITD_ETIMEDOUT);
  assert_true(kitd_ctx_attempt(&ctx, 0)->latency_ns >= 100000000);
  kitd_endpoint_unref(r);
  /* The caller's own deadline does the same without timeout_ms. */
  r = retry_with(e, NULL);
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, 80);
  t0 = kt_ms();
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ETIMEDOUT);
  assert_true(kt_ms() - t0 < 130 * kt_scale());
  kitd_endpoint_unref(r);
}

/* Per-attempt timeout: each hanging attempt ends after 30 ms and the next
 * endpoint is tried. */
static void test_attempt_timeout(void **state) {
  env *e = *state;
  strcpy(e->f.hang, "a:");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.attempt_timeout_ms = 30;
  o.timeout_ms = 1000;
  kitd_endpoint *r = retry_with(e, &o);
  kitd_ctx ctx;
  init_logged(&ctx);
  void *resp;
  int64_t t0 = kt_ms();
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), 0);
  assert_string_equal(resp, "b:1");
  int64_t took = kt_ms() - t0;
  assert_true(took >= 30 && took < 80 * kt_scale());
  assert_int_equal(kitd_ctx_attempt(&ctx, 0)->err, KITD_ETIMEDOUT);
  kitd_endpoint_unref(r);
}

static void *canceler(void *arg) {
  kt_sleep_ms(50);
  kitd_ctx_cancel(arg);
  return NULL;
}

static void test_cancel_from_other_thread(void **state) {
  env *e = *state;
  strcpy(e->f.hang, ":1");
  kitd_endpoint *r = retry_with(e, NULL);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  pthread_t t;
  pthread_create(&t, NULL, canceler, &ctx);
  void *resp;
  int64_t t0 = kt_ms();
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECANCELED);
  assert_true(kt_ms() - t0 < 100 * kt_scale());
  pthread_join(t, NULL);
  assert_int_equal(calls(e, "a:1") + calls(e, "b:1"), 1);
  kitd_endpoint_unref(r);
  /* A cancel also wakes a backoff sleep. */
  e->f.hang[0] = '\0';
  strcpy(e->f.fail, ":1");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.backoff_base_ms = 10000;
  o.backoff_max_ms = 10000;
  o.max_attempts = 100;
  r = retry_with(e, &o);
  kitd_ctx_init(&ctx);
  pthread_create(&t, NULL, canceler, &ctx);
  t0 = kt_ms();
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECANCELED);
  assert_true(kt_ms() - t0 < 150 * kt_scale());
  pthread_join(t, NULL);
  kitd_endpoint_unref(r);
}

/* No endpoints, no backoff configured, many attempts allowed: the call
 * waits between attempts instead of spinning (about one pick per 10 ms). */
static void test_no_endpoints_no_spin(void **state) {
  env *e = *state;
  kt_set(e->in, "");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = KITD_RETRY_MAX_ATTEMPTS;
  o.timeout_ms = 100;
  kitd_endpoint *r = retry_with(e, &o);
  kitd_ctx ctx;
  init_logged(&ctx);
  void *resp;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ETIMEDOUT);
  unsigned picks = kitd_ctx_attempt_count(&ctx); /* every attempt was one pick */
  assert_true(picks >= 5 && picks <= 22);
  assert_int_equal(kitd_ctx_attempt(&ctx, 0)->err, KITD_ENOENDPOINTS);
  kitd_endpoint_unref(r);
  /* Few attempts: the call ends with ENOENDPOINTS. */
  o.max_attempts = 2;
  o.timeout_ms = 0;
  r = retry_with(e, &o);
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ENOENDPOINTS);
  kitd_endpoint_unref(r);
}

/* Backoff: exponential from base, capped, full jitter: 4 failures with base
 * 20 ms and cap 40 ms wait at most 20+40+40 ms. */
static void test_backoff_bounds(void **state) {
  env *e = *state;
  strcpy(e->f.fail, ":1");
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 4;
  o.backoff_base_ms = 20;
  o.backoff_max_ms = 40;
  kitd_endpoint *r = retry_with(e, &o);
  int64_t total = 0;
  for (int k = 0; k < 5; k++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp;
    int64_t t0 = kt_ms();
    assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECONNECT);
    int64_t took = kt_ms() - t0;
    assert_true(took <= 100 + 200 * kt_scale()); /* slack for a loaded machine */
    total += took;
  }
  assert_true(total > 20); /* it did wait (expected ~250 ms over 5 calls) */
  kitd_endpoint_unref(r);
}

static void test_invalid_and_alloc(void **state) {
  env *e = *state;
  kitd_endpoint *r = NULL;
  assert_int_equal(kitd_retry_new(NULL, NULL, &r), KITD_EINVAL);
  assert_int_equal(kitd_retry_new(e->b, NULL, NULL), KITD_EINVAL);
  for (long k = 0;; k++) {
    kitd__alloc_fail_after(k);
    int rc = kitd_retry_new(e->b, NULL, &r);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (!fired) {
      assert_int_equal(rc, 0);
      break;
    }
    assert_int_equal(rc, KITD_ENOMEM);
  }
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  assert_int_equal(o.max_attempts, 3);
  assert_int_equal(o.repick_limit, 4);
  assert_int_equal(o.backoff_max_ms, 1000);
  kitd_endpoint_unref(r);
  /* max_attempts out of range is refused: 0, -1 (which once wrapped to
   * UINT_MAX attempts), past the maximum; an opts without _init too, or
   * with a size this library does not know. *out is left alone. */
  int bad[] = {0, -1, KITD_RETRY_MAX_ATTEMPTS + 1, INT_MAX, INT_MIN};
  r = NULL;
  for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
    o.max_attempts = bad[i];
    assert_int_equal(kitd_retry_new(e->b, &o, &r), KITD_EINVAL);
  }
  kitd_retry_opts raw;
  memset(&raw, 0, sizeof raw);
  raw.max_attempts = 3;
  assert_int_equal(kitd_retry_new(e->b, &raw, &r), KITD_EINVAL);
  kitd_retry_opts_init(&raw);
  raw.size += 8;
  assert_int_equal(kitd_retry_new(e->b, &raw, &r), KITD_EINVAL);
  assert_null(r);
  o.max_attempts = KITD_RETRY_MAX_ATTEMPTS;
  kitd_endpoint_unref(retry_with(e, &o));
  o.max_attempts = 1;
  strcpy(e->f.fail, ":1");
  r = retry_with(e, &o);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECONNECT);
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 1);
  kitd_endpoint_unref(r);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_success),           T(test_failover),
      T(test_never_repicks_failed), T(test_max_attempts),
      T(test_callback),          T(test_no_retry_on_canceled),
      T(test_overall_deadline),  T(test_attempt_timeout),
      T(test_cancel_from_other_thread), T(test_no_endpoints_no_spin),
      T(test_backoff_bounds),    T(test_invalid_and_alloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
