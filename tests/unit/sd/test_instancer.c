/* SPDX-License-Identifier: MIT */
/* The instancer base: ordering, de-duplication, state, subscribers, stop. */
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
#include "sd/instancer_impl.h"

/* A subscriber that keeps the last event as "a,b" and counts events. */
typedef struct rec {
  int events, errors, err;
  char set[512];
  char detail[128];
  pthread_t thread;
} rec;

static void rec_fn(void *arg, const kitd_event *ev) {
  rec *r = arg;
  r->events++;
  if (ev->err) r->errors++;
  r->err = ev->err;
  r->thread = pthread_self();
  snprintf(r->detail, sizeof r->detail, "%s", ev->detail);
  r->set[0] = '\0';
  for (size_t i = 0; i < ev->count; i++) {
    if (i) strcat(r->set, ",");
    strcat(r->set, kitd_instance_address(ev->instances[i]));
  }
}

/* A bare instancer built on the base, to drive publish directly. */
static int stops;
static void t_stop(kitd_instancer *in) {
  (void)in;
  stops++;
}
static void t_destroy(kitd_instancer *in) { free(in); }
static const struct kitd__instancer_ops t_ops = {"test", t_stop, t_destroy};

static kitd_instancer *t_new(void) {
  kitd_instancer *in = malloc(sizeof *in);
  assert_int_equal(kitd__instancer_init(in, &t_ops), 0);
  return in;
}

static kitd_instance **strv(const char *csv, size_t *n) {
  *n = 0;
  kitd_instance **v = calloc(32, sizeof *v);
  char *c = strdup(csv), *save = NULL;
  for (char *t = strtok_r(c, ",", &save); t; t = strtok_r(NULL, ",", &save))
    assert_int_equal(kitd_instance_new(t, &v[(*n)++]), 0);
  free(c);
  return v;
}

static void publish(kitd_instancer *in, const char *csv) {
  size_t n;
  kitd_instance **v = strv(csv, &n);
  assert_int_equal(kitd__instancer_publish(in, v, n), 0);
}

static void test_sort_unique(void **s) {
  (void)s;
  size_t n;
  kitd_instance **v = strv("b:1,a:1,c:1,a:1,b:1,a:1", &n);
  n = kitd__instance_sort_unique(v, n);
  assert_int_equal(n, 3);
  assert_string_equal(kitd_instance_address(v[0]), "a:1");
  assert_string_equal(kitd_instance_address(v[1]), "b:1");
  assert_string_equal(kitd_instance_address(v[2]), "c:1");
  kitd_instance_list_free(v, n);
  kitd_instance_list_free(NULL, 3);
}

static void test_events_sorted_dedup_and_only_on_change(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  rec r = {0};
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &r), 0);
  assert_int_equal(r.events, 0); /* no state yet: nothing delivered */
  publish(in, "10.0.0.2:80,10.0.0.1:80,10.0.0.2:80");
  assert_int_equal(r.events, 1);
  assert_string_equal(r.set, "10.0.0.1:80,10.0.0.2:80");
  publish(in, "10.0.0.2:80,10.0.0.1:80"); /* same set, other order */
  assert_int_equal(r.events, 1);
  publish(in, "10.0.0.3:80");
  assert_int_equal(r.events, 2);
  assert_string_equal(r.set, "10.0.0.3:80");
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

static void test_late_subscriber_gets_state_at_once(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  publish(in, "b:1,a:1");
  rec r = {0};
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &r), 0);
  assert_int_equal(r.events, 1);
  assert_true(pthread_equal(r.thread, pthread_self()));
  assert_string_equal(r.set, "a:1,b:1");
  /* The same pair twice is refused, and the callback does not run. */
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &r), KITD_EEXIST);
  assert_int_equal(r.events, 1);
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

static void test_unsubscribe_stops_callbacks(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  rec a = {0}, b = {0};
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &a), 0);
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &b), 0);
  publish(in, "a:1");
  assert_int_equal(kitd_instancer_unsubscribe(in, rec_fn, &a), 0);
  assert_int_equal(kitd_instancer_unsubscribe(in, rec_fn, &a), KITD_ENOTFOUND);
  publish(in, "b:1");
  assert_int_equal(a.events, 1);
  assert_int_equal(b.events, 2);
  assert_string_equal(b.set, "b:1");
  kitd_instancer_unsubscribe(in, rec_fn, &b);
  kitd_instancer_free(in);
}

