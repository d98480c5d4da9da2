/* kitd_ctx: deadlines, children, cancel, sleep, detail, attempts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/ctx.h"
#include "kitd/error.h"

static void test_init_and_deadline(void **s) {
  (void)s;
  kitd_ctx c;
  kitd_ctx_init(&c);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_int_equal(kitd_ctx_deadline_ns(&c), 0);
  assert_int_equal(kitd_ctx_remaining_ms(&c), -1);
  assert_string_equal(kitd_ctx_detail(&c), "");
  kitd_ctx_set_timeout_ms(&c, 1000);
  int64_t left = kitd_ctx_remaining_ms(&c);
  assert_true(left > 900 && left <= 1000);
  kitd_ctx_set_deadline_ns(&c, kitd_now_ns() - 1);
  assert_int_equal(kitd_ctx_err(&c), KITD_ETIMEDOUT);
  assert_int_equal(kitd_ctx_remaining_ms(&c), 0);
  kitd_ctx_set_timeout_ms(&c, 0);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_int_equal(kitd_ctx_err(NULL), 0);
}

static void test_child(void **s) {
  (void)s;
  kitd_ctx p, c;
  kitd_ctx_init(&p);
  kitd_ctx_set_timeout_ms(&p, 50);
  kitd_ctx_init_child(&c, &p, 1000); /* the parent's is earlier */
  assert_int_equal(kitd_ctx_deadline_ns(&c), kitd_ctx_deadline_ns(&p));
  kitd_ctx_init_child(&c, &p, 10);
  assert_true(kitd_ctx_deadline_ns(&c) < kitd_ctx_deadline_ns(&p));
  kitd_ctx_init_child(&c, &p, 0);
  assert_int_equal(kitd_ctx_deadline_ns(&c), kitd_ctx_deadline_ns(&p));
  kitd_ctx_cancel(&p);
  assert_int_equal(kitd_ctx_err(&c), KITD_ECANCELED);
  kitd_ctx_init(&p);
  kitd_ctx_init_child(&c, &p, 0);
  kitd_ctx_cancel(&c); /* a child's cancel does not reach the parent */
  assert_int_equal(kitd_ctx_err(&p), 0);
}

static void test_sleep(void **s) {
  (void)s;
  kitd_ctx c;
  kitd_ctx_init(&c);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(kitd_ctx_sleep_ns(&c, 20 * 1000000), 0);
  assert_true(kitd_now_ns() - t0 >= 20 * 1000000);
  kitd_ctx_set_timeout_ms(&c, 30);
  t0 = kt_ms();
  assert_int_equal(kitd_ctx_sleep_ns(&c, 10LL * 1000000000), KITD_ETIMEDOUT);
  assert_true(kt_ms() - t0 < 80 * kt_scale());
  assert_int_equal(kitd_ctx_sleep_ns(NULL, 1000), 0);
  kitd_ctx_init(&c);
  kitd_ctx_cancel(&c);
  assert_int_equal(kitd_ctx_sleep_ns(&c, 10LL * 1000000000), KITD_ECANCELED);
}

static void test_detail_status_attempts(void **s) {
  (void)s;
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_ctx_set_detail(&c, "code=%d", 7);
  assert_string_equal(kitd_ctx_detail(&c), "code=7");
  char big[1000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  kitd_ctx_set_detail(&c, "%s", big);
  assert_int_equal(strlen(kitd_ctx_detail(&c)), KITD_CTX_DETAIL_MAX - 1);
  kitd_ctx_set_detail(NULL, "x");
  kitd_ctx_set_status(&c, 503);
  assert_int_equal(kitd_ctx_status(&c), 503);
  kitd_attempt_error log[8];
  kitd_ctx_set_attempt_log(&c, log, 8);
  for (int i = 0; i < 8 + 3; i++)
    kitd_ctx_add_attempt(&c, KITD_EIO, 500, i, i ? "h:1" : NULL, big);
  assert_int_equal(kitd_ctx_attempt_count(&c), 8 + 3);
  assert_string_equal(kitd_ctx_attempt(&c, 0)->instance, "");
  assert_string_equal(kitd_ctx_attempt(&c, 1)->instance, "h:1");
  assert_int_equal(strlen(kitd_ctx_attempt(&c, 1)->detail), KITD_ATTEMPT_DETAIL_MAX - 1);
  assert_null(kitd_ctx_attempt(&c, 8));
  assert_int_equal(kitd_ctx_attempt_count(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_and_deadline),
      cmocka_unit_test(test_child),
      cmocka_unit_test(test_sleep),
      cmocka_unit_test(test_detail_status_attempts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
