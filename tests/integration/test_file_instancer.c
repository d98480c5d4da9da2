/* SPDX-License-Identifier: MIT */
/* The watched file instancer: initial load, edit in place, atomic rename,
 * a bad file that keeps the last set, the JSON form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kitd/error.h"
#include "kitd/file.h"
#include "kitd/instance.h"
#include "kitd/instancer.h"
#include "../support/recorder.h"
#include "../support/fixture.h"

typedef struct fixture {
  char dir[64];
  char *path, *tmp;
  kitd_instancer *in;
  kitd_test_recorder rec;
} fixture;

static fixture F;

static long T(long ms) { return ms * kt_scale(); }

static char *join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *s = malloc(n);
  assert_non_null(s);
  assert_true(snprintf(s, n, "%s/%s", a, b) == (int)n - 1);
  return s;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs(text, f) >= 0);
  assert_int_equal(fclose(f), 0);
}

/* Write to a temporary file, then rename it over the watched one. */
static void replace_file(const char *text) {
  write_file(F.tmp, text);
  assert_int_equal(rename(F.tmp, F.path), 0);
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  strcpy(F.dir, "/tmp/kitd-file-XXXXXX");
  if (!mkdtemp(F.dir)) return -1;
  F.path = join(F.dir, "lorem.list");
  F.tmp = join(F.dir, ".lorem.list.tmp");
  kitd_test_recorder_init(&F.rec);
  return 0;
}

static void start(void) {
  kitd_file_instancer_opts o;
  kitd_file_instancer_opts_init(&o);
  o.settle_ms = 10;
  assert_int_equal(kitd_file_instancer_new(F.path, &o, NULL, &F.in), 0);
  assert_int_equal(kitd_instancer_subscribe(F.in, kitd_test_recorder_fn, &F.rec), 0);
}

static int teardown(void **state) {
  (void)state;
  if (F.in) {
    kitd_instancer_unsubscribe(F.in, kitd_test_recorder_fn, &F.rec);
    kitd_instancer_free(F.in);
  }
  kitd_test_recorder_destroy(&F.rec);
  unlink(F.path);
  unlink(F.tmp);
  rmdir(F.dir);
  free(F.path);
  free(F.tmp);
  memset(&F, 0, sizeof F);
  return 0;
}

static void test_initial_load(void **state) {
  (void)state;
  write_file(F.path, "# lorem\n127.0.0.1:8001\n127.0.0.1:8002 3\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001,127.0.0.1:8002", T(3000)));
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(F.in, &set, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(kitd_instance_weight(set[1]), 3);
  kitd_instance_list_free(set, n);
}

static void test_edit_in_place(void **state) {
  (void)state;
  write_file(F.path, "127.0.0.1:8001\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001", T(3000)));
  write_file(F.path, "127.0.0.1:8001\n127.0.0.1:8003\n");
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001,127.0.0.1:8003", T(3000)));
  FILE *f = fopen(F.path, "a"); /* an append is an edit too */
  assert_non_null(f);
  fputs("127.0.0.1:8004\n", f);
  fclose(f);
  assert_true(
      kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001,127.0.0.1:8003,127.0.0.1:8004", T(3000)));
}

static void test_atomic_rename(void **state) {
  (void)state;
  write_file(F.path, "127.0.0.1:8001\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001", T(3000)));
  for (int i = 2; i <= 4; i++) { /* several: the watch must follow the new inode */
    char text[64], want[64];
    snprintf(text, sizeof text, "127.0.0.1:800%d\n", i);
    snprintf(want, sizeof want, "127.0.0.1:800%d", i);
    replace_file(text);
    assert_true(kitd_test_recorder_wait_set(&F.rec, want, T(3000)));
  }
}

