/* SPDX-License-Identifier: MIT */
/* Figures of the balancers that learn from outcomes (the scenarios their
 * tests assert, tests/unit/lb/lb_scenarios.h):
 *   lb/wrr/share/<A|B|C>          weights 1:2:7 over 10^5 picks, %
 *   lb/wrr/twice_in_a_row         an instance under 50% picked twice running
 *   lb/slow_instance_share        P2C, one of 3 instances 10x slower, %
 *                                 (/inflight=8: 8 calls in flight)
 *   lb/outlier/failed_calls       retry over 3 instances, one starts failing
 *   lb/outlier/attempts_after_ejection
 *   retry/budget/attempts_per_call  retry(3), backend failing 100%
 * Deterministic (latencies are reported, not slept): one run each. */
#include <stdio.h>

#include "../unit/lb/lb_scenarios.h"

int main(void) {
  double sh[3];
  int twice = sc_wrr_shares(100000, sh);
  printf("bench lb/wrr/share/A %.2f %%\n", sh[0]);
  printf("bench lb/wrr/share/B %.2f %%\n", sh[1]);
  printf("bench lb/wrr/share/C %.2f %%\n", sh[2]);
  printf("bench lb/wrr/twice_in_a_row %d picks\n", twice);
  printf("bench lb/slow_instance_share %.2f %%\n", sc_slow_share(100000, 1));
  printf("bench lb/slow_instance_share/inflight=8 %.2f %%\n", sc_slow_share(100000, 8));
  int after;
  int failed = sc_outlier(10000, &after);
  printf("bench lb/outlier/failed_calls %d calls\n", failed);
  printf("bench lb/outlier/attempts_after_ejection %d attempts\n", after);
  double bound;
  double per = sc_budget(100000, &bound);
  printf("bench retry/budget/attempts_per_call %.3f attempts (limit %.3f)\n", per, bound);
  return 0;
}
