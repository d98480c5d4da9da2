/* One HTTP request to the Consul agent, over libcurl.
 *
 * Each kitd__consul_http owns a multi handle with one easy handle, so that
 * the connection stays alive between requests and a request can be aborted
 * at once: the transfer waits in curl_multi_poll(), which another thread
 * wakes with curl_multi_wakeup() after setting the stop flag. A progress
 * callback alone would see the flag only about once a second during an idle
 * long poll. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "consul/consul_impl.h"
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
  bool too_big;
  bool has_index;
  uint64_t index;
  bool bad_index;
};

int kitd__consul_http_new(const kitd_consul *c, const int *stop,
                          kitd__consul_http **out) {
  static int global_done;
  /* curl_global_init is not thread-safe before 7.84; libcurl >= 7.84 makes
   * it so. kitd_global_init() is the documented way; this is the fallback. */
  if (!__atomic_exchange_n(&global_done, 1, __ATOMIC_ACQ_REL))
    curl_global_init(CURL_GLOBAL_DEFAULT);
  kitd__consul_http *h = kitd__calloc(1, sizeof *h);
  if (!h) return KITD_ENOMEM;
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
}

void kitd__consul_http_wake(kitd__consul_http *h) {
  if (h && h->multi) curl_multi_wakeup(h->multi);
}

