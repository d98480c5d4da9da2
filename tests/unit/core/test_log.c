/* The logfmt logger: line shape, levels, quoting, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/error.h"
#include "kitd/log.h"

static char last[8192];
static int lines;
static void fn(void *arg, kitd_log_level lv, const char *line) {
  (void)arg;
  (void)lv;
  lines++;
  snprintf(last, sizeof last, "%s", line);
}

static void test_line_shape_and_levels(void **s) {
  (void)s;
  kitd_logger *lg;
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, fn, NULL, &lg), 0);
  lines = 0;
  kitd_log(lg, KITD_LOG_DEBUG, "x", "a=1");
  assert_int_equal(lines, 0);
  kitd_log(lg, KITD_LOG_WARN, "instancer", "service=lorem instances=%d", 2);
  assert_int_equal(lines, 1);
  assert_memory_equal(last, "ts=", 3);
  assert_non_null(strstr(last, "Z level=warn component=instancer service=lorem instances=2"));
  assert_true(kitd_log_enabled(lg, KITD_LOG_ERROR));
  assert_false(kitd_log_enabled(lg, KITD_LOG_DEBUG));
  assert_false(kitd_log_enabled(NULL, KITD_LOG_ERROR));
  kitd_log(NULL, KITD_LOG_ERROR, "x", "nothing");
  char big[6000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  kitd_log(lg, KITD_LOG_ERROR, NULL, "v=%s", big);
  assert_true(strlen(last) < 4096);
  assert_non_null(strstr(last, "component=kitd"));
  kitd_logger_free(lg);
  kitd_logger_free(NULL);
  assert_non_null(kitd_logger_stderr());
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, fn, NULL, NULL), KITD_EINVAL);
  assert_int_equal(kitd_logger_new((kitd_log_level)9, fn, NULL, &lg), KITD_EINVAL);
  kitd__alloc_fail_after(0);
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, fn, NULL, &lg), KITD_ENOMEM);
  kitd__alloc_fail_after(-1);
}

static void test_quote(void **s) {
  (void)s;
  char b[64];
  assert_string_equal(kitd_log_quote(b, sizeof b, "plain"), "plain");
  assert_string_equal(kitd_log_quote(b, sizeof b, ""), "\"\"");
  assert_string_equal(kitd_log_quote(b, sizeof b, NULL), "\"\"");
  assert_string_equal(kitd_log_quote(b, sizeof b, "a b"), "\"a b\"");
  assert_string_equal(kitd_log_quote(b, sizeof b, "k=v\"\n"), "\"k=v\\\"\\n\"");
  assert_string_equal(kitd_log_quote(b, sizeof b, "\x01"), "\"\\x01\"");
  char small[6];
  kitd_log_quote(small, sizeof small, "a long value");
  assert_true(strlen(small) < sizeof small);
  assert_string_equal(kitd_log_level_name(KITD_LOG_INFO), "info");
  assert_string_equal(kitd_log_level_name(KITD_LOG_ERROR), "error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_shape_and_levels),
      cmocka_unit_test(test_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
