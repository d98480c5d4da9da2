/* SPDX-License-Identifier: MIT */
/* The shared Consul watcher (watcher.h): many services, one thread, one
 * curl multi handle, a bounded number of agent connections.
 *
 * Consul limits each client address to 200 concurrent HTTP connections
 * (limits.http_max_conns_per_client; shared/consul-api.md, "Watching many
 * services"), and a blocking query holds its connection for its whole wait.
 * So with C connections (max_blocking):
 *  - up to C services: each holds a blocking query on
 *    /v1/health/service/<name>; a change reaches it at once;
 *  - more: the first C - 2 - R hold blocking queries; the others are
 *    "polled": refetched without blocking, at most R at a time, when a
 *    blocking query on /v1/health/state/any shows one of their checks
 *    changed (each check's ModifyIndex against the last seen; a node-level
 *    check, or /v1/catalog/services moving, which does not say which
 *    service changed, marks them all).
 * The multi handle itself never opens more than C connections
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS), whatever is queued. A health/state/any
 * answer holds every check of the datacenter: it is read a slice of checks
 * per turn of the loop (digest_step), so that the blocking services'
 * answers, handled first in each turn, never wait behind all of it.
 *
 * Locking: one recursive mutex guards the watch list and every watch's
 * scheduling fields; the thread drops it only around curl_multi_poll and
 * curl_multi_perform. Events are published under it, so a subscriber
 * callback may stop or free another instancer of this watcher (the
 * recursive lock lets its stop mark the watch removed; the thread detaches
 * it later). A watch's memory goes when both the instancer is destroyed
 * and the thread has detached it. */
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "consul/consul_impl.h"
#include "consul/watcher.h"
#include "core/alloc.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

#define REFETCH_PARALLEL 4 /* R: polled services fetched at once */
#define LIST_QUERIES 2     /* catalog/services and health/state/any */
#define DIGEST_SLICE 64    /* health/state/any checks read per turn of the loop */

struct xfer {
  char *buf;
  size_t len, cap, max;
  bool too_big, has_index;
  uint64_t index;
};

enum mode {
  W_NEW,
  W_BLOCKING,
  W_POLLED
};

struct watch {
  struct kitd_instancer base; /* first: the instancer */
  kitd__consul_watcher *w;
  char *service, *path; /* path: "/v1/health/service/<escaped>" */
  char **tags;
  size_t ntags;
  bool passing;
  char *dc;
  size_t max_body;
  int64_t wait_ms, min_interval_ms, bmin, bmax, backoff_ms;
  /* under w->mu */
  enum mode mode;
  bool removed, detached, destroyed, in_flight, dirty, blocking_req;
  bool destroy_waits; /* watch_destroy() frees it after the detach */
  uint64_t index;
  double tokens;
  int64_t tokens_ns, next_ns;
  CURL *easy;
  struct xfer x;
  struct watch *next;
};

struct listq {
  const char *path;
  CURL *easy;
  struct xfer x;
  bool in_flight;
  uint64_t index;
  int64_t next_ns, backoff_ms;
};

struct seen { /* health/state/any: the highest check ModifyIndex per name */
  char *name; /* a service name, or "\n" + node name for node-level checks */
  uint64_t idx;
};

/* A health/state/any answer being read a slice at a time (see digest_step). */
struct digest {
  char *buf; /* the answer's body, taken from the transfer; NULL: none */
  size_t len, pos;
  uint64_t index; /* its X-Consul-Index, adopted once it is read */
  struct seen *v;
  size_t n, cap;
};

struct kitd_consul_watcher {
  atomic_long refs;
  kitd_consul *c;
  char *base; /* "http://host:port/prefix" */
  struct curl_slist *hdrs;
  char *connect_to;
  struct curl_slist *cto;
  pthread_mutex_t mu;     /* recursive */
  pthread_cond_t drained; /* the thread detached what was removed */
  pthread_t th;
  bool stop, self_free;
  bool owner_gone; /* no new watch comes: stop draining */
  CURLM *multi;
  struct watch *list;
  unsigned max_conns, blocking_cap, nblocking, npolled, refetching;
  struct listq cat, st;
  struct seen *seen;
  size_t nseen;
  bool have_seen;
  struct digest dg;
  long refetches;
  kitd_logger *lg;
  uint64_t rng;
};

/* ---- one transfer ---- */

/* Room for `more` bytes and a NUL; false when over the cap or out of
 * memory (the transfer then aborts). */
static bool xfer_room(struct xfer *x, size_t more) {
  if (more > x->max - x->len) return !(x->too_big = true);
  size_t need = x->len + more + 1;
  if (need <= x->cap) return true;
  size_t cap = x->cap < 4096 ? 4096 : x->cap;
  for (; cap < need; cap += cap) {}
  char *b = kitd__realloc(x->buf, cap);
  if (b) x->buf = b, x->cap = cap;
  return b != NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  if (!xfer_room(x, size * n)) return 0;
  memcpy(x->buf + x->len, p, size * n);
  x->len += size * n;
  x->buf[x->len] = '\0';
  return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  size_t len = size * n;
  static const char name[] = "x-consul-index:";
  if (len < sizeof name - 1 || strncasecmp(p, name, sizeof name - 1)) return len;
  uint64_t idx = 0;
  size_t i = sizeof name - 1, digits = 0;
  while (i < len && (p[i] == ' ' || p[i] == '\t')) i++;
  for (; i < len && isdigit((unsigned char)p[i]) && digits < 19; i++, digits++)
    idx = idx * 10 + (uint64_t)(p[i] - '0');
  x->has_index = digits > 0;
  x->index = idx;
  return len;
}