void kitd__consul_resp_clear(kitd__consul_resp *r) {
  free(r->body);
  memset(r, 0, sizeof *r);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  struct xfer *x = arg;
  size_t len = size * n;
  if (len > x->max - x->len) {
    x->too_big = true;
    return 0; /* abort: CURLE_WRITE_ERROR */
  }
  if (x->len + len + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 4096;
    while (cap < x->len + len + 1) cap *= 2;
    char *b = kitd__realloc(x->buf, cap);
    if (!b) return 0;
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

static bool plain_byte(unsigned char c) {
  return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

char *kitd__consul_path(const char *prefix, const char *s) {
  size_t n = strlen(prefix) + 1;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += plain_byte(*p) ? 1 : 3;
  char *out = kitd__malloc(n);
  if (!out) return NULL;
  strcpy(out, prefix);
  kitd__consul_escape(out, n, s); /* fits: n counted every byte */
  return out;
}

int kitd__consul_escape(char *buf, size_t cap, const char *s) {
  size_t o = strlen(buf);
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool plain = plain_byte(*p);
    if (o + (plain ? 1 : 3) + 1 > cap) return KITD_EINVAL;
    if (plain) {
      buf[o++] = (char)*p;
    } else {
      buf[o++] = '%';
      buf[o++] = hex[*p >> 4];
      buf[o++] = hex[*p & 15];
    }
  }
  buf[o] = '\0';
  return 0;
}

/* Copy Consul's plain-text error into detail: printable bytes only, the
 * token (should an answer ever echo it) replaced. */
static void error_detail(char *dst, size_t cap, const char *agent, int status,
                         const char *body, size_t len, const char *token) {
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

/* Every detail starts with "consul: " and names the agent, so that the
 * text explains itself wherever it ends up (an event, a call's ctx, a log
 * line): "consul: connect 127.0.0.1:8500 refused". */
static int curl_err(CURLcode cc, const char *agent, struct xfer *x, kitd__consul_resp *r) {
  const char *what = curl_easy_strerror(cc);
  char *d = r->detail;
  size_t n = sizeof r->detail;
  switch (cc) {
    case CURLE_COULDNT_CONNECT:
      snprintf(d, n, "consul: connect %s refused", agent);
      return KITD_ECONNECT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      snprintf(d, n, "consul: cannot resolve %s: %s", agent, what);
      return KITD_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
      snprintf(d, n, "consul: %s did not answer in time", agent);
      return KITD_ETIMEDOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
      snprintf(d, n, "consul: %s: TLS: %s", agent, what);
      return KITD_ETLS;
    case CURLE_WRITE_ERROR:
      if (x->too_big) {
        snprintf(d, n, "consul: %s: answer larger than %zu bytes", agent, x->max);
        return KITD_ETOOBIG;
      }
      snprintf(d, n, "consul: out of memory reading the answer of %s", agent);
      return KITD_ENOMEM;
    case CURLE_OUT_OF_MEMORY:
      snprintf(d, n, "consul: out of memory");
      return KITD_ENOMEM;
    case CURLE_PARTIAL_FILE:
      snprintf(d, n, "consul: %s: answer cut short: %s", agent, what);
      return KITD_EPROTO;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_WEIRD_SERVER_REPLY:
      snprintf(d, n, "consul: %s: bad or cut answer: %s", agent, what);
      return KITD_EPROTO;
    default:
      snprintf(d, n, "consul: %s: request failed: %s", agent, what);
      return KITD_EIO;
  }
}

static bool stopped(const kitd__consul_http *h) {
  return h->stop && __atomic_load_n(h->stop, __ATOMIC_ACQUIRE);
}

/* Build the URL: base + prefix + path + query (+ dc, ns, partition). */
static int build_url(const kitd_consul *c, const kitd__consul_req *q, char **out) {
  size_t cap = 512 + strlen(q->path) + (q->query ? strlen(q->query) : 0) +
               3 * ((q->dc ? strlen(q->dc) : 0) + (c->ns ? strlen(c->ns) : 0) +
                    (c->partition ? strlen(c->partition) : 0) +
                    (c->server_name ? strlen(c->server_name) : 0) + strlen(c->host) +
                    strlen(c->prefix));
  char *u = kitd__malloc(cap);
  if (!u) return KITD_ENOMEM;
  const char *host = c->server_name && !c->unix_path ? c->server_name : c->host;
  bool v6 = strchr(host, ':') != NULL;
  char port[16] = "";
  if (c->port) snprintf(port, sizeof port, ":%d", c->port);
  snprintf(u, cap, "%s://%s%s%s%s%s%s", c->tls ? "https" : "http", v6 ? "[" : "", host,
           v6 ? "]" : "", c->unix_path ? "" : port, c->prefix, q->path);
  char sep = '?';
  if (q->query && *q->query) {
    size_t l = strlen(u);
    snprintf(u + l, cap - l, "?%s", q->query);
    sep = '&';
  }
  const char *names[] = {"dc", "ns", "partition"};
  const char *vals[] = {q->dc, c->ns, c->partition};
  for (int i = 0; i < 3; i++) {
    if (!vals[i] || !*vals[i]) continue;
    size_t l = strlen(u);
    snprintf(u + l, cap - l, "%c%s=", sep, names[i]);
    sep = '&';
    if (kitd__consul_escape(u, cap, vals[i])) {
      free(u);
      return KITD_EINVAL;
    }
  }
  *out = u;
  return 0;
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  const char **p = arg; /* p[0] = cursor, p[1] = end */
  size_t left = (size_t)(p[1] - p[0]), want = size * n;
  if (want > left) want = left;
  memcpy(buf, p[0], want);
  p[0] += want;
  return want;
}

int kitd__consul_http_do(kitd__consul_http *h, const kitd__consul_req *q,
                         kitd__consul_resp *r) {
  memset(r, 0, sizeof *r);
  const kitd_consul *c = h->c;
  if (stopped(h)) {
    snprintf(r->detail, sizeof r->detail, "stopped");
    return KITD_ESTOPPED;
  }
  char *url = NULL;
  int e = build_url(c, q, &url);
  if (e) {
    snprintf(r->detail, sizeof r->detail, "cannot build the request URL");
    return e;
  }
  struct xfer x = {0};
  x.max = q->max_body ? q->max_body : c->max_body;
  CURL *ez = h->easy;
  curl_easy_reset(ez);
  curl_easy_setopt(ez, CURLOPT_URL, url);
  curl_easy_setopt(ez, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(ez, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(ez, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(ez, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(ez, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(ez, CURLOPT_HEADERDATA, &x);
  curl_easy_setopt(ez, CURLOPT_TIMEOUT_MS, (long)(q->timeout_ms > 0 ? q->timeout_ms : 30000));
  curl_easy_setopt(ez, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(ez, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(ez, CURLOPT_USERAGENT, "libkitd");
  curl_easy_setopt(ez, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(ez, CURLOPT_TCP_KEEPALIVE, 1L);
  if (c->unix_path) curl_easy_setopt(ez, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
  struct curl_slist *cto = NULL;
  bool cto_oom = false;
  if (c->server_name && !c->unix_path) {
    /* Verify (and send as SNI) the server name, connect to the real host. */
    bool v6 = strchr(c->host, ':') != NULL;
    size_t cl = strlen(c->server_name) + strlen(c->host) + 8;
    char *connect_to = kitd__malloc(cl);
    if (connect_to) {
      snprintf(connect_to, cl, "%s::%s%s%s:", c->server_name, v6 ? "[" : "", c->host,
               v6 ? "]" : "");
      cto = curl_slist_append(NULL, connect_to);
      free(connect_to);
    }
    if (cto) curl_easy_setopt(ez, CURLOPT_CONNECT_TO, cto);
    else cto_oom = true;
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
  struct curl_slist *hdrs = NULL, *tmp;
  char *tokhdr = NULL;
  bool oom = cto_oom;
  if (c->token) {
    size_t tl = strlen(c->token) + 32;
    tokhdr = kitd__malloc(tl);
    if (!tokhdr) oom = true;
    else {
      snprintf(tokhdr, tl, "X-Consul-Token: %s", c->token);
      if ((tmp = curl_slist_append(hdrs, tokhdr))) hdrs = tmp;
      else oom = true;
    }
  }
  if (c->unix_path) {
    if ((tmp = curl_slist_append(hdrs, "Host: localhost"))) hdrs = tmp;
    else oom = true;
  }
  const char *cursor[2] = {q->body, q->body ? q->body + q->body_len : NULL};
  if (strcmp(q->method, "PUT") == 0) {
    if ((tmp = curl_slist_append(hdrs, "Content-Type: application/json"))) hdrs = tmp;
    else oom = true;
    if ((tmp = curl_slist_append(hdrs, "Expect:"))) hdrs = tmp;
    else oom = true;
    curl_easy_setopt(ez, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(ez, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(ez, CURLOPT_READDATA, cursor);
    curl_easy_setopt(ez, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(q->body ? q->body_len : 0));
  } else if (strcmp(q->method, "GET") != 0) {
    curl_easy_setopt(ez, CURLOPT_CUSTOMREQUEST, q->method);
  }
  if (hdrs) curl_easy_setopt(ez, CURLOPT_HTTPHEADER, hdrs);
  int rc = 0;
  if (oom) {
    rc = KITD_ENOMEM;
    snprintf(r->detail, sizeof r->detail, "out of memory");
    goto out;
  }

  if (curl_multi_add_handle(h->multi, ez) != CURLM_OK) {
    rc = KITD_ENOMEM; /* what it reports besides misuse: no memory */
    snprintf(r->detail, sizeof r->detail, "consul: cannot start the request (out of memory)");
    goto out;
  }
  CURLcode cc = CURLE_OK;
  bool done = false, aborted = false;
  int ctx_err = 0;
  while (!done) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(h->multi, &running);
    if (mc != CURLM_OK) {
      cc = CURLE_OUT_OF_MEMORY;
      break;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)))
      if (m->msg == CURLMSG_DONE) {
        cc = m->data.result;
        done = true;
      }
    if (done) break;
    if (stopped(h)) {
      aborted = true;
      break;
    }
    if (q->ctx && (ctx_err = kitd_ctx_err(q->ctx))) break;
    /* Woken at once by kitd__consul_http_wake(); a ctx is polled. */
    curl_multi_poll(h->multi, NULL, 0, q->ctx ? 20 : 1000, NULL);
    if (stopped(h)) {
      aborted = true;
      break;
    }
  }
  curl_multi_remove_handle(h->multi, ez);
  if (aborted) {
    rc = KITD_ESTOPPED;
    snprintf(r->detail, sizeof r->detail, "stopped");
    goto out;
  }
  if (ctx_err) {
    rc = ctx_err;
    snprintf(r->detail, sizeof r->detail, "%s", kitd_strerror(ctx_err));
    goto out;
  }
  long status = 0;
  curl_easy_getinfo(ez, CURLINFO_RESPONSE_CODE, &status);
  r->status = (int)status;
  if (cc != CURLE_OK) {
    char agent[200];
    agent_name(c, agent, sizeof agent);
    rc = curl_err(cc, agent, &x, r);
    goto out;
  }
  r->has_index = x.has_index;
  r->index = x.index;
  if (status < 200 || status > 299) {
    char agent[200];
    agent_name(c, agent, sizeof agent);
    error_detail(r->detail, sizeof r->detail, agent, (int)status, x.buf, x.len, c->token);
    rc = status == 403 ? KITD_EACL : KITD_EHTTP;
  } else if (x.bad_index) {
    snprintf(r->detail, sizeof r->detail, "consul: X-Consul-Index is not a decimal number");
    rc = KITD_EPROTO;
  }
  r->body = x.buf;
  r->len = x.len;
  x.buf = NULL;
out:
  free(x.buf);
  free(url);
  if (tokhdr) {
    explicit_bzero(tokhdr, strlen(tokhdr));
    free(tokhdr);
  }
  curl_slist_free_all(hdrs);
  curl_slist_free_all(cto);
  return rc;
}
