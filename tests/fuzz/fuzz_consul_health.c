/* SPDX-License-Identifier: MIT */
/* Fuzz target: the Consul health answer parser. */
#include <stdint.h>
#include <stdlib.h>

#include "consul/consul_impl.h"
#include "kitd/instancer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const tags[] = {"web", "V2"};
  kitd_instance **set = NULL;
  size_t n = 0;
  char detail[256];
  for (int mode = 0; mode < 2; mode++) {
    if (kitd__consul_parse_health((const char *)data, size, tags, (size_t)mode * 2, mode == 0, NULL,
                                  &set, &n, detail, sizeof detail) == 0)
      kitd_instance_list_free(set, n);
  }
  return 0;
}