static void test_error_keeps_last_set(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  rec r = {0};
  kitd_instancer_subscribe(in, rec_fn, &r);
  publish(in, "a:1,b:1");
  kitd__instancer_publish_error(in, KITD_ECONNECT, "agent down");
  assert_int_equal(r.events, 2);
  assert_int_equal(r.err, KITD_ECONNECT);
  assert_string_equal(r.detail, "agent down");
  assert_string_equal(r.set, "a:1,b:1");
  kitd__instancer_publish_error(in, KITD_ECONNECT, NULL); /* repeated: still delivered */
  assert_int_equal(r.errors, 2);
  assert_string_equal(r.detail, "");
  kitd_instance **v;
  size_t n;
  assert_int_equal(kitd_instancer_state(in, &v, &n), KITD_ECONNECT);
  assert_int_equal(n, 2);
  assert_string_equal(kitd_instance_address(v[1]), "b:1");
  kitd_instance_list_free(v, n);
  /* Recovery with the same set is an event (the error is over). */
  publish(in, "b:1,a:1");
  assert_int_equal(r.events, 4);
  assert_int_equal(r.err, 0);
  assert_int_equal(kitd_instancer_state(in, &v, &n), 0);
  kitd_instance_list_free(v, n);
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
}

static void test_state_before_any(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  kitd_instance **v = NULL;
  size_t n = 99;
  assert_int_equal(kitd_instancer_state(in, &v, &n), KITD_ENOTFOUND);
  assert_int_equal(n, 0);
  assert_non_null(v);
  kitd_instance_list_free(v, n);
  assert_int_equal(kitd_instancer_state(NULL, &v, &n), KITD_EINVAL);
  kitd_instancer_free(in);
}

static void test_stop_once_and_after_stop(void **s) {
  (void)s;
  stops = 0;
  kitd_instancer *in = t_new();
  rec r = {0};
  kitd_instancer_subscribe(in, rec_fn, &r);
  publish(in, "a:1");
  kitd_instancer_stop(in);
  kitd_instancer_stop(in);
  assert_int_equal(stops, 1);
  size_t n;
  kitd_instance **v = strv("b:1", &n);
  assert_int_equal(kitd__instancer_publish(in, v, n), KITD_ESTOPPED);
  kitd__instancer_publish_error(in, KITD_EIO, "x");
  assert_int_equal(r.events, 1); /* nothing after stop */
  rec late = {0};
  assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &late), KITD_ESTOPPED);
  assert_int_equal(late.events, 0);
  assert_int_equal(kitd_instancer_state(in, &v, &n), 0); /* still readable */
  assert_int_equal(n, 1);
  kitd_instance_list_free(v, n);
  kitd_instancer_unsubscribe(in, rec_fn, &r);
  kitd_instancer_free(in);
  assert_int_equal(stops, 1);
  kitd_instancer_free(NULL);
}

static void test_invalid(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  assert_int_equal(kitd_instancer_subscribe(in, NULL, NULL), KITD_EINVAL);
  assert_int_equal(kitd_instancer_subscribe(NULL, rec_fn, NULL), KITD_EINVAL);
  assert_int_equal(kitd_instancer_unsubscribe(in, NULL, NULL), KITD_EINVAL);
  assert_int_equal(kitd__instancer_publish(in, NULL, 3), KITD_EINVAL);
  kitd_instancer_free(in);
}

/* Many subscribers (the array grows) under allocation failure: a failed
 * subscribe returns ENOMEM, never calls back, and leaves the others. */
static void test_subscribe_alloc_failure(void **s) {
  (void)s;
  kitd_instancer *in = t_new();
  publish(in, "a:1");
  rec r[40];
  memset(r, 0, sizeof r);
  int failures = 0;
  for (int i = 0; i < 40; i++) {
    kitd__alloc_fail_after(0);
    int rc = kitd_instancer_subscribe(in, rec_fn, &r[i]);
    kitd__alloc_fail_after(-1);
    if (rc == KITD_ENOMEM) {
      failures++;
      assert_int_equal(r[i].events, 0);
      assert_int_equal(kitd_instancer_subscribe(in, rec_fn, &r[i]), 0);
    } else {
      assert_int_equal(rc, 0);
    }
    assert_int_equal(r[i].events, 1);
  }
  assert_true(failures > 0);
  publish(in, "b:1");
  for (int i = 0; i < 40; i++) {
    assert_int_equal(r[i].events, 2);
    kitd_instancer_unsubscribe(in, rec_fn, &r[i]);
  }
  /* kitd_instancer_state under failure of each of its allocations. */
  for (long k = 0;; k++) {
    kitd_instance **v;
    size_t n;
    kitd__alloc_fail_after(k);
    int rc = kitd_instancer_state(in, &v, &n);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (!fired) {
      assert_int_equal(rc, 0);
      kitd_instance_list_free(v, n);
      break;
    }
    assert_int_equal(rc, KITD_ENOMEM);
  }
  kitd_instancer_free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sort_unique),
      cmocka_unit_test(test_events_sorted_dedup_and_only_on_change),
      cmocka_unit_test(test_late_subscriber_gets_state_at_once),
      cmocka_unit_test(test_unsubscribe_stops_callbacks),
      cmocka_unit_test(test_error_keeps_last_set),
      cmocka_unit_test(test_state_before_any),
      cmocka_unit_test(test_stop_once_and_after_stop),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_subscribe_alloc_failure),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
