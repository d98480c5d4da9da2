/* SPDX-License-Identifier: MIT */
/* kitd_consul: the Consul client configuration, from the consul CLI's
 * environment variables and typed setters. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/alloc.h"
#include "consul/consul_impl.h"
#include "kitd/error.h"

static int set_str(char **dst, const char *s) {
  char *v = NULL;
  if (s && *s) {
    v = kitd__strdup(s);
    if (!v) return KITD_ENOMEM;
  }
  free(*dst);
  *dst = v;
  return 0;
}

static int econfig(kitd_ctx *ctx, const char *fmt, const char *a) {
  kitd_ctx_set_detail(ctx, fmt, a ? a : "");
  return KITD_ECONFIG;
}

int kitd__consul_sync_init(pthread_mutex_t *mu, pthread_cond_t *cv) {
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) return KITD_ENOMEM;
  int e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ? KITD_EINTERNAL : 0;
  if (!e && pthread_cond_init(cv, &ca) != 0) e = KITD_ENOMEM;
  pthread_condattr_destroy(&ca);
  if (!e && pthread_mutex_init(mu, NULL) != 0) {
    pthread_cond_destroy(cv);
    e = KITD_ENOMEM;
  }
  return e;
}

int kitd__consul_parse_bool(const char *s) {
  static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
  if (!s) return -1;
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    if (strcmp(s, t[i]) == 0) return 1;
    if (strcmp(s, f[i]) == 0) return 0;
  }
  return -1;
}

/* Rebuild the display address after a change. */
static int update_display(kitd_consul *c) {
  const char *scheme = c->tls ? "https" : "http";
  bool v6 = !c->unix_path && strchr(c->host, ':') != NULL;
  char port[16] = "";
  if (!c->unix_path && c->port) snprintf(port, sizeof port, ":%d", c->port);
  /* Sized to fit: a long unix path or host must not be cut. */
  size_t cap = 32 + (c->unix_path ? strlen(c->unix_path)
                                  : strlen(c->host) + strlen(port) + strlen(c->prefix));
  char *buf = kitd__malloc(cap);
  if (!buf) return KITD_ENOMEM;
  if (c->unix_path) snprintf(buf, cap, "unix://%s", c->unix_path);
  else
    snprintf(buf, cap, "%s://%s%s%s%s%s", scheme, v6 ? "[" : "", c->host, v6 ? "]" : "", port,
             c->prefix);
  free(c->display);
  c->display = buf;
  return 0;
}

/* Parse "host[:port]" (host may be "[v6]") into *host / *port. */
static int parse_hostport(const char *s, size_t n, char **host, int *port, kitd_ctx *ctx,
                          const char *what) {
  const char *end = s + n, *hs, *he, *p = NULL;
  if (n == 0) return econfig(ctx, "%s: empty host", what);
  if (s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (!rb || rb == s + 1) return econfig(ctx, "%s: bad IPv6 address", what);
    hs = s + 1;
    he = rb;
    if (rb + 1 < end) {
      if (rb[1] != ':') return econfig(ctx, "%s: junk after ']'", what);
      p = rb + 2;
    }
  } else {
    const char *colon = memchr(s, ':', n);
    hs = s;
    he = colon ? colon : end;
    if (colon) {
      if (memchr(colon + 1, ':', (size_t)(end - colon - 1)))
        return econfig(ctx, "%s: IPv6 addresses need brackets ([::1]:8500)", what);
      p = colon + 1;
    }
  }
  if (he == hs) return econfig(ctx, "%s: empty host", what);
  for (const char *q = hs; q < he; q++)
    if ((unsigned char)*q <= ' ' || *q == '/' || *q == '@' || *q == '?' || *q == '#')
      return econfig(ctx, "%s: bad character in host", what);
  long pv = 0;
  if (p) {
    if (p == end) return econfig(ctx, "%s: empty port", what);
    for (const char *q = p; q < end; q++) {
      if (!isdigit((unsigned char)*q)) return econfig(ctx, "%s: port is not a number", what);
      pv = pv * 10 + (*q - '0');
      if (pv > 65535) return econfig(ctx, "%s: port out of range", what);
    }
    if (pv == 0) return econfig(ctx, "%s: port out of range", what);
  }
  char *h = kitd__strndup(hs, (size_t)(he - hs));
  if (!h) return KITD_ENOMEM;
  free(*host);
  *host = h;
  *port = (int)pv;
  return 0;
}

