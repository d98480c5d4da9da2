/* Retry: success, failover without going back to a failed endpoint, max
 * attempts, recorded attempt errors, the callback, deadlines with a hanging
 * endpoint, cancel from another thread, backoff on an empty set. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../../support/fixture.h"

static int call(kitd_endpoint *r, kitd_ctx *c, const char **out) {
  void *resp = NULL;
  int rc = kitd_endpoint_call(r, c, NULL, &resp);
  if (out) *out = resp;
  return rc;
}

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

/* A fresh ctx with an attempt log (one test runs at a time). */
static kitd_attempt_error attempt_log[8];
static void init_logged(kitd_ctx *c) {
  kitd_ctx_init(c);
  kitd_ctx_set_attempt_log(c, attempt_log, 8);
}

static void test_success(void **st) {
  (void)st;
  const char *v[] = {"ok:1", "ok:2"};
  struct fx f;
  fx_open(&f, v, 2, 0);
  kitd_endpoint *r;
  assert_int_equal(kitd_retry_new(f.b, NULL, &r), 0);
  kitd_ctx c;
  kitd_ctx_init(&c);
  const char *got;
  assert_int_equal(call(r, &c, &got), 0);
  assert_true(strncmp(got, "ok:", 3) == 0);
  assert_int_equal(kitd_ctx_attempt_count(&c), 0);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static void test_failover_never_repicks_failed(void **st) {
  (void)st;
  const char *v[] = {"fail:1", "ok:2", "ok:3"};
  struct fx f;
  fx_open(&f, v, 3, 1); /* random: it would pick fail:1 again by chance */
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 3;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  for (int i = 0; i < 300; i++) {
    kitd_ctx c;
    kitd_ctx_init(&c);
    const char *got;
    assert_int_equal(call(r, &c, &got), 0);
    assert_true(kitd_ctx_attempt_count(&c) <= 1);
  }
  /* fail:1 was tried at most once per call, and calls that hit it failed over. */
  assert_true(fx_calls("fail:1") > 0 && fx_calls("fail:1") <= 300);
  assert_int_equal(fx_calls("ok:2") + fx_calls("ok:3"), 300);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static void test_all_fail_records_attempts(void **st) {
  (void)st;
  const char *v[] = {"fail:1", "fail:2"};
  struct fx f;
  fx_open(&f, v, 2, 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 4;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  kitd_ctx c;
  init_logged(&c);
  assert_int_equal(call(r, &c, NULL), KITD_ECONNECT);
  assert_int_equal(kitd_ctx_attempt_count(&c), 4);
  const kitd_attempt_error *a0 = kitd_ctx_attempt(&c, 0), *a1 = kitd_ctx_attempt(&c, 1);
  assert_int_equal(a0->err, KITD_ECONNECT);
  assert_int_equal(a0->status, 503);
  assert_string_not_equal(a0->instance, a1->instance); /* the other one second */
  assert_non_null(strstr(a1->detail, a1->instance));
  assert_int_equal(fx_calls("fail:1") + fx_calls("fail:2"), 4);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static int stop_after_first(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)ctx;
  int *seen = arg;
  *seen = (int)attempt;
  *err = KITD_EHTTP; /* replaced */
  return 0;
}

static void test_callback_stops_and_replaces(void **st) {
  (void)st;
  const char *v[] = {"fail:1", "fail:2"};
  struct fx f;
  fx_open(&f, v, 2, 0);
  int seen = 0;
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 5;
  o.should_retry = stop_after_first;
  o.arg = &seen;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  kitd_ctx c;
  kitd_ctx_init(&c);
  assert_int_equal(call(r, &c, NULL), KITD_EHTTP);
  assert_int_equal(seen, 1);
  assert_int_equal(kitd_ctx_attempt_count(&c), 1);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static void test_deadline_with_hanging_endpoint(void **st) {
  (void)st;
  const char *v[] = {"hang:1"};
  struct fx f;
  fx_open(&f, v, 1, 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 10;
  o.timeout_ms = 100;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  kitd_ctx c;
  kitd_ctx_init(&c);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(call(r, &c, NULL), KITD_ETIMEDOUT);
  int64_t ms = (kitd_now_ns() - t0) / 1000000;
  assert_true(ms >= 99 && ms < 100 + 100 * kt_scale());
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static void test_attempt_timeout_then_failover(void **st) {
  (void)st;
  const char *v[] = {"hang:1", "ok:2"};
  struct fx f;
  fx_open(&f, v, 2, 0);
  kitd_balancer_set_seed(f.b, 0); /* hang:1 first */
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.attempt_timeout_ms = 50;
  o.timeout_ms = 2000;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  kitd_ctx c;
  init_logged(&c);
  const char *got;
  int64_t t0 = kitd_now_ns();
  assert_int_equal(call(r, &c, &got), 0);
  assert_string_equal(got, "ok:2");
  assert_int_equal(kitd_ctx_attempt_count(&c), 1);
  assert_int_equal(kitd_ctx_attempt(&c, 0)->err, KITD_ETIMEDOUT);
  assert_true(kitd_ctx_attempt(&c, 0)->latency_ns >= 49 * 1000000LL);
  assert_true((kitd_now_ns() - t0) / 1000000 < 50 + 200 * kt_scale());
  kitd_endpoint_unref(r);
  fx_close(&f);
}

struct cancel_arg {
  kitd_ctx *c;
};
static void *cancel_soon(void *arg) {
  kt_sleep_ms(40);
  kitd_ctx_cancel(((struct cancel_arg *)arg)->c);
  return NULL;
}

static void test_cancel_from_other_thread(void **st) {
  (void)st;
  const char *v[] = {"hang:1"};
  struct fx f;
  fx_open(&f, v, 1, 0);
  kitd_endpoint *r;
  kitd_retry_new(f.b, NULL, &r);
  kitd_ctx c;
  kitd_ctx_init(&c);
  struct cancel_arg a = {&c};
  pthread_t t;
  pthread_create(&t, NULL, cancel_soon, &a);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(call(r, &c, NULL), KITD_ECANCELED);
  pthread_join(t, NULL);
  assert_true((kitd_now_ns() - t0) / 1000000 < 40 + 200 * kt_scale());
  assert_int_equal(fx_calls("hang:1"), 1); /* canceled: not retried */
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static void test_no_endpoints_waits(void **st) {
  (void)st;
  struct fx f;
  fx_open(&f, NULL, 0, 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 1000;
  o.timeout_ms = 100;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  kitd_ctx c;
  init_logged(&c);
  int rc = call(r, &c, NULL);
  assert_true(rc == KITD_ETIMEDOUT || rc == KITD_ENOENDPOINTS);
  /* No spinning: with a 10 ms wait, about 10 attempts fit in 100 ms. */
  unsigned n = kitd_ctx_attempt_count(&c);
  assert_true(n >= 2 && n <= 12);
  assert_int_equal(kitd_ctx_attempt(&c, 0)->err, KITD_ENOENDPOINTS);
  kitd_endpoint_unref(r);
  fx_close(&f);
}

static void test_backoff_grows(void **st) {
  (void)st;
  const char *v[] = {"fail:1"};
  struct fx f;
  fx_open(&f, v, 1, 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 4;
  o.backoff_base_ms = 20;
  o.backoff_max_ms = 40;
  kitd_endpoint *r;
  kitd_retry_new(f.b, &o, &r);
  kitd_ctx c;
  kitd_ctx_init(&c);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(call(r, &c, NULL), KITD_ECONNECT);
  int64_t ms = (kitd_now_ns() - t0) / 1000000;
  /* Full jitter: waits in [0,20] + [0,40] + [0,40] ms, so at most 100. */
  assert_true(ms < 100 + 150 * kt_scale());
  assert_int_equal(fx_calls("fail:1"), 4); /* the only one: retried anyway */
  kitd_endpoint_unref(r);
  fx_close(&f);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_success),
      cmocka_unit_test(test_failover_never_repicks_failed),
      cmocka_unit_test(test_all_fail_records_attempts),
      cmocka_unit_test(test_callback_stops_and_replaces),
      cmocka_unit_test(test_deadline_with_hanging_endpoint),
      cmocka_unit_test(test_attempt_timeout_then_failover),
      cmocka_unit_test(test_cancel_from_other_thread),
      cmocka_unit_test(test_no_endpoints_waits),
      cmocka_unit_test(test_backoff_grows),
      cmocka_unit_test(test_late_success_is_a_timeout),
      cmocka_unit_test(test_replaced_error_then_attempts_run_out),
      cmocka_unit_test(test_ctx_names_instance),
      cmocka_unit_test(test_instance_every_length),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
