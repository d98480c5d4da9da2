/* SPDX-License-Identifier: MIT */
/* The instance file parser: both forms, and errors that name the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "file/file_impl.h"
#include "kitd/error.h"
#include "kitd/instance.h"

static int parse(const char *text, kitd_instance ***set, size_t *n, char **detail) {
  return kitd__file_parse("lorem.list", text, strlen(text), set, n, detail);
}

static void expect_error(const char *text, const char *want) {
  kitd_instance **set = NULL;
  size_t n = 0;
  char *detail = NULL;
  assert_int_equal(parse(text, &set, &n, &detail), KITD_EPROTO);
  assert_non_null(detail);
  if (strcmp(detail, want) != 0) fail_msg("detail [%s], want [%s]", detail, want);
  assert_null(set);
  free(detail);
}

static void test_lines(void **state) {
  (void)state;
  kitd_instance **set = NULL;
  size_t n = 0;
  char *detail = NULL;
  assert_int_equal(parse("# lorem servers\n\n127.0.0.1:8001\n  a.test:8002 5  # heavy\r\n"
                         "[::1]:8003\t2\n",
                         &set, &n, &detail),
                   0);
  assert_null(detail);
  assert_int_equal(n, 3);
  assert_string_equal(kitd_instance_address(set[0]), "127.0.0.1:8001");
  assert_int_equal(kitd_instance_weight(set[0]), 1);
  assert_string_equal(kitd_instance_address(set[1]), "a.test:8002");
  assert_int_equal(kitd_instance_weight(set[1]), 5);
  assert_string_equal(kitd_instance_address(set[2]), "[::1]:8003");
  assert_int_equal(kitd_instance_weight(set[2]), 2);
  kitd_instance_list_free(set, n);
}

static void test_empty(void **state) {
  (void)state;
  kitd_instance **set = NULL;
  size_t n = 7;
  char *detail = NULL;
  assert_int_equal(parse("", &set, &n, &detail), 0);
  assert_int_equal(n, 0);
  assert_int_equal(parse("# nothing\n\n", &set, &n, &detail), 0);
  assert_int_equal(n, 0);
  assert_int_equal(parse(" [ ] ", &set, &n, &detail), 0);
  assert_int_equal(n, 0);
  free(set);
}

static void test_line_errors(void **state) {
  (void)state;
  expect_error("127.0.0.1:8001\n\nlorem\n", "lorem.list:3: not host:port");
  expect_error("a.test:0\n", "lorem.list:1: not host:port");
  expect_error("a.test:65536\n", "lorem.list:1: not host:port");
  expect_error("::1:80\n", "lorem.list:1: not host:port");
  expect_error(":80\n", "lorem.list:1: not host:port");
  expect_error("a.test:80 0\n", "lorem.list:1: weight is not an integer from 1 to 4294967295");
  expect_error("a.test:80 x\n", "lorem.list:1: weight is not an integer from 1 to 4294967295");
  expect_error("a.test:80 -1\n", "lorem.list:1: weight is not an integer from 1 to 4294967295");
  expect_error("a.test:80 4294967296\n",
               "lorem.list:1: weight is not an integer from 1 to 4294967295");
  expect_error("a.test:80 2 3\n", "lorem.list:1: more than \"host:port weight\"");
  expect_error("a.test:80\nb\001c:80\n", "lorem.list:2: bad address");
  static const char nul[] = "a.test:80\nb.test\0:80\n";
  kitd_instance **set = NULL;
  size_t n = 0;
  char *detail = NULL;
  assert_int_equal(kitd__file_parse("lorem.list", nul, sizeof nul - 1, &set, &n, &detail),
                   KITD_EPROTO);
  assert_string_equal(detail, "lorem.list:2: NUL byte");
  free(detail);
}

static void test_long_line(void **state) {
  (void)state;
  /* No fixed buffer: a 100 kB line is read whole (and refused as an
   * address too long for a record). */
  size_t n = 100000;
  char *s = malloc(n + 8);
  assert_non_null(s);
  memset(s, 'a', n);
  memcpy(s + n, ":80\n", 5);
  kitd_instance **set = NULL;
  size_t c = 0;
  char *detail = NULL;
  assert_int_equal(kitd__file_parse("lorem.list", s, strlen(s), &set, &c, &detail), KITD_EPROTO);
  assert_string_equal(detail, "lorem.list:1: bad address");
  free(detail);
  free(s);
}

static void test_json(void **state) {
  (void)state;
  kitd_instance **set = NULL;
  size_t n = 0;
  char *detail = NULL;
  const char *j = "[{\"address\": \"127.0.0.1:8001\", \"weight\": 3, \"tags\": [\"v2\", \"eu\"],"
                  " \"meta\": {\"version\": \"2.1\"}, \"zone\": \"eu-1\"},\n"
                  " {\"address\": \"[::1]:8002\"}]";
  assert_int_equal(parse(j, &set, &n, &detail), 0);
  assert_int_equal(n, 2);
  assert_string_equal(kitd_instance_address(set[0]), "127.0.0.1:8001");
  assert_int_equal(kitd_instance_weight(set[0]), 3);
  assert_int_equal(kitd_instance_tag_count(set[0]), 2);
  assert_true(kitd_instance_has_tag(set[0], "eu"));
  assert_string_equal(kitd_instance_meta(set[0], "version"), "2.1");
  assert_string_equal(kitd_instance_zone(set[0]), "eu-1");
  assert_int_equal(kitd_instance_weight(set[1]), 1);
  kitd_instance_list_free(set, n);
}

static void test_json_errors(void **state) {
  (void)state;
  expect_error("[{\"address\": \"a:1\"},\n {\"address\": 5}]",
               "lorem.list: element 1: \"address\" is not host:port");
  expect_error("[{}]", "lorem.list: element 0: \"address\" is not host:port");
  expect_error("[{\"address\": \"a:1\", \"weight\": 0}]",
               "lorem.list: element 0: \"weight\" is not an integer from 1 to 4294967295");
  expect_error("[{\"address\": \"a:1\", \"tags\": \"x\"}]",
               "lorem.list: element 0: \"tags\" is not an array");
  expect_error("[{\"address\": \"a:1\", \"tags\": [1]}]",
               "lorem.list: element 0: tag 0 is not a string");
  expect_error("[{\"address\": \"a:1\", \"meta\": {\"k\": 1}}]",
               "lorem.list: element 0: meta \"k\" is not a string");
  expect_error("[3]", "lorem.list: element 0: not an object");
  kitd_instance **set = NULL;
  size_t n = 0;
  char *detail = NULL;
  assert_int_equal(parse("[{\"address\": \"a:1\"},\n\n {\"address\": }]", &set, &n, &detail),
                   KITD_EPROTO);
  assert_true(strncmp(detail, "lorem.list:3: ", 14) == 0);
  free(detail);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lines),       cmocka_unit_test(test_empty),
      cmocka_unit_test(test_line_errors), cmocka_unit_test(test_long_line),
      cmocka_unit_test(test_json),        cmocka_unit_test(test_json_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
