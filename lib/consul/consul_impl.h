/* SPDX-License-Identifier: MIT */
/* Internal: what lib/consul's files share. Not API. */
#ifndef KITD_CONSUL_IMPL_H
#define KITD_CONSUL_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kitd/consul.h"
#include "kitd/instance.h"

#define KITD__CONSUL_DEFAULT_MAX_BODY ((size_t)64 << 20)

struct kitd_consul {
  char *host;      /* as given; IPv6 without brackets */
  int port;        /* 0: the scheme's default */
  char *prefix;    /* "" or "/consul" (no trailing slash) */
  char *unix_path; /* unix socket, or NULL */
  bool tls;        /* asked for https (CONSUL_HTTP_SSL or https://) */
  bool tls_verify;
  char *token; /* never logged */
  char *auth_user, *auth_pass;
  char *cafile, *capath, *cert, *key;
  char *server_name;
  char *dc, *ns, *partition;
  size_t max_body;
  char *display; /* kitd_consul_address() */
};

/* A deep copy of `c` (for objects that outlive the caller's config). */
int kitd__consul_dup(const kitd_consul *c, kitd_consul **out);

/* A mutex and a CLOCK_MONOTONIC condition variable (for interruptible
 * sleeps). Returns 0, or KITD_ENOMEM / KITD_EINTERNAL with nothing left
 * initialised. */
int kitd__consul_sync_init(pthread_mutex_t *mu, pthread_cond_t *cv);

/* Go's strconv.ParseBool: 1 true, 0 false, -1 not a boolean. */
int kitd__consul_parse_bool(const char *s);

/* What to send as libcurl's CURLOPT_ACCEPT_ENCODING to the agent: NULL
 * (no Accept-Encoding, plain answers) when the agent is on this host (a
 * unix socket, the name "localhost", an IP literal in 127.0.0.0/8 or
 * ::1), else "" (every encoding libcurl decodes: Consul gzips bodies of
 * 1400 bytes and more). Over loopback compression saves no time and costs
 * CPU on both sides, on the same cores: the agent gzipping a
 * health/state/any answer of every check (290 KB for 1,000 services) and
 * the watcher inflating it. */
const char *kitd__consul_accept_encoding(const kitd_consul *c);

/* --- one HTTP request to the agent (http.c) --- */

typedef struct kitd__consul_http kitd__consul_http;

/* A reusable connection (keeps the connection alive between requests).
 * `stop` (may be NULL) is read atomically: non-zero aborts a request. */
int kitd__consul_http_new(const kitd_consul *c, const int *stop, kitd__consul_http **out);
void kitd__consul_http_free(kitd__consul_http *h);
/* Wake a request blocked in kitd__consul_http_do() so that it sees the stop
 * flag now. Any thread, while `h` exists. */
void kitd__consul_http_wake(kitd__consul_http *h);

typedef struct kitd__consul_resp {
  int status; /* HTTP status, 0 if none */
  char *body; /* NUL-terminated, malloc'd (caller frees), or NULL */
  size_t len;
  bool has_index;
  uint64_t index;   /* X-Consul-Index */
  char detail[256]; /* why it failed (no token) */
} kitd__consul_resp;

typedef struct kitd__consul_req {
  const char *method; /* "GET" or "PUT" */
  const char *path;   /* "/v1/...", already percent-encoded */
  const char *query;  /* "a=b&c=d" without '?', or NULL */
  const char *dc;     /* dc= to send, or NULL */
  const char *body;   /* request body or NULL */
  size_t body_len;
  int64_t timeout_ms;  /* whole request */
  size_t max_body;     /* 0: the client's */
  const kitd_ctx *ctx; /* optional: deadline and cancel */
} kitd__consul_req;

/* Perform one request. Returns 0 for a 2xx answer; otherwise a transfer
 * failure as lib/curl's map names it (KITD_ECONNECT, KITD_ETLS,
 * KITD_ETIMEDOUT, KITD_EIO for a connection that failed mid-request,
 * KITD_EPROTO for a bad or cut answer, KITD_ETOOBIG, KITD_ENOMEM), or
 * KITD_EHTTP (non-2xx; Consul's text in detail), KITD_EACL (403),
 * KITD_ESTOPPED (stop flag), the ctx's KITD_ECANCELED / KITD_ETIMEDOUT.
 * `r` is always filled (body may be set on an error status). */
int kitd__consul_http_do(kitd__consul_http *h, const kitd__consul_req *q, kitd__consul_resp *r);
void kitd__consul_resp_clear(kitd__consul_resp *r);

/* Append `s` percent-encoded as a path segment or query value to buf (a
 * NUL-terminated string in cap bytes). Returns 0, or KITD_EINVAL and buf
 * unchanged when the result would not fit. */
int kitd__consul_escape(char *buf, size_t cap, const char *s);

/* `prefix` followed by `s` percent-encoded, in a new string of exactly the
 * size needed (caller frees), or NULL when out of memory. Used for every
 * path that carries an ID or a name: a fixed buffer would cut a long ID and
 * send the agent a path it answers with 404. */
char *kitd__consul_path(const char *prefix, const char *s);

/* --- the health answer parser (parse.c) --- */

/* Parse an answer of /v1/health/service/<name>: a JSON array of entries.
 * Keeps entries carrying every tag in `tags` (case-insensitive) and, when
 * `passing`, whose checks are all passing. On success returns 0 with a
 * malloc'd array of instance records in *out (unsorted; count may be 0 and
 * *out NULL): address, status (the worst check), weight (Weights.Passing
 * or .Warning by status; an entry whose weight is 0 is left out), tags,
 * service meta, node, node meta, datacenter, and the zone read from
 * `zone_key` (node meta, then service meta; NULL: the record's default).
 * On a bad answer returns KITD_EPROTO (or KITD_ENOMEM) with the reason in
 * detail and *out untouched. */
int kitd__consul_parse_health(const char *body, size_t len, const char *const *tags, size_t ntags,
                              bool passing, const char *zone_key, kitd_instance ***out,
                              size_t *count, char *detail, size_t detail_cap);

/* Format host and port as an instance string ("h:p" or "[v6]:p"). Returns
 * 0, or KITD_EPROTO if it does not fit. */
int kitd__consul_instance(char *buf, size_t cap, const char *host, long port);

/* Duration as a Go duration string ("1500ms", "5m"). */
void kitd__consul_duration(char *buf, size_t cap, int64_t ms);

#endif
