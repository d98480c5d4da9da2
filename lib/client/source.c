/* SPDX-License-Identifier: MIT */
/* Source strings: one way to name a registry (consul://, etcd://,
 * dns+srv://, file://, or a plain Consul service name). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/source_impl.h"
#include "core/alloc.h"
#include "core/log_impl.h"
#include "kitd/error.h"
#include "kitd/source.h"

#define EXPECTED                                                                                   \
  "expected consul://HOST:PORT/SERVICE, etcd://HOST:PORT/PREFIX, "                                 \
  "dns+srv://SERVER:PORT/NAME, dns+srv:///NAME, file:///PATH or a Consul service name"

static int bad(char **detail, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(char **detail, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  free(*detail);
  *detail = kitd__vasprintf(fmt, ap);
  va_end(ap);
  return KITD_EINVAL;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0..n). Returns a new string, or NULL with *err set
 * (KITD_EINVAL for a bad escape or an encoded NUL, else KITD_ENOMEM). */
static char *decode(const char *s, size_t n, int *err) {
  char *o = kitd__malloc(n + 1);
  if (!o) {
    *err = KITD_ENOMEM;
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '%') {
      o[k++] = s[i];
      continue;
    }
    /* Two hex digits must follow; %00 would cut the string short. */
    if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0 ||
        (hexval(s[i + 1]) == 0 && hexval(s[i + 2]) == 0)) {
      free(o);
      *err = KITD_EINVAL;
      return NULL;
    }
    o[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
    i += 2;
  }
  o[k] = '\0';
  return o;
}

void kitd__source_clear(struct kitd__source *src) {
  if (!src) return;
  free(src->host);
  free(src->name);
  for (size_t i = 0; i < src->ntags; i++) free(src->tags[i]);
  free(src->tags);
  free(src->dc);
  memset(src, 0, sizeof *src);
  src->passing = -1;
}

/* A Consul service name or a DNS name: no separators, no spaces. */
static int plain_name(const char *s) {
  if (!*s) return 0;
  for (const char *p = s; *p; p++)
    if (*p <= ' ' || *p == 0x7f || strchr("/?#:@&=%", *p)) return 0;
  return 1;
}

/* HOST:PORT (HOST a name, IPv4, or [IPv6]; PORT 1..65535). */
static int host_port(const char *s, size_t n) {
  const char *colon = NULL;
  for (size_t i = n; i > 0; i--)
    if (s[i - 1] == ':') {
      colon = s + i - 1;
      break;
    }
  if (!colon || colon == s || (size_t)(colon - s) == n - 1) return 0;
  if (s[0] == '[' ? colon[-1] != ']' : memchr(s, ':', (size_t)(colon - s)) != NULL) return 0;
  unsigned long port = 0;
  for (const char *p = colon + 1; p < s + n; p++) {
    if (*p < '0' || *p > '9') return 0;
    port = port * 10 + (unsigned long)(*p - '0');
    if (port > 65535) return 0;
  }
  for (const char *p = s; p < colon; p++)
    if (*p <= ' ' || *p == 0x7f || strchr("/?#@%", *p)) return 0;
  return port > 0;
}

static int consul_query(const char *src, const char *q, struct kitd__source *out, char **detail) {
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t n = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', n);
    if (!eq) return bad(detail, "'%s': query part '%.*s' is not KEY=VALUE", src, (int)n, q);
    size_t kn = (size_t)(eq - q);
    int e = 0;
    char *v = decode(eq + 1, n - kn - 1, &e);
    if (!v) return e == KITD_ENOMEM ? e : bad(detail, "'%s': bad %% escape in the query", src);
    if (kn == 3 && memcmp(q, "tag", 3) == 0) {
      char **t = kitd__realloc(out->tags, (out->ntags + 1) * sizeof *t);
      if (!t) {
        free(v);
        return KITD_ENOMEM;
      }
      out->tags = t;
      out->tags[out->ntags++] = v;
      if (!*v) return bad(detail, "'%s': empty tag=", src);
    } else if (kn == 7 && memcmp(q, "passing", 7) == 0) {
      if (!strcmp(v, "1") || !strcasecmp(v, "true")) out->passing = 1;
      else if (!strcmp(v, "0") || !strcasecmp(v, "false")) out->passing = 0;
      else e = bad(detail, "'%s': passing= takes 1 or 0, not '%s'", src, v);
      free(v);
      if (e) return e;
    } else if (kn == 2 && memcmp(q, "dc", 2) == 0) {
      free(out->dc);
      out->dc = v;
      if (!*v) return bad(detail, "'%s': empty dc=", src);
    } else {
      free(v);
      return bad(detail, "'%s': unknown query key '%.*s' (consul:// knows tag, passing, dc)", src,
                 (int)kn, q);
    }
    q += n + (amp ? 1 : 0);
  }
  return 0;
}

