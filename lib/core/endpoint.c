/* SPDX-License-Identifier: MIT */
/* kitd_endpoint: a refcounted callable. */
#include "core/alloc.h"
#include "core/endpoint_impl.h"

#include <stdlib.h>

#include "kitd/error.h"

int kitd_endpoint_new(kitd_endpoint_fn fn, kitd_endpoint_close_fn close, void *state,
                      kitd_endpoint **out) {
  /* `state` is taken on every path (jansson's rule): a caller may write
   * kitd_endpoint_new(f, free, strdup(x), &e) and leak nothing. */
  kitd_endpoint *ep = fn && out ? kitd__malloc(sizeof *ep) : NULL;
  if (!ep) {
    if (close && state) close(state);
    return fn && out ? KITD_ENOMEM : KITD_EINVAL;
  }
  ep->fn = fn;
  ep->close = close;
  ep->state = state;
  ep->refs = 1;
  atomic_init(&ep->minst, NULL);
  *out = ep;
  return 0;
}

kitd_endpoint *kitd_endpoint_ref(kitd_endpoint *ep) {
  if (ep) __atomic_add_fetch(&ep->refs, 1, __ATOMIC_RELAXED);
  return ep;
}

void kitd_endpoint_unref(kitd_endpoint *ep) {
  if (!ep) return;
  /* acq_rel: every use by other holders happens before the close. */
  if (__atomic_sub_fetch(&ep->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  if (ep->close) ep->close(ep->state);
  kitd__minst_unref(atomic_load_explicit(&ep->minst, memory_order_acquire));
  free(ep);
}

int kitd_endpoint_call(kitd_endpoint *ep, kitd_ctx *ctx, const void *request, void **response) {
  /* No response pointer is refused rather than replaced by a local one: an
   * endpoint's answer would be decoded, then leaked, since only the caller
   * knows how to free it. */
  if (!ep || !ctx || !response) return KITD_EINVAL;
  int e = kitd_ctx_err(ctx); /* KITD_EINVAL for a ctx never initialised */
  if (e) return e;
  return ep->fn(ep->state, ctx, request, response);
}

void *kitd_endpoint_state(const kitd_endpoint *ep) { return ep ? ep->state : NULL; }