static void test_bad_line_keeps_set(void **state) {
  (void)state;
  write_file(F.path, "127.0.0.1:8001\n127.0.0.1:8002\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001,127.0.0.1:8002", T(3000)));
  long errs = kitd_test_recorder_errors(&F.rec);
  replace_file("127.0.0.1:8001\n\nlorem\n");
  assert_true(kitd_test_recorder_wait_error(&F.rec, errs, T(3000)));
  pthread_mutex_lock(&F.rec.mu);
  assert_int_equal(F.rec.err, KITD_EPROTO);
  assert_string_equal(F.rec.detail, "lorem.list:3: not host:port");
  assert_string_equal(F.rec.set, "127.0.0.1:8001,127.0.0.1:8002");
  pthread_mutex_unlock(&F.rec.mu);
  /* Fixed: the new set comes. */
  replace_file("127.0.0.1:8005\n");
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8005", T(3000)));
}

static void test_deleted_then_back(void **state) {
  (void)state;
  write_file(F.path, "127.0.0.1:8001\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001", T(3000)));
  long errs = kitd_test_recorder_errors(&F.rec);
  assert_int_equal(unlink(F.path), 0);
  assert_true(kitd_test_recorder_wait_error(&F.rec, errs, T(3000)));
  pthread_mutex_lock(&F.rec.mu);
  assert_int_equal(F.rec.err, KITD_ENOTFOUND);
  assert_string_equal(F.rec.set, "127.0.0.1:8001");
  pthread_mutex_unlock(&F.rec.mu);
  write_file(F.path, "127.0.0.1:8009\n");
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8009", T(3000)));
}

static void test_missing_at_start(void **state) {
  (void)state;
  start();
  assert_true(kitd_test_recorder_wait_error(&F.rec, 0, T(3000)));
  assert_int_equal(kitd_instancer_wait_ready(F.in, 50), KITD_ENOTFOUND);
  replace_file("127.0.0.1:8001\n");
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001", T(3000)));
  assert_int_equal(kitd_instancer_wait_ready(F.in, 0), 0);
}

static void test_json(void **state) {
  (void)state;
  write_file(F.path, "[{\"address\": \"127.0.0.1:8001\", \"weight\": 4, \"tags\": [\"v2\"],"
                     " \"meta\": {\"version\": \"2\"}}]\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001", T(3000)));
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(F.in, &set, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(kitd_instance_weight(set[0]), 4);
  assert_true(kitd_instance_has_tag(set[0], "v2"));
  assert_string_equal(kitd_instance_meta(set[0], "version"), "2");
  kitd_instance_list_free(set, n);
  long errs = kitd_test_recorder_errors(&F.rec);
  replace_file("[{\"address\": \"127.0.0.1:8001\"},\n {\"address\": 7}]\n");
  assert_true(kitd_test_recorder_wait_error(&F.rec, errs, T(3000)));
  pthread_mutex_lock(&F.rec.mu);
  assert_string_equal(F.rec.detail, "lorem.list: element 1: \"address\" is not host:port");
  assert_string_equal(F.rec.set, "127.0.0.1:8001");
  pthread_mutex_unlock(&F.rec.mu);
}

static void test_other_files_ignored(void **state) {
  (void)state;
  write_file(F.path, "127.0.0.1:8001\n");
  start();
  assert_true(kitd_test_recorder_wait_set(&F.rec, "127.0.0.1:8001", T(3000)));
  pthread_mutex_lock(&F.rec.mu);
  long events = F.rec.events;
  pthread_mutex_unlock(&F.rec.mu);
  char *other = join(F.dir, "other.list");
  write_file(other, "garbage\n");
  kt_sleep_ms(200);
  unlink(other);
  free(other);
  pthread_mutex_lock(&F.rec.mu);
  assert_int_equal(F.rec.events, events);
  pthread_mutex_unlock(&F.rec.mu);
}

static void test_bad_args(void **state) {
  (void)state;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_file_instancer_new("", NULL, NULL, &in), KITD_EINVAL);
  assert_int_equal(kitd_file_instancer_new("/tmp/", NULL, NULL, &in), KITD_EINVAL);
  kitd_file_instancer_opts o;
  kitd_file_instancer_opts_init(&o);
  o.size = 1;
  assert_int_equal(kitd_file_instancer_new("/tmp/x", &o, NULL, &in), KITD_EINVAL);
  assert_null(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test_setup_teardown(test_initial_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_edit_in_place, setup, teardown),
      cmocka_unit_test_setup_teardown(test_atomic_rename, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_line_keeps_set, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deleted_then_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_missing_at_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_files_ignored, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
