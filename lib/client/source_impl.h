/* SPDX-License-Identifier: MIT */
/* Internal: the source string parser (unit-tested alone). Not API. */
#ifndef KITD_CLIENT_SOURCE_IMPL_H
#define KITD_CLIENT_SOURCE_IMPL_H

#include <stddef.h>

enum kitd__source_kind {
  KITD__SOURCE_CONSUL,
  KITD__SOURCE_ETCD,
  KITD__SOURCE_DNS_SRV,
  KITD__SOURCE_FILE
};

struct kitd__source {
  enum kitd__source_kind kind;
  char *host;  /* "HOST:PORT" as written, or NULL (environment / resolv.conf) */
  char *name;  /* Consul service, etcd prefix, SRV name or file path (decoded) */
  char **tags; /* Consul tag= values (decoded) */
  size_t ntags;
  int passing; /* Consul passing=: -1 unset, 0, 1 */
  char *dc;    /* Consul dc= */
};

/* Parse `s`. Returns 0 with `out` filled (free with kitd__source_clear),
 * or KITD_EINVAL / KITD_ENOMEM with a new detail (free()) in *detail. */
int kitd__source_parse(const char *s, struct kitd__source *out, char **detail);
void kitd__source_clear(struct kitd__source *src);

#endif
