/* SPDX-License-Identifier: MIT */
/* The gateway's JSON request parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "lorem/lorem.c"
#include "lorem/gwreq.c"

static int parse(const char *s, lorem_request *rq, char *err) {
  return lorem_gw_parse(s, strlen(s), rq, err, 256);
}

static void test_ok(void **st) {
  (void)st;
  lorem_request rq;
  char err[256];
  assert_int_equal(parse("{\"requestType\":\"Word\",\"min\":5,\"max\":10}", &rq, err), 0);
  assert_int_equal(rq.type, LOREM_WORD);
  assert_int_equal(rq.min, 5);
  assert_int_equal(rq.max, 10);
  assert_int_equal(
      parse(" {\"max\":1,\"requestType\":\"PARAGRAPH\",\"min\":100,\"x\":[1]} ", &rq, err), 0);
  assert_int_equal(rq.type, LOREM_PARAGRAPH);
  assert_int_equal(rq.min, 100);
}

static void test_bad(void **st) {
  (void)st;
  lorem_request rq;
  char err[256];
  static const struct {
    const char *body, *want;
  } cases[] = {
      {"", "invalid JSON"},
      {"{nope", "invalid JSON"},
      {"[1,2]", "must be a JSON object"},
      {"{\"min\":1,\"max\":2}", "missing field \"requestType\""},
      {"{\"requestType\":3,\"min\":1,\"max\":2}", "must be a string"},
      {"{\"requestType\":\"poem\",\"min\":1,\"max\":2}", "unknown requestType"},
      {"{\"requestType\":\"word\",\"max\":2}", "missing field \"min\""},
      {"{\"requestType\":\"word\",\"min\":\"1\",\"max\":2}", "must be an integer"},
      {"{\"requestType\":\"word\",\"min\":1.5,\"max\":2}", "must be an integer"},
      {"{\"requestType\":\"word\",\"min\":-1,\"max\":2}", "negative"},
      {"{\"requestType\":\"word\",\"min\":1,\"max\":15}", "limit of 14"},
      {"{\"requestType\":\"sentence\",\"min\":1,\"max\":99999999999999999999}", "invalid JSON"},
      {"{\"requestType\":\"word\",\"min\":1,\"min\":2,\"max\":3}", "invalid JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    err[0] = 'X';
    assert_int_equal(parse(cases[i].body, &rq, err), -1);
    if (!strstr(err, cases[i].want))
      fail_msg("%s: got '%s', want '%s'", cases[i].body, err, cases[i].want);
  }
  static char big[LOREM_GWREQ_MAX + 2];
  memset(big, ' ', sizeof big - 1);
  assert_int_equal(lorem_gw_parse(big, sizeof big - 1, &rq, err, sizeof err), -1);
  assert_non_null(strstr(err, "over"));
  assert_int_equal(lorem_gw_parse(NULL, 0, &rq, err, sizeof err), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_ok), cmocka_unit_test(test_bad)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
