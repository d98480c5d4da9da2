/* SPDX-License-Identifier: MIT */
/* kitd_consul: environment variables, address forms, setters, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "consul/consul_impl.h"
#include "kitd/consul.h"
#include "kitd/error.h"

static const char *const vars[] = {
    "CONSUL_HTTP_ADDR",   "CONSUL_HTTP_TOKEN",      "CONSUL_HTTP_TOKEN_FILE", "CONSUL_HTTP_AUTH",
    "CONSUL_HTTP_SSL",    "CONSUL_HTTP_SSL_VERIFY", "CONSUL_CACERT",          "CONSUL_CAPATH",
    "CONSUL_CLIENT_CERT", "CONSUL_CLIENT_KEY",      "CONSUL_TLS_SERVER_NAME", "CONSUL_NAMESPACE",
    "CONSUL_PARTITION"};

static int clear_env(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
  return 0;
}

static kitd_consul *new_ok(void) {
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *c = NULL;
  int e = kitd_consul_new(0, &ctx, &c);
  if (e) fprintf(stderr, "unexpected: %s: %s\n", kitd_err_name(e), kitd_ctx_detail(&ctx));
  assert_int_equal(e, 0);
  return c;
}

static void expect_econfig(const char *needle) {
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *c = (kitd_consul *)0x1;
  assert_int_equal(kitd_consul_new(0, &ctx, &c), KITD_ECONFIG);
  assert_ptr_equal(c, (kitd_consul *)0x1); /* untouched */
  if (!strstr(kitd_ctx_detail(&ctx), needle))
    fail_msg("detail \"%s\" lacks \"%s\"", kitd_ctx_detail(&ctx), needle);
}

static void test_defaults(void **state) {
  (void)state;
  kitd_consul *c = new_ok();
  assert_string_equal(kitd_consul_address(c), "http://127.0.0.1:8500");
  assert_null(c->token);
  assert_false(c->tls);
  assert_true(c->tls_verify);
  assert_int_equal(c->max_body, 64u << 20);
  assert_null(c->ns);
  assert_null(c->partition);
  kitd_consul_free(c);
  kitd_consul_free(NULL);
}

static void test_no_env_flag(void **state) {
  (void)state;
  setenv("CONSUL_HTTP_ADDR", "ftp://x", 1);
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_string_equal(kitd_consul_address(c), "http://127.0.0.1:8500");
  kitd_consul_free(c);
  assert_int_equal(kitd_consul_new(0x80, NULL, &c), KITD_EINVAL);
  assert_int_equal(kitd_consul_new(0, NULL, NULL), KITD_EINVAL);
}

static void addr_case(const char *in, const char *display, const char *prefix) {
  setenv("CONSUL_HTTP_ADDR", in, 1);
  kitd_consul *c = new_ok();
  assert_string_equal(kitd_consul_address(c), display);
  if (prefix) assert_string_equal(c->prefix, prefix);
  kitd_consul_free(c);
}

static void test_address_forms(void **state) {
  (void)state;
  addr_case("10.0.0.5:8500", "http://10.0.0.5:8500", "");
  addr_case("consul.local:80", "http://consul.local:80", "");
  addr_case("http://127.0.0.1:18500", "http://127.0.0.1:18500", "");
  addr_case("https://consul.example.com:8501", "https://consul.example.com:8501", "");
  addr_case("https://proxy:443/consul", "https://proxy:443/consul", "/consul");
  addr_case("http://proxy:8080/consul/", "http://proxy:8080/consul", "/consul");
  addr_case("[::1]:8500", "http://[::1]:8500", "");
  addr_case("http://[fe80::1]:8500", "http://[fe80::1]:8500", "");
  addr_case("consul.local", "http://consul.local", "");
  addr_case("unix:///run/consul/http.sock", "unix:///run/consul/http.sock", NULL);
}

static void test_address_errors(void **state) {
  (void)state;
  const char *bad[] = {
      "ftp://host:21",   "tcp://1.2.3.4:8500", "host:abc",        "host:0",  "host:65536",
      "::1:8500",        "http://:8500",       "unix://relative", "unix://", "http://host:8500?x=1",
      "http://[::1:8500"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    setenv("CONSUL_HTTP_ADDR", bad[i], 1);
    expect_econfig("CONSUL_HTTP_ADDR");
  }
  setenv("CONSUL_HTTP_ADDR", "gopher://x", 1);
  expect_econfig("scheme");
}