static int set_address(kitd_consul *c, const char *addr, kitd_ctx *ctx, const char *what) {
  if (!addr || !*addr) return econfig(ctx, "%s: empty address", what);
  const char *sep = strstr(addr, "://");
  const char *rest = addr;
  bool https = false, unix_sock = false;
  if (sep) {
    size_t sl = (size_t)(sep - addr);
    if (sl == 4 && strncmp(addr, "http", 4) == 0) {
    } else if (sl == 5 && strncmp(addr, "https", 5) == 0) {
      https = true;
    } else if (sl == 4 && strncmp(addr, "unix", 4) == 0) {
      unix_sock = true;
    } else {
      return econfig(ctx, "%s: unknown scheme (want http://, https:// or unix://)", what);
    }
    rest = sep + 3;
  }
  if (unix_sock) {
    if (rest[0] != '/' || rest[1] == '\0')
      return econfig(ctx, "%s: unix:// needs an absolute socket path", what);
    int e = set_str(&c->unix_path, rest);
    if (e) return e;
    if ((e = set_str(&c->host, "localhost"))) return e;
    c->port = 0;
    char *empty = kitd__strdup("");
    if (!empty) return KITD_ENOMEM;
    free(c->prefix);
    c->prefix = empty;
    return update_display(c);
  }
  size_t hl = strcspn(rest, "/?#");
  if (rest[hl] == '?' || rest[hl] == '#')
    return econfig(ctx, "%s: a query or fragment is not allowed", what);
  char *host = NULL;
  int port = 0;
  int e = parse_hostport(rest, hl, &host, &port, ctx, what);
  if (e) return e;
  /* The path prefix, without trailing slashes ("/consul"). */
  const char *pre = rest + hl;
  size_t pl = strlen(pre);
  while (pl > 0 && pre[pl - 1] == '/') pl--;
  char *prefix = kitd__strndup(pre, pl);
  if (!prefix) {
    free(host);
    return KITD_ENOMEM;
  }
  free(c->host);
  c->host = host;
  c->port = port;
  free(c->prefix);
  c->prefix = prefix;
  free(c->unix_path);
  c->unix_path = NULL;
  /* Once TLS is asked for, an http:// address does not turn it off. */
  if (https) c->tls = true;
  return update_display(c);
}

/* Wipe a secret (token, password) before its memory goes back: a plain
 * memset before free may be optimised away. */
