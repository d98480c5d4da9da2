/* The endpointer: factory only for new instances, endpoints closed exactly
 * once and never while picked, factory errors, invalidate-on-error, and
 * picks from several threads while the set changes. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kitd/kitd.h"
#include "../../support/fixture.h"

#define ALIVE 0xA11FEu
#define DEAD 0xDEADu

struct tep {
  unsigned magic;
  char inst[64];
};

static atomic_int made, closed;
static char fail_instance[64]; /* the factory fails for this one */
static atomic_int bad_magic;

static void tep_close(void *st) {
  struct tep *t = st;
  if (t->magic != ALIVE) atomic_fetch_add(&bad_magic, 1); /* closed twice */
  t->magic = DEAD;
  atomic_fetch_add(&closed, 1);
  free(t);
}

static int tep_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx;
  (void)req;
  struct tep *t = st;
  if (t->magic != ALIVE) atomic_fetch_add(&bad_magic, 1);
  *resp = t->inst;
  return 0;
}

static int factory(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *instance = kitd_instance_address(rec_);
  (void)arg;
  if (fail_instance[0] && strcmp(instance, fail_instance) == 0) return KITD_ECONNECT;
  struct tep *t = malloc(sizeof *t);
  t->magic = ALIVE;
  snprintf(t->inst, sizeof t->inst, "%s", instance);
  int rc = kitd_endpoint_new(tep_call, tep_close, t, out); /* takes t */
  if (!rc) atomic_fetch_add(&made, 1);
  return rc;
}

static int setup(void **st) {
  (void)st;
  atomic_store(&made, 0);
  atomic_store(&closed, 0);
  atomic_store(&bad_magic, 0);
  fail_instance[0] = '\0';
  return 0;
}

static void test_factory_only_for_new(void **st) {
  (void)st;
  const char *v[] = {"a:1", "b:2", "c:3"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 3, &in);
  kitd_endpointer *ep;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep), 0);
  assert_int_equal(made, 3);
  assert_int_equal(kitd_endpointer_count(ep), 3);
  const char *w[] = {"b:2", "c:3", "d:4"};
  kitd_static_instancer_set(in, w, 3);
  assert_int_equal(made, 4);   /* only d:4 is new */
  assert_int_equal(closed, 1); /* a:1 left and nobody held it */
  kitd_endpoint **list;
  size_t n;
  assert_int_equal(kitd_endpointer_endpoints(ep, &list, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(((struct tep *)kitd_endpoint_state(list[0]))->inst, "b:2");
  kitd_endpoint_list_free(list, n);
  kitd_endpointer_free(ep);
  assert_int_equal(closed, 4); /* every endpoint closed exactly once */
  assert_int_equal(bad_magic, 0);
  kitd_instancer_free(in);
}

static void test_removed_endpoint_waits_for_pick(void **st) {
  (void)st;
  const char *v[] = {"a:1"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 1, &in);
  kitd_endpointer *ep;
  kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep);
  kitd_balancer *b;
  kitd_balancer_round_robin_new(ep, 0, &b);
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  assert_string_equal(kitd_instance_address(p.instance), "a:1");
  const char *w[] = {"b:2"};
  kitd_static_instancer_set(in, w, 1);
  assert_int_equal(closed, 0); /* still picked */
  kitd_ctx c;
  kitd_ctx_init(&c);
  void *resp;
  assert_int_equal(kitd_endpoint_call(p.endpoint, &c, NULL, &resp), 0);
  assert_string_equal(resp, "a:1");
  kitd_balancer_done(b, &p, 0, -1);
  assert_int_equal(closed, 1); /* closed once its call finished */
  kitd_pick q;
  assert_int_equal(kitd_balancer_pick(b, &q), 0);
  assert_string_equal(kitd_instance_address(q.instance), "b:2");
  kitd_balancer_done(b, &q, 0, -1);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  assert_int_equal(bad_magic, 0);
}

static char log_buf[2048];
static void capture(void *arg, const kitd_log_record *rec_) {
  kitd_log_level l = rec_->level;
  char line[4096];
  kitd_log_format_record(rec_, KITD_LOG_LOGFMT, line, sizeof line);
  (void)arg;
  (void)l;
  snprintf(log_buf, sizeof log_buf, "%.2000s", line);
}

static void test_factory_error_skipped_and_retried(void **st) {
  (void)st;
  kitd_logger *lg;
  kitd_logger_new(KITD_LOG_DEBUG, capture, NULL, KITD_LOG_LOGFMT, &lg);
  snprintf(fail_instance, sizeof fail_instance, "bad:1");
  const char *v[] = {"bad:1", "good:2"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 2, &in);
  kitd_endpointer_opts o;
  kitd_endpointer_opts_init(&o);
  o.logger = lg;
  log_buf[0] = '\0';
  kitd_endpointer *ep;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, &o, &ep), 0);
  assert_int_equal(kitd_endpointer_count(ep), 1);
  /* the last line logged is the update; look for the factory warning */
  fail_instance[0] = '\0';
  const char *w[] = {"bad:1", "good:2", "other:3"};
  kitd_static_instancer_set(in, w, 3); /* still holds bad:1: tried again */
  assert_int_equal(kitd_endpointer_count(ep), 3);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_logger_free(lg);
}

