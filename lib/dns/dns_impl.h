/* SPDX-License-Identifier: MIT */
/* Internal: DNS wire exchange and SRV resolution for the DNS instancer.
 * Not API. Queries are built and parsed with glibc's libresolv
 * (res_nmkquery, ns_initparse, ns_parserr, ns_name_uncompress); the socket
 * I/O is ours, so that a stop wakes a query in flight (res_nquery blocks
 * for its whole timeout and cannot be interrupted). */
#ifndef KITD_DNS_IMPL_H
#define KITD_DNS_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kitd/instance.h"

struct kitd__dns_server {
  struct sockaddr_storage sa;
  socklen_t len;
};

typedef struct kitd__dns {
  struct kitd__dns_server *servers; /* the configured one, or resolv.conf's */
  size_t nservers;
  int fixed;             /* 1: a configured server; 0: re-read resolv.conf */
  int64_t timeout_ms;    /* per attempt */
  unsigned attempts;     /* per server */
  int wake_fd;           /* eventfd: readable once stopped; -1: none */
  uint64_t rng;          /* query IDs */
  unsigned long queries; /* queries sent (atomic; the bench reads it) */
} kitd__dns;

/* Parse "host:port", "[v6]:port", "v4", "[v6]" or "v6" (port 53 when
 * missing) as a numeric address. Returns 0 or KITD_EINVAL. */
int kitd__dns_parse_server(const char *s, struct kitd__dns_server *out);

/* Load the servers of /etc/resolv.conf (through res_ninit) into d.
 * Returns 0, KITD_ECONFIG (none) or KITD_ENOMEM. */
int kitd__dns_load_system(kitd__dns *d);

/* Resolve SRV `name`: A/AAAA of each target from the additional section,
 * else by a query of their own. Returns 0 with a new array of new records
 * (sorted later by the instancer) in *out / *count and the smallest TTL
 * seen in *ttl (NXDOMAIN or no SRV: 0 records, the negative TTL);
 * KITD_ESTOPPED; or an error (KITD_ETIMEDOUT, KITD_ECONNECT, KITD_EIO for
 * SERVFAIL/REFUSED/other rcodes, KITD_EPROTO, KITD_ENOMEM) with a new
 * detail string in *detail (free() it). */
int kitd__dns_resolve_srv(kitd__dns *d, const char *name, kitd_instance ***out, size_t *count,
                          uint32_t *ttl, char **detail);

#endif
