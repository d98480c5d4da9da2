/* SPDX-License-Identifier: MIT */
/* Fault knobs and request counters, driven over HTTP on /_double/ (a path
 * real Consul does not have). A fault applies to requests whose path
 * starts with one of its prefixes (default: the health and catalog read
 * endpoints), optionally only to the next `count` of them. */
#include "double.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <errno.h>

#define MAX_PATHS 16

static const char *mode_names[] = {"none", "down", "slow",    "stall",     "500",
                                   "429",  "503",  "garbage", "truncated", "oversized"};

static struct {
    pthread_mutex_t mu;
    enum fault_mode mode;
    int64_t ms;
    long long bytes;
    long long count; /* < 0: until cleared */
    char *paths[MAX_PATHS];
    int n_paths;
    char *text;
    uint64_t epoch;
    unsigned long long applied;
    bool default_paths;
    char *last_token; /* the last token a /v1/ request carried */
} F;

struct stat_entry {
    char *key;
    unsigned long long n;
};
static struct stat_entry *g_stats;
static size_t g_n_stats;
static unsigned long long g_total;

static void set_default_paths(void)
{
    for (int i = 0; i < F.n_paths; i++) free(F.paths[i]);
    F.n_paths = 2;
    F.paths[0] = strdup("/v1/health/");
    F.paths[1] = strdup("/v1/catalog/");
    F.default_paths = true;
}

void faults_init(void)
{
    pthread_mutex_init(&F.mu, NULL);
    F.mode = F_NONE;
    F.count = -1;
    set_default_paths();
}

void faults_free(void)
{
    for (int i = 0; i < F.n_paths; i++) free(F.paths[i]);
    F.n_paths = 0;
    free(F.text);
    F.text = NULL;
    free(F.last_token);
    F.last_token = NULL;
    for (size_t i = 0; i < g_n_stats; i++) free(g_stats[i].key);
    free(g_stats);
    g_stats = NULL;
    g_n_stats = 0;
    pthread_mutex_destroy(&F.mu);
}

static void bump_key(const char *key)
{
    size_t i;
    for (i = 0; i < g_n_stats; i++)
        if (strcmp(g_stats[i].key, key) == 0) break;
    if (i == g_n_stats) {
        g_stats = realloc(g_stats, (g_n_stats + 1) * sizeof *g_stats);
        g_stats[g_n_stats].key = strdup(key);
        g_stats[g_n_stats++].n = 0;
    }
    g_stats[i].n++;
}

void stats_count(const char *method, const char *route, const char *token)
{
    char key[256];
    snprintf(key, sizeof key, "%s %s", method, route);
    pthread_mutex_lock(&F.mu);
    g_total++;
    bump_key(key);
    bump_key(route);
    if (token && *token) {
        free(F.last_token);
        F.last_token = strdup(token);
    }
    pthread_mutex_unlock(&F.mu);
}

static bool path_in_scope(const char *path)
{
    /* an agent that is down is down for every endpoint, unless the
     * fault was given its own paths */
    if (F.mode == F_DOWN && F.default_paths) return true;
    for (int i = 0; i < F.n_paths; i++)
        if (strcmp(F.paths[i], "all") == 0 || strncmp(path, F.paths[i], strlen(F.paths[i])) == 0)
            return true;
    return false;
}

/* Pick the fault for this request (consuming one of `count`). */
static enum fault_mode take(struct req *r, int64_t *ms, long long *bytes, char **text)
{
    pthread_mutex_lock(&F.mu);
    enum fault_mode m = F.mode;
    if (m != F_NONE && !path_in_scope(r->path)) m = F_NONE;
    if (m != F_NONE) {
        *ms = F.ms;
        *bytes = F.bytes;
        *text = F.text ? strdup(F.text) : NULL;
        F.applied++;
        if (F.count > 0 && --F.count == 0) {
            F.mode = F_NONE;
            F.epoch++;
        }
    }
    pthread_mutex_unlock(&F.mu);
    return m;
}

