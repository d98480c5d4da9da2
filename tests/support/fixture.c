/* SPDX-License-Identifier: MIT */
/* Test helper: see fixture.h. */
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kitd/ctx.h"
#include "kitd/error.h"

static int matches(const char *inst, const char *pat) { return pat[0] && strstr(inst, pat); }

static void kt_close(void *state) {
  kt_ep *e = state;
  atomic_store(&e->magic, KT_DEAD);
  atomic_fetch_add(&e->closed, 1);
  atomic_fetch_add(&e->f->closes, 1);
}

static int kt_call(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  (void)req;
  kt_ep *e = state;
  if (atomic_load(&e->magic) != KT_ALIVE || atomic_load(&e->closed)) {
    fprintf(stderr, "call on a closed endpoint %s\n", e->inst);
    abort();
  }
  atomic_fetch_add(&e->calls, 1);
  *resp = e->inst;
  if (matches(e->inst, e->f->hang)) {
    int rc = kitd_ctx_sleep_ns(ctx, 10LL * 1000 * 1000 * 1000);
    kitd_ctx_set_detail(ctx, "hung on %s", e->inst);
    return rc ? rc : KITD_EIO;
  }
  if (matches(e->inst, e->f->fail)) {
    kitd_ctx_set_status(ctx, 503);
    kitd_ctx_set_detail(ctx, "failed on %s", e->inst);
    return e->f->fail_err;
  }
  return 0;
}

void kt_factory_init(kt_factory *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  f->fail_err = KITD_ECONNECT;
}

void kt_factory_destroy(kt_factory *f) {
  kt_ep *e = f->all;
  while (e) {
    kt_ep *n = e->next;
    if (atomic_load(&e->closed) > 1) {
      fprintf(stderr, "%s closed %d times\n", e->inst, atomic_load(&e->closed));
      abort();
    }
    free(e);
    e = n;
  }
  pthread_mutex_destroy(&f->mu);
}

int kt_factory_fn(void *arg, const kitd_instance *rec_, kitd_endpoint **out) {
  const char *instance = kitd_instance_address(rec_);
  kt_factory *f = arg;
  atomic_fetch_add(&f->factory_calls, 1);
  if (matches(instance, f->factory_fail)) return KITD_ECONNECT;
  kt_ep *e = calloc(1, sizeof *e);
  if (!e) return KITD_ENOMEM;
  atomic_init(&e->magic, KT_ALIVE);
  snprintf(e->inst, sizeof e->inst, "%s", instance);
  e->f = f;
  int rc = kitd_endpoint_new(kt_call, kt_close, e, out);
  if (rc) { /* kt_close ran (the endpoint takes its state on every path) */
    atomic_fetch_sub(&f->closes, 1);
    free(e);
    return rc;
  }
  pthread_mutex_lock(&f->mu);
  e->next = f->all;
  f->all = e;
  pthread_mutex_unlock(&f->mu);
  atomic_fetch_add(&f->made, 1);
  return 0;
}

kt_ep *kt_find(kt_factory *f, const char *instance) {
  pthread_mutex_lock(&f->mu);
  kt_ep *e = f->all;
  while (e && strcmp(e->inst, instance) != 0) e = e->next;
  pthread_mutex_unlock(&f->mu);
  return e;
}

long kt_live(kt_factory *f) { return atomic_load(&f->made) - atomic_load(&f->closes); }

long kt_scale(void) {
  const char *s = getenv("KITD_TEST_TIMEOUT_SCALE");
  long v = s ? atol(s) : 1;
  return v > 0 ? v : 1;
}

static char **split(const char *csv, size_t *n) {
  *n = 0;
  char **v = calloc(strlen(csv) + 2, sizeof *v);
  char *copy = strdup(csv), *save = NULL;
  for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
    v[(*n)++] = strdup(t);
  free(copy);
  return v;
}

int kt_set(kitd_instancer *in, const char *csv) {
  size_t n;
  char **v = split(csv, &n);
  int rc = kitd_static_instancer_set(in, (const char *const *)v, n);
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
  return rc;
}

kitd_instancer *kt_static(const char *csv) {
  size_t n;
  char **v = split(csv, &n);
  kitd_instancer *in = NULL;
  int rc = kitd_static_instancer_new((const char *const *)v, n, &in);
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
  return rc ? NULL : in;
}

int64_t kt_ms(void) { return kitd_now_ns() / 1000000; }

void kt_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

char *kt_asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

/* --- the fleet --- */

static struct fx_ep *fx_eps[64];
static int fx_n;

static int fx_call(void *st, kitd_ctx *ctx, const void *req, void **resp) {
  (void)req;
  struct fx_ep *e = st;
  atomic_fetch_add(&e->calls, 1);
  if (strncmp(e->inst, "fail", 4) == 0) {
    kitd_ctx_set_status(ctx, 503);
    kitd_ctx_set_detail(ctx, "refused by %s", e->inst);
    return KITD_ECONNECT;
  }
  if (strncmp(e->inst, "eio", 3) == 0) return KITD_EIO;
  if (strncmp(e->inst, "proto", 5) == 0) return KITD_EPROTO;
  if (strncmp(e->inst, "late", 4) == 0) {
    struct timespec ts = {0, 11 * 1000000L}; /* not kitd_ctx_sleep_ns */
    nanosleep(&ts, NULL);
    *resp = strdup(e->inst);
    return 0;
  }
  if (strncmp(e->inst, "hang", 4) == 0) {
    int rc = kitd_ctx_sleep_ns(ctx, 10LL * 1000000000);
    return rc ? rc : KITD_EINTERNAL;
  }
  if (strncmp(e->inst, "slow", 4) == 0) {
    int rc = kitd_ctx_sleep_ns(ctx, 30LL * 1000000);
    if (rc) return rc;
  }
  *resp = e->inst;
  return 0;
}

int fx_factory(void *arg, const kitd_instance *instance, kitd_endpoint **out) {
  (void)arg;
  struct fx_ep *e = calloc(1, sizeof *e);
  if (!e) return KITD_ENOMEM;
  snprintf(e->inst, sizeof e->inst, "%s", kitd_instance_address(instance));
  int rc = kitd_endpoint_new(fx_call, free, e, out); /* takes e */
  if (rc) return rc;
  if (fx_n < 64) fx_eps[fx_n++] = e;
  return 0;
}

int fx_calls(const char *inst) {
  for (int i = 0; i < fx_n; i++)
    if (strcmp(fx_eps[i]->inst, inst) == 0) return atomic_load(&fx_eps[i]->calls);
  return -1;
}

void fx_reset(void) { fx_n = 0; }

void fx_open(struct fx *f, const char *const *v, size_t n, int random_lb) {
  fx_reset();
  kitd_static_instancer_new(v, n, &f->in);
  kitd_endpointer_new(f->in, &(kitd_factory){fx_factory, NULL, NULL}, NULL, &f->ep);
  if (random_lb) kitd_balancer_random_new(f->ep, &f->b);
  else kitd_balancer_round_robin_new(f->ep, 0, &f->b);
}

void fx_close(struct fx *f) {
  kitd_balancer_free(f->b);
  kitd_endpointer_free(f->ep);
  kitd_instancer_free(f->in);
}