static void xfer_reset(struct xfer *x, size_t max) {
  x->len = 0;
  x->too_big = x->has_index = false;
  x->index = 0;
  x->max = max;
  if (x->buf) x->buf[0] = '\0';
}

/* Start GET base+path+query on `easy` (made if NULL). */
static int start(kitd__consul_watcher *w, CURL **easy, struct xfer *x, const char *path,
                 const char *query, int64_t timeout_ms, void *owner, size_t max_body) {
  if (!*easy && !(*easy = curl_easy_init())) return KITD_ENOMEM;
  CURL *e = *easy;
  size_t cap = strlen(w->base) + strlen(path) + strlen(query) + 2;
  char *url = kitd__malloc(cap);
  if (!url) return KITD_ENOMEM;
  int n = snprintf(url, cap, "%s%s%s", w->base, path, query);
  if (n < 0 || (size_t)n >= cap) {
    free(url);
    return KITD_EINVAL;
  }
  xfer_reset(x, max_body ? max_body : w->c->max_body);
  const kitd_consul *c = w->c;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_URL, url); /* libcurl copies it */
  free(url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, owner);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, kitd__consul_accept_encoding(c));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "libkitd");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (c->unix_path) curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  if (w->cto) curl_easy_setopt(e, CURLOPT_CONNECT_TO, w->cto);
  if (c->tls) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
    if (c->cafile) curl_easy_setopt(e, CURLOPT_CAINFO, c->cafile);
    if (c->capath) curl_easy_setopt(e, CURLOPT_CAPATH, c->capath);
    if (c->cert) curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert);
    if (c->key) curl_easy_setopt(e, CURLOPT_SSLKEY, c->key);
  }
  if (c->auth_user) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, c->auth_user);
    curl_easy_setopt(e, CURLOPT_PASSWORD, c->auth_pass ? c->auth_pass : "");
  }
  if (w->hdrs) curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->hdrs);
  return curl_multi_add_handle(w->multi, e) == CURLM_OK ? 0 : KITD_ENOMEM;
}

/* The outcome of a finished transfer: 0 for a 2xx with an index. */
static int outcome(CURL *e, CURLcode cc, const struct xfer *x, char *detail, size_t cap) {
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (cc != CURLE_OK) {
    if (x->too_big) {
      snprintf(detail, cap, "consul: answer over %zu bytes", x->max);
      return KITD_ETOOBIG;
    }
    snprintf(detail, cap, "consul: %s", curl_easy_strerror(cc));
    return cc == CURLE_OPERATION_TIMEDOUT                                    ? KITD_ETIMEDOUT
           : cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ? KITD_ECONNECT
                                                                             : KITD_EIO;
  }
  if (status < 200 || status > 299) {
    size_t n = 0;
    while (x->buf && n < x->len && n < 120 && x->buf[n] != '\n') n++;
    snprintf(detail, cap, "consul: HTTP %ld%s%.*s", status, n ? ": " : "", (int)n,
             x->buf ? x->buf : "");
    return status == 403 ? KITD_EACL : KITD_EHTTP;
  }
  if (!x->has_index) {
    snprintf(detail, cap, "consul: no X-Consul-Index in the answer");
    return KITD_EPROTO;
  }
  return 0;
}

/* "?stale[&passing=1]&index=N&wait=Xms[&dc=..][&ns=..][&partition=..]" */
static char *query(const kitd__consul_watcher *w, bool passing, uint64_t index, int64_t wait_ms,
                   const char *dc) {
  const kitd_consul *c = w->c;
  const char *dcv = dc ? dc : c->dc;
  size_t cap = 128 + 3 * ((dcv ? strlen(dcv) : 0) + (c->ns ? strlen(c->ns) : 0) +
                          (c->partition ? strlen(c->partition) : 0));
  char *q = kitd__malloc(cap);
  if (!q) return NULL;
  int n = snprintf(q, cap, "?stale%s", passing ? "&passing=1" : "");
  if (n > 0 && index) {
    char d[32];
    kitd__consul_duration(d, sizeof d, wait_ms);
    int m = snprintf(q + n, cap - (size_t)n, "&index=%llu&wait=%s", (unsigned long long)index, d);
    n = m < 0 ? m : n + m;
  }
  if (n < 0 || (size_t)n >= cap) { /* cannot happen: cap has room for both */
    free(q);
    return NULL;
  }
  const char *names[] = {"dc", "ns", "partition"};
  const char *vals[] = {dcv, c->ns, c->partition};
  for (int i = 0; i < 3; i++) {
    if (!vals[i] || !*vals[i]) continue;
    size_t l = strlen(q);
    int m = snprintf(q + l, cap - l, "&%s=", names[i]);
    if (m < 0 || (size_t)m >= cap - l || kitd__consul_escape(q, cap, vals[i])) {
      free(q);
      return NULL;
    }
  }
  return q;
}

