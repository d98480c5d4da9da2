/* SPDX-License-Identifier: MIT */
/* The local agent's endpoints: register, deregister, services, checks,
 * per-service health, TTL updates and maintenance mode. */
#include "double.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OUTPUT_MAX 4096
#define MAINT_PREFIX "_service_maintenance:"

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

static const char *meta_pair_err(const char *k, const char *v)
{
    if (!*k) return "Key cannot be blank";
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return "Key contains invalid characters";
    if (strlen(k) > 128) return "Key is too long (limit: 128 characters)";
    if (strncmp(k, "consul-", 7) == 0) return "Key prefix 'consul-' is reserved for internal use";
    if (strlen(v) > 512) return "Value is too long (limit: 512 characters)";
    return NULL;
}

static bool validate_meta(struct reply *rp, json_t *meta)
{
    if (!meta) return true;
    if (json_object_size(meta) > 64) {
        reply_text(
            rp, 400,
            "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        const char *e = meta_pair_err(k, json_string_value(v));
        if (e) {
            reply_text(rp, 400,
                       "Invalid Service Meta: Couldn't load metadata pair ('%s', '%s'): %s", k,
                       json_string_value(v), e);
            return false;
        }
    }
    return true;
}

static bool validate_tagged(struct reply *rp, json_t *tagged)
{
    const char *name;
    json_t *a;
    json_object_foreach(tagged, name, a)
    {
        const char *addr = json_string_value(json_object_get(a, "Address"));
        unsigned char buf[16];
        bool v4 = strcmp(name, "lan_ipv4") == 0 || strcmp(name, "wan_ipv4") == 0;
        bool v6 = strcmp(name, "lan_ipv6") == 0 || strcmp(name, "wan_ipv6") == 0;
        if ((v4 && inet_pton(AF_INET, addr, buf) != 1) ||
            (v6 && inet_pton(AF_INET6, addr, buf) != 1)) {
            reply_text(rp, 400, "Service tagged address %s must be a valid %s address", name,
                       v4 ? "ipv4" : "ipv6");
            return false;
        }
    }
    return true;
}

static char *check_fingerprint(const struct check_def *d)
{
    char *h = d->header ? json_dumps(d->header, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *s = NULL;
    if (asprintf(&s, "%s|%s|%s|%s|%s|%s|%s|%s|%s|%d%d|%lld|%lld|%lld|%lld|%d|%d|%d", d->id, d->name,
                 d->notes ? d->notes : "", d->type, d->http ? d->http : "",
                 d->method ? d->method : "", d->body ? d->body : "", d->tcp ? d->tcp : "",
                 h ? h : "", d->tls_skip_verify, d->disable_redirects, (long long)d->interval,
                 (long long)d->timeout, (long long)d->ttl, (long long)d->dereg_after,
                 d->success_before_passing, d->failures_before_warning,
                 d->failures_before_critical) < 0)
        s = NULL;
    free(h);
    return s;
}

static struct check *check_new(struct check_def *def, struct service *s)
{
    struct check *c = calloc(1, sizeof *c);
    atomic_init(&c->refs, 1);
    atomic_init(&c->cancel, 0);
    c->def = *def;
    memset(def, 0, sizeof *def);
    c->service_id = strdup(s->id);
    c->service_name = strdup(s->name);
    c->status = c->def.status >= 0 ? (enum check_status)c->def.status : ST_CRITICAL;
    c->output = strdup("");
    c->synced_output = strdup("");
    if (c->def.failures_before_warning == 0)
        c->def.failures_before_warning = c->def.failures_before_critical;
    /* the first result after registration applies at once */
    c->successes = c->def.success_before_passing;
    c->failures = c->def.failures_before_critical;
    if (c->status == ST_CRITICAL) c->critical_since = now_mono();
    return c;
}

static struct check *take_check(struct check **list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(list[i]->def.id, id) == 0) {
            struct check *c = list[i];
            list[i] = NULL;
            return c;
        }
    return NULL;
}

static void check_drop(struct check *c)
{
    c->removed = true;
    atomic_store(&c->cancel, 1);
    check_unref(c);
}

static bool is_any_addr(const char *a)
{
    return a && (strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0 || strcmp(a, "[::]") == 0);
}

static void do_register(struct req *r, struct reply *rp)
{
    struct svc_def d;
    char *err = NULL;
    int rc = decode_service(r->body, r->body_len, &d, &err);
    if (rc < 0) {
        reply_text(rp, 400, "%s", err);
        free(err);
        return;
    }
    if (!d.name || !*d.name) {
        reply_text(rp, 400, "Missing service name");
        goto out;
    }
    if (is_any_addr(d.address)) {
        reply_text(rp, 400, "Invalid service address");
        goto out;
    }
    if (d.has_weights) {
        const char *we = NULL;
        if (d.w_passing < 1) we = "Passing must be greater than 0";
        else if (d.w_warning < 0) we = "Warning must be greater or equal than 0";
        else if (d.w_passing > 65535 || d.w_warning > 65535)
            we = "Passing or Warning must be less or equal than 65535";
        if (we) {
            reply_text(rp, 400, "Invalid Weights: %s", we);
            goto out;
        }
    }
    if (!validate_meta(rp, d.meta)) goto out;
    if (d.tagged && !validate_tagged(rp, d.tagged)) goto out;
    if (rc == 1) {
        reply_text(rp, 400, "%s", err);
        goto out;
    }
    if (!d.id || !*d.id) {
        free(d.id);
        d.id = strdup(d.name);
    }
    if (!acl_write(r, rp, "service:write", d.name)) goto out;

    const char *rep = req_arg(r, "replace-existing-checks");
    bool replace = req_has_arg(r, "replace-existing-checks") &&
                   (!rep || !*rep || strcasecmp(rep, "true") == 0);

    struct service *s = calloc(1, sizeof *s);
    s->id = d.id;
    d.id = NULL;
    s->name = d.name;
    d.name = NULL;
    s->address = d.address ? d.address : strdup("");
    d.address = NULL;
    s->tags = d.tags ? d.tags : json_array();
    d.tags = NULL;
    s->meta = d.meta;
    d.meta = NULL;
    s->tagged = d.tagged;
    d.tagged = NULL;
    s->port = d.port;
    s->w_passing = d.has_weights ? d.w_passing : 1;
    s->w_warning = d.has_weights ? d.w_warning : 1;
    s->enable_tag_override = d.enable_tag_override;
    json_t *fp = render_agent_service(s);
    json_object_del(fp, "Datacenter");
    s->fingerprint = json_dumps(fp, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(fp);

    pthread_mutex_lock(&g_store.mu);
    size_t at = g_store.n_svcs;
    for (size_t i = 0; i < g_store.n_svcs; i++)
        if (strcmp(g_store.svcs[i]->id, s->id) == 0) at = i;
    struct service *old = at < g_store.n_svcs ? g_store.svcs[at] : NULL;
    struct check **prev = old ? old->checks : NULL;
    size_t n_prev = old ? old->n_checks : 0;
    if (old) {
        old->checks = NULL;
        old->n_checks = 0;
    }
    bool svc_changed =
        !old || strcmp(old->fingerprint, s->fingerprint) != 0 || strcmp(old->name, s->name) != 0;
    bool changed = svc_changed;
    bool renamed = old && strcmp(old->name, s->name) != 0;

    struct check **fresh = calloc(d.n_checks ? d.n_checks : 1, sizeof *fresh);
    s->checks = calloc(d.n_checks + n_prev + 1, sizeof *s->checks);
    for (size_t i = 0; i < d.n_checks; i++) {
        struct check_def *cd = &d.checks[i];
        if (!cd->id || !*cd->id) {
            free(cd->id);
            cd->id = NULL;
            if (d.n_checks > 1) (void)!asprintf(&cd->id, "service:%s:%zu", s->id, i + 1);
            else (void)!asprintf(&cd->id, "service:%s", s->id);
        }
        if (!cd->name || !*cd->name) {
            free(cd->name);
            (void)!asprintf(&cd->name, "Service '%s' check", s->name);
        }
        if ((cd->kind == CK_HTTP || cd->kind == CK_TCP) &&
            cd->interval < g_store.cfg->min_interval_ns)
            cd->interval = g_store.cfg->min_interval_ns;
        struct check *was = take_check(prev, n_prev, cd->id);
        char *fp_new = check_fingerprint(cd);
        char *fp_old = was ? check_fingerprint(&was->def) : NULL;
        if (!was || !fp_old || strcmp(fp_new, fp_old) != 0) changed = true;
        free(fp_new);
        free(fp_old);
        struct check *c = check_new(cd, s);
        if (was) {
            /* an existing check keeps its status and output */
            c->status = was->status;
            free(c->output);
            c->output = xstrdup(was->output);
            free(c->synced_output);
            c->synced_output = xstrdup(was->synced_output);
            c->ttl_last_output = was->ttl_last_output ? strdup(was->ttl_last_output) : NULL;
            c->critical_since = was->critical_since;
            c->create_index = was->create_index;
            c->modify_index = was->modify_index;
            check_drop(was);
        }
        s->checks[s->n_checks++] = c;
        fresh[i] = c;
    }
    for (size_t i = 0; i < n_prev; i++) {
        if (!prev[i]) continue;
        if (replace || renamed) {
            check_drop(prev[i]);
            changed = true;
            continue;
        }
        /* unlisted checks survive a re-registration */
        free(prev[i]->service_name);
        prev[i]->service_name = strdup(s->name);
        s->checks[s->n_checks++] = prev[i];
    }
    free(prev);

    if (old) {
        s->create_index = old->create_index;
        s->modify_index = old->modify_index;
        if (renamed) {
            g_store.svcs[at] = s; /* placeholder: remove the old name */
            char *oname = strdup(old->name);
            store_bump(oname);
            g_store.tomb_index = g_store.index;
            bool left = false;
            for (size_t k = 0; k < g_store.n_svcs; k++)
                if (k != at && strcasecmp(g_store.svcs[k]->name, oname) == 0) left = true;
            if (!left) {
                for (size_t k = 0; k < g_store.n_names; k++)
                    if (strcasecmp(g_store.names[k].name, oname) == 0) {
                        free(g_store.names[k].name);
                        g_store.names[k] = g_store.names[--g_store.n_names];
                        break;
                    }
            }
            free(oname);
        }
        /* free the old shell (its checks were taken over) */
        free(old->id);
        free(old->name);
        free(old->address);
        free(old->fingerprint);
        json_decref(old->tags);
        json_decref(old->meta);
        json_decref(old->tagged);
        free(old->checks);
        free(old);
        g_store.svcs[at] = s;
    } else {
        g_store.svcs = realloc(g_store.svcs, (g_store.n_svcs + 1) * sizeof *g_store.svcs);
        g_store.svcs[g_store.n_svcs++] = s;
    }
    if (changed) {
        uint64_t idx = store_bump(s->name);
        if (!old) s->create_index = idx;
        if (svc_changed) g_store.catalog_index = idx;
        s->modify_index = idx;
        for (size_t i = 0; i < s->n_checks; i++) {
            struct check *c = s->checks[i];
            if (!c->create_index) c->create_index = idx;
            c->modify_index = idx;
        }
    }
    for (size_t i = 0; i < d.n_checks; i++) checks_attach(fresh[i], true);
    pthread_cond_broadcast(&g_store.runners_cv);
    pthread_mutex_unlock(&g_store.mu);
    free(fresh);
    rp->status = 200;
out:
    free(err);
    svc_def_clear(&d);
}

static void do_deregister(struct req *r, struct reply *rp)
{
    const char *id = r->rest;
    enum acl_who who = acl_resolve(r);
    if (who == ACL_UNKNOWN) {
        reply_text(rp, 403, "ACL not found");
        return;
    }
    pthread_mutex_lock(&g_store.mu);
    size_t at = g_store.n_svcs;
    for (size_t i = 0; i < g_store.n_svcs; i++)
        if (!g_store.svcs[i]->catalog_only && strcmp(g_store.svcs[i]->id, id) == 0) at = i;
    if (at == g_store.n_svcs) {
        pthread_mutex_unlock(&g_store.mu);
        reply_text(rp, 404,
                   "Unknown service ID \"%s\". Ensure that the service ID is passed, not the "
                   "service name.",
                   id);
        return;
    }
    if (!acl_write(r, rp, "service:write", g_store.svcs[at]->name)) {
        pthread_mutex_unlock(&g_store.mu);
        return;
    }
    store_remove_service(at);
    pthread_mutex_unlock(&g_store.mu);
    rp->status = 200;
}

static struct check *find_check(const char *id)
{
    for (size_t i = 0; i < g_store.n_svcs; i++)
        for (size_t k = 0; k < g_store.svcs[i]->n_checks; k++)
            if (strcmp(g_store.svcs[i]->checks[k]->def.id, id) == 0)
                return g_store.svcs[i]->checks[k];
    return NULL;
}

static void ttl_update(struct req *r, struct reply *rp, const char *id, int st, const char *out)
{
    enum acl_who who = acl_resolve(r);
    if (who == ACL_UNKNOWN) {
        reply_text(rp, 403, "ACL not found");
        return;
    }
    pthread_mutex_lock(&g_store.mu);
    struct check *c = find_check(id);
    if (!c) {
        pthread_mutex_unlock(&g_store.mu);
        reply_text(
            rp, 404,
            "Unknown check ID \"%s\". Ensure that the check ID is passed, not the check name.", id);
        return;
    }
    if (!acl_write(r, rp, "service:write", c->service_name)) {
        pthread_mutex_unlock(&g_store.mu);
        return;
    }
    if (c->def.kind != CK_TTL) {
        pthread_mutex_unlock(&g_store.mu);
        reply_text(rp, 500, "CheckID \"%s\" does not have associated TTL", id);
        return;
    }
    char *o = NULL;
    size_t len = strlen(out);
    if (len > OUTPUT_MAX)
        (void)!asprintf(&o, "%.*s ... (captured %d of %zu bytes)", OUTPUT_MAX, out, OUTPUT_MAX,
                        len);
    else o = strdup(out);
    free(c->ttl_last_output);
    c->ttl_last_output = utf8_clean(o);
    check_set_status(c, (enum check_status)st, o);
    c->ttl_deadline = now_mono() + c->def.ttl;
    checks_ttl_touch();
    pthread_mutex_unlock(&g_store.mu);
    free(o);
    rp->status = 200;
}

static void do_check_update(struct req *r, struct reply *rp)
{
    char *status = NULL, *output = NULL, *err = NULL;
    if (decode_check_update(r->body, r->body_len, &status, &output, &err) != 0) {
        reply_text(rp, 400, "%s", err);
    } else {
        int st = status_parse(status);
        if (st < 0) reply_text(rp, 400, "Invalid check status: '%s'", status ? status : "");
        else ttl_update(r, rp, r->rest, st, output ? output : "");
    }
    free(status);
    free(output);
    free(err);
}

static const char *aggregated(const struct service *s, int *code)
{
    int worst = ST_PASSING;
    for (size_t i = 0; i < s->n_checks; i++) {
        if (s->checks[i]->def.kind == CK_MAINT) {
            *code = 503;
            return "maintenance";
        }
        if ((int)s->checks[i]->status > worst) worst = (int)s->checks[i]->status;
    }
    *code = worst == ST_PASSING ? 200 : worst == ST_WARNING ? 429 : 503;
    return status_name((enum check_status)worst);
}

static void do_health_by_id(struct req *r, struct reply *rp)
{
    const char *id = r->rest;
    bool text = req_arg(r, "format") && strcmp(req_arg(r, "format"), "text") == 0;
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    pthread_mutex_lock(&g_store.mu);
    struct service *s = store_find(id);
    if (s && s->catalog_only) s = NULL;
    if (s && filtered) {
        pthread_mutex_unlock(&g_store.mu);
        reply_text(rp, 403,
                   "Permission denied: anonymous token lacks permission 'service:read' on \"%s\"",
                   s->name);
        return;
    }
    if (!s) {
        pthread_mutex_unlock(&g_store.mu);
        if (text) reply_text(rp, 404, "ServiceId %s not found", id);
        else
            reply_json(
                rp, r, 404,
                json_pack("{s:s,s:n,s:n}", "AggregatedStatus", "critical", "Service", "Checks"));
        return;
    }
    int code;
    const char *agg = aggregated(s, &code);
    if (text) {
        reply_text(rp, code, "%s", agg);
    } else {
        json_t *checks = json_array();
        for (size_t i = 0; i < s->n_checks; i++)
            json_array_append_new(checks, render_check(s, s->checks[i], false));
        reply_json(rp, r, code,
                   json_pack("{s:s,s:o,s:o}", "AggregatedStatus", agg, "Service",
                             render_agent_service(s), "Checks", checks));
    }
    pthread_mutex_unlock(&g_store.mu);
}

static void do_maintenance(struct req *r, struct reply *rp)
{
    const char *id = r->rest;
    if (!*id) {
        reply_text(rp, 400, "Missing service ID");
        return;
    }
    const char *en = req_arg(r, "enable");
    if (!en || !*en) {
        reply_text(rp, 400, "Missing value for enable");
        return;
    }
    bool enable;
    if (!go_parse_bool(en, &enable)) {
        reply_text(rp, 400, "Invalid value for enable: \"%s\"", en);
        return;
    }
    enum acl_who who = acl_resolve(r);
    if (who == ACL_UNKNOWN) {
        reply_text(rp, 403, "ACL not found");
        return;
    }
    pthread_mutex_lock(&g_store.mu);
    struct service *s = store_find(id);
    if (!s || s->catalog_only) {
        pthread_mutex_unlock(&g_store.mu);
        reply_text(rp, 404, "No service registered with ID \"%s\"", id);
        return;
    }
    if (!acl_write(r, rp, "service:write", s->name)) {
        pthread_mutex_unlock(&g_store.mu);
        return;
    }
    char *cid = NULL;
    (void)!asprintf(&cid, MAINT_PREFIX "%s", id);
    size_t at = s->n_checks;
    for (size_t i = 0; i < s->n_checks; i++)
        if (strcmp(s->checks[i]->def.id, cid) == 0) at = i;
    if (enable && at == s->n_checks) {
        const char *reason = req_arg(r, "reason");
        struct check_def d = {0};
        d.id = cid;
        cid = NULL;
        d.name = strdup("Service Maintenance Mode");
        d.notes = utf8_clean(reason && *reason
                                 ? reason
                                 : "Maintenance mode is enabled for this service, but no reason "
                                   "was provided. This is a result of the 'consul maint' command.");
        d.kind = CK_MAINT;
        d.type = "maintenance";
        d.status = ST_CRITICAL;
        struct check *c = check_new(&d, s);
        s->checks = realloc(s->checks, (s->n_checks + 1) * sizeof *s->checks);
        s->checks[s->n_checks++] = c;
        c->create_index = c->modify_index = store_bump(s->name);
    } else if (!enable && at < s->n_checks) {
        check_drop(s->checks[at]);
        memmove(&s->checks[at], &s->checks[at + 1], (s->n_checks - at - 1) * sizeof *s->checks);
        s->n_checks--;
        store_bump(s->name);
    }
    pthread_mutex_unlock(&g_store.mu);
    free(cid);
    rp->status = 200;
}

static void do_services(struct req *r, struct reply *rp)
{
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    json_t *o = json_object();
    pthread_mutex_lock(&g_store.mu);
    for (size_t i = 0; i < g_store.n_svcs && !filtered; i++)
        if (!g_store.svcs[i]->catalog_only)
            json_object_set_new(o, g_store.svcs[i]->id, render_agent_service(g_store.svcs[i]));
    pthread_mutex_unlock(&g_store.mu);
    if (filtered) reply_add_header(rp, "X-Consul-Results-Filtered-By-Acls", "true");
    reply_json(rp, r, 200, o);
}

static void do_checks(struct req *r, struct reply *rp)
{
    bool filtered;
    if (!acl_read(r, rp, &filtered)) return;
    json_t *o = json_object();
    pthread_mutex_lock(&g_store.mu);
    for (size_t i = 0; i < g_store.n_svcs && !filtered; i++)
        for (size_t k = 0; k < g_store.svcs[i]->n_checks; k++)
            json_object_set_new(o, g_store.svcs[i]->checks[k]->def.id,
                                render_check(g_store.svcs[i], g_store.svcs[i]->checks[k], false));
    pthread_mutex_unlock(&g_store.mu);
    if (filtered) reply_add_header(rp, "X-Consul-Results-Filtered-By-Acls", "true");
    reply_json(rp, r, 200, o);
}

void api_agent(struct req *r, struct reply *rp, const char *route)
{
    if (reject_enterprise(r, rp)) return;
    if (strcmp(route, "/v1/agent/service/register") == 0) do_register(r, rp);
    else if (strcmp(route, "/v1/agent/service/deregister/") == 0) do_deregister(r, rp);
    else if (strcmp(route, "/v1/agent/service/maintenance/") == 0) do_maintenance(r, rp);
    else if (strcmp(route, "/v1/agent/check/pass/") == 0)
        ttl_update(r, rp, r->rest, ST_PASSING, req_arg(r, "note") ? req_arg(r, "note") : "");
    else if (strcmp(route, "/v1/agent/check/warn/") == 0)
        ttl_update(r, rp, r->rest, ST_WARNING, req_arg(r, "note") ? req_arg(r, "note") : "");
    else if (strcmp(route, "/v1/agent/check/fail/") == 0)
        ttl_update(r, rp, r->rest, ST_CRITICAL, req_arg(r, "note") ? req_arg(r, "note") : "");
    else if (strcmp(route, "/v1/agent/check/update/") == 0) do_check_update(r, rp);
    else if (strcmp(route, "/v1/agent/services") == 0) do_services(r, rp);
    else if (strcmp(route, "/v1/agent/checks") == 0) do_checks(r, rp);
    else if (strcmp(route, "/v1/agent/health/service/id/") == 0) do_health_by_id(r, rp);
}
