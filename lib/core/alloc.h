/* Internal: libkitd's allocation calls. They go to the C library, except
 * that a test may make the Nth allocation from now fail (jansson's chaos
 * test, libcurl's torture mode): every constructor must then return
 * KITD_ENOMEM without leaking or crashing. */
#ifndef KITD_CORE_ALLOC_H
#define KITD_CORE_ALLOC_H

#include <stddef.h>

void *kitd__malloc(size_t n);
void *kitd__calloc(size_t n, size_t size);
void *kitd__realloc(void *p, size_t n);
char *kitd__strdup(const char *s);
char *kitd__strndup(const char *s, size_t n);

/* Tests only: fail the allocation `n` calls from now (0: the next one);
 * -1 turns failures off. Returns how many allocations have been made since
 * the last call (so a test can find how many a constructor needs). */
long kitd__alloc_fail_after(long n);

#endif
