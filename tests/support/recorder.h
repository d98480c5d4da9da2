/* SPDX-License-Identifier: MIT */
/* Test helper: a subscriber that records an instancer's events. */
#ifndef KITD_TEST_RECORDER_H
#define KITD_TEST_RECORDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kitd/instancer.h"

typedef struct kitd_test_recorder {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char set[8192];      /* last event's instances joined with ',' */
  int err;             /* last event's error */
  char detail[512];    /* last event's detail */
  long events, errors; /* counts */
  int64_t last_ns;     /* kitd_now_ns() of the last event */
} kitd_test_recorder;

void kitd_test_recorder_init(kitd_test_recorder *r);
void kitd_test_recorder_destroy(kitd_test_recorder *r);
/* The kitd_event_fn to subscribe with `r` as arg. */
void kitd_test_recorder_fn(void *arg, const kitd_event *ev);
/* Wait until the last event is a good set equal to `set` ("a,b"); true if
 * it came within timeout_ms. */
bool kitd_test_recorder_wait_set(kitd_test_recorder *r, const char *set, long timeout_ms);
/* Wait until `errors` exceeds `after`; true if within timeout_ms. */
bool kitd_test_recorder_wait_error(kitd_test_recorder *r, long after, long timeout_ms);
long kitd_test_recorder_errors(kitd_test_recorder *r);

#endif
