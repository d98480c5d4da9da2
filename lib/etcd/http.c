/* SPDX-License-Identifier: MIT */
/* One POST to etcd's JSON gateway: the only file of lib/etcd that knows
 * libcurl, on top of lib/curl (global set-up, the wakeable perform loop,
 * the CURLcode map).
 *
 * Each kitd__etcd_http owns a multi handle with one easy handle: the
 * connection is reused between requests, and a watch stream that is silent
 * for minutes can still be aborted at once, since the transfer waits in
 * curl_multi_poll(), which kitd__etcd_http_wake() interrupts. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "curl/kitd_curl.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"

struct kitd__etcd_http {
  const kitd_etcd *c;
  const int *stop;
  CURLM *multi;
  CURL *easy;
  bool acquired; /* holds a reference on libcurl's global state */
};

/* One transfer's state, shared with the callbacks. */
struct xfer {
  CURL *easy;
  char *buf;
  size_t len, cap, max;
  size_t scan; /* bytes of buf already searched for '\n' */
  bool too_big, oom;
  bool checked, stream; /* stream: feed lines (a 200 answer to a watch) */
  bool ended;           /* the line callback asked to end */
  kitd__etcd_line_fn on_line;
  void *arg;
};

static unsigned long posts; /* atomic */

unsigned long kitd__etcd_http_count(void) { return __atomic_load_n(&posts, __ATOMIC_RELAXED); }

int kitd__etcd_http_new(const kitd_etcd *c, const int *stop, kitd__etcd_http **out) {
  kitd__etcd_http *h = kitd__calloc(1, sizeof *h);
  if (!h) return KITD_ENOMEM;
  h->c = c;
  h->stop = stop;
  if (kitd__curl_acquire()) {
    free(h);
    return KITD_EINTERNAL;
  }
  h->acquired = true;
  h->multi = curl_multi_init();
  h->easy = curl_easy_init();
  if (!h->multi || !h->easy) {
    kitd__etcd_http_free(h);
    return KITD_ENOMEM;
  }
  *out = h;
  return 0;
}

void kitd__etcd_http_free(kitd__etcd_http *h) {
  if (!h) return;
  if (h->easy) curl_easy_cleanup(h->easy);
  if (h->multi) curl_multi_cleanup(h->multi);
  if (h->acquired) kitd__curl_release();
  free(h);
}

void kitd__etcd_http_wake(kitd__etcd_http *h) {
  if (h) kitd__curl_wake(h->multi);
}

