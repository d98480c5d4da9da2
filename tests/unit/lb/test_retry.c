/* SPDX-License-Identifier: MIT */
/* Retry: success, failover without going back to a failed endpoint, max
 * attempts and the recorded attempt errors, the callback, deadlines with
 * hanging endpoints, cancel from another thread, backoff and waits on an
 * empty set, late answers, the served instance in the ctx, options. */
#include <limits.h>
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
#include "kitd/retry.h"

/* A fresh ctx with an attempt log (one test runs at a time). */
static kitd_attempt_error attempt_log[8];
static void init_logged(kitd_ctx *c) {
  kitd_ctx_init(c);
  kitd_ctx_set_attempt_log(c, attempt_log, 8);
}

/* Most tests run on the kt_* counting factory over "a:1,b:1" under a round
 * robin that starts at a:1; instances fail or hang as e->f.fail/.hang say. */
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
  if (kitd_endpointer_new(e->in, &(kitd_factory){kt_factory_fn, &e->f, NULL}, NULL, &e->ep))
    return -1;
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
  o.budget_percent = -1; /* most calls retry: over budget (test_budget.c) */
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
  /* The failing endpoints were picked (and failed over from). */
  assert_true(calls(e, "bad1:1") > 0 && calls(e, "bad2:1") > 0);
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
  for (unsigned i = 0; i < 5; i++) {
    const kitd_attempt_error *a = kitd_ctx_attempt(&ctx, i);
    assert_int_equal(a->err, KITD_ECONNECT);
    assert_int_equal(a->status, 503);
    assert_string_equal(a->instance, i % 2 ? "b:1" : "a:1"); /* the other one next */
    assert_non_null(strstr(a->detail, a->instance));
  }
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
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 1);
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
  assert_int_equal(kitd_ctx_attempt_count(&ctx), 1);
  assert_int_equal(kitd_ctx_attempt(&ctx, 0)->err, KITD_ETIMEDOUT);
  assert_string_equal(kitd_ctx_attempt(&ctx, 0)->instance, "a:1");
  assert_true(kitd_ctx_attempt(&ctx, 0)->latency_ns >= 29 * 1000000LL);
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
  assert_true(picks >= 5 && picks <= 12);
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
  /* The only endpoint left is retried anyway. */
  kt_set(e->in, "a:1");
  long before = calls(e, "a:1");
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ECONNECT);
  assert_int_equal(calls(e, "a:1") - before, 4);
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

/* The tests of late answers, raw errors and the served instance run on the
 * fx_* fleet, whose instances behave as their names say. */

/* The fleet `v` under a round robin that starts at the first address, and
 * a retry endpoint over it with `o` (NULL: defaults). */
static kitd_endpoint *ordered_retry(struct fx *f, const char *const *v, size_t n,
                                    const kitd_retry_opts *o) {
  fx_open(f, v, n, 0);
  kitd_balancer_set_seed(f->b, 0);
  kitd_endpoint *r = NULL;
  assert_int_equal(kitd_retry_new(f->b, o, &r), 0);
  return r;
}

static int late_frees;
static void free_late(void *resp) {
  late_frees++;
  free(resp);
}

/* An endpoint that ignores its ctx answers 11 ms into a 1 ms call: the call
 * fails with KITD_ETIMEDOUT (it used to return the late success), and the
 * late answer goes to free_response, not to the caller. */
static void test_late_success_is_a_timeout(void **st) {
  (void)st;
  const char *v[] = {"late:1"};
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.timeout_ms = 1;
  o.free_response = free_late;
  struct fx f;
  kitd_endpoint *r = ordered_retry(&f, v, 1, &o);
  kitd_ctx c;
  init_logged(&c);
  late_frees = 0;
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), KITD_ETIMEDOUT);
  assert_null(resp);
  assert_int_equal(late_frees, 1);
  assert_int_equal(kitd_ctx_attempt_count(&c), 1);
  assert_int_equal(kitd_ctx_attempt(&c, 0)->err, KITD_ETIMEDOUT);
  assert_string_equal(kitd_ctx_attempt(&c, 0)->instance, "late:1");
  assert_true(kitd_ctx_attempt(&c, 0)->latency_ns >= 11 * 1000000LL);
  kitd_endpoint_unref(r);
  /* The caller's own 1 ms deadline does the same; with no free_response
   * the late answer is left in *response for the caller to free. */
  assert_int_equal(kitd_retry_new(f.b, NULL, &r), 0);
  kitd_ctx_init(&c);
  kitd_ctx_set_timeout_ms(&c, 1);
  late_frees = 0;
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), KITD_ETIMEDOUT);
  assert_int_equal(late_frees, 0);
  assert_non_null(resp);
  assert_string_equal(resp, "late:1");
  free(resp);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static int replace_go_on(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)attempt;
  (*(int *)arg)++;
  assert_int_equal(*err, kitd_ctx_last_attempt_err(ctx));
  *err = KITD_EHTTP;
  return 1;
}

