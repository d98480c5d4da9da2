/* SPDX-License-Identifier: MIT */
/* Error codes: every code has a message and a name; unknown codes too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kitd/error.h"
#include "kitd/version.h"

static void test_names_and_messages(void **s) {
  (void)s;
#define CHECK(name, val, msg)                                                                      \
  assert_int_equal(KITD_##name, val);                                                              \
  assert_string_equal(kitd_strerror(KITD_##name), msg);                                            \
  assert_string_equal(kitd_err_name(KITD_##name), #name);
  KITD_ERRNO_MAP(CHECK)
#undef CHECK
  assert_string_equal(kitd_strerror(0), "success");
  assert_string_equal(kitd_err_name(0), "OK");
  assert_string_equal(kitd_strerror(-9999), "unknown error");
  assert_string_equal(kitd_err_name(12345), "UNKNOWN");
  assert_int_equal(kitd_version(), KITD_VERSION_HEX);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_names_and_messages)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
