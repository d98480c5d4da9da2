/* SPDX-License-Identifier: MIT */
/* The logfmt logger: line shape, levels, quoting, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../support/fixture.h"
#include "kitd/error.h"
#include "kitd/log.h"

static char last[8192];
static int lines;
static void fn(void *arg, const kitd_log_record *rec_) {
  kitd_log_level lv = rec_->level;
  char line[4096];
  kitd_log_format_record(rec_, KITD_LOG_LOGFMT, line, sizeof line);
  (void)arg;
  (void)lv;
  lines++;
  snprintf(last, sizeof last, "%s", line);
}

static void test_line_shape_and_levels(void **s) {
  (void)s;
  kitd_logger *lg;
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, fn, NULL, KITD_LOG_LOGFMT, &lg), 0);
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
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, fn, NULL, KITD_LOG_LOGFMT, NULL), KITD_EINVAL);
  assert_int_equal(kitd_logger_new((kitd_log_level)9, fn, NULL, KITD_LOG_LOGFMT, &lg), KITD_EINVAL);
  kitd__alloc_fail_after(0);
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, fn, NULL, KITD_LOG_LOGFMT, &lg), KITD_ENOMEM);
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

/* The callback gets the fields split and unquoted. */
static kitd_log_field got[8];
static char got_keys[8][64], got_vals[8][256];
static size_t got_n;
static char got_comp[64];
static void fields_fn(void *arg, const kitd_log_record *rec) {
  (void)arg;
  got_n = rec->nfields < 8 ? rec->nfields : 8;
  snprintf(got_comp, sizeof got_comp, "%s", rec->component);
  for (size_t i = 0; i < got_n; i++) {
    snprintf(got_keys[i], sizeof got_keys[i], "%s", rec->fields[i].key);
    snprintf(got_vals[i], sizeof got_vals[i], "%s", rec->fields[i].value);
    got[i].key = got_keys[i];
    got[i].value = got_vals[i];
  }
}

static void test_fields_and_json(void **s) {
  (void)s;
  kitd_logger *lg;
  assert_int_equal(kitd_logger_new(KITD_LOG_DEBUG, fields_fn, NULL, KITD_LOG_LOGFMT, &lg), 0);
  char q[64];
  kitd_log(lg, KITD_LOG_INFO, "consul", "service=%s detail=%s n=3",
           kitd_log_quote(q, sizeof q, "lo rem"), "\"a \\\"b\\\"\\nc\"");
  assert_string_equal(got_comp, "consul");
  assert_int_equal(got_n, 3);
  assert_string_equal(got[0].key, "service");
  assert_string_equal(got[0].value, "lo rem");
  assert_string_equal(got[1].key, "detail");
  assert_string_equal(got[1].value, "a \"b\"\nc");
  assert_string_equal(got[2].value, "3");
  /* The JSON writer escapes what JSON needs. */
  kitd_log_field f[2] = {{"service", "lo\"rem"}, {"n", "3"}};
  kitd_log_record rec = {0, KITD_LOG_WARN, "x", f, 2};
  char line[256];
  size_t need = kitd_log_format_record(&rec, KITD_LOG_JSON, line, sizeof line);
  assert_string_equal(line, "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warn\","
                            "\"component\":\"x\",\"service\":\"lo\\\"rem\",\"n\":\"3\"}");
  assert_int_equal(need, strlen(line));
  char small[8];
  assert_int_equal(kitd_log_format_record(&rec, KITD_LOG_JSON, small, sizeof small), need);
  assert_int_equal(strlen(small), 7);
  kitd_log_format_record(&rec, KITD_LOG_LOGFMT, line, sizeof line);
  assert_string_equal(
      line, "ts=1970-01-01T00:00:00.000Z level=warn component=x service=\"lo\\\"rem\" n=3");
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, NULL, NULL, (kitd_log_format)7, &lg),
                   KITD_EINVAL);
  kitd_logger_free(lg);
}

static const char *g_self; /* this program's path (argv[0]) */

/* KITD_LOG_LEVEL overrides every logger's level (read once per process,
 * so in a child). */
static void test_env_level(void **s) {
  (void)s;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) { /* a new process image: the level is read afresh */
    setenv("KITD_LOG_LEVEL", "debug", 1);
    /* argv[0], not /proc/self/exe: under valgrind that is valgrind's tool */
    execl(g_self, "test_log", "--env-child", (char *)NULL);
    _exit(3);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* The child of test_env_level. */
static int env_child(void) {
  kitd_logger *lg;
  if (kitd_logger_new(KITD_LOG_ERROR, fn, NULL, KITD_LOG_LOGFMT, &lg)) return 2;
  lines = 0;
  kitd_log(lg, KITD_LOG_DEBUG, "x", "a=1");
  kitd_logger_free(lg);
  return lines == 1 && kitd_log_enabled(kitd_logger_stderr(), KITD_LOG_DEBUG) ? 0 : 1;
}

int main(int argc, char **argv) {
  g_self = argv[0];
  if (argc > 1 && strcmp(argv[1], "--env-child") == 0) return env_child();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_line_shape_and_levels),
      cmocka_unit_test(test_fields_and_json),
      cmocka_unit_test(test_env_level),
      cmocka_unit_test(test_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
