/* SPDX-License-Identifier: MIT */
/* kitd_ctx: deadlines, children, cancel, sleep, detail, attempts. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kitd/kitd.h"
#include "../../support/fixture.h"

/* A fresh ctx has no deadline; a deadline can be set, be passed, and be
 * cleared again. */
static void test_init_and_deadline(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_int_equal(kitd_ctx_deadline_ns(&c), 0);
  assert_int_equal(kitd_ctx_remaining_ms(&c), -1);
  assert_string_equal(kitd_ctx_detail(&c), "");
  kitd_ctx_set_timeout_ms(&c, 1000);
  int64_t left = kitd_ctx_remaining_ms(&c);
  assert_true(left > 1000 - 100 * kt_scale() && left <= 1000);
  kitd_ctx_set_deadline_ns(&c, kitd_now_ns() - 1);
  assert_int_equal(kitd_ctx_err(&c), KITD_ETIMEDOUT);
  assert_int_equal(kitd_ctx_remaining_ms(&c), 0);
  kitd_ctx_set_timeout_ms(&c, 0);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_int_equal(kitd_ctx_err(NULL), 0);
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

/* A child takes the earlier of its own and its parent's deadline (0: the
 * parent's), is cancelled with its parent, and its own cancel does not reach
 * the parent. */
static void test_child(void **st) {
  (void)st;
  kitd_ctx parent, child;
  kitd_ctx_init(&parent);
  kitd_ctx_set_timeout_ms(&parent, 1000);
  kitd_ctx_init_child(&child, &parent, 5000); /* the parent's is earlier */
  assert_int_equal(kitd_ctx_deadline_ns(&child), kitd_ctx_deadline_ns(&parent));
  kitd_ctx_init_child(&child, &parent, 10);
  assert_true(kitd_ctx_deadline_ns(&child) < kitd_ctx_deadline_ns(&parent));
  kitd_ctx_init_child(&child, &parent, 0);
  assert_int_equal(kitd_ctx_deadline_ns(&child), kitd_ctx_deadline_ns(&parent));
  kitd_ctx_cancel(&parent);
  assert_int_equal(kitd_ctx_err(&child), KITD_ECANCELED);
  kitd_ctx_init(&parent);
  kitd_ctx_init_child(&child, &parent, 0);
  kitd_ctx_cancel(&child);
  assert_int_equal(kitd_ctx_err(&parent), 0);
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

/* Without a deadline a sleep runs its full length; on a cancelled ctx it
 * returns at once. */
static void test_sleep_full_or_cancelled(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  int64_t t0 = kitd_now_ns();
  assert_int_equal(kitd_ctx_sleep_ns(&c, 20 * 1000000), 0);
  assert_true(kitd_now_ns() - t0 >= 20 * 1000000);
  kitd_ctx_cancel(&c);
  assert_int_equal(kitd_ctx_sleep_ns(&c, 10LL * 1000000000), KITD_ECANCELED);
}

static void test_sleep_wakes_at_deadline(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_ctx_set_timeout_ms(&c, 30);
  int64_t t0 = kt_ms();
  assert_int_equal(kitd_ctx_sleep_ns(&c, 10LL * 1000000000), KITD_ETIMEDOUT);
  int64_t took = kt_ms() - t0;
  assert_true(took >= 29 && took < 80 * kt_scale());
  assert_int_equal(kitd_ctx_sleep_ns(NULL, 1000000), 0);
}

static void test_detail_and_status(void **st) {
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
  assert_int_equal(kitd_ctx_status(&c), 0);
  kitd_ctx_set_status(&c, 503);
  assert_int_equal(kitd_ctx_status(&c), 503);
}

/* kitd_ctx shrank from 6,816 bytes when the attempt log moved out of it. */
static void test_size(void **st) {
  (void)st;
  assert_true(sizeof(kitd_ctx) <= 512);
}

static void test_attempts(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_attempt_error log[4];
  kitd_ctx_set_attempt_log(&c, log, 4);
  for (int i = 0; i < 4 + 3; i++)
    kitd_ctx_add_attempt(&c, i < 6 ? KITD_ECONNECT : KITD_EIO, 0, i, "10.0.0.1:80", "refused");
  /* All seven are counted; the log holds the first four. */
  assert_int_equal(kitd_ctx_attempt_count(&c), 7);
  assert_int_equal(kitd_ctx_last_attempt_err(&c), KITD_EIO);
  const kitd_attempt_error *a = kitd_ctx_attempt(&c, 2);
  assert_ptr_equal(a, &log[2]);
  assert_int_equal(a->err, KITD_ECONNECT);
  assert_int_equal(a->latency_ns, 2);
  assert_string_equal(a->instance, "10.0.0.1:80");
  assert_string_equal(a->detail, "refused");
  assert_non_null(kitd_ctx_attempt(&c, 3));
  assert_null(kitd_ctx_attempt(&c, 4));
  kitd_ctx_init(&c);
  assert_int_equal(kitd_ctx_attempt_count(&c), 0);
  assert_int_equal(kitd_ctx_last_attempt_err(&c), 0);
  assert_null(kitd_ctx_attempt(&c, 0));
}

/* With no log, only the count and the last code are kept. */
static void test_attempts_without_log(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_ctx_add_attempt(&c, KITD_ECONNECT, 503, 1, "a:1", "refused");
  kitd_ctx_add_attempt(&c, KITD_ETIMEDOUT, 0, 2, "b:1", "slow");
  assert_int_equal(kitd_ctx_attempt_count(&c), 2);
  assert_int_equal(kitd_ctx_last_attempt_err(&c), KITD_ETIMEDOUT);
  assert_null(kitd_ctx_attempt(&c, 0));
  /* A NULL buffer or a zero capacity is no log; setting a log restarts
   * the count. */
  kitd_attempt_error log[2];
  kitd_ctx_set_attempt_log(&c, NULL, 2);
  assert_int_equal(kitd_ctx_attempt_count(&c), 0);
  kitd_ctx_add_attempt(&c, KITD_EIO, 0, 3, NULL, NULL);
  assert_null(kitd_ctx_attempt(&c, 0));
  kitd_ctx_set_attempt_log(&c, log, 0);
  kitd_ctx_add_attempt(&c, KITD_EIO, 0, 3, NULL, NULL);
  assert_null(kitd_ctx_attempt(&c, 0));
  kitd_ctx_set_attempt_log(&c, log, 2);
  kitd_ctx_add_attempt(&c, KITD_EIO, 0, 3, NULL, NULL);
  assert_int_equal(kitd_ctx_attempt_count(&c), 1);
  assert_string_equal(kitd_ctx_attempt(&c, 0)->instance, "");
  assert_string_equal(kitd_ctx_attempt(&c, 0)->detail, "");
}

/* Records are bounded: the longest address fits whole, a longer one and a
 * long detail are cut, never overrun. */
static void test_attempt_bounds(void **st) {
  (void)st;
  char addr[KITD_ADDRESS_MAX + 20], detail[1000];
  memset(addr, 'h', sizeof addr - 1);
  addr[sizeof addr - 1] = '\0';
  memset(detail, 'd', sizeof detail - 1);
  detail[sizeof detail - 1] = '\0';
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_attempt_error log[2];
  kitd_ctx_set_attempt_log(&c, log, 2);
  kitd_ctx_add_attempt(&c, KITD_EIO, 0, 0, addr, detail);
  addr[KITD_ADDRESS_MAX] = '\0';
  kitd_ctx_add_attempt(&c, KITD_EIO, 0, 0, addr, "x");
  assert_int_equal(strlen(kitd_ctx_attempt(&c, 0)->instance), KITD_ADDRESS_MAX);
  assert_int_equal(strlen(kitd_ctx_attempt(&c, 0)->detail), KITD_ATTEMPT_DETAIL_MAX - 1);
  assert_string_equal(kitd_ctx_attempt(&c, 1)->instance, addr);
}

/* A child starts with no log, whatever its parent has: what it records
 * stays in the child, and the parent's log is untouched. */
static void test_child_has_no_log(void **st) {
  (void)st;
  kitd_ctx parent, child;
  kitd_ctx_init(&parent);
  kitd_attempt_error log[2];
  memset(log, 0x5a, sizeof log);
  kitd_ctx_set_attempt_log(&parent, log, 2);
  kitd_ctx_add_attempt(&parent, KITD_EIO, 0, 0, "a:1", "first");
  kitd_ctx_init_child(&child, &parent, 0);
  assert_int_equal(kitd_ctx_attempt_count(&child), 0);
  kitd_ctx_add_attempt(&child, KITD_ECONNECT, 0, 0, "b:1", "second");
  assert_int_equal(kitd_ctx_attempt_count(&child), 1);
  assert_int_equal(kitd_ctx_last_attempt_err(&child), KITD_ECONNECT);
  assert_null(kitd_ctx_attempt(&child, 0));
  assert_int_equal(kitd_ctx_attempt_count(&parent), 1);
  assert_int_equal(log[1].err, 0x5a5a5a5a); /* never written */
  assert_string_equal(kitd_ctx_instance(&child), "");
  assert_string_equal(kitd_ctx_detail(&child), "");
}

static void test_instance(void **st) {
  (void)st;
  kitd_ctx c;
  kitd_ctx_init(&c);
  assert_string_equal(kitd_ctx_instance(&c), "");
  kitd_ctx_set_instance(&c, "[::1]:8080");
  assert_string_equal(kitd_ctx_instance(&c), "[::1]:8080");
  char addr[KITD_ADDRESS_MAX + 20];
  memset(addr, 'h', sizeof addr - 1);
  addr[sizeof addr - 1] = '\0';
  kitd_ctx_set_instance(&c, addr);
  assert_int_equal(strlen(kitd_ctx_instance(&c)), KITD_ADDRESS_MAX);
  kitd_ctx_set_instance(&c, NULL);
  assert_string_equal(kitd_ctx_instance(&c), "");
  kitd_ctx_set_instance(&c, "a:1");
  kitd_ctx_init(&c);
  assert_string_equal(kitd_ctx_instance(&c), "");
}

/* Every setter and getter takes NULL without crashing. */
static void test_null_ctx(void **st) {
  (void)st;
  kitd_attempt_error log[1];
  kitd_ctx_init(NULL);
  kitd_ctx_init_child(NULL, NULL, 10);
  kitd_ctx_set_timeout_ms(NULL, 10);
  kitd_ctx_set_deadline_ns(NULL, 10);
  kitd_ctx_cancel(NULL);
  kitd_ctx_set_detail(NULL, "x %d", 1);
  kitd_ctx_set_status(NULL, 500);
  kitd_ctx_set_instance(NULL, "a:1");
  kitd_ctx_set_attempt_log(NULL, log, 1);
  kitd_ctx_add_attempt(NULL, KITD_EIO, 0, 0, "a:1", "x");
  assert_int_equal(kitd_ctx_deadline_ns(NULL), 0);
  assert_int_equal(kitd_ctx_remaining_ms(NULL), -1);
  assert_int_equal(kitd_ctx_err(NULL), 0);
  assert_string_equal(kitd_ctx_detail(NULL), "");
  assert_int_equal(kitd_ctx_status(NULL), 0);
  assert_string_equal(kitd_ctx_instance(NULL), "");
  assert_int_equal(kitd_ctx_attempt_count(NULL), 0);
  assert_int_equal(kitd_ctx_last_attempt_err(NULL), 0);
  assert_null(kitd_ctx_attempt(NULL, 0));
  /* A child of no parent is a root. */
  kitd_ctx c;
  kitd_ctx_init_child(&c, NULL, 1000);
  assert_int_equal(kitd_ctx_err(&c), 0);
  assert_true(kitd_ctx_remaining_ms(&c) > 0);
}

/* A ctx used before kitd_ctx_init (here: memory full of junk, as a fresh
 * stack frame may be, or all zero) says KITD_EINVAL, not ECANCELED or a
 * deadline read from the junk, and nothing writes through its pointers. */
static void test_uninitialised(void **st) {
  (void)st;
  for (int fill = 0; fill < 2; fill++) {
    kitd_ctx c, child;
    memset(&c, fill ? 0xa5 : 0, sizeof c);
    assert_int_equal(kitd_ctx_err(&c), KITD_EINVAL);
    assert_int_equal(kitd_ctx_sleep_ns(&c, 1000000), KITD_EINVAL);
    kitd_ctx_add_attempt(&c, KITD_EIO, 0, 0, "a:1", "x"); /* log_ is junk */
    kitd_ctx_set_detail(&c, "x");
    kitd_ctx_set_instance(&c, "a:1");
    kitd_ctx_set_status(&c, 1);
    kitd_ctx_set_timeout_ms(&c, 10);
    kitd_ctx_cancel(&c);
    assert_string_equal(kitd_ctx_detail(&c), "");
    assert_string_equal(kitd_ctx_instance(&c), "");
    assert_int_equal(kitd_ctx_status(&c), 0);
    assert_int_equal(kitd_ctx_attempt_count(&c), 0);
    assert_null(kitd_ctx_attempt(&c, 0));
    assert_int_equal(kitd_ctx_deadline_ns(&c), 0);
    /* A child inherits the fault from its parent. */
    kitd_ctx_init_child(&child, &c, 100);
    assert_int_equal(kitd_ctx_err(&child), KITD_EINVAL);
    kitd_ctx_init(&c);
    assert_int_equal(kitd_ctx_err(&c), 0);
    assert_int_equal(kitd_ctx_err(&child), 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_and_deadline),
      cmocka_unit_test(test_deadline_passes),
      cmocka_unit_test(test_child),
      cmocka_unit_test(test_sleep_wakes_on_cancel),
      cmocka_unit_test(test_sleep_full_or_cancelled),
      cmocka_unit_test(test_sleep_wakes_at_deadline),
      cmocka_unit_test(test_detail_and_status),
      cmocka_unit_test(test_size),
      cmocka_unit_test(test_attempts),
      cmocka_unit_test(test_attempts_without_log),
      cmocka_unit_test(test_attempt_bounds),
      cmocka_unit_test(test_child_has_no_log),
      cmocka_unit_test(test_instance),
      cmocka_unit_test(test_null_ctx),
      cmocka_unit_test(test_uninitialised),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
