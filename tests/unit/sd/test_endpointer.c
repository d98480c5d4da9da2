/* SPDX-License-Identifier: MIT */
/* The endpointer: factory only for new instances, endpoints closed exactly
 * once and never while picked, factory errors, invalidate-on-error, and
 * picks from several threads while the set changes. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/balancer.h"
#include "kitd/endpointer.h"
#include "kitd/error.h"
#include "kitd/instance.h"
#include "kitd/instancer.h"

static kitd_endpointer *new_ep(kitd_instancer *in, kt_factory *f, int64_t inval_ms,
                               kitd_logger *lg) {
  kitd_endpointer_opts o;
  kitd_endpointer_opts_init(&o);
  assert_int_equal(o.invalidate_on_error_ms, -1);
  o.invalidate_on_error_ms = inval_ms;
  o.logger = lg;
  kitd_endpointer *ep = NULL;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, f, NULL}, &o, &ep), 0);
  return ep;
}

/* A kt_* factory `f` and a static instancer `*in` over `csv`, and an
 * endpointer over them; close_ep frees them and checks every endpoint was
 * closed. */
static kitd_endpointer *open_ep(kt_factory *f, kitd_instancer **in, const char *csv,
                                int64_t inval_ms, kitd_logger *lg) {
  kt_factory_init(f);
  *in = kt_static(csv);
  return new_ep(*in, f, inval_ms, lg);
}

static void close_ep(kt_factory *f, kitd_instancer *in, kitd_endpointer *ep) {
  kitd_endpointer_free(ep);
  assert_int_equal(kt_live(f), 0);
  kitd_instancer_free(in);
  kt_factory_destroy(f);
}

static void test_factory_only_for_new(void **s) {
  (void)s;
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1,b:1,c:1", -1, NULL);
  assert_int_equal(atomic_load(&f.factory_calls), 3); /* subscribed: at once */
  assert_int_equal(kitd_endpointer_count(ep), 3);
  kitd_endpoint **l1, **l2;
  size_t n1, n2;
  assert_int_equal(kitd_endpointer_endpoints(ep, &l1, &n1), 0);
  assert_int_equal(kt_set(in, "b:1,c:1,d:1"), 0);
  assert_int_equal(atomic_load(&f.factory_calls), 4); /* only d */
  assert_int_equal(kitd_endpointer_endpoints(ep, &l2, &n2), 0);
  assert_int_equal(n2, 3);
  /* b and c are the same endpoint objects, in instance order. */
  assert_ptr_equal(l2[0], l1[1]);
  assert_ptr_equal(l2[1], l1[2]);
  assert_ptr_equal(kitd_endpoint_state(l2[2]), kt_find(&f, "d:1"));
  /* a was removed; our list reference keeps it open. */
  assert_int_equal(atomic_load(&kt_find(&f, "a:1")->closed), 0);
  kitd_endpoint_list_free(l1, n1);
  assert_int_equal(atomic_load(&kt_find(&f, "a:1")->closed), 1);
  kitd_endpoint_list_free(l2, n2);
  kitd_endpoint_list_free(NULL, 0);
  close_ep(&f, in, ep);
}

/* Set in's records to `addr` (n of them), each with a tag, meta and a
 * zone: the words the merge reads past a short address are then not all
 * zero in the record. */
static void set_tagged(kitd_instancer *in, const char *const *addr, size_t n) {
  kitd_instance *r[16];
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(kitd_instance_new(addr[i], &r[i]), 0);
    assert_int_equal(kitd_instance_add_tag(r[i], "t"), 0);
    assert_int_equal(kitd_instance_set_meta(r[i], "k", "v"), 0);
    assert_int_equal(kitd_instance_set_zone(r[i], "z"), 0);
  }
  assert_int_equal(kitd_static_instancer_set_records(in, r, n), 0);
  for (size_t i = 0; i < n; i++) kitd_instance_unref(r[i]);
}

/* The merge compares short addresses by words kept in the snapshot and
 * long ones (24 bytes and more) from the records: prefixes, the word
 * boundaries, bytes above 0x7f and long addresses must all keep their
 * endpoints, and only new addresses reach the factory. */
