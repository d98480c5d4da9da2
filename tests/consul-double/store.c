/* SPDX-License-Identifier: MIT */
/* The catalog and the local agent's state, and Consul's index rules:
 * every indexed change takes the next raft index; each service name has
 * its own index; an unknown name answers with the index of the last
 * deregistration of any service. One mutex guards everything. Blocking
 * queries on a table (catalog/services, health/state) sleep on `changed`,
 * which every indexed change broadcasts; those on one service sleep on
 * their name's bucket, which a change of that service broadcasts, and a
 * deregistration (it moves every unknown name's index) all of them. */
#include "double.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct store g_store;

int64_t now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int64_t now_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static struct timespec abs_mono(int64_t deadline)
{
    struct timespec ts = {.tv_sec = deadline / NS_PER_S, .tv_nsec = deadline % NS_PER_S};
    return ts;
}

bool sleep_interruptible(int64_t ns)
{
    int64_t deadline = now_mono() + ns;
    pthread_mutex_lock(&g_store.mu);
    while (!g_store.stopping && !g_store.cutting && now_mono() < deadline) {
        struct timespec ts = abs_mono(deadline);
        pthread_cond_timedwait(&g_store.runners_cv, &g_store.mu, &ts);
    }
    bool stopped = g_store.stopping || g_store.cutting;
    pthread_mutex_unlock(&g_store.mu);
    return stopped;
}

const char *status_name(enum check_status s)
{
    switch (s) {
    case ST_PASSING: return "passing";
    case ST_WARNING: return "warning";
    case ST_CRITICAL: return "critical";
    }
    return "critical";
}

int status_parse(const char *s)
{
    if (!s) return -1;
    if (strcmp(s, "passing") == 0) return ST_PASSING;
    if (strcmp(s, "warning") == 0) return ST_WARNING;
    if (strcmp(s, "critical") == 0) return ST_CRITICAL;
    return -1;
}

static void cond_init_mono(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

static struct name_index *name_find(const char *name)
{
    for (size_t i = 0; i < g_store.n_names; i++)
        if (strcasecmp(g_store.names[i].name, name) == 0) return &g_store.names[i];
    return NULL;
}

/* Names match without regard to case, so their bucket does too. */
static pthread_cond_t *bucket(const char *name)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ (uint32_t)tolower(*p)) * 16777619u;
    return &g_store.svc_changed[h % WAKE_BUCKETS];
}

static void wake_every_service(void)
{
    for (int i = 0; i < WAKE_BUCKETS; i++) pthread_cond_broadcast(&g_store.svc_changed[i]);
}

uint64_t store_bump(const char *service_name)
{
    uint64_t idx = ++g_store.index;
    if (service_name) {
        struct name_index *n = name_find(service_name);
        if (!n) {
            g_store.names = realloc(g_store.names, (g_store.n_names + 1) * sizeof *g_store.names);
            n = &g_store.names[g_store.n_names++];
            n->name = strdup(service_name);
        }
        n->index = idx;
        pthread_cond_broadcast(bucket(service_name));
    } else {
        wake_every_service();
    }
    pthread_cond_broadcast(&g_store.changed);
    return idx;
}

uint64_t store_service_index(const char *name)
{
    struct name_index *n = name_find(name);
    uint64_t idx = n ? n->index : g_store.tomb_index;
    return idx ? idx : 1;
}

struct service *store_find(const char *id)
{
    for (size_t i = 0; i < g_store.n_svcs; i++)
        if (strcmp(g_store.svcs[i]->id, id) == 0) return g_store.svcs[i];
    return NULL;
}

void check_def_clear(struct check_def *d)
{
    free(d->id);
    free(d->name);
    free(d->notes);
    free(d->http);
    free(d->method);
    free(d->body);
    free(d->tcp);
    free(d->tls_server_name);
    json_decref(d->header);
    memset(d, 0, sizeof *d);
}

void check_unref(struct check *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    check_def_clear(&c->def);
    free(c->service_id);
    free(c->service_name);
    free(c->output);
    free(c->synced_output);
    free(c->ttl_last_output);
    free(c);
}

/* Lock held. Status changes are indexed (the agent syncs them at once);
 * an output-only change stays in the agent's view, as Consul defers those
 * syncs by check_update_interval (5 minutes). */
/* A copy of `s` that is valid UTF-8 without NULs (invalid bytes become
 * U+FFFD, as Go's JSON encoder writes them), so jansson accepts it. */