/* A callback that replaces every error but asks to go on, until
 * max_attempts ends the call: the call returns the raw last error, as
 * go-kit does (not the replacement it used to), and the log keeps each
 * attempt's raw error in order. */
static void test_replaced_error_then_attempts_run_out(void **st) {
  (void)st;
  const char *v[] = {"eio:1", "fail:2", "proto:3"};
  int seen = 0;
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 3;
  o.should_retry = replace_go_on;
  o.arg = &seen;
  struct fx f;
  kitd_endpoint *r = ordered_retry(&f, v, 3, &o);
  kitd_ctx c;
  init_logged(&c);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), KITD_EPROTO);
  assert_int_equal(seen, 3);
  assert_int_equal(kitd_ctx_attempt_count(&c), 3);
  const int want[] = {KITD_EIO, KITD_ECONNECT, KITD_EPROTO};
  for (unsigned i = 0; i < 3; i++) {
    assert_int_equal(kitd_ctx_attempt(&c, i)->err, want[i]);
    assert_string_equal(kitd_ctx_attempt(&c, i)->instance, v[i]);
  }
  assert_int_equal(kitd_ctx_last_attempt_err(&c), KITD_EPROTO);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

/* The ctx names the instance that served the call; each failed attempt's
 * record names its own; with nothing to call, the name is "". */
static void test_ctx_names_instance(void **st) {
  (void)st;
  const char *v[] = {"fail:1", "ok:2"};
  struct fx f;
  kitd_endpoint *r = ordered_retry(&f, v, 2, NULL);
  kitd_ctx c;
  init_logged(&c);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), 0);
  assert_string_equal(resp, "ok:2");
  assert_string_equal(kitd_ctx_instance(&c), "ok:2");
  assert_int_equal(kitd_ctx_attempt_count(&c), 1);
  assert_string_equal(kitd_ctx_attempt(&c, 0)->instance, "fail:1");
  assert_string_equal(kitd_ctx_attempt(&c, 0)->detail, "refused by fail:1");
  assert_int_equal(kitd_ctx_attempt(&c, 0)->status, 503);
  /* Without a log, the failed attempt is still counted and its code kept. */
  kitd_ctx_init(&c);
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), 0);
  assert_string_equal(kitd_ctx_instance(&c), "ok:2");
  assert_int_equal(kitd_ctx_attempt_count(&c), 1);
  assert_int_equal(kitd_ctx_last_attempt_err(&c), KITD_ECONNECT);
  assert_null(kitd_ctx_attempt(&c, 0));
  /* A NULL response pointer is refused before any attempt. */
  kitd_ctx_init(&c);
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, NULL), KITD_EINVAL);
  assert_int_equal(kitd_ctx_attempt_count(&c), 0);
  assert_string_equal(kitd_ctx_instance(&c), "");
  kitd_endpoint_unref(r);
  /* An empty set: nothing served the call. */
  assert_int_equal(kitd_static_instancer_set(f.in, NULL, 0), 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 1;
  assert_int_equal(kitd_retry_new(f.b, &o, &r), 0);
  kitd_ctx_init(&c);
  kitd_ctx_set_instance(&c, "stale:1");
  assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), KITD_ENOENDPOINTS);
  assert_string_equal(kitd_ctx_instance(&c), "");
  kitd_endpoint_unref(r);
  fx_close(&f);
}

/* The served address is copied whole whatever its length (the copy takes
 * a different path below 8, up to 16, up to 32 bytes and beyond). */
static void test_instance_every_length(void **st) {
  (void)st;
  const size_t lens[] = {4, 7, 8, 12, 16, 17, 24, 32, 33, 100, KITD_ADDRESS_MAX};
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    char addr[KITD_ADDRESS_MAX + 1];
    memset(addr, 'x', lens[k]);
    memcpy(addr, "ok", 2);
    memcpy(addr + lens[k] - 2, ":1", 2);
    addr[lens[k]] = '\0';
    const char *v[] = {addr};
    struct fx f;
    kitd_endpoint *r = ordered_retry(&f, v, 1, NULL);
    kitd_ctx c;
    kitd_ctx_init(&c);
    void *resp = NULL;
    assert_int_equal(kitd_endpoint_call(r, &c, NULL, &resp), 0);
    assert_string_equal(kitd_ctx_instance(&c), addr);
    kitd_endpoint_unref(r);
    fx_close(&f);
  }
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_success),
      T(test_failover),
      T(test_never_repicks_failed),
      T(test_max_attempts),
      T(test_callback),
      T(test_no_retry_on_canceled),
      T(test_overall_deadline),
      T(test_attempt_timeout),
      T(test_cancel_from_other_thread),
      T(test_no_endpoints_no_spin),
      T(test_backoff_bounds),
      T(test_invalid_and_alloc),
      cmocka_unit_test(test_late_success_is_a_timeout),
      cmocka_unit_test(test_replaced_error_then_attempts_run_out),
      cmocka_unit_test(test_ctx_names_instance),
      cmocka_unit_test(test_instance_every_length),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