static int64_t jitter(kitd__consul_watcher *w, int64_t ms) {
  w->rng ^= w->rng << 13, w->rng ^= w->rng >> 7, w->rng ^= w->rng << 17;
  return ms / 2 + (int64_t)(w->rng % (uint64_t)(ms / 2 + 1));
}

/* ---- watches ---- */

static void watch_free(struct watch *s) {
  for (size_t i = 0; i < s->ntags; i++) free(s->tags[i]);
  free(s->tags);
  free(s->service);
  free(s->path);
  free(s->dc);
  free(s->x.buf);
  if (s->easy) curl_easy_cleanup(s->easy);
  free(s);
}

static void watcher_unref(kitd__consul_watcher *w);

/* Both sides are done with `s` (under mu). */
static void watch_release(struct watch *s) {
  if (!s->detached || !s->destroyed || s->destroy_waits) return;
  kitd__consul_watcher *w = s->w;
  watch_free(s);
  watcher_unref(w);
}

static void watch_start(kitd__consul_watcher *w, struct watch *s, int64_t now) {
  bool block = s->mode == W_BLOCKING && s->index > 0;
  char *q = query(w, s->passing, block ? s->index : 0, s->wait_ms, s->dc);
  int rc = q ? start(w, &s->easy, &s->x, s->path, q,
                     block ? s->wait_ms + s->wait_ms / 16 + 10000 : 30000, s, s->max_body)
             : KITD_ENOMEM;
  free(q);
  if (rc) { /* try again later */
    s->next_ns = now + 1000 * 1000000LL;
    return;
  }
  s->in_flight = true;
  s->blocking_req = block;
  if (s->mode == W_POLLED) w->refetching++, w->refetches++;
}

/* A watch's answer (under mu). */
static void watch_done(kitd__consul_watcher *w, struct watch *s, CURLcode cc, int64_t now) {
  s->in_flight = false;
  if (s->mode == W_POLLED || !s->blocking_req) {
    if (s->mode == W_POLLED && w->refetching) w->refetching--;
  }
  if (s->removed) return;
  char detail[256];
  int rc = outcome(s->easy, cc, &s->x, detail, sizeof detail);
  kitd_instance **set = NULL;
  size_t n = 0;
  if (rc == 0)
    rc = kitd__consul_parse_health(s->x.buf ? s->x.buf : "[]", s->x.len,
                                   (const char *const *)s->tags, s->ntags, s->passing, NULL, &set,
                                   &n, detail, sizeof detail);
  if (rc) {
    kitd__instancer_publish_error(&s->base, rc, detail);
    s->next_ns = now + jitter(w, s->backoff_ms) * 1000000LL;
    s->backoff_ms = s->backoff_ms * 2 > s->bmax ? s->bmax : s->backoff_ms * 2;
    if (s->mode == W_POLLED) s->dirty = true;
    kitd_log(w->lg, KITD_LOG_WARN, "consul-watcher", "service=%s err=%s detail=\"%s\"", s->service,
             kitd_err_name(rc), detail);
    return;
  }
  s->backoff_ms = s->bmin;
  /* An index that went backwards (a restore, a new agent): start over. */
  s->index = s->x.index < s->index ? 0 : s->x.index;
  if (s->index == 0) s->index = 1;
  kitd__instancer_publish(&s->base, set, n);
  if (s->mode == W_NEW) s->mode = W_BLOCKING;
  /* Token bucket of 2: quick successive changes go at once, a service that
   * changes all the time is asked about once per min_interval. */
  double refill = (double)(now - s->tokens_ns) / 1e6 / (double)s->min_interval_ms;
  s->tokens = s->tokens + refill > 2 ? 2 : s->tokens + refill;
  s->tokens_ns = now;
  if (s->tokens >= 1) {
    s->tokens -= 1;
    s->next_ns = now;
  } else {
    s->next_ns = now + (int64_t)((1 - s->tokens) * (double)s->min_interval_ms * 1e6);
  }
}

static const struct kitd__instancer_ops watch_ops;

static void watch_stop(kitd_instancer *in) {
  struct watch *s = (struct watch *)in;
  kitd__consul_watcher *w = s->w;
  pthread_mutex_lock(&w->mu);
  s->removed = true;
  pthread_mutex_unlock(&w->mu);
  curl_multi_wakeup(w->multi);
}

static void watch_destroy(kitd_instancer *in) {
  struct watch *s = (struct watch *)in;
  kitd__consul_watcher *w = s->w;
  pthread_mutex_lock(&w->mu);
  s->destroyed = true;
  /* With the owner gone the thread detaches at once (no drain): wait for
   * it, so that the last client's free also ends the watcher's thread
   * before it returns (else it would end on its own, maybe after exit). */
  if (!s->detached && w->owner_gone && !pthread_equal(pthread_self(), w->th)) {
    s->destroy_waits = true;
    curl_multi_wakeup(w->multi);
    while (!s->detached) pthread_cond_wait(&w->drained, &w->mu);
  }
  bool mine = s->detached;
  pthread_mutex_unlock(&w->mu);
  if (mine) { /* the thread is done with it: nobody else can reach it */
    watch_free(s);
    watcher_unref(w);
  }
}

static const struct kitd__instancer_ops watch_ops = {"consul", watch_stop, watch_destroy};

