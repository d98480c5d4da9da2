/* SPDX-License-Identifier: MIT */
/* kitd__h1_parse_response, the fast path's HTTP/1.x answer parser: status
 * line, fields, Content-Length, chunked, 1xx, truncation, size bounds, bad
 * numbers, and bytes left over after the answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/h1.h"
#include "kitd/error.h"

static int parse(const char *s, size_t max_body, int eof, kitd__h1_resp *r) {
  kitd__h1_opts o = {.max_body = max_body, .eof = eof};
  return kitd__h1_parse_response(s, strlen(s), &o, r);
}

/* Parse, dechunk in a copy, and check the body. */
static void body_is(const char *s, const char *want) {
  kitd__h1_resp r;
  assert_int_equal(parse(s, 1 << 20, 0, &r), 1);
  char *b = strdup(s);
  kitd__h1_dechunk(b, &r);
  assert_int_equal(r.body_len, strlen(want));
  assert_memory_equal(b + r.body_off, want, r.body_len);
  free(b);
}

static void test_content_length(void **s) {
  (void)s;
  kitd__h1_resp r;
  const char *a =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
  assert_int_equal(parse(a, 100, 0, &r), 1);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.minor, 1);
  assert_int_equal(r.close, 0);
  assert_int_equal(r.content_length, 2);
  assert_int_equal(r.body_len, 2);
  assert_int_equal(r.consumed, strlen(a));
  assert_memory_equal(a + r.body_off, "{}", 2);
  /* bare LF line ends, no reason phrase, case-insensitive names */
  assert_int_equal(parse("HTTP/1.1 404\ncontent-LENGTH:  3 \n\nabc", 100, 0, &r), 1);
  assert_int_equal(r.status, 404);
  assert_int_equal(r.body_len, 3);
  /* the same length twice is fine */
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 100, 0, &r), 1);
  /* empty body */
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 100, 0, &r), 1);
  assert_int_equal(r.body_len, 0);
}

static void test_incomplete(void **s) {
  (void)s;
  kitd__h1_resp r;
  const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123";
  assert_int_equal(parse(a, 100, 0, &r), 0);
  assert_int_equal(r.need, strlen(a) + 6); /* the whole body */
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Le", 100, 0, &r), 0);
  assert_int_equal(parse("HTTP/1.", 100, 0, &r), 0);
  assert_int_equal(parse("", 100, 0, &r), 0);
  /* truncated: the peer closed */
  assert_int_equal(parse(a, 100, 1, &r), KITD_EPROTO);
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Le", 100, 1, &r), KITD_EPROTO);
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 100, 1, &r),
      KITD_EPROTO);
  /* no framing: the body runs to the close */
  assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\nabc", 100, 0, &r), 0);
  assert_int_equal(parse("HTTP/1.1 200 OK\r\n\r\nabc", 100, 1, &r), 1);
  assert_int_equal(r.body_len, 3);
  assert_int_equal(r.close, 1);
}

static void test_chunked(void **s) {
  (void)s;
  body_is(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
      "hello world");
  /* hex sizes, extensions, trailers, bare LFs */
  body_is("HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\nA;x=y\r\n0123456789\r\n"
          "1 ; ext\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n",
          "0123456789!");
  body_is("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n", "abc");
  body_is("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "");
  kitd__h1_resp r;
  /* incomplete at every stage */
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 100, 0, &r), 0);
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r", 100, 0, &r), 0);
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", 100, 0, &r),
                   0);
  /* bad framing */
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100, 0, &r),
                   KITD_EPROTO);
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 100, 0, &r),
      KITD_EPROTO);
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 x\r\nab\r\n", 100, 0, &r),
      KITD_EPROTO);
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 100, 0, &r),
                   KITD_EPROTO);
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 100, 0,
            &r),
      KITD_EPROTO);
  /* over the cap: one big chunk, many small ones, an absurd size */
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 100, 0, &r),
                   KITD_ETOOBIG);
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n3\r\nabc\r\n",
                         5, 0, &r),
                   KITD_ETOOBIG);
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "ffffffffffffffffffffffff\r\n",
                         100, 0, &r),
                   KITD_ETOOBIG);
}

static void test_bad_numbers(void **s) {
  (void)s;
  kitd__h1_resp r;
  const char *bad[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1 099 OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "SSH-2.0-OpenSSH\r\n",
      "hello",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (parse(bad[i], 100, 0, &r) != KITD_EPROTO) fail_msg("accepted: %s", bad[i]);
  }
  assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", 100, 0, &r),
                   KITD_ETOOBIG);
}