static void test_merge_keys(void **s) {
  (void)s;
  static const char *const a[] = {"h:1",
                                  "h:10",
                                  "h:100",
                                  "abcdefg:1",
                                  "abcdefgh:1",
                                  "abcdefghijklmno:1",
                                  "abcdefghijklmnop:1",
                                  "aaaaaaaaaaaaaaaaaaaa:23",
                                  "aaaaaaaaaaaaaaaaaaaa:240",
                                  "aaaaaaaaaaaaaaaaaaaaaaaaaa:300",
                                  "aaaaaaaaaaaaaaaaaaaaaaaaaa:3000",
                                  "h\xc3\xa9:1",
                                  "h~:1"};
  enum {
    NA = sizeof a / sizeof a[0]
  };
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "", -1, NULL);
  set_tagged(in, a, NA);
  assert_int_equal(kitd_endpointer_count(ep), NA);
  kt_ep *first[NA];
  for (size_t i = 0; i < NA; i++) assert_non_null(first[i] = kt_find(&f, a[i]));
  /* Every other one replaced by a neighbour, then the first set again. */
  char other[NA][64];
  const char *b[NA];
  size_t kept = 0;
  for (size_t i = 0; i < NA; i++) {
    snprintf(other[i], sizeof other[i], "%s%s", a[i], i % 2 ? "9" : "");
    b[i] = other[i];
    kept += i % 2 == 0;
  }
  set_tagged(in, b, NA);
  assert_int_equal(atomic_load(&f.factory_calls), (long)(NA + (NA - kept)));
  assert_int_equal(kitd_endpointer_count(ep), NA);
  for (size_t i = 0; i < NA; i += 2) assert_ptr_equal(kt_find(&f, a[i]), first[i]);
  set_tagged(in, a, NA);
  assert_int_equal(atomic_load(&f.factory_calls), (long)(NA + 2 * (NA - kept)));
  assert_int_equal(kitd_endpointer_count(ep), NA);
  for (size_t i = 0; i < NA; i += 2) assert_ptr_equal(kt_find(&f, a[i]), first[i]);
  /* The snapshot is in strcmp order. */
  kitd_endpoint **l;
  size_t n;
  assert_int_equal(kitd_endpointer_endpoints(ep, &l, &n), 0);
  assert_int_equal(n, NA);
  for (size_t i = 1; i < n; i++) {
    kt_ep *x = kitd_endpoint_state(l[i - 1]), *y = kitd_endpoint_state(l[i]);
    assert_true(strcmp(x->inst, y->inst) < 0);
  }
  kitd_endpoint_list_free(l, n);
  close_ep(&f, in, ep);
}

/* The merge against a model: 400 random sets over 48 addresses (short
 * ones, one of exactly 23 bytes, long ones), each address present or not,
 * its weight changed now and then, and now and then the same records
 * handed again. After each set: one entry per address in address order,
 * the endpoint of an address kept is the one it had, a new address got a
 * new one from the factory (and only those did), every entry pairs its
 * endpoint with the record of its address and its current weight, and the
 * endpoints of removed addresses are closed. With want_state, through a
 * weighted balancer, the outcome states travel with their entries too. */
