/* Allocation with a failure hook for tests (alloc.h). */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;
static atomic_long alloc_count;

static int should_fail(void) {
  atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
  if (atomic_load_explicit(&fail_countdown, memory_order_relaxed) < 0) return 0;
  return atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed) == 0;
}

long kitd__alloc_fail_after(long n) {
  atomic_store(&fail_countdown, n < 0 ? -1 : n);
  return atomic_exchange(&alloc_count, 0);
}

void *kitd__malloc(size_t n) { return should_fail() ? NULL : malloc(n); }
void *kitd__calloc(size_t n, size_t size) { return should_fail() ? NULL : calloc(n, size); }
void *kitd__realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n); }
char *kitd__strdup(const char *s) { return should_fail() ? NULL : strdup(s); }
char *kitd__strndup(const char *s, size_t n) { return should_fail() ? NULL : strndup(s, n); }
