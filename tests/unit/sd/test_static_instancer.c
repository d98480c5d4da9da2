/* SPDX-License-Identifier: MIT */
/* The instancer base through the static instancer: copied, sorted, unique
 * sets, late subscribers, unsubscribe, errors that keep the last good set,
 * bad arguments and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kitd/kitd.h"
#include "../../support/fixture.h"
#include "../../support/recorder.h"

/* The instances are copied: the caller's buffers no longer matter. */
static void test_sorted_unique_copied(void **st) {
  (void)st;
  char b2[] = "b:2", a1[] = "a:1", b2_again[] = "b:2", c3[] = "c:3", a1_again[] = "a:1";
  const char *v[] = {b2, a1, b2_again, c3, a1_again};
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(v, 5, &in), 0);
  b2[0] = a1[0] = b2_again[0] = c3[0] = a1_again[0] = 'x';
  kitd_test_recorder r;
  kitd_test_recorder_init(&r);
  assert_int_equal(kitd_instancer_subscribe(in, kitd_test_recorder_fn, &r), 0);
  assert_int_equal(r.events, 1); /* the current state, at once */
  assert_string_equal(r.set, "a:1,b:2,c:3");
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &r);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&r);
}

static void test_empty_set_is_a_state(void **st) {
  (void)st;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  kitd_test_recorder r;
  kitd_test_recorder_init(&r);
  kitd_instancer_subscribe(in, kitd_test_recorder_fn, &r);
  assert_int_equal(r.events, 1);
  assert_int_equal(r.err, 0);
  assert_string_equal(r.set, "");
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &r);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&r);
}

static void test_changes_and_no_op(void **st) {
  (void)st;
  kitd_instancer *in = kt_static("a:1");
  kitd_test_recorder r;
  kitd_test_recorder_init(&r);
  kitd_instancer_subscribe(in, kitd_test_recorder_fn, &r);
  assert_int_equal(kt_set(in, "a:1"), 0); /* unchanged: no event */
  assert_int_equal(r.events, 1);
  assert_int_equal(kt_set(in, "a:1,z:9"), 0);
  assert_int_equal(r.events, 2);
  assert_string_equal(r.set, "a:1,z:9");
  assert_int_equal(kt_set(in, "z:9,a:1"), 0); /* same set: no event */
  assert_int_equal(r.events, 2);
  kitd_static_instancer_set(in, NULL, 0);
  assert_int_equal(r.events, 3);
  assert_string_equal(r.set, "");
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &r);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&r);
}

static void test_late_subscriber_and_duplicates(void **st) {
  (void)st;
  const char *v[] = {"x:1", "y:2"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 2, &in);
  kitd_test_recorder a, b;
  kitd_test_recorder_init(&a);
  kitd_test_recorder_init(&b);
  kitd_instancer_subscribe(in, kitd_test_recorder_fn, &a);
  kitd_static_instancer_set(in, v, 1);
  assert_int_equal(kitd_instancer_subscribe(in, kitd_test_recorder_fn, &b), 0);
  assert_int_equal(b.events, 1);
  assert_string_equal(b.set, "x:1");
  assert_int_equal(kitd_instancer_subscribe(in, kitd_test_recorder_fn, &b), KITD_EEXIST);
  assert_int_equal(kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &a), 0);
  assert_int_equal(kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &a), KITD_ENOTFOUND);
  kitd_static_instancer_set(in, v, 2);
  assert_int_equal(a.events, 2); /* no event after unsubscribe */
  assert_int_equal(b.events, 2);
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &b);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&a);
  kitd_test_recorder_destroy(&b);
}