char *utf8_clean(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1), *w = out;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t len = *p < 0x80         ? 1
                     : (*p >> 5) == 6  ? 2
                     : (*p >> 4) == 14 ? 3
                     : (*p >> 3) == 30 ? 4
                                       : 0;
        bool ok = len > 0;
        for (size_t i = 1; ok && i < len; i++)
            if ((p[i] & 0xC0) != 0x80) ok = false;
        if (ok && len == 2 && *p < 0xC2) ok = false;
        if (ok && len == 3) {
            unsigned cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
            if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
        }
        if (ok && len == 4) {
            unsigned cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
                          (p[3] & 0x3Fu);
            if (cp < 0x10000 || cp > 0x10FFFF) ok = false;
        }
        if (ok) {
            memcpy(w, p, len);
            w += len;
            p += len;
        } else {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            p++;
        }
    }
    *w = '\0';
    return out;
}

void check_set_status(struct check *c, enum check_status st, const char *raw)
{
    char *clean = utf8_clean(raw ? raw : "");
    const char *output = clean;
    if (strcmp(c->output, output) != 0) {
        free(c->output);
        c->output = strdup(output);
    }
    if (c->status == st) {
        free(clean);
        return;
    }
    c->status = st;
    free(c->synced_output);
    c->synced_output = strdup(output);
    c->critical_since = st == ST_CRITICAL ? now_mono() : 0;
    c->modify_index = store_bump(c->service_name);
    pthread_cond_broadcast(&g_store.tick);
    free(clean);
}

static void service_free(struct service *s)
{
    for (size_t i = 0; i < s->n_checks; i++) {
        struct check *c = s->checks[i];
        c->removed = true;
        atomic_store(&c->cancel, 1);
        check_unref(c);
    }
    free(s->checks);
    free(s->id);
    free(s->name);
    free(s->address);
    free(s->fingerprint);
    json_decref(s->tags);
    json_decref(s->meta);
    json_decref(s->tagged);
    free(s);
}

void store_remove_service(size_t i)
{
    struct service *s = g_store.svcs[i];
    char *name = strdup(s->name);
    memmove(&g_store.svcs[i], &g_store.svcs[i + 1],
            (g_store.n_svcs - i - 1) * sizeof *g_store.svcs);
    g_store.n_svcs--;
    service_free(s);
    pthread_cond_broadcast(&g_store.runners_cv);
    uint64_t idx = store_bump(name);
    g_store.catalog_index = idx;
    g_store.tomb_index = idx;
    wake_every_service(); /* the index of every unknown name moved */
    bool left = false;
    for (size_t k = 0; k < g_store.n_svcs; k++)
        if (strcasecmp(g_store.svcs[k]->name, name) == 0) left = true;
    if (!left) {
        struct name_index *n = name_find(name);
        if (n) {
            free(n->name);
            *n = g_store.names[--g_store.n_names];
        }
    }
    free(name);
}

bool store_cut(void) { return g_store.stopping || g_store.cutting; }

void store_wake_all(void)
{
    g_store.generation++;
    pthread_cond_broadcast(&g_store.changed);
    wake_every_service();
    pthread_cond_broadcast(&g_store.tick);
    pthread_cond_broadcast(&g_store.runners_cv);
}

void store_wait(const char *service, bool (*done)(void *), void *arg, int64_t deadline)
{
    pthread_cond_t *cv = service ? bucket(service) : &g_store.changed;
    uint64_t gen = g_store.generation;
    g_store.active_blocking++;
    while (!store_cut() && gen == g_store.generation && !done(arg)) {
        if (now_mono() >= deadline) break;
        struct timespec ts = abs_mono(deadline);
        pthread_cond_timedwait(cv, &g_store.mu, &ts);
    }
    g_store.active_blocking--;
}

static void add_consul_service(void)
{
    if (g_store.cfg->no_consul_service) return;
    struct service *s = calloc(1, sizeof *s);
    s->id = strdup("consul");
    s->name = strdup("consul");
    s->address = strdup("");
    s->tags = json_array();
    s->meta = json_pack("{s:s,s:s}", "non_voter", "false", "raft_version", "3");
    s->port = 8300;
    s->w_passing = 1;
    s->w_warning = 1;
    s->catalog_only = true;
    s->create_index = s->modify_index = store_bump("consul");
    g_store.catalog_index = s->create_index;
    g_store.svcs = realloc(g_store.svcs, (g_store.n_svcs + 1) * sizeof *g_store.svcs);
    g_store.svcs[g_store.n_svcs++] = s;
}

static void fresh_state(void)
{
    g_store.index = 0;
    g_store.node_index = store_bump(NULL); /* the node and serfHealth: 1 */
    g_store.tomb_index = 1;
    g_store.catalog_index = 1;
    add_consul_service();
}

void store_init(const struct config *cfg)
{
    memset(&g_store, 0, sizeof g_store);
    g_store.cfg = cfg;
    pthread_mutex_init(&g_store.mu, NULL);
    cond_init_mono(&g_store.changed);
    for (int i = 0; i < WAKE_BUCKETS; i++) cond_init_mono(&g_store.svc_changed[i]);
    cond_init_mono(&g_store.tick);
    cond_init_mono(&g_store.runners_cv);
    fresh_state();
}

