/* SPDX-License-Identifier: MIT */
/* lib/etcd's encodings and configuration, without a server: base64, the
 * prefix's range end (shared/etcd-api.md section 4), int64s sent as
 * strings, instance values, options sized by _init. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"

static void test_base64(void **state) {
  (void)state;
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "/svc/web/"};
  const char *out[] = {"",         "Zg==",     "Zm8=",     "Zm9v",
                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "L3N2Yy93ZWIv"};
  for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
    char *e = kitd__b64_encode((const unsigned char *)in[i], strlen(in[i]));
    assert_string_equal(e, out[i]);
    unsigned char *d;
    size_t n;
    assert_int_equal(kitd__b64_decode(e, strlen(e), &d, &n), 0);
    assert_int_equal(n, strlen(in[i]));
    assert_memory_equal(d, in[i], n);
    free(d);
    free(e);
  }
  unsigned char bin[] = {0, 0xff, 0x10, 0x80};
  char *e = kitd__b64_encode(bin, sizeof bin);
  unsigned char *d;
  size_t n;
  assert_int_equal(kitd__b64_decode(e, strlen(e), &d, &n), 0);
  assert_int_equal(n, sizeof bin);
  assert_memory_equal(d, bin, n);
  free(d);
  free(e);
  assert_int_equal(kitd__b64_decode("a", 1, &d, &n), KITD_EPROTO);
  assert_int_equal(kitd__b64_decode("ab-_", 4, &d, &n), KITD_EPROTO);
  assert_int_equal(kitd__b64_decode("a b=", 4, &d, &n), KITD_EPROTO);
}

static void test_prefix_end(void **state) {
  (void)state;
  unsigned char out[16];
  size_t n = kitd__etcd_prefix_end((const unsigned char *)"/svc/web/", 9, out);
  assert_int_equal(n, 9);
  assert_memory_equal(out, "/svc/web0", 9);
  n = kitd__etcd_prefix_end((const unsigned char *)"a\xff", 2, out);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], 'b');
  n = kitd__etcd_prefix_end((const unsigned char *)"\xff\xff", 2, out);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], 0);
  n = kitd__etcd_prefix_end((const unsigned char *)"", 0, out);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], 0);
}

static void test_int(void **state) {
  (void)state;
  json_t *s = json_string("1234"), *i = json_integer(7), *bad = json_string("12x"),
         *e = json_string(""), *big = json_string("18272482900713161777");
  assert_int_equal(kitd__etcd_int(s, -1), 1234);
  assert_int_equal(kitd__etcd_int(i, -1), 7);
  assert_int_equal(kitd__etcd_int(bad, -1), -1);
  assert_int_equal(kitd__etcd_int(e, -1), -1);
  assert_int_equal(kitd__etcd_int(big, -1), -1); /* beyond int64: not a revision */
  assert_int_equal(kitd__etcd_int(NULL, 5), 5);
  json_decref(s);
  json_decref(i);
  json_decref(bad);
  json_decref(e);
  json_decref(big);
}

static int parse(const char *v, kitd_instance **out) {
  char why[128];
  *out = NULL;
  return kitd__etcd_parse_value(v, strlen(v), out, why, sizeof why);
}

static void test_values(void **state) {
  (void)state;
  kitd_instance *in;
  assert_int_equal(parse("10.0.0.1:80", &in), 0);
  assert_string_equal(kitd_instance_address(in), "10.0.0.1:80");
  kitd_instance_unref(in);
  assert_int_equal(parse(" host.example:8080\n", &in), 0);
  assert_string_equal(kitd_instance_address(in), "host.example:8080");
  kitd_instance_unref(in);
  assert_int_equal(parse("[::1]:443", &in), 0);
  kitd_instance_unref(in);
  assert_int_equal(parse("{\"address\":\"10.0.0.2:81\",\"weight\":5,\"tags\":[\"a\",\"b\"],"
                         "\"meta\":{\"k\":\"v\"},\"zone\":\"z1\"}",
                         &in),
                   0);
  assert_int_equal(kitd_instance_weight(in), 5);
  assert_int_equal(kitd_instance_tag_count(in), 2);
  assert_string_equal(kitd_instance_meta(in, "k"), "v");
  assert_string_equal(kitd_instance_zone(in), "z1");
  kitd_instance_unref(in);
  const char *bad[] = {"",
                       "   ",
                       "garbage",
                       "10.0.0.1",
                       "10.0.0.1:",
                       "10.0.0.1:0",
                       "10.0.0.1:65536",
                       "10.0.0.1:8a",
                       ":80",
                       "::1:80",
                       "a b:80",
                       "http://x:80",
                       "{",
                       "[1,2]",
                       "{\"address\":5}",
                       "{\"weight\":2}",
                       "{\"address\":\"x:1\",\"weight\":0}",
                       "{\"address\":\"x:1\",\"weight\":\"2\"}",
                       "{\"address\":\"x:1\",\"tags\":\"a\"}",
                       "{\"address\":\"x:1\",\"tags\":[1]}",
                       "{\"address\":\"x:1\",\"meta\":[]}",
                       "{\"address\":\"x:1\",\"meta\":{\"k\":1}}",
                       "{\"address\":\"x:1\",\"zone\":1}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    if (parse(bad[i], &in) != KITD_EPROTO) fail_msg("accepted: %s", bad[i]);
    assert_null(in);
  }
  char nul[] = "10.0.0.1:80\0x";
  char why[64];
  assert_int_equal(kitd__etcd_parse_value(nul, sizeof nul - 1, &in, why, sizeof why), KITD_EPROTO);
}

