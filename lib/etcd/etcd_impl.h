/* SPDX-License-Identifier: MIT */
/* Internal: what lib/etcd's files share. Not API.
 *
 * Layers, bottom up:
 *   http.c    the only file that knows libcurl (through lib/curl): one
 *             POST, buffered or streamed line by line;
 *   client.c  etcd's conventions on top: endpoint rotation, the auth token
 *             (fetched, sent, renewed on a 401), JSON error bodies;
 *   codec.c   base64, the prefix's range end, instance values;
 *   instancer.c, registrar.c. */
#ifndef KITD_ETCD_IMPL_H
#define KITD_ETCD_IMPL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kitd/etcd.h"
#include "kitd/instance.h"

#define KITD__ETCD_DEFAULT_MAX_BODY ((size_t)64 << 20)
#define KITD__ETCD_DETAIL 256

struct kitd_etcd {
  char **urls; /* base URLs without a trailing slash */
  size_t nurls;
  char *user, *password;
  char *ca_file, *cert_file, *key_file;
  bool tls_verify;
  int64_t connect_timeout_ms, request_timeout_ms;
  size_t max_body;
};

/* A deep copy of `c`. */
int kitd__etcd_dup(const kitd_etcd *c, kitd_etcd **out);

/* Copy a caller's options struct of `size` bytes over `defaults` (already
 * filled, `def_size` bytes): returns 0 or KITD_ECONFIG when `size` is too
 * small to hold even the size field. */
int kitd__etcd_copy_opts(void *defaults, size_t def_size, const void *o, size_t size);

/* --- http.c: one POST over libcurl --- */

typedef struct kitd__etcd_http kitd__etcd_http;

/* Called with each complete line of a streamed answer (without the '\n',
 * NUL-terminated; also a last line without '\n' at the end). Return 0 to go
 * on, non-zero to end the transfer (then the POST returns KITD_ESTOPPED
 * only if the stop flag is set, else 0). */
typedef int (*kitd__etcd_line_fn)(void *arg, char *line, size_t len);

typedef struct kitd__etcd_post {
  const char *url;  /* full URL */
  const char *auth; /* Authorization header value, or NULL */
  const char *body;
  size_t body_len;
  int64_t timeout_ms;         /* 0: none (a watch stream) */
  kitd__etcd_line_fn on_line; /* NULL: buffer the whole answer */
  void *arg;
} kitd__etcd_post;

typedef struct kitd__etcd_reply {
  int status; /* HTTP status, 0 if none */
  char *body; /* buffered answer (NUL-terminated), or NULL */
  size_t len;
  char detail[KITD__ETCD_DETAIL];
} kitd__etcd_reply;

/* `stop` (may be NULL) is read atomically; non-zero aborts a request. */
int kitd__etcd_http_new(const kitd_etcd *c, const int *stop, kitd__etcd_http **out);
void kitd__etcd_http_free(kitd__etcd_http *h);
/* Wake a blocked POST so that it sees the stop flag. Any thread. */
void kitd__etcd_http_wake(kitd__etcd_http *h);
/* Returns 0 once an answer came (any status: see r->status), or
 * KITD_ECONNECT, KITD_ETLS, KITD_ETIMEDOUT, KITD_EPROTO, KITD_ETOOBIG,
 * KITD_ENOMEM, KITD_EIO, KITD_ESTOPPED, with the reason in r->detail. */
int kitd__etcd_http_post(kitd__etcd_http *h, const kitd__etcd_post *p, kitd__etcd_reply *r);
void kitd__etcd_reply_clear(kitd__etcd_reply *r);
/* POSTs started since the process started, all clients together (for the
 * benchmark of an idle watch). */
unsigned long kitd__etcd_http_count(void);

/* --- client.c: etcd calls --- */

typedef struct kitd__etcd_client {
  kitd_etcd *c; /* owned copy */
  kitd__etcd_http *http;
  size_t cur;    /* current endpoint */
  char *token;   /* auth token, or NULL */
  bool auth_off; /* etcd said auth is not enabled */
  int stop;      /* atomic; set by the owner */
} kitd__etcd_client;