/* ---- the list queries (only while some service is polled) ---- */

static void mark_all_polled(kitd__consul_watcher *w) {
  for (struct watch *s = w->list; s; s = s->next)
    if (s->mode == W_POLLED) s->dirty = true;
}

static int seen_cmp(const void *a, const void *b) {
  return strcmp(((const struct seen *)a)->name, ((const struct seen *)b)->name);
}

static void seen_free(struct seen *v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i].name);
  free(v);
}

static struct seen *seen_find(struct seen *v, size_t n, const char *name) {
  struct seen key = {(char *)name, 0};
  return v ? bsearch(&key, v, n, sizeof *v, seen_cmp) : NULL;
}

static void digest_clear(struct digest *d) {
  free(d->buf);
  seen_free(d->v, d->n);
  memset(d, 0, sizeof *d);
}

/* The end of the JSON value at b[i..len) (an element of the answer's
 * array): the index of the ',' or ']' that follows it at depth 0, or len
 * when the text ends first. Only strings and nesting matter here; jansson
 * then parses the element itself, so malformed text is still refused. */
static size_t value_end(const char *b, size_t i, size_t len) {
  int depth = 0;
  bool str = false;
  for (; i < len; i++) {
    char ch = b[i];
    if (str) {
      if (ch == '\\') i++;
      else if (ch == '"') str = false;
    } else if (ch == '"') {
      str = true;
    } else if (ch == '{' || ch == '[') {
      depth++;
    } else if (ch == '}' || ch == ']') {
      if (depth == 0) return i;
      depth--;
    } else if (ch == ',' && depth == 0) {
      return i;
    }
  }
  return len;
}

static size_t skip_ws(const char *b, size_t i, size_t len) {
  while (i < len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
  return i;
}

/* A string at b[i] (its opening quote) that holds no escape, no control
 * character and no byte over 0x7f: its content is b[*s, *e) and the
 * index past its closing quote is returned; 0 for any other text. */
static size_t plain_string(const char *b, size_t i, size_t len, size_t *s, size_t *e) {
  if (i >= len || b[i] != '"') return 0;
  const char *q = memchr(b + i + 1, '"', len - i - 1);
  if (!q) return 0;
  size_t end = (size_t)(q - b);
  for (size_t t = i + 1; t < end; t++)
    if ((unsigned char)b[t] < 0x20 || (unsigned char)b[t] > 0x7e || b[t] == '\\') return 0;
  *s = i + 1;
  *e = end;
  return end + 1;
}

/* What the diff reads of a check. */
struct check_fields {
  const char *svc, *node; /* NULL: absent or null */
  size_t svc_len, node_len;
  uint64_t mi;
};

/* Read a check's ServiceName, Node and ModifyIndex from b[0, len) without
 * building it (jansson made a tree of every field of every check, most of
 * the watcher's time while some services are polled). 1 when read; 0 for
 * anything this reader does not take (an escape or a non-ASCII byte in a
 * key or in one of those strings, those fields of another type, an index
 * that is not a plain non-negative integer, text out of place): the
 * element is then read with jansson, which refuses it if it is not JSON.
 * The fields it does not read are skipped by their nesting only, not
 * validated. */
static int scan_check(const char *b, size_t len, struct check_fields *f) {
  memset(f, 0, sizeof *f);
  size_t i = skip_ws(b, 0, len);
  if (i >= len || b[i] != '{') return 0;
  i = skip_ws(b, i + 1, len);
  if (i < len && b[i] == '}') return skip_ws(b, i + 1, len) == len;
  for (;;) {
    size_t ks, ke;
    if (!(i = plain_string(b, i, len, &ks, &ke))) return 0;
    i = skip_ws(b, i, len);
    if (i >= len || b[i] != ':') return 0;
    i = skip_ws(b, i + 1, len);
    const char *k = b + ks;
    size_t kl = ke - ks;
    bool svc = kl == 11 && !memcmp(k, "ServiceName", 11), node = kl == 4 && !memcmp(k, "Node", 4);
    if (svc || node) {
      const char *v = NULL;
      size_t vs = 0, ve = 0;
      if (len - i >= 4 && !memcmp(b + i, "null", 4)) i += 4;
      else if ((i = plain_string(b, i, len, &vs, &ve))) v = b + vs;
      else return 0;
      if (svc) f->svc = v, f->svc_len = ve - vs;
      else f->node = v, f->node_len = ve - vs;
    } else if (kl == 11 && !memcmp(k, "ModifyIndex", 11)) {
      size_t s0 = i;
      uint64_t x = 0;
      for (; i < len && b[i] >= '0' && b[i] <= '9' && i - s0 < 18; i++)
        x = x * 10 + (uint64_t)(b[i] - '0');
      if (i == s0 || (b[s0] == '0' && i - s0 > 1) ||
          (i < len && ((b[i] >= '0' && b[i] <= '9') || b[i] == '.' || b[i] == 'e' || b[i] == 'E')))
        return 0;
      f->mi = x;
    } else {
      size_t e = value_end(b, i, len);
      if (e == len || e == i || b[e] == ']') return 0;
      i = e;
    }
    i = skip_ws(b, i, len);
    if (i >= len) return 0;
    if (b[i] == '}') return skip_ws(b, i + 1, len) == len;
    if (b[i] != ',') return 0;
    i = skip_ws(b, i + 1, len);
  }
}

/* One check of the answer into d->v. */
static int digest_check(struct digest *d, const char *text, size_t len) {
  struct check_fields f;
  char *name = NULL;
  bool named;
  uint64_t mi;
  if (scan_check(text, len, &f)) {
    named = (f.svc && f.svc_len) || f.node;
    if (f.svc && f.svc_len) {
      name = kitd__strndup(f.svc, f.svc_len);
    } else if (f.node && (name = kitd__malloc(f.node_len + 2))) {
      name[0] = '\n';
      memcpy(name + 1, f.node, f.node_len);
      name[f.node_len + 1] = '\0';
    }
    mi = f.mi;
  } else {
    json_error_t je;
    json_t *ck = json_loadb(text, len, 0, &je);
    if (!json_is_object(ck)) {
      json_decref(ck);
      return KITD_EPROTO;
    }
    const char *svc = json_string_value(json_object_get(ck, "ServiceName"));
    const char *node = json_string_value(json_object_get(ck, "Node"));
    mi = (uint64_t)json_integer_value(json_object_get(ck, "ModifyIndex"));
    named = (svc && *svc) || node;
    if (svc && *svc) name = kitd__strdup(svc);
    else if (node && (name = kitd__malloc(strlen(node) + 2)))
      name[0] = '\n', strcpy(name + 1, node);
    json_decref(ck);
  }
  if (!name) return named ? KITD_ENOMEM : 0; /* a check naming nothing: skipped */
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 256;
    struct seen *nv = kitd__realloc(d->v, cap * sizeof *nv);
    if (!nv) {
      free(name);
      return KITD_ENOMEM;
    }
    d->v = nv, d->cap = cap;
  }
  d->v[d->n].name = name;
  d->v[d->n++].idx = mi;
  return 0;
}

