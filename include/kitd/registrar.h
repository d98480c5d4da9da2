/* SPDX-License-Identifier: MIT */
/* libkitd: the registrar (go-kit's sd/consul.Registrar, plus TTL heartbeats).
 *
 * A kitd_registrar registers one service instance with the local Consul
 * agent on its own thread: it retries with backoff while the agent is down
 * or answers an error, keeps a TTL check passing with heartbeats at a third
 * of the TTL, registers again when the agent has forgotten the service (a
 * restarted dev agent, DeregisterCriticalServiceAfter), and deregisters
 * when freed. See docs/api/registrar.md. */
#ifndef KITD_REGISTRAR_H
#define KITD_REGISTRAR_H

#include <stddef.h>
#include <stdint.h>

#include "consul.h"
#include "export.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_registrar kitd_registrar;

typedef enum kitd_check_kind {
  KITD_CHECK_NONE = 0, /* no check: the service counts as passing */
  KITD_CHECK_HTTP = 1, /* the agent GETs `target` (a URL) every interval */
  KITD_CHECK_TCP = 2,  /* the agent connects to `target` ("host:port") */
  KITD_CHECK_TTL = 3   /* we report: heartbeats every ttl_ms / 3 */
} kitd_check_kind;

typedef struct kitd_check {
  kitd_check_kind kind;
  const char *target;          /* HTTP: URL; TCP: "host:port" */
  int64_t interval_ms;         /* HTTP, TCP: required (Consul raises < 1 s to 1 s) */
  int64_t timeout_ms;          /* HTTP, TCP: 0 = Consul's default (10 s) */
  int64_t ttl_ms;              /* TTL: required */
  int64_t deregister_after_ms; /* DeregisterCriticalServiceAfter; 0: never
                                  * (Consul raises < 1 min to 1 min) */
  const char *initial_status;  /* "passing", "warning", "critical" or NULL
                                  * (Consul's default: critical) */
} kitd_check;

typedef struct kitd_registration {
  size_t size;      /* sizeof the struct, set by
                                  * kitd_registration_init(): fields can be
                                  * added later without breaking callers;
                                  * another value is KITD_EINVAL */
  const char *name; /* required */
  const char *id;   /* NULL: "<name>-<address>-<port>" */
  const char *const *tags;
  size_t ntags;
  const char *address;     /* NULL or "": the node's address */
  int port;                /* 0..65535 */
  const char *const *meta; /* 2 * nmeta strings: key, value, key, value... */
  size_t nmeta;
  int weight_passing; /* 0: not sent (Consul's default 1) */
  int weight_warning;
  kitd_check check; /* kind NONE: no check */
} kitd_registration;

/* Zero `g` and set its size: call it before filling a registration.
 * Since 0.1. Thread-safety: any thread. */
KITD_API void kitd_registration_init(kitd_registration *g);

/* Register `reg` (copied) with the agent of `c` (copied) and keep it
 * registered on a thread of its own. The check gets the ID
 * "service:<id>". IDs of any length and bytes are percent-encoded in the
 * agent paths. When the agent forgets the service, the registrar
 * registers again after a jittered backoff that grows while the agent
 * keeps forgetting (100 ms doubling up to 10 s), as after a failure. `lg` is borrowed (may be NULL) and must outlive the
 * registrar. Returns 0 and a new registrar in *out (free with
 * kitd_registrar_free()), KITD_EINVAL (no name, a bad check, a `reg` not
 * set up by kitd_registration_init()), KITD_ENOMEM
 * or KITD_EINTERNAL. The first registration happens in the background:
 * wait for it with kitd_registrar_wait_registered().
 * Thread-safety: any thread. */
KITD_API int kitd_registrar_new(const kitd_consul *c, const kitd_registration *reg, kitd_logger *lg,
                                kitd_registrar **out);

/* Wait up to timeout_ms (< 0: forever) until the agent has accepted the
 * registration. Returns 0, KITD_ETIMEDOUT, or KITD_ESTOPPED.
 * Thread-safety: any thread. */
KITD_API int kitd_registrar_wait_registered(kitd_registrar *r, int64_t timeout_ms);

/* 1 if the agent currently holds our registration (as far as we know),
 * else 0; *last_err (may be NULL) gets the last error (0 if none).
 * Thread-safety: any thread. */
KITD_API int kitd_registrar_registered(kitd_registrar *r, int *last_err);

/* TTL checks: the status the heartbeats report, "passing" (default),
 * "warning" or "critical"; sent at once. KITD_EINVAL for another status or
 * a registrar without a TTL check. Thread-safety: any thread. */
KITD_API int kitd_registrar_set_status(kitd_registrar *r, const char *status);

/* TTL checks: pause (on = 0) or resume (on != 0) the heartbeats, e.g. to
 * drain: the check then turns critical when its TTL expires.
 * Thread-safety: any thread. */
KITD_API int kitd_registrar_set_heartbeats(kitd_registrar *r, int on);

/* Stop the thread and deregister the service, waiting at most 2 s for the
 * agent. Returns 0 once the agent has dropped it, else the failure (also
 * logged at error level): KITD_EHTTP (a 404 included: the agent did not
 * hold this ID), KITD_ECONNECT, KITD_ETIMEDOUT, KITD_EACL, KITD_ENOMEM...
 * The registrar then stays stopped (no heartbeat, no new registration);
 * free it with kitd_registrar_free(). A second call returns the first
 * result without asking the agent again. KITD_EINVAL for NULL.
 * Since 0.1. Thread-safety: one thread at a time per handle. */
KITD_API int kitd_registrar_deregister(kitd_registrar *r);

/* Deregister as kitd_registrar_deregister() does unless that has run (a
 * failure is logged; call that first to get it), then free. NULL is
 * allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_registrar_free(kitd_registrar *r);

#ifdef __cplusplus
}
#endif
#endif