static struct MHD_Response *text_resp(const char *s, const char *ctype, uint64_t index)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(s), (void *)(uintptr_t)s, MHD_RESPMEM_MUST_COPY);
    if (!resp) return NULL;
    reply_common_headers(resp);
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    if (index) {
        char b[32];
        snprintf(b, sizeof b, "%llu", (unsigned long long)index);
        MHD_add_response_header(resp, "X-Consul-Index", b);
        MHD_add_response_header(resp, "X-Consul-Knownleader", "true");
        MHD_add_response_header(resp, "X-Consul-Lastcontact", "0");
    }
    return resp;
}

/* A valid JSON array of health entries of about `bytes` bytes. */
static char *oversized_body(long long bytes, size_t *len)
{
    struct {
        char *p;
        size_t len, cap;
    } b = {NULL, 0, 0};
    b.cap = (size_t)bytes + 4096;
    b.p = malloc(b.cap);
    if (!b.p) return NULL;
    b.p[b.len++] = '[';
    for (long long i = 0; (long long)b.len < bytes; i++) {
        char e[1024];
        int n = snprintf(
            e, sizeof e,
            "%s{\"Node\":{\"ID\":\"\",\"Node\":\"huge-%lld\",\"Address\":\"10.%lld.%lld.%lld\","
            "\"Datacenter\":\"dc1\",\"TaggedAddresses\":{},\"Meta\":{},\"CreateIndex\":1,"
            "\"ModifyIndex\":1},"
            "\"Service\":{\"ID\":\"huge-%lld\",\"Service\":\"huge\",\"Tags\":[],\"Address\":\"\","
            "\"Meta\":null,"
            "\"Port\":%lld,\"Weights\":{\"Passing\":1,\"Warning\":1},\"EnableTagOverride\":false,"
            "\"CreateIndex\":1,\"ModifyIndex\":1},\"Checks\":[]}",
            i ? "," : "", i, (i >> 16) & 255, (i >> 8) & 255, i & 255, i, 1024 + (i % 60000));
        if (b.len + (size_t)n + 2 > b.cap) {
            b.cap = (b.len + (size_t)n + 2) * 2;
            char *np = realloc(b.p, b.cap);
            if (!np) {
                free(b.p);
                return NULL;
            }
            b.p = np;
        }
        memcpy(b.p + b.len, e, (size_t)n);
        b.len += (size_t)n;
    }
    b.p[b.len++] = ']';
    *len = b.len;
    return b.p;
}

bool fault_intercept(struct req *r, struct MHD_Response **resp, unsigned *status, bool *drop)
{
    int64_t ms = 0;
    long long bytes = 0;
    char *text = NULL;
    enum fault_mode m = take(r, &ms, &bytes, &text);
    r->fault = m;
    *resp = NULL;
    *drop = false;
    if (m == F_NONE) return false;
    if (ms > 0 && m != F_STALL && sleep_interruptible(ms * NS_PER_MS)) {
        free(text);
        *drop = true;
        return true;
    }
    pthread_mutex_lock(&g_store.mu);
    uint64_t idx = g_store.index ? g_store.index : 1;
    pthread_mutex_unlock(&g_store.mu);
    bool taken = true;
    switch (m) {
    case F_DOWN: *drop = true; break;
    case F_500:
        *status = 500;
        *resp = text_resp(text ? text : "No cluster leader", "text/plain; charset=utf-8", 0);
        break;
    case F_429:
        *status = 429;
        *resp = text_resp(text ? text : "", NULL, 0);
        break;
    case F_503:
        *status = 503;
        *resp = text_resp(text ? text : "rate limit exceeded, try again later",
                          "text/plain; charset=utf-8", 0);
        break;
    case F_GARBAGE:
        *status = 200;
        *resp = text_resp(text ? text : "<html><body>this is not JSON {\"Node\": [",
                          "application/json", idx);
        break;
    case F_OVERSIZED: {
        size_t len = 0;
        char *body = oversized_body(bytes > 0 ? bytes : 16LL * 1024 * 1024, &len);
        if (!body) {
            *drop = true;
            break;
        }
        *status = 200;
        *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (*resp) {
            reply_common_headers(*resp);
            MHD_add_response_header(*resp, "Content-Type", "application/json");
            char b[32];
            snprintf(b, sizeof b, "%llu", (unsigned long long)idx);
            MHD_add_response_header(*resp, "X-Consul-Index", b);
        } else {
            free(body);
        }
        break;
    }
    default: taken = false; break; /* slow (delay done), stall, truncated */
    }
    free(text);
    return taken;
}

