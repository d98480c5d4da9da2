/* SPDX-License-Identifier: MIT */
/* SRV resolution over our own UDP/TCP sockets, with libresolv building the
 * queries and parsing the answers. */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rand.h"
#include "dns/dns_impl.h"
#include "kitd/ctx.h"
#include "kitd/error.h"

/* Largest DNS message (TCP length prefix is 16 bits). */
#define MSG_MAX 65535
/* The UDP payload size we advertise with EDNS0: large SRV sets (a
 * Kubernetes headless service) fit without a TCP retry. */
#define EDNS_UDP 4096

static int fail(char **detail, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **detail, int err, const char *fmt, ...) {
  if (detail && !*detail) {
    va_list ap;
    va_start(ap, fmt);
    *detail = kitd__vasprintf(fmt, ap);
    va_end(ap);
  }
  return err;
}

int kitd__dns_parse_server(const char *s, struct kitd__dns_server *out) {
  if (!s || !*s || !out) return KITD_EINVAL;
  size_t n = strlen(s);
  const char *host = s, *port = NULL;
  size_t hlen = n;
  if (s[0] == '[') {
    const char *e = strchr(s, ']');
    if (!e) return KITD_EINVAL;
    host = s + 1;
    hlen = (size_t)(e - host);
    if (e[1] == ':') port = e + 2;
    else if (e[1]) return KITD_EINVAL;
  } else {
    const char *c = strchr(s, ':');
    if (c && !strchr(c + 1, ':')) { /* one colon: v4:port; more: bare v6 */
      hlen = (size_t)(c - s);
      port = c + 1;
    }
  }
  unsigned long p = 53;
  if (port) {
    char *end;
    if (!*port || *port < '0' || *port > '9') return KITD_EINVAL;
    errno = 0;
    p = strtoul(port, &end, 10);
    if (errno || *end || p == 0 || p > 65535) return KITD_EINVAL;
  }
  char *h = kitd__malloc(hlen + 1);
  if (!h) return KITD_ENOMEM;
  memcpy(h, host, hlen);
  h[hlen] = '\0';
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
  int rc = 0;
  if (inet_pton(AF_INET, h, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    out->len = sizeof *v4;
  } else if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    out->len = sizeof *v6;
  } else {
    rc = KITD_EINVAL; /* a name would need a resolver to find the resolver */
  }
  free(h);
  return rc;
}

int kitd__dns_load_system(kitd__dns *d) {
  struct __res_state st;
  memset(&st, 0, sizeof st);
  if (res_ninit(&st) != 0) return KITD_ECONFIG;
  int n = st.nscount;
  struct kitd__dns_server *sv = n > 0 ? kitd__calloc((size_t)n, sizeof *sv) : NULL;
  size_t k = 0;
  for (int i = 0; sv && i < n && i < MAXNS; i++) {
    /* glibc keeps IPv6 servers in _u._ext.nsaddrs (nsaddr_list[i] then
     * has family 0). */
    if (st.nsaddr_list[i].sin_family == AF_INET) {
      memcpy(&sv[k].sa, &st.nsaddr_list[i], sizeof st.nsaddr_list[i]);
      sv[k++].len = sizeof st.nsaddr_list[i];
    } else if (st._u._ext.nsaddrs[i] && st._u._ext.nsaddrs[i]->sin6_family == AF_INET6) {
      memcpy(&sv[k].sa, st._u._ext.nsaddrs[i], sizeof(struct sockaddr_in6));
      sv[k++].len = sizeof(struct sockaddr_in6);
    }
  }
  res_nclose(&st);
  if (n > 0 && !sv) return KITD_ENOMEM;
  if (!k) {
    free(sv);
    return KITD_ECONFIG;
  }
  free(d->servers);
  d->servers = sv;
  d->nservers = k;
  return 0;
}

