/* Allocation with a failure hook for tests and a counter (alloc.h). */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;
static atomic_long since_arm;
static atomic_ulong total;
static atomic_int fired;

/* The hook off costs one relaxed load besides the counters. */
static int should_fail(void) {
  atomic_fetch_add_explicit(&since_arm, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
  if (atomic_load_explicit(&fail_countdown, memory_order_relaxed) < 0) return 0;
  if (atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed) != 0) return 0;
  atomic_store_explicit(&fired, 1, memory_order_relaxed);
  return 1;
}

long kitd__alloc_fail_after(long n) {
  atomic_store(&fired, 0);
  atomic_store(&fail_countdown, n < 0 ? -1 : n);
  return atomic_exchange(&since_arm, 0);
}

int kitd__alloc_failed(void) { return atomic_load(&fired); }

unsigned long kitd__alloc_count(void) { return atomic_load(&total); }

void *kitd__malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }
void *kitd__calloc(size_t n, size_t size) {
  if (n == 0 || size == 0) n = size = 1;
  return should_fail() ? NULL : calloc(n, size);
}
void *kitd__realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }
char *kitd__strdup(const char *s) { return should_fail() ? NULL : strdup(s); }
char *kitd__strndup(const char *s, size_t n) { return should_fail() ? NULL : strndup(s, n); }

void *kitd__aligned_alloc(size_t align, size_t n) {
  if (should_fail()) return NULL;
  size_t rounded = (n + align - 1) / align * align;
  void *p = NULL;
  return posix_memalign(&p, align, rounded ? rounded : align) == 0 ? p : NULL;
}