bool fault_wants_wrap(struct req *r) { return r->fault == F_STALL || r->fault == F_TRUNCATED; }

struct cut {
    char *body;
    size_t len, half;
    enum fault_mode mode;
    struct MHD_Connection *conn;
};

static bool client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return true;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static ssize_t cut_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct cut *c = cls;
    if (pos < c->half) {
        size_t n = c->half - (size_t)pos;
        if (n > max) n = max;
        memcpy(buf, c->body + pos, n);
        return (ssize_t)n;
    }
    if (c->mode == F_TRUNCATED) return MHD_CONTENT_READER_END_WITH_ERROR;
    /* stall: hang until the client gives up, the knob clears, or we stop */
    for (;;) {
        pthread_mutex_lock(&F.mu);
        bool still = F.mode == F_STALL;
        pthread_mutex_unlock(&F.mu);
        if (!still) break;
        if (client_gone(c->conn) || sleep_interruptible(20 * NS_PER_MS))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (pos >= c->len) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = c->len - (size_t)pos;
    if (n > max) n = max;
    memcpy(buf, c->body + pos, n);
    return (ssize_t)n;
}

static void cut_free(void *cls)
{
    struct cut *c = cls;
    free(c->body);
    free(c);
}

struct MHD_Response *fault_wrap(struct req *r, struct reply *rp)
{
    struct cut *c = calloc(1, sizeof *c);
    c->mode = (enum fault_mode)r->fault;
    c->conn = r->conn;
    c->len = rp->len;
    c->body = rp->body;
    rp->body = NULL;
    if (c->len < 2) { /* nothing to cut: promise bytes that never come */
        c->body = realloc(c->body, 64);
        memset(c->body + c->len, ' ', 64 - c->len);
        c->half = c->len;
        c->len = 64;
    } else {
        c->half = c->len / 2;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(c->len, 4096, cut_reader, c, cut_free);
    if (!resp) {
        cut_free(c);
        return NULL;
    }
    reply_headers(resp, rp);
    return resp;
}

/* ---- the control API ---- */

static json_t *fault_json(void)
{
    json_t *paths = json_array();
    for (int i = 0; i < F.n_paths; i++) json_array_append_new(paths, json_string(F.paths[i]));
    return json_pack("{s:s,s:I,s:I,s:I,s:o,s:s?,s:I}", "mode", mode_names[F.mode], "ms",
                     (json_int_t)F.ms, "bytes", (json_int_t)F.bytes, "count", (json_int_t)F.count,
                     "paths", paths, "text", F.text, "applied", (json_int_t)F.applied);
}

static bool is_write(struct req *r)
{
    return strcmp(r->method, "PUT") == 0 || strcmp(r->method, "POST") == 0;
}

/* "500ms", "2s" or a plain number of milliseconds. */
static long long value_ms(const char *v)
{
    int64_t ns;
    if (go_duration_parse(v, &ns, NULL) == 0) return ns / NS_PER_MS;
    return atoll(v);
}

/* /_double/fault/<mode>[?value=V]: the short form. V is the delay for
 * slow, the size for oversized, the body text for 500/503, and for down
 * a duration of a real outage (listener closed). */
static void control_fault_short(struct req *r, struct reply *rp, const char *mode)
{
    const char *v = req_arg(r, "value");
    if (strcmp(mode, "clear") == 0) mode = "none";
    if (strcmp(mode, "down") == 0 && v && *v) {
        supervisor_request_down(value_ms(v));
        reply_json(rp, r, 200,
                   json_pack("{s:s,s:I}", "mode", "down", "down_ms", (json_int_t)value_ms(v)));
        return;
    }
    if (strcmp(mode, "index-reset") == 0) {
        pthread_mutex_lock(&g_store.mu);
        store_index_reset();
        pthread_mutex_unlock(&g_store.mu);
        reply_json(rp, r, 200, json_pack("{s:s}", "mode", "index-reset"));
        return;
    }
    int m = -1;
    for (int i = 0; i < (int)(sizeof mode_names / sizeof mode_names[0]); i++)
        if (strcmp(mode, mode_names[i]) == 0) m = i;
    if (m < 0) {
        reply_text(rp, 400, "unknown mode \"%s\"", mode);
        return;
    }
    pthread_mutex_lock(&F.mu);
    F.mode = (enum fault_mode)m;
    F.ms = m == F_SLOW && v ? value_ms(v) : 0;
    F.bytes = m == F_OVERSIZED && v ? atoll(v) : 0;
    F.count = -1;
    free(F.text);
    F.text = (m == F_500 || m == F_503) && v ? strdup(v) : NULL;
    set_default_paths();
    F.epoch++;
    json_t *j = fault_json();
    pthread_mutex_unlock(&F.mu);
    reply_json(rp, r, 200, j);
}

static void control_fault(struct req *r, struct reply *rp)
{
    if (is_write(r)) {
        const char *mode = req_arg(r, "mode");
        if (!mode) {
            reply_text(rp, 400, "missing mode");
            return;
        }
        if (strcmp(mode, "index-reset") == 0) {
            pthread_mutex_lock(&g_store.mu);
            store_index_reset();
            pthread_mutex_unlock(&g_store.mu);
        } else {
            int m = -1;
            for (int i = 0; i < (int)(sizeof mode_names / sizeof mode_names[0]); i++)
                if (strcmp(mode, mode_names[i]) == 0) m = i;
            if (strcmp(mode, "clear") == 0) m = F_NONE;
            if (m < 0) {
                reply_text(rp, 400, "unknown mode \"%s\"", mode);
                return;
            }
            pthread_mutex_lock(&F.mu);
            F.mode = (enum fault_mode)m;
            const char *v;
            F.ms = (v = req_arg(r, "ms")) ? value_ms(v) : 0;
            F.bytes = (v = req_arg(r, "bytes")) ? atoll(v) : 0;
            F.count = (v = req_arg(r, "count")) && atoll(v) > 0 ? atoll(v) : -1;
            free(F.text);
            F.text = (v = req_arg(r, "text")) ? strdup(v) : NULL;
            if ((v = req_arg(r, "paths")) && *v) {
                for (int i = 0; i < F.n_paths; i++) free(F.paths[i]);
                F.n_paths = 0;
                char *dup = strdup(v), *save = NULL;
                for (char *t = strtok_r(dup, ",", &save); t && F.n_paths < MAX_PATHS;
                     t = strtok_r(NULL, ",", &save))
                    F.paths[F.n_paths++] = strdup(t);
                free(dup);
                F.default_paths = false;
            } else {
                set_default_paths();
            }
            F.epoch++;
            pthread_mutex_unlock(&F.mu);
        }
    }
    pthread_mutex_lock(&F.mu);
    json_t *j = fault_json();
    pthread_mutex_unlock(&F.mu);
    reply_json(rp, r, 200, j);
}

static void control_stats(struct req *r, struct reply *rp, bool reset)
{
    pthread_mutex_lock(&g_store.mu);
    uint64_t idx = g_store.index;
    int blocking = g_store.active_blocking;
    pthread_mutex_unlock(&g_store.mu);
    pthread_mutex_lock(&F.mu);
    json_t *reqs = json_object(), *paths = json_object();
    for (size_t i = 0; i < g_n_stats; i++)
        json_object_set_new(
            g_stats[i].key[0] == '/' || strcmp(g_stats[i].key, "unknown") == 0 ? paths : reqs,
            g_stats[i].key, json_integer((json_int_t)g_stats[i].n));
    json_t *j = json_pack(
        "{s:I,s:o,s:o,s:i,s:I,s:I,s:s?,s:i,s:i,s:I}", "total", (json_int_t)g_total, "requests",
        reqs, "paths", paths, "blocking", blocking, "index", (json_int_t)idx, "faulted",
        (json_int_t)F.applied, "last_token", F.last_token, "connections", server_conns_now(),
        "max_connections", server_max_conns_seen(), "gzipped", (json_int_t)reply_gzipped());
    if (reset) {
        server_reset_max_conns();
        for (size_t i = 0; i < g_n_stats; i++) free(g_stats[i].key);
        free(g_stats);
        g_stats = NULL;
        g_n_stats = 0;
        g_total = 0;
        F.applied = 0;
    }
    pthread_mutex_unlock(&F.mu);
    reply_json(rp, r, 200, j);
}

void control_handle(struct req *r, struct reply *rp)
{
    const char *p = r->path + strlen("/_double/");
    if (strcmp(p, "fault") == 0) {
        control_fault(r, rp);
    } else if (strncmp(p, "fault/", 6) == 0 && is_write(r)) {
        control_fault_short(r, rp, p + 6);
    } else if (strcmp(p, "stats") == 0) {
        control_stats(r, rp, strcmp(r->method, "DELETE") == 0);
    } else if (strcmp(p, "stats/reset") == 0 && is_write(r)) {
        control_stats(r, rp, true);
    } else if (strcmp(p, "reset") == 0 && is_write(r)) {
        const char *kind = req_arg(r, "kind");
        if (!kind) kind = "dev";
        pthread_mutex_lock(&g_store.mu);
        if (strcmp(kind, "dev") == 0) store_reset_dev();
        else if (strcmp(kind, "normal") == 0) store_reset_normal();
        else {
            pthread_mutex_unlock(&g_store.mu);
            reply_text(rp, 400, "kind must be dev or normal");
            return;
        }
        uint64_t idx = g_store.index;
        pthread_mutex_unlock(&g_store.mu);
        const char *down = req_arg(r, "down");
        if (down && atoll(down) > 0) supervisor_request_down(atoll(down));
        reply_json(rp, r, 200, json_pack("{s:s,s:I}", "kind", kind, "index", (json_int_t)idx));
    } else if (strcmp(p, "down") == 0 && is_write(r)) {
        const char *ms = req_arg(r, "ms");
        long long v = ms ? atoll(ms) : 1000;
        supervisor_request_down(v > 0 ? v : 1000);
        reply_json(rp, r, 200, json_pack("{s:I}", "down_ms", (json_int_t)v));
    } else if (strcmp(p, "state") == 0) {
        pthread_mutex_lock(&g_store.mu);
        json_t *svcs = json_array();
        for (size_t i = 0; i < g_store.n_svcs; i++)
            json_array_append_new(svcs, render_health_entry(g_store.svcs[i]));
        json_t *j = json_pack("{s:I,s:I,s:o}", "index", (json_int_t)g_store.index, "tomb_index",
                              (json_int_t)g_store.tomb_index, "services", svcs);
        pthread_mutex_unlock(&g_store.mu);
        reply_json(rp, r, 200, j);
    } else {
        reply_text(rp, 404, "unknown control path");
    }
}
