/* SPDX-License-Identifier: MIT */
/* A balancer's per-instance pick counts (counted by snapshot position):
 * exact while the set changes under two picking threads, with picks held
 * across the changes, and an instance that leaves takes its series along
 * once nothing counts into its snapshot. A pick counts when it is made,
 * held in a hazard slot or by a count; a failure when it is handed back. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "kitd/metrics.h"
#include "lb_scenarios.h"

#define PICKS_PER_THREAD 200000

struct find {
  const char *name, *addr;
  double value;
  int found;
};
static void find_fn(void *arg, const kitd_metric *m) {
  struct find *f = arg;
  if (strcmp(m->name, f->name) || m->nlabels < 2 || strcmp(m->labels[1].value, f->addr)) return;
  f->found++;
  f->value = m->value;
}
/* The instance series `name` of addr (0 if absent; *found: how many). */
static double value_of(kitd_metrics *m, const char *name, const char *addr, int *found) {
  struct find f = {name, addr, 0, 0};
  assert_int_equal(kitd_metrics_walk(m, find_fn, &f), 0);
  *found = f.found;
  return f.value;
}
static double picks_of(kitd_metrics *m, const char *addr, int *found) {
  return value_of(m, "kitd_instance_picks_total", addr, found);
}

static void *picker(void *arg) {
  kitd_balancer *b = arg;
  for (int k = 0; k < PICKS_PER_THREAD; k++) {
    kitd_pick p, q;
    if (kitd_balancer_pick(b, &p) != 0) return (void *)1;
    /* every 100th pick held across the next one (and so across updates) */
    if (k % 100 == 0) {
      if (kitd_balancer_pick(b, &q) != 0) return (void *)1;
      kitd_balancer_done(b, &q, 0, -1);
    }
    kitd_balancer_done(b, &p, 0, -1);
  }
  return NULL;
}

/* The same three addresses, weights w: a new snapshot, the same instances. */
static void reweigh(struct sc *s, uint32_t w) {
  kitd_instance *r[3];
  for (int i = 0; i < 3; i++) {
    char a[32];
    snprintf(a, sizeof a, "10.0.0.%d:80", i);
    assert_int_equal(kitd_instance_new(a, &r[i]), 0);
    assert_int_equal(kitd_instance_set_weight(r[i], w + (uint32_t)i), 0);
  }
  assert_int_equal(kitd_static_instancer_set_records(s->in, r, 3), 0);
  for (int i = 0; i < 3; i++) kitd_instance_unref(r[i]);
}

/* Round robin over 3 instances, counting under "svc" in a new registry. */
static kitd_balancer *counted(struct sc *s, kitd_metrics **m) {
  sc_open(s, 3, NULL, NULL);
  assert_int_equal(kitd_metrics_new(m), 0);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(s->ep, KITD_RR_GLOBAL, &b), 0);
  assert_int_equal(kitd_balancer_set_metrics(b, *m, "svc"), 0);
  return b;
}

static void exact_across_updates(void **st) {
  (void)st;
  struct sc s;
  kitd_metrics *m;
  kitd_balancer *b = counted(&s, &m);
  pthread_t a, c;
  pthread_create(&a, NULL, picker, b);
  pthread_create(&c, NULL, picker, b);
  /* Updates while they pick, and walks that fold what they can. */
  for (uint32_t k = 0; k < 200; k++) {
    reweigh(&s, 1 + k % 3);
    if (k % 20 == 0) {
      int found;
      picks_of(m, "10.0.0.0:80", &found);
    }
  }
  void *ra, *rc;
  pthread_join(a, &ra);
  pthread_join(c, &rc);
  assert_null(ra);
  assert_null(rc);
  double sum = 0;
  for (int i = 0; i < 3; i++) {
    char addr[32];
    int found;
    snprintf(addr, sizeof addr, "10.0.0.%d:80", i);
    sum += picks_of(m, addr, &found);
    assert_int_equal(found, 1);
  }
  /* every pick, the held ones included, counted once */
  assert_true(sum == 2.0 * (PICKS_PER_THREAD + PICKS_PER_THREAD / 100));
  kitd_balancer_free(b);
  sc_close(&s);
  kitd_metrics_free(m);
}

static void leaving_instance_dropped(void **st) {
  (void)st;
  struct sc s;
  kitd_metrics *m;
  kitd_balancer *b = counted(&s, &m);
  for (int k = 0; k < 30; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    kitd_balancer_done(b, &p, 0, -1);
  }
  int found;
  assert_true(picks_of(m, "10.0.0.2:80", &found) == 10);
  assert_int_equal(found, 1);
  /* A pick held across the change keeps the old snapshot (and 10.0.0.2)
   * alive: its series stays until the pick is handed back. */
  kitd_pick held;
  assert_int_equal(kitd_balancer_pick(b, &held), 0);
  int held_on_2 = sc_index(&held) == 2;
  const char *two[] = {"10.0.0.0:80", "10.0.0.1:80"};
  assert_int_equal(kitd_static_instancer_set(s.in, two, 2), 0);
  for (int k = 0; k < 10; k++) {
    kitd_pick p;
    assert_int_equal(kitd_balancer_pick(b, &p), 0);
    kitd_balancer_done(b, &p, 0, -1);
  }
  picks_of(m, "10.0.0.2:80", &found);
  assert_int_equal(found, 1);
  kitd_balancer_done(b, &held, 0, -1);
  picks_of(m, "10.0.0.2:80", &found);
  assert_int_equal(found, 0);
  /* 30 + 1 held + 10 picks, of which 10 (11 with the held one) went to
   * 10.0.0.2: none lost by the folds */
  double sum = picks_of(m, "10.0.0.0:80", &found) + picks_of(m, "10.0.0.1:80", &found);
  assert_true(sum == 41 - 10 - held_on_2);
  kitd_balancer_free(b);
  sc_close(&s);
  kitd_metrics_free(m);
}

/* A walk between a pick and its done sees the pick; more picks held at
 * once than a thread has hazard slots (the rest held by a count) count
 * once each too, and a failure counts when handed back. */
static void counted_when_picked(void **st) {
  (void)st;
  struct sc s;
  kitd_metrics *m;
  kitd_balancer *b = counted(&s, &m);
  enum {
    HELD = KITD_PICK_FAST + 4
  };
  kitd_pick p[HELD];
  for (int round = 0; round < 3; round++) { /* the first makes the block */
    for (int k = 0; k < HELD; k++) assert_int_equal(kitd_balancer_pick(b, &p[k]), 0);
    double sum = 0;
    int found;
    for (int i = 0; i < 3; i++) {
      char addr[32];
      snprintf(addr, sizeof addr, "10.0.0.%d:80", i);
      sum += picks_of(m, addr, &found);
    }
    assert_true(sum == (double)HELD * (round + 1));
    for (int k = 0; k < HELD; k++) kitd_balancer_done(b, &p[k], k == 0 ? KITD_ECONNECT : 0, -1);
  }
  double fails = 0;
  for (int i = 0; i < 3; i++) {
    char addr[32];
    int found;
    snprintf(addr, sizeof addr, "10.0.0.%d:80", i);
    fails += value_of(m, "kitd_instance_failures_total", addr, &found);
  }
  assert_true(fails == 3);
  kitd_balancer_free(b);
  sc_close(&s);
  kitd_metrics_free(m);
}

int main(void) {
  const struct CMUnitTest t[] = {
      cmocka_unit_test(exact_across_updates),
      cmocka_unit_test(leaving_instance_dropped),
      cmocka_unit_test(counted_when_picked),
  };
  return cmocka_run_group_tests(t, NULL, NULL);
}
