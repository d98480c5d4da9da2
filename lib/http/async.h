/* SPDX-License-Identifier: MIT */
/* Internal: one attempt of an asynchronous call on a kitd_http endpoint,
 * run by the loop (loop.h). Not API.
 *
 * The same transport as a blocking endpoint call, without the wait: a
 * fast-path instance (plain http to an IP literal) takes a keep-alive
 * connection from the loop's own cache (by address; blocking calls keep
 * theirs in the endpoints' pools), and connects, writes and reads it
 * non-blocking as epoll says it is ready,
 * parsing the answer as it comes (conn.c's steps); anything else borrows a
 * pooled libcurl handle and runs it on the loop's multi handle. The
 * attempt's ctx deadline (and the connect timeout) is a loop timer. The
 * codes, the status, the detail and the decoded response are the
 * blocking call's (fast.c and endpoint.c share those halves). */
#ifndef KITD_HTTP_ASYNC_H
#define KITD_HTTP_ASYNC_H

#include "http/conn.h"
#include "http/http_impl.h"
#include "http/loop.h"
#include "kitd/endpoint.h"

struct lconn;
struct kitd__http_att {
  struct kitd__loop_timer timer; /* deadline, connect timeout */
  struct kitd__curl_xfer xfer;   /* the libcurl path */
  kitd__loop *loop;
  struct kitd__http_ep *e;
  struct kitd__h1_conn *fc;   /* fast path: the connection */
  struct lconn *lc;           /* and its place in the loop's cache */
  struct kitd__http_conn *cc; /* libcurl path */
  kitd_ctx *ctx;              /* the attempt's; borrowed */
  void **response;
  size_t pstart, plen;
  int64_t deadline; /* 0: none */
  int state, reused, retried, stale;
  kitd__h1_resp r;
  char why[160];
  /* Runs once on the loop when an attempt that started ends, with the
   * endpoint call's code (0: *response set). */
  void (*end)(struct kitd__http_att *a, int rc);
};

/* Is `ep` an endpoint of kitd_http (one this module can run)? */
int kitd__http_is_endpoint(const kitd_endpoint *ep);

/* Start an attempt of `ep` (a kitd_http endpoint, held by the caller until
 * end runs) under `ctx`, with the request already built: its path (path
 * bytes) and body. 0: started, a->end runs later (never inside this
 * function); or the attempt's code at once (a->end never runs), with the
 * detail in ctx as the blocking call sets it. Loop thread only. */
int kitd__http_att_start(struct kitd__http_att *a, kitd__loop *l, kitd_endpoint *ep, kitd_ctx *ctx,
                         const kitd_http_buf *path, const kitd_http_buf *body, void **response);

/* End a started attempt now with rc (KITD_ECANCELED, KITD_ETIMEDOUT,
 * KITD_ESTOPPED): the transfer is cut, its connection closed, and a->end
 * runs with rc before this returns. Loop thread only. */
void kitd__http_att_fail(struct kitd__http_att *a, int rc);

#endif
