/* SPDX-License-Identifier: MIT */
/* The agent's HTTP and TCP probes, on plain sockets (the double does not
 * link libcurl): HTTP/1.1 with "Connection: close", Consul's User-Agent,
 * redirects followed, the last 4096 body bytes kept, and Go-like error
 * texts. HTTPS targets are not supported (critical, with a reason). */
#include "double.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define BODY_KEEP 4096
#define HEAD_MAX (64 * 1024)

struct url {
    char host[256];
    char port[16];
    char *target;
    bool https;
};

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_fmt(struct buf *b, const char *fmt, const char *a, const char *c)
{
    char *s = NULL;
    int n = asprintf(&s, fmt, a, c);
    if (n > 0) buf_add(b, s, (size_t)n);
    free(s);
}

static int parse_url(const char *u, struct url *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncasecmp(u, "http://", 7) == 0) p = u + 7;
    else if (strncasecmp(u, "https://", 8) == 0) {
        p = u + 8;
        out->https = true;
    } else return -1;
    const char *slash = p + strcspn(p, "/?#");
    const char *hostend = slash;
    const char *at = memchr(p, '@', (size_t)(slash - p));
    if (at) p = at + 1;
    const char *portp = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(slash - p));
        if (!rb) return -1;
        if ((size_t)(rb - p - 1) >= sizeof out->host) return -1;
        memcpy(out->host, p + 1, (size_t)(rb - p - 1));
        if (rb[1] == ':') portp = rb + 2;
    } else {
        const char *colon = memchr(p, ':', (size_t)(hostend - p));
        const char *he = colon ? colon : hostend;
        if ((size_t)(he - p) >= sizeof out->host) return -1;
        memcpy(out->host, p, (size_t)(he - p));
        if (colon) portp = colon + 1;
    }
    if (portp && portp < hostend && (size_t)(hostend - portp) < sizeof out->port)
        memcpy(out->port, portp, (size_t)(hostend - portp));
    else strcpy(out->port, out->https ? "443" : "80");
    if (!*out->host) return -1;
    const char *frag = strchr(slash, '#');
    size_t tl = frag ? (size_t)(frag - slash) : strlen(slash);
    if (tl == 0 || *slash == '?') {
        out->target = malloc(tl + 2);
        out->target[0] = '/';
        memcpy(out->target + 1, slash, tl);
        out->target[tl + 1] = '\0';
    } else {
        out->target = strndup(slash, tl);
    }
    return 0;
}

static bool cancelled(atomic_int *cancel) { return atomic_load(cancel) != 0; }

static int wait_fd(int fd, short ev, int64_t deadline, atomic_int *cancel)
{
    for (;;) {
        if (cancelled(cancel)) return -2;
        int64_t left = deadline - now_mono();
        if (left <= 0) return 0;
        int ms = left > 50 * NS_PER_MS ? 50 : (int)(left / NS_PER_MS) + 1;
        struct pollfd p = {.fd = fd, .events = ev};
        int n = poll(&p, 1, ms);
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return -1;
    }
}

/* Connect like Go's net.Dial; on failure *err holds its text. */
static int dial(const char *host, const char *port, int64_t deadline, atomic_int *cancel,
                char **err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        (void)!asprintf(err, "dial tcp: lookup %s: no such host", host);
        return -1;
    }
    char addr[128];
    char ip[INET6_ADDRSTRLEN] = "";
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
    else inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, ip, sizeof ip);
    snprintf(addr, sizeof addr, res->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, port);
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        (void)!asprintf(err, "dial tcp %s: socket: %s", addr, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int e = 0;
    if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            e = errno;
        } else {
            int w = wait_fd(fd, POLLOUT, deadline, cancel);
            if (w <= 0) {
                (void)!asprintf(err, "dial tcp %s: i/o timeout", addr);
                close(fd);
                freeaddrinfo(res);
                return -1;
            }
            socklen_t sl = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl);
        }
    }
    freeaddrinfo(res);
    if (e) {
        char *lower = strdup(strerror(e));
        for (char *q = lower; *q; q++)
            if (*q >= 'A' && *q <= 'Z') *q = (char)(*q + 32);
        (void)!asprintf(err, "dial tcp %s: connect: %s", addr, lower);
        free(lower);
        close(fd);
        return -1;
    }
    return fd;
}

