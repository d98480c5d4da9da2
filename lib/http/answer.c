/* SPDX-License-Identifier: MIT */
/* The answer's headers for decode callbacks (answer.h). A thread-local
 * pointer into the transport's own buffer: no copy and no allocation on
 * the call path, and nothing to free. */
#include "http/answer.h"

static __thread const char *answer_ctype;
static __thread size_t answer_ctype_len;

const char *kitd__http_answer_content_type(size_t *len) {
  if (len) *len = answer_ctype_len;
  return answer_ctype;
}

void kitd__http_answer_set(const char *ctype, size_t len) {
  answer_ctype = ctype;
  answer_ctype_len = ctype ? len : 0;
}
