/* SPDX-License-Identifier: MIT */
/* kitd_http: the client object and its pool of libcurl handles.
 *
 * Why a pool of (multi, easy) pairs and not a share handle: a multi handle
 * keeps the connection cache of the easy handle it drives, so a pair that
 * goes back to a LIFO stack comes out warm, with a live keep-alive
 * connection to each instance it talked to. A share handle with
 * CURL_LOCK_DATA_CONNECT would put one lock (two callbacks) around every
 * connection-cache access of every call on every thread instead; the pool
 * costs one uncontended mutex pair per call.
 *
 * Each call runs its pair through lib/curl's perform loop
 * (kitd__curl_perform) without the wake-up: curl_multi_wait() does not poll
 * the multi's wake-up socketpair, one fd fewer per wait, and its wait
 * returns every 10 ms so that the loop reads the ctx's cancel flag without
 * a progress callback (which would read the clock on every chunk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "http/http_impl.h"
#include "kitd/error.h"

void kitd_http_opts_init(kitd_http_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->max_body = 1u << 20;
  o->connect_timeout_ms = 1000;
  o->max_idle_handles = 64;
  o->max_conns_per_handle = 16;
}

static char *dup_or(const char *s, const char *dflt) { return kitd__strdup(s && *s ? s : dflt); }

void kitd__http_conn_free(struct kitd__http_conn *c) {
  if (!c) return;
  curl_easy_cleanup(c->easy);
  curl_multi_cleanup(c->multi);
  kitd__http_buf_release(&c->url);
  kitd__http_buf_release(&c->body);
  kitd__http_buf_release(&c->resp);
  free(c);
}

static void destroy(kitd_http *h) {
  struct kitd__http_conn *c = h->idle;
  while (c) {
    struct kitd__http_conn *next = c->next;
    kitd__http_conn_free(c);
    c = next;
  }
  curl_slist_free_all(h->headers);
  pthread_mutex_destroy(&h->mu);
  free(h->method);
  free(h->path);
  free(h->content_type);
  free(h->scheme);
  free(h);
  kitd__curl_release(); /* balances the kitd__curl_acquire() of kitd_http_new */
}

static int env_set(const char *name) {
  const char *v = getenv(name);
  return v && *v;
}

/* The fast path (fast.c) speaks plain HTTP/1.1 itself. It is not used for
 * https, when libcurl would go through a proxy (http_proxy, all_proxy in
 * the environment: libcurl then also applies no_proxy), for a GET with a
 * body (libcurl turns that into a POST), or when KITD_HTTP_FAST=0. */
static int fast_allowed(const kitd_http *h) {
  if (strcmp(h->scheme, "http")) return 0;
  if (h->method_kind == 0 && h->o.encode) return 0;
  if (env_set("http_proxy") || env_set("all_proxy") || env_set("ALL_PROXY")) return 0;
  const char *f = getenv("KITD_HTTP_FAST");
  return !(f && !strcmp(f, "0"));
}