static int warn_lines;
static void count_warn(void *arg, const kitd_log_record *rec_) {
  kitd_log_level l = rec_->level;
  char line[4096];
  kitd_log_format_record(rec_, KITD_LOG_LOGFMT, line, sizeof line);
  (void)arg;
  if (l == KITD_LOG_WARN && strstr(line, "instance=bad:1") && strstr(line, "err=ECONNECT"))
    warn_lines++;
}

static void test_factory_error_logged(void **st) {
  (void)st;
  kitd_logger *lg;
  kitd_logger_new(KITD_LOG_INFO, count_warn, NULL, KITD_LOG_LOGFMT, &lg);
  snprintf(fail_instance, sizeof fail_instance, "bad:1");
  const char *v[] = {"bad:1"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 1, &in);
  kitd_endpointer_opts o;
  kitd_endpointer_opts_init(&o);
  o.logger = lg;
  warn_lines = 0;
  kitd_endpointer *ep;
  kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, &o, &ep);
  assert_int_equal(warn_lines, 1);
  assert_int_equal(kitd_endpointer_count(ep), 0);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kitd_logger_free(lg);
}

static void test_invalidate_on_error(void **st) {
  (void)st;
  const char *v[] = {"a:1", "b:2"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 2, &in);
  kitd_endpointer_opts o;
  kitd_endpointer_opts_init(&o);
  o.invalidate_on_error_ms = 100;
  kitd_endpointer *ep;
  kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, &o, &ep);
  kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  kt_sleep_ms(50);
  assert_int_equal(kitd_endpointer_count(ep), 2); /* not before the timeout */
  kt_sleep_ms(100 + 200 * kt_scale());
  assert_int_equal(kitd_endpointer_count(ep), 0); /* after it */
  assert_int_equal(closed, 2);
  /* A good event brings them back. */
  kitd_static_instancer_set(in, v, 2);
  assert_int_equal(kitd_endpointer_count(ep), 2);
  /* A good event before the timeout cancels the invalidation. */
  kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  kt_sleep_ms(30);
  kitd_static_instancer_set(in, v, 2);
  kt_sleep_ms(150);
  assert_int_equal(kitd_endpointer_count(ep), 2);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

static void test_error_without_option_keeps_set(void **st) {
  (void)st;
  const char *v[] = {"a:1"};
  kitd_instancer *in;
  kitd_static_instancer_new(v, 1, &in);
  kitd_endpointer *ep;
  kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep);
  kitd_static_instancer_fail(in, KITD_EPROTO, "garbage");
  kt_sleep_ms(20);
  assert_int_equal(kitd_endpointer_count(ep), 1);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

/* --- picks from several threads while the set changes --- */
struct race {
  kitd_balancer *b;
  atomic_int stop;
  atomic_long picks;
};

static void *picker(void *arg) {
  struct race *r = arg;
  kitd_ctx c;
  kitd_ctx_init(&c);
  while (!atomic_load(&r->stop)) {
    kitd_pick p;
    int rc = kitd_balancer_pick(r->b, &p);
    if (rc == KITD_ENOENDPOINTS) continue;
    assert_int_equal(rc, 0);
    void *resp;
    kitd_endpoint_call(p.endpoint, &c, NULL, &resp);
    if (strcmp(resp, kitd_instance_address(p.instance)) != 0) atomic_fetch_add(&bad_magic, 1);
    kitd_balancer_done(r->b, &p, 0, -1);
    atomic_fetch_add(&r->picks, 1);
  }
  return NULL;
}

static void run_race(int random_balancer) {
  static const char *all[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80",
                              "10.0.0.5:80", "10.0.0.6:80", "10.0.0.7:80", "10.0.0.8:80"};
  kitd_instancer *in;
  kitd_static_instancer_new(all, 8, &in);
  kitd_endpointer *ep;
  kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep);
  struct race r = {0};
  if (random_balancer)
    kitd_balancer_random_new(ep, &r.b);
  else
    kitd_balancer_round_robin_new(ep, 0, &r.b);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, picker, &r);
  unsigned x = 12345;
  int64_t end = kitd_now_ns() + 300 * 1000000LL;
  int updates = 0;
  while (kitd_now_ns() < end && updates < 20000) {
    const char *sub[8];
    size_t n = 0;
    x = x * 1103515245 + 12345;
    for (int i = 0; i < 8; i++)
      if ((x >> (i + 8)) & 1) sub[n++] = all[i];
    kitd_static_instancer_set(in, sub, n);
    updates++;
  }
  atomic_store(&r.stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  assert_true(r.picks > 0);
  assert_true(updates > 10);
  kitd_balancer_free(r.b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  assert_int_equal(bad_magic, 0);
  assert_int_equal(made, closed); /* every endpoint closed exactly once */
}

static void test_picks_while_set_changes_rr(void **st) {
  (void)st;
  run_race(0);
}

static void test_picks_while_set_changes_random(void **st) {
  (void)st;
  run_race(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_factory_only_for_new, setup),
      cmocka_unit_test_setup(test_removed_endpoint_waits_for_pick, setup),
      cmocka_unit_test_setup(test_factory_error_skipped_and_retried, setup),
      cmocka_unit_test_setup(test_factory_error_logged, setup),
      cmocka_unit_test_setup(test_invalidate_on_error, setup),
      cmocka_unit_test_setup(test_error_without_option_keeps_set, setup),
      cmocka_unit_test_setup(test_picks_while_set_changes_rr, setup),
      cmocka_unit_test_setup(test_picks_while_set_changes_random, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
