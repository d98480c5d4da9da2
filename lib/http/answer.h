/* SPDX-License-Identifier: MIT */
/* Internal: what a decode callback may learn of the answer beyond its
 * status and body. Not API. The transport sets it on the calling thread
 * just before decode runs and clears it after, so it is valid only inside
 * a decode callback (kitd_client's raw codec passes the answer's
 * Content-Type through). */
#ifndef KITD_HTTP_ANSWER_H
#define KITD_HTTP_ANSWER_H

#include <stddef.h>

/* The answer's Content-Type value (*len bytes, not NUL-terminated), or
 * NULL when it had none or outside a decode callback. */
const char *kitd__http_answer_content_type(size_t *len);

/* Transport side: set (or, with NULL, clear) the value for this thread. */
void kitd__http_answer_set(const char *ctype, size_t len);

#endif
