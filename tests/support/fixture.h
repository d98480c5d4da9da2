/* SPDX-License-Identifier: MIT */
/* Test helper for the sd/lb/core unit tests: a factory whose endpoints count
 * their calls and closes and stay readable after close (freed only by
 * kt_factory_destroy), so a test can assert that nothing it holds was closed
 * without touching freed memory; plus time scaling and small utilities. */
#ifndef KITD_TEST_FIXTURE_H
#define KITD_TEST_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kitd/kitd.h"

#define KT_ALIVE 0xA11CE5u
#define KT_DEAD 0xDEADu

enum kt_mode {
  KT_OK = 0,
  KT_FAIL = 1,
  KT_HANG = 2,
  KT_FACTORY_FAIL = 3
};

typedef struct kt_ep {
  atomic_uint magic; /* KT_ALIVE until closed */
  atomic_int closed; /* times closed: must end at exactly 1 */
  atomic_long calls;
  char inst[128];
  struct kt_factory *f;
  struct kt_ep *next;
} kt_ep;

typedef struct kt_factory {
  pthread_mutex_t mu;
  kt_ep *all;
  atomic_long made, closes, factory_calls;
  /* Per-instance behaviour: instances whose name contains `fail` (and so
   * on) behave so; "" matches none. */
  char fail[64], hang[64], factory_fail[64];
  int fail_err; /* code a failing call returns (default ECONNECT) */
} kt_factory;

void kt_factory_init(kt_factory *f);
/* Checks every endpoint was closed at most once, then frees them all. */
void kt_factory_destroy(kt_factory *f);
/* The kitd_factory_fn; arg is the kt_factory. */
int kt_factory_fn(void *arg, const kitd_instance *instance, kitd_endpoint **out);
/* The newest endpoint state made for `instance`, or NULL. */
kt_ep *kt_find(kt_factory *f, const char *instance);
/* Endpoints made and not closed. */
long kt_live(kt_factory *f);

/* KITD_TEST_TIMEOUT_SCALE (default 1). */
long kt_scale(void);
/* Replace a static instancer's set with a comma-separated list ("" empty). */
int kt_set(kitd_instancer *in, const char *csv);
/* A static instancer over a comma-separated list. */
kitd_instancer *kt_static(const char *csv);
/* Milliseconds since an arbitrary start (monotonic). */
int64_t kt_ms(void);
void kt_sleep_ms(long ms);
/* A new string (free()) formatted as printf does, or NULL. */
char *kt_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- A small fleet of fake endpoints for the balancer and retry tests ---
 * Behaviour of an instance, chosen by its name's prefix: "ok:N" answers at
 * once with its name, "fail:N" fails with KITD_ECONNECT (status 503),
 * "eio:N" with KITD_EIO, "proto:N" with KITD_EPROTO, "hang:N" blocks until
 * its ctx is done, "slow:N" takes 30 ms, "late:N" ignores its ctx, takes
 * 11 ms and answers a malloc'd copy of its name (the caller, or retry's
 * free_response, frees it). */
struct fx_ep {
  char inst[64];
  atomic_int calls;
};
struct fx {
  kitd_instancer *in;
  kitd_endpointer *ep;
  kitd_balancer *b;
};
/* The kitd_factory_fn of the fleet (arg unused). */
int fx_factory(void *arg, const kitd_instance *instance, kitd_endpoint **out);
/* Calls made to the instance named `inst` since the last fx_open, or -1. */
int fx_calls(const char *inst);
/* A static instancer over v[n], an endpointer of the fleet, and a round
 * robin (or, random_lb, a random) balancer. */
void fx_open(struct fx *f, const char *const *v, size_t n, int random_lb);
void fx_close(struct fx *f);
/* Forget the fleet's call counts (fx_open does it too). */
void fx_reset(void);

/* From lib/core/alloc.h (linked from the static library). */
long kitd__alloc_fail_after(long n);
int kitd__alloc_failed(void);
unsigned long kitd__alloc_count(void);

#endif
