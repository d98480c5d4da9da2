/* SPDX-License-Identifier: MIT */
/* The etcd client configuration (kitd_etcd). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"

void kitd_etcd_opts_init(kitd_etcd_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->tls_verify = 1;
  o->connect_timeout_ms = 5000;
  o->request_timeout_ms = 10000;
  o->max_body = KITD__ETCD_DEFAULT_MAX_BODY;
}

int kitd__etcd_copy_opts(void *defaults, size_t def_size, const void *o, size_t size) {
  /* A caller built against an older header passes a smaller struct: its
   * missing tail keeps our defaults. A newer (larger) one is accepted up to
   * what we know. */
  if (size < sizeof(size_t)) return KITD_ECONFIG;
  size_t n = size < def_size ? size : def_size;
  memcpy((char *)defaults + sizeof(size_t), (const char *)o + sizeof(size_t), n - sizeof(size_t));
  return 0;
}

void kitd_etcd_free(kitd_etcd *c) {
  if (!c) return;
  for (size_t i = 0; i < c->nurls; i++) free(c->urls[i]);
  free(c->urls);
  free(c->user);
  if (c->password) {
    memset(c->password, 0, strlen(c->password));
    free(c->password);
  }
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c);
}

static int dup_opt(const char *s, char **out) {
  *out = NULL;
  if (!s || !*s) return 0;
  return (*out = kitd__strdup(s)) ? 0 : KITD_ENOMEM;
}

/* Split "u1,u2" into base URLs (spaces trimmed, trailing '/' dropped). */
static int parse_endpoints(kitd_etcd *c, const char *list, kitd_ctx *ctx) {
  for (const char *p = list;;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    while (n > 0 && (*p == ' ' || *p == '\t')) p++, n--;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '/')) n--;
    bool https = n > 8 && strncmp(p, "https://", 8) == 0;
    bool http = n > 7 && strncmp(p, "http://", 7) == 0;
    if (!http && !https) {
      kitd_ctx_set_detail(ctx, "etcd endpoint %.*s is not an http:// or https:// URL",
                          (int)(n > 200 ? 200 : n), p);
      return KITD_ECONFIG;
    }
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)p[i] <= ' ' || p[i] == 0x7f) {
        kitd_ctx_set_detail(ctx, "etcd endpoint holds a space or control byte");
        return KITD_ECONFIG;
      }
    char **u = kitd__realloc(c->urls, (c->nurls + 1) * sizeof *u);
    if (!u) return KITD_ENOMEM;
    c->urls = u;
    if (!(c->urls[c->nurls] = kitd__strndup(p, n))) return KITD_ENOMEM;
    c->nurls++;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

int kitd_etcd_new(const kitd_etcd_opts *o, kitd_ctx *ctx, kitd_etcd **out) {
  if (!out) return KITD_EINVAL;
  kitd_etcd_opts r;
  kitd_etcd_opts_init(&r);
  if (o && kitd__etcd_copy_opts(&r, sizeof r, o, o->size)) {
    kitd_ctx_set_detail(ctx, "kitd_etcd_opts not filled by kitd_etcd_opts_init()");
    return KITD_ECONFIG;
  }
  if ((r.cert_file && *r.cert_file) != (r.key_file && *r.key_file)) {
    kitd_ctx_set_detail(ctx, "etcd client certificate and key go together");
    return KITD_ECONFIG;
  }
  if (r.password && *r.password && !(r.user && *r.user)) {
    kitd_ctx_set_detail(ctx, "etcd password without a user");
    return KITD_ECONFIG;
  }
  kitd_etcd *c = kitd__calloc(1, sizeof *c);
  if (!c) return KITD_ENOMEM;
  c->tls_verify = r.tls_verify != 0;
  c->connect_timeout_ms = r.connect_timeout_ms > 0 ? r.connect_timeout_ms : 5000;
  c->request_timeout_ms = r.request_timeout_ms > 0 ? r.request_timeout_ms : 10000;
  c->max_body = r.max_body ? r.max_body : KITD__ETCD_DEFAULT_MAX_BODY;
  int e =
      parse_endpoints(c, r.endpoints && *r.endpoints ? r.endpoints : "http://127.0.0.1:2379", ctx);
  if (!e) e = dup_opt(r.user, &c->user);
  if (!e && c->user)
    e = (c->password = kitd__strdup(r.password ? r.password : "")) ? 0 : KITD_ENOMEM;
  if (!e) e = dup_opt(r.ca_file, &c->ca_file);
  if (!e) e = dup_opt(r.cert_file, &c->cert_file);
  if (!e) e = dup_opt(r.key_file, &c->key_file);
  if (e) {
    if (e == KITD_ENOMEM) kitd_ctx_set_detail(ctx, "out of memory");
    kitd_etcd_free(c);
    return e;
  }
  *out = c;
  return 0;
}

const char *kitd_etcd_endpoint(const kitd_etcd *c) { return c && c->nurls ? c->urls[0] : ""; }

int kitd__etcd_dup(const kitd_etcd *c, kitd_etcd **out) {
  kitd_etcd *d = kitd__calloc(1, sizeof *d);
  if (!d) return KITD_ENOMEM;
  *d = *c;
  d->urls = NULL;
  d->nurls = 0;
  d->user = d->password = d->ca_file = d->cert_file = d->key_file = NULL;
  int e = 0;
  if (!(d->urls = kitd__calloc(c->nurls, sizeof *d->urls))) e = KITD_ENOMEM;
  for (size_t i = 0; !e && i < c->nurls; i++) {
    if (!(d->urls[i] = kitd__strdup(c->urls[i]))) e = KITD_ENOMEM;
    else d->nurls++;
  }
  if (!e && c->user) e = dup_opt(c->user, &d->user);
  if (!e && c->password && !(d->password = kitd__strdup(c->password))) e = KITD_ENOMEM;
  if (!e) e = dup_opt(c->ca_file, &d->ca_file);
  if (!e) e = dup_opt(c->cert_file, &d->cert_file);
  if (!e) e = dup_opt(c->key_file, &d->key_file);
  if (e) {
    kitd_etcd_free(d);
    return e;
  }
  *out = d;
  return 0;
}
