/* SPDX-License-Identifier: MIT */
/* Instance records through the pipeline, lifetimes in any free order, a
 * pick never handed back, calls from inside a subscriber callback, waiting
 * for the first answer, and the reason an empty set gives. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../support/fixture.h"
#include "kitd/balancer.h"
#include "kitd/endpointer.h"
#include "kitd/error.h"
#include "kitd/http.h"
#include "kitd/retry.h"
#include "sd/instancer_impl.h"

static kitd_endpointer *new_ep(kitd_instancer *in, kt_factory *f) {
  kitd_endpointer *ep = NULL;
  kitd_endpointer_opts o;
  kitd_endpointer_opts_init(&o);
  assert_int_equal(kitd_endpointer_new(in, &(kitd_factory){kt_factory_fn, f, NULL}, &o, &ep), 0);
  return ep;
}

static kitd_instance *rec(const char *addr, uint32_t weight, const char *zone) {
  kitd_instance *r;
  assert_int_equal(kitd_instance_new(addr, &r), 0);
  assert_int_equal(kitd_instance_set_weight(r, weight), 0);
  if (zone) assert_int_equal(kitd_instance_set_node_meta(r, "zone", zone), 0);
  return r;
}

static void test_record_accessors(void **s) {
  (void)s;
  kitd_instance *r;
  assert_int_equal(kitd_instance_new("", &r), KITD_EINVAL);
  assert_int_equal(kitd_instance_new("a b:1", &r), KITD_EINVAL);
  assert_int_equal(kitd_instance_new("[::1]:80", &r), 0);
  assert_string_equal(kitd_instance_address(r), "[::1]:80");
  assert_int_equal(kitd_instance_weight(r), 1);
  assert_int_equal(kitd_instance_status(r), KITD_HEALTH_PASSING);
  assert_string_equal(kitd_instance_zone(r), "");
  assert_int_equal(kitd_instance_set_weight(r, 0), KITD_EINVAL);
  assert_int_equal(kitd_instance_set_status(r, KITD_HEALTH_WARNING), 0);
  assert_int_equal(kitd_instance_add_tag(r, "v2"), 0);
  assert_int_equal(kitd_instance_set_meta(r, "zone", "svc-zone"), 0);
  assert_int_equal(kitd_instance_set_meta(r, "b", "1"), 0);
  assert_int_equal(kitd_instance_set_meta(r, "b", "2"), 0);
  assert_string_equal(kitd_instance_zone(r), "svc-zone");
  assert_int_equal(kitd_instance_set_node_meta(r, "zone", "node-zone"), 0);
  assert_string_equal(kitd_instance_zone(r), "node-zone"); /* node meta first */
  assert_int_equal(kitd_instance_set_zone(r, "explicit"), 0);
  assert_string_equal(kitd_instance_zone(r), "explicit");
  assert_string_equal(kitd_instance_meta(r, "b"), "2");
  assert_null(kitd_instance_meta(r, "nope"));
  assert_int_equal(kitd_instance_meta_count(r), 2);
  const char *k, *v;
  assert_int_equal(kitd_instance_meta_at(r, 0, &k, &v), 0);
  assert_string_equal(k, "b"); /* key order */
  assert_int_equal(kitd_instance_meta_at(r, 2, &k, &v), KITD_ENOTFOUND);
  assert_true(kitd_instance_has_tag(r, "v2"));
  assert_string_equal(kitd_health_name(kitd_instance_status(r)), "warning");
  /* Handed to an instancer, a record is frozen. */
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  assert_int_equal(kitd_static_instancer_set_records(in, &r, 1), 0);
  assert_int_equal(kitd_instance_set_weight(r, 5), KITD_EINVAL);
  kitd_instance_unref(r);
  kitd_instance **got;
  size_t n;
  assert_int_equal(kitd_instancer_state(in, &got, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(kitd_instance_node_meta(got[0], "zone"), "node-zone");
  kitd_instance_list_free(got, n);
  kitd_instancer_free(in);
}

/* Same address, new attributes: the snapshot gets the new record, the
 * endpoint is neither made again nor closed; a balancer reads the record. */
static void test_attribute_change_keeps_endpoint(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in;
  assert_int_equal(kitd_static_instancer_new(NULL, 0, &in), 0);
  kitd_instance *r1 = rec("a:1", 1, "z1");
  assert_int_equal(kitd_static_instancer_set_records(in, &r1, 1), 0);
  kitd_endpointer *ep = new_ep(in, &f);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  kitd_pick p;
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  assert_int_equal(kitd_instance_weight(p.instance), 1);
  kitd_endpoint *first = p.endpoint;
  kitd_balancer_done(b, &p, 0, -1);
  kitd_instance *r2 = rec("a:1", 7, "z2");
  assert_int_equal(kitd_static_instancer_set_records(in, &r2, 1), 0);
  assert_int_equal(kitd_balancer_pick(b, &p), 0);
  assert_int_equal(kitd_instance_weight(p.instance), 7);
  assert_string_equal(kitd_instance_zone(p.instance), "z2");
  assert_ptr_equal(p.endpoint, first);
  kitd_balancer_done(b, &p, 0, -1);
  assert_int_equal(atomic_load(&f.factory_calls), 1);
  assert_int_equal(atomic_load(&f.closes), 0);
  /* The same attributes in a new record: no event worth an update. */
  kitd_instance *r3 = rec("a:1", 7, "z2");
  assert_int_equal(kitd_static_instancer_set_records(in, &r3, 1), 0);
  assert_int_equal(atomic_load(&f.factory_calls), 1);
  kitd_instance_unref(r1);
  kitd_instance_unref(r2);
  kitd_instance_unref(r3);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  assert_int_equal(atomic_load(&f.closes), 1);
  kt_factory_destroy(&f);
}

/* Build instancer → endpointer → balancer → retry, free them in the order
 * given by perm (0 instancer, 1 endpointer, 2 balancer, 3 retry), calling
 * through what is left after each free. */
static void build_and_free(const int perm[4]) {
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("a:1,b:1");
  kitd_endpointer *ep = new_ep(in, &f);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  kitd_endpoint *r;
  assert_int_equal(kitd_retry_new(b, NULL, &r), 0);
  int freed[4] = {0};
  for (int k = 0; k < 4; k++) {
    switch (perm[k]) {
    case 0: kitd_instancer_free(in); break;
    case 1: kitd_endpointer_free(ep); break;
    case 2: kitd_balancer_free(b); break;
    case 3: kitd_endpoint_unref(r); break;
    }
    freed[perm[k]] = 1;
    if (!freed[3]) {
      kitd_ctx ctx;
      kitd_ctx_init(&ctx);
      void *resp = NULL;
      assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), 0);
    }
    if (!freed[2]) {
      kitd_pick p;
      assert_int_equal(kitd_balancer_pick(b, &p), 0);
      kitd_balancer_done(b, &p, 0, -1);
    }
    if (!freed[1]) assert_true(kitd_endpointer_count(ep) >= 2);
    if (!freed[0]) assert_int_equal(kt_set(in, "a:1,b:1,c:1"), 0);
  }
  assert_int_equal(kt_live(&f), 0); /* everything closed once the last goes */
  kt_factory_destroy(&f);
}