#define MR_ADDRS 48
static void merge_random(int want_state) {
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "", -1, NULL);
  kitd_balancer *rr, *w = NULL;
  assert_int_equal(kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &rr), 0);
  if (want_state) assert_int_equal(kitd_balancer_weighted_new(ep, NULL, &w), 0);
  char addr[MR_ADDRS][64];
  for (int a = 0; a < MR_ADDRS; a++) {
    if (a % 3 == 0) snprintf(addr[a], sizeof addr[a], "10.0.0.%d:80", a);
    else if (a % 3 == 1) snprintf(addr[a], sizeof addr[a], "longer-host-name-%03d.example:8080", a);
    else snprintf(addr[a], sizeof addr[a], "node-%03d.example.com:80", a); /* 23 bytes */
  }
  assert_int_equal(strlen(addr[2]), 23);
  kitd_endpoint *had[MR_ADDRS] = {0}; /* the endpoint of each live address */
  uint32_t weight[MR_ADDRS] = {0};    /* of the record handed last */
  kitd_instance *last[MR_ADDRS];
  size_t nlast = 0;
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (int step = 0; step < 400; step++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int again = nlast && x % 8 == 0; /* the same records handed again */
    int present[MR_ADDRS] = {0};
    kitd_instance *r[MR_ADDRS];
    size_t n = 0;
    if (again) {
      for (size_t k = 0; k < nlast; k++) r[n++] = kitd_instance_ref(last[k]);
    } else {
      for (int a = 0; a < MR_ADDRS; a++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* Long stretches of kept entries, and stretches of changes. */
        int keep = (step / 7 + a / 6) % 3 ? had[a] != NULL : (int)(x % 4 != 0);
        if (!keep) continue;
        uint32_t wt = weight[a] && x % 16 != 1 ? weight[a] : 1 + (uint32_t)(x >> 32) % 3;
        assert_int_equal(kitd_instance_new(addr[a], &r[n]), 0);
        assert_int_equal(kitd_instance_set_weight(r[n], wt), 0);
        n++;
      }
    }
    for (size_t k = 0; k < nlast; k++) kitd_instance_unref(last[k]);
    long made_before = atomic_load(&f.factory_calls), fresh = 0;
    for (size_t k = 0; k < n; k++) {
      int a = 0;
      while (strcmp(addr[a], kitd_instance_address(r[k])) != 0) a++;
      present[a] = 1;
      weight[a] = kitd_instance_weight(r[k]);
      fresh += had[a] == NULL;
    }
    assert_int_equal(kitd_static_instancer_set_records(in, r, n), 0);
    for (size_t k = 0; k < n; k++) last[k] = r[k];
    nlast = n;
    assert_int_equal(atomic_load(&f.factory_calls) - made_before, fresh);
    assert_int_equal(kitd_endpointer_count(ep), n);
    assert_int_equal(kt_live(&f), (long)n); /* no pick held: removed ones closed */
    /* One rotation visits every entry once. */
    int seen[MR_ADDRS] = {0};
    for (size_t k = 0; k < n; k++) {
      kitd_pick p;
      assert_int_equal(kitd_balancer_pick(rr, &p), 0);
      assert_int_equal(p.count, n);
      const char *ad = kitd_instance_address(p.instance);
      int a = 0;
      while (a < MR_ADDRS && strcmp(addr[a], ad) != 0) a++;
      assert_true(a < MR_ADDRS && present[a] && !seen[a]);
      seen[a] = 1;
      assert_string_equal(((kt_ep *)kitd_endpoint_state(p.endpoint))->inst, ad);
      if (had[a]) assert_ptr_equal(p.endpoint, had[a]);
      had[a] = p.endpoint;
      assert_int_equal(kitd_instance_weight(p.instance), weight[a]);
      kitd_balancer_done(rr, &p, 0, -1);
    }
    for (int a = 0; a < MR_ADDRS; a++) {
      if (!present[a]) had[a] = NULL, weight[a] = 0;
      assert_int_equal(seen[a], present[a]);
    }
    if (w && n) { /* the weighted pick pairs its entries alike */
      kitd_pick p;
      assert_int_equal(kitd_balancer_pick(w, &p), 0);
      const char *ad = kitd_instance_address(p.instance);
      assert_string_equal(((kt_ep *)kitd_endpoint_state(p.endpoint))->inst, ad);
      kitd_balancer_done(w, &p, 0, 1000);
    }
    /* The snapshot is in address order. */
    kitd_endpoint **l;
    size_t ln;
    assert_int_equal(kitd_endpointer_endpoints(ep, &l, &ln), 0);
    for (size_t k = 1; k < ln; k++)
      assert_true(strcmp(((kt_ep *)kitd_endpoint_state(l[k - 1]))->inst,
                         ((kt_ep *)kitd_endpoint_state(l[k]))->inst) < 0);
    kitd_endpoint_list_free(l, ln);
  }
  for (size_t k = 0; k < nlast; k++) kitd_instance_unref(last[k]);
  kitd_balancer_free(rr);
  kitd_balancer_free(w);
  close_ep(&f, in, ep);
}

