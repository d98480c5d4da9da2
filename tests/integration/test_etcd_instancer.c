/* SPDX-License-Identifier: MIT */
/* The etcd instancer against a real etcd started by the test: go-kit's
 * sd/etcdv3 scenarios (initial set, changes propagate) plus the faults: a
 * value that is no address, etcd killed and restarted while watched, and a
 * compaction past the watcher's revision while it is disconnected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "etcd/etcd_impl.h"
#include "kitd/source.h"
#include "etcd_common.h"

static kitd_instancer *watch(const char *prefix, int64_t backoff_ms, loglines *ll, kitd_logger **lg,
                             rec *r) {
  kitd_etcd *c = etcd_client(&srv);
  assert_non_null(c);
  assert_int_equal(kitd_logger_new(KITD_LOG_DEBUG, log_keep, ll, KITD_LOG_LOGFMT, lg), 0);
  kitd_etcd_instancer_opts o;
  kitd_etcd_instancer_opts_init(&o);
  if (backoff_ms) o.backoff_min_ms = o.backoff_max_ms = backoff_ms;
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, prefix, &o, *lg, &in), 0);
  kitd_etcd_free(c); /* the instancer copied it */
  assert_int_equal(kitd_instancer_wait_ready(in, 10000 * kt_scale()), 0);
  if (r) assert_int_equal(kitd_instancer_subscribe(in, on_event, r), 0);
  return in;
}

static void done(kitd_instancer *in, kitd_logger *lg, rec *r, loglines *ll) {
  kitd_instancer_free(in);
  kitd_logger_free(lg);
  if (r) rec_clear(r);
  free(ll->all);
  pthread_mutex_destroy(&ll->mu);
}

/* go-kit TestInstancer: the keys already there are the first set, with
 * the attributes of a JSON value. */
static void test_initial_set(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/init/a", "10.0.0.1:80") > 0);
  assert_true(etcd_server_put(&srv, "/svc/init/b",
                              "{\"address\":\"10.0.0.2:81\",\"weight\":3,\"tags\":[\"v2\"],"
                              "\"meta\":{\"zone\":\"eu\"}}") > 0);
  assert_true(etcd_server_put(&srv, "/svc/initx", "10.0.0.9:80") > 0); /* outside */
  loglines ll = {.mu = PTHREAD_MUTEX_INITIALIZER};
  kitd_logger *lg;
  kitd_instancer *in = watch("/svc/init/", 0, &ll, &lg, NULL);
  kitd_instance **set;
  size_t n;
  assert_int_equal(kitd_instancer_state(in, &set, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(kitd_instance_address(set[0]), "10.0.0.1:80");
  assert_int_equal(kitd_instance_weight(set[0]), 1);
  assert_string_equal(kitd_instance_address(set[1]), "10.0.0.2:81");
  assert_int_equal(kitd_instance_weight(set[1]), 3);
  assert_true(kitd_instance_has_tag(set[1], "v2"));
  assert_string_equal(kitd_instance_meta(set[1], "zone"), "eu");
  assert_string_equal(kitd_instancer_describe(in), "instances under etcd prefix '/svc/init/'");
  kitd_instance_list_free(set, n);
  done(in, lg, NULL, &ll);
}

/* go-kit: a put and a delete reach the subscriber. */
static void test_changes_propagate(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/chg/a", "10.1.0.1:80") > 0);
  loglines ll = {.mu = PTHREAD_MUTEX_INITIALIZER};
  kitd_logger *lg;
  rec r;
  rec_init(&r);
  kitd_instancer *in = watch("/svc/chg/", 0, &ll, &lg, &r);
  assert_true(rec_wait(&r, "10.1.0.1:80", 2000));
  assert_true(etcd_server_put(&srv, "/svc/chg/b", "10.1.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.1.0.1:80,10.1.0.2:80", 3000));
  assert_true(etcd_server_del(&srv, "/svc/chg/a") > 0);
  assert_true(rec_wait(&r, "10.1.0.2:80", 3000));
  /* A changed value replaces the instance of that key. */
  assert_true(etcd_server_put(&srv, "/svc/chg/b", "10.1.0.3:80") > 0);
  assert_true(rec_wait(&r, "10.1.0.3:80", 3000));
  assert_true(etcd_server_del(&srv, "/svc/chg/b") > 0);
  assert_true(rec_wait(&r, "", 3000));
  /* Idle: the open stream is all; no request goes out. */
  unsigned long before = kitd__etcd_http_count();
  kt_sleep_ms(2000);
  assert_int_equal(kitd__etcd_http_count(), before);
  done(in, lg, &r, &ll);
}

/* The same watch named by a source string, as kitd-watch and the client
 * options take it. */
static void test_source_string(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/src/a", "10.4.0.1:80") > 0);
  char source[128];
  snprintf(source, sizeof source, "etcd://127.0.0.1:%d/svc/src/", srv.client_port);
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_source_instancer_new(source, NULL, NULL, &in), 0);
  assert_int_equal(kitd_instancer_wait_ready(in, 10000 * kt_scale()), 0);
  rec r;
  rec_init(&r);
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &r), 0);
  assert_true(rec_wait(&r, "10.4.0.1:80", 2000));
  assert_true(etcd_server_put(&srv, "/svc/src/b", "10.4.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.4.0.1:80,10.4.0.2:80", 3000));
  kitd_instancer_unsubscribe(in, on_event, &r);
  kitd_instancer_free(in);
  rec_clear(&r);
}

