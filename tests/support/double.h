/* SPDX-License-Identifier: MIT */
/* Test helper: a Consul agent for integration tests and benchmarks.
 *
 * kitd_test_agent_start() runs the Consul double ($KITD_BUILD, default
 * "build", /tests/consul-double --listen 127.0.0.1:0 [extra flags]) and
 * reads the address it prints on its first stdout line; or, when
 * CONSUL_HTTP_ADDR is set, uses that real agent instead (then `real` is
 * true and tests that need the double's fault knobs skip themselves). */
#ifndef KITD_TEST_DOUBLE_H
#define KITD_TEST_DOUBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct kitd_test_agent {
  pid_t pid;      /* the double's pid, 0 for a real agent */
  bool real;      /* CONSUL_HTTP_ADDR points at a real agent */
  char addr[256]; /* "127.0.0.1:port" (or CONSUL_HTTP_ADDR) */
  char url[300];  /* "http://127.0.0.1:port" */
  char *args[16]; /* extra flags, kept for restarts */
  int nargs;
  int outfd; /* read end of the double's stdout */
} kitd_test_agent;

/* Start the double with `extra` flags (NULL-terminated, may be NULL).
 * Returns 0, 1 when the double is not built (tests skip), or -1 (message
 * on stderr). */
int kitd_test_agent_start(kitd_test_agent *a, const char *const *extra);

/* SIGTERM + waitpid (a real agent is left alone). */
void kitd_test_agent_stop(kitd_test_agent *a);

/* Stop and start again on the same port (a dev-agent restart: the double
 * forgets everything and its index starts again). Returns 0 or -1. */
int kitd_test_agent_restart(kitd_test_agent *a);

/* One HTTP request to the agent (path with query). `body` may be NULL.
 * Returns the HTTP status (0 if the agent could not be reached); *out (may
 * be NULL) gets the malloc'd, NUL-terminated body. A token, if set in the
 * environment variable CONSUL_HTTP_TOKEN, is sent. */
int kitd_test_agent_http(const kitd_test_agent *a, const char *method, const char *path,
                         const char *body, char **out);

/* Register a service on the agent with a TTL check "service:<id>" in
 * `status` ("passing", "critical"...), TTL ttl_s seconds. tags: a JSON
 * array text or NULL. Returns the HTTP status. */
int kitd_test_agent_register(const kitd_test_agent *a, const char *name, const char *id,
                             const char *address, int port, const char *tags_json,
                             const char *status, int ttl_s);
int kitd_test_agent_deregister(const kitd_test_agent *a, const char *id);
/* PUT /v1/agent/check/<pass|warn|fail>/service:<id>. Returns the status. */
int kitd_test_agent_ttl(const kitd_test_agent *a, const char *id, const char *verb);

/* The double's request counter for `path_prefix` (from its stats
 * endpoint), or -1. */
long kitd_test_agent_requests(const kitd_test_agent *a, const char *path_prefix);

/* Set a fault knob on the double ("down", "slow", "stall", "500",...); the
 * value text is passed as the knob expects. Returns the HTTP status (200
 * on success) or -1 when running against a real agent. */
int kitd_test_agent_fault(kitd_test_agent *a, const char *knob, const char *value);
/* Clear every fault. */
int kitd_test_agent_clear_faults(kitd_test_agent *a);

/* A number from the double's /_double/stats ("max_connections",
 * "blocking", ...), or -1. */
long kitd_test_agent_stat(const kitd_test_agent *a, const char *key);

/* Threads of this process now (/proc/self/task), or -1. */
int kitd_test_threads(void);

/* Milliseconds scaled by KITD_TEST_TIMEOUT_SCALE (valgrind, sanitizers). */
long kitd_test_ms(long ms);

#endif