void kitd__etcd_reply_clear(kitd__etcd_reply *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

static bool append(struct xfer *x, const char *p, size_t len) {
  if (len > x->max - x->len) {
    x->too_big = true;
    return false;
  }
  if (x->len + len + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 4096;
    while (cap < x->len + len + 1) cap *= 2;
    char *b = kitd__realloc(x->buf, cap);
    if (!b) {
      x->oom = true;
      return false;
    }
    x->buf = b;
    x->cap = cap;
  }
  memcpy(x->buf + x->len, p, len);
  x->len += len;
  x->buf[x->len] = '\0';
  return true;
}

/* Hand every complete line in the buffer to the callback and keep the
 * rest: libcurl's slices do not follow the stream's messages. */
static bool feed_lines(struct xfer *x) {
  size_t start = 0;
  for (size_t i = x->scan; i < x->len; i++) {
    if (x->buf[i] != '\n') continue;
    x->buf[i] = '\0';
    if (i > start && x->on_line(x->arg, x->buf + start, i - start)) {
      x->ended = true;
      return false;
    }
    start = i + 1;
  }
  memmove(x->buf, x->buf + start, x->len - start);
  x->len -= start;
  x->scan = x->len;
  if (x->buf) x->buf[x->len] = '\0';
  return true;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  size_t len = size * n;
  if (!x->checked) {
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    x->stream = x->on_line && status == 200;
    x->checked = true;
  }
  if (!append(x, p, len)) return 0; /* CURLE_WRITE_ERROR */
  if (x->stream && !feed_lines(x)) return 0;
  return len;
}

/* The KITD_E* code of a failed transfer (lib/curl's map) and a detail. */
static int curl_err(CURLcode cc, const struct xfer *x, kitd__etcd_reply *r) {
  int e = kitd__curl_code(cc, x->too_big ? KITD_ETOOBIG : x->oom ? KITD_ENOMEM : 0);
  const char *what = curl_easy_strerror(cc);
  switch (e) {
  case KITD_ECONNECT:
    snprintf(r->detail, sizeof r->detail, "cannot connect to etcd: %s", what);
    break;
  case KITD_ETOOBIG:
    snprintf(r->detail, sizeof r->detail, "answer larger than %zu bytes", x->max);
    break;
  case KITD_ETLS: snprintf(r->detail, sizeof r->detail, "TLS: %s", what); break;
  default: snprintf(r->detail, sizeof r->detail, "etcd request failed: %s", what); break;
  }
  return e ? e : KITD_EIO;
}

static bool stopped(const kitd__etcd_http *h) {
  return h->stop && __atomic_load_n(h->stop, __ATOMIC_ACQUIRE);
}

int kitd__etcd_http_post(kitd__etcd_http *h, const kitd__etcd_post *p, kitd__etcd_reply *r) {
  memset(r, 0, sizeof *r);
  const kitd_etcd *c = h->c;
  if (stopped(h)) {
    snprintf(r->detail, sizeof r->detail, "stopped");
    return KITD_ESTOPPED;
  }
  struct xfer x = {0};
  x.easy = h->easy;
  x.max = c->max_body;
  x.on_line = p->on_line;
  x.arg = p->arg;
  CURL *ez = h->easy;
  curl_easy_reset(ez);
  curl_easy_setopt(ez, CURLOPT_URL, p->url);
  curl_easy_setopt(ez, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(ez, CURLOPT_WRITEDATA, &x);
  if (p->timeout_ms > 0) curl_easy_setopt(ez, CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
  curl_easy_setopt(ez, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
  curl_easy_setopt(ez, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(ez, CURLOPT_USERAGENT, "libkitd");
  curl_easy_setopt(ez, CURLOPT_PROTOCOLS_STR, "http,https");
  /* A watch stream is silent while nothing changes and etcd never times
   * it out: TCP keepalive finds a peer that vanished without a FIN. */
  curl_easy_setopt(ez, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(ez, CURLOPT_TCP_KEEPIDLE, 15L);
  curl_easy_setopt(ez, CURLOPT_TCP_KEEPINTVL, 5L);
  curl_easy_setopt(ez, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
  curl_easy_setopt(ez, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
  if (c->ca_file) curl_easy_setopt(ez, CURLOPT_CAINFO, c->ca_file);
  if (c->cert_file) curl_easy_setopt(ez, CURLOPT_SSLCERT, c->cert_file);
  if (c->key_file) curl_easy_setopt(ez, CURLOPT_SSLKEY, c->key_file);

  struct curl_slist *hdrs = NULL, *tmp;
  char *authhdr = NULL;
  bool oom = false;
  const char *fixed[] = {"Content-Type: application/json", "Expect:"};
  for (size_t i = 0; i < 2 && !oom; i++) {
    if ((tmp = curl_slist_append(hdrs, fixed[i]))) hdrs = tmp;
    else oom = true;
  }
  if (p->auth && !oom) {
    /* etcd wants the bare token: "Bearer <token>" gets a 401. */
    size_t al = strlen(p->auth) + sizeof "Authorization: ";
    if (!(authhdr = kitd__malloc(al))) oom = true;
    else {
      int n = snprintf(authhdr, al, "Authorization: %s", p->auth);
      if (n < 0 || (size_t)n >= al) oom = true;
      else if ((tmp = curl_slist_append(hdrs, authhdr))) hdrs = tmp;
      else oom = true;
    }
  }
  /* A complete body with a Content-Length: while a chunked request body
   * stays open the gateway holds back the whole watch answer. From memory
   * (not a read callback), so that libcurl can send it again on a new
   * connection when the kept-alive one turns out dead (etcd restarted). */
  curl_easy_setopt(ez, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_len);
  curl_easy_setopt(ez, CURLOPT_POSTFIELDS, p->body);
  curl_easy_setopt(ez, CURLOPT_HTTPHEADER, hdrs);
  int rc = 0;
  if (oom) {
    rc = KITD_ENOMEM;
    snprintf(r->detail, sizeof r->detail, "out of memory");
    goto out;
  }

  __atomic_add_fetch(&posts, 1, __ATOMIC_RELAXED);
  kitd__curl_stop st = {0};
  st.flag = h->stop;
  st.wakeable = 1;
  CURLcode cc = CURLE_OK;
  int prc = kitd__curl_perform(h->multi, ez, &st, &cc);
  bool aborted = prc == KITD_ESTOPPED;
  long status = 0;
  curl_easy_getinfo(ez, CURLINFO_RESPONSE_CODE, &status);
  r->status = (int)status;
  if (prc && !aborted) {
    rc = prc;
    snprintf(r->detail, sizeof r->detail, "%s", kitd_strerror(prc));
    goto out;
  }
  if (aborted) {
    rc = KITD_ESTOPPED;
    snprintf(r->detail, sizeof r->detail, "stopped");
    goto out;
  }
  if (x.ended) goto out; /* the caller ended the stream: not a failure */
  if (cc != CURLE_OK) {
    rc = curl_err(cc, &x, r);
    goto out;
  }
  /* A stream's last message may lack its '\n' (the final {"error":..}). */
  if (x.stream && x.len > 0) {
    x.on_line(x.arg, x.buf, x.len);
    x.len = 0;
  }
  if (!x.stream) {
    r->body = x.buf;
    r->len = x.len;
    x.buf = NULL;
  }
out:
  free(x.buf);
  if (authhdr) {
    memset(authhdr, 0, strlen(authhdr));
    free(authhdr);
  }
  curl_slist_free_all(hdrs);
  return rc;
}
