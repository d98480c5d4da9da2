/* SPDX-License-Identifier: MIT */
/* The HTTP front: an MHD daemon with a thread per connection (a blocking
 * query just waits in its thread), Go ServeMux-style routing (clean-path
 * and trailing-slash redirects, longest pattern wins), method checks,
 * the body limit, request counting, and the fault hook. */
#include "double.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BODY (1024 * 1024)

struct route {
    const char *pattern;
    bool subtree;
    bool write; /* agent write endpoint: PUT only */
    void (*fn)(struct req *, struct reply *, const char *);
};

static const struct route routes[] = {
    {"/v1/agent/service/register", false, true, api_agent},
    {"/v1/agent/service/deregister/", true, true, api_agent},
    {"/v1/agent/service/maintenance/", true, true, api_agent},
    {"/v1/agent/check/pass/", true, true, api_agent},
    {"/v1/agent/check/warn/", true, true, api_agent},
    {"/v1/agent/check/fail/", true, true, api_agent},
    {"/v1/agent/check/update/", true, true, api_agent},
    {"/v1/agent/services", false, false, api_agent},
    {"/v1/agent/checks", false, false, api_agent},
    {"/v1/agent/health/service/id/", true, false, api_agent},
    {"/v1/health/service/", true, false, api_health},
    {"/v1/catalog/services", false, false, api_health},
    {"/v1/health/state/", true, false, api_health},
    {"/v1/catalog/service/", true, false, api_health},
    {"/v1/status/leader", false, false, api_health},
};

struct rctx {
    char *body;
    size_t len;
    bool too_big;
};

static struct MHD_Daemon *g_daemon;
static int g_listen_fd = -1;

const char *req_arg(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static enum MHD_Result has_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    (void)value;
    struct {
        const char *name;
        bool found;
    } *x = cls;
    if (strcmp(key, x->name) == 0) {
        x->found = true;
        return MHD_NO;
    }
    return MHD_YES;
}

bool req_has_arg(struct req *r, const char *name)
{
    struct {
        const char *name;
        bool found;
    } x = {name, false};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, has_cb, &x);
    return x.found;
}

const char *req_header(struct req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Go's path.Clean, keeping a trailing slash as ServeMux does. */
static char *clean_path(const char *p)
{
    size_t n = strlen(p);
    char *out = malloc(n + 2);
    size_t w = 0;
    const char *s = p;
    out[w++] = '/';
    while (*s) {
        while (*s == '/') s++;
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0) break;
        if (len == 1 && s[0] == '.') {
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            if (w > 1) {
                w--;
                while (w > 0 && out[w - 1] != '/') w--;
            }
        } else {
            memcpy(out + w, s, len);
            w += len;
            out[w++] = '/';
        }
        s += len;
    }
    if (w > 1) w--; /* drop the slash after the last element */
    if (n > 1 && p[n - 1] == '/' && w > 1) out[w++] = '/';
    out[w] = '\0';
    return out;
}

struct qbuild {
    char *s;
    size_t len;
};

static enum MHD_Result query_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    struct qbuild *q = cls;
    char *add = NULL;
    int n = value ? asprintf(&add, "%s%s=%s", q->len ? "&" : "", key, value)
                  : asprintf(&add, "%s%s", q->len ? "&" : "", key);
    if (n > 0) {
        q->s = realloc(q->s, q->len + (size_t)n + 1);
        memcpy(q->s + q->len, add, (size_t)n + 1);
        q->len += (size_t)n;
    }
    free(add);
    return MHD_YES;
}

static void redirect(struct reply *rp, struct req *r, const char *to)
{
    struct qbuild q = {NULL, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_cb, &q);
    char *loc = NULL;
    if (asprintf(&loc, "%s%s%s", to, q.len ? "?" : "", q.len ? q.s : "") < 0) loc = NULL;
    free(q.s);
    reply_add_header(rp, "Location", "%s", loc ? loc : to);
    if (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0) {
        free(rp->body);
        if (asprintf(&rp->body, "<a href=\"%s\">Moved Permanently</a>.\n\n", loc ? loc : to) < 0)
            rp->body = NULL;
        rp->len = rp->body ? strlen(rp->body) : 0;
        rp->ctype = "text/html; charset=utf-8";
    }
    rp->status = 301;
    free(loc);
}