/* Which services' checks moved since the last answer: the digest, read
 * in full, against w->seen; the digest's names become w->seen. */
static void digest_diff(kitd__consul_watcher *w, struct digest *d) {
  struct seen *v = d->v;
  size_t k = d->n;
  qsort(v, k, sizeof *v, seen_cmp);
  size_t m = 0; /* fold duplicates into the highest index */
  for (size_t i = 0; i < k; i++) {
    if (m && !strcmp(v[m - 1].name, v[i].name)) {
      if (v[i].idx > v[m - 1].idx) v[m - 1].idx = v[i].idx;
      free(v[i].name);
    } else {
      v[m++] = v[i];
    }
  }
  if (w->have_seen) {
    bool node_moved = false;
    for (size_t i = 0; i < m; i++) {
      struct seen *o = seen_find(w->seen, w->nseen, v[i].name);
      if (o && o->idx == v[i].idx) continue;
      if (v[i].name[0] == '\n') node_moved = true;
      for (struct watch *s = w->list; s; s = s->next)
        if (s->mode == W_POLLED && !strcmp(s->service, v[i].name)) s->dirty = true;
    }
    for (size_t i = 0; i < w->nseen; i++) /* gone: a deregistration */
      if (!seen_find(v, m, w->seen[i].name)) {
        if (w->seen[i].name[0] == '\n') node_moved = true;
        for (struct watch *s = w->list; s; s = s->next)
          if (s->mode == W_POLLED && !strcmp(s->service, w->seen[i].name)) s->dirty = true;
      }
    if (node_moved) mark_all_polled(w);
  }
  seen_free(w->seen, w->nseen);
  w->seen = v;
  w->nseen = m;
  w->have_seen = true;
  d->v = NULL;
  d->n = d->cap = 0;
}

static void list_failed(kitd__consul_watcher *w, struct listq *l, int rc, const char *detail,
                        int64_t now) {
  kitd_log(w->lg, KITD_LOG_WARN, "consul-watcher", "path=%s err=%s detail=\"%s\"", l->path,
           kitd_err_name(rc), detail);
  l->next_ns = now + jitter(w, l->backoff_ms) * 1000000LL;
  l->backoff_ms = l->backoff_ms * 2 > 10000 ? 10000 : l->backoff_ms * 2;
  mark_all_polled(w); /* blind meanwhile: refetch once it answers again */
}

static void list_ok(kitd__consul_watcher *w, struct listq *l, uint64_t index, int64_t now) {
  l->backoff_ms = 50;
  if (l == &w->cat && l->index && index != l->index) mark_all_polled(w);
  l->index = index < l->index || !index ? 1 : index;
  l->next_ns = now + 10 * 1000000LL; /* coalesce bursts of writes */
}

/* Read up to DIGEST_SLICE checks of the pending health/state/any answer;
 * the diff runs once the whole array is read. An answer of every check in
 * the datacenter takes milliseconds to parse (about 8 ms for 1,000 checks
 * on a loaded 2-core machine), and this thread also delivers the blocking
 * services' answers: read at once, it held each of those up for as long,
 * which was the tail of their propagation. In slices, the loop goes back to
 * the sockets between two of them. */
