/* SPDX-License-Identifier: MIT */
/* lib/curl's CURLcode -> KITD_E* map: every CURLcode the library singles
 * out maps to the code documented in lib/curl/errors.c, and the write
 * error carries the callback's own reason. Also the URL string builder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "core/alloc.h"
#include "curl/kitd_curl.h"
#include "kitd/error.h"

static const struct {
  CURLcode cc;
  int want;
} table[] = {
    {CURLE_OK, 0},
    /* never reached the server */
    {CURLE_COULDNT_CONNECT, KITD_ECONNECT},
    {CURLE_COULDNT_RESOLVE_HOST, KITD_ECONNECT},
    {CURLE_COULDNT_RESOLVE_PROXY, KITD_ECONNECT},
    /* TLS */
    {CURLE_SSL_CONNECT_ERROR, KITD_ETLS},
    {CURLE_PEER_FAILED_VERIFICATION, KITD_ETLS},
    {CURLE_SSL_CERTPROBLEM, KITD_ETLS},
    {CURLE_SSL_CIPHER, KITD_ETLS},
    {CURLE_SSL_CACERT_BADFILE, KITD_ETLS},
    {CURLE_SSL_ENGINE_NOTFOUND, KITD_ETLS},
    {CURLE_SSL_ENGINE_SETFAILED, KITD_ETLS},
    {CURLE_SSL_ENGINE_INITFAILED, KITD_ETLS},
    {CURLE_SSL_SHUTDOWN_FAILED, KITD_ETLS},
    {CURLE_SSL_CRL_BADFILE, KITD_ETLS},
    {CURLE_SSL_ISSUER_ERROR, KITD_ETLS},
    {CURLE_SSL_PINNEDPUBKEYNOTMATCH, KITD_ETLS},
    {CURLE_SSL_INVALIDCERTSTATUS, KITD_ETLS},
    {CURLE_SSL_CLIENTCERT, KITD_ETLS},
    {CURLE_USE_SSL_FAILED, KITD_ETLS},
    {CURLE_OPERATION_TIMEDOUT, KITD_ETIMEDOUT},
    {CURLE_OUT_OF_MEMORY, KITD_ENOMEM},
    {CURLE_ABORTED_BY_CALLBACK, KITD_ECANCELED},
    {CURLE_URL_MALFORMAT, KITD_EINVAL},
    {CURLE_UNSUPPORTED_PROTOCOL, KITD_EINVAL},
    /* the server answered, badly or cut short */
    {CURLE_WEIRD_SERVER_REPLY, KITD_EPROTO},
    {CURLE_BAD_CONTENT_ENCODING, KITD_EPROTO},
    {CURLE_HTTP2, KITD_EPROTO},
    {CURLE_PARTIAL_FILE, KITD_EPROTO},
    /* the network failed after the request may have gone out */
    {CURLE_SEND_ERROR, KITD_EIO},
    {CURLE_RECV_ERROR, KITD_EIO},
    {CURLE_GOT_NOTHING, KITD_EIO},
    {CURLE_WRITE_ERROR, KITD_EIO}, /* not refused by our callback */
    /* anything else */
    {CURLE_TOO_MANY_REDIRECTS, KITD_EIO},
    {CURLE_FAILED_INIT, KITD_EIO},
};

static void test_map(void **s) {
  (void)s;
  for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
    int got = kitd__curl_code(table[i].cc, 0);
    if (got != table[i].want)
      fail_msg("%s (%d): %s, want %s", curl_easy_strerror(table[i].cc), (int)table[i].cc,
               kitd_err_name(got), kitd_err_name(table[i].want));
  }
}

/* The write error is what our callback said; other codes ignore it. */
static void test_write_err(void **s) {
  (void)s;
  assert_int_equal(kitd__curl_code(CURLE_WRITE_ERROR, KITD_ETOOBIG), KITD_ETOOBIG);
  assert_int_equal(kitd__curl_code(CURLE_WRITE_ERROR, KITD_ENOMEM), KITD_ENOMEM);
  assert_int_equal(kitd__curl_code(CURLE_RECV_ERROR, KITD_ETOOBIG), KITD_EIO);
  assert_int_equal(kitd__curl_code(CURLE_OK, KITD_ENOMEM), 0);
}

static void test_str(void **s) {
  (void)s;
  kitd__curl_str u = {0};
  kitd__curl_str_printf(&u, "http://%s:%d", "h", 80);
  kitd__curl_str_printf(&u, "/v1?dc=");
  kitd__curl_str_escape(&u, "a b/c?~");
  assert_int_equal(u.err, 0);
  assert_string_equal(u.data, "http://h:80/v1?dc=a%20b%2Fc%3F~");
  assert_int_equal(u.len, strlen(u.data));
  /* Longer than any fixed buffer the URL used to be built in. */
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  kitd__curl_str_escape(&u, big);
  assert_int_equal(u.err, 0);
  assert_int_equal(u.len, strlen("http://h:80/v1?dc=a%20b%2Fc%3F~") + sizeof big - 1);
  kitd__curl_str_free(&u);
  assert_null(u.data);
  /* A failed allocation sticks, and later appends do nothing. */
  kitd__alloc_fail_after(0);
  kitd__curl_str_printf(&u, "abc");
  kitd__alloc_fail_after(-1);
  assert_int_equal(u.err, KITD_ENOMEM);
  kitd__curl_str_printf(&u, "def");
  assert_null(u.data);
  kitd__curl_str_free(&u);
}

/* A stop flag already set ends the perform loop before the handle is
 * added, and the global references balance. */
static void test_perform_stopped(void **s) {
  (void)s;
  assert_int_equal(kitd__curl_acquire(), 0);
  CURLM *m = curl_multi_init();
  CURL *e = curl_easy_init();
  assert_non_null(m);
  assert_non_null(e);
  curl_easy_setopt(e, CURLOPT_URL, "http://127.0.0.1:1/");
  int flag = 1;
  kitd__curl_stop st = {.flag = &flag, .wakeable = 1};
  CURLcode cc = CURLE_OK;
  assert_int_equal(kitd__curl_perform(m, e, &st, &cc), KITD_ESTOPPED);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_cancel(&ctx);
  kitd__curl_stop st2 = {.ctx = &ctx};
  assert_int_equal(kitd__curl_perform(m, e, &st2, &cc), KITD_ECANCELED);
  curl_easy_cleanup(e);
  curl_multi_cleanup(m);
  kitd__curl_release();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_map),
      cmocka_unit_test(test_write_err),
      cmocka_unit_test(test_str),
      cmocka_unit_test(test_perform_stopped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
