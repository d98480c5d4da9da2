/* SPDX-License-Identifier: MIT */
/* Read endpoints with blocking queries: /v1/health/service/:name,
 * /v1/catalog/services, /v1/catalog/service/:name, and the (non-blocking)
 * /v1/status/leader. */
#include "double.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_WAIT (5 * 60 * NS_PER_S)
#define MAX_WAIT (10 * 60 * NS_PER_S)

struct query {
    uint64_t min_index;
    int64_t wait;
    const char *consistency;
};

/* Consul's parse(): consistency, then ?wait, then ?index. */
static bool parse_query(struct req *r, struct reply *rp, struct query *q)
{
    q->min_index = 0;
    q->wait = 0;
    q->consistency = "leader";
    bool stale = req_has_arg(r, "stale"), consistent = req_has_arg(r, "consistent");
    if (stale && consistent) {
        reply_text(rp, 400, "Cannot specify ?stale with ?consistent, conflicting semantics.");
        return false;
    }
    if (stale) q->consistency = "stale";
    if (consistent) q->consistency = "consistent";
    const char *w = req_arg(r, "wait");
    if (w && *w) {
        if (go_duration_parse(w, &q->wait, NULL) != 0) {
            reply_text(rp, 400, "Invalid wait time");
            return false;
        }
    }
    const char *ix = req_arg(r, "index");
    if (ix && *ix) {
        char *end = NULL;
        bool digits = true;
        for (const char *p = ix; *p; p++)
            if (*p < '0' || *p > '9') digits = false;
        unsigned long long v = digits ? strtoull(ix, &end, 10) : 0;
        if (!digits || strlen(ix) > 20 ||
            (strlen(ix) == 20 && strcmp(ix, "18446744073709551615") > 0)) {
            reply_text(rp, 400, "Invalid index");
            return false;
        }
        q->min_index = v;
    }
    /* a cut or stalled answer comes at once, not after the long poll */
    if (r->fault == F_TRUNCATED || r->fault == F_STALL) q->min_index = 0;
    const char *dc = req_arg(r, "dc");
    if (dc && *dc && strcmp(dc, g_store.cfg->dc) != 0) {
        reply_text(rp, 500, "No path to datacenter");
        return false;
    }
    const char *f = req_arg(r, "filter");
    if (f && *f) {
        reply_text(rp, 500,
                   "Failed to create boolean expression evaluator: filter expressions are not "
                   "supported by the consul double");
        return false;
    }
    return true;
}

struct waitarg {
    const char *name;
    uint64_t min;
};

static bool svc_moved(void *p)
{
    struct waitarg *a = p;
    return store_service_index(a->name) > a->min;
}

static bool catalog_moved(void *p)
{
    struct waitarg *a = p;
    return (g_store.catalog_index ? g_store.catalog_index : 1) > a->min;
}

/* Lock held. Blocks when asked to, with Consul's wait rules: 0 or
 * negative means 5 minutes, capped at 10, plus jitter in [0, wait/16). */
static void block(const struct query *q, bool (*moved)(void *), struct waitarg *a)
{
    if (q->min_index == 0) return;
    int64_t wait = q->wait;
    if (wait > MAX_WAIT) wait = MAX_WAIT;
    else if (wait <= 0) wait = DEFAULT_WAIT;
    int64_t jitter =
        wait / 16 > 0
            ? (int64_t)(((double)random() / ((double)RAND_MAX + 1.0)) * (double)(wait / 16))
            : 0;
    a->min = q->min_index;
    store_wait(a->name, moved, a, now_mono() + wait + jitter);
}

struct tagcheck {
    const json_t *tags;
    bool ok;
};

static enum MHD_Result tag_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    struct tagcheck *t = cls;
    if (strcmp(key, "tag") != 0) return MHD_YES;
    size_t i;
    json_t *e;
    bool found = false;
    json_array_foreach(t->tags, i, e) if (strcasecmp(json_string_value(e), value ? value : "") == 0)
        found = true;
    if (!found) {
        t->ok = false;
        return MHD_NO;
    }
    return MHD_YES;
}