static void digest_step(kitd__consul_watcher *w, int64_t now) {
  struct digest *d = &w->dg;
  const char *b = d->buf;
  int rc = 0;
  for (int k = 0; rc == 0 && k < DIGEST_SLICE; k++) {
    size_t i = skip_ws(b, d->pos, d->len);
    if (d->pos == 0) { /* the opening bracket */
      if (i == d->len || b[i] != '[') {
        rc = KITD_EPROTO;
        break;
      }
      i = skip_ws(b, i + 1, d->len);
      if (i < d->len && b[i] == ']') {
        if (skip_ws(b, i + 1, d->len) != d->len) rc = KITD_EPROTO;
        d->pos = d->len;
        break;
      }
    }
    if (d->pos >= d->len) break;
    size_t e = value_end(b, i, d->len);
    if (e == d->len || b[e] == '}') { /* an unterminated array, a stray brace */
      rc = KITD_EPROTO;
      break;
    }
    rc = digest_check(d, b + i, e - i);
    if (b[e] == ']') { /* the last element: only blanks may follow */
      if (skip_ws(b, e + 1, d->len) != d->len) rc = KITD_EPROTO;
      d->pos = d->len;
    } else {
      d->pos = e + 1;
    }
  }
  if (rc) {
    digest_clear(d);
    list_failed(w, &w->st, rc, "consul: health/state/any: not an array of checks", now);
    return;
  }
  if (d->pos < d->len) return;
  uint64_t index = d->index;
  digest_diff(w, d);
  digest_clear(d);
  list_ok(w, &w->st, index, now);
}

static void list_done(kitd__consul_watcher *w, struct listq *l, CURLcode cc, int64_t now) {
  l->in_flight = false;
  char detail[256];
  int rc = outcome(l->easy, cc, &l->x, detail, sizeof detail);
  if (rc) {
    list_failed(w, l, rc, detail, now);
    return;
  }
  if (l == &w->st && l->x.index != l->index) {
    if (!l->x.buf || !l->x.len) {
      list_failed(w, l, KITD_EPROTO, "consul: health/state/any: an empty answer", now);
      return;
    }
    /* Read it a slice at a time (digest_step); the body moves over. */
    w->dg.buf = l->x.buf;
    w->dg.len = l->x.len;
    w->dg.index = l->x.index;
    l->x.buf = NULL;
    l->x.cap = l->x.len = 0;
    return;
  }
  list_ok(w, l, l->x.index, now);
}

static void list_start(kitd__consul_watcher *w, struct listq *l) {
  char *q = query(w, false, l->index, 300000, NULL);
  int rc = q ? start(w, &l->easy, &l->x, l->path, q,
                     l->index ? 300000 + 300000 / 16 + 10000 : 30000, l, 0)
             : KITD_ENOMEM;
  free(q);
  if (rc == 0) l->in_flight = true;
}

/* ---- the thread ---- */

/* Detach removed watches, promote polled ones into free blocking slots,
 * start what is due; returns the ms until the next thing is due. */
static long schedule(kitd__consul_watcher *w, int64_t now) {
  struct watch **pp = &w->list;
  while (*pp) {
    struct watch *s = *pp;
    /* A removed watch's blocking query is left to finish: Consul frees the
     * connection's slot only when its handler returns, at the end of the
     * wait, so aborting it would not give the slot back; it stays counted
     * among the blocking ones meanwhile. (Once the owner is gone, nothing
     * will need the slot: abort.) */
    if (!s->removed || (s->in_flight && s->blocking_req && !w->owner_gone)) {
      pp = &s->next;
      continue;
    }
    if (s->in_flight) {
      curl_multi_remove_handle(w->multi, s->easy);
      if (s->mode == W_POLLED && w->refetching) w->refetching--;
    }
    *pp = s->next;
    if (s->mode == W_POLLED) w->npolled--;
    else w->nblocking--;
    s->detached = true;
    watch_release(s);
  }
  int64_t next = now + 1000 * 1000000LL;
  pthread_cond_broadcast(&w->drained);
  for (struct watch *s = w->list; s; s = s->next) {
    if (s->removed) continue;
    if (s->mode == W_POLLED && w->nblocking < w->blocking_cap && !s->in_flight) {
      s->mode = W_BLOCKING; /* a free slot: blocking from its next request */
      w->npolled--;
      w->nblocking++;
      s->next_ns = now;
    }
    if (s->in_flight) continue;
    if (s->mode == W_POLLED) {
      if (s->dirty && w->refetching < REFETCH_PARALLEL && s->next_ns <= now) {
        s->dirty = false;
        watch_start(w, s, now);
      }
      continue;
    }
    if (s->next_ns <= now) watch_start(w, s, now);
    else if (s->next_ns < next) next = s->next_ns;
  }
  if (w->npolled) {
    struct listq *ls[] = {&w->cat, &w->st};
    for (int i = 0; i < 2; i++) {
      if (ls[i]->in_flight || (ls[i] == &w->st && w->dg.buf)) continue;
      if (ls[i]->next_ns <= now) list_start(w, ls[i]);
      else if (ls[i]->next_ns < next) next = ls[i]->next_ns;
    }
  }
  long ms = (long)((next - now) / 1000000);
  return w->dg.buf ? 0 : ms < 1 ? 1 : ms; /* a digest to go on with: only a look */
}

static void watcher_destroy(kitd__consul_watcher *w);

