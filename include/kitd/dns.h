/* SPDX-License-Identifier: MIT */
/* libkitd: the DNS SRV instancer (go-kit's sd/dnssrv).
 *
 * It polls the SRV records of one name (Consul's DNS interface
 * "_web._tcp.service.consul", a Kubernetes headless service
 * "_http._tcp.web.default.svc.cluster.local", …), and the A/AAAA records
 * of each target when the answer's additional section does not carry
 * them. Each (target address, port) becomes an instance record:
 * - address "IP:PORT" ("[IPv6]:PORT");
 * - weight: the SRV weight when > 0 (else the record's default, 1);
 * - meta "priority" and "srv_weight": the SRV priority and weight, as
 *   decimal text; meta "target": the target host name.
 *
 * It asks again after min(TTL, max_refresh_ms), never sooner than
 * min_refresh_ms after the previous answer. NXDOMAIN, or a name without
 * SRV records, is a good answer: the set is empty. SERVFAIL, REFUSED, a
 * timeout or a server that is down keep the last good set (an error
 * event) and retry with backoff and jitter.
 *
 * Implementation: glibc's libresolv (res_nmkquery, ns_initparse,
 * ns_parserr) builds and parses the messages; the UDP (and, for a
 * truncated answer, TCP) exchange is our own non-blocking socket, so that
 * kitd_instancer_stop() interrupts a query in flight. c-ares was the
 * other candidate: it would add a dependency, and for one poll per TTL its
 * asynchrony buys nothing that a poll() on a stop fd does not; libresolv
 * ships with glibc. res_nquery itself was not used because it blocks for
 * its whole timeout and always reads /etc/resolv.conf. */
#ifndef KITD_DNS_H
#define KITD_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_dns_instancer_opts {
  size_t size; /* sizeof(kitd_dns_instancer_opts), set by _init */
  /* The name server, "IP:PORT", "[IPv6]:PORT" or a bare IP (port 53);
   * numeric only. NULL (the default): the servers of /etc/resolv.conf,
   * read again before each refresh. Copied. */
  const char *server;
  int64_t min_refresh_ms; /* default 1000: never ask more often */
  int64_t max_refresh_ms; /* default 300000: ask at least this often */
  int64_t timeout_ms;     /* per query attempt, default 2000 */
  unsigned attempts;      /* rounds over the servers, default 2 */
  int64_t backoff_min_ms; /* after a failure: default 500 */
  int64_t backoff_max_ms; /* default 30000 */
} kitd_dns_instancer_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_dns_instancer_opts_init(kitd_dns_instancer_opts *o);

/* A new instancer watching the SRV records of `name` (copied), on a
 * thread of its own. `o` is copied (NULL: defaults; a size this library
 * does not know: KITD_EINVAL). `lg` is borrowed and must outlive the
 * instancer (NULL: silent).
 * Returns 0 and a new instancer in *out (free with kitd_instancer_free()),
 * or KITD_EINVAL (no name, a bad server address), KITD_ECONFIG (no server
 * given and none in /etc/resolv.conf), KITD_ENOMEM or KITD_EINTERNAL (no
 * thread); *out is then untouched.
 * Thread-safety: any thread. */
KITD_API int kitd_dns_instancer_new(const char *name, const kitd_dns_instancer_opts *o,
                                    kitd_logger *lg, kitd_instancer **out);

/* Queries this instancer has sent so far (SRV, A and AAAA), or 0 for
 * another kind of instancer. For tests and benchmarks.
 * Thread-safety: any thread. */
KITD_API unsigned long kitd_dns_instancer_queries(const kitd_instancer *in);

#ifdef __cplusplus
}
#endif
#endif
