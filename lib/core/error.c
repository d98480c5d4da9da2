/* SPDX-License-Identifier: MIT */
/* Error codes: names and messages. */
#include "kitd/error.h"

/* A switch on the enum, with no default case, so that -Wall flags a code
 * added to KITD_ERRNO_MAP without a message here (it cannot happen with the
 * X-macro, but keeps the compiler checking if someone splits the list). */
const char *kitd_strerror(int err) {
  switch ((kitd_errno)err) {
#define KITD__ERR_MSG(name, val, msg)                                                              \
  case KITD_##name: return msg;
    KITD_ERRNO_MAP(KITD__ERR_MSG)
#undef KITD__ERR_MSG
  case KITD_OK: return "success";
  }
  return "unknown error";
}

const char *kitd_err_name(int err) {
  switch ((kitd_errno)err) {
#define KITD__ERR_NAME(name, val, msg)                                                             \
  case KITD_##name: return #name;
    KITD_ERRNO_MAP(KITD__ERR_NAME)
#undef KITD__ERR_NAME
  case KITD_OK: return "OK";
  }
  return "UNKNOWN";
}
