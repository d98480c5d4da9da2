/* SPDX-License-Identifier: MIT */
/* The example server's request-head parser, a pure function: where a head
 * ends, what is accepted, which status each malformed head gets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lorem/http_parse.c"

static int parse(const char *s, lorem_http_head *h, char *buf) {
  size_t n = strlen(s), scan = 0;
  memcpy(buf, s, n + 1);
  size_t end = lorem_http_head_end(buf, n, &scan);
  if (!end) return -1;
  const char *err;
  return lorem_http_parse_head(buf, end, h, &err);
}

static void test_end(void **st) {
  (void)st;
  size_t scan = 0;
  const char *s = "GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
  assert_int_equal(lorem_http_head_end(s, strlen(s), &scan), strlen(s) - 4);
  /* a byte at a time: found once the blank line is complete */
  size_t n = strlen(s) - 4, found = 0;
  scan = 0;
  for (size_t i = 1; i <= n && !found; i++) {
    found = lorem_http_head_end(s, i, &scan);
    if (found) assert_int_equal(i, n);
  }
  assert_int_equal(found, n);
  scan = 0;
  assert_int_equal(lorem_http_head_end("GET / HTTP/1.0\n\n", 16, &scan), 16);
  scan = 0;
  assert_int_equal(lorem_http_head_end("GET / HTTP/1.1\r\nHost: x\r\n", 25, &scan), 0);
}

static void test_ok(void **st) {
  (void)st;
  lorem_http_head h;
  char b[512];
  assert_int_equal(parse("POST /sd-lorem?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 12\r\n"
                         "Content-Type:  application/json \r\nExpect: 100-continue\r\n\r\n",
                         &h, b),
                   0);
  assert_string_equal(h.method, "POST");
  assert_string_equal(h.target, "/sd-lorem?x=1");
  assert_int_equal(h.minor, 1);
  assert_int_equal(h.content_length, 12);
  assert_true(h.keep_alive);
  assert_true(h.expect_continue);
  assert_string_equal(lorem_http_head_get(&h, b, "content-type"), "application/json");
  assert_null(lorem_http_head_get(&h, b, "x-none"));
  assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", &h, b), 0);
  assert_false(h.keep_alive);
  assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &h, b), 0);
  assert_false(h.keep_alive);
  assert_int_equal(h.content_length, -1);
  assert_int_equal(parse("GET / HTTP/1.0\nConnection: keep-alive\n\n", &h, b), 0);
  assert_true(h.keep_alive);
}

static void test_bad(void **st) {
  (void)st;
  lorem_http_head h;
  char b[8192];
  assert_int_equal(parse("\x16\x03\x01garbage\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET  / HTTP/1.1\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / HTTP/1.1 \r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / FTP/1.1\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &h, b), 505);
  assert_int_equal(parse("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &h, b), 400);
  assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h, b),
                   400);
  assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", &h, b),
                   400);
  assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &h, b), 411);
  /* more fields than LOREM_HTTP_HEADERS_MAX */
  size_t n = (size_t)snprintf(b, sizeof b, "GET / HTTP/1.1\r\n");
  for (int i = 0; i <= LOREM_HTTP_HEADERS_MAX; i++)
    n += (size_t)snprintf(b + n, sizeof b - n, "X-%d: y\r\n", i);
  snprintf(b + n, sizeof b - n, "\r\n");
  char copy[8192];
  assert_int_equal(parse(b, &h, copy), 431);
}

static long decode(const char *in, char *out) {
  long n = lorem_http_path_decode(in, strlen(in), out);
  if (n >= 0) out[n] = '\0';
  return n;
}

static void test_path_decode(void **st) {
  (void)st;
  char o[64];
  assert_int_equal(decode("/lorem/word/1/2", o), 15);
  assert_string_equal(o, "/lorem/word/1/2");
  assert_int_equal(decode("/lorem/%77ord/%31/2", o), 15);
  assert_string_equal(o, "/lorem/word/1/2");
  assert_int_equal(decode("/a%2fb%2Fc%20d+e", o), 10);
  assert_string_equal(o, "/a/b/c d+e");
  assert_int_equal(decode("%e2%82%AC", o), 3);
  assert_string_equal(o, "\xe2\x82\xac");
  assert_int_equal(decode("", o), 0);
  /* malformed: short, not hex, NUL */
  assert_int_equal(decode("/a%", o), -1);
  assert_int_equal(decode("/a%2", o), -1);
  assert_int_equal(decode("/a%zz", o), -1);
  assert_int_equal(decode("/a%2g", o), -1);
  assert_int_equal(decode("/a%00b", o), -1);
  /* a decoded '%' is not decoded again */
  assert_int_equal(decode("/%2541", o), 4);
  assert_string_equal(o, "/%41");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_end),
      cmocka_unit_test(test_ok),
      cmocka_unit_test(test_bad),
      cmocka_unit_test(test_path_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