int kitd__source_parse(const char *s, struct kitd__source *out, char **detail) {
  memset(out, 0, sizeof *out);
  out->passing = -1;
  *detail = NULL;
  if (!s || !*s) return bad(detail, "empty source (%s)", EXPECTED);
  int rc = 0;
  const char *sep = strstr(s, "://");
  if (!sep) {
    if (!plain_name(s)) return bad(detail, "'%s' is not a source (%s)", s, EXPECTED);
    out->kind = KITD__SOURCE_CONSUL;
    return (out->name = kitd__strdup(s)) ? 0 : KITD_ENOMEM;
  }
  size_t sl = (size_t)(sep - s);
  if (sl == 6 && !strncasecmp(s, "consul", 6)) out->kind = KITD__SOURCE_CONSUL;
  else if (sl == 4 && !strncasecmp(s, "etcd", 4)) out->kind = KITD__SOURCE_ETCD;
  else if (sl == 7 && !strncasecmp(s, "dns+srv", 7)) out->kind = KITD__SOURCE_DNS_SRV;
  else if (sl == 4 && !strncasecmp(s, "file", 4)) out->kind = KITD__SOURCE_FILE;
  else return bad(detail, "unknown scheme '%.*s' in '%s' (%s)", (int)sl, s, s, EXPECTED);
  const char *auth = sep + 3;
  const char *path = strchr(auth, '/');
  if (!path) return bad(detail, "'%s': no path after the host (%s)", s, EXPECTED);
  size_t alen = (size_t)(path - auth);
  const char *query = strchr(path, '?');
  size_t plen = query ? (size_t)(query - path) : strlen(path);
  if (query && out->kind != KITD__SOURCE_CONSUL)
    return bad(detail, "'%s': only consul:// takes a query (?…)", s);
  if (memchr(path, '#', plen)) return bad(detail, "'%s': a fragment (#) is not allowed", s);
  if (alen) {
    if (out->kind == KITD__SOURCE_FILE) {
      if (alen != 9 || strncasecmp(auth, "localhost", 9))
        return bad(detail, "'%s': file:// takes an absolute path: file:///PATH", s);
    } else if (!host_port(auth, alen)) {
      return bad(detail, "'%s': '%.*s' is not HOST:PORT", s, (int)alen, auth);
    } else if (!(out->host = kitd__malloc(alen + 1))) {
      return KITD_ENOMEM;
    } else {
      memcpy(out->host, auth, alen);
      out->host[alen] = '\0';
    }
  } else if (out->kind == KITD__SOURCE_ETCD) {
    kitd__source_clear(out);
    return bad(detail, "'%s': etcd:// needs HOST:PORT (etcd://HOST:PORT/PREFIX)", s);
  }
  /* The file path and the etcd prefix keep their leading '/'; a service or
   * SRV name is what follows it. */
  int keep_slash = out->kind == KITD__SOURCE_FILE || out->kind == KITD__SOURCE_ETCD;
  const char *p = keep_slash ? path : path + 1;
  size_t n = keep_slash ? plen : plen - 1;
  int e = 0;
  out->name = decode(p, n, &e);
  if (!out->name) rc = e == KITD_ENOMEM ? e : bad(detail, "'%s': bad %% escape in the path", s);
  else if (out->kind == KITD__SOURCE_FILE && n < 2)
    rc = bad(detail, "'%s': no file path (file:///PATH)", s);
  else if ((out->kind == KITD__SOURCE_CONSUL || out->kind == KITD__SOURCE_DNS_SRV) &&
           !plain_name(out->name))
    rc = bad(detail, "'%s': '%s' is not a %s name", s, out->name,
             out->kind == KITD__SOURCE_CONSUL ? "service" : "DNS");
  if (!rc && query) rc = consul_query(s, query + 1, out, detail);
  if (rc) kitd__source_clear(out);
  return rc;
}

