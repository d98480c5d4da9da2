/* SPDX-License-Identifier: MIT */
/* The instancer base through the static instancer: sorted unique sets,
 * late subscribers, unsubscribe, errors that keep the last good set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kitd/kitd.h"

struct rec {
  int events;
  int last_err;
  char last[512];
  char detail[128];
};

static void on_event(void *arg, const kitd_event *ev) {
  struct rec *r = arg;
  r->events++;
  r->last_err = ev->err;
  snprintf(r->detail, sizeof r->detail, "%s", ev->detail);
  r->last[0] = '\0';
  for (size_t i = 0; i < ev->count; i++) {
    strcat(r->last, kitd_instance_address(ev->instances[i]));
    strcat(r->last, ",");
  }
}

static void test_sorted_unique(void **st) {
  (void)st;
  const char *v[] = {"b:2", "a:1", "b:2", "c:3", "a:1"};
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(v, 5, &in), 0);
  struct rec r = {0};
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &r), 0);
  assert_int_equal(r.events, 1); /* the current state, at once */
  assert_string_equal(r.last, "a:1,b:2,c:3,");
  kitd_instancer_unsubscribe(in, on_event, &r);
  kitd_instancer_free(in);
}

static void test_changes_and_no_op(void **st) {
  (void)st;
  const char *v[] = {"a:1"};
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(v, 1, &in), 0);
  struct rec r = {0};
  kitd_instancer_subscribe(in, on_event, &r);
  const char *w[] = {"a:1", "z:9"};
  assert_int_equal(kitd_static_instancer_set(in, w, 2), 0);
  assert_int_equal(r.events, 2);
  assert_string_equal(r.last, "a:1,z:9,");
  const char *same[] = {"z:9", "a:1"};
  kitd_static_instancer_set(in, same, 2); /* same set: no event */
  assert_int_equal(r.events, 2);
  kitd_static_instancer_set(in, NULL, 0);
  assert_int_equal(r.events, 3);
  assert_string_equal(r.last, "");
  kitd_instancer_unsubscribe(in, on_event, &r);
  kitd_instancer_free(in);
}

static void test_late_subscriber_and_duplicates(void **st) {
  (void)st;
  const char *v[] = {"x:1", "y:2"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 2, &in);
  struct rec a = {0}, b = {0};
  kitd_instancer_subscribe(in, on_event, &a);
  kitd_static_instancer_set(in, v, 1);
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &b), 0);
  assert_int_equal(b.events, 1);
  assert_string_equal(b.last, "x:1,");
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &b), KITD_EEXIST);
  assert_int_equal(kitd_instancer_unsubscribe(in, on_event, &a), 0);
  assert_int_equal(kitd_instancer_unsubscribe(in, on_event, &a), KITD_ENOTFOUND);
  kitd_static_instancer_set(in, v, 2);
  assert_int_equal(a.events, 2); /* no event after unsubscribe */
  assert_int_equal(b.events, 2);
  kitd_instancer_unsubscribe(in, on_event, &b);
  kitd_instancer_free(in);
}

static void test_error_keeps_last_set(void **st) {
  (void)st;
  const char *v[] = {"a:1", "b:2"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 2, &in);
  struct rec r = {0};
  kitd_instancer_subscribe(in, on_event, &r);
  assert_int_equal(kitd_static_instancer_fail(in, KITD_ECONNECT, "agent down"), 0);
  assert_int_equal(r.events, 2);
  assert_int_equal(r.last_err, KITD_ECONNECT);
  assert_string_equal(r.detail, "agent down");
  assert_string_equal(r.last, "a:1,b:2,");
  kitd_instance **set;
  size_t n;
  assert_int_equal(kitd_instancer_state(in, &set, &n), KITD_ECONNECT);
  assert_int_equal(n, 2);
  assert_string_equal(kitd_instance_address(set[1]), "b:2");
  kitd_instance_list_free(set, n);
  /* A late subscriber gets the error and the set with it. */
  struct rec late = {0};
  kitd_instancer_subscribe(in, on_event, &late);
  assert_int_equal(late.last_err, KITD_ECONNECT);
  assert_string_equal(late.last, "a:1,b:2,");
  /* The same set after an error is news: the error has ended. */
  kitd_static_instancer_set(in, v, 2);
  assert_int_equal(r.events, 3);
  assert_int_equal(r.last_err, 0);
  assert_int_equal(kitd_instancer_state(in, &set, &n), 0);
  kitd_instance_list_free(set, n);
  kitd_instancer_unsubscribe(in, on_event, &r);
  kitd_instancer_unsubscribe(in, on_event, &late);
  kitd_instancer_free(in);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sorted_unique),
      cmocka_unit_test(test_changes_and_no_op),
      cmocka_unit_test(test_late_subscriber_and_duplicates),
      cmocka_unit_test(test_error_keeps_last_set),
      cmocka_unit_test(test_stop_twice_and_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
