/* SPDX-License-Identifier: MIT */
/* Fuzz what an etcd key's value becomes: the input is given as is to the
 * instance value parser ("host:port" or a JSON object), and as base64 to
 * the decoder (then encoded back). Every outcome must be 0 with a record,
 * or KITD_EPROTO / KITD_ENOMEM with a detail and no record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcd_impl.h"
#include "kitd/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  kitd_instance *in = NULL;
  char why[128] = "";
  int rc = kitd__etcd_parse_value((const char *)data, size, &in, why, sizeof why);
  if (rc == 0) {
    if (!in || !*kitd_instance_address(in)) abort();
    kitd_instance_unref(in);
  } else if ((rc != KITD_EPROTO && rc != KITD_ENOMEM) || in || (rc == KITD_EPROTO && !why[0])) {
    abort();
  }
  unsigned char *d = NULL;
  size_t n = 0;
  if (kitd__b64_decode((const char *)data, size, &d, &n) == 0) {
    char *e = kitd__b64_encode(d, n);
    unsigned char *d2 = NULL;
    size_t n2 = 0;
    if (e && (kitd__b64_decode(e, strlen(e), &d2, &n2) != 0 || n2 != n || memcmp(d, d2, n) != 0))
      abort();
    free(d2);
    free(e);
    free(d);
  }
  return 0;
}
