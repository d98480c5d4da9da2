/* SPDX-License-Identifier: MIT */
/* An HTTP endpoint: one instance's base URL; each call borrows a pooled
 * handle, builds the URL and body into the handle's buffers, and maps the
 * outcome. The success path allocates nothing of its own once the buffers
 * have grown to the usual sizes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/endpoint_impl.h"
#include "http/async.h"
#include "http/answer.h"
#include "http/http_impl.h"
#include "kitd/error.h"

typedef struct kitd__http_ep http_ep_t;

static void ep_close(void *state) {
  http_ep_t *e = state;
  kitd__http_fast_close(e);
  kitd__http_unref(e->h);
  free(e);
}

int kitd__http_build(kitd_http *h, const void *request, kitd_http_buf *path, kitd_http_buf *body,
                     kitd_ctx *ctx) {
  int rc = h->o.path_fn ? h->o.path_fn(h->o.arg, request, path, ctx)
                        : kitd_http_buf_append(path, h->path, strlen(h->path));
  if (!rc && h->o.encode) rc = h->o.encode(h->o.arg, request, body, ctx);
  return rc;
}

void kitd__http_curl_setup(kitd_http *h, struct kitd__http_conn *c, int64_t ms) {
  CURL *easy = c->easy;
  curl_easy_setopt(easy, CURLOPT_URL, c->url.data);
  if (h->method_kind != 0 || h->o.encode) {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, c->body.len ? c->body.data : "");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body.len);
  }
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)ms);
  c->write_err = 0;
  c->errbuf[0] = '\0';
}

int kitd__http_curl_answer(kitd_http *h, struct kitd__http_conn *c, int rc, CURLcode cc,
                           kitd_ctx *ctx, void **response) {
  if (rc) { /* canceled, deadline, or the multi handle failed */
    kitd_ctx_set_detail(ctx, "%s %s: %s", h->method, c->url.data, kitd_strerror(rc));
    return rc;
  }
  if (cc != CURLE_OK) {
    rc = kitd__curl_code(cc, c->write_err);
    if (rc == KITD_ETOOBIG)
      kitd_ctx_set_detail(ctx, "%s %s: answer body over %zu bytes", h->method, c->url.data,
                          h->o.max_body);
    else
      kitd_ctx_set_detail(ctx, "%s %s: %s", h->method, c->url.data,
                          c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
    return rc;
  }
  CURL *easy = c->easy;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  kitd_ctx_set_status(ctx, (int)status);
  if ((status < 200 || status > 299) && !h->o.decode_all_status) {
    kitd__http_error_detail(ctx, (int)status, c->resp.data, c->resp.len);
    return KITD_EHTTP;
  }
  if (h->o.decode) {
    void *resp = NULL;
    char *ct = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK) ct = NULL;
    kitd__http_answer_set(ct, ct ? strlen(ct) : 0);
    rc = h->o.decode(h->o.arg, (int)status, c->resp.data, c->resp.len, &resp, ctx);
    kitd__http_answer_set(NULL, 0);
    if (rc == 0 && response) *response = resp;
  }
  return rc;
}

static int ep_call(void *state, kitd_ctx *ctx, const void *request, void **response) {
  http_ep_t *e = state;
  if (e->pool) return kitd__http_fast_call(e, ctx, request, response);
  kitd_http *h = e->h;
  int64_t ms = kitd_ctx_remaining_ms(ctx);
  if (ms == 0) return KITD_ETIMEDOUT;
  if (ms < 0) ms = h->o.timeout_ms > 0 ? h->o.timeout_ms : 0;

  struct kitd__http_conn *c = kitd__http_conn_get(h);
  if (!c) return KITD_ENOMEM;
  int rc;
  kitd__http_buf_reset(&c->url);
  kitd__http_buf_reset(&c->body);
  kitd__http_buf_reset(&c->resp);
  if ((rc = kitd_http_buf_append(&c->url, e->base, e->baselen))) goto out;
  if ((rc = kitd__http_build(h, request, &c->url, &c->body, ctx))) goto out;
  /* A response buffer that exists even when empty: decode gets "" not NULL. */
  if ((rc = kitd_http_buf_append(&c->resp, "", 0))) goto out;
  kitd__http_curl_setup(h, c, ms);
  /* No wake-up: nobody else holds this handle; the ctx is read instead. */
  kitd__curl_stop stop = {.ctx = ctx};
  CURLcode cc = CURLE_OK;
  rc = kitd__curl_perform(c->multi, c->easy, &stop, &cc);
  rc = kitd__http_curl_answer(h, c, rc, cc, ctx, response);
out:
  kitd__http_conn_put(h, c);
  return rc;
}

int kitd__http_is_endpoint(const kitd_endpoint *ep) { return ep && ep->fn == ep_call; }

int kitd_http_endpoint_new(kitd_http *h, const char *instance, kitd_endpoint **out) {
  if (!h || !instance || !out) return KITD_EINVAL;
  size_t n = strlen(instance);
  if (n == 0 || n > KITD_ADDRESS_MAX) return KITD_EINVAL;
  for (size_t i = 0; i < n; i++) /* no room for a path, query or userinfo */
    if (instance[i] <= ' ' || instance[i] >= 127 || strchr("/?#@\\", instance[i]))
      return KITD_EINVAL;
  size_t cap = strlen(h->scheme) + 3 + n + 1;
  http_ep_t *e = kitd__calloc(1, sizeof *e + cap);
  if (!e) return KITD_ENOMEM;
  int w = snprintf(e->base, cap, "%s://%s", h->scheme, instance);
  if (w < 0 || (size_t)w >= cap) { /* cannot happen: cap is the exact length */
    free(e);
    return KITD_EINTERNAL;
  }
  e->baselen = (size_t)w;
  e->h = h;
  kitd__http_ref(h);
  int rc = kitd__http_fast_init(e, instance);
  if (rc) {
    kitd__http_fast_close(e);
    kitd__http_unref(h);
    free(e);
    return rc;
  }
  /* ep_close releases e (and its reference on h) if this fails. */
  return kitd_endpoint_new(ep_call, ep_close, e, out);
}

static int http_make(void *arg, const kitd_instance *instance, kitd_endpoint **out) {
  return kitd_http_endpoint_new(arg, kitd_instance_address(instance), out);
}

static void http_release(void *arg) { kitd__http_unref(arg); }

kitd_factory kitd_http_factory(kitd_http *h) {
  kitd_factory f = {http_make, h, NULL};
  if (h) {
    kitd__http_ref(h);
    f.release = http_release;
  }
  return f;
}
