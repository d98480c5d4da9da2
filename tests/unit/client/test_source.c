/* SPDX-License-Identifier: MIT */
/* Source strings: the parser's good and bad forms, and the instancers
 * kitd_source_instancer_new() makes from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/source_impl.h"
#include "kitd/ctx.h"
#include "kitd/error.h"
#include "kitd/instancer.h"
#include "kitd/source.h"

static void good(const char *s, enum kitd__source_kind kind, const char *host, const char *name) {
  struct kitd__source src;
  char *detail = NULL;
  int rc = kitd__source_parse(s, &src, &detail);
  if (rc) fail_msg("'%s': %s", s, detail ? detail : "?");
  assert_null(detail);
  assert_int_equal(src.kind, kind);
  if (host) assert_string_equal(src.host, host);
  else assert_null(src.host);
  assert_string_equal(src.name, name);
  kitd__source_clear(&src);
}

/* `want` is a piece the detail must hold. */
static void bad(const char *s, const char *want) {
  struct kitd__source src;
  char *detail = NULL;
  assert_int_equal(kitd__source_parse(s, &src, &detail), KITD_EINVAL);
  assert_non_null(detail);
  if (!strstr(detail, want)) fail_msg("'%s': detail [%s] lacks [%s]", s, detail, want);
  free(detail);
}

static void test_good(void **state) {
  (void)state;
  good("lorem", KITD__SOURCE_CONSUL, NULL, "lorem");
  good("consul://127.0.0.1:8500/lorem", KITD__SOURCE_CONSUL, "127.0.0.1:8500", "lorem");
  good("CONSUL://consul.local:8500/lorem", KITD__SOURCE_CONSUL, "consul.local:8500", "lorem");
  good("consul:///lorem", KITD__SOURCE_CONSUL, NULL, "lorem");
  good("consul://[::1]:8500/lo%72em", KITD__SOURCE_CONSUL, "[::1]:8500", "lorem");
  good("etcd://127.0.0.1:2379/services/lorem/", KITD__SOURCE_ETCD, "127.0.0.1:2379",
       "/services/lorem/");
  good("dns+srv://127.0.0.1:5353/_lorem._tcp.test", KITD__SOURCE_DNS_SRV, "127.0.0.1:5353",
       "_lorem._tcp.test");
  good("dns+srv:///_lorem._tcp.service.consul", KITD__SOURCE_DNS_SRV, NULL,
       "_lorem._tcp.service.consul");
  good("file:///etc/lorem.list", KITD__SOURCE_FILE, NULL, "/etc/lorem.list");
  good("file://localhost/etc/lorem%20a.list", KITD__SOURCE_FILE, NULL, "/etc/lorem a.list");
}

static void test_consul_query(void **state) {
  (void)state;
  struct kitd__source src;
  char *detail = NULL;
  assert_int_equal(
      kitd__source_parse("consul://h:1/lorem?tag=v2&tag=eu%2D1&passing=0&dc=dc2", &src, &detail),
      0);
  assert_int_equal(src.ntags, 2);
  assert_string_equal(src.tags[0], "v2");
  assert_string_equal(src.tags[1], "eu-1");
  assert_int_equal(src.passing, 0);
  assert_string_equal(src.dc, "dc2");
  kitd__source_clear(&src);
  assert_int_equal(kitd__source_parse("consul:///lorem?passing=true", &src, &detail), 0);
  assert_int_equal(src.passing, 1);
  assert_int_equal(src.ntags, 0);
  kitd__source_clear(&src);
  assert_int_equal(kitd__source_parse("lorem", &src, &detail), 0);
  assert_int_equal(src.passing, -1);
  kitd__source_clear(&src);
}

