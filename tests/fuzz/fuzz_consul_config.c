/* SPDX-License-Identifier: MIT */
/* Fuzz the agent address and environment parsing: the input is up to eight
 * NUL- or newline-separated values, given in turn to CONSUL_HTTP_ADDR,
 * CONSUL_HTTP_SSL, CONSUL_HTTP_SSL_VERIFY, CONSUL_TLS_SERVER_NAME,
 * CONSUL_HTTP_AUTH, CONSUL_NAMESPACE, CONSUL_CLIENT_CERT and
 * CONSUL_CLIENT_KEY, then the first value to kitd_consul_set_address().
 * Every outcome must be 0 or a KITD_E* code with a detail that never holds
 * the token. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kitd/consul.h"
#include "kitd/error.h"

static const char *const vars[] = {
    "CONSUL_HTTP_ADDR", "CONSUL_HTTP_SSL",  "CONSUL_HTTP_SSL_VERIFY", "CONSUL_TLS_SERVER_NAME",
    "CONSUL_HTTP_AUTH", "CONSUL_NAMESPACE", "CONSUL_CLIENT_CERT",     "CONSUL_CLIENT_KEY"};
#define NVARS (sizeof vars / sizeof vars[0])
#define TOKEN "fuzz-secret-token-5b1d"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = '\0';
  char *vals[NVARS] = {0};
  size_t nv = 0;
  char *p = buf;
  while (nv < NVARS) {
    vals[nv++] = p;
    char *e = p + strcspn(p, "\n");
    if (*e == '\0') break;
    *e = '\0';
    p = e + 1;
  }
  for (size_t i = 0; i < NVARS; i++) {
    if (i < nv) setenv(vars[i], vals[i], 1);
    else unsetenv(vars[i]);
  }
  setenv("CONSUL_HTTP_TOKEN", TOKEN, 1);
  /* The token must not leak into details; an input that spells it itself
   * (in the address, say) may of course be echoed. */
  int spelled = memmem(data, size, TOKEN, strlen(TOKEN)) != NULL;
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *c = NULL;
  int rc = kitd_consul_new(0, &ctx, &c);
  if (rc != 0 && (rc > 0 || rc < KITD_EINTERNAL)) abort();
  if (!spelled && strstr(kitd_ctx_detail(&ctx), TOKEN)) abort();
  if (rc == 0) {
    kitd_ctx_init(&ctx);
    rc = kitd_consul_set_address(c, vals[0], &ctx);
    if (rc != 0 && (rc > 0 || rc < KITD_EINTERNAL)) abort();
    if (!spelled && strstr(kitd_ctx_detail(&ctx), TOKEN)) abort();
    const char *shown = kitd_consul_address(c);
    if (!shown || (!spelled && strstr(shown, TOKEN))) abort();
    kitd_consul_free(c);
  }
  free(buf);
  return 0;
}