static void test_merge_random(void **s) {
  (void)s;
  merge_random(0);
}

static void test_merge_random_with_states(void **s) {
  (void)s;
  merge_random(1);
}

/* kitd_endpointer_count() does not wait for an update in progress: with
 * the update held inside the factory (under the endpointer's lock), the
 * count is read at once and is the previous snapshot's. The factory lets
 * go by itself after 5 s (scaled), so the old behaviour (the count waits
 * for the lock) ends the test with a failure, not a hang. */
struct held_factory {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered, released;
};

static int noop_ep_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)st, (void)ctx, (void)req;
  *resp = NULL;
  return 0;
}

static int held_factory_fn(void *arg, const kitd_instance *r, kitd_endpoint **out) {
  struct held_factory *h = arg;
  if (!strcmp(kitd_instance_address(r), "slow:1")) {
    pthread_mutex_lock(&h->mu);
    h->entered = 1;
    pthread_cond_broadcast(&h->cv);
    int64_t until = kt_ms() + 5000 * kt_scale();
    while (!h->released && kt_ms() < until) {
      pthread_mutex_unlock(&h->mu);
      kt_sleep_ms(1);
      pthread_mutex_lock(&h->mu);
    }
    h->released = 1;
    pthread_mutex_unlock(&h->mu);
  }
  return kitd_endpoint_new(noop_ep_call, NULL, NULL, out);
}

static void *set_slow(void *arg) {
  kt_set(arg, "a:1,slow:1");
  return NULL;
}

static void test_count_during_update(void **s) {
  (void)s;
  struct held_factory h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  kitd_instancer *in = kt_static("a:1");
  kitd_endpointer *ep = NULL;
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){held_factory_fn, &h, NULL}, NULL, &ep),
                   0);
  assert_int_equal(kitd_endpointer_count(ep), 1);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, set_slow, in), 0);
  pthread_mutex_lock(&h.mu);
  while (!h.entered) pthread_cond_wait(&h.cv, &h.mu);
  pthread_mutex_unlock(&h.mu);
  size_t n = kitd_endpointer_count(ep); /* the update is inside the factory */
  pthread_mutex_lock(&h.mu);
  int released_first = h.released;
  h.released = 1;
  pthread_mutex_unlock(&h.mu);
  pthread_join(t, NULL);
  assert_false(released_first);
  assert_int_equal(n, 1);
  assert_int_equal(kitd_endpointer_count(ep), 2);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
}

static char logbuf[4096];
static void log_fn(void *arg, const kitd_log_record *rec_) {
  kitd_log_level lv = rec_->level;
  char line[4096];
  kitd_log_format_record(rec_, KITD_LOG_LOGFMT, line, sizeof line);
  (void)arg;
  (void)lv;
  size_t n = strlen(logbuf), m = strlen(line);
  if (n + m + 2 > sizeof logbuf) return;
  memcpy(logbuf + n, line, m);
  logbuf[n + m] = '\n';
  logbuf[n + m + 1] = '\0';
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
  return n;
}

static void test_factory_error_skipped_logged_retried(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  strcpy(f.factory_fail, "bad");
  kitd_logger *lg;
  assert_int_equal(kitd_logger_new(KITD_LOG_INFO, log_fn, NULL, KITD_LOG_LOGFMT, &lg), 0);
  logbuf[0] = '\0';
  kitd_instancer *in = kt_static("a:1,bad:1");
  kitd_endpointer *ep = new_ep(in, &f, -1, lg);
  assert_int_equal(kitd_endpointer_count(ep), 1);
  assert_int_equal(count_of(logbuf, "level=warn"), 1); /* one line, once */
  assert_non_null(strstr(logbuf, "level=warn component=endpointer"));
  assert_non_null(strstr(logbuf, "instance=bad:1"));
  assert_non_null(strstr(logbuf, "err=ECONNECT"));
  /* A later event that still has it: tried again, and now it works. */
  f.factory_fail[0] = '\0';
  long before = atomic_load(&f.factory_calls);
  assert_int_equal(kt_set(in, "a:1,bad:1,c:1"), 0);
  assert_int_equal(atomic_load(&f.factory_calls), before + 2); /* bad and c */
  assert_int_equal(kitd_endpointer_count(ep), 3);
  close_ep(&f, in, ep);
  kitd_logger_free(lg);
}

