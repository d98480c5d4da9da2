/* SPDX-License-Identifier: MIT */
/* Allocation with a failure hook for tests and a counter (alloc.h). */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;
static atomic_ulong total;
static unsigned long total_at_arm;
static atomic_int fired;

/* One atomic add per allocation (the running count); the hook off costs a
 * relaxed load more. Two adds made the allocator hook 7% of a 10,000-
 * instance endpointer update. */
static int should_fail(void) {
  atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
  if (__builtin_expect(atomic_load_explicit(&fail_countdown, memory_order_relaxed) < 0, 1))
    return 0;
  if (atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed) != 0) return 0;
  atomic_store_explicit(&fired, 1, memory_order_relaxed);
  return 1;
}

long kitd__alloc_fail_after(long n) {
  atomic_store(&fired, 0);
  atomic_store(&fail_countdown, n < 0 ? -1 : n);
  unsigned long now = atomic_load(&total);
  long since = (long)(now - total_at_arm);
  total_at_arm = now;
  return since;
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

char *kitd__vasprintf(const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  char *s = n >= 0 ? kitd__malloc((size_t)n + 1) : NULL;
  if (s && vsnprintf(s, (size_t)n + 1, fmt, ap) != n) {
    free(s);
    s = NULL;
  }
  return s;
}

char *kitd__asprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = kitd__vasprintf(fmt, ap);
  va_end(ap);
  return s;
}

void *kitd__aligned_alloc(size_t align, size_t n) {
  if (should_fail()) return NULL;
  size_t rounded = (n + align - 1) / align * align;
  void *p = NULL;
  return posix_memalign(&p, align, rounded ? rounded : align) == 0 ? p : NULL;
}
