/* SPDX-License-Identifier: MIT */
/* GET /metrics of the lorem programs (see metrics.h). */
#include "lorem/metrics.h"

#include <stdio.h>
#include <stdlib.h>

char *lorem_metrics_text(kitd_metrics *m, size_t *len) {
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  if (!f) return NULL;
  int rc = kitd_metrics_write_prometheus(m, f);
  if (fclose(f) != 0 || rc != 0) {
    free(text);
    return NULL;
  }
  return text;
}