static void test_ssl_bool(void **state) {
  (void)state;
  const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
  for (size_t i = 0; i < 6; i++) {
    setenv("CONSUL_HTTP_SSL", yes[i], 1);
    kitd_consul *c = new_ok();
    assert_true(c->tls);
    assert_string_equal(kitd_consul_address(c), "https://127.0.0.1:8500");
    kitd_consul_free(c);
  }
  /* Once TLS is asked for, an http:// address does not turn it off. */
  setenv("CONSUL_HTTP_SSL", "true", 1);
  setenv("CONSUL_HTTP_ADDR", "http://10.0.0.1:8501", 1);
  kitd_consul *c = new_ok();
  assert_string_equal(kitd_consul_address(c), "https://10.0.0.1:8501");
  kitd_consul_free(c);
  setenv("CONSUL_HTTP_SSL", "0", 1);
  unsetenv("CONSUL_HTTP_ADDR");
  c = new_ok();
  assert_false(c->tls);
  kitd_consul_free(c);
  setenv("CONSUL_HTTP_SSL", "yes", 1);
  expect_econfig("CONSUL_HTTP_SSL");
  unsetenv("CONSUL_HTTP_SSL");
  setenv("CONSUL_HTTP_SSL_VERIFY", "false", 1);
  c = new_ok();
  assert_false(c->tls_verify);
  kitd_consul_free(c);
  setenv("CONSUL_HTTP_SSL_VERIFY", "nope", 1);
  expect_econfig("CONSUL_HTTP_SSL_VERIFY");
}

static void test_token_file_wins(void **state) {
  (void)state;
  char path[] = "/tmp/kitd-token-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *content = "  \n\tfile-secret-123 \n\n";
  assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
  close(fd);
  setenv("CONSUL_HTTP_TOKEN", "env-secret", 1);
  kitd_consul *c = new_ok();
  assert_string_equal(c->token, "env-secret");
  kitd_consul_free(c);
  setenv("CONSUL_HTTP_TOKEN_FILE", path, 1);
  c = new_ok();
  assert_string_equal(c->token, "file-secret-123");
  /* A setter overrides the environment. */
  assert_int_equal(kitd_consul_set_token(c, "set-secret"), 0);
  assert_string_equal(c->token, "set-secret");
  assert_int_equal(kitd_consul_set_token(c, NULL), 0);
  assert_null(c->token);
  assert_int_equal(kitd_consul_set_token_file(c, path, NULL), 0);
  assert_string_equal(c->token, "file-secret-123");
  kitd_consul_free(c);
  /* Unreadable and empty files are errors, and never show a token. */
  setenv("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/kitd-token", 1);
  expect_econfig("CONSUL_HTTP_TOKEN_FILE");
  fd = open(path, O_WRONLY | O_TRUNC);
  assert_int_equal(write(fd, " \n", 2), 2);
  close(fd);
  setenv("CONSUL_HTTP_TOKEN_FILE", path, 1);
  expect_econfig("no token");
  unlink(path);
}

static void test_auth_cert_server_name(void **state) {
  (void)state;
  setenv("CONSUL_HTTP_AUTH", "alice:s3cret:x", 1);
  setenv("CONSUL_TLS_SERVER_NAME", "consul.example.com:8501", 1);
  setenv("CONSUL_CACERT", "/etc/ca.pem", 1);
  setenv("CONSUL_CAPATH", "/etc/ca.d", 1);
  setenv("CONSUL_NAMESPACE", "team-a", 1);
  setenv("CONSUL_PARTITION", "part-1", 1);
  kitd_consul *c = new_ok();
  assert_string_equal(c->auth_user, "alice");
  assert_string_equal(c->auth_pass, "s3cret:x");
  assert_string_equal(c->server_name, "consul.example.com");
  assert_string_equal(c->cafile, "/etc/ca.pem");
  assert_string_equal(c->capath, "/etc/ca.d");
  assert_string_equal(c->ns, "team-a");
  assert_string_equal(c->partition, "part-1");
  assert_int_equal(kitd_consul_set_auth(c, "bob"), 0);
  assert_string_equal(c->auth_user, "bob");
  assert_string_equal(c->auth_pass, "");
  assert_int_equal(kitd_consul_set_tls_server_name(c, "other.name"), 0);
  assert_string_equal(c->server_name, "other.name");
  assert_int_equal(kitd_consul_set_namespace(c, NULL), 0);
  assert_null(c->ns);
  kitd_consul_free(c);
  setenv("CONSUL_CLIENT_CERT", "/etc/cert.pem", 1);
  expect_econfig("CONSUL_CLIENT_KEY");
  unsetenv("CONSUL_CLIENT_CERT");
  setenv("CONSUL_CLIENT_KEY", "/etc/key.pem", 1);
  expect_econfig("CONSUL_CLIENT_CERT");
  setenv("CONSUL_CLIENT_CERT", "/etc/cert.pem", 1);
  c = new_ok();
  assert_string_equal(c->cert, "/etc/cert.pem");
  assert_string_equal(c->key, "/etc/key.pem");
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_consul_set_client_cert(c, "/a", NULL, &ctx), KITD_ECONFIG);
  assert_string_equal(c->cert, "/etc/cert.pem"); /* kept */
  assert_int_equal(kitd_consul_set_client_cert(c, NULL, NULL, &ctx), 0);
  assert_null(c->cert);
  kitd_consul_free(c);
}

