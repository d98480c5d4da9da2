/* SPDX-License-Identifier: MIT */
/* orders: a service that calls two others, "users" and "billing", by name.
 *
 *   CONSUL_HTTP_ADDR=127.0.0.1:8500 orders [N [INTERVAL_MS]]
 *
 * Places N orders (default 10), one every INTERVAL_MS (default 100): each
 * asks "users" for a name and "billing" for an invoice line. The services
 * are found in Consul by a kitd_directory, which makes one client per name
 * on first use (watch, balancer, retry, HTTP transport) and keeps it. A
 * failed attempt is retried on another instance, so an order fails only
 * when no instance of a service answers. Exit status 1 if any order failed.
 * (The demo services are lorem servers: POST /lorem/{word|sentence}/min/max.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kitd/kitd.h>

static int ask(kitd_directory *dir, const char *service, const char *path, kitd_client_resp *out) {
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, 3000);
  kitd_client_req req = {.method = "POST", .path = path};
  int rc = kitd_directory_call(dir, service, &ctx, &req, out);
  if (rc)
    fprintf(stderr, "orders: %s: %s (%s)\n", service, kitd_strerror(rc), kitd_ctx_detail(&ctx));
  return rc;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 10;
  long interval_ms = argc > 2 ? atol(argv[2]) : 100;
  kitd_global_init();
  kitd_directory *dir;
  if (kitd_directory_new(NULL, &dir)) return 1; /* Consul from CONSUL_HTTP_ADDR */

  int failed = 0;
  for (int i = 1; i <= n; i++) {
    kitd_client_resp user = {0}, bill = {0};
    if (ask(dir, "users", "/lorem/word/4/8", &user) == 0 &&
        ask(dir, "billing", "/lorem/sentence/3/5", &bill) == 0 && user.status == 200 &&
        bill.status == 200) {
      printf("order %d user=%s billing=%s\n", i, user.body, bill.body);
    } else {
      printf("order %d FAILED\n", i);
      failed++;
    }
    fflush(stdout);
    kitd_client_resp_clear(&user);
    kitd_client_resp_clear(&bill);
    kitd_ctx_sleep_ns(NULL, interval_ms * 1000000);
  }
  kitd_directory_free(dir);
  kitd_global_cleanup();
  return failed ? 1 : 0;
}