char *probe_tcp(const struct check_def *d, atomic_int *cancel, enum check_status *st)
{
    int64_t timeout = d->timeout > 0 ? d->timeout : 10 * NS_PER_S;
    char host[256] = "", port[16] = "";
    const char *t = d->tcp;
    const char *colon = strrchr(t, ':');
    char *out = NULL, *err = NULL;
    *st = ST_CRITICAL;
    if (!colon) {
        (void)!asprintf(&out, "dial tcp: address %s: missing port in address", t);
        return out;
    }
    size_t hl = (size_t)(colon - t);
    if (hl && t[0] == '[' && t[hl - 1] == ']') {
        t++;
        hl -= 2;
    }
    if (hl >= sizeof host || strlen(colon + 1) >= sizeof port)
        return strdup("dial tcp: address too long");
    memcpy(host, t, hl);
    strcpy(port, colon + 1);
    int fd = dial(host, port, now_mono() + timeout, cancel, &err);
    if (fd < 0) return err;
    close(fd);
    *st = ST_PASSING;
    (void)!asprintf(&out, "TCP connect %s: Success", d->tcp);
    return out;
}

struct response {
    int code;
    char status[128];
    char *location;
    struct buf tail; /* last BODY_KEEP bytes of the body */
};

static void keep_tail(struct response *r, const char *p, size_t n)
{
    buf_add(&r->tail, p, n);
    if (r->tail.len > BODY_KEEP) {
        memmove(r->tail.p, r->tail.p + r->tail.len - BODY_KEEP, BODY_KEEP);
        r->tail.len = BODY_KEEP;
        r->tail.p[BODY_KEEP] = '\0';
    }
}

/* Read more bytes into `in`; 0 at EOF, -1 error/timeout, -2 cancelled. */
static ssize_t fill(int fd, struct buf *in, int64_t deadline, atomic_int *cancel)
{
    int w = wait_fd(fd, POLLIN, deadline, cancel);
    if (w <= 0) return w == -2 ? -2 : -1;
    char tmp[16384];
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n > 0) buf_add(in, tmp, (size_t)n);
    return n < 0 ? -1 : n;
}

