/* SPDX-License-Identifier: MIT */
/* The etcd registrar against a real etcd: go-kit's register / deregister,
 * a lease lost behind its back (registered again), and a registering
 * process killed with -9 (its key gone within the lease TTL). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd/etcd_impl.h"
#include "etcd_common.h"

/* The value of `key` ("" if absent) and its lease (0 if none). */
static void get(const char *key, char *val, size_t cap, long long *lease) {
  char *k = kitd__b64_encode((const unsigned char *)key, strlen(key));
  char body[512], *resp = NULL;
  snprintf(body, sizeof body, "{\"key\":\"%s\"}", k);
  free(k);
  assert_int_equal(etcd_server_post(&srv, "/v3/kv/range", body, NULL, &resp), 200);
  json_t *o = json_loads(resp, 0, NULL);
  free(resp);
  json_t *kv = json_array_get(json_object_get(o, "kvs"), 0);
  val[0] = '\0';
  if (lease) *lease = kitd__etcd_int(json_object_get(kv, "lease"), 0);
  const char *v = json_string_value(json_object_get(kv, "value"));
  if (v) {
    unsigned char *d;
    size_t n;
    assert_int_equal(kitd__b64_decode(v, strlen(v), &d, &n), 0);
    snprintf(val, cap, "%s", (char *)d);
    free(d);
  }
  json_decref(o);
}

static int wait_value(const char *key, const char *want, long ms) {
  char v[256];
  for (long t = 0; t < ms * kt_scale(); t += 50) {
    get(key, v, sizeof v, NULL);
    if (strcmp(v, want) == 0) return 1;
    kt_sleep_ms(50);
  }
  return 0;
}

static kitd_etcd_registrar *reg(const char *key, const char *value, int64_t ttl) {
  kitd_etcd *c = etcd_client(&srv);
  assert_non_null(c);
  kitd_etcd_registrar_opts o;
  kitd_etcd_registrar_opts_init(&o);
  o.ttl_s = ttl;
  kitd_etcd_registrar *r = NULL;
  assert_int_equal(kitd_etcd_registrar_new(c, key, value, &o, NULL, &r), 0);
  kitd_etcd_free(c);
  return r;
}

/* go-kit TestRegistrar: register puts the key (under a lease), an
 * instancer sees it, deregister (free) removes it at once. */
static void test_register_deregister(void **state) {
  (void)state;
  kitd_etcd_registrar *r = reg("/svc/reg/one", "10.9.0.1:80", 10);
  assert_int_equal(kitd_etcd_registrar_wait_registered(r, 5000 * kt_scale()), 0);
  int err = -1;
  assert_int_equal(kitd_etcd_registrar_registered(r, &err), 1);
  assert_int_equal(err, 0);
  char v[256];
  long long lease;
  get("/svc/reg/one", v, sizeof v, &lease);
  assert_string_equal(v, "10.9.0.1:80");
  assert_true(lease > 0);

  kitd_etcd *c = etcd_client(&srv);
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "/svc/reg/", NULL, NULL, &in), 0);
  kitd_etcd_free(c);
  rec rr;
  rec_init(&rr);
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &rr), 0);
  assert_true(rec_wait(&rr, "10.9.0.1:80", 5000));
  kitd_etcd_registrar_free(r);
  get("/svc/reg/one", v, sizeof v, NULL);
  assert_string_equal(v, "");
  assert_true(rec_wait(&rr, "", 3000));
  kitd_instancer_free(in);
  rec_clear(&rr);
  /* The lease is revoked too. */
  char body[64], *resp = NULL;
  snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", lease);
  assert_int_equal(etcd_server_post(&srv, "/v3/lease/timetolive", body, NULL, &resp), 200);
  assert_non_null(strstr(resp, "\"TTL\":\"-1\""));
  free(resp);
}

/* The lease revoked behind the registrar's back (or expired during an
 * outage): it grants a new one and puts the key again. */
static void test_lease_lost(void **state) {
  (void)state;
  kitd_etcd_registrar *r = reg("/svc/reg/two", "10.9.0.2:80", 3);
  assert_int_equal(kitd_etcd_registrar_wait_registered(r, 5000 * kt_scale()), 0);
  char v[256];
  long long lease;
  get("/svc/reg/two", v, sizeof v, &lease);
  char body[64];
  snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", lease);
  assert_int_equal(etcd_server_post(&srv, "/v3/lease/revoke", body, NULL, NULL), 200);
  get("/svc/reg/two", v, sizeof v, NULL);
  assert_string_equal(v, "");
  /* The next keepalive (TTL/3 = 1 s) finds it dead. */
  assert_true(wait_value("/svc/reg/two", "10.9.0.2:80", 5000));
  long long lease2;
  get("/svc/reg/two", v, sizeof v, &lease2);
  assert_true(lease2 > 0 && lease2 != lease);
  /* Kept alive past several TTLs. */
  kt_sleep_ms(4000);
  get("/svc/reg/two", v, sizeof v, NULL);
  assert_string_equal(v, "10.9.0.2:80");
  kitd_etcd_registrar_free(r);
}

/* A registering process killed with -9: nobody deregisters, and the key
 * is gone within the lease TTL (plus etcd's 500 ms expiry tick). */
static void test_killed_process(void **state) {
  (void)state;
  int fd[2];
  assert_int_equal(pipe(fd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fd[0]);
    kitd_etcd_registrar *r = reg("/svc/reg/kill", "10.9.0.3:80", 2);
    int ok = kitd_etcd_registrar_wait_registered(r, 10000) == 0;
    if (write(fd[1], ok ? "y" : "n", 1) != 1) _exit(2);
    for (;;) pause();
  }
  close(fd[1]);
  char c = 0;
  assert_int_equal(read(fd[0], &c, 1), 1);
  close(fd[0]);
  assert_int_equal(c, 'y');
  kt_sleep_ms(2500); /* some keepalives: the key lives past one TTL */
  char v[256];
  get("/svc/reg/kill", v, sizeof v, NULL);
  assert_string_equal(v, "10.9.0.3:80");
  int64_t t0 = kitd_now_ns();
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  assert_true(wait_value("/svc/reg/kill", "", 6000));
  int64_t ms = (kitd_now_ns() - t0) / 1000000;
  fprintf(stderr, "key gone %lld ms after kill -9 (TTL 2 s)\n", (long long)ms);
  assert_true(ms <= 2600 * kt_scale());
}

/* etcd down at first: the registrar retries with backoff and registers
 * once etcd is there. */
static void test_etcd_down_first(void **state) {
  (void)state;
  etcd_server_kill(&srv);
  kitd_etcd_registrar *r = reg("/svc/reg/late", "10.9.0.4:80", 5);
  assert_int_equal(kitd_etcd_registrar_wait_registered(r, 500), KITD_ETIMEDOUT);
  int err = 0;
  assert_int_equal(kitd_etcd_registrar_registered(r, &err), 0);
  assert_int_equal(err, KITD_ECONNECT);
  assert_int_equal(etcd_server_restart(&srv), 0);
  assert_int_equal(kitd_etcd_registrar_wait_registered(r, 10000 * kt_scale()), 0);
  assert_true(wait_value("/svc/reg/late", "10.9.0.4:80", 1000));
  kitd_etcd_registrar_free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_deregister),
      cmocka_unit_test(test_lease_lost),
      cmocka_unit_test(test_killed_process),
      cmocka_unit_test(test_etcd_down_first),
  };
  return cmocka_run_group_tests(tests, etcd_setup, etcd_teardown);
}
