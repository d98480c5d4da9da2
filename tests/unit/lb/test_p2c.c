/* SPDX-License-Identifier: MIT */
/* P2C over peak-EWMA latency × load: a slow instance gets few calls, a
 * failing one fewer, a new one is tried, load counts go back to zero (summed
 * over the threads' lanes, and in every lane), with two threads picking at
 * once and with picks handed back on another thread than the picking one. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "lb_scenarios.h"
#include "lb/balancer_impl.h"

/* n calls; instance `bad` answers with `err` after bad_lat, the others
 * with 0 after 1 ms. Returns the calls `bad` got. */
static int feed(kitd_balancer *b, int n, int bad, int err, int64_t bad_lat) {
  int got = 0;
  for (int k = 0; k < n; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    int i = sc_index(&p);
    got += i == bad;
    kitd_balancer_done(b, &p, i == bad ? err : 0, i == bad ? bad_lat : 1000000);
  }
  return got;
}

/* Calls in flight on st, summed over its lanes. */
static int ist_inflight(const struct kitd__ist *st) {
  int n = 0;
  for (unsigned l = 0; l < KITD__IST_LANES; l++) n += atomic_load(kitd__ist_lane(st, l));
  return n;
}

/* Calls in flight over the current snapshot, summed over every lane, this
 * one pick included; and no lane of any instance is below 0 or holds more
 * than that (a count taken from the wrong lane would show as -1 in one and
 * +1 in another). */
static int pending_sum(kitd_balancer *b) {
  kitd_pick q;
  assert_int_equal(kitd_balancer_pick(b, &q), 0);
  const struct kitd__snap *snap = q.snap_;
  int pend = 0, lanes = 0;
  for (size_t i = 0; i < snap->count; i++) {
    pend += ist_inflight(snap->st[i]);
    for (unsigned l = 0; l < KITD__IST_LANES; l++) {
      int v = atomic_load(kitd__ist_lane(snap->st[i], l));
      assert_true(v >= 0);
      lanes += v;
    }
  }
  assert_int_equal(lanes, pend);
  assert_int_equal(pend, 1);
  assert_int_equal(atomic_load(kitd__ist_lane(snap->st[q.index], kitd__pick_lane(&q))), 1);
  kitd_balancer_done(b, &q, 0, -1);
  return pend;
}

static void test_slow_instance_share(void **st) {
  (void)st;
  /* One call at a time, and 8 in flight. */
  assert_true(sc_slow_share(20000, 1) <= 5.0);
  assert_true(sc_slow_share(20000, 8) <= 5.0);
}

static void test_failing_instance_avoided(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer_opts o;
  kitd_balancer_opts_init(&o);
  o.eject_consecutive = 0; /* P2C alone */
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, &o, &b), 0);
  /* Instance 0 refuses at once (a fast failure must not look fast). */
  assert_true(feed(b, 3000, 0, KITD_ECONNECT, 1000) < 3000 / 20);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_load_counts_balance(void **st) {
  (void)st;
  /* With no latencies, calls in flight decide: 6 held picks over 3
   * instances land 2, 2, 2 at most 3 on one. */
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, NULL, &b), 0);
  kitd_pick p[6];
  int cnt[3] = {0};
  for (int k = 0; k < 6; k++) {
    assert_int_equal(kitd_balancer_pick(b, &p[k]), 0);
    cnt[sc_index(&p[k])]++;
  }
  for (int i = 0; i < 3; i++) assert_true(cnt[i] <= 3);
  for (int k = 0; k < 6; k++) kitd_balancer_done(b, &p[k], 0, -1);
  assert_int_equal(pending_sum(b), 1);
  kitd_balancer_free(b);
  sc_close(&s);
}

static void test_state_survives_update(void **st) {
  (void)st;
  /* The slow instance's estimate stays when the set changes around it. */
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, NULL, &b), 0);
  feed(b, 300, 2, 0, 10000000);
  const char *more[] = {"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"};
  kitd_static_instancer_set(s.in, more, 4); /* plain records: same addresses stay */
  assert_true(feed(b, 1000, 2, 0, 10000000) < 50);
  kitd_balancer_free(b);
  sc_close(&s);
}

struct th {
  kitd_balancer *b;
  int n;
};

static void *picker(void *arg) {
  struct th *t = arg;
  for (int k = 0; k < t->n; k++) {
    kitd_pick p;
    if (kitd_balancer_pick(t->b, &p) != 0) return (void *)1;
    kitd_balancer_done(t->b, &p, k % 7 == 0 ? KITD_ECONNECT : 0, 1000 + k % 5000);
  }
  return NULL;
}

static void test_two_threads(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 4, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, NULL, &b), 0);
  struct th t = {b, 20000};
  pthread_t a, c;
  pthread_create(&a, NULL, picker, &t);
  pthread_create(&c, NULL, picker, &t);
  void *ra, *rc;
  pthread_join(a, &ra);
  pthread_join(c, &rc);
  assert_null(ra);
  assert_null(rc);
  assert_int_equal(pending_sum(b), 1);
  kitd_balancer_free(b);
  sc_close(&s);
}

/* Picks counted in one thread's lane and handed back on another thread:
 * done takes the count from the lane kept in the pick, so no lane drifts.
 * (A pick held in a hazard slot goes back on its own thread; one held by a
 * count, past the thread's KITD_PICK_FAST slots, may go back anywhere.) */
#define FAR 6
struct held {
  kitd_balancer *b;
  kitd_pick fast[KITD_PICK_FAST], far[FAR];
};

static void *hand_back_far(void *arg) {
  struct held *h = arg;
  for (int k = 0; k < FAR; k++) kitd_balancer_done(h->b, &h->far[k], 0, 1000000);
  return NULL;
}

/* Fill the thread's slots, then pick FAR more (held by a count), hand the
 * slot-held ones back here and leave the others to the caller. */
static void *pick_far(void *arg) {
  struct held *h = arg;
  for (int k = 0; k < KITD_PICK_FAST; k++)
    if (kitd_balancer_pick(h->b, &h->fast[k]) != 0) return (void *)1;
  for (int k = 0; k < FAR; k++)
    if (kitd_balancer_pick(h->b, &h->far[k]) != 0 || h->far[k].slot_ >= 0) return (void *)1;
  for (int k = 0; k < KITD_PICK_FAST; k++) kitd_balancer_done(h->b, &h->fast[k], 0, 1000000);
  return NULL;
}

static void test_done_on_another_thread(void **st) {
  (void)st;
  struct sc s;
  sc_open(&s, 3, NULL, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_p2c_new(s.ep, NULL, &b), 0);
  struct held h = {.b = b};
  for (int round = 0; round < 20; round++) {
    /* Picked on a new thread, handed back here... */
    pthread_t t;
    void *rc;
    pthread_create(&t, NULL, pick_far, &h);
    pthread_join(t, &rc);
    assert_null(rc);
    hand_back_far(&h);
    assert_int_equal(pending_sum(b), 1);
    /* ...and picked here, handed back on a new thread. */
    assert_null(pick_far(&h));
    pthread_create(&t, NULL, hand_back_far, &h);
    pthread_join(t, NULL);
    assert_int_equal(pending_sum(b), 1);
  }
  kitd_balancer_free(b);
  sc_close(&s);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(test_slow_instance_share), cmocka_unit_test(test_failing_instance_avoided),
      cmocka_unit_test(test_load_counts_balance), cmocka_unit_test(test_state_survives_update),
      cmocka_unit_test(test_two_threads),         cmocka_unit_test(test_done_on_another_thread),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