static void free_secret(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static int read_token_file(const char *path, char **out, kitd_ctx *ctx, const char *what) {
  FILE *f = fopen(path, "r");
  if (!f) {
    kitd_ctx_set_detail(ctx, "%s: cannot open %s: %s", what, path, strerror(errno));
    return KITD_ECONFIG;
  }
  char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  int bad = ferror(f) || !feof(f);
  fclose(f);
  if (bad) {
    kitd_ctx_set_detail(ctx, "%s: cannot read %s (or larger than 8 KiB)", what, path);
    return KITD_ECONFIG;
  }
  buf[n] = '\0';
  char *s = buf;
  while (*s && isspace((unsigned char)*s)) s++;
  size_t l = strlen(s);
  while (l > 0 && isspace((unsigned char)s[l - 1])) l--;
  if (l == 0) {
    kitd_ctx_set_detail(ctx, "%s: %s holds no token", what, path);
    return KITD_ECONFIG;
  }
  char *t = kitd__strndup(s, l);
  /* The file's bytes held the token: wipe the stack copy. */
  explicit_bzero(buf, sizeof buf);
  if (!t) return KITD_ENOMEM;
  free_secret(*out);
  *out = t;
  return 0;
}

static int set_auth(kitd_consul *c, const char *userpass) {
  char *u = NULL, *p = NULL;
  if (userpass && *userpass) {
    const char *colon = strchr(userpass, ':');
    u = colon ? kitd__strndup(userpass, (size_t)(colon - userpass)) : kitd__strdup(userpass);
    p = kitd__strdup(colon ? colon + 1 : "");
    if (!u || !p) {
      free(u);
      free_secret(p);
      return KITD_ENOMEM;
    }
  }
  free(c->auth_user);
  free_secret(c->auth_pass);
  c->auth_user = u;
  c->auth_pass = p;
  return 0;
}

static int set_server_name(kitd_consul *c, const char *name) {
  if (!name || !*name) return set_str(&c->server_name, NULL);
  /* Drop a ":port" suffix, as the consul CLI does. */
  size_t n = strlen(name);
  const char *s = name;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (rb) {
      s++;
      n = (size_t)(rb - s);
    }
  } else {
    const char *colon = strrchr(s, ':');
    if (colon && strchr(s, ':') == colon) n = (size_t)(colon - s);
  }
  char *v = kitd__strndup(s, n);
  if (!v) return KITD_ENOMEM;
  free(c->server_name);
  c->server_name = v;
  return 0;
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

static int env_bool(const char *name, int *out, kitd_ctx *ctx) {
  const char *v = env(name);
  if (!v) return 0;
  int b = kitd__consul_parse_bool(v);
  if (b < 0) {
    kitd_ctx_set_detail(ctx, "%s: not a boolean (want 1, t, true, 0, f, false, ...)", name);
    return KITD_ECONFIG;
  }
  *out = b;
  return 1;
}

static int load_env(kitd_consul *c, kitd_ctx *ctx) {
  int e, b;
  const char *v;
  /* CONSUL_HTTP_SSL first: an http:// address must not turn it off. */
  if ((e = env_bool("CONSUL_HTTP_SSL", &b, ctx)) < 0) return e;
  if (e == 1) c->tls = b;
  if ((v = env("CONSUL_HTTP_ADDR")) && (e = set_address(c, v, ctx, "CONSUL_HTTP_ADDR"))) return e;
  if ((v = env("CONSUL_HTTP_TOKEN")) && (e = set_str(&c->token, v))) return e;
  /* The token file wins over CONSUL_HTTP_TOKEN. */
  if ((v = env("CONSUL_HTTP_TOKEN_FILE")) &&
      (e = read_token_file(v, &c->token, ctx, "CONSUL_HTTP_TOKEN_FILE")))
    return e;
  if ((v = env("CONSUL_HTTP_AUTH")) && (e = set_auth(c, v))) return e;
  if ((e = env_bool("CONSUL_HTTP_SSL_VERIFY", &b, ctx)) < 0) return e;
  if (e == 1) c->tls_verify = b;
  if ((e = set_str(&c->cafile, env("CONSUL_CACERT")))) return e;
  if ((e = set_str(&c->capath, env("CONSUL_CAPATH")))) return e;
  const char *cert = env("CONSUL_CLIENT_CERT"), *key = env("CONSUL_CLIENT_KEY");
  if (!cert != !key)
    return econfig(ctx, "%s",
                   cert ? "CONSUL_CLIENT_CERT is set without CONSUL_CLIENT_KEY"
                        : "CONSUL_CLIENT_KEY is set without CONSUL_CLIENT_CERT");
  if ((e = set_str(&c->cert, cert)) || (e = set_str(&c->key, key))) return e;
  if ((e = set_server_name(c, env("CONSUL_TLS_SERVER_NAME")))) return e;
  if ((e = set_str(&c->ns, env("CONSUL_NAMESPACE")))) return e;
  if ((e = set_str(&c->partition, env("CONSUL_PARTITION")))) return e;
  return update_display(c);
}

int kitd_consul_new(unsigned flags, kitd_ctx *ctx, kitd_consul **out) {
  if (!out || (flags & ~KITD_CONSUL_NO_ENV)) return KITD_EINVAL;
  kitd_consul *c = kitd__calloc(1, sizeof *c);
  if (!c) return KITD_ENOMEM;
  c->tls_verify = true;
  c->port = 8500;
  c->max_body = KITD__CONSUL_DEFAULT_MAX_BODY;
  c->host = kitd__strdup("127.0.0.1");
  c->prefix = kitd__strdup("");
  int e = (!c->host || !c->prefix) ? KITD_ENOMEM : update_display(c);
  if (!e && !(flags & KITD_CONSUL_NO_ENV)) e = load_env(c, ctx);
  if (e) {
    kitd_consul_free(c);
    return e;
  }
  *out = c;
  return 0;
}

void kitd_consul_free(kitd_consul *c) {
  if (!c) return;
  free(c->host);
  free(c->prefix);
  free(c->unix_path);
  free_secret(c->token);
  free(c->auth_user);
  free_secret(c->auth_pass);
  free(c->cafile);
  free(c->capath);
  free(c->cert);
  free(c->key);
  free(c->server_name);
  free(c->dc);
  free(c->ns);
  free(c->partition);
  free(c->display);
  free(c);
}

int kitd__consul_dup(const kitd_consul *c, kitd_consul **out) {
  kitd_consul *d = kitd__calloc(1, sizeof *d);
  if (!d) return KITD_ENOMEM;
  *d = *c;
  char **fields[] = {&d->host,        &d->prefix, &d->unix_path, &d->token,     &d->auth_user,
                     &d->auth_pass,   &d->cafile, &d->capath,    &d->cert,      &d->key,
                     &d->server_name, &d->dc,     &d->ns,        &d->partition, &d->display};
  int e = 0;
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (!*fields[i]) continue;
    /* After a failure, the rest still point into `c`: clear them. */
    *fields[i] = e ? NULL : kitd__strdup(*fields[i]);
    if (!*fields[i]) e = KITD_ENOMEM;
  }
  if (e) {
    kitd_consul_free(d);
    return e;
  }
  *out = d;
  return 0;
}