static const char *find_header(const char *head, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = strstr(head, "\r\n");
    while (p && p[2] != '\r' && p[2]) {
        const char *line = p + 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol) break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            *vlen = (size_t)(eol - v);
            while (*vlen && (v[*vlen - 1] == ' ' || v[*vlen - 1] == '\t')) (*vlen)--;
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* One exchange. 0 ok; -1 with *err set. */
static int exchange(const struct check_def *d, const struct url *u, const char *method,
                    bool with_body, int64_t deadline, atomic_int *cancel, struct response *resp,
                    char **err)
{
    int fd = dial(u->host, u->port, deadline, cancel, err);
    if (fd < 0) return -1;
    struct buf q = {0};
    buf_fmt(&q, "%s %s HTTP/1.1\r\n", method, u->target);
    json_t *h = d->header;
    bool host_set = false, ua_set = false, accept_set = false;
    const char *k;
    json_t *vals;
    json_object_foreach(h, k, vals)
    {
        if (strcasecmp(k, "Host") == 0) host_set = json_array_size(vals) > 0;
        if (strcasecmp(k, "User-Agent") == 0) ua_set = true;
        if (strcasecmp(k, "Accept") == 0) accept_set = true;
    }
    if (host_set) {
        buf_fmt(&q, "Host: %s%s\r\n",
                json_string_value(json_array_get(json_object_get(h, "Host")
                                                     ? json_object_get(h, "Host")
                                                     : json_object_get(h, "host"),
                                                 0)),
                "");
    } else {
        bool v6 = strchr(u->host, ':') != NULL;
        bool dflt = strcmp(u->port, "80") == 0;
        char hp[300];
        snprintf(hp, sizeof hp, "%s%s%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "",
                 dflt ? "" : ":", dflt ? "" : u->port);
        buf_fmt(&q, "Host: %s%s\r\n", hp, "");
    }
    if (!ua_set) buf_fmt(&q, "User-Agent: %s%s\r\n", "Consul Health Check", "");
    if (!accept_set) buf_fmt(&q, "Accept: %s%s\r\n", "text/plain, text/*, */*", "");
    json_object_foreach(h, k, vals)
    {
        if (strcasecmp(k, "Host") == 0) continue;
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v) buf_fmt(&q, "%s: %s\r\n", k, json_string_value(v));
    }
    const char *body = with_body && d->body ? d->body : "";
    size_t blen = strlen(body);
    if (blen) {
        char cl[32];
        snprintf(cl, sizeof cl, "%zu", blen);
        buf_fmt(&q, "Content-Length: %s%s\r\n", cl, "");
    }
    buf_fmt(&q, "Connection: close\r\n\r\n%s%s", body, "");
    size_t sent = 0;
    while (sent < q.len) {
        int w = wait_fd(fd, POLLOUT, deadline, cancel);
        if (w <= 0) break;
        ssize_t n = send(fd, q.p + sent, q.len - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += (size_t)n;
    }
    free(q.p);
    if (sent < (size_t)q.len) {
        (void)!asprintf(
            err, "%s",
            now_mono() >= deadline
                ? "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                : "write: broken pipe");
        close(fd);
        return -1;
    }
    struct buf in = {0};
    char *eoh = NULL;
    while (!(eoh = in.p ? strstr(in.p, "\r\n\r\n") : NULL)) {
        ssize_t n = in.len > HEAD_MAX ? -1 : fill(fd, &in, deadline, cancel);
        if (n <= 0) {
            if (n == 0) (void)!asprintf(err, "EOF");
            else
                (void)!asprintf(
                    err,
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)");
            free(in.p);
            close(fd);
            return -1;
        }
    }
    size_t hlen = (size_t)(eoh - in.p) + 4;
    char *head = strndup(in.p, hlen);
    int code = 0;
    if (sscanf(head, "HTTP/%*d.%*d %d", &code) != 1 || code < 100 || code > 999) {
        (void)!asprintf(err, "malformed HTTP response \"%.*s\"", (int)strcspn(head, "\r\n"), head);
        free(head);
        free(in.p);
        close(fd);
        return -1;
    }
    resp->code = code;
    const char *sp = strchr(head, ' ');
    while (sp && *sp == ' ') sp++;
    snprintf(resp->status, sizeof resp->status, "%.*s", (int)strcspn(sp, "\r\n"), sp);
    size_t vl;
    const char *loc = find_header(head, "Location", &vl);
    if (loc) resp->location = strndup(loc, vl);
    const char *te = find_header(head, "Transfer-Encoding", &vl);
    bool chunked = te && vl >= 7 && strncasecmp(te + vl - 7, "chunked", 7) == 0;
    const char *clh = find_header(head, "Content-Length", &vl);
    long long clen = clh ? atoll(clh) : -1;
    bool nobody = strcmp(method, "HEAD") == 0 || code == 204 || code == 304 || code < 200;
    /* the rest of `in` after the headers is body (raw) */
    struct buf raw = {0};
    buf_add(&raw, in.p + hlen, in.len - hlen);
    free(in.p);
    if (!nobody) {
        if (chunked) {
            size_t pos = 0;
            for (;;) {
                char *crlf;
                while (!(crlf = strstr(raw.p + pos, "\r\n")))
                    if (fill(fd, &raw, deadline, cancel) <= 0) goto done;
                unsigned long sz = strtoul(raw.p + pos, NULL, 16);
                pos = (size_t)(crlf - raw.p) + 2;
                if (sz == 0) break;
                while (raw.len - pos < sz + 2)
                    if (fill(fd, &raw, deadline, cancel) <= 0) {
                        keep_tail(resp, raw.p + pos, raw.len - pos);
                        goto done;
                    }
                keep_tail(resp, raw.p + pos, sz);
                pos += sz + 2;
                if (pos > 1024 * 1024) { /* compact */
                    memmove(raw.p, raw.p + pos, raw.len - pos);
                    raw.len -= pos;
                    raw.p[raw.len] = '\0';
                    pos = 0;
                }
            }
        } else {
            long long got = 0;
            for (;;) {
                size_t take = raw.len;
                if (clen >= 0 && got + (long long)take > clen) take = (size_t)(clen - got);
                keep_tail(resp, raw.p, take);
                got += (long long)take;
                raw.len = 0;
                if (clen >= 0 && got >= clen) break;
                if (fill(fd, &raw, deadline, cancel) <= 0) break;
            }
        }
    }
done:
    free(raw.p);
    free(head);
    close(fd);
    return 0;
}

static char *go_op(const char *method)
{
    char *s = strdup(method);
    for (char *p = s + 1; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
    return s;
}

char *probe_http(const struct check_def *d, atomic_int *cancel, enum check_status *st)
{
    int64_t timeout = d->timeout > 0 ? d->timeout : 10 * NS_PER_S;
    int64_t deadline = now_mono() + timeout;
    const char *method = d->method && *d->method ? d->method : "GET";
    char *op = go_op(method);
    char *out = NULL;
    char *cur = strdup(d->http);
    const char *m = method;
    bool with_body = true;
    *st = ST_CRITICAL;
    for (int hop = 0;; hop++) {
        struct url u;
        if (parse_url(cur, &u) != 0) {
            (void)!asprintf(&out, "%s \"%s\": unsupported protocol scheme", op, d->http);
            break;
        }
        if (u.https) {
            (void)!asprintf(&out, "%s \"%s\": https checks are not supported by the consul double",
                            op, d->http);
            free(u.target);
            break;
        }
        struct response resp = {0};
        char *err = NULL;
        int rc = exchange(d, &u, m, with_body, deadline, cancel, &resp, &err);
        free(u.target);
        if (rc != 0) {
            (void)!asprintf(&out, "%s \"%s\": %s", op, cur, err ? err : "error");
            free(err);
            free(resp.tail.p);
            break;
        }
        bool redirect = (resp.code == 301 || resp.code == 302 || resp.code == 303 ||
                         resp.code == 307 || resp.code == 308) &&
                        resp.location && !d->disable_redirects;
        if (redirect && hop >= 10) {
            (void)!asprintf(&out, "%s \"%s\": stopped after 10 redirects", op, resp.location);
            free(resp.location);
            free(resp.tail.p);
            break;
        }
        if (redirect) {
            char *next = NULL;
            if (strncasecmp(resp.location, "http://", 7) == 0 ||
                strncasecmp(resp.location, "https://", 8) == 0) {
                next = strdup(resp.location);
            } else {
                struct url cu;
                parse_url(cur, &cu);
                bool v6 = strchr(cu.host, ':') != NULL;
                const char *path = resp.location;
                char *dir = NULL;
                if (path[0] != '/') {
                    dir = strdup(cu.target);
                    char *q = strchr(dir, '?');
                    if (q) *q = '\0';
                    char *sl = strrchr(dir, '/');
                    if (sl) sl[1] = '\0';
                }
                (void)!asprintf(&next, "http://%s%s%s:%s%s%s", v6 ? "[" : "", cu.host,
                                v6 ? "]" : "", cu.port, dir ? dir : "", path);
                free(dir);
                free(cu.target);
            }
            if (resp.code == 303 ||
                ((resp.code == 301 || resp.code == 302) && strcmp(m, "GET") && strcmp(m, "HEAD"))) {
                m = "GET";
                with_body = false;
            }
            free(cur);
            cur = next;
            free(resp.location);
            free(resp.tail.p);
            continue;
        }
        if (resp.code >= 200 && resp.code < 300) *st = ST_PASSING;
        else if (resp.code == 429) *st = ST_WARNING;
        (void)!asprintf(&out, "HTTP %s %s: %s Output: %s", method, d->http, resp.status,
                        resp.tail.p ? resp.tail.p : "");
        free(resp.location);
        free(resp.tail.p);
        break;
    }
    free(cur);
    free(op);
    return out;
}
