/* SPDX-License-Identifier: MIT */
/* Test helper: a subscriber that records an instancer's events. */
#include "recorder.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kitd/ctx.h"

void kitd_test_recorder_init(kitd_test_recorder *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &ca);
  pthread_condattr_destroy(&ca);
  r->err = -9999; /* no event yet */
}

void kitd_test_recorder_destroy(kitd_test_recorder *r) {
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
}

void kitd_test_recorder_fn(void *arg, const kitd_event *ev) {
  kitd_test_recorder *r = arg;
  pthread_mutex_lock(&r->mu);
  size_t o = 0;
  r->set[0] = '\0';
  for (size_t i = 0; i < ev->count; i++) {
    int n = snprintf(r->set + o, sizeof r->set - o, "%s%s", i ? "," : "",
                     kitd_instance_address(ev->instances[i]));
    if (n < 0 || (size_t)n >= sizeof r->set - o) break;
    o += (size_t)n;
  }
  r->err = ev->err;
  snprintf(r->detail, sizeof r->detail, "%s", ev->detail ? ev->detail : "");
  r->events++;
  if (ev->err) r->errors++;
  r->last_ns = kitd_now_ns();
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void deadline(struct timespec *ts, long ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  long long ns = ts->tv_nsec + (ms % 1000) * 1000000LL;
  ts->tv_sec += ms / 1000 + ns / 1000000000;
  ts->tv_nsec = ns % 1000000000;
}

bool kitd_test_recorder_wait_set(kitd_test_recorder *r, const char *set, long timeout_ms) {
  struct timespec ts;
  deadline(&ts, timeout_ms);
  pthread_mutex_lock(&r->mu);
  bool ok;
  while (!(ok = (r->err == 0 && strcmp(r->set, set) == 0)))
    if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
  ok = r->err == 0 && strcmp(r->set, set) == 0;
  if (!ok)
    fprintf(stderr, "wait_set: want [%s] got [%s] err=%d detail=%s\n", set, r->set, r->err,
            r->detail);
  pthread_mutex_unlock(&r->mu);
  return ok;
}

bool kitd_test_recorder_wait_error(kitd_test_recorder *r, long after, long timeout_ms) {
  struct timespec ts;
  deadline(&ts, timeout_ms);
  pthread_mutex_lock(&r->mu);
  while (r->errors <= after)
    if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
  bool ok = r->errors > after;
  pthread_mutex_unlock(&r->mu);
  return ok;
}

long kitd_test_recorder_errors(kitd_test_recorder *r) {
  pthread_mutex_lock(&r->mu);
  long n = r->errors;
  pthread_mutex_unlock(&r->mu);
  return n;
}
