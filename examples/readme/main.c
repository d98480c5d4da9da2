/* SPDX-License-Identifier: MIT */
#include <kitd/kitd.h>
#include <stdio.h>

/* An in-process transport, so that this runs without servers: each
 * instance answers with its own address. Leave `factory` NULL and the
 * client calls the instances over HTTP (kitd_http). */
static int hello(void *state, kitd_ctx *ctx, const void *req, void **resp) {
  (void)ctx;
  (void)req;
  *resp = state;
  return 0;
}

static int factory(void *arg, const kitd_instance *instance, kitd_endpoint **out) {
  (void)arg; /* the address lives as long as the instancer's record: fine here */
  return kitd_endpoint_new(hello, NULL, (void *)kitd_instance_address(instance), out);
}

int main(void) {
  const char *fleet[] = {"10.0.0.1:8080", "10.0.0.2:8080"};
  kitd_instancer *in;
  if (kitd_static_instancer_new(fleet, 2, &in)) return 1;
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "hello";
  o.instancer = in; /* without it: Consul, CONSUL_HTTP_ADDR */
  o.factory = &(kitd_factory){factory, NULL, NULL};
  kitd_client *c;
  int rc = kitd_client_new(&o, &c);
  kitd_instancer_free(in); /* the client holds its own reference */
  if (rc) return 1;
  for (int i = 0; i < 4; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 500);
    const char *who = NULL;
    rc = kitd_client_call(c, &ctx, NULL, &who);
    printf("%s\n", rc ? kitd_strerror(rc) : who);
  }
  kitd_client_free(c);
  return 0;
}
