/* SPDX-License-Identifier: MIT */
/* One HTTP request to the Consul agent, over libcurl (lib/curl).
 *
 * Each kitd__consul_http owns a multi handle with one easy handle, so that
 * the connection stays alive between requests and a request can be aborted
 * at once: kitd__curl_perform() waits in curl_multi_poll(), which another
 * thread wakes (kitd__consul_http_wake) after setting the stop flag. A
 * progress callback alone would see the flag only about once a second
 * during an idle long poll.
 *
 * The detail strings are bounded on purpose (kitd__consul_resp.detail): a
 * message cut at 255 bytes is still a message, so those snprintf calls do
 * not check for truncation. URLs and headers, which must not be cut, are
 * built in growable strings. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consul/consul_impl.h"
#include "core/alloc.h"
#include "curl/kitd_curl.h"
#include "kitd/error.h"

struct kitd__consul_http {
  const kitd_consul *c;
  const int *stop;
  CURLM *multi;
  CURL *easy;
};

/* State of one transfer, shared with the callbacks. */
struct xfer {
  char *buf;
  size_t len, cap, max;
  int write_err; /* why on_body refused data: KITD_ETOOBIG, KITD_ENOMEM */
  bool has_index;
  uint64_t index;
  bool bad_index;
};

int kitd__consul_http_new(const kitd_consul *c, const int *stop, kitd__consul_http **out) {
  kitd__consul_http *h = kitd__calloc(1, sizeof *h);
  if (!h) return KITD_ENOMEM;
  int rc = kitd__curl_acquire();
  if (rc) {
    free(h);
    return rc;
  }
  h->c = c;
  h->stop = stop;
  h->multi = curl_multi_init();
  h->easy = curl_easy_init();
  if (!h->multi || !h->easy) {
    kitd__consul_http_free(h);
    return KITD_ENOMEM;
  }
  *out = h;
  return 0;
}

void kitd__consul_http_free(kitd__consul_http *h) {
  if (!h) return;
  if (h->easy) curl_easy_cleanup(h->easy);
  if (h->multi) curl_multi_cleanup(h->multi);
  free(h);
  kitd__curl_release();
}

void kitd__consul_http_wake(kitd__consul_http *h) {
  if (h) kitd__curl_wake(h->multi);
}

void kitd__consul_resp_clear(kitd__consul_resp *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  size_t len = size * n;
  if (len > x->max - x->len) {
    x->write_err = KITD_ETOOBIG;
    return 0; /* abort: CURLE_WRITE_ERROR */
  }
  if (x->len + len + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 4096;
    while (cap < x->len + len + 1) cap *= 2;
    char *b = kitd__realloc(x->buf, cap);
    if (!b) {
      x->write_err = KITD_ENOMEM;
      return 0;
    }
    x->buf = b;
    x->cap = cap;
  }
  memcpy(x->buf + x->len, p, len);
  x->len += len;
  x->buf[x->len] = '\0';
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  size_t len = size * n;
  static const char name[] = "x-consul-index:";
  if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
    /* A new response (after a 100 Continue): forget earlier headers. */
    x->has_index = false;
    x->bad_index = false;
  }
  if (len < sizeof name - 1 || strncasecmp(p, name, sizeof name - 1) != 0) return len;
  const char *v = p + sizeof name - 1, *end = p + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && isspace((unsigned char)end[-1])) end--;
  uint64_t idx = 0;
  bool ok = v < end && end - v <= 20;
  for (const char *q = v; ok && q < end; q++) {
    if (!isdigit((unsigned char)*q)) ok = false;
    else {
      uint64_t d = (uint64_t)(*q - '0');
      if (idx > (UINT64_MAX - d) / 10) ok = false;
      else idx = idx * 10 + d;
    }
  }
  x->has_index = ok;
  x->bad_index = !ok;
  x->index = idx;
  return len;
}

char *kitd__consul_path(const char *prefix, const char *s) {
  size_t pl = strlen(prefix), n = pl + kitd__curl_escape(NULL, s) + 1;
  char *out = kitd__malloc(n);
  if (!out) return NULL;
  memcpy(out, prefix, pl + 1);
  kitd__curl_escape(out + pl, s); /* fits: n counted every byte */
  return out;
}