static void test_every_free_order(void **s) {
  (void)s;
  int perm[4] = {0, 1, 2, 3};
  /* All 24 orders (Heap's algorithm, iterative). */
  int c[4] = {0};
  build_and_free(perm);
  for (int i = 1; i < 4;) {
    if (c[i] < i) {
      int j = i % 2 ? c[i] : 0, t = perm[j];
      perm[j] = perm[i];
      perm[i] = t;
      build_and_free(perm);
      c[i]++;
      i = 1;
    } else {
      c[i++] = 0;
    }
  }
}

/* The docs/api/http.md example: the client freed right after the
 * endpointer is built; later set changes still make endpoints. */
static void test_http_freed_after_endpointer(void **s) {
  (void)s;
  kitd_http *h;
  assert_int_equal(kitd_http_new(NULL, &h), 0);
  kitd_instancer *in = kt_static("127.0.0.1:1");
  kitd_factory hf = kitd_http_factory(h);
  kitd_endpointer *ep;
  assert_int_equal(kitd_endpointer_new(in, &hf, NULL, &ep), 0);
  kitd_http_free(h);
  assert_int_equal(kt_set(in, "127.0.0.1:1,127.0.0.1:2"), 0);
  assert_int_equal(kitd_endpointer_count(ep), 2);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  /* A failing kitd_endpointer_new releases the factory argument too. */
  assert_int_equal(kitd_http_new(NULL, &h), 0);
  hf = kitd_http_factory(h);
  kitd_http_free(h);
  assert_int_equal(kitd_endpointer_new(NULL, &hf, NULL, &ep), KITD_EINVAL);
}

