/* SPDX-License-Identifier: MIT */
/* Consul registration of the lorem server, kept apart from the HTTP code so
 * the server builds (and runs with -no-register) without the Consul layer. */
#ifndef LOREM_SERVER_REGISTER_H
#define LOREM_SERVER_REGISTER_H

#include <stdint.h>

#include <kitd/log.h>

struct lorem_reg_conf {
  const char *consul_addr;    /* NULL: CONSUL_HTTP_ADDR or 127.0.0.1 */
  const char *consul_port;    /* NULL: 8500 (or CONSUL_HTTP_ADDR's) */
  const char *advertise_addr; /* registered address */
  int advertise_port;
  const char *check; /* "http" or "ttl" */
  int64_t check_interval_ms, check_timeout_ms, check_ttl_ms;
  int64_t deregister_after_ms;
  const char *service; /* NULL: "lorem" */
};

typedef struct lorem_reg lorem_reg;

/* Start registering in the background (retrying until the agent answers).
 * Returns 0 and *out, or -1 after logging why (NULL *out when the Consul
 * layer is not built in). */
int lorem_reg_start(const struct lorem_reg_conf *c, kitd_logger *lg, lorem_reg **out);

/* Log action=register once the agent accepted us; call now and then.
 * Returns 1 once registered. */
int lorem_reg_poll(lorem_reg *r);

/* Deregister (logging action=deregister) and free. NULL is allowed. */
void lorem_reg_stop(lorem_reg *r);

#endif
