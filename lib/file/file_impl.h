/* SPDX-License-Identifier: MIT */
/* Internal: the file instancer's parser (unit-tested alone). Not API. */
#ifndef KITD_FILE_IMPL_H
#define KITD_FILE_IMPL_H

#include <stddef.h>

#include "kitd/instance.h"

/* Parse `len` bytes of `text` (lines or a JSON array; see kitd/file.h).
 * `label` names the file in the detail ("lorem.list:3: not host:port").
 * Returns 0 with a new array of new records (may be empty: NULL, 0), or
 * KITD_EPROTO / KITD_ENOMEM with a new detail string (free()) in *detail. */
int kitd__file_parse(const char *label, const char *text, size_t len, kitd_instance ***out,
                     size_t *count, char **detail);

#endif
