/* SPDX-License-Identifier: MIT */
/* kitd_ctx: deadlines, children, cancel, sleep, detail, attempts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "kitd/kitd.h"
#include "../../support/fixture.h"

static void test_no_deadline(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  assert_int_equal(kitd_ctx_deadline_ns(&c), 0);
  assert_int_equal(kitd_ctx_remaining_ms(&c), -1);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_string_equal(kitd_ctx_detail(&c), "");
}

static void test_deadline_passes(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_ctx_set_timeout_ms(&c, 20);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_true(kitd_ctx_remaining_ms(&c) <= 20);
  kt_sleep_ms(30);
  assert_int_equal(kitd_ctx_err(&c), KITD_ETIMEDOUT);
  assert_int_equal(kitd_ctx_remaining_ms(&c), 0);
}

static void test_child_takes_earlier_deadline(void **st) {
  (void)st;
  kitd_ctx parent, child;
  kitd_ctx_init(&parent);
  kitd_ctx_set_timeout_ms(&parent, 1000);
  kitd_ctx_init_child(&child, &parent, 10);
  assert_true(kitd_ctx_deadline_ns(&child) < kitd_ctx_deadline_ns(&parent));
  kitd_ctx_init_child(&child, &parent, 5000);
  assert_int_equal(kitd_ctx_deadline_ns(&child), kitd_ctx_deadline_ns(&parent));
  kitd_ctx_cancel(&parent);
  assert_int_equal(kitd_ctx_err(&child), KITD_ECANCELED);
}

static void *cancel_later(void *arg) {
  kt_sleep_ms(30);
  kitd_ctx_cancel(arg);
  return NULL;
}

static void test_sleep_wakes_on_cancel(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  pthread_t t;
  pthread_create(&t, NULL, cancel_later, &c);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(kitd_ctx_sleep_ns(&c, 10LL * 1000000000), KITD_ECANCELED);
  int64_t took = (kitd_now_ns() - t0) / 1000000;
  pthread_join(t, NULL);
  assert_true(took < 500 * kt_scale());
}

static void test_sleep_wakes_at_deadline(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_ctx_set_timeout_ms(&c, 30);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(kitd_ctx_sleep_ns(&c, 10LL * 1000000000), KITD_ETIMEDOUT);
  int64_t took = (kitd_now_ns() - t0) / 1000000;
  assert_true(took >= 29 && took < 500 * kt_scale());
  assert_int_equal(kitd_ctx_sleep_ns(NULL, 1000000), 0);
}

static void test_detail_truncated(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  kitd_ctx_set_detail(&c, "%s", big);
  assert_int_equal(strlen(kitd_ctx_detail(&c)), KITD_CTX_DETAIL_MAX - 1);
  kitd_ctx_set_detail(&c, "status %d", 503);
  assert_string_equal(kitd_ctx_detail(&c), "status 503");
  kitd_ctx_set_detail(NULL, "ignored");
}

static void test_attempts(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  for (int i = 0; i < KITD_CTX_MAX_ATTEMPTS + 3; i++)
    kitd_ctx_add_attempt(&c, KITD_ECONNECT, 0, i, "10.0.0.1:80", "refused");
  assert_int_equal(kitd_ctx_attempt_count(&c), KITD_CTX_MAX_ATTEMPTS);
  const kitd_attempt_error *a = kitd_ctx_attempt(&c, 2);
  assert_non_null(a);
  assert_int_equal(a->err, KITD_ECONNECT);
  assert_int_equal(a->latency_ns, 2);
  assert_string_equal(a->instance, "10.0.0.1:80");
  assert_string_equal(a->detail, "refused");
  assert_null(kitd_ctx_attempt(&c, KITD_CTX_MAX_ATTEMPTS));
  kitd_ctx_init(&c);
  assert_int_equal(kitd_ctx_attempt_count(&c), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_deadline),
      cmocka_unit_test(test_deadline_passes),
      cmocka_unit_test(test_child_takes_earlier_deadline),
      cmocka_unit_test(test_sleep_wakes_on_cancel),
      cmocka_unit_test(test_sleep_wakes_at_deadline),
      cmocka_unit_test(test_detail_truncated),
      cmocka_unit_test(test_attempts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
