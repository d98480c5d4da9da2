/* SPDX-License-Identifier: MIT */
/* libkitd: symbol export macro.
 * The library is built with -fvisibility=hidden; only declarations marked
 * KITD_API are part of the ABI. */
#ifndef KITD_EXPORT_H
#define KITD_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define KITD_API __attribute__((visibility("default")))
#else
#define KITD_API
#endif

#endif
