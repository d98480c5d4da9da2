/* SPDX-License-Identifier: MIT */
#include <kitd/kitd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hello(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx; (void)req;
  *resp = state; /* a real endpoint would call the instance here */
  return 0;
}

static int factory(void *arg, const kitd_instance *instance, kitd_endpoint **out) {
  const char *address = kitd_instance_address(instance);
  (void)arg;
  size_t len = strlen(address) + 1; /* the record is borrowed for this call only */
  char *copy = malloc(len);
  if (!copy) return KITD_ENOMEM;
  memcpy(copy, address, len);
  return kitd_endpoint_new(hello, free, copy, out); /* takes copy, even on failure */
}

int main(void) {
  const char *fleet[] = {"10.0.0.1:8080", "10.0.0.2:8080"};
  kitd_instancer *in; kitd_endpointer *ep; kitd_balancer *lb; kitd_endpoint *call;
  if (kitd_static_instancer_new(fleet, 2, &in) || kitd_endpointer_new(in, &(kitd_factory){factory, NULL, NULL}, NULL, &ep) ||
      kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &lb) || kitd_retry_new(lb, NULL, &call))
    return 1;
  for (int i = 0; i < 4; i++) {
    kitd_ctx ctx; void *resp = NULL;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 500);
    int rc = kitd_endpoint_call(call, &ctx, NULL, &resp);
    printf("%s\n", rc ? kitd_strerror(rc) : (const char *)resp);
  }
  /* Each layer holds a reference on the one below: any free order works. */
  kitd_instancer_free(in); kitd_endpointer_free(ep); kitd_balancer_free(lb); kitd_endpoint_unref(call);
  return 0;
}
