/* Internal: the allocator every part of libkitd goes through. Not API.
 *
 * It is plain malloc, plus two things tests and benchmarks need:
 *  - a failure hook: kitd__alloc_fail_after(n) lets the next n allocations
 *    succeed and makes the one after fail (once), so a test can raise n from
 *    0 until a constructor succeeds and check every failure path on the way
 *    (jansson's chaos test, libcurl's torture);
 *  - a counter of allocations, for the benchmarks' "allocs/op" figures.
 * Memory from these functions is released with plain free(). */
#ifndef KITD_CORE_ALLOC_H
#define KITD_CORE_ALLOC_H

#include <stddef.h>

void *kitd__malloc(size_t n);
void *kitd__calloc(size_t nmemb, size_t size);
void *kitd__realloc(void *p, size_t n);
char *kitd__strdup(const char *s);
/* `align` a power of two >= sizeof(void *); `n` any size (rounded up). */
void *kitd__aligned_alloc(size_t align, size_t n);

/* Let the next `n` allocations succeed, fail the one after (once); n < 0
 * turns the hook off. Returns nothing; any thread (tests call it from one). */
void kitd__alloc_fail_after(long n);
/* Has the hook fired since it was last armed? */
int kitd__alloc_failed(void);
/* Allocations made through this allocator since the process started. */
unsigned long kitd__alloc_count(void);

#endif