static void *run(void *arg) {
  kitd__consul_watcher *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    long ms = schedule(w, kitd_now_ns());
    pthread_mutex_unlock(&w->mu);
    curl_multi_poll(w->multi, NULL, 0, (int)ms, NULL);
    int running;
    curl_multi_perform(w->multi, &running);
    pthread_mutex_lock(&w->mu);
    CURLMsg *m;
    int left;
    int64_t now = kitd_now_ns();
    /* The services' answers first: the list answers may be long to read. */
    struct {
      struct listq *l;
      CURLcode cc;
    } lists[LIST_QUERIES];
    int nlists = 0;
    while ((m = curl_multi_info_read(w->multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL *e = m->easy_handle;
      CURLcode cc = m->data.result;
      void *owner = NULL;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&owner);
      curl_multi_remove_handle(w->multi, e);
      if (owner == &w->cat || owner == &w->st) {
        if (nlists < LIST_QUERIES) lists[nlists].l = owner, lists[nlists++].cc = cc;
        else list_done(w, owner, cc, now); /* cannot happen: one transfer each */
      } else if (owner) {
        watch_done(w, owner, cc, now);
      }
    }
    for (int i = 0; i < nlists; i++) list_done(w, lists[i].l, lists[i].cc, now);
    if (w->dg.buf) digest_step(w, kitd_now_ns());
  }
  bool self_free = w->self_free;
  pthread_mutex_unlock(&w->mu);
  if (self_free) { /* the last reference went on this thread */
    pthread_detach(pthread_self());
    watcher_destroy(w);
  }
  return NULL;
}

static void watcher_destroy(kitd__consul_watcher *w) {
  struct listq *ls[] = {&w->cat, &w->st};
  for (int i = 0; i < 2; i++) {
    if (ls[i]->in_flight) curl_multi_remove_handle(w->multi, ls[i]->easy);
    if (ls[i]->easy) curl_easy_cleanup(ls[i]->easy);
    free(ls[i]->x.buf);
  }
  curl_multi_cleanup(w->multi);
  digest_clear(&w->dg);
  curl_slist_free_all(w->hdrs);
  curl_slist_free_all(w->cto);
  seen_free(w->seen, w->nseen);
  free(w->connect_to);
  free(w->base);
  kitd_consul_free(w->c);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->drained);
  free(w);
}

/* The last reference stops the thread; every watch is gone by then. */
static void watcher_unref(kitd__consul_watcher *w) {
  if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1) return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  bool self = pthread_equal(pthread_self(), w->th);
  w->self_free = self;
  pthread_mutex_unlock(&w->mu);
  if (self) return; /* run() frees it on its way out */
  curl_multi_wakeup(w->multi);
  pthread_join(w->th, NULL);
  watcher_destroy(w);
}

/* The owner's reference: once it goes, removed watches still draining a
 * blocking query are aborted, and this waits until the thread has let go
 * of them, so that only instancers someone still holds keep it running. */
void kitd__consul_watcher_free(kitd__consul_watcher *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->owner_gone = true;
  curl_multi_wakeup(w->multi);
  for (;;) {
    bool removed = false;
    for (struct watch *s = w->list; s; s = s->next) removed |= s->removed;
    if (!removed) break;
    pthread_cond_wait(&w->drained, &w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  watcher_unref(w);
}

static int make_base(kitd__consul_watcher *w) {
  const kitd_consul *c = w->c;
  const char *host = c->unix_path ? "localhost" : c->server_name ? c->server_name : c->host;
  bool v6 = strchr(host, ':') != NULL;
  char port[16] = "";
  if (c->port && !c->unix_path) snprintf(port, sizeof port, ":%d", c->port);
  size_t cap = strlen(host) + strlen(c->prefix) + 40;
  if (!(w->base = kitd__malloc(cap))) return KITD_ENOMEM;
  snprintf(w->base, cap, "%s://%s%s%s%s%s", c->tls ? "https" : "http", v6 ? "[" : "", host,
           v6 ? "]" : "", port, c->prefix);
  if (c->server_name && !c->unix_path) { /* verify the name, connect to the host */
    bool hv6 = strchr(c->host, ':') != NULL;
    size_t n = strlen(c->server_name) + strlen(c->host) + 8;
    if (!(w->connect_to = kitd__malloc(n))) return KITD_ENOMEM;
    snprintf(w->connect_to, n, "%s::%s%s%s:", c->server_name, hv6 ? "[" : "", c->host,
             hv6 ? "]" : "");
    if (!(w->cto = curl_slist_append(NULL, w->connect_to))) return KITD_ENOMEM;
  }
  if (c->token) {
    size_t n = strlen(c->token) + 32;
    char *h = kitd__malloc(n);
    if (!h) return KITD_ENOMEM;
    snprintf(h, n, "X-Consul-Token: %s", c->token);
    w->hdrs = curl_slist_append(NULL, h);
    memset(h, 0, strlen(h));
    free(h);
    if (!w->hdrs) return KITD_ENOMEM;
  }
  if (c->unix_path) {
    struct curl_slist *t = curl_slist_append(w->hdrs, "Host: localhost");
    if (!t) return KITD_ENOMEM;
    w->hdrs = t;
  }
  return 0;
}

int kitd__consul_watcher_new(const kitd_consul *c, unsigned max_blocking, kitd_logger *lg,
                             kitd__consul_watcher **out) {
  if (!c || !out) return KITD_EINVAL;
  kitd__consul_watcher *w = kitd__calloc(1, sizeof *w);
  if (!w) return KITD_ENOMEM;
  atomic_init(&w->refs, 1);
  w->max_conns = max_blocking ? max_blocking : 100;
  if (w->max_conns < LIST_QUERIES + REFETCH_PARALLEL + 1)
    w->max_conns = LIST_QUERIES + REFETCH_PARALLEL + 1;
  w->blocking_cap = w->max_conns - LIST_QUERIES - REFETCH_PARALLEL;
  w->lg = lg;
  w->rng = (uint64_t)kitd_now_ns() | 1;
  w->cat = (struct listq){.path = "/v1/catalog/services", .backoff_ms = 50};
  w->st = (struct listq){.path = "/v1/health/state/any", .backoff_ms = 50};
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
  int rc = pthread_mutex_init(&w->mu, &ma) ? KITD_EINTERNAL : 0;
  pthread_mutexattr_destroy(&ma);
  if (rc == 0 && pthread_cond_init(&w->drained, NULL)) {
    pthread_mutex_destroy(&w->mu);
    rc = KITD_EINTERNAL;
  }
  if (rc) {
    free(w);
    return rc;
  }
  if ((rc = kitd__consul_dup(c, &w->c)) || (rc = make_base(w)) ||
      (rc = (w->multi = curl_multi_init()) ? 0 : KITD_ENOMEM)) {
    watcher_destroy(w);
    return rc;
  }
  /* The agent's connection budget is a hard cap: past it, transfers queue. */
  curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)w->max_conns);
  curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, (long)w->max_conns);
  if (pthread_create(&w->th, NULL, run, w)) {
    watcher_destroy(w);
    return KITD_EINTERNAL;
  }
  *out = w;
  return 0;
}

