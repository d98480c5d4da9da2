/* SPDX-License-Identifier: MIT */
/* etcd over TLS with a throwaway CA made by openssl in the test: the
 * instancer verifies the server with that CA; another CA, or none (the
 * system's store), is a TLS error; tls_verify = 0 turns the check off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "etcd_common.h"

static char dir[] = "/tmp/kitd-etcd-tls-XXXXXX";
static char *ca, *other, *cert, *key;

static char *path(const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p && snprintf(p, n, "%s/%s", dir, name) >= (int)n) p[0] = '\0';
  return p;
}

static int setup(void **state) {
  (void)state;
  if (!mkdtemp(dir)) return -1;
  ca = path("ca.pem");
  other = path("other.pem");
  cert = path("srv.pem");
  key = path("srv.key");
  size_t n = 3 * strlen(dir) + 1024;
  char *cmd = malloc(n);
  int k = snprintf(
      cmd, n,
      "cd '%s' && q() { openssl \"$@\" >/dev/null 2>&1; } && "
      "q req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "
      "/CN=kitd-test-ca && "
      "q req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj "
      "/CN=other-ca && "
      "q req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=localhost && "
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext.cnf && "
      "q x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 "
      "-extfile ext.cnf",
      dir);
  int rc = (k > 0 && (size_t)k < n && system(cmd) == 0) ? 0 : -1;
  free(cmd);
  if (rc) {
    fprintf(stderr, "openssl could not make the test certificates\n");
    return -1;
  }
  return etcd_setup_with(ca, cert, key, NULL);
}

static int teardown(void **state) {
  etcd_teardown(state);
  size_t n = strlen(dir) + 16;
  char *cmd = malloc(n);
  if (snprintf(cmd, n, "rm -rf '%s'", dir) < (int)n && system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
  free(cmd);
  free(ca);
  free(other);
  free(cert);
  free(key);
  return 0;
}

static int watch_with(const char *cafile, int verify, rec *r) {
  kitd_etcd_opts o;
  kitd_etcd_opts_init(&o);
  o.endpoints = srv.url;
  o.ca_file = cafile;
  o.tls_verify = verify;
  kitd_etcd *c = NULL;
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), 0);
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "/svc/tls/", NULL, NULL, &in), 0);
  kitd_etcd_free(c);
  int rc = kitd_instancer_wait_ready(in, 3000 * kt_scale());
  if (r) assert_int_equal(kitd_instancer_subscribe(in, on_event, r), 0);
  if (r && !rc) {
    assert_true(etcd_server_put(&srv, "/svc/tls/b", "10.7.0.2:80") > 0);
    assert_true(rec_wait(r, "10.7.0.1:80,10.7.0.2:80", 5000));
  }
  kitd_instancer_free(in);
  return rc;
}

static void test_tls(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/tls/a", "10.7.0.1:80") > 0);
  rec r;
  rec_init(&r);
  assert_int_equal(watch_with(ca, 1, &r), 0); /* the range and the watch stream */
  rec_clear(&r);
  assert_int_equal(watch_with(other, 1, NULL), KITD_ETLS);
  assert_int_equal(watch_with(NULL, 1, NULL), KITD_ETLS);
  assert_int_equal(watch_with(other, 0, NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
