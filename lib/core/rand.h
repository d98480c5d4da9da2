/* Internal: xorshift64*, the generator behind every jitter and random pick.
 * Not for secrets; fast, and good enough to spread load and backoffs. */
#ifndef KITD_CORE_RAND_H
#define KITD_CORE_RAND_H

#include <stdint.h>

/* Advance *s (never 0) and return the next 64-bit value. */
static inline uint64_t kitd__xorshift64s(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

#endif
