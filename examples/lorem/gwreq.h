/* SPDX-License-Identifier: MIT */
/* The gateway's request parser, a pure function (fuzzed):
 *   {"requestType": "word"|"sentence"|"paragraph", "min": N, "max": N}
 * requestType is matched without regard to case; min and max are JSON
 * integers in 0..lorem_limit(type); other fields are ignored; duplicate
 * keys are rejected; bodies over LOREM_GWREQ_MAX bytes are rejected. */
#ifndef LOREM_GWREQ_H
#define LOREM_GWREQ_H

#include <stddef.h>

#include "lorem/pipeline.h"

#define LOREM_GWREQ_MAX 4096 /* larger bodies: 413 at the gateway */

/* Returns 0 and fills *out, or -1 with a message in err (cap bytes). */
int lorem_gw_parse(const char *body, size_t len, lorem_request *out, char *err, size_t cap);

#endif