static const struct route *match(const char *path)
{
    const struct route *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *rt = &routes[i];
        size_t n = strlen(rt->pattern);
        bool ok = rt->subtree ? strncmp(path, rt->pattern, n) == 0 : strcmp(path, rt->pattern) == 0;
        if (ok && n > best_len) {
            best = rt;
            best_len = n;
        }
    }
    return best;
}

/* A subtree pattern asked for without its slash: ServeMux redirects. */
static const struct route *match_slashless(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (routes[i].subtree && strlen(routes[i].pattern) == n + 1 &&
            strncmp(routes[i].pattern, path, n) == 0)
            return &routes[i];
    return NULL;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct reply *rp, struct req *r)
{
    struct MHD_Response *resp = reply_build(rp, r);
    if (!resp) return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rp->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct rctx *x = *con_cls;
    if (!x) {
        x = calloc(1, sizeof *x);
        if (!x) return MHD_NO;
        *con_cls = x;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!x->too_big && x->len + *upload_size <= MAX_BODY) {
            char *nb = realloc(x->body, x->len + *upload_size + 1);
            if (nb) {
                x->body = nb;
                memcpy(x->body + x->len, upload_data, *upload_size);
                x->len += *upload_size;
                x->body[x->len] = '\0';
            }
        } else {
            x->too_big = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }

    struct req r = {
        .conn = conn, .method = method, .path = url, .body = x->body, .body_len = x->len};
    struct reply rp = {0};
    enum MHD_Result ret;

    if (strncmp(url, "/_double/", 9) == 0) {
        control_handle(&r, &rp);
        return send_reply(conn, &rp, &r);
    }

    char *clean = clean_path(url);
    r.path = clean;
    const struct route *rt = NULL;
    if (strcmp(clean, url) != 0) {
        redirect(&rp, &r, clean);
        goto send;
    }
    rt = match(clean);
    if (!rt && match_slashless(clean)) {
        char *to = NULL;
        if (asprintf(&to, "%s/", clean) > 0) redirect(&rp, &r, to);
        free(to);
        goto send;
    }
    if (!rt) {
        stats_count(method, "unknown", NULL);
        reply_text(&rp, 404, "Invalid URL path: not a recognized HTTP API endpoint\n");
        goto send;
    }
    r.route = rt->pattern;
    r.rest = clean + strlen(rt->pattern);
    char tokbuf[512];
    stats_count(method, rt->pattern, acl_token(&r, tokbuf, sizeof tokbuf));
    const char *allow = rt->write ? "OPTIONS,PUT" : "OPTIONS,GET";
    if (strcmp(method, "OPTIONS") == 0) {
        rp.status = 200;
        reply_add_header(&rp, "Allow", "%s", allow);
        goto send;
    }
    if (rt->write ? strcmp(method, "PUT") != 0
                  : strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        reply_text(&rp, 405, "method %s not allowed", method);
        reply_add_header(&rp, "Allow", "%s", allow);
        goto send;
    }
    if (x->too_big) {
        reply_text(&rp, 413, "Request body too large");
        goto send;
    }
    struct MHD_Response *fresp = NULL;
    bool drop = false;
    unsigned fstatus = 200;
    if (fault_intercept(&r, &fresp, &fstatus, &drop)) {
        free(clean);
        if (drop || !fresp) {
            /* reset, not a clean close: the agent went away */
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            struct linger lg = {1, 0};
            if (ci) setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            return MHD_NO;
        }
        ret = MHD_queue_response(conn, fstatus, fresp);
        MHD_destroy_response(fresp);
        return ret;
    }
    if (drop) {
        free(clean);
        return MHD_NO;
    }
    rt->fn(&r, &rp, rt->pattern);
    if (rp.status == -1) { /* the double is stopping: cut it */
        reply_clear(&rp);
        free(clean);
        return MHD_NO;
    }
    if (fault_wants_wrap(&r)) {
        struct MHD_Response *w = fault_wrap(&r, &rp);
        unsigned st = (unsigned)rp.status;
        reply_clear(&rp);
        free(clean);
        if (!w) return MHD_NO;
        ret = MHD_queue_response(conn, st, w);
        MHD_destroy_response(w);
        return ret;
    }
send:
    ret = send_reply(conn, &rp, &r);
    reply_clear(&rp);
    free(clean);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct rctx *x = *con_cls;
    if (x) {
        free(x->body);
        free(x);
    }
    *con_cls = NULL;
}