void kitd_source_opts_init(kitd_source_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
}

static int make_consul(const struct kitd__source *src, const kitd_source_opts *o, kitd_logger *lg,
                       kitd_ctx *ctx, kitd_instancer **out) {
  kitd_consul *c = NULL;
  /* The environment still gives the token and TLS settings when the
   * source names the agent: only the address is the source's. */
  int e = kitd_consul_new(0, ctx, &c);
  if (!e && src->host) e = kitd_consul_set_address(c, src->host, ctx);
  if (e) {
    kitd_consul_free(c);
    return e;
  }
  kitd_consul_instancer_opts co;
  if (o->consul) co = *o->consul;
  else kitd_consul_instancer_opts_init(&co);
  if (src->ntags) {
    co.tags = (const char *const *)src->tags;
    co.ntags = src->ntags;
  }
  if (src->passing >= 0) co.passing_only = src->passing;
  if (src->dc) co.datacenter = src->dc;
  e = kitd_consul_instancer_new(c, src->name, &co, lg, out);
  kitd_consul_free(c); /* the instancer copied what it needs */
  return e;
}

/* etcd at http://HOST:PORT (the client options' user, password and TLS
 * apply; their endpoints are replaced by the source's), every key under the
 * prefix. */
static int make_etcd(const struct kitd__source *src, const kitd_source_opts *o, kitd_logger *lg,
                     kitd_ctx *ctx, kitd_instancer **out) {
  kitd_etcd_opts eo;
  if (o->etcd) eo = *o->etcd;
  else kitd_etcd_opts_init(&eo);
  char *url = kitd__asprintf("%s://%s", eo.ca_file || eo.cert_file ? "https" : "http", src->host);
  if (!url) return KITD_ENOMEM;
  eo.endpoints = url;
  kitd_etcd *c = NULL;
  int e = kitd_etcd_new(&eo, ctx, &c);
  free(url);
  if (e) return e;
  e = kitd_etcd_instancer_new(c, src->name, o->etcd_instancer, lg, out);
  kitd_etcd_free(c); /* the instancer keeps what it needs */
  return e;
}

int kitd_source_instancer_new(const char *source, const kitd_source_opts *o, kitd_logger *lg,
                              kitd_instancer **out) {
  if (!out) return KITD_EINVAL;
  kitd_source_opts ro;
  kitd_source_opts_init(&ro);
  if (o) {
    if (o->size != sizeof *o) return KITD_EINVAL;
    ro = *o;
  }
  struct kitd__source src;
  char *detail = NULL;
  int e = kitd__source_parse(source, &src, &detail);
  if (!e) {
    switch (src.kind) {
    case KITD__SOURCE_CONSUL: e = make_consul(&src, &ro, lg, ro.ctx, out); break;
    case KITD__SOURCE_ETCD: e = make_etcd(&src, &ro, lg, ro.ctx, out); break;
    case KITD__SOURCE_DNS_SRV: {
      kitd_dns_instancer_opts d;
      if (ro.dns) d = *ro.dns;
      else kitd_dns_instancer_opts_init(&d);
      d.server = src.host;
      e = kitd_dns_instancer_new(src.name, &d, lg, out);
      if (e == KITD_EINVAL && src.host) {
        detail = kitd__asprintf("'%s' is not a numeric DNS server address (IP:PORT)", src.host);
      }
      break;
    }
    case KITD__SOURCE_FILE: e = kitd_file_instancer_new(src.name, ro.file, lg, out); break;
    }
    kitd__source_clear(&src);
  }
  if (e && detail) {
    if (ro.ctx) kitd_ctx_set_detail(ro.ctx, "%s", detail);
    if (kitd_log_enabled(lg, KITD_LOG_ERROR)) {
      char *q = kitd__log_quote_dup(detail);
      if (q) kitd_log(lg, KITD_LOG_ERROR, "source", "err=%s detail=%s", kitd_err_name(e), q);
      free(q);
    }
  }
  free(detail);
  return e;
}
