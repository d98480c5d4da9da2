/* SPDX-License-Identifier: MIT */
/* kitd_directory: one client per name however many threads ask, idle and
 * LRU eviction, bad names, a flood of unknown names within the caps, and
 * calls racing evictions. The registry is a static instancer per name
 * (new_instancer), the transport the test factory. */
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/kitd.h"

static kt_factory g_f;
static atomic_int g_made;    /* instancers made */
static atomic_int g_slow_ms; /* new_instancer takes this long */

/* "users" and "billing" have one instance each; other names none. */
static int new_instancer(void *arg, const char *service, kitd_instancer **out) {
  (void)arg;
  atomic_fetch_add(&g_made, 1);
  int ms = atomic_load(&g_slow_ms);
  if (ms) kt_sleep_ms(ms);
  const char *one = !strcmp(service, "users")     ? "10.0.0.1:80"
                    : !strcmp(service, "billing") ? "10.0.0.2:80"
                                                  : "";
  *out = kt_static(one);
  return *out ? 0 : KITD_ENOMEM;
}

static kitd_directory *new_dir(int64_t idle_ms, unsigned max) {
  kt_factory_init(&g_f);
  atomic_store(&g_made, 0);
  atomic_store(&g_slow_ms, 0);
  kitd_directory_opts o;
  kitd_directory_opts_init(&o);
  o.new_instancer = new_instancer;
  o.idle_ms = idle_ms;
  o.max_clients = max;
  /* the default template: kitd_http, raw codec; no request goes out (the
   * tests call only names without instances) */
  kitd_directory *d = NULL;
  assert_int_equal(kitd_directory_new(&o, &d), 0);
  return d;
}

static void end_dir(kitd_directory *d) {
  kitd_directory_free(d);
  kt_factory_destroy(&g_f);
}

static int call(kitd_directory *d, const char *name) {
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, 1000 * kt_scale());
  return kitd_directory_call(d, name, &ctx, NULL, NULL);
}

static void test_cached(void **s) {
  (void)s;
  kitd_directory *d = new_dir(60000, 10);
  assert_int_equal(call(d, "nobody"), KITD_ENOENDPOINTS);
  assert_int_equal(call(d, "nobody"), KITD_ENOENDPOINTS);
  assert_int_equal(atomic_load(&g_made), 1);
  assert_int_equal(kitd_directory_count(d), 1);
  kitd_client *a = NULL, *b = NULL;
  assert_int_equal(kitd_directory_get(d, "users", &a), 0);
  assert_int_equal(kitd_directory_get(d, "users", &b), 0);
  assert_ptr_equal(a, b);
  assert_int_equal(kitd_client_count(a), 1);
  kitd_client_free(a);
  kitd_client_free(b);
  assert_int_equal(kitd_directory_count(d), 2);
  end_dir(d);
}

static void test_bad_names(void **s) {
  (void)s;
  kitd_directory *d = new_dir(60000, 10);
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  const char *bad[] = {"", "a/b", "/", big, "new\nline"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    assert_int_equal(kitd_directory_call(d, bad[i], &ctx, NULL, NULL), KITD_EINVAL);
    assert_non_null(strstr(kitd_ctx_detail(&ctx), "service name"));
  }
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_directory_call(d, NULL, &ctx, NULL, NULL), KITD_EINVAL);
  assert_int_equal(atomic_load(&g_made), 0);
  assert_int_equal(kitd_directory_count(d), 0);
  end_dir(d);
}

struct racer {
  kitd_directory *d;
  const char *name;
  kitd_client *got;
};

static void *get_one(void *arg) {
  struct racer *r = arg;
  kitd_directory_get(r->d, r->name, &r->got);
  return NULL;
}

static void test_one_client_per_name(void **s) {
  (void)s;
  kitd_directory *d = new_dir(60000, 10);
  atomic_store(&g_slow_ms, 20); /* the first maker is still at work when the others ask */
  pthread_t th[8];
  struct racer r[8];
  for (int i = 0; i < 8; i++) {
    r[i] = (struct racer){d, "users", NULL};
    pthread_create(&th[i], NULL, get_one, &r[i]);
  }
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&g_made), 1);
  for (int i = 0; i < 8; i++) {
    assert_ptr_equal(r[i].got, r[0].got);
    kitd_client_free(r[i].got);
  }
  end_dir(d);
}

static void test_idle_eviction(void **s) {
  (void)s;
  kitd_directory *d = new_dir(100, 10);
  assert_int_equal(call(d, "a"), KITD_ENOENDPOINTS);
  kitd_client *held = NULL;
  assert_int_equal(kitd_directory_get(d, "users", &held), 0);
  int64_t end = kt_ms() + 3000 * kt_scale();
  while (kitd_directory_count(d) && kt_ms() < end) kt_sleep_ms(10);
  assert_int_equal(kitd_directory_count(d), 0);
  /* a client a caller holds stays usable after its eviction */
  assert_int_equal(kitd_client_count(held), 1);
  kitd_client_free(held);
  /* asked again: a new client */
  assert_int_equal(call(d, "a"), KITD_ENOENDPOINTS);
  assert_int_equal(atomic_load(&g_made), 3);
  end_dir(d);
}

