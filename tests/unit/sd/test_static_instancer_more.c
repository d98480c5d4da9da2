/* SPDX-License-Identifier: MIT */
/* The static instancer: copies, sorts, de-duplicates, can be set and failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/error.h"

typedef struct rec {
  int events, err;
  char set[256];
} rec;

static void rec_fn(void *arg, const kitd_event *ev) {
  rec *r = arg;
  r->events++;
  r->err = ev->err;
  r->set[0] = '\0';
  for (size_t i = 0; i < ev->count; i++) {
    if (i) strcat(r->set, ",");
    strcat(r->set, kitd_instance_address(ev->instances[i]));
  }
}

static void test_new_copies_sorts_dedups(void **s) {
  (void)s;
  char a[] = "b:2", b[] = "a:1", c[] = "b:2";
  const char *v[] = {a, b, c};
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(v, 3, &in), 0);
  a[0] = b[0] = c[0] = 'x'; /* copied: our buffers no longer matter */
  rec r = {0};
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &r), 0);
  assert_int_equal(r.events, 1);
  assert_string_equal(r.set, "a:1,b:2");
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

static void test_empty_set_is_a_state(void **s) {
  (void)s;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  rec r = {0};
  kitd_instancer_subscribe(in, rec_fn, &r);
  assert_int_equal(r.events, 1);
  assert_string_equal(r.set, "");
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

static void test_set_and_fail(void **s) {
  (void)s;
  kitd_instancer *in = kt_static("a:1");
  rec r = {0};
  kitd_instancer_subscribe(in, rec_fn, &r);
  assert_int_equal(kt_set(in, "a:1"), 0);
  assert_int_equal(r.events, 1); /* unchanged: no event */
  assert_int_equal(kt_set(in, "c:3,b:2"), 0);
  assert_int_equal(r.events, 2);
  assert_string_equal(r.set, "b:2,c:3");
  assert_int_equal(kitd_static_instancer_fail(in, KITD_EIO, "boom"), 0);
  assert_int_equal(r.events, 3);
  assert_int_equal(r.err, KITD_EIO);
  assert_string_equal(r.set, "b:2,c:3");
  assert_int_equal(kitd_static_instancer_fail(in, 0, NULL), KITD_EINVAL);
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

static void test_invalid(void **s) {
  (void)s;
  const char *v[] = {"a:1", NULL};
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_static_instancer_new(v, 2, &in), KITD_EINVAL);
  assert_null(in);
  assert_int_equal(kitd_static_instancer_new(NULL, 2, &in), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_new(v, 1, NULL), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_set(NULL, v, 1), KITD_EINVAL);
  assert_int_equal(kitd_static_instancer_fail(NULL, KITD_EIO, NULL), KITD_EINVAL);
}

/* Fail each allocation in turn: ENOMEM, nothing leaked (valgrind/ASan), and
 * for set the old state stays. */
static void test_alloc_failures(void **s) {
  (void)s;
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
  rec r = {0};
  kitd_instancer_subscribe(in, rec_fn, &r);
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
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_copies_sorts_dedups),
      cmocka_unit_test(test_empty_set_is_a_state),
      cmocka_unit_test(test_set_and_fail),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