/* Many updates, then free: every endpoint made is closed exactly once
 * (kt_factory_destroy aborts on a double close). */
static void test_every_endpoint_closed_once(void **s) {
  (void)s;
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1,b:1", -1, NULL);
  const char *sets[] = {"a:1,c:1", "", "d:1,e:1,f:1", "a:1,d:1", "a:1,b:1,c:1,d:1", "z:9"};
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) kt_set(in, sets[i]);
  assert_int_equal(kt_live(&f), 1); /* only z:9 */
  kitd_endpointer_free(ep);
  assert_int_equal(atomic_load(&f.closes), atomic_load(&f.made));
  for (kt_ep *e = f.all; e; e = e->next) assert_int_equal(atomic_load(&e->closed), 1);
  kitd_instancer_free(in);
  kt_factory_destroy(&f);
}

static void test_removed_not_closed_while_picked(void **s) {
  (void)s;
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1", -1, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  assert_string_equal(kitd_instance_address(p.instance), "a:1");
  kt_ep *a = kt_find(&f, "a:1");
  kt_set(in, "b:1");
  kt_set(in, "c:1"); /* another update: a still held through the old snapshot */
  assert_int_equal(atomic_load(&a->closed), 0);
  /* The held pick pins its own snapshot only: b, added and removed after
   * it, is closed at once. */
  assert_int_equal(atomic_load(&kt_find(&f, "b:1")->closed), 1);
  void *resp = NULL;
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(p.endpoint, &ctx, NULL, &resp), 0);
  assert_string_equal(resp, "a:1");
  kitd_balancer_done(b, &p, 0, -1);
  /* done saw the snapshot retired and reclaimed at once. */
  assert_int_equal(atomic_load(&a->closed), 1);
  assert_int_equal(atomic_load(&kt_find(&f, "b:1")->closed), 1);
  assert_int_equal(atomic_load(&kt_find(&f, "c:1")->closed), 0);
  kitd_pick q;
  assert_int_equal(kitd_balancer_pick(b, &q), 0);
  assert_string_equal(kitd_instance_address(q.instance), "c:1");
  kitd_balancer_done(b, &q, 0, -1);
  kitd_balancer_free(b);
  close_ep(&f, in, ep);
}

/* More picks than hazard slots: the extra ones hold the snapshot by count,
 * and still keep a removed endpoint open until done. */
static void test_more_picks_than_slots(void **s) {
  (void)s;
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1", -1, NULL);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_random_new(ep, &b), 0);
  kitd_pick p[KITD_PICK_FAST + 4];
  for (int i = 0; i < KITD_PICK_FAST + 4; i++) assert_int_equal(kitd_balancer_pick(b, &p[i]), 0);
  kt_set(in, "b:1");
  kt_ep *a = kt_find(&f, "a:1");
  for (int i = 0; i < KITD_PICK_FAST + 4; i++) {
    assert_int_equal(atomic_load(&a->closed), 0);
    kitd_balancer_done(b, &p[KITD_PICK_FAST + 3 - i], 0, -1);
  }
  assert_int_equal(atomic_load(&a->closed), 1);
  /* The slots are all free again. */
  for (int i = 0; i < KITD_PICK_FAST; i++) assert_int_equal(kitd_balancer_pick(b, &p[i]), 0);
  for (int i = 0; i < KITD_PICK_FAST; i++) kitd_balancer_done(b, &p[i], 0, -1);
  kitd_balancer_free(b);
  close_ep(&f, in, ep);
}

