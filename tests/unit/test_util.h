/* SPDX-License-Identifier: MIT */
/* Shared helpers for the unit tests (header-only). */
#ifndef KITD_TEST_UTIL_H
#define KITD_TEST_UTIL_H

#include <stdlib.h>
#include <time.h>

/* Timeouts grow under valgrind and sanitizers (KITD_TEST_TIMEOUT_SCALE). */
static inline long test_scale(void) {
  const char *s = getenv("KITD_TEST_TIMEOUT_SCALE");
  long v = s ? atol(s) : 1;
  return v > 0 ? v : 1;
}

static inline void test_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

#endif
