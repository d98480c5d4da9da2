/* SPDX-License-Identifier: MIT */
/* The lorem server's router, a pure function: routes, bounds, methods. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lorem/lorem.c"
#include "lorem/route.c"

static int route(const char *m, const char *p, lorem_route *r) {
  return lorem_route_parse(m, p, strlen(p), r);
}

static void test_ok(void **st) {
  (void)st;
  lorem_route r;
  assert_int_equal(route("POST", "/lorem/word/3/9", &r), 200);
  assert_int_equal(r.kind, LOREM_ROUTE_LOREM);
  assert_int_equal(r.type, LOREM_WORD);
  assert_int_equal(r.min, 3);
  assert_int_equal(r.max, 9);
  assert_int_equal(route("POST", "/lorem/SeNtEnCe/20/5", &r), 200);
  assert_int_equal(r.type, LOREM_SENTENCE);
  assert_int_equal(r.min, 20); /* swapping is the generator's job */
  assert_int_equal(route("POST", "/lorem/paragraph/100/100", &r), 200);
  assert_int_equal(route("POST", "/lorem/sentence/0/1000", &r), 200);
  assert_int_equal(route("POST", "/lorem/word/007/14", &r), 200);
  assert_int_equal(r.min, 7);
  assert_int_equal(route("GET", "/health", &r), 200);
  assert_int_equal(r.kind, LOREM_ROUTE_HEALTH);
  assert_int_equal(route("HEAD", "/health", &r), 200);
  assert_int_equal(route("GET", "/metrics", &r), 200);
  assert_int_equal(r.kind, LOREM_ROUTE_METRICS);
  assert_int_equal(route("HEAD", "/metrics", &r), 200);
}

static void test_bad_input(void **st) {
  (void)st;
  lorem_route r;
  assert_int_equal(route("POST", "/lorem/word/-1/3", &r), 400);
  assert_non_null(strstr(r.error, "negative"));
  assert_int_equal(route("POST", "/lorem/word/1/x", &r), 400);
  assert_non_null(strstr(r.error, "max is not a number"));
  assert_int_equal(route("POST", "/lorem/word/1/15", &r), 400);
  assert_non_null(strstr(r.error, "limit of 14"));
  assert_int_equal(route("POST", "/lorem/sentence/1001/3", &r), 400);
  assert_int_equal(route("POST", "/lorem/paragraph/1/101", &r), 400);
  assert_int_equal(route("POST", "/lorem/paragraph/1/99999999999999999999", &r), 400);
  assert_int_equal(route("POST", "/lorem/poem/1/2", &r), 400);
  assert_non_null(strstr(r.error, "unknown type"));
  assert_int_equal(route("POST", "/lorem/word//2", &r), 400);
  assert_int_equal(route("POST", "/lorem/word/+1/2", &r), 400);
  assert_int_equal(route("POST", "/lorem/word/1 /2", &r), 400);
  assert_int_equal(r.kind, LOREM_ROUTE_ERROR);
}

static void test_not_found(void **st) {
  (void)st;
  lorem_route r;
  assert_int_equal(route("POST", "/lorem/word/1", &r), 404);
  assert_int_equal(route("POST", "/lorem/word/1/2/3", &r), 404);
  assert_int_equal(route("POST", "/lorem/word/1/2/", &r), 404);
  assert_int_equal(route("GET", "/", &r), 404);
  assert_int_equal(route("GET", "", &r), 404);
  assert_int_equal(route("GET", "health", &r), 404);
  assert_int_equal(route("GET", "/health/", &r), 404);
  assert_int_equal(route("GET", "/HEALTH", &r), 404);
  assert_int_equal(route("GET", "/a/b/c/d/e/f/g", &r), 404);
  assert_int_equal(lorem_route_parse("GET", NULL, 0, &r), 404);
}

static void test_methods(void **st) {
  (void)st;
  lorem_route r;
  assert_int_equal(route("GET", "/lorem/word/1/2", &r), 405);
  assert_string_equal(r.allow, "POST");
  assert_int_equal(route("POST", "/health", &r), 405);
  assert_string_equal(r.allow, "GET, HEAD");
  assert_int_equal(lorem_route_parse(NULL, "/health", 7, &r), 405);
  assert_int_equal(route("POST", "/metrics", &r), 405);
  assert_string_equal(r.allow, "GET, HEAD");
}

static void test_long_and_binary(void **st) {
  (void)st;
  lorem_route r;
  static char p[LOREM_URL_MAX + 2];
  memset(p, 'a', sizeof p - 1);
  p[0] = '/';
  assert_int_equal(lorem_route_parse("GET", p, sizeof p - 1, &r), 414);
  /* not NUL-terminated, embedded NUL and high bytes: quoted safely */
  const char bin[] = "/lorem/\0\xff\x01/1/2";
  assert_int_equal(lorem_route_parse("POST", bin, sizeof bin - 1, &r), 400);
  for (const char *e = r.error; *e; e++) assert_true(*e >= 0x20 && *e < 0x7f);
}

static void test_json_string(void **st) {
  (void)st;
  char b[32];
  assert_int_equal(lorem_json_string(b, sizeof b, "a\"b\\c\n"), 15);
  assert_string_equal(b, "\"a\\\"b\\\\c\\u000a\"");
  assert_int_equal(lorem_json_string(b, 4, "abcdef"), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ok),
      cmocka_unit_test(test_bad_input),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_long_and_binary),
      cmocka_unit_test(test_json_string),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
