/* SPDX-License-Identifier: MIT */
/* Fuzz the gateway's JSON request parser: any bytes; never a crash, and a
 * parsed request is always within the generator's limits. Seeds (from the
 * http2 branch): JSON bodies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorem/gwreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lorem_request rq;
  char err[256];
  if (lorem_gw_parse((const char *)data, size, &rq, err, sizeof err) == 0) {
    int lim = lorem_limit(rq.type);
    if (rq.min < 0 || rq.max < 0 || rq.min > lim || rq.max > lim) abort();
  } else if (memchr(err, '\0', sizeof err) == NULL || !err[0]) {
    abort();
  }
  return 0;
}
