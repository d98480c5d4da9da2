/* The internal allocator: malloc with a failure hook and a counter. */
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

/* -1: hook off. Otherwise the number of allocations still allowed to
 * succeed before one fails. Relaxed atomics: the hook is armed by a test
 * before it starts threads; the counter is statistics. */
static long fail_after = -1;
static int failed;
static unsigned long count;

void kitd__alloc_fail_after(long n) {
  __atomic_store_n(&failed, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&fail_after, n < 0 ? -1 : n, __ATOMIC_RELAXED);
}

int kitd__alloc_failed(void) { return __atomic_load_n(&failed, __ATOMIC_RELAXED); }

unsigned long kitd__alloc_count(void) { return __atomic_load_n(&count, __ATOMIC_RELAXED); }

/* 1 if this allocation must fail. The off case costs one relaxed load. */
static int should_fail(void) {
  __atomic_add_fetch(&count, 1, __ATOMIC_RELAXED);
  long n = __atomic_load_n(&fail_after, __ATOMIC_RELAXED);
  if (__builtin_expect(n < 0, 1)) return 0;
  n = __atomic_sub_fetch(&fail_after, 1, __ATOMIC_RELAXED);
  if (n == -1) {
    __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
    return 1; /* this one fails; the hook is now off (-1) */
  }
  if (n < -1) __atomic_store_n(&fail_after, -1, __ATOMIC_RELAXED);
  return 0;
}

void *kitd__malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *kitd__calloc(size_t nmemb, size_t size) {
  if (nmemb == 0 || size == 0) nmemb = size = 1;
  return should_fail() ? NULL : calloc(nmemb, size);
}

void *kitd__realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }

char *kitd__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = kitd__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

void *kitd__aligned_alloc(size_t align, size_t n) {
  if (should_fail()) return NULL;
  void *p = NULL;
  size_t rounded = (n + align - 1) / align * align;
  if (posix_memalign(&p, align, rounded ? rounded : align) != 0) return NULL;
  return p;
}
