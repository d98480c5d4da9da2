/* SPDX-License-Identifier: MIT */
/* libkitd: version macros. The Makefile reads the numbers from here. */
#ifndef KITD_VERSION_H
#define KITD_VERSION_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KITD_VERSION_MAJOR 0
#define KITD_VERSION_MINOR 1
#define KITD_VERSION_PATCH 0
#define KITD_VERSION_HEX                                                                           \
  ((KITD_VERSION_MAJOR << 16) | (KITD_VERSION_MINOR << 8) | KITD_VERSION_PATCH)
#define KITD_SOVERSION 0 /* bumped only when an existing call or type changes */
/* "MAJOR.MINOR.PATCH" of these headers, made from the numbers above. */
#define KITD__VERSION_STR(x) #x
#define KITD__VERSION_XSTR(x) KITD__VERSION_STR(x)
#define KITD_VERSION_STRING                                                                        \
  KITD__VERSION_XSTR(KITD_VERSION_MAJOR)                                                           \
  "." KITD__VERSION_XSTR(KITD_VERSION_MINOR) "." KITD__VERSION_XSTR(KITD_VERSION_PATCH)

/* KITD_VERSION_HEX of the library actually linked.
 * Thread-safety: any thread. */
KITD_API unsigned kitd_version(void);

/* "MAJOR.MINOR.PATCH" of the library actually linked, e.g. "0.1.0"
 * (KITD_VERSION_STRING when it was built). Static: never free it.
 * Thread-safety: any thread. */
KITD_API const char *kitd_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