static bool tags_ok(struct req *r, const json_t *tags)
{
    struct tagcheck t = {tags, true};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, tag_cb, &t);
    return t.ok;
}

struct metacheck {
    bool ok;
};

static enum MHD_Result meta_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    struct metacheck *m = cls;
    if (strcmp(key, "node-meta") != 0 || !value) return MHD_YES;
    /* the node's only meta pair is consul-network-segment="" */
    const char *colon = strchr(value, ':');
    size_t kl = colon ? (size_t)(colon - value) : strlen(value);
    const char *v = colon ? colon + 1 : "";
    if (!(kl == strlen("consul-network-segment") &&
          strncmp(value, "consul-network-segment", kl) == 0 && !*v))
        m->ok = false;
    return MHD_YES;
}

static bool node_meta_ok(struct req *r)
{
    struct metacheck m = {true};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, meta_cb, &m);
    return m.ok;
}

static bool all_passing(const struct service *s)
{
    for (size_t i = 0; i < s->n_checks; i++)
        if (s->checks[i]->status != ST_PASSING) return false;
    return true;
}

static void set_meta(struct reply *rp, uint64_t index, const char *consistency)
{
    rp->blocking_headers = true;
    rp->index = index;
    rp->consistency = consistency;
}

static void health_service(struct req *r, struct reply *rp)
{
    struct query q;
    if (!parse_query(r, rp, &q)) return;
    const char *name = r->rest;
    if (!*name) {
        reply_text(rp, 400, "Missing service name");
        return;
    }
    bool passing = false;
    if (req_has_arg(r, "passing")) {
        const char *v = req_arg(r, "passing");
        if (v && *v && !go_parse_bool(v, &passing)) {
            reply_text(rp, 400, "Invalid value for ?passing");
            return;
        }
        if (!v || !*v) passing = true;
    }
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    bool meta_ok = node_meta_ok(r);
    pthread_mutex_lock(&g_store.mu);
    struct waitarg a = {name, 0};
    block(&q, svc_moved, &a);
    if (store_cut()) {
        pthread_mutex_unlock(&g_store.mu);
        rp->status = -1;
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < g_store.n_svcs && !filtered && meta_ok; i++) {
        struct service *s = g_store.svcs[i];
        if (strcasecmp(s->name, name) != 0) continue;
        if (!tags_ok(r, s->tags)) continue;
        if (passing && !all_passing(s)) continue;
        json_array_append_new(arr, render_health_entry(s));
    }
    uint64_t idx = store_service_index(name);
    pthread_mutex_unlock(&g_store.mu);
    if (filtered) reply_add_header(rp, "X-Consul-Results-Filtered-By-Acls", "true");
    if (req_has_arg(r, "cached")) reply_add_header(rp, "X-Cache", "MISS");
    reply_json(rp, r, 200, arr);
    set_meta(rp, idx, q.consistency);
}

