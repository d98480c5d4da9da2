/* SPDX-License-Identifier: MIT */
/* etcd with auth on: the instancer and the registrar log in with a user and
 * password, a wrong password or a key outside the user's role is an ACL
 * error, and an expired token is replaced without the caller noticing
 * (etcd started with --auth-token-ttl 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "etcd/etcd_impl.h"
#include "etcd_common.h"

static void must(const char *path, const char *body, const char *token) {
  char *resp = NULL;
  int st = etcd_server_post(&srv, path, body, token, &resp);
  if (st != 200) fprintf(stderr, "%s %s: %d %s\n", path, body, st, resp ? resp : "");
  free(resp);
  assert_int_equal(st, 200);
}

static int setup(void **state) {
  static const char *const extra[] = {"--auth-token-ttl", "1", NULL};
  if (etcd_setup_with(NULL, NULL, NULL, extra)) return -1;
  /* Keys first, while auth is off. */
  if (etcd_server_put(&srv, "/svc/auth/a", "10.8.0.1:80") <= 0) return -1;
  if (etcd_server_put(&srv, "/other/a", "10.8.1.1:80") <= 0) return -1;
  must("/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"rootpw\"}", NULL);
  must("/v3/auth/role/add", "{\"name\":\"root\"}", NULL);
  must("/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}", NULL);
  must("/v3/auth/role/add", "{\"name\":\"svc\"}", NULL);
  /* /svc/ .. /svc0 */
  must("/v3/auth/role/grant",
       "{\"name\":\"svc\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"L3N2Yy8=\","
       "\"range_end\":\"L3N2YzA=\"}}",
       NULL);
  must("/v3/auth/user/add", "{\"name\":\"app\",\"password\":\"apppw\"}", NULL);
  must("/v3/auth/user/grant", "{\"user\":\"app\",\"role\":\"svc\"}", NULL);
  must("/v3/auth/enable", "{}", NULL);
  (void)state;
  return 0;
}

static kitd_etcd *client_as(const char *user, const char *password) {
  kitd_etcd_opts o;
  kitd_etcd_opts_init(&o);
  o.endpoints = srv.url;
  o.user = user;
  o.password = password;
  kitd_etcd *c = NULL;
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), 0);
  return c;
}

static void test_instancer_with_user(void **state) {
  (void)state;
  kitd_etcd *c = client_as("app", "apppw");
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "/svc/auth/", NULL, NULL, &in), 0);
  rec r;
  rec_init(&r);
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &r), 0);
  assert_true(rec_wait(&r, "10.8.0.1:80", 5000));
  /* The watch was created with the token: a change comes through it. */
  kitd_etcd_registrar *reg = NULL;
  assert_int_equal(kitd_etcd_registrar_new(c, "/svc/auth/b", "10.8.0.2:80", NULL, NULL, &reg), 0);
  assert_int_equal(kitd_etcd_registrar_wait_registered(reg, 5000 * kt_scale()), 0);
  assert_true(rec_wait(&r, "10.8.0.1:80,10.8.0.2:80", 5000));
  kitd_etcd_registrar_free(reg);
  assert_true(rec_wait(&r, "10.8.0.1:80", 5000));
  kitd_instancer_free(in);
  rec_clear(&r);
  kitd_etcd_free(c);
}

static void test_wrong_password(void **state) {
  (void)state;
  kitd_etcd *c = client_as("app", "wrong");
  kitd_etcd_instancer_opts o;
  kitd_etcd_instancer_opts_init(&o);
  o.backoff_min_ms = 200;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "/svc/auth/", &o, NULL, &in), 0);
  assert_int_equal(kitd_instancer_wait_ready(in, 1500), KITD_EACL);
  kitd_instance **set;
  size_t n;
  assert_int_equal(kitd_instancer_state(in, &set, &n), KITD_EACL);
  kitd_instance_list_free(set, n);
  kitd_instancer_free(in);
  kitd_etcd_free(c);
}

static void test_outside_role(void **state) {
  (void)state;
  kitd_etcd *c = client_as("app", "apppw");
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "/other/", NULL, NULL, &in), 0);
  assert_int_equal(kitd_instancer_wait_ready(in, 1500), KITD_EACL);
  kitd_instancer_free(in);
  kitd_etcd_free(c);
}

/* With --auth-token-ttl 1, an idle token dies; the next call gets a 401,
 * authenticates again and succeeds. */
static void test_token_refreshed(void **state) {
  (void)state;
  kitd_etcd *c = client_as("app", "apppw");
  kitd__etcd_client cl;
  assert_int_equal(kitd__etcd_client_init(&cl, c), 0);
  kitd_etcd_free(c);
  json_t *req = json_pack("{s:s}", "key", "L3N2Yy9hdXRoL2E="); /* /svc/auth/a */
  json_t *resp = NULL;
  char detail[KITD__ETCD_DETAIL];
  assert_int_equal(kitd__etcd_call(&cl, "/v3/kv/range", req, 0, &resp, NULL, detail), 0);
  json_decref(resp);
  assert_non_null(cl.token);
  char *first = strdup(cl.token);
  kt_sleep_ms(3500);
  int code = -1;
  int rc = kitd__etcd_call(&cl, "/v3/kv/range", req, 0, &resp, &code, detail);
  if (rc) fprintf(stderr, "second call: %s\n", detail);
  assert_int_equal(rc, 0);
  json_decref(resp);
  assert_non_null(cl.token);
  assert_string_not_equal(first, cl.token);
  free(first);
  json_decref(req);
  kitd__etcd_client_clear(&cl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_instancer_with_user),
      cmocka_unit_test(test_wrong_password),
      cmocka_unit_test(test_outside_role),
      cmocka_unit_test(test_token_refreshed),
  };
  return cmocka_run_group_tests(tests, setup, etcd_teardown);
}
