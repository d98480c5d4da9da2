/* SPDX-License-Identifier: MIT */
/* kitd_endpoint: refcount, close once, call checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/endpoint.h"
#include "kitd/error.h"

static int closes, echo_calls;
static void close_fn(void *st) {
  (void)st;
  closes++;
}
static int echo(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx;
  echo_calls++;
  *resp = (void *)req;
  return st ? 0 : KITD_EIO;
}

static void test_ref_close_once(void **s) {
  (void)s;
  closes = 0;
  kitd_endpoint *ep = NULL;
  int state = 1;
  assert_int_equal(kitd_endpoint_new(echo, close_fn, &state, &ep), 0);
  assert_ptr_equal(kitd_endpoint_state(ep), &state);
  assert_ptr_equal(kitd_endpoint_ref(ep), ep);
  kitd_endpoint_unref(ep);
  assert_int_equal(closes, 0);
  kitd_endpoint_unref(ep);
  assert_int_equal(closes, 1);
  kitd_endpoint_unref(NULL);
  assert_null(kitd_endpoint_state(NULL));
}

static void test_call(void **s) {
  (void)s;
  kitd_endpoint *ep = NULL;
  int state = 1;
  assert_int_equal(kitd_endpoint_new(echo, NULL, &state, &ep), 0);
  kitd_ctx c;
  kitd_ctx_init(&c);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(ep, &c, "req", &resp), 0);
  assert_string_equal(resp, "req");
  /* Invalid calls never reach the endpoint. A NULL response pointer is one:
   * the endpoint's answer would have nowhere to go but a leak. */
  echo_calls = 0;
  assert_int_equal(kitd_endpoint_call(ep, &c, "req", NULL), KITD_EINVAL);
  assert_int_equal(kitd_endpoint_call(ep, NULL, "req", &resp), KITD_EINVAL);
  assert_int_equal(kitd_endpoint_call(NULL, &c, "req", &resp), KITD_EINVAL);
  assert_int_equal(echo_calls, 0);
  kitd_ctx_cancel(&c);
  assert_int_equal(kitd_endpoint_call(ep, &c, "req", &resp), KITD_ECANCELED);
  kitd_endpoint_unref(ep);
}

/* A ctx never given to kitd_ctx_init: KITD_EINVAL, where a zeroed or
 * junk-filled ctx used to read as canceled or timed out. */
static void test_uninitialised_ctx(void **s) {
  (void)s;
  kitd_endpoint *ep = NULL;
  int state = 1;
  assert_int_equal(kitd_endpoint_new(echo, NULL, &state, &ep), 0);
  kitd_ctx c;
  void *resp = NULL;
  echo_calls = 0;
  for (int fill = 0; fill < 2; fill++) {
    memset(&c, fill ? 0xff : 0, sizeof c);
    assert_int_equal(kitd_endpoint_call(ep, &c, "req", &resp), KITD_EINVAL);
  }
  assert_int_equal(echo_calls, 0);
  assert_null(resp);
  kitd_endpoint_unref(ep);
}

static void test_invalid_and_alloc(void **s) {
  (void)s;
  kitd_endpoint *ep = NULL;
  int state = 1;
  assert_int_equal(kitd_endpoint_new(NULL, NULL, NULL, &ep), KITD_EINVAL);
  assert_int_equal(kitd_endpoint_new(echo, NULL, NULL, NULL), KITD_EINVAL);
  /* The state is taken on every path: close receives it on failure. */
  closes = 0;
  assert_int_equal(kitd_endpoint_new(NULL, close_fn, &state, &ep), KITD_EINVAL);
  assert_int_equal(kitd_endpoint_new(echo, close_fn, &state, NULL), KITD_EINVAL);
  assert_int_equal(closes, 2);
  kitd__alloc_fail_after(0);
  assert_int_equal(kitd_endpoint_new(echo, close_fn, &state, &ep), KITD_ENOMEM);
  kitd__alloc_fail_after(-1);
  assert_null(ep);
  assert_int_equal(closes, 3);
  /* With no state, there is nothing to close. */
  kitd__alloc_fail_after(0);
  assert_int_equal(kitd_endpoint_new(echo, close_fn, NULL, &ep), KITD_ENOMEM);
  kitd__alloc_fail_after(-1);
  assert_int_equal(closes, 3);
}

/* kitd_endpoint_new(f, free, strdup(x), &e) cannot leak, whether it fails
 * on its arguments or on its allocation: the leak checkers of the
 * sanitizer and valgrind runs fail this test if the string is left. */
static void test_takes_state_no_leak(void **s) {
  (void)s;
  kitd_endpoint *ep = NULL;
  assert_int_equal(kitd_endpoint_new(NULL, free, strdup("x"), &ep), KITD_EINVAL);
  assert_int_equal(kitd_endpoint_new(echo, free, strdup("x"), NULL), KITD_EINVAL);
  kitd__alloc_fail_after(0); /* libkitd's allocations only: strdup succeeds */
  assert_int_equal(kitd_endpoint_new(echo, free, strdup("x"), &ep), KITD_ENOMEM);
  assert_true(kitd__alloc_failed());
  kitd__alloc_fail_after(-1);
  assert_null(ep);
  assert_int_equal(kitd_endpoint_new(echo, free, strdup("x"), &ep), 0);
  assert_string_equal(kitd_endpoint_state(ep), "x");
  kitd_endpoint_unref(ep);
}

static kitd_endpoint *shared;
static void *churn(void *arg) {
  (void)arg;
  for (int i = 0; i < 100000; i++) kitd_endpoint_unref(kitd_endpoint_ref(shared));
  return NULL;
}

static void test_threads(void **s) {
  (void)s;
  closes = 0;
  assert_int_equal(kitd_endpoint_new(echo, close_fn, NULL, &shared), 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  assert_int_equal(closes, 0);
  kitd_endpoint_unref(shared);
  assert_int_equal(closes, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ref_close_once),      cmocka_unit_test(test_call),
      cmocka_unit_test(test_uninitialised_ctx),   cmocka_unit_test(test_invalid_and_alloc),
      cmocka_unit_test(test_takes_state_no_leak), cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
