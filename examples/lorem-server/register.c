/* SPDX-License-Identifier: MIT */
/* lorem-server's registration through kitd_registrar (service "lorem" or -service, tags
 * "lorem" and "ru-rocker" as in the original, a stable ID
 * "lorem-<addr>-<port>" so that a restart replaces its own entry instead of
 * leaving a dead twin behind, an HTTP check on /health or a TTL check). */
#include "register.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kitd/kitd.h>

#if __has_include(<kitd/registrar.h>)
#include <kitd/registrar.h>

struct lorem_reg {
  kitd_registrar *r;
  kitd_logger *lg;
  char *id;            /* "<service>-<addr>-<port>" */
  const char *service; /* borrowed from the conf (argv) */
  int reported;
};

int lorem_reg_start(const struct lorem_reg_conf *c, kitd_logger *lg, lorem_reg **out) {
  *out = NULL;
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *cc = NULL;
  int rc = kitd_consul_new(0, &ctx, &cc);
  if (rc == 0 && (c->consul_addr || c->consul_port)) {
    char addr[300];
    snprintf(addr, sizeof addr, "%s:%s", c->consul_addr ? c->consul_addr : "127.0.0.1",
             c->consul_port ? c->consul_port : "8500");
    rc = kitd_consul_set_address(cc, addr, &ctx);
  }
  if (rc) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server", "action=register err=%s detail=\"%s\"",
             kitd_err_name(rc), kitd_ctx_detail(&ctx));
    kitd_consul_free(cc);
    return -1;
  }
  lorem_reg *g = calloc(1, sizeof *g);
  if (!g) {
    kitd_consul_free(cc);
    return -1;
  }
  g->lg = lg;
  g->service = c->service ? c->service : "lorem";
  if (asprintf(&g->id, "%s-%s-%d", g->service, c->advertise_addr, c->advertise_port) < 0) {
    kitd_consul_free(cc);
    free(g);
    return -1;
  }
  static const char *const tags[] = {"lorem", "ru-rocker"};
  char url[400];
  snprintf(url, sizeof url, "http://%s%s%s:%d/health", strchr(c->advertise_addr, ':') ? "[" : "",
           c->advertise_addr, strchr(c->advertise_addr, ':') ? "]" : "", c->advertise_port);
  kitd_registration reg;
  kitd_registration_init(&reg);
  reg.name = g->service;
  reg.id = g->id;
  reg.tags = tags;
  reg.ntags = 2;
  reg.address = c->advertise_addr;
  reg.port = c->advertise_port;
  if (c->check && !strcmp(c->check, "ttl")) {
    reg.check.kind = KITD_CHECK_TTL;
    reg.check.ttl_ms = c->check_ttl_ms;
    reg.check.initial_status = "passing";
  } else {
    reg.check.kind = KITD_CHECK_HTTP;
    reg.check.target = url;
    reg.check.interval_ms = c->check_interval_ms;
    reg.check.timeout_ms = c->check_timeout_ms;
  }
  reg.check.deregister_after_ms = c->deregister_after_ms;
  char agent[300];
  snprintf(agent, sizeof agent, "%s", kitd_consul_address(cc));
  rc = kitd_registrar_new(cc, &reg, lg, &g->r);
  kitd_consul_free(cc);
  if (rc) {
    kitd_log(lg, KITD_LOG_ERROR, "lorem-server", "action=register err=%s", kitd_err_name(rc));
    free(g->id);
    free(g);
    return -1;
  }
  kitd_log(lg, KITD_LOG_INFO, "lorem-server",
           "action=register state=started service=%s id=%s address=%s port=%d check=%s "
           "consul=%s",
           g->service, g->id, c->advertise_addr, c->advertise_port,
           reg.check.kind == KITD_CHECK_TTL ? "ttl" : "http", agent);
  *out = g;
  return 0;
}

int lorem_reg_poll(lorem_reg *g) {
  if (!g) return 0;
  if (g->reported) return 1;
  int err = 0;
  if (kitd_registrar_registered(g->r, &err)) {
    g->reported = 1;
    kitd_log(g->lg, KITD_LOG_INFO, "lorem-server", "action=register state=ok service=%s id=%s",
             g->service, g->id);
    return 1;
  }
  return 0;
}

void lorem_reg_stop(lorem_reg *g) {
  if (!g) return;
  kitd_registrar_free(g->r); /* deregisters, waiting at most 2 s */
  kitd_log(g->lg, KITD_LOG_INFO, "lorem-server", "action=deregister service=%s id=%s", g->service,
           g->id);
  free(g->id);
  free(g);
}

#else /* the Consul layer is not in this tree yet */

int lorem_reg_start(const struct lorem_reg_conf *c, kitd_logger *lg, lorem_reg **out) {
  (void)c;
  *out = NULL;
  kitd_log(
      lg, KITD_LOG_WARN, "lorem-server",
      "action=register err=ECONFIG detail=\"built without the Consul layer; use -no-register\"");
  return -1;
}
int lorem_reg_poll(lorem_reg *r) {
  (void)r;
  return 0;
}
void lorem_reg_stop(lorem_reg *r) { (void)r; }

#endif