static void test_error_keeps_endpoints(void **s) {
  (void)s;
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1,b:1", -1, NULL);
  for (int i = 0; i < 5; i++) kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  kitd_static_instancer_fail(in, KITD_EPROTO, "garbage");
  assert_int_equal(kitd_endpointer_count(ep), 2);
  kt_sleep_ms(20); /* nor a while later: no invalidation without the option */
  assert_int_equal(kitd_endpointer_count(ep), 2);
  assert_int_equal(kt_live(&f), 2);
  close_ep(&f, in, ep);
}

static void test_invalidate_on_error_timeout(void **s) {
  (void)s;
  long ms = 150 * kt_scale();
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1,b:1", ms, NULL);
  int64_t t0 = kt_ms();
  kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  kitd_static_instancer_fail(in, KITD_ECONNECT, "still down"); /* no restart */
  kt_sleep_ms(ms / 2);
  assert_int_equal(kitd_endpointer_count(ep), 2); /* not before */
  while (kitd_endpointer_count(ep) != 0 && kt_ms() - t0 < ms * 4) kt_sleep_ms(2);
  int64_t took = kt_ms() - t0;
  assert_int_equal(kitd_endpointer_count(ep), 0);
  assert_true(took >= ms);
  assert_true(took < ms + 100 * kt_scale()); /* on time, not at the next event */
  assert_int_equal(kt_live(&f), 0);
  /* A later error keeps it empty; a good event brings the set back. */
  kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  assert_int_equal(kitd_endpointer_count(ep), 0);
  kt_set(in, "a:1");
  assert_int_equal(kitd_endpointer_count(ep), 1);
  close_ep(&f, in, ep);
}

static void test_good_event_cancels_invalidation(void **s) {
  (void)s;
  long ms = 100 * kt_scale();
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1,b:1", ms, NULL);
  kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  kt_sleep_ms(ms / 3);
  kt_set(in, "a:1,b:1"); /* same set, but good: the error is over */
  kt_sleep_ms(ms * 2);
  assert_int_equal(kitd_endpointer_count(ep), 2);
  /* A new error starts a new, full deadline. */
  int64_t t0 = kt_ms();
  kitd_static_instancer_fail(in, KITD_ECONNECT, "down");
  while (kitd_endpointer_count(ep) != 0 && kt_ms() - t0 < ms * 4) kt_sleep_ms(2);
  assert_true(kt_ms() - t0 >= ms);
  assert_int_equal(kitd_endpointer_count(ep), 0);
  close_ep(&f, in, ep);
}

static void test_invalidate_zero_is_at_once(void **s) {
  (void)s;
  kt_factory f;
  kitd_instancer *in;
  kitd_endpointer *ep = open_ep(&f, &in, "a:1", 0, NULL);
  kitd_static_instancer_fail(in, KITD_EIO, NULL);
  assert_int_equal(kitd_endpointer_count(ep), 0);
  assert_int_equal(kt_live(&f), 0);
  close_ep(&f, in, ep);
}

static void test_invalid(void **s) {
  (void)s;
  kitd_instancer *in = kt_static("a:1");
  kitd_endpointer *ep = NULL;
  assert_int_equal(kitd_endpointer_new(NULL, &(kitd_factory){kt_factory_fn, NULL, NULL}, NULL, &ep),
                   KITD_EINVAL);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){NULL, NULL, NULL}, NULL, &ep),
                   KITD_EINVAL);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, NULL, NULL}, NULL, NULL),
                   KITD_EINVAL);
  assert_null(ep);
  kitd_instancer_stop(in);
  kt_factory f;
  kt_factory_init(&f);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, &f, NULL}, NULL, &ep),
                   KITD_ESTOPPED);
  assert_int_equal(kitd_endpointer_count(NULL), 0);
  kitd_endpointer_free(NULL);
  kitd_instancer_free(in);
  kt_factory_destroy(&f);
}

/* Each allocation of kitd_endpointer_new and of an update fails in turn:
 * ENOMEM (or a skipped instance), no leak, no crash, and a later update
 * converges. */
