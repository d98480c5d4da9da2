/* SPDX-License-Identifier: MIT */
/* Internal: logging helpers shared by the registries. Not API. */
#ifndef KITD_CORE_LOG_IMPL_H
#define KITD_CORE_LOG_IMPL_H

#include "kitd/log.h"

/* `value` as a logfmt value (kitd_log_quote) in a new string of the size
 * it needs, or NULL when out of memory. free() it. */
char *kitd__log_quote_dup(const char *value);

/* Log "KEY=VALUE REST" (VALUE quoted, REST formatted) if `lvl` is
 * enabled: a registry's lines all start with what it watches. */
void kitd__log_about(kitd_logger *lg, kitd_log_level lvl, const char *component, const char *key,
                     const char *value, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
