/* SPDX-License-Identifier: MIT */
/* Error names, version, endpoint refcounting, logfmt logger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kitd/kitd.h"

static void test_strerror_covers_every_code(void **st) {
  (void)st;
  for (int e = -1; e >= KITD_EINTERNAL; e--) {
    if (e == -15) { /* retired: was KITD_ERETRY, never returned */
      assert_string_equal(kitd_strerror(e), "unknown error");
      continue;
    }
    assert_string_not_equal(kitd_strerror(e), "unknown error");
    assert_string_not_equal(kitd_err_name(e), "UNKNOWN");
  }
  assert_string_equal(kitd_strerror(KITD_ENOENDPOINTS), "no endpoints available");
  assert_string_equal(kitd_err_name(KITD_ETIMEDOUT), "ETIMEDOUT");
  assert_string_equal(kitd_strerror(-9999), "unknown error");
  assert_string_equal(kitd_strerror(0), "success");
}

static void test_version(void **st) {
  (void)st;
  assert_int_equal(kitd_version(), KITD_VERSION_HEX);
}

static int closes;
static void count_close(void *state) {
  closes++;
  free(state);
}
static int echo(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx;
  (void)req;
  *resp = state;
  return 0;
}

static void test_endpoint_refcount(void **st) {
  (void)st;
  closes = 0;
  kitd_endpoint *ep;
  assert_int_equal(kitd_endpoint_new(NULL, NULL, NULL, &ep), KITD_EINVAL);
  assert_int_equal(kitd_endpoint_new(echo, count_close, strdup("x"), &ep), 0);
  kitd_endpoint_ref(ep);
  kitd_ctx c;
  kitd_ctx_init(&c);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(ep, &c, NULL, &resp), 0);
  assert_string_equal(resp, "x");
  kitd_endpoint_unref(ep);
  assert_int_equal(closes, 0);
  kitd_endpoint_unref(ep);
  assert_int_equal(closes, 1);
  kitd_endpoint_unref(NULL);
}

static void test_call_on_done_ctx(void **st) {
  (void)st;
  kitd_endpoint *ep;
  assert_int_equal(kitd_endpoint_new(echo, NULL, NULL, &ep), 0);
  kitd_ctx c;
  kitd_ctx_init(&c);
  kitd_ctx_cancel(&c);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(ep, &c, NULL, &resp), KITD_ECANCELED);
  assert_int_equal(kitd_endpoint_call(ep, NULL, NULL, &resp), KITD_EINVAL);
  kitd_endpoint_unref(ep);
}

static char last_line[4096];
static int lines;
static void capture(void *arg, const kitd_log_record *rec_) {
  kitd_log_level level = rec_->level;
  char line[4096];
  kitd_log_format_record(rec_, KITD_LOG_LOGFMT, line, sizeof line);
  (void)arg;
  (void)level;
  lines++;
  snprintf(last_line, sizeof last_line, "%s", line);
}

static void test_logger(void **st) {
  (void)st;
  kitd_logger *lg;
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, capture, NULL, KITD_LOG_LOGFMT, &lg), 0);
  lines = 0;
  kitd_log(lg, KITD_LOG_DEBUG, "test", "hidden=1");
  assert_int_equal(lines, 0);
  char q[64];
  kitd_log(lg, KITD_LOG_WARN, "instancer", "service=%s instances=%d",
           kitd_log_quote(q, sizeof q, "lo rem"), 2);
  assert_int_equal(lines, 1);
  assert_true(strncmp(last_line, "ts=", 3) == 0);
  assert_non_null(
      strstr(last_line, " level=warn component=instancer service=\"lo rem\" instances=2"));
  kitd_log(NULL, KITD_LOG_ERROR, "x", "nothing");
  kitd_logger_free(lg);
}

static void test_quote(void **st) {
  (void)st;
  char b[32];
  assert_string_equal(kitd_log_quote(b, sizeof b, "plain"), "plain");
  assert_string_equal(kitd_log_quote(b, sizeof b, ""), "\"\"");
  assert_string_equal(kitd_log_quote(b, sizeof b, "a=b"), "\"a=b\"");
  assert_string_equal(kitd_log_quote(b, sizeof b, "say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
  char small[6];
  kitd_log_quote(small, sizeof small, "with space and more");
  assert_int_equal(small[0], '"');
  assert_int_equal(small[strlen(small) - 1], '"');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_covers_every_code),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_endpoint_refcount),
      cmocka_unit_test(test_call_on_done_ctx),
      cmocka_unit_test(test_logger),
      cmocka_unit_test(test_quote),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