/* Several endpoints: a dead first one is skipped. */
static void test_second_endpoint(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/two/a", "10.5.0.1:80") > 0);
  char list[256];
  snprintf(list, sizeof list, "http://127.0.0.1:1,%s", srv.url);
  kitd_etcd_opts o;
  kitd_etcd_opts_init(&o);
  o.endpoints = list;
  kitd_etcd *c = NULL;
  assert_int_equal(kitd_etcd_new(&o, NULL, &c), 0);
  kitd_instancer *in = NULL;
  assert_int_equal(kitd_etcd_instancer_new(c, "/svc/two/", NULL, NULL, &in), 0);
  kitd_etcd_free(c);
  rec r;
  rec_init(&r);
  assert_int_equal(kitd_instancer_subscribe(in, on_event, &r), 0);
  assert_true(rec_wait(&r, "10.5.0.1:80", 5000));
  assert_true(etcd_server_put(&srv, "/svc/two/b", "10.5.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.5.0.1:80,10.5.0.2:80", 3000));
  assert_int_equal(rec_errors(&r), 0); /* the dead one was passed over */
  kitd_instancer_free(in);
  rec_clear(&r);
}

/* A value that is not an address is logged and skipped; the rest stays. */
static void test_bad_value_skipped(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/bad/a", "10.2.0.1:80") > 0);
  assert_true(etcd_server_put(&srv, "/svc/bad/b", "not an address") > 0);
  loglines ll = {.mu = PTHREAD_MUTEX_INITIALIZER};
  kitd_logger *lg;
  rec r;
  rec_init(&r);
  kitd_instancer *in = watch("/svc/bad/", 0, &ll, &lg, &r);
  assert_true(rec_wait(&r, "10.2.0.1:80", 2000));
  assert_true(log_has(&ll, "value skipped"));
  assert_true(log_has(&ll, "/svc/bad/b"));
  assert_true(etcd_server_put(&srv, "/svc/bad/c", "{\"weight\":2}") > 0);
  assert_true(etcd_server_put(&srv, "/svc/bad/d", "10.2.0.4:99999") > 0);
  assert_true(etcd_server_put(&srv, "/svc/bad/e", "10.2.0.5:80") > 0);
  assert_true(rec_wait(&r, "10.2.0.1:80,10.2.0.5:80", 3000));
  /* A key whose bad value turns good joins; a good one turning bad leaves. */
  assert_true(etcd_server_put(&srv, "/svc/bad/b", "10.2.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.2.0.1:80,10.2.0.2:80,10.2.0.5:80", 3000));
  assert_true(etcd_server_put(&srv, "/svc/bad/a", "garbage") > 0);
  assert_true(rec_wait(&r, "10.2.0.2:80,10.2.0.5:80", 3000));
  assert_int_equal(rec_errors(&r), 0);
  done(in, lg, &r, &ll);
}

/* etcd killed (-9) and restarted while watched: the set stays during the
 * outage (error events carry it), changes made after the restart are seen,
 * and no set is delivered twice in a row. */