int kitd_consul_set_address(kitd_consul *c, const char *addr, kitd_ctx *ctx) {
  if (!c) return KITD_EINVAL;
  return set_address(c, addr, ctx, "address");
}

int kitd_consul_set_token(kitd_consul *c, const char *token) {
  if (!c) return KITD_EINVAL;
  char *old = c->token;
  c->token = NULL;
  int e = set_str(&c->token, token);
  if (e) {
    c->token = old;
    return e;
  }
  free_secret(old);
  return 0;
}

int kitd_consul_set_token_file(kitd_consul *c, const char *path, kitd_ctx *ctx) {
  if (!c) return KITD_EINVAL;
  if (!path || !*path) return kitd_consul_set_token(c, NULL);
  char *t = NULL;
  int e = read_token_file(path, &t, ctx, "token file");
  if (e) return e;
  free_secret(c->token);
  c->token = t;
  return 0;
}

int kitd_consul_set_auth(kitd_consul *c, const char *userpass) {
  return c ? set_auth(c, userpass) : KITD_EINVAL;
}

int kitd_consul_set_tls(kitd_consul *c, int on) {
  if (!c) return KITD_EINVAL;
  c->tls = on != 0;
  return update_display(c);
}

int kitd_consul_set_tls_verify(kitd_consul *c, int on) {
  if (!c) return KITD_EINVAL;
  c->tls_verify = on != 0;
  return 0;
}

int kitd_consul_set_ca(kitd_consul *c, const char *cafile, const char *capath) {
  if (!c) return KITD_EINVAL;
  char *f = NULL, *p = NULL;
  if (set_str(&f, cafile) || set_str(&p, capath)) {
    free(f);
    free(p);
    return KITD_ENOMEM;
  }
  free(c->cafile);
  free(c->capath);
  c->cafile = f;
  c->capath = p;
  return 0;
}

int kitd_consul_set_client_cert(kitd_consul *c, const char *cert, const char *key, kitd_ctx *ctx) {
  if (!c) return KITD_EINVAL;
  bool hc = cert && *cert, hk = key && *key;
  if (hc != hk) return econfig(ctx, "%s", "client certificate and key: give both or neither");
  char *a = NULL, *b = NULL;
  if (set_str(&a, cert) || set_str(&b, key)) {
    free(a);
    free(b);
    return KITD_ENOMEM;
  }
  free(c->cert);
  free(c->key);
  c->cert = a;
  c->key = b;
  return 0;
}

int kitd_consul_set_tls_server_name(kitd_consul *c, const char *name) {
  return c ? set_server_name(c, name) : KITD_EINVAL;
}

int kitd_consul_set_datacenter(kitd_consul *c, const char *dc) {
  return c ? set_str(&c->dc, dc) : KITD_EINVAL;
}

int kitd_consul_set_namespace(kitd_consul *c, const char *ns) {
  return c ? set_str(&c->ns, ns) : KITD_EINVAL;
}

int kitd_consul_set_partition(kitd_consul *c, const char *partition) {
  return c ? set_str(&c->partition, partition) : KITD_EINVAL;
}

int kitd_consul_set_max_body(kitd_consul *c, size_t bytes) {
  if (!c) return KITD_EINVAL;
  c->max_body = bytes ? bytes : KITD__CONSUL_DEFAULT_MAX_BODY;
  return 0;
}

const char *kitd__consul_accept_encoding(const kitd_consul *c) {
  if (c->unix_path || !strcasecmp(c->host, "localhost")) return NULL;
  unsigned char a[16];
  if (inet_pton(AF_INET, c->host, a) == 1) return a[0] == 127 ? NULL : "";
  if (inet_pton(AF_INET6, c->host, a) == 1)
    return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)(const void *)a) ? NULL : "";
  return "";
}

const char *kitd_consul_address(const kitd_consul *c) { return c && c->display ? c->display : ""; }

void kitd__consul_duration(char *buf, size_t cap, int64_t ms) {
  if (ms <= 0) {
    snprintf(buf, cap, "0s");
  } else if (ms % 60000 == 0) {
    snprintf(buf, cap, "%lldm", (long long)(ms / 60000));
  } else if (ms % 1000 == 0) {
    snprintf(buf, cap, "%llds", (long long)(ms / 1000));
  } else {
    snprintf(buf, cap, "%lldms", (long long)ms);
  }
}