/* A pick never handed back pins its own snapshot, not the later ones:
 * every endpoint added and removed after it is closed. */
static void test_unreturned_pick_pins_only_its_snapshot(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("held:1");
  kitd_endpointer *ep = new_ep(in, &f);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  kitd_pick held;
  assert_int_equal(kitd_balancer_pick(b, &held), 0);
  char set[64];
  const int rounds = 20000;
  for (int i = 0; i < rounds; i++) {
    snprintf(set, sizeof set, "n%d:1", i);
    assert_int_equal(kt_set(in, set), 0);
  }
  /* Live: the held one (pinned) and the current one. */
  assert_int_equal(kt_live(&f), 2);
  assert_int_equal(atomic_load(&f.closes), rounds - 1);
  kitd_balancer_done(b, &held, 0, -1);
  assert_int_equal(kt_live(&f), 1);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kt_factory_destroy(&f);
}

/* Calls a subscriber may make from inside its callback. */
struct reenter {
  kitd_instancer *in;
  int mode, events, state_rc;
  size_t state_n;
  char last[64];
};

static void reenter_fn(void *arg, const kitd_event *ev) {
  struct reenter *r = arg;
  r->events++;
  snprintf(r->last, sizeof r->last, "%s", ev->count ? kitd_instance_address(ev->instances[0]) : "");
  kitd_instance **v;
  size_t n;
  switch (r->mode) {
  case 0: /* read the state */
    r->state_rc = kitd_instancer_state(r->in, &v, &r->state_n);
    if (r->state_rc >= 0 || r->state_rc == KITD_ENOTFOUND) kitd_instance_list_free(v, r->state_n);
    n = r->state_n;
    (void)n;
    break;
  case 1: /* change the set: delivered after this event */
    if (r->events == 1) kitd_static_instancer_set(r->in, (const char *[]){"z:9"}, 1);
    break;
  case 2: /* unsubscribe itself */ kitd_instancer_unsubscribe(r->in, reenter_fn, r); break;
  case 3: /* stop */ kitd_instancer_stop(r->in); break;
  }
}

static void test_calls_from_a_callback(void **s) {
  (void)s;
  for (int mode = 0; mode < 4; mode++) {
    struct reenter r = {0};
    r.mode = mode;
    r.in = kt_static("a:1");
    assert_int_equal(kitd_instancer_subscribe(r.in, reenter_fn, &r), 0);
    assert_int_equal(r.events, mode == 1 ? 2 : 1);
    switch (mode) {
    case 0:
      assert_int_equal(r.state_rc, 0);
      assert_int_equal(r.state_n, 1);
      break;
    case 1: /* the nested set came right after the first event */
      assert_int_equal(r.events, 2);
      assert_string_equal(r.last, "z:9");
      break;
    case 2:
      assert_int_equal(kt_set(r.in, "b:1"), 0);
      assert_int_equal(r.events, 1); /* gone */
      assert_int_equal(kitd_instancer_unsubscribe(r.in, reenter_fn, &r), KITD_ENOTFOUND);
      break;
    case 3:
      assert_int_equal(kt_set(r.in, "b:1"), KITD_ESTOPPED);
      assert_int_equal(r.events, 1);
      break;
    }
    if (mode != 2) kitd_instancer_unsubscribe(r.in, reenter_fn, &r);
    kitd_instancer_free(r.in);
  }
}