static void test_kill_restart(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/kill/a", "10.3.0.1:80") > 0);
  loglines ll = {.mu = PTHREAD_MUTEX_INITIALIZER};
  kitd_logger *lg;
  rec r;
  rec_init(&r);
  kitd_instancer *in = watch("/svc/kill/", 0, &ll, &lg, &r);
  /* Seen through the watch stream: it is open when etcd dies. */
  assert_true(etcd_server_put(&srv, "/svc/kill/b", "10.3.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.3.0.1:80,10.3.0.2:80", 3000));
  etcd_server_kill(&srv);
  assert_true(rec_wait_error(&r, 5000));
  char last[256];
  rec_last(&r, last, sizeof last);
  assert_non_null(strstr(last, ":10.3.0.1:80,10.3.0.2:80")); /* kept */
  kitd_instance **set;
  size_t n;
  assert_true(kitd_instancer_state(in, &set, &n) < 0);
  assert_int_equal(n, 2);
  kitd_instance_list_free(set, n);
  kt_sleep_ms(500); /* a few reconnect attempts while down: no hot loop */
  int errs_down = r.n;
  assert_int_equal(etcd_server_restart(&srv), 0);
  assert_true(etcd_server_put(&srv, "/svc/kill/c", "10.3.0.3:80") > 0);
  assert_true(etcd_server_del(&srv, "/svc/kill/a") > 0);
  assert_true(rec_wait(&r, "10.3.0.2:80,10.3.0.3:80", 10000));
  assert_true(errs_down < 40);
  /* No duplicate: each good set appears once after its change. */
  pthread_mutex_lock(&r.mu);
  for (int i = 1; i < r.n; i++)
    if (r.ev[i][0] != '!') assert_string_not_equal(r.ev[i], r.ev[i - 1]);
  pthread_mutex_unlock(&r.mu);
  assert_int_equal(rec_count(&r, "10.3.0.2:80,10.3.0.3:80"), 1);
  assert_true(log_has(&ll, "watch recovered"));
  done(in, lg, &r, &ll);
}

/* While the watcher is disconnected (etcd restarted, watcher in a long
 * backoff), keys change and the history is compacted past the watcher's
 * revision: it lists the prefix again and ends with the right set. */
static void test_compaction_resync(void **state) {
  (void)state;
  assert_true(etcd_server_put(&srv, "/svc/cmp/a", "10.4.0.1:80") > 0);
  loglines ll = {.mu = PTHREAD_MUTEX_INITIALIZER};
  kitd_logger *lg;
  rec r;
  rec_init(&r);
  /* Backoff [5 s, 10 s]: etcd is back (about 2 s) well before the watch. */
  kitd_instancer *in = watch("/svc/cmp/", 10000, &ll, &lg, &r);
  assert_true(etcd_server_put(&srv, "/svc/cmp/b", "10.4.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.4.0.1:80,10.4.0.2:80", 3000));
  etcd_server_kill(&srv);
  assert_int_equal(etcd_server_restart(&srv), 0);
  assert_true(etcd_server_del(&srv, "/svc/cmp/a") > 0);
  assert_true(etcd_server_put(&srv, "/svc/cmp/c", "10.4.0.3:80") > 0);
  long rev = etcd_server_put(&srv, "/svc/other", "x");
  assert_true(rev > 0);
  char body[64];
  snprintf(body, sizeof body, "{\"revision\":\"%ld\",\"physical\":true}", rev);
  assert_int_equal(etcd_server_post(&srv, "/v3/kv/compaction", body, NULL, NULL), 200);
  assert_true(rec_wait(&r, "10.4.0.2:80,10.4.0.3:80", 25000));
  assert_true(log_has(&ll, "revision compacted, listing again"));
  done(in, lg, &r, &ll);
}

/* etcd comes back empty (a new data directory): its revisions start over,
 * below the watcher's. Watching from our old revision would hide every
 * change for a long time; the watcher sees it and lists again. */
static void test_history_reset(void **state) {
  (void)state;
  for (int i = 0; i < 30; i++) /* push the revision well past a fresh one */
    assert_true(etcd_server_put(&srv, "/svc/rst/a", "10.6.0.1:80") > 0);
  loglines ll = {.mu = PTHREAD_MUTEX_INITIALIZER};
  kitd_logger *lg;
  rec r;
  rec_init(&r);
  kitd_instancer *in = watch("/svc/rst/", 0, &ll, &lg, &r);
  assert_true(rec_wait(&r, "10.6.0.1:80", 2000));
  assert_int_equal(etcd_server_wipe(&srv), 0);
  assert_true(etcd_server_put(&srv, "/svc/rst/b", "10.6.0.2:80") > 0);
  assert_true(rec_wait(&r, "10.6.0.2:80", 10000));
  assert_true(log_has(&ll, "etcd revision went back, listing again"));
  done(in, lg, &r, &ll);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_initial_set),
      cmocka_unit_test(test_changes_propagate),
      cmocka_unit_test(test_source_string),
      cmocka_unit_test(test_bad_value_skipped),
      cmocka_unit_test(test_second_endpoint),
      cmocka_unit_test(test_kill_restart),
      cmocka_unit_test(test_compaction_resync),
      cmocka_unit_test(test_history_reset), /* last: it empties etcd */
  };
  return cmocka_run_group_tests(tests, etcd_setup, etcd_teardown);
}