static void test_alloc_failures(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("a:1,b:1,c:1");
  for (long k = 0;; k++) {
    kitd_endpointer *ep = NULL;
    kitd__alloc_fail_after(k);
    int rc = kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, &f, NULL}, NULL, &ep);
    int fired = kitd__alloc_failed();
    kitd__alloc_fail_after(-1);
    if (rc) {
      assert_int_equal(rc, KITD_ENOMEM);
      assert_null(ep);
      continue;
    }
    kitd_endpointer_free(ep);
    if (!fired) break;
  }
  assert_int_equal(kt_live(&f), 0);
  kitd_endpointer *ep = new_ep(in, &f, 50, NULL);
  for (long k = 0; k < 40; k++) {
    kitd__alloc_fail_after(k);
    kt_set(in, (k & 1) ? "a:1,d:1,e:1" : "b:1,c:1,f:1");
    kitd__alloc_fail_after(-1);
  }
  kt_set(in, "x:1,y:1");
  assert_int_equal(kitd_endpointer_count(ep), 2);
  assert_int_equal(kt_live(&f), 2);
  close_ep(&f, in, ep);
}

/* --- picks from several threads while the set changes --- */
struct race {
  kitd_balancer *b;
  atomic_int stop;
  atomic_long picks, wrong; /* wrong: an answer not from the picked instance */
};

static void *race_picker(void *arg) {
  struct race *r = arg;
  kitd_ctx c;
  kitd_ctx_init(&c);
  while (!atomic_load(&r->stop)) {
    kitd_pick p;
    int rc = kitd_balancer_pick(r->b, &p);
    if (rc == KITD_ENOENDPOINTS) continue;
    assert_int_equal(rc, 0);
    void *resp;
    kitd_endpoint_call(p.endpoint, &c, NULL, &resp); /* aborts if closed */
    if (strcmp(resp, kitd_instance_address(p.instance)) != 0) atomic_fetch_add(&r->wrong, 1);
    kitd_balancer_done(r->b, &p, 0, -1);
    atomic_fetch_add(&r->picks, 1);
  }
  return NULL;
}

static void run_race(int random_balancer) {
  static const char *all[] = {"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80",
                              "10.0.0.5:80", "10.0.0.6:80", "10.0.0.7:80", "10.0.0.8:80"};
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(all, 8, &in), 0);
  kitd_endpointer *ep = new_ep(in, &f, -1, NULL);
  struct race r = {0};
  if (random_balancer) assert_int_equal(kitd_balancer_random_new(ep, &r.b), 0);
  else assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &r.b), 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, race_picker, &r);
  unsigned x = 12345;
  int64_t end = kt_ms() + 300;
  int updates = 0;
  while (kt_ms() < end && updates < 20000) {
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
  assert_int_equal(r.wrong, 0);
  kitd_balancer_free(r.b);
  /* Every endpoint closed, none twice (kt_factory_destroy aborts then). */
  close_ep(&f, in, ep);
}

static void test_picks_while_set_changes_rr(void **s) {
  (void)s;
  run_race(0);
}

static void test_picks_while_set_changes_random(void **s) {
  (void)s;
  run_race(1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_factory_only_for_new),
      cmocka_unit_test(test_merge_keys),
      cmocka_unit_test(test_merge_random),
      cmocka_unit_test(test_merge_random_with_states),
      cmocka_unit_test(test_count_during_update),
      cmocka_unit_test(test_factory_error_skipped_logged_retried),
      cmocka_unit_test(test_every_endpoint_closed_once),
      cmocka_unit_test(test_removed_not_closed_while_picked),
      cmocka_unit_test(test_more_picks_than_slots),
      cmocka_unit_test(test_error_keeps_endpoints),
      cmocka_unit_test(test_invalidate_on_error_timeout),
      cmocka_unit_test(test_good_event_cancels_invalidation),
      cmocka_unit_test(test_invalidate_zero_is_at_once),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_picks_while_set_changes_rr),
      cmocka_unit_test(test_picks_while_set_changes_random),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