static void drop_everything(void)
{
    while (g_store.n_svcs) {
        struct service *s = g_store.svcs[--g_store.n_svcs];
        service_free(s);
    }
    for (size_t i = 0; i < g_store.n_names; i++) free(g_store.names[i].name);
    g_store.n_names = 0;
    pthread_cond_broadcast(&g_store.runners_cv);
}

void store_stop(void)
{
    pthread_mutex_lock(&g_store.mu);
    g_store.stopping = true;
    for (size_t i = 0; i < g_store.n_svcs; i++)
        for (size_t k = 0; k < g_store.svcs[i]->n_checks; k++)
            atomic_store(&g_store.svcs[i]->checks[k]->cancel, 1);
    store_wake_all();
    pthread_mutex_unlock(&g_store.mu);
}

void store_free(void)
{
    drop_everything();
    free(g_store.svcs);
    free(g_store.names);
    g_store.svcs = NULL;
    g_store.names = NULL;
    pthread_cond_destroy(&g_store.changed);
    for (int i = 0; i < WAKE_BUCKETS; i++) pthread_cond_destroy(&g_store.svc_changed[i]);
    pthread_cond_destroy(&g_store.tick);
    pthread_cond_destroy(&g_store.runners_cv);
    pthread_mutex_destroy(&g_store.mu);
}

/* A dev agent restarted: nothing kept, the index starts again near 1. */
void store_reset_dev(void)
{
    drop_everything();
    fresh_state();
    store_wake_all();
}

static char *dupstr(const char *s) { return s ? strdup(s) : NULL; }

static struct check *check_clone(const struct check *o)
{
    struct check *c = calloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    atomic_init(&c->cancel, 0);
    c->def = o->def;
    c->def.id = dupstr(o->def.id);
    c->def.name = dupstr(o->def.name);
    c->def.notes = dupstr(o->def.notes);
    c->def.http = dupstr(o->def.http);
    c->def.method = dupstr(o->def.method);
    c->def.body = dupstr(o->def.body);
    c->def.tcp = dupstr(o->def.tcp);
    c->def.tls_server_name = dupstr(o->def.tls_server_name);
    c->def.header = o->def.header ? json_deep_copy(o->def.header) : NULL;
    c->service_id = strdup(o->service_id);
    c->service_name = strdup(o->service_name);
    c->status = o->status;
    c->output = strdup(o->output);
    c->synced_output = strdup(o->synced_output);
    c->ttl_last_output = dupstr(o->ttl_last_output);
    c->create_index = o->create_index;
    c->modify_index = o->modify_index;
    c->critical_since = o->critical_since;
    c->successes = o->def.success_before_passing;
    c->failures = o->def.failures_before_critical;
    return c;
}

/* A normal agent restarted: services and checks restored from its data
 * directory; TTL checks keep their state (timer restarted), the others
 * start critical again; the servers' index goes on. */
void store_reset_normal(void)
{
    int64_t now = now_mono();
    for (size_t i = 0; i < g_store.n_svcs; i++) {
        struct service *s = g_store.svcs[i];
        for (size_t k = 0; k < s->n_checks; k++) {
            struct check *old = s->checks[k];
            struct check *c = check_clone(old);
            old->removed = true;
            atomic_store(&old->cancel, 1);
            check_unref(old);
            s->checks[k] = c;
            if (c->def.kind == CK_TTL) {
                c->ttl_deadline = now + c->def.ttl;
            } else if (c->def.kind != CK_MAINT && c->status != ST_CRITICAL) {
                c->status = ST_CRITICAL;
                free(c->output);
                c->output = strdup("");
                free(c->synced_output);
                c->synced_output = strdup("");
                c->critical_since = now;
            }
            checks_attach(c, true);
        }
        if (!s->catalog_only) {
            uint64_t idx = store_bump(s->name);
            for (size_t k = 0; k < s->n_checks; k++) s->checks[k]->modify_index = idx;
        }
    }
    store_wake_all();
}

/* A snapshot restore (or some upgrades): the index goes backwards while
 * the data stays. */
void store_index_reset(void)
{
    g_store.index = 1;
    g_store.node_index = g_store.tomb_index = g_store.catalog_index = 1;
    for (size_t i = 0; i < g_store.n_names; i++) g_store.names[i].index = 1;
    for (size_t i = 0; i < g_store.n_svcs; i++) {
        struct service *s = g_store.svcs[i];
        s->create_index = s->modify_index = 1;
        for (size_t k = 0; k < s->n_checks; k++)
            s->checks[k]->create_index = s->checks[k]->modify_index = 1;
    }
    store_wake_all();
}