static void test_error_keeps_last_set(void **st) {
  (void)st;
  const char *v[] = {"a:1", "b:2"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 2, &in);
  kitd_test_recorder r, late;
  kitd_test_recorder_init(&r);
  kitd_test_recorder_init(&late);
  kitd_instancer_subscribe(in, kitd_test_recorder_fn, &r);
  assert_int_equal(kitd_static_instancer_fail(in, KITD_ECONNECT, "agent down"), 0);
  assert_int_equal(r.events, 2);
  assert_int_equal(r.err, KITD_ECONNECT);
  assert_string_equal(r.detail, "agent down");
  assert_string_equal(r.set, "a:1,b:2");
  kitd_instance **set;
  size_t n;
  assert_int_equal(kitd_instancer_state(in, &set, &n), KITD_ECONNECT);
  assert_int_equal(n, 2);
  assert_string_equal(kitd_instance_address(set[1]), "b:2");
  kitd_instance_list_free(set, n);
  /* A late subscriber gets the error and the set with it. */
  kitd_instancer_subscribe(in, kitd_test_recorder_fn, &late);
  assert_int_equal(late.err, KITD_ECONNECT);
  assert_string_equal(late.set, "a:1,b:2");
  /* The same set after an error is news: the error has ended. */
  kitd_static_instancer_set(in, v, 2);
  assert_int_equal(r.events, 3);
  assert_int_equal(r.err, 0);
  assert_int_equal(kitd_instancer_state(in, &set, &n), 0);
  kitd_instance_list_free(set, n);
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &r);
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &late);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&r);
  kitd_test_recorder_destroy(&late);
}

static void test_invalid(void **st) {
  (void)st;
  const char *v[] = {"a:1", NULL};
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(v, 2, &in), KITD_EINVAL);
  assert_null(in);
  assert_int_equal(kitd_static_instancer_new(NULL, 2, &in), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_new(v, 1, NULL), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_set(NULL, v, 1), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_fail(NULL, KITD_EIO, NULL), KITD_EINVAL);
}

static void test_stop_twice_and_bad_args(void **st) {
  (void)st;
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  const char *bad[] = {"a", NULL};
  assert_int_equal(kitd_static_instancer_set(in, bad, 2), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_fail(in, 0, NULL), KITD_EINVAL);
  kitd_instancer_stop(in);
  kitd_instancer_stop(in);
  assert_int_equal(kitd_static_instancer_set(in, bad, 1), KITD_ESTOPPED);
  kitd_instancer_free(in);
  kitd_instancer_free(NULL);
}

/* Fail each allocation in turn: ENOMEM, nothing leaked (valgrind/ASan), and
 * for set the old state stays. */
static void test_alloc_failures(void **st) {
  (void)st;
  const char *v[] = {"c:3", "a:1", "b:2", "a:1"};
  long k;
  for (k = 0;; k++) {
    kitd_instancer *in = NULL;
    kitd__alloc_fail_after(k);
    int rc = kitd_static_instancer_new(v, 4, &in);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (!fired) {
      assert_int_equal(rc, 0);
      kitd_instancer_free(in);
      break;
    }
    assert_int_equal(rc, KITD_ENOMEM);
    assert_null(in);
  }
  assert_true(k >= 4);
  kitd_instancer *in = kt_static("x:1");
  kitd_test_recorder r;
  kitd_test_recorder_init(&r);
  kitd_instancer_subscribe(in, kitd_test_recorder_fn, &r);
  for (k = 0;; k++) {
    kitd__alloc_fail_after(k);
    int rc = kitd_static_instancer_set(in, v, 4);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (!fired) {
      assert_int_equal(rc, 0);
      break;
    }
    assert_int_equal(rc, KITD_ENOMEM);
    assert_string_equal(r.set, "x:1");
  }
  assert_string_equal(r.set, "a:1,b:2,c:3");
  kitd_instancer_unsubscribe(in, kitd_test_recorder_fn, &r);
  kitd_instancer_free(in);
  kitd_test_recorder_destroy(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sorted_unique_copied),
      cmocka_unit_test(test_empty_set_is_a_state),
      cmocka_unit_test(test_changes_and_no_op),
      cmocka_unit_test(test_late_subscriber_and_duplicates),
      cmocka_unit_test(test_error_keeps_last_set),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_stop_twice_and_bad_args),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
