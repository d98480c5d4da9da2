/* SPDX-License-Identifier: MIT */
/* Internal: libkitd's allocation calls. Not API. They go to the C library,
 * except that a test may make the Nth allocation from now fail (jansson's
 * chaos test, libcurl's torture mode): every constructor must then return
 * KITD_ENOMEM without leaking or crashing. A counter of all allocations
 * feeds the benchmarks' "allocs/op" figures. Memory from these functions is
 * released with plain free(). */
#ifndef KITD_CORE_ALLOC_H
#define KITD_CORE_ALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *kitd__malloc(size_t n);
void *kitd__calloc(size_t n, size_t size);
void *kitd__realloc(void *p, size_t n);
char *kitd__strdup(const char *s);
char *kitd__strndup(const char *s, size_t n);
/* A new string formatted as by printf (no length limit: for text that
 * holds what a user or a server gave), or NULL (no memory, bad format). */
char *kitd__asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kitd__vasprintf(const char *fmt, va_list ap);
/* `align` a power of two >= sizeof(void *); `n` is rounded up to it. */
void *kitd__aligned_alloc(size_t align, size_t n);

/* Tests only: fail the allocation `n` calls from now (0: the next one),
 * once; -1 turns failures off. Returns how many allocations have been made
 * since the last call (so a test can find how many a constructor needs). */
long kitd__alloc_fail_after(long n);
/* Tests only: has the armed failure fired since kitd__alloc_fail_after()? */
int kitd__alloc_failed(void);
/* Allocations made since the process started (never reset). */
unsigned long kitd__alloc_count(void);

#endif