/* gRPC codes the callers branch on. */
#define KITD__GRPC_INVALID_ARGUMENT 3
#define KITD__GRPC_NOT_FOUND 5
#define KITD__GRPC_PERMISSION_DENIED 7
#define KITD__GRPC_FAILED_PRECONDITION 9
#define KITD__GRPC_OUT_OF_RANGE 11
#define KITD__GRPC_UNAUTHENTICATED 16

int kitd__etcd_client_init(kitd__etcd_client *cl, const kitd_etcd *c);
void kitd__etcd_client_clear(kitd__etcd_client *cl);
/* Set the stop flag and wake a blocked call. Any thread. */
void kitd__etcd_client_stop(kitd__etcd_client *cl);
/* Move on to the next endpoint (after a transport failure). */
void kitd__etcd_client_rotate(kitd__etcd_client *cl);

/* POST `req` (borrowed) to `path` ("/v3/kv/range") with the token,
 * authenticating first when a user is set and again once on a 401.
 * Returns 0 and the answer object in *resp (new), or a KITD_E* code with
 * the reason in detail (cap KITD__ETCD_DETAIL) and, for an etcd error
 * answer, its gRPC code in *grpc_code (0 otherwise; may be NULL):
 * KITD_EACL for codes 7 and 16, KITD_EHTTP for the others. */
int kitd__etcd_call(kitd__etcd_client *cl, const char *path, json_t *req, int64_t timeout_ms,
                    json_t **resp, int *grpc_code, char *detail);

/* Open a /v3/watch stream with `req` (borrowed) and feed each line to
 * on_line until it returns non-zero, the stream ends or the stop flag is
 * set. Returns as kitd__etcd_call() (0: the stream ended or on_line ended
 * it; KITD_ESTOPPED: stopped). */
int kitd__etcd_watch(kitd__etcd_client *cl, json_t *req, kitd__etcd_line_fn on_line, void *arg,
                     int *grpc_code, char *detail);

/* Drop the token (etcd said it is invalid); the next call authenticates. */
void kitd__etcd_client_drop_token(kitd__etcd_client *cl);

/* 1 once kitd__etcd_client_stop() was called. */
int kitd__etcd_client_stopped(kitd__etcd_client *cl);

/* The threads' sleeps: a condition on CLOCK_MONOTONIC, the time `ns` from
 * now on that clock, and a sleep of up to `ns` that the stop flag ends
 * (the stopper broadcasts `cv` under `mu` after setting it). */
void kitd__etcd_cond_init(pthread_cond_t *cv);
struct timespec kitd__etcd_after(int64_t ns);
void kitd__etcd_nap(kitd__etcd_client *cl, pthread_mutex_t *mu, pthread_cond_t *cv, int64_t ns);

/* --- codec.c --- */

/* Standard base64 with padding. Returns a new NUL-terminated string or NULL. */
char *kitd__b64_encode(const unsigned char *p, size_t n);
/* Decode standard base64 (padding optional). Returns 0 with a new buffer in
 * *out (NUL-terminated, *outlen bytes before the NUL) or KITD_EPROTO /
 * KITD_ENOMEM. */
int kitd__b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen);
/* The range end that covers every key starting with `p`: out has room for
 * max(n, 1) bytes; returns its length. */
size_t kitd__etcd_prefix_end(const unsigned char *p, size_t n, unsigned char *out);
/* An int64 that etcd sends as a decimal string (or a number); absent or
 * bad: `def`. */
int64_t kitd__etcd_int(const json_t *v, int64_t def);
/* Parse one value: "host:port" or a JSON object (see etcd.h). Returns 0
 * and a new record, or KITD_EPROTO with the reason in detail, or
 * KITD_ENOMEM. */
int kitd__etcd_parse_value(const char *v, size_t n, kitd_instance **out, char *detail, size_t cap);

#endif