int kitd__consul_escape(char *buf, size_t cap, const char *s) {
  size_t o = strlen(buf);
  if (o >= cap || kitd__curl_escape(NULL, s) + 1 > cap - o) return KITD_EINVAL;
  kitd__curl_escape(buf + o, s);
  return 0;
}

/* Copy Consul's plain-text error into detail: printable bytes only, the
 * token (should an answer ever echo it) replaced. */
static void error_detail(char *dst, size_t cap, const char *agent, int status, const char *body,
                         size_t len, const char *token) {
  int n = snprintf(dst, cap, "consul: %s: HTTP %d", agent, status);
  if (n < 0 || (size_t)n >= cap) return;
  size_t o = (size_t)n;
  if (!body || len == 0) return;
  if (o + 2 < cap) {
    dst[o++] = ':';
    dst[o++] = ' ';
  }
  for (size_t i = 0; i < len && o + 1 < cap; i++) {
    unsigned char ch = (unsigned char)body[i];
    dst[o++] = (ch < ' ' || ch == 0x7f) ? ' ' : (char)ch;
  }
  while (o > 0 && dst[o - 1] == ' ') o--;
  dst[o] = '\0';
  if (token && *token) {
    char *hit;
    while ((hit = strstr(dst, token)) != NULL) {
      size_t tl = strlen(token);
      static const char red[] = "<redacted>";
      if (tl >= sizeof red - 1) {
        memcpy(hit, red, sizeof red - 1);
        memmove(hit + sizeof red - 1, hit + tl, strlen(hit + tl) + 1);
      } else {
        memset(hit, '*', tl);
      }
    }
  }
}

/* The detail for a failed transfer: code from kitd__curl_code(). */
/* The agent as an error text names it: "127.0.0.1:8500", "[::1]:8500",
 * "unix:///run/consul.sock". Cut to fit `cap` (it is only shown). */
static void agent_name(const kitd_consul *c, char *buf, size_t cap) {
  if (c->unix_path) {
    snprintf(buf, cap, "unix://%s", c->unix_path);
    return;
  }
  bool v6 = strchr(c->host, ':') != NULL;
  int port = c->port ? c->port : c->tls ? 443 : 80;
  snprintf(buf, cap, "%s%s%s:%d", v6 ? "[" : "", c->host, v6 ? "]" : "", port);
}

/* The detail for a failed transfer (code from kitd__curl_code()). Every
 * detail starts with "consul: " and names the agent, so that the text
 * explains itself wherever it ends up (an event, a call's ctx, a log
 * line): "consul: connect 127.0.0.1:8500 refused". */
static void curl_detail(int rc, CURLcode cc, const char *agent, const struct xfer *x,
                        kitd__consul_resp *r) {
  const char *what = curl_easy_strerror(cc);
  char *d = r->detail;
  size_t n = sizeof r->detail;
  switch (rc) {
  case KITD_ECONNECT:
    if (cc == CURLE_COULDNT_CONNECT) snprintf(d, n, "consul: connect %s refused", agent);
    else snprintf(d, n, "consul: cannot connect to %s: %s", agent, what);
    break;
  case KITD_ETIMEDOUT: snprintf(d, n, "consul: %s did not answer in time", agent); break;
  case KITD_ETLS: snprintf(d, n, "consul: %s: TLS: %s", agent, what); break;
  case KITD_ETOOBIG:
    snprintf(d, n, "consul: %s: answer larger than %zu bytes", agent, x->max);
    break;
  case KITD_ENOMEM: snprintf(d, n, "consul: out of memory reading the answer of %s", agent); break;
  case KITD_EPROTO:
    snprintf(d, n, "consul: %s: %s: %s", agent,
             cc == CURLE_PARTIAL_FILE ? "answer cut short" : "bad answer", what);
    break;
  default: snprintf(d, n, "consul: %s: request failed: %s", agent, what); break;
  }
}