/* Compression is asked for only when the agent is not on this host. */
static void test_accept_encoding(void **state) {
  (void)state;
  kitd_consul *c = NULL;
  assert_int_equal(kitd_consul_new(KITD_CONSUL_NO_ENV, NULL, &c), 0);
  assert_null(kitd__consul_accept_encoding(c)); /* the default, 127.0.0.1:8500 */
  static const char *const local[] = {
      "127.0.0.1:8500", "http://127.9.8.7:1", "localhost:8500",         "http://LocalHost",
      "[::1]:8500",     "https://[::1]",      "unix:///run/consul.sock"};
  static const char *const remote[] = {"10.0.0.1:8500",      "http://consul.example:8500",
                                       "[2001:db8::1]:8500", "128.0.0.1",
                                       "localhost.example",  "[::2]:8500"};
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
    assert_int_equal(kitd_consul_set_address(c, local[i], NULL), 0);
    assert_null(kitd__consul_accept_encoding(c));
  }
  for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++) {
    assert_int_equal(kitd_consul_set_address(c, remote[i], NULL), 0);
    const char *e = kitd__consul_accept_encoding(c);
    assert_non_null(e);
    assert_string_equal(e, "");
  }
  kitd_consul_free(c);
}

static void test_setters(void **state) {
  (void)state;
  setenv("CONSUL_HTTP_ADDR", "10.1.1.1:8500", 1);
  kitd_consul *c = new_ok();
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_consul_set_address(c, "https://h:9/p", &ctx), 0);
  assert_string_equal(kitd_consul_address(c), "https://h:9/p");
  assert_int_equal(kitd_consul_set_address(c, "bogus://h", &ctx), KITD_ECONFIG);
  assert_string_equal(kitd_consul_address(c), "https://h:9/p"); /* kept */
  assert_int_equal(kitd_consul_set_tls(c, 0), 0);
  assert_string_equal(kitd_consul_address(c), "http://h:9/p");
  assert_int_equal(kitd_consul_set_max_body(c, 1000), 0);
  assert_int_equal(c->max_body, 1000);
  assert_int_equal(kitd_consul_set_max_body(c, 0), 0);
  assert_int_equal(c->max_body, 64u << 20);
  assert_int_equal(kitd_consul_set_datacenter(c, "dc2"), 0);
  assert_string_equal(c->dc, "dc2");
  kitd_consul *d = NULL;
  assert_int_equal(kitd_consul_set_token(c, "tok"), 0);
  assert_int_equal(kitd__consul_dup(c, &d), 0);
  assert_string_equal(d->token, "tok");
  assert_ptr_not_equal(d->token, c->token);
  assert_string_equal(kitd_consul_address(d), "http://h:9/p");
  kitd_consul_free(d);
  kitd_consul_free(c);
  assert_int_equal(kitd_consul_set_token(NULL, "x"), KITD_EINVAL);
}

static void test_bool_and_duration(void **state) {
  (void)state;
  assert_int_equal(kitd__consul_parse_bool("True"), 1);
  assert_int_equal(kitd__consul_parse_bool("F"), 0);
  assert_int_equal(kitd__consul_parse_bool("tRUE"), -1);
  assert_int_equal(kitd__consul_parse_bool(""), -1);
  char b[32];
  kitd__consul_duration(b, sizeof b, 300000);
  assert_string_equal(b, "5m");
  kitd__consul_duration(b, sizeof b, 2000);
  assert_string_equal(b, "2s");
  kitd__consul_duration(b, sizeof b, 1500);
  assert_string_equal(b, "1500ms");
  kitd__consul_duration(b, sizeof b, 0);
  assert_string_equal(b, "0s");
  b[0] = '\0';
  assert_int_equal(kitd__consul_escape(b, sizeof b, "a b/c?"), 0);
  assert_string_equal(b, "a%20b%2Fc%3F");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_defaults, clear_env),
      cmocka_unit_test_setup(test_no_env_flag, clear_env),
      cmocka_unit_test_setup(test_address_forms, clear_env),
      cmocka_unit_test_setup(test_address_errors, clear_env),
      cmocka_unit_test_setup(test_ssl_bool, clear_env),
      cmocka_unit_test_setup(test_token_file_wins, clear_env),
      cmocka_unit_test_setup(test_auth_cert_server_name, clear_env),
      cmocka_unit_test_setup(test_setters, clear_env),
      cmocka_unit_test_setup(test_accept_encoding, clear_env),
      cmocka_unit_test_setup(test_bool_and_duration, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