int kitd_http_new(const kitd_http_opts *o, kitd_http **out) {
  kitd_http_opts d;
  if (!out) return KITD_EINVAL;
  if (!o) {
    kitd_http_opts_init(&d);
    o = &d;
  }
  if (o->size != sizeof *o) return KITD_EINVAL; /* not from kitd_http_opts_init() */
  const char *scheme = o->scheme && *o->scheme ? o->scheme : "http";
  if (strcmp(scheme, "http") && strcmp(scheme, "https")) return KITD_EINVAL;
  const char *method = o->method && *o->method ? o->method : (o->encode ? "POST" : "GET");
  for (const char *p = method; *p; p++) /* a token: no spaces or controls */
    if (*p <= ' ' || *p >= 127) return KITD_EINVAL;
  if (o->path && o->path[0] != '/' && o->path[0]) return KITD_EINVAL;

  kitd_http *h = kitd__calloc(1, sizeof *h);
  if (!h) return KITD_ENOMEM;
  h->o = *o;
  h->method = kitd__strdup(method);
  h->path = dup_or(o->path, "/");
  h->content_type = dup_or(o->content_type, "application/json");
  h->scheme = kitd__strdup(scheme);
  if (!h->method || !h->path || !h->content_type || !h->scheme) goto nomem;
  h->o.method = h->method;
  h->o.path = h->path;
  h->o.content_type = h->content_type;
  h->o.scheme = h->scheme;
  if (!h->o.max_body) h->o.max_body = 1u << 20;
  if (!h->o.max_conns_per_handle) h->o.max_conns_per_handle = 16;
  if (!h->o.max_idle_handles) h->o.max_idle_handles = 64;
  h->method_kind = !strcmp(method, "GET") ? 0 : !strcmp(method, "POST") ? 1 : 2;
  h->fast = fast_allowed(h);
  atomic_init(&h->fast_opened, 0);
  atomic_init(&h->fast_idle, 0);

  kitd__curl_str ct = {0};
  kitd__curl_str_printf(&ct, "Content-Type: %s", h->content_type);
  struct curl_slist *hd = ct.err ? NULL : curl_slist_append(NULL, ct.data);
  kitd__curl_str_free(&ct);
  /* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
  struct curl_slist *t = hd ? curl_slist_append(hd, "Expect:") : NULL;
  if (t) hd = t, t = curl_slist_append(hd, "Accept: application/json");
  if (!t) {
    curl_slist_free_all(hd);
    goto nomem;
  }
  h->headers = t;
  if (pthread_mutex_init(&h->mu, NULL)) {
    curl_slist_free_all(h->headers);
    goto nomem;
  }
  int rc = kitd__curl_acquire();
  if (rc) {
    curl_slist_free_all(h->headers);
    pthread_mutex_destroy(&h->mu);
    free(h->method);
    free(h->path);
    free(h->content_type);
    free(h->scheme);
    free(h);
    return rc;
  }
  atomic_init(&h->refs, 1);
  *out = h;
  return 0;
nomem:
  free(h->method);
  free(h->path);
  free(h->content_type);
  free(h->scheme);
  free(h);
  return KITD_ENOMEM;
}

void kitd__http_ref(kitd_http *h) { atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed); }

void kitd__http_unref(kitd_http *h) {
  if (h && atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) destroy(h);
}

void kitd_http_free(kitd_http *h) { kitd__http_unref(h); }

static size_t on_write(char *data, size_t size, size_t n, void *arg) {
  struct kitd__http_conn *c = arg;
  size_t len = size * n;
  if (len > c->max_body - c->resp.len) {
    c->write_err = KITD_ETOOBIG;
    return 0; /* CURLE_WRITE_ERROR: stop reading */
  }
  int rc = kitd_http_buf_append(&c->resp, data, len);
  if (rc) {
    c->write_err = rc;
    return 0;
  }
  return len;
}

static struct kitd__http_conn *conn_new(kitd_http *h) {
  struct kitd__http_conn *c = kitd__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->easy = curl_easy_init();
  c->multi = curl_multi_init();
  if (!c->easy || !c->multi) {
    curl_easy_cleanup(c->easy);
    curl_multi_cleanup(c->multi);
    free(c);
    return NULL;
  }
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)h->o.max_conns_per_handle);
  CURL *e = c->easy;
  c->max_body = h->o.max_body;
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM across threads */
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_MAXCONNECTS, (long)h->o.max_conns_per_handle);
  if (h->o.connect_timeout_ms > 0)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->o.connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  if (h->method_kind == 1) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
  } else if (h->method_kind == 2) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, h->method);
    if (!h->o.encode) curl_easy_setopt(e, CURLOPT_NOBODY, !strcmp(h->method, "HEAD") ? 1L : 0L);
  }
  return c;
}

struct kitd__http_conn *kitd__http_conn_get(kitd_http *h) {
  pthread_mutex_lock(&h->mu);
  struct kitd__http_conn *c = h->idle;
  if (c) {
    h->idle = c->next;
    h->nidle--;
  } else {
    h->created++;
  }
  pthread_mutex_unlock(&h->mu);
  if (!c && !(c = conn_new(h))) {
    pthread_mutex_lock(&h->mu);
    h->created--;
    pthread_mutex_unlock(&h->mu);
  }
  return c;
}

void kitd__http_conn_put(kitd_http *h, struct kitd__http_conn *c) {
  pthread_mutex_lock(&h->mu);
  if (h->nidle < h->o.max_idle_handles) {
    c->next = h->idle;
    h->idle = c;
    h->nidle++;
    c = NULL;
  }
  pthread_mutex_unlock(&h->mu);
  kitd__http_conn_free(c);
}

void kitd_http_stats(kitd_http *h, unsigned long *handles_created, unsigned *handles_idle) {
  if (!h) return;
  pthread_mutex_lock(&h->mu);
  unsigned long created = h->created;
  unsigned idle = h->nidle;
  pthread_mutex_unlock(&h->mu);
  /* Fast-path connections count as handles: each is one connection. */
  created += atomic_load_explicit(&h->fast_opened, memory_order_relaxed);
  idle += atomic_load_explicit(&h->fast_idle, memory_order_relaxed);
  if (handles_created) *handles_created = created;
  if (handles_idle) *handles_idle = idle;
}
