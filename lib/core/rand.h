/* SPDX-License-Identifier: MIT */
/* Internal: the library's one random generator, xorshift64*, behind every
 * jitter and random pick. Each thread has its own state, seeded once from
 * getrandom() (mixed with the thread's address, so threads differ even if
 * getrandom fails). Not for secrets; fast, and good enough to spread load
 * and backoffs. */
#ifndef KITD_CORE_RAND_H
#define KITD_CORE_RAND_H

#include <stddef.h>
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

/* splitmix64: a good 64-bit mix of a counter. */
static inline uint64_t kitd__mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* A fresh 64-bit seed: getrandom(), mixed with a process-wide counter and
 * `salt` (so two calls never return the same value). Never 0. */
uint64_t kitd__seed64(const void *salt);

/* The calling thread's generator (lazily seeded with kitd__seed64). */
extern __thread uint64_t kitd__rand_state __attribute__((tls_model("initial-exec")));
uint64_t kitd__rand_seed_thread(void);
static inline uint64_t kitd__rand64(void) {
  if (__builtin_expect(kitd__rand_state == 0, 0)) kitd__rand_state = kitd__rand_seed_thread();
  return kitd__xorshift64s(&kitd__rand_state);
}

/* Uniform in [0, n] (n >= 0). */
static inline uint64_t kitd__rand_upto(uint64_t n) {
  return n == UINT64_MAX ? kitd__rand64() : kitd__rand64() % (n + 1);
}

#endif
