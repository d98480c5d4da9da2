/* Internal: the pieces of the HTTP transport shared by its files. Not API. */
#ifndef KITD_HTTP_IMPL_H
#define KITD_HTTP_IMPL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "kitd/http.h"

struct kitd_http_buf {
  char *data; /* NUL-terminated after every append (the NUL is not counted) */
  size_t len, cap;
};

/* Clear without freeing: buffers are kept for the next call. */
static inline void kitd__http_buf_reset(kitd_http_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}
void kitd__http_buf_release(kitd_http_buf *b);

/* One pooled easy handle with its buffers. Borrowed by one call at a time. */
struct kitd__http_conn {
  CURLM *multi;                 /* owns the connection cache of `easy` */
  CURL *easy;
  struct kitd__http_conn *next; /* idle stack link */
  kitd_http_buf url, body, resp;
  const kitd_ctx *ctx;          /* the running call's */
  size_t max_body;
  int too_big;
  char errbuf[CURL_ERROR_SIZE];
};

struct kitd_http {
  atomic_int refs;              /* the user's handle + one per endpoint */
  kitd_http_opts o;             /* strings point into the copies below */
  char *method, *path, *content_type, *scheme;
  int method_kind;              /* 0 GET, 1 POST, 2 custom */
  struct curl_slist *headers;   /* shared read-only by every easy handle */
  pthread_mutex_t mu;           /* guards the idle stack and counters */
  struct kitd__http_conn *idle;
  unsigned nidle;
  unsigned long created;
};

void kitd__http_ref(kitd_http *h);
void kitd__http_unref(kitd_http *h);

/* Borrow a handle from the pool (or make one): NULL only when out of memory. */
struct kitd__http_conn *kitd__http_conn_get(kitd_http *h);
/* Give it back (or free it when the pool is full). */
void kitd__http_conn_put(kitd_http *h, struct kitd__http_conn *c);

/* Run the transfer set up on c->easy to its end, checking c->ctx for
 * cancellation between waits. Returns libcurl's result. */
CURLcode kitd__http_conn_perform(struct kitd__http_conn *c);

/* Free a handle that is not in the pool. */
void kitd__http_conn_free(struct kitd__http_conn *c);

/* Map a failed transfer to a KITD_E* code. */
int kitd__http_curl_err(CURLcode cc, const struct kitd__http_conn *c);

#endif