/* Build the URL: base + prefix + path + query (+ dc, ns, partition). */
static int build_url(const kitd_consul *c, const kitd__consul_req *q, kitd__curl_str *u) {
  const char *host = c->server_name && !c->unix_path ? c->server_name : c->host;
  bool v6 = strchr(host, ':') != NULL;
  kitd__curl_str_printf(u, "%s://%s%s%s", c->tls ? "https" : "http", v6 ? "[" : "", host,
                        v6 ? "]" : "");
  if (c->port && !c->unix_path) kitd__curl_str_printf(u, ":%d", c->port);
  kitd__curl_str_printf(u, "%s%s", c->prefix, q->path);
  char sep = '?';
  if (q->query && *q->query) {
    kitd__curl_str_printf(u, "?%s", q->query);
    sep = '&';
  }
  const char *names[] = {"dc", "ns", "partition"};
  const char *vals[] = {q->dc, c->ns, c->partition};
  for (int i = 0; i < 3; i++) {
    if (!vals[i] || !*vals[i]) continue;
    kitd__curl_str_printf(u, "%c%s=", sep, names[i]);
    kitd__curl_str_escape(u, vals[i]);
    sep = '&';
  }
  return u->err;
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  const char **p = arg; /* p[0] = cursor, p[1] = end */
  size_t left = (size_t)(p[1] - p[0]), want = size * n;
  if (want > left) want = left;
  memcpy(buf, p[0], want);
  p[0] += want;
  return want;
}

/* What one request owns besides the transfer state; freed by req_done(). */
struct req {
  kitd__curl_str url, connect_to, token;
  struct curl_slist *hdrs, *cto;
  const char *cursor[2];
  bool oom;
};

static void req_done(struct req *rq) {
  if (rq->token.data) explicit_bzero(rq->token.data, rq->token.len); /* no token left */
  kitd__curl_str_free(&rq->url);
  kitd__curl_str_free(&rq->connect_to);
  kitd__curl_str_free(&rq->token);
  curl_slist_free_all(rq->hdrs);
  curl_slist_free_all(rq->cto);
}

static void add_header(struct req *rq, const char *line) {
  struct curl_slist *t = curl_slist_append(rq->hdrs, line);
  if (t) rq->hdrs = t;
  else rq->oom = true;
}