/* Every allocation failing in turn: ENOMEM or success, never a leak or a
 * half-built record. */
static void test_values_alloc_failures(void **state) {
  (void)state;
  const char *v = "{\"address\":\"10.0.0.2:81\",\"tags\":[\"a\"],\"meta\":{\"k\":\"v\"}}";
  for (long k = 0; k < 200; k++) {
    kitd__alloc_fail_after(k);
    kitd_instance *in = NULL;
    char why[64];
    int rc = kitd__etcd_parse_value(v, strlen(v), &in, why, sizeof why);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (rc == 0) {
      kitd_instance_unref(in);
      if (!fired) return;
    } else {
      assert_int_equal(rc, KITD_ENOMEM);
    }
  }
  fail_msg("never succeeded");
}

static void test_config(void **state) {
  (void)state;
  kitd_etcd *c = NULL;
  assert_int_equal(kitd_etcd_new(NULL, NULL, &c), 0);
  assert_string_equal(kitd_etcd_endpoint(c), "http://127.0.0.1:2379");
  kitd_etcd_free(c);

  kitd_etcd_opts o;
  kitd_etcd_opts_init(&o);
  assert_int_equal(o.size, sizeof o);
  o.endpoints = " http://a:1/ , https://[::1]:2379";
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), 0);
  assert_int_equal(c->nurls, 2);
  assert_string_equal(c->urls[0], "http://a:1");
  assert_string_equal(c->urls[1], "https://[::1]:2379");
  kitd_etcd *d = NULL;
  assert_int_equal(kitd__etcd_dup(c, &d), 0);
  assert_string_equal(d->urls[1], "https://[::1]:2379");
  kitd_etcd_free(d);
  kitd_etcd_free(c);

  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  o.endpoints = "127.0.0.1:2379";
  assert_int_equal(kitd_etcd_new(&o, &ctx, &c), KITD_ECONFIG);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "127.0.0.1:2379"));
  o.endpoints = "http://a:1,";
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), KITD_ECONFIG);
  o.endpoints = NULL;
  o.cert_file = "c.pem";
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), KITD_ECONFIG);
  o.cert_file = NULL;
  o.password = "p";
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), KITD_ECONFIG);
  o.password = NULL;
  o.size = 0; /* not from _init */
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), KITD_ECONFIG);
  /* An older, shorter struct: the missing fields keep their defaults. */
  kitd_etcd_opts_init(&o);
  o.size = offsetof(kitd_etcd_opts, user);
  o.endpoints = "http://b:2";
  o.max_body = 1; /* beyond the old size: ignored */
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), 0);
  assert_string_equal(kitd_etcd_endpoint(c), "http://b:2");
  assert_int_equal(c->max_body, KITD__ETCD_DEFAULT_MAX_BODY);
  kitd_etcd_free(c);
  kitd_etcd_free(NULL);

  kitd_etcd_instancer_opts io;
  kitd_etcd_instancer_opts_init(&io);
  assert_int_equal(io.size, sizeof io);
  kitd_etcd_registrar_opts ro;
  kitd_etcd_registrar_opts_init(&ro);
  assert_int_equal(ro.ttl_s, 10);
  assert_int_equal(kitd_etcd_new(NULL, NULL, &c), 0);
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "", NULL, NULL, &in), KITD_EINVAL);
  assert_int_equal(kitd_etcd_instancer_new(NULL, "/p/", NULL, NULL, &in), KITD_EINVAL);
  io.size = 1;
  assert_int_equal(kitd_etcd_instancer_new(c, "/p/", &io, NULL, &in), KITD_ECONFIG);
  kitd_etcd_registrar *r = NULL;
  assert_int_equal(kitd_etcd_registrar_new(c, "", "v", NULL, NULL, &r), KITD_EINVAL);
  assert_int_equal(kitd_etcd_registrar_new(c, "k", NULL, NULL, NULL, &r), KITD_EINVAL);
  kitd_etcd_registrar_free(NULL);
  kitd_etcd_free(c);
}

/* Constructors under allocation failure: KITD_ENOMEM, no leak. */
static void test_new_alloc_failures(void **state) {
  (void)state;
  kitd_etcd_opts o;
  kitd_etcd_opts_init(&o);
  o.endpoints = "http://127.0.0.1:1,http://127.0.0.1:2";
  o.user = "u";
  o.password = "p";
  o.ca_file = "ca.pem";
  for (long k = 0; k < 200; k++) {
    kitd__alloc_fail_after(k);
    kitd_etcd *c = NULL;
    int rc = kitd_etcd_new(&o, NULL, &c);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (rc == 0) {
      kitd_etcd *d = NULL;
      kitd__alloc_fail_after(0);
      assert_int_equal(kitd__etcd_dup(c, &d), KITD_ENOMEM);
      kitd__alloc_fail_after(-1);
      kitd_etcd_free(c);
      if (!fired) return;
    } else {
      assert_int_equal(rc, KITD_ENOMEM);
    }
  }
  fail_msg("never succeeded");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_prefix_end),
      cmocka_unit_test(test_int),
      cmocka_unit_test(test_values),
      cmocka_unit_test(test_values_alloc_failures),
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_new_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