static int stopped(const kitd__dns *d) {
  if (d->wake_fd < 0) return 0;
  struct pollfd p = {d->wake_fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

/* Wait for `fd` to be ready for `ev` until the absolute deadline.
 * Returns 1 ready, 0 timeout, KITD_ESTOPPED, or -errno-like KITD_EIO. */
static int wait_fd(const kitd__dns *d, int fd, short ev, int64_t deadline_ns) {
  for (;;) {
    int64_t left = deadline_ns - kitd_now_ns();
    if (left <= 0) return 0;
    struct pollfd p[2] = {{fd, ev, 0}, {d->wake_fd, POLLIN, 0}};
    int np = d->wake_fd >= 0 ? 2 : 1;
    int ms = (int)((left + 999999) / 1000000);
    int r = poll(p, (nfds_t)np, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return KITD_EIO;
    if (np == 2 && (p[1].revents & POLLIN)) return KITD_ESTOPPED;
    if (r > 0) return 1;
  }
}

static char *addr_text(const struct kitd__dns_server *s, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  unsigned port;
  if (s->sa.ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const void *)&s->sa;
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    port = ntohs(v6->sin6_port);
    snprintf(buf, cap, "[%s]:%u", ip, port); /* fits: cap is 64 */
  } else {
    const struct sockaddr_in *v4 = (const void *)&s->sa;
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    port = ntohs(v4->sin_port);
    snprintf(buf, cap, "%s:%u", ip, port);
  }
  return buf;
}

/* Is `a` (len alen) the answer to query `q` (same ID, a response, same
 * question)? A stray or spoofed datagram is ignored, not an error. */
static int matches(const unsigned char *q, int qlen, const unsigned char *a, int alen) {
  if (alen < NS_HFIXEDSZ || qlen < NS_HFIXEDSZ) return 0;
  if (a[0] != q[0] || a[1] != q[1] || !(a[2] & 0x80)) return 0;
  if (a[4] != 0 || a[5] != 1) return a[3] & 0x0f ? 1 : 0; /* errors may omit it */
  /* Compare the question bytes (name, type, class): the query's name is
   * uncompressed, so is the answer's first name. */
  int ql = qlen - NS_HFIXEDSZ;
  /* The query may carry an OPT record after the question: measure it. */
  const unsigned char *p = q + NS_HFIXEDSZ, *e = q + qlen;
  while (p < e && *p) p += *p + 1;
  if (p >= e) return 0;
  ql = (int)(p - (q + NS_HFIXEDSZ)) + 1 + 4;
  if (alen < NS_HFIXEDSZ + ql) return 0;
  const unsigned char *x = q + NS_HFIXEDSZ, *y = a + NS_HFIXEDSZ;
  for (int i = 0; i < ql; i++) {
    unsigned char cx = x[i], cy = y[i];
    if (cx >= 'A' && cx <= 'Z') cx = (unsigned char)(cx + 32);
    if (cy >= 'A' && cy <= 'Z') cy = (unsigned char)(cy + 32);
    if (cx != cy) return 0;
  }
  return 1;
}

/* One UDP exchange. Returns the answer length, 0 on timeout, or an error. */
static int udp_once(kitd__dns *d, const struct kitd__dns_server *s, const unsigned char *q,
                    int qlen, unsigned char *ans) {
  int fd = socket(s->sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return KITD_EIO;
  /* connect(): the kernel then drops datagrams from other addresses and
   * reports ICMP port-unreachable as ECONNREFUSED (a server that is down
   * fails at once instead of after the timeout). */
  int rc;
  if (connect(fd, (const struct sockaddr *)&s->sa, s->len) != 0 ||
      send(fd, q, (size_t)qlen, 0) != qlen) {
    rc = errno == ECONNREFUSED ? KITD_ECONNECT : KITD_EIO;
    close(fd);
    return rc;
  }
  __atomic_add_fetch(&d->queries, 1, __ATOMIC_RELAXED);
  int64_t deadline = kitd_now_ns() + d->timeout_ms * 1000000;
  for (;;) {
    rc = wait_fd(d, fd, POLLIN, deadline);
    if (rc <= 0) break;
    ssize_t n = recv(fd, ans, MSG_MAX, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      rc = errno == ECONNREFUSED ? KITD_ECONNECT : KITD_EIO;
      break;
    }
    if (matches(q, qlen, ans, (int)n)) {
      rc = (int)n;
      break;
    }
  }
  close(fd);
  return rc;
}

static int full_io(kitd__dns *d, int fd, unsigned char *buf, size_t n, int wr, int64_t deadline) {
  size_t off = 0;
  while (off < n) {
    int w = wait_fd(d, fd, wr ? POLLOUT : POLLIN, deadline);
    if (w <= 0) return w == 0 ? KITD_ETIMEDOUT : w;
    ssize_t k = wr ? send(fd, buf + off, n - off, MSG_NOSIGNAL) : recv(fd, buf + off, n - off, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (k < 0) return errno == ECONNREFUSED ? KITD_ECONNECT : KITD_EIO;
    if (k == 0) return KITD_EPROTO;
    off += (size_t)k;
  }
  return 0;
}

/* One TCP exchange (after a truncated UDP answer). Returns the length or
 * an error (a timeout is KITD_ETIMEDOUT here). */
static int tcp_once(kitd__dns *d, const struct kitd__dns_server *s, const unsigned char *q,
                    int qlen, unsigned char *ans) {
  int fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return KITD_EIO;
  int64_t deadline = kitd_now_ns() + d->timeout_ms * 1000000;
  int rc = 0;
  if (connect(fd, (const struct sockaddr *)&s->sa, s->len) != 0 && errno != EINPROGRESS) {
    rc = KITD_ECONNECT;
  } else {
    int w = wait_fd(d, fd, POLLOUT, deadline);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (w <= 0) rc = w == 0 ? KITD_ETIMEDOUT : w;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) rc = KITD_ECONNECT;
  }
  unsigned char len[2] = {(unsigned char)(qlen >> 8), (unsigned char)qlen};
  if (!rc) rc = full_io(d, fd, len, 2, 1, deadline);
  if (!rc) {
    __atomic_add_fetch(&d->queries, 1, __ATOMIC_RELAXED);
    rc = full_io(d, fd, (unsigned char *)q, (size_t)qlen, 1, deadline);
  }
  if (!rc) rc = full_io(d, fd, len, 2, 0, deadline);
  size_t alen = ((size_t)len[0] << 8) | len[1];
  if (!rc) rc = full_io(d, fd, ans, alen, 0, deadline);
  close(fd);
  if (rc) return rc;
  return matches(q, qlen, ans, (int)alen) ? (int)alen : KITD_EPROTO;
}

/* Send query (name, type) to the servers in turn, `attempts` rounds.
 * Returns the answer length in `ans` or an error with *detail set. */
static int exchange(kitd__dns *d, const char *name, int type, unsigned char *ans, char **detail) {
  unsigned char q[NS_PACKETSZ + 16];
  struct __res_state st;
  memset(&st, 0, sizeof st);
  /* res_nmkquery needs an initialised state only for its options and ID;
   * RES_INIT without reading resolv.conf is enough. */
  st.options = RES_INIT | RES_RECURSE;
  int qlen =
      res_nmkquery(&st, ns_o_query, name, ns_c_in, type, NULL, 0, NULL, q, (int)(sizeof q - 11));
  if (qlen < 0) return fail(detail, KITD_EINVAL, "cannot make a query for '%s'", name);
  /* An EDNS0 OPT record (RFC 6891): root name, type 41, class = UDP size. */
  static const unsigned char opt[11] = {0, 0, 41, EDNS_UDP >> 8, EDNS_UDP & 0xff, 0, 0, 0, 0, 0, 0};
  memcpy(q + qlen, opt, sizeof opt);
  qlen += (int)sizeof opt;
  q[11] = 1; /* ARCOUNT */
  int last = KITD_ETIMEDOUT;
  char where[64] = "";
  for (unsigned a = 0; a < d->attempts; a++) {
    for (size_t i = 0; i < d->nservers; i++) {
      uint16_t id = (uint16_t)kitd__xorshift64s(&d->rng);
      q[0] = (unsigned char)(id >> 8);
      q[1] = (unsigned char)id;
      int n = udp_once(d, &d->servers[i], q, qlen, ans);
      if (n > 0 && (ans[2] & 0x02)) /* TC: the whole answer needs TCP */
        n = tcp_once(d, &d->servers[i], q, qlen, ans);
      if (n == KITD_ESTOPPED) return n;
      if (n > 0) {
        int rcode = ans[3] & 0x0f;
        if (rcode == ns_r_noerror || rcode == ns_r_nxdomain) return n;
        /* SERVFAIL / REFUSED: another server may know better. */
        last = KITD_EIO;
        addr_text(&d->servers[i], where, sizeof where);
        free(*detail);
        *detail = NULL;
        fail(detail, last, "%s for '%s' from %s",
             rcode == ns_r_servfail  ? "SERVFAIL"
             : rcode == ns_r_refused ? "REFUSED"
                                     : "DNS error",
             name, where);
        continue;
      }
      last = n == 0 ? KITD_ETIMEDOUT : n;
      addr_text(&d->servers[i], where, sizeof where);
      free(*detail);
      *detail = NULL;
      fail(detail, last, "query for '%s' to %s: %s", name, where,
           n == 0               ? "timed out"
           : n == KITD_ECONNECT ? "connection refused"
                                : kitd_strerror(n));
    }
    if (stopped(d)) return KITD_ESTOPPED;
  }
  return last;
}

/* Addresses seen for a name, from answer and additional sections. */
struct addr {
  char *owner;
  char *text; /* "1.2.3.4" or "[::1]" */
  uint32_t ttl;
};
struct addrs {
  struct addr *v;
  size_t n, cap;
};

static void addrs_free(struct addrs *a) {
  for (size_t i = 0; i < a->n; i++) {
    free(a->v[i].owner);
    free(a->v[i].text);
  }
  free(a->v);
  a->v = NULL;
  a->n = a->cap = 0;
}

static int addrs_add(struct addrs *a, const char *owner, const ns_rr *rr) {
  char ip[INET6_ADDRSTRLEN + 2];
  if (ns_rr_type(*rr) == ns_t_a && ns_rr_rdlen(*rr) == 4) {
    inet_ntop(AF_INET, ns_rr_rdata(*rr), ip, sizeof ip);
  } else if (ns_rr_type(*rr) == ns_t_aaaa && ns_rr_rdlen(*rr) == 16) {
    ip[0] = '[';
    inet_ntop(AF_INET6, ns_rr_rdata(*rr), ip + 1, sizeof ip - 2);
    strcat(ip, "]");
  } else {
    return 0;
  }
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 8;
    struct addr *v = kitd__realloc(a->v, nc * sizeof *v);
    if (!v) return KITD_ENOMEM;
    a->v = v;
    a->cap = nc;
  }
  struct addr *x = &a->v[a->n];
  x->owner = kitd__strdup(owner);
  x->text = kitd__strdup(ip);
  x->ttl = ns_rr_ttl(*rr);
  if (!x->owner || !x->text) {
    free(x->owner);
    free(x->text);
    return KITD_ENOMEM;
  }
  a->n++;
  return 0;
}

static int has_addr(const struct addrs *a, const char *owner) {
  for (size_t i = 0; i < a->n; i++)
    if (strcasecmp(a->v[i].owner, owner) == 0) return 1;
  return 0;
}

struct srv {
  char *target;
  uint16_t prio, weight, port;
};

/* Negative TTL of an NXDOMAIN/NODATA answer: the SOA's minimum, capped by
 * the SOA record's own TTL (RFC 2308). 0 when no SOA came. */
static uint32_t negative_ttl(ns_msg *m) {
  ns_rr rr;
  for (int i = 0; i < ns_msg_count(*m, ns_s_ns); i++) {
    if (ns_parserr(m, ns_s_ns, i, &rr) != 0 || ns_rr_type(rr) != ns_t_soa) continue;
    const unsigned char *p = ns_rr_rdata(rr), *e = p + ns_rr_rdlen(rr);
    int k1 = ns_name_skip(&p, e);
    int k2 = k1 == 0 ? ns_name_skip(&p, e) : -1;
    if (k2 != 0 || e - p < 20) return 0;
    uint32_t min =
        ((uint32_t)p[16] << 24) | ((uint32_t)p[17] << 16) | ((uint32_t)p[18] << 8) | p[19];
    return min < ns_rr_ttl(rr) ? min : ns_rr_ttl(rr);
  }
  return 0;
}

/* Query A then AAAA for `host`, adding what comes to `a`. A name with no
 * address is not an error (the target is skipped). */
static int lookup_addrs(kitd__dns *d, const char *host, unsigned char *buf, struct addrs *a,
                        uint32_t *ttl, char **detail) {
  static const int types[2] = {ns_t_a, ns_t_aaaa};
  for (int t = 0; t < 2; t++) {
    int n = exchange(d, host, types[t], buf, detail);
    if (n < 0) return n;
    ns_msg m;
    if (ns_initparse(buf, n, &m) != 0)
      return fail(detail, KITD_EPROTO, "malformed answer for '%s'", host);
    if (ns_msg_getflag(m, ns_f_rcode) == ns_r_nxdomain) return 0;
    for (int i = 0; i < ns_msg_count(m, ns_s_an); i++) {
      ns_rr rr;
      if (ns_parserr(&m, ns_s_an, i, &rr) != 0)
        return fail(detail, KITD_EPROTO, "malformed answer for '%s'", host);
      if ((int)ns_rr_type(rr) != types[t]) continue; /* the CNAME chain itself */
      int e = addrs_add(a, host, &rr);
      if (e) return e;
      if (ns_rr_ttl(rr) < *ttl) *ttl = ns_rr_ttl(rr);
    }
  }
  return 0;
}

static int make_record(const struct srv *s, const char *ip, kitd_instance **out) {
  char addr[INET6_ADDRSTRLEN + 16], num[16];
  int k = snprintf(addr, sizeof addr, "%s:%u", ip, (unsigned)s->port);
  if (k < 0 || (size_t)k >= sizeof addr) return KITD_EINVAL;
  kitd_instance *r = NULL;
  int e = kitd_instance_new(addr, &r);
  if (!e && s->weight > 0) e = kitd_instance_set_weight(r, s->weight);
  if (!e) {
    snprintf(num, sizeof num, "%u", (unsigned)s->prio);
    e = kitd_instance_set_meta(r, "priority", num);
  }
  if (!e) {
    snprintf(num, sizeof num, "%u", (unsigned)s->weight);
    e = kitd_instance_set_meta(r, "srv_weight", num);
  }
  if (!e) e = kitd_instance_set_meta(r, "target", s->target);
  if (e) {
    kitd_instance_unref(r);
    return e;
  }
  *out = r;
  return 0;
}

int kitd__dns_resolve_srv(kitd__dns *d, const char *name, kitd_instance ***out, size_t *count,
                          uint32_t *ttl, char **detail) {
  *out = NULL;
  *count = 0;
  *detail = NULL;
  *ttl = UINT32_MAX;
  if (!d->fixed) {
    int e = kitd__dns_load_system(d);
    if (e) return fail(detail, e, "no name server in resolv.conf");
  }
  unsigned char *buf = kitd__malloc(MSG_MAX);
  if (!buf) return KITD_ENOMEM;
  struct srv *srv = NULL;
  size_t nsrv = 0;
  struct addrs a = {0};
  kitd_instance **set = NULL;
  size_t nset = 0, capset = 0;
  int rc = exchange(d, name, ns_t_srv, buf, detail);
  if (rc < 0) goto out;
  ns_msg m;
  if (ns_initparse(buf, rc, &m) != 0) {
    rc = fail(detail, KITD_EPROTO, "malformed SRV answer for '%s'", name);
    goto out;
  }
  if (ns_msg_getflag(m, ns_f_rcode) == ns_r_nxdomain || ns_msg_count(m, ns_s_an) == 0) {
    /* NXDOMAIN or no SRV record: a good answer, an empty set. */
    *ttl = negative_ttl(&m);
    rc = 0;
    goto out;
  }
  int nan = ns_msg_count(m, ns_s_an);
  srv = kitd__calloc((size_t)nan, sizeof *srv);
  if (!srv) {
    rc = KITD_ENOMEM;
    goto out;
  }
  rc = 0;
  for (int sec = ns_s_an; sec <= ns_s_ar && !rc; sec++) {
    if (sec == ns_s_ns) continue;
    for (int i = 0; i < ns_msg_count(m, (ns_sect)sec) && !rc; i++) {
      ns_rr rr;
      if (ns_parserr(&m, (ns_sect)sec, i, &rr) != 0) {
        rc = fail(detail, KITD_EPROTO, "malformed SRV answer for '%s'", name);
        break;
      }
      if (ns_rr_type(rr) == ns_t_a || ns_rr_type(rr) == ns_t_aaaa) {
        rc = addrs_add(&a, ns_rr_name(rr), &rr);
        continue;
      }
      if (sec != ns_s_an || ns_rr_type(rr) != ns_t_srv) continue;
      const unsigned char *p = ns_rr_rdata(rr);
      /* NS_MAXDNAME bounds a name by the protocol itself (255 bytes on
       * the wire); ns_name_uncompress checks the room. */
      char target[NS_MAXDNAME];
      if (ns_rr_rdlen(rr) < 7 ||
          ns_name_uncompress(ns_msg_base(m), ns_msg_end(m), p + 6, target, sizeof target) < 0) {
        rc = fail(detail, KITD_EPROTO, "malformed SRV record for '%s'", name);
        break;
      }
      if (ns_rr_ttl(rr) < *ttl) *ttl = ns_rr_ttl(rr);
      if (!target[0] || strcmp(target, ".") == 0) continue; /* "no service here" */
      struct srv *s = &srv[nsrv];
      s->prio = ns_get16(p);
      s->weight = ns_get16(p + 2);
      s->port = ns_get16(p + 4);
      if (!(s->target = kitd__strdup(target))) rc = KITD_ENOMEM;
      else nsrv++;
    }
  }
  if (rc) goto out;
  for (size_t i = 0; i < nsrv && !rc; i++) {
    if (!has_addr(&a, srv[i].target)) rc = lookup_addrs(d, srv[i].target, buf, &a, ttl, detail);
  }
  if (rc) goto out;
  for (size_t i = 0; i < nsrv && !rc; i++) {
    for (size_t j = 0; j < a.n && !rc; j++) {
      if (strcasecmp(a.v[j].owner, srv[i].target) != 0) continue;
      if (nset == capset) {
        size_t nc = capset ? capset * 2 : 8;
        kitd_instance **v = kitd__realloc(set, nc * sizeof *v);
        if (!v) {
          rc = KITD_ENOMEM;
          break;
        }
        set = v;
        capset = nc;
      }
      rc = make_record(&srv[i], a.v[j].text, &set[nset]);
      if (!rc) nset++;
      if (a.v[j].ttl < *ttl) *ttl = a.v[j].ttl;
    }
  }
out:
  if (rc == KITD_ENOMEM && !*detail) *detail = kitd__strdup("out of memory");
  if (rc) {
    for (size_t i = 0; i < nset; i++) kitd_instance_unref(set[i]);
    free(set);
  } else {
    free(*detail);
    *detail = NULL;
    *out = set;
    *count = nset;
  }
  if (*ttl == UINT32_MAX) *ttl = 0;
  for (size_t i = 0; i < nsrv; i++) free(srv[i].target);
  free(srv);
  addrs_free(&a);
  free(buf);
  return rc;
}
