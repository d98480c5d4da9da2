/* SPDX-License-Identifier: MIT */
/* DNS SRV benchmark against the real dnsmasq:
 *   dns/queries_per_min   queries one watched name costs at TTL 30 s with
 *                         the default refresh bounds (goal <= 2). Measured
 *                         as 60 s over the mean gap between consecutive
 *                         queries after the first answer (a count over a
 *                         fixed window is off by one at its edges), over
 *                         KITD_BENCH_DNS_SECONDS (default 65: two gaps).
 *   dns/queries           the queries sent in that window (SRV, A, AAAA).
 *   dns/srv_queries_logged what dnsmasq logged for the name meanwhile. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../support/dnsmasq_server.h"
#include "kitd/ctx.h"
#include "kitd/dns.h"
#include "kitd/instancer.h"

int main(void) {
  if (!kitd_test_dnsmasq_available()) {
    fprintf(stderr, "bench_dns: dnsmasq not installed (make deps)\n");
    return 1;
  }
  const char *env = getenv("KITD_BENCH_DNS_SECONDS");
  long secs = env && atol(env) > 0 ? atol(env) : 65;
  static const char *const args[] = {"--local-ttl=30",
                                     "--srv-host=_lorem._tcp.test,a.test,8001,0,10",
                                     "--host-record=a.test,127.0.0.1", NULL};
  kitd_test_dnsmasq dm;
  if (kitd_test_dnsmasq_start(&dm, args) != 0) return 1;
  kitd_dns_instancer_opts o;
  kitd_dns_instancer_opts_init(&o); /* default bounds: 1 s .. 5 min */
  o.server = dm.addr;
  kitd_instancer *in = NULL;
  if (kitd_dns_instancer_new("_lorem._tcp.test", &o, NULL, &in) != 0 ||
      kitd_instancer_wait_ready(in, 10000) != 0) {
    fprintf(stderr, "bench_dns: no first answer\n");
    kitd_instancer_free(in);
    kitd_test_dnsmasq_free(&dm);
    return 1;
  }
  long logged0 = kitd_test_dnsmasq_count(&dm, "query[SRV] _lorem._tcp.test");
  unsigned long q0 = kitd_dns_instancer_queries(in), last = q0;
  int64_t start = kitd_now_ns(), end = start + secs * 1000000000LL;
  int64_t first_ns = 0, last_ns = 0;
  unsigned long changes = 0;
  while (kitd_now_ns() < end) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
    unsigned long q = kitd_dns_instancer_queries(in);
    if (q != last) {
      int64_t now = kitd_now_ns();
      if (!first_ns) first_ns = now;
      last_ns = now;
      changes++;
      last = q;
    }
  }
  unsigned long sent = last - q0;
  long logged = kitd_test_dnsmasq_count(&dm, "query[SRV] _lorem._tcp.test") - logged0;
  kitd_instancer_free(in);
  kitd_test_dnsmasq_free(&dm);
  /* The gaps: from the first answer to the first refresh, then between
   * refreshes. */
  double per_min = 0;
  if (changes >= 1) {
    double span = (double)(last_ns - start) / 1e9;
    per_min = 60.0 * (double)changes / span;
  }
  (void)first_ns;
  printf("bench dns/queries_per_min %.2f queries\n", per_min);
  printf("bench dns/queries %lu count\n", sent);
  printf("bench dns/srv_queries_logged %ld count\n", logged);
  return 0;
}
