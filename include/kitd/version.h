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
#define KITD_VERSION_HEX \
  ((KITD_VERSION_MAJOR << 16) | (KITD_VERSION_MINOR << 8) | KITD_VERSION_PATCH)
#define KITD_SOVERSION 0 /* bumped only when an existing call or type changes */

/* KITD_VERSION_HEX of the library actually linked.
 * Thread-safety: any thread. */
KITD_API unsigned kitd_version(void);

#ifdef __cplusplus
}
#endif
#endif
