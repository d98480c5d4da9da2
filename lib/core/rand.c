/* SPDX-License-Identifier: MIT */
/* Seeding of the per-thread generators (rand.h). */
#include "core/rand.h"

#include <stdatomic.h>
#include <sys/random.h>
#include <time.h>

__thread uint64_t kitd__rand_state __attribute__((tls_model("initial-exec")));

uint64_t kitd__seed64(const void *salt) {
  static atomic_uint_fast64_t calls;
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
    /* No entropy yet (early boot) or no syscall: the clock will do for
     * spreading load; nothing here is a secret. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
  }
  uint64_t c = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
  uint64_t x = kitd__mix64(r ^ (uint64_t)(uintptr_t)salt ^ (c << 48) ^
                           (uint64_t)(uintptr_t)&kitd__rand_state);
  return x ? x : 0x2545f4914f6cdd1dull;
}

uint64_t kitd__rand_seed_thread(void) {
  uint64_t x = 0;
  return kitd__seed64(&x);
}