static void catalog_service(struct req *r, struct reply *rp)
{
    struct query q;
    if (!parse_query(r, rp, &q)) return;
    const char *name = r->rest;
    if (!*name) {
        reply_text(rp, 400, "Missing service name");
        return;
    }
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    bool meta_ok = node_meta_ok(r);
    pthread_mutex_lock(&g_store.mu);
    struct waitarg a = {name, 0};
    block(&q, svc_moved, &a);
    if (store_cut()) {
        pthread_mutex_unlock(&g_store.mu);
        rp->status = -1;
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < g_store.n_svcs && !filtered && meta_ok; i++) {
        struct service *s = g_store.svcs[i];
        if (strcasecmp(s->name, name) != 0 || !tags_ok(r, s->tags)) continue;
        json_array_append_new(arr, render_catalog_entry(s));
    }
    uint64_t idx = store_service_index(name);
    pthread_mutex_unlock(&g_store.mu);
    if (filtered) reply_add_header(rp, "X-Consul-Results-Filtered-By-Acls", "true");
    reply_json(rp, r, 200, arr);
    set_meta(rp, idx, q.consistency);
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static void catalog_services(struct req *r, struct reply *rp)
{
    struct query q;
    if (!parse_query(r, rp, &q)) return;
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    bool meta_ok = node_meta_ok(r);
    pthread_mutex_lock(&g_store.mu);
    struct waitarg a = {NULL, 0};
    block(&q, catalog_moved, &a);
    if (store_cut()) {
        pthread_mutex_unlock(&g_store.mu);
        rp->status = -1;
        return;
    }
    json_t *tmp = json_object();
    for (size_t i = 0; i < g_store.n_svcs && !filtered && meta_ok; i++) {
        struct service *s = g_store.svcs[i];
        json_t *set = json_object_get(tmp, s->name);
        if (!set) {
            set = json_object();
            json_object_set_new(tmp, s->name, set);
        }
        size_t k;
        json_t *t;
        json_array_foreach(s->tags, k, t)
            json_object_set_new(set, json_string_value(t), json_true());
    }
    uint64_t idx = g_store.catalog_index ? g_store.catalog_index : 1;
    pthread_mutex_unlock(&g_store.mu);
    /* Go map order: names sorted; tags sorted too for stable answers */
    size_t n = json_object_size(tmp), i = 0;
    json_t **names = calloc(n ? n : 1, sizeof *names);
    const char *k;
    json_t *v;
    json_object_foreach(tmp, k, v) names[i++] = json_string(k);
    qsort(names, n, sizeof *names, cmp_json_str);
    json_t *out = json_object();
    for (i = 0; i < n; i++) {
        json_t *set = json_object_get(tmp, json_string_value(names[i]));
        size_t m = json_object_size(set), j = 0;
        json_t **tags = calloc(m ? m : 1, sizeof *tags);
        const char *tk;
        json_t *tv;
        json_object_foreach(set, tk, tv) tags[j++] = json_string(tk);
        qsort(tags, m, sizeof *tags, cmp_json_str);
        json_t *arr = json_array();
        for (j = 0; j < m; j++) json_array_append_new(arr, tags[j]);
        free(tags);
        json_object_set_new(out, json_string_value(names[i]), arr);
        json_decref(names[i]);
    }
    free(names);
    json_decref(tmp);
    if (filtered) reply_add_header(rp, "X-Consul-Results-Filtered-By-Acls", "true");
    reply_json(rp, r, 200, out);
    set_meta(rp, idx, q.consistency);
}

/* The checks table's index: the highest check write, or a deregistration
 * of any service (which deletes its checks). Lock held. */
static uint64_t checks_index(void)
{
    uint64_t idx =
        g_store.node_index > g_store.tomb_index ? g_store.node_index : g_store.tomb_index;
    for (size_t i = 0; i < g_store.n_svcs; i++)
        for (size_t k = 0; k < g_store.svcs[i]->n_checks; k++)
            if (g_store.svcs[i]->checks[k]->modify_index > idx)
                idx = g_store.svcs[i]->checks[k]->modify_index;
    return idx ? idx : 1;
}

static bool checks_moved(void *p)
{
    struct waitarg *a = p;
    return checks_index() > a->min;
}

/* Make a row copied under the store's lock its own: its strings in one
 * block that starts at r->id (one allocation, not one per string: the
 * copy of a large catalog's rows held writes and wake-ups back for most
 * of a millisecond), and its tags copied, as jansson's reference counts
 * are not safe to share between threads outside the lock (an empty array
 * renders the same as none). */
static void row_own(struct check_row *r)
{
    const char **f[] = {&r->id,         &r->name,         &r->notes, &r->output,
                        &r->service_id, &r->service_name, &r->type};
    enum {
        NF = sizeof f / sizeof f[0]
    };
    size_t len[NF], total = 0;
    for (size_t k = 0; k < NF; k++) total += (len[k] = strlen(*f[k])) + 1;
    char *b = malloc(total);
    for (size_t k = 0; k < NF; k++) {
        memcpy(b, *f[k], len[k] + 1);
        *f[k] = b;
        b += len[k] + 1;
    }
    r->tags = r->tags && json_array_size(r->tags) ? json_deep_copy(r->tags) : NULL;
}

/* GET /v1/health/state/:state: every check in that state (any: all),
 * node-level serfHealth included; blocking on the checks table. */
static void health_state(struct req *r, struct reply *rp)
{
    struct query q;
    if (!parse_query(r, rp, &q)) return;
    const char *state = r->rest;
    int want = -1;
    if (strcmp(state, "passing") == 0) want = ST_PASSING;
    else if (strcmp(state, "warning") == 0) want = ST_WARNING;
    else if (strcmp(state, "critical") == 0) want = ST_CRITICAL;
    else if (strcmp(state, "any") != 0) {
        reply_text(rp, 400, "Bad check state");
        return;
    }
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    pthread_mutex_lock(&g_store.mu);
    struct waitarg a = {NULL, 0};
    block(&q, checks_moved, &a);
    if (store_cut()) {
        pthread_mutex_unlock(&g_store.mu);
        rp->status = -1;
        return;
    }
    /* Copy the rows under the lock, render them after it: Consul's state
     * store serves reads from a snapshot that never holds writes back, and
     * rendering every check of a large catalog takes milliseconds. */
    json_t *serf = !filtered && (want < 0 || want == ST_PASSING) ? serf_check() : NULL;
    size_t n = 0, cap = 0;
    struct check_row *rows = NULL;
    for (size_t i = 0; i < g_store.n_svcs && !filtered; i++)
        for (size_t k = 0; k < g_store.svcs[i]->n_checks; k++) {
            const struct check *c = g_store.svcs[i]->checks[k];
            if (want >= 0 && (int)c->status != want) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                rows = realloc(rows, cap * sizeof *rows);
            }
            struct check_row *w = &rows[n++];
            check_row_of(g_store.svcs[i], c, true, w);
            row_own(w);
        }
    uint64_t idx = checks_index();
    pthread_mutex_unlock(&g_store.mu);
    struct text t = {0};
    text_add(&t, "[", 1);
    if (serf) {
        char *s = json_dumps(serf, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s) text_add(&t, s, strlen(s));
        else t.oom = true;
        free(s);
        json_decref(serf);
    }
    for (size_t i = 0; i < n; i++) {
        if (i || serf) text_add(&t, ",", 1);
        write_check_row(&t, &rows[i]);
        free((char *)rows[i].id); /* the block of the row's strings */
        json_decref(rows[i].tags);
    }
    free(rows);
    text_add(&t, "]", 1);
    if (filtered) reply_add_header(rp, "X-Consul-Results-Filtered-By-Acls", "true");
    if (t.oom) {
        text_free(&t);
        reply_text(rp, 500, "out of memory");
        return;
    }
    reply_json_text(rp, r, 200, t.p, t.len);
    set_meta(rp, idx, q.consistency);
}

void api_health(struct req *r, struct reply *rp, const char *route)
{
    if (reject_enterprise(r, rp)) return;
    if (strcmp(route, "/v1/health/service/") == 0) health_service(r, rp);
    else if (strcmp(route, "/v1/catalog/service/") == 0) catalog_service(r, rp);
    else if (strcmp(route, "/v1/catalog/services") == 0) catalog_services(r, rp);
    else if (strcmp(route, "/v1/health/state/") == 0) health_state(r, rp);
    else if (strcmp(route, "/v1/status/leader") == 0)
        reply_json(rp, r, 200, json_string("127.0.0.1:8300"));
}