/* ---- Consul's per-client connection limit (limits.http_max_conns_per_client) ----
 * Connections, not requests, count: from accept to close, per peer IP. One
 * past the limit gets Consul's 429 bytes at once, before its request is
 * read, and is closed (go-connlimit's behaviour since Consul 1.9). */
struct peer {
    char ip[64]; /* inet_ntop of an IPv4 or IPv6 peer */
    int conns;
    struct peer *next;
};
static struct peer *g_peers;
static pthread_mutex_t g_peers_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_max_conns_seen;

static const char too_many[] =
    "HTTP/1.1 429 Too Many Requests\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 81\r\n"
    "Connection: close\r\n"
    "\r\n"
    "Your IP is issuing too many concurrent connections, please rate limit your calls\n";

static void peer_ip(struct MHD_Connection *conn, char *buf, size_t cap)
{
    buf[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
}

static struct peer *peer_get(const char *ip)
{
    for (struct peer *p = g_peers; p; p = p->next)
        if (!strcmp(p->ip, ip)) return p;
    struct peer *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->ip, sizeof p->ip, "%s", ip);
    p->next = g_peers;
    g_peers = p;
    return p;
}

/* socket_context: NULL, or the peer a counted connection belongs to. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct peer *p = *socket_context;
        if (p) {
            pthread_mutex_lock(&g_peers_mu);
            p->conns--;
            pthread_mutex_unlock(&g_peers_mu);
        }
        *socket_context = NULL;
        return;
    }
    char ip[64];
    peer_ip(conn, ip, sizeof ip);
    pthread_mutex_lock(&g_peers_mu);
    struct peer *p = peer_get(ip);
    int over = p && g_cfg.max_conns_per_client > 0 && p->conns >= g_cfg.max_conns_per_client;
    if (p && !over) {
        p->conns++;
        if (p->conns > g_max_conns_seen) g_max_conns_seen = p->conns;
        *socket_context = p;
    }
    pthread_mutex_unlock(&g_peers_mu);
    if (!over) return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return;
    /* best effort, as Consul's 10 ms write deadline: then hang up */
    ssize_t w = send(ci->connect_fd, too_many, sizeof too_many - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
    shutdown(ci->connect_fd, SHUT_RDWR);
}

int server_max_conns_seen(void)
{
    pthread_mutex_lock(&g_peers_mu);
    int n = g_max_conns_seen;
    pthread_mutex_unlock(&g_peers_mu);
    return n;
}

void server_reset_max_conns(void)
{
    pthread_mutex_lock(&g_peers_mu);
    g_max_conns_seen = 0;
    for (struct peer *p = g_peers; p; p = p->next)
        if (p->conns > g_max_conns_seen) g_max_conns_seen = p->conns;
    pthread_mutex_unlock(&g_peers_mu);
}

int server_conns_now(void)
{
    pthread_mutex_lock(&g_peers_mu);
    int n = 0;
    for (struct peer *p = g_peers; p; p = p->next) n += p->conns;
    pthread_mutex_unlock(&g_peers_mu);
    return n;
}

static void log_nothing(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    (void)fmt;
    (void)ap;
}

static int bind_listener(const char *host, int port, int *bound_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 512) != 0) {
        close(fd);
        return -1;
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *bound_port = ntohs(sa.sin_port);
    return fd;
}

/* Start (or restart, after a "down" fault) on cfg's host and port; the
 * first start with port 0 fixes the port for later restarts. */
int server_start(struct config *cfg)
{
    int port = 0;
    int fd = bind_listener(cfg->listen_host, cfg->listen_port, &port);
    if (fd < 0) return -1;
    cfg->listen_port = port;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    if (cfg->tls_cert_pem) flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, cfg->tls_cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, cfg->tls_key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    g_daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)2000, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)0, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_EXTERNAL_LOGGER,
        log_nothing, NULL, MHD_OPTION_ARRAY, cfg->tls_cert_pem ? tls : &tls[2], MHD_OPTION_END);
    if (!g_daemon) {
        close(fd);
        return -1;
    }
    g_listen_fd = fd;
    return 0;
}

void server_stop(void)
{
    if (g_daemon) MHD_stop_daemon(g_daemon);
    g_daemon = NULL;
    g_listen_fd = -1;
}

bool server_tls_supported(void) { return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES; }