int kitd__consul_watcher_instancer(kitd__consul_watcher *w, const char *service,
                                   const kitd_consul_instancer_opts *o, kitd_instancer **out) {
  if (!w || !service || !*service || !out) return KITD_EINVAL;
  kitd_consul_instancer_opts d;
  kitd_consul_instancer_opts_init(&d);
  if (!o) o = &d;
  if (o->ntags && !o->tags) return KITD_EINVAL;
  struct watch *s = kitd__calloc(1, sizeof *s);
  if (!s) return KITD_ENOMEM;
  size_t cap = strlen(service) * 3 + 32;
  s->path = kitd__malloc(cap);
  s->service = kitd__strdup(service);
  s->tags = o->ntags ? kitd__calloc(o->ntags, sizeof *s->tags) : NULL;
  s->dc = o->datacenter ? kitd__strdup(o->datacenter) : NULL;
  int rc = s->path && s->service && (!o->ntags || s->tags) && (!o->datacenter || s->dc)
               ? 0
               : KITD_ENOMEM;
  for (size_t i = 0; rc == 0 && i < o->ntags; i++, s->ntags++)
    if (!o->tags[i] || !(s->tags[i] = kitd__strdup(o->tags[i])))
      rc = o->tags[i] ? KITD_ENOMEM : KITD_EINVAL;
  if (rc == 0) {
    strcpy(s->path, "/v1/health/service/");
    rc = kitd__consul_escape(s->path, cap, service);
  }
  if (rc == 0) rc = kitd__instancer_init(&s->base, &watch_ops);
  if (rc) {
    watch_free(s);
    return rc;
  }
  char what[300];
  snprintf(what, sizeof what, "%sinstances of '%.200s'", o->passing_only ? "passing " : "",
           service);
  kitd__instancer_set_what(&s->base, what); /* only a message if it fails */
  s->passing = o->passing_only != 0;
  s->max_body = o->max_body;
  s->wait_ms = o->wait_ms >= 1000 ? o->wait_ms : 300000;
  s->min_interval_ms = o->min_interval_ms > 0 ? o->min_interval_ms : 1000;
  s->bmin = s->backoff_ms = o->backoff_min_ms > 0 ? o->backoff_min_ms : 50;
  s->bmax = o->backoff_max_ms >= s->bmin ? o->backoff_max_ms : 10000;
  s->tokens = 2;
  s->tokens_ns = kitd_now_ns();
  s->w = w;
  atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
  pthread_mutex_lock(&w->mu);
  if (w->nblocking < w->blocking_cap) {
    s->mode = W_BLOCKING; /* its first request does not block (index 0) */
    w->nblocking++;
  } else {
    s->mode = W_POLLED;
    s->dirty = true;
    w->npolled++;
  }
  s->next_ns = 0;
  s->next = w->list;
  w->list = s;
  pthread_mutex_unlock(&w->mu);
  curl_multi_wakeup(w->multi);
  *out = &s->base;
  return 0;
}

void kitd__consul_watcher_stats(kitd__consul_watcher *w, unsigned *blocking, unsigned *polled,
                                long *refetches) {
  pthread_mutex_lock(&w->mu);
  if (blocking) *blocking = w->nblocking;
  if (polled) *polled = w->npolled;
  if (refetches) *refetches = w->refetches;
  pthread_mutex_unlock(&w->mu);
}
