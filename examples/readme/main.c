#include <kitd/kitd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hello(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx; (void)req;
  *resp = state; /* a real endpoint would call the instance here */
  return 0;
}

static int factory(void *arg, const char *instance, kitd_endpoint **out) {
  (void)arg;
  size_t len = strlen(instance) + 1; /* `instance` is borrowed for this call only */
  char *copy = malloc(len);
  if (!copy) return KITD_ENOMEM;
  memcpy(copy, instance, len);
  int rc = kitd_endpoint_new(hello, free, copy, out);
  if (rc) free(copy);
  return rc;
}

int main(void) {
  const char *fleet[] = {"10.0.0.1:8080", "10.0.0.2:8080"};
  kitd_instancer *in; kitd_endpointer *ep; kitd_balancer *lb; kitd_endpoint *call;
  if (kitd_static_instancer_new(fleet, 2, &in) || kitd_endpointer_new(in, factory, NULL, NULL, &ep) ||
      kitd_balancer_round_robin_new(ep, KITD_RR_GLOBAL, &lb) || kitd_retry_new(lb, NULL, &call))
    return 1;
  for (int i = 0; i < 4; i++) {
    kitd_ctx ctx; void *resp = NULL;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 500);
    int rc = kitd_endpoint_call(call, &ctx, NULL, &resp);
    printf("%s\n", rc ? kitd_strerror(rc) : (const char *)resp);
  }
  kitd_endpoint_unref(call); kitd_balancer_free(lb); kitd_endpointer_free(ep); kitd_instancer_free(in);
  return 0;
}
