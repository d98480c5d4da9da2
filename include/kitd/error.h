/* SPDX-License-Identifier: MIT */
/* libkitd: error codes.
 * Every fallible call returns 0 or one of these negative codes. Detail text
 * (the bad field, the upstream status) goes into a kitd_ctx or an event,
 * never into the code. Codes are only appended; numbers never change. */
#ifndef KITD_ERROR_H
#define KITD_ERROR_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KITD_ERRNO_MAP(X)                                                                          \
  X(EINVAL, -1, "invalid argument")                                                                \
  X(ENOMEM, -2, "out of memory")                                                                   \
  X(ENOENDPOINTS, -3, "no endpoints available")                                                    \
  X(ETIMEDOUT, -4, "deadline exceeded")                                                            \
  X(ECANCELED, -5, "canceled")                                                                     \
  X(ECONNECT, -6, "connection failed")                                                             \
  X(EHTTP, -7, "HTTP error status")                                                                \
  X(EPROTO, -8, "malformed answer")                                                                \
  X(ETOOBIG, -9, "answer too large")                                                               \
  X(ESTOPPED, -10, "stopped")                                                                      \
  X(ENOTFOUND, -11, "not found")                                                                   \
  X(EEXIST, -12, "already exists")                                                                 \
  X(EACL, -13, "permission denied by ACL")                                                         \
  X(EIO, -14, "I/O error")                                                                         \
  X(ECONFIG, -16, "invalid configuration")                                                         \
  X(ETLS, -17, "TLS error")                                                                        \
  X(EINTERNAL, -18, "internal error")

typedef enum kitd_errno {
#define KITD__ERR_ENUM(name, val, msg) KITD_##name = (val),
  KITD_ERRNO_MAP(KITD__ERR_ENUM)
#undef KITD__ERR_ENUM
  KITD_OK = 0
} kitd_errno;

/* A static, human-readable message for `err` ("unknown error" for a code
 * this build does not know). Never NULL; do not free.
 * Thread-safety: any thread. */
KITD_API const char *kitd_strerror(int err);

/* The code's symbolic name without the prefix ("ENOENDPOINTS"), or "UNKNOWN".
 * Thread-safety: any thread. */
KITD_API const char *kitd_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
