/* SPDX-License-Identifier: MIT */
/* Fuzz the lorem server's router: any bytes as the path, under POST and
 * GET; never a crash, and a routed request always generates text within
 * LOREM_OUT_MAX with a printable error text otherwise. Seeds (from the
 * http2 branch): plain paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lorem/lorem.h"
#include "lorem/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const methods[] = {"POST", "GET"};
  for (int m = 0; m < 2; m++) {
    lorem_route r;
    int st = lorem_route_parse(methods[m], (const char *)data, size, &r);
    if (st != r.status) abort();
    if (r.kind == LOREM_ROUTE_LOREM) {
      static char buf[LOREM_OUT_MAX];
      lorem_rng g;
      lorem_seed(&g, size);
      if (lorem_generate(&g, r.type, r.min, r.max, buf, sizeof buf) < 0) abort();
    } else if (r.kind == LOREM_ROUTE_ERROR) {
      if (memchr(r.error, '\0', sizeof r.error) == NULL) abort();
      for (const char *e = r.error; *e; e++)
        if (*e < 0x20 || *e == 0x7f) abort();
    }
  }
  return 0;
}