/* A bare instancer to publish by hand. */
static void bare_destroy(kitd_instancer *in) { free(in); }
static const struct kitd__instancer_ops bare_ops = {"test", NULL, bare_destroy};
static kitd_instancer *bare(void) {
  kitd_instancer *in = malloc(sizeof *in);
  assert_int_equal(kitd__instancer_init(in, &bare_ops), 0);
  return in;
}

static void *publish_later(void *arg) {
  kt_sleep_ms(50);
  kitd_instance **v = malloc(sizeof *v);
  kitd_instance_new("a:1", &v[0]);
  kitd__instancer_publish(arg, v, 1);
  return NULL;
}

static void test_wait_ready(void **s) {
  (void)s;
  kitd_instancer *st = kt_static("a:1");
  assert_int_equal(kitd_instancer_wait_ready(st, 0), 0);
  kitd_instancer_free(st);
  kitd_instancer *in = bare();
  int64_t t0 = kt_ms();
  assert_int_equal(kitd_instancer_wait_ready(in, 30), KITD_ETIMEDOUT);
  assert_true(kt_ms() - t0 >= 29);
  kitd__instancer_publish_error(in, KITD_ECONNECT, "consul: connect refused");
  assert_int_equal(kitd_instancer_wait_ready(in, 10), KITD_ECONNECT);
  pthread_t t;
  pthread_create(&t, NULL, publish_later, in);
  assert_int_equal(kitd_instancer_wait_ready(in, 10000 * kt_scale()), 0);
  pthread_join(t, NULL);
  kitd_instancer_free(in);
  kitd_instancer *stopped = bare();
  kitd_instancer_stop(stopped);
  assert_int_equal(kitd_instancer_wait_ready(stopped, -1), KITD_ESTOPPED);
  kitd_instancer_free(stopped);
}

/* An empty set says why: the registry's error and the age of the last
 * good answer, or what was looked for. */
static void test_explain_empty(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("");
  kitd_endpointer *ep = new_ep(in, &f);
  kitd_balancer *b;
  assert_int_equal(kitd_balancer_round_robin_new(ep, 0, &b), 0);
  kitd_retry_opts o;
  kitd_retry_opts_init(&o);
  o.max_attempts = 1;
  kitd_endpoint *r;
  assert_int_equal(kitd_retry_new(b, &o, &r), 0);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ENOENDPOINTS);
  assert_string_equal(kitd_ctx_detail(&ctx), "0 instances of the static list");
  assert_int_equal(
      kitd_static_instancer_fail(in, KITD_ECONNECT, "consul: connect 127.0.0.1:8500 refused"), 0);
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ENOENDPOINTS);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "consul: connect 127.0.0.1:8500 refused"));
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "; last good answer 0 s ago"));
  /* Every instance's factory failed. */
  strcpy(f.factory_fail, "x:");
  assert_int_equal(kt_set(in, "x:1"), 0);
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(r, &ctx, NULL, &resp), KITD_ENOENDPOINTS);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "the endpoint factory failed"));
  kitd_endpoint_unref(r);
  kitd_balancer_free(b);
  kitd_endpointer_free(ep);
  kitd_instancer_free(in);
  kt_factory_destroy(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_record_accessors),
      cmocka_unit_test(test_attribute_change_keeps_endpoint),
      cmocka_unit_test(test_every_free_order),
      cmocka_unit_test(test_http_freed_after_endpointer),
      cmocka_unit_test(test_unreturned_pick_pins_only_its_snapshot),
      cmocka_unit_test(test_calls_from_a_callback),
      cmocka_unit_test(test_wait_ready),
      cmocka_unit_test(test_explain_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
