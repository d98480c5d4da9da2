/* SPDX-License-Identifier: MIT */
/* Internal: the endpoint's fields, for the metrics hook of the balancers. */
#ifndef KITD_CORE_ENDPOINT_IMPL_H
#define KITD_CORE_ENDPOINT_IMPL_H

#include <stdatomic.h>

#include "core/metrics_impl.h"
#include "kitd/endpoint.h"

struct kitd_endpoint {
  kitd_endpoint_fn fn;
  kitd_endpoint_close_fn close;
  void *state;
  long refs; /* atomic builtins */
  /* The counters of the instance behind the endpoint, set by the first
   * counted pick (a reference, dropped with the endpoint); NULL: none. */
  _Atomic(struct kitd__minst *) minst;
};

#endif