static void test_bad_fields(void **s) {
  (void)s;
  kitd__h1_resp r;
  const char *bad[] = {
      "HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n",
      "HTTP/1.1 200 OK\r\n: empty-name\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA: b\x01\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
      "HTTP/1.1 200 O\x7fK\r\n\r\n",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (parse(bad[i], 100, 0, &r) != KITD_EPROTO) fail_msg("accepted: %s", bad[i]);
}

static void test_oversized_head(void **s) {
  (void)s;
  kitd__h1_resp r;
  size_t n = KITD__H1_MAX_HEADER + 100;
  char *b = malloc(n + 1);
  strcpy(b, "HTTP/1.1 200 OK\r\nX: ");
  size_t l = strlen(b);
  memset(b + l, 'a', n - l);
  b[n] = '\0';
  assert_int_equal(parse(b, 100, 0, &r), KITD_EPROTO); /* no end of line in 16 KiB */
  /* many small fields, each fine, too many together */
  l = strlen("HTTP/1.1 200 OK\r\n");
  for (size_t i = l; i + 6 < n; i += 6) memcpy(b + i, "A: b\r\n", 6);
  assert_int_equal(parse(b, 100, 0, &r), KITD_EPROTO);
  /* a smaller bound on request */
  kitd__h1_opts o = {.max_header = 32, .max_body = 100};
  const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(kitd__h1_parse_response(a, strlen(a), &o, &r), KITD_EPROTO);
  free(b);
}

static void test_connection(void **s) {
  (void)s;
  kitd__h1_resp r;
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 100, 0, &r), 1);
  assert_int_equal(r.close, 1);
  assert_int_equal(
      parse("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n", 100, 0,
            &r),
      1);
  assert_int_equal(r.close, 1);
  assert_int_equal(parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 100, 0, &r), 1);
  assert_int_equal(r.close, 1);
  assert_int_equal(
      parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 100, 0, &r),
      1);
  assert_int_equal(r.close, 0);
}

static void test_interim_and_no_body(void **s) {
  (void)s;
  kitd__h1_resp r;
  const char *a = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
                  "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  assert_int_equal(parse(a, 100, 0, &r), 1);
  assert_int_equal(r.status, 201);
  assert_memory_equal(a + r.body_off, "ok", 2);
  assert_int_equal(parse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 100, 0, &r), 1);
  assert_int_equal(r.body_len, 0);
  assert_int_equal(parse("HTTP/1.1 304 Not Modified\r\n\r\n", 100, 0, &r), 1);
  kitd__h1_opts o = {.max_body = 100, .head = 1};
  const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
  assert_int_equal(kitd__h1_parse_response(h, strlen(h), &o, &r), 1);
  assert_int_equal(r.body_len, 0);
  assert_int_equal(r.consumed, strlen(h));
}

static void test_leftover(void **s) {
  (void)s;
  kitd__h1_resp r;
  const char *a = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
  assert_int_equal(parse(a, 100, 0, &r), 1);
  assert_int_equal(r.consumed, strlen(a) - strlen("HTTP/1.1 200 OK\r\n"));
  const char *c = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nextra";
  assert_int_equal(parse(c, 100, 0, &r), 1);
  assert_int_equal(r.consumed, strlen(c) - 5);
  char *b = strdup(c);
  kitd__h1_dechunk(b, &r);
  assert_memory_equal(b + r.body_off, "ok", 2);
  assert_string_equal(b + r.consumed, "extra"); /* left alone */
  free(b);
}

/* Every prefix of a valid answer is "need more", never an error. */
static void test_every_prefix(void **s) {
  (void)s;
  const char *a = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                  "Connection: keep-alive\r\n\r\n5;a=b\r\nhello\r\n0\r\nT: 1\r\n\r\n";
  size_t n = strlen(a);
  kitd__h1_opts o = {.max_body = 100};
  kitd__h1_resp r;
  for (size_t i = 0; i < n; i++) {
    if (kitd__h1_parse_response(a, i, &o, &r) != 0) fail_msg("prefix %zu", i);
    assert_true(r.need > i && r.need <= n);
  }
  assert_int_equal(kitd__h1_parse_response(a, n, &o, &r), 1);
  assert_int_equal(r.body_len, 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_content_length), cmocka_unit_test(test_incomplete),
      cmocka_unit_test(test_chunked),        cmocka_unit_test(test_bad_numbers),
      cmocka_unit_test(test_bad_fields),     cmocka_unit_test(test_oversized_head),
      cmocka_unit_test(test_connection),     cmocka_unit_test(test_interim_and_no_body),
      cmocka_unit_test(test_leftover),       cmocka_unit_test(test_every_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