static void test_bad(void **state) {
  (void)state;
  bad("", "empty source");
  bad("http://127.0.0.1/lorem", "unknown scheme 'http'");
  bad("zk://h:1/x", "unknown scheme 'zk'");
  bad("lorem service", "is not a source");
  bad("a/b", "is not a source");
  bad("consul://127.0.0.1:8500", "no path");
  bad("consul://127.0.0.1/lorem", "is not HOST:PORT");
  bad("consul://127.0.0.1:0/lorem", "is not HOST:PORT");
  bad("consul://127.0.0.1:65536/lorem", "is not HOST:PORT");
  bad("consul://::1:8500/lorem", "is not HOST:PORT");
  bad("consul://h:1/", "is not a service name");
  bad("consul://h:1/a/b", "is not a service name");
  bad("consul://h:1/lorem?tag", "is not KEY=VALUE");
  bad("consul://h:1/lorem?tag=", "empty tag=");
  bad("consul://h:1/lorem?passing=yes", "passing= takes 1 or 0");
  bad("consul://h:1/lorem?near=_agent", "unknown query key 'near'");
  bad("consul://h:1/lo%2", "bad % escape");
  bad("consul://h:1/lo%00rem", "bad % escape");
  bad("consul://h:1/lorem?tag=%zz", "bad % escape");
  bad("etcd:///prefix", "etcd:// needs HOST:PORT");
  bad("etcd://h:1/p?x=1", "only consul:// takes a query");
  bad("dns+srv://h:1/", "is not a DNS name");
  bad("dns+srv://h:1/_a._tcp/x", "is not a DNS name");
  bad("file://lorem.list", "no path after the host");
  bad("file://host/etc/x", "file:// takes an absolute path");
  bad("file:///", "no file path");
  bad("file:///a#b", "fragment");
}

static void test_long_source(void **state) {
  (void)state;
  /* No fixed buffer anywhere: a 64 kB service name parses whole. */
  size_t n = 65536;
  char *s = malloc(n + 32);
  assert_non_null(s);
  strcpy(s, "consul:///");
  memset(s + 10, 'x', n);
  s[10 + n] = '\0';
  struct kitd__source src;
  char *detail = NULL;
  assert_int_equal(kitd__source_parse(s, &src, &detail), 0);
  assert_int_equal(strlen(src.name), n);
  kitd__source_clear(&src);
  free(s);
}

static void test_new(void **state) {
  (void)state;
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_source_opts o;
  kitd_source_opts_init(&o);
  o.ctx = &ctx;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_source_instancer_new("gopher://h:1/x", &o, NULL, &in), KITD_EINVAL);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "unknown scheme 'gopher'"));
  assert_null(in);
  assert_int_equal(
      kitd_source_instancer_new("dns+srv://dns.example:53/_a._tcp.test", &o, NULL, &in),
      KITD_EINVAL);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "not a numeric DNS server address"));
  /* etcd: an instancer at once (the watch itself runs on its thread; with
   * nothing at port 1 it meets errors there, not here). */
  assert_int_equal(kitd_source_instancer_new("etcd://127.0.0.1:1/x", &o, NULL, &in), 0);
  assert_non_null(in);
  kitd_instancer_free(in);
  in = NULL;

  char dir[] = "/tmp/kitd-source-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128], src[160];
  snprintf(path, sizeof path, "%s/lorem.list", dir);
  snprintf(src, sizeof src, "file://%s", path);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("127.0.0.1:8001\n", f);
  fclose(f);
  assert_int_equal(kitd_source_instancer_new(src, &o, NULL, &in), 0);
  assert_int_equal(kitd_instancer_wait_ready(in, 5000), 0);
  kitd_instance **set = NULL;
  size_t n = 0;
  assert_int_equal(kitd_instancer_state(in, &set, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(kitd_instance_address(set[0]), "127.0.0.1:8001");
  kitd_instance_list_free(set, n);
  kitd_instancer_free(in);
  unlink(path);
  rmdir(dir);

  /* Consul and DNS instancers are made (their watches fail quietly
   * against closed ports here; the registries' own tests cover them). */
  in = NULL;
  assert_int_equal(kitd_source_instancer_new("consul://127.0.0.1:1/lorem?tag=a", NULL, NULL, &in),
                   0);
  assert_non_null(in);
  kitd_instancer_free(in);
  in = NULL;
  assert_int_equal(kitd_source_instancer_new("dns+srv://127.0.0.1:1/_a._tcp.test", NULL, NULL, &in),
                   0);
  assert_string_equal(kitd_instancer_describe(in), "SRV targets of '_a._tcp.test'");
  kitd_instancer_free(in);
  o.size = 1;
  assert_int_equal(kitd_source_instancer_new("lorem", &o, NULL, &in), KITD_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good), cmocka_unit_test(test_consul_query),
      cmocka_unit_test(test_bad),  cmocka_unit_test(test_long_source),
      cmocka_unit_test(test_new),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