/* Options that do not depend on the request: transport, TLS, auth. */
static void set_conn_opts(CURL *ez, const kitd_consul *c, struct req *rq) {
  curl_easy_setopt(ez, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(ez, CURLOPT_ACCEPT_ENCODING, kitd__consul_accept_encoding(c));
  curl_easy_setopt(ez, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(ez, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(ez, CURLOPT_USERAGENT, "libkitd");
  curl_easy_setopt(ez, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(ez, CURLOPT_TCP_KEEPALIVE, 1L);
  if (c->unix_path) curl_easy_setopt(ez, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  if (c->server_name && !c->unix_path) {
    /* Verify (and send as SNI) the server name, connect to the real host. */
    bool v6 = strchr(c->host, ':') != NULL;
    kitd__curl_str_printf(&rq->connect_to, "%s::%s%s%s:", c->server_name, v6 ? "[" : "", c->host,
                          v6 ? "]" : "");
    if (rq->connect_to.err || !(rq->cto = curl_slist_append(NULL, rq->connect_to.data)))
      rq->oom = true;
    else curl_easy_setopt(ez, CURLOPT_CONNECT_TO, rq->cto);
  }
  if (c->tls) {
    curl_easy_setopt(ez, CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
    curl_easy_setopt(ez, CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
    if (c->cafile) curl_easy_setopt(ez, CURLOPT_CAINFO, c->cafile);
    if (c->capath) curl_easy_setopt(ez, CURLOPT_CAPATH, c->capath);
    if (c->cert) curl_easy_setopt(ez, CURLOPT_SSLCERT, c->cert);
    if (c->key) curl_easy_setopt(ez, CURLOPT_SSLKEY, c->key);
  }
  if (c->auth_user) {
    curl_easy_setopt(ez, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(ez, CURLOPT_USERNAME, c->auth_user);
    curl_easy_setopt(ez, CURLOPT_PASSWORD, c->auth_pass ? c->auth_pass : "");
  }
}

/* Options of this request: URL, callbacks, method, body, headers. */
static void set_req_opts(CURL *ez, const kitd_consul *c, const kitd__consul_req *q, struct xfer *x,
                         struct req *rq) {
  curl_easy_setopt(ez, CURLOPT_URL, rq->url.data);
  curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(ez, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(ez, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(ez, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(ez, CURLOPT_TIMEOUT_MS, (long)(q->timeout_ms > 0 ? q->timeout_ms : 30000));
  if (c->token) {
    kitd__curl_str_printf(&rq->token, "X-Consul-Token: %s", c->token);
    if (rq->token.err) rq->oom = true;
    else add_header(rq, rq->token.data);
  }
  if (c->unix_path) add_header(rq, "Host: localhost");
  rq->cursor[0] = q->body;
  rq->cursor[1] = q->body ? q->body + q->body_len : NULL;
  if (strcmp(q->method, "PUT") == 0) {
    add_header(rq, "Content-Type: application/json");
    add_header(rq, "Expect:");
    curl_easy_setopt(ez, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(ez, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(ez, CURLOPT_READDATA, (void *)rq->cursor);
    curl_easy_setopt(ez, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(q->body ? q->body_len : 0));
  } else if (strcmp(q->method, "GET") != 0) {
    curl_easy_setopt(ez, CURLOPT_CUSTOMREQUEST, q->method);
  }
  if (rq->hdrs) curl_easy_setopt(ez, CURLOPT_HTTPHEADER, rq->hdrs);
}

/* The outcome of a finished transfer: status, index, body, error code. */
static int finish(kitd__consul_http *h, CURLcode cc, struct xfer *x, kitd__consul_resp *r) {
  long status = 0;
  curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
  r->status = (int)status;
  char agent[200];
  agent_name(h->c, agent, sizeof agent);
  if (cc != CURLE_OK) {
    int rc = kitd__curl_code(cc, x->write_err);
    curl_detail(rc, cc, agent, x, r);
    return rc;
  }
  int rc = 0;
  r->has_index = x->has_index;
  r->index = x->index;
  if (status < 200 || status > 299) {
    error_detail(r->detail, sizeof r->detail, agent, (int)status, x->buf, x->len, h->c->token);
    rc = status == 403 ? KITD_EACL : KITD_EHTTP;
  } else if (x->bad_index) {
    snprintf(r->detail, sizeof r->detail, "consul: X-Consul-Index is not a decimal number");
    rc = KITD_EPROTO;
  }
  r->body = x->buf;
  r->len = x->len;
  x->buf = NULL;
  return rc;
}

int kitd__consul_http_do(kitd__consul_http *h, const kitd__consul_req *q, kitd__consul_resp *r) {
  memset(r, 0, sizeof *r);
  struct req rq = {0};
  struct xfer x = {0};
  x.max = q->max_body ? q->max_body : h->c->max_body;
  int rc = build_url(h->c, q, &rq.url);
  if (rc) {
    snprintf(r->detail, sizeof r->detail, "consul: cannot build the request URL");
    goto out;
  }
  curl_easy_reset(h->easy);
  set_conn_opts(h->easy, h->c, &rq);
  set_req_opts(h->easy, h->c, q, &x, &rq);
  if (rq.oom) {
    rc = KITD_ENOMEM;
    snprintf(r->detail, sizeof r->detail, "consul: out of memory");
    goto out;
  }
  kitd__curl_stop stop = {.ctx = q->ctx, .flag = h->stop, .wakeable = 1};
  CURLcode cc = CURLE_OK;
  rc = kitd__curl_perform(h->multi, h->easy, &stop, &cc);
  if (rc) snprintf(r->detail, sizeof r->detail, "consul: %s", kitd_strerror(rc));
  else rc = finish(h, cc, &x, r);
out:
  free(x.buf);
  req_done(&rq);
  return rc;
}