static void test_lru(void **s) {
  (void)s;
  kitd_directory *d = new_dir(100000, 3); /* tick every second */
  call(d, "a");
  call(d, "b");
  call(d, "c");
  kt_sleep_ms(1200);
  call(d, "a"); /* a, c newer than b? c and b share a tick: touch c too */
  call(d, "c");
  call(d, "d"); /* evicts b */
  assert_int_equal(kitd_directory_count(d), 3);
  int before = atomic_load(&g_made);
  call(d, "a");
  call(d, "c");
  call(d, "d");
  assert_int_equal(atomic_load(&g_made), before);
  call(d, "b");
  assert_int_equal(atomic_load(&g_made), before + 1);
  assert_int_equal(kitd_directory_count(d), 3);
  end_dir(d);
}

/* 100,000 distinct unknown names: never more than the cap, and memory
 * does not grow with the names (after the first few thousand have filled
 * every pool, the heap stays about where it was). */
static void test_flood(void **s) {
  (void)s;
  kitd_directory *d = new_dir(60000, 50);
  char name[32];
  size_t base = 0;
  int64_t end = kt_ms() + 100000 * kt_scale();
  int i;
  for (i = 0; i < 100000 && kt_ms() < end; i++) {
    snprintf(name, sizeof name, "unknown-%d", i);
    assert_int_equal(call(d, name), KITD_ENOENDPOINTS);
    if (i % 1000 == 0) assert_true(kitd_directory_count(d) <= 50);
    if (i == 5000) base = mallinfo2().uordblks;
  }
  assert_int_equal(i, 100000);
  size_t after = mallinfo2().uordblks;
  if (base) /* 0 under sanitizers, which keep their own heap */
    assert_true(after < base + 4 * 1024 * 1024);
  assert_true(kitd_directory_count(d) <= 50);
  end_dir(d);
}

/* Calls on cached names while the sweeper evicts and re-makes them. */
struct churn {
  kitd_directory *d;
  atomic_int *stop;
  long calls;
  int bad; /* the first code other than KITD_ENOENDPOINTS, or 0 */
  char detail[160];
};

/* No cmocka assert here: it may only fail on the test's own thread. */
static void *churn_calls(void *arg) {
  struct churn *c = arg;
  char name[16];
  while (!atomic_load(c->stop) && !c->bad) {
    snprintf(name, sizeof name, "n%ld", c->calls % 7);
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 1000 * kt_scale());
    int rc = kitd_directory_call(c->d, name, &ctx, NULL, NULL);
    if (rc != KITD_ENOENDPOINTS) {
      c->bad = rc;
      snprintf(c->detail, sizeof c->detail, "%s", kitd_ctx_detail(&ctx));
    }
    c->calls++;
  }
  return NULL;
}

static void test_calls_race_evictions(void **s) {
  (void)s;
  kitd_directory *d = new_dir(8, 4);
  atomic_int stop = 0;
  pthread_t th[3];
  struct churn c[3];
  for (int i = 0; i < 3; i++) {
    c[i] = (struct churn){d, &stop, i, 0, ""};
    pthread_create(&th[i], NULL, churn_calls, &c[i]);
  }
  kt_sleep_ms(500);
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    if (c[i].bad) fprintf(stderr, "thread %d: %s: %s\n", i, kitd_err_name(c[i].bad), c[i].detail);
    assert_int_equal(c[i].bad, 0);
  }
  assert_true(kitd_directory_count(d) <= 4);
  end_dir(d);
}

/* Fail the Nth allocation, N rising until success, while a directory is
 * made, makes a client (transport, endpointer, balancer, retry) and calls
 * it: each failure is KITD_ENOMEM, never a crash or a leak (the sanitizer
 * runs catch leaks). */
static void test_alloc_failures(void **s) {
  (void)s;
  int done = 0;
  for (long n = 0; n < 2000 && !done; n++) {
    kitd_directory_opts o;
    kitd_directory_opts_init(&o);
    o.new_instancer = new_instancer;
    kitd_directory *d = NULL;
    kitd__alloc_fail_after(n);
    int rc = kitd_directory_new(&o, &d);
    if (rc == 0) {
      kitd_ctx ctx;
      kitd_ctx_init(&ctx);
      kitd_ctx_set_timeout_ms(&ctx, 1000);
      kitd_client_req rq = {.method = "PUT", .content_type = "text/plain"}; /* a second variant */
      rc = kitd_directory_call(d, "nobody", &ctx, &rq, NULL);
      if (rc == KITD_ENOENDPOINTS) rc = 0;
      kitd_client *c = NULL;
      if (rc == 0) rc = kitd_directory_get(d, "users", &c);
      kitd_client_free(c);
      kitd_directory_free(d);
    }
    int failed = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (rc == 0 && !failed) done = 1;
    else if (rc) assert_int_equal(rc, KITD_ENOMEM);
  }
  assert_true(done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cached),
      cmocka_unit_test(test_bad_names),
      cmocka_unit_test(test_one_client_per_name),
      cmocka_unit_test(test_idle_eviction),
      cmocka_unit_test(test_lru),
      cmocka_unit_test(test_flood),
      cmocka_unit_test(test_calls_race_evictions),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
