/* SPDX-License-Identifier: MIT */
/* JSON shapes of Consul's answers (field order as Consul sends them; Go
 * maps come out with sorted keys). Called with the store lock held. */
#include "double.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of object `o` with its keys sorted, like a Go map. */
static json_t *sorted(json_t *o)
{
    size_t n = json_object_size(o), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    json_t *out = json_object();
    for (i = 0; i < n; i++) json_object_set(out, keys[i], json_object_get(o, keys[i]));
    free(keys);
    return out;
}

/* The service's tagged addresses: the registered ones plus, for an IP
 * literal address, lan_/wan_ipv4 or lan_/wan_ipv6 (the agent adds them). */
static json_t *svc_tagged(const struct service *s)
{
    json_t *t = s->tagged ? json_copy(s->tagged) : json_object();
    unsigned char buf[16];
    const char *fam[2] = {NULL, NULL};
    if (s->address && *s->address) {
        if (inet_pton(AF_INET, s->address, buf) == 1) {
            fam[0] = "lan_ipv4";
            fam[1] = "wan_ipv4";
        } else if (inet_pton(AF_INET6, s->address, buf) == 1) {
            fam[0] = "lan_ipv6";
            fam[1] = "wan_ipv6";
        }
    }
    for (int i = 0; i < 2 && fam[0]; i++)
        if (!json_object_get(t, fam[i]))
            json_object_set_new(t, fam[i],
                                json_pack("{s:s,s:i}", "Address", s->address, "Port", s->port));
    json_t *out = sorted(t);
    json_decref(t);
    return out;
}

static json_t *weights(const struct service *s)
{
    return json_pack("{s:i,s:i}", "Passing", s->w_passing, "Warning", s->w_warning);
}

static json_t *proxy(void)
{
    return json_pack("{s:s,s:{},s:{}}", "Mode", "", "MeshGateway", "Expose");
}

json_t *render_node(void)
{
    const struct config *c = g_store.cfg;
    json_t *n =
        json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s},s:{s:s},s:I,s:I}", "ID", c->node_id, "Node",
                  c->node, "Address", "127.0.0.1", "Datacenter", c->dc, "TaggedAddresses", "lan",
                  "127.0.0.1", "lan_ipv4", "127.0.0.1", "wan", "127.0.0.1", "wan_ipv4", "127.0.0.1",
                  "Meta", "consul-network-segment", "", "CreateIndex",
                  (json_int_t)g_store.node_index, "ModifyIndex", (json_int_t)g_store.node_index);
    json_t *meta = n ? json_object_get(n, "Meta") : NULL;
    for (size_t i = 0; meta && i < c->n_node_meta; i++)
        json_object_set_new(meta, c->node_meta[2 * i], json_string(c->node_meta[2 * i + 1]));
    return n;
}

json_t *serf_check(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:[],s:s,s:s,s:s,s:i,s:{},s:I,s:I}", "Node",
                     g_store.cfg->node, "CheckID", "serfHealth", "Name", "Serf Health Status",
                     "Status", "passing", "Notes", "", "Output", "Agent alive and reachable",
                     "ServiceID", "", "ServiceName", "", "ServiceTags", "Type", "", "Interval", "",
                     "Timeout", "", "ExposedPort", 0, "Definition", "CreateIndex",
                     (json_int_t)g_store.node_index, "ModifyIndex", (json_int_t)g_store.node_index);
}

void check_row_of(const struct service *s, const struct check *c, bool catalog_view,
                  struct check_row *r)
{
    r->id = c->def.id;
    r->name = c->def.name;
    r->notes = c->def.notes ? c->def.notes : "";
    r->output = catalog_view ? c->synced_output : c->output;
    r->service_id = c->service_id;
    r->service_name = c->service_name;
    r->type = c->def.type ? c->def.type : "";
    r->status = c->status;
    r->interval = c->def.interval;
    r->timeout = c->def.timeout;
    r->create_index = catalog_view ? c->create_index : 0;
    r->modify_index = catalog_view ? c->modify_index : 0;
    r->tags = s ? s->tags : NULL;
}

/* The renders copy a service's tags rather than share them: an answer is
 * freed after the store's lock is let go, and a deregistration may drop
 * the store's reference at the same time (jansson's counts are not
 * thread-safe to share, and TSan saw the two frees race). */
void text_free(struct text *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

void text_add(struct text *t, const char *s, size_t n)
{
    if (t->oom) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void text_lit(struct text *t, const char *s) { text_add(t, s, strlen(s)); }

/* A JSON string as json_dumps() writes it without flags: `"`, `\` and
 * the control characters escaped (the short forms where JSON has one,
 * \u00XX with upper-case hex otherwise), everything else as it is (the
 * store keeps UTF-8 valid). */
static void text_str(struct text *t, const char *s)
{
    text_add(t, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
        text_add(t, run, (size_t)(p - run));
        char esc[8];
        switch (ch) {
        case '"': text_lit(t, "\\\""); break;
        case '\\': text_lit(t, "\\\\"); break;
        case '\b': text_lit(t, "\\b"); break;
        case '\f': text_lit(t, "\\f"); break;
        case '\n': text_lit(t, "\\n"); break;
        case '\r': text_lit(t, "\\r"); break;
        case '\t': text_lit(t, "\\t"); break;
        default: snprintf(esc, sizeof esc, "\\u%04X", ch); text_lit(t, esc);
        }
        run = p + 1;
    }
    text_lit(t, run);
    text_add(t, "\"", 1);
}

static void text_u64(struct text *t, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    text_add(t, b, (size_t)n);
}

/* `,"Key":"value"` (no comma before the first field). */
static void text_field(struct text *t, const char *key, const char *v)
{
    text_lit(t, key);
    text_str(t, v);
}

/* The text of a check row: the bytes json_dumps() gives for the same
 * object in compact form (checked by the double's self-test), written
 * straight out. A health/state/any answer of a large catalog is mostly
 * these rows, and building them as jansson objects took milliseconds of
 * allocation per answer. */
void write_check_row(struct text *t, const struct check_row *r)
{
    char *iv = r->interval > 0 ? go_duration_format(r->interval) : NULL;
    char *to = r->timeout > 0 ? go_duration_format(r->timeout) : NULL;
    text_field(t, "{\"Node\":", g_store.cfg->node);
    text_field(t, ",\"CheckID\":", r->id);
    text_field(t, ",\"Name\":", r->name);
    text_field(t, ",\"Status\":", status_name(r->status));
    text_field(t, ",\"Notes\":", r->notes);
    text_field(t, ",\"Output\":", r->output);
    text_field(t, ",\"ServiceID\":", r->service_id);
    text_field(t, ",\"ServiceName\":", r->service_name);
    text_lit(t, ",\"ServiceTags\":[");
    for (size_t i = 0; r->tags && i < json_array_size(r->tags); i++) {
        if (i) text_add(t, ",", 1);
        const char *tag = json_string_value(json_array_get(r->tags, i));
        text_str(t, tag ? tag : "");
    }
    text_add(t, "]", 1);
    text_field(t, ",\"Type\":", r->type);
    text_field(t, ",\"Interval\":", iv ? iv : "");
    text_field(t, ",\"Timeout\":", to ? to : "");
    text_lit(t, ",\"ExposedPort\":0,\"Definition\":{},\"CreateIndex\":");
    text_u64(t, r->create_index);
    text_lit(t, ",\"ModifyIndex\":");
    text_u64(t, r->modify_index);
    text_add(t, "}", 1);
    free(iv);
    free(to);
}

json_t *render_check_row(const struct check_row *r)
{
    struct text t = {0};
    write_check_row(&t, r);
    json_t *o = t.oom ? NULL : json_loads(t.p, 0, NULL);
    text_free(&t);
    return o;
}

json_t *render_check(const struct service *s, const struct check *c, bool catalog_view)
{
    struct check_row r;
    check_row_of(s, c, catalog_view, &r);
    return render_check_row(&r);
}

json_t *render_health_entry(const struct service *s)
{
    json_t *svc = json_object();
    json_object_set_new(svc, "ID", json_string(s->id));
    json_object_set_new(svc, "Service", json_string(s->name));
    json_object_set_new(svc, "Tags", json_deep_copy(s->tags));
    json_object_set_new(svc, "Address", json_string(s->address));
    json_t *t = svc_tagged(s);
    if (json_object_size(t)) json_object_set_new(svc, "TaggedAddresses", t);
    else json_decref(t);
    json_object_set_new(svc, "Meta", s->meta ? sorted(s->meta) : json_null());
    if (s->port) json_object_set_new(svc, "Port", json_integer(s->port));
    json_object_set_new(svc, "Weights", weights(s));
    json_object_set_new(svc, "EnableTagOverride", json_boolean(s->enable_tag_override));
    json_object_set_new(svc, "Proxy", proxy());
    json_object_set_new(svc, "Connect", json_object());
    json_object_set_new(svc, "PeerName", json_string(""));
    json_object_set_new(svc, "CreateIndex", json_integer((json_int_t)s->create_index));
    json_object_set_new(svc, "ModifyIndex", json_integer((json_int_t)s->modify_index));

    json_t *checks = json_array();
    json_array_append_new(checks, serf_check());
    for (size_t i = 0; i < s->n_checks; i++)
        json_array_append_new(checks, render_check(s, s->checks[i], true));
    return json_pack("{s:o,s:o,s:o}", "Node", render_node(), "Service", svc, "Checks", checks);
}

json_t *render_catalog_entry(const struct service *s)
{
    json_t *node = render_node();
    json_t *e = json_object();
    json_object_set(e, "ID", json_object_get(node, "ID"));
    json_object_set(e, "Node", json_object_get(node, "Node"));
    json_object_set(e, "Address", json_object_get(node, "Address"));
    json_object_set(e, "Datacenter", json_object_get(node, "Datacenter"));
    json_object_set(e, "TaggedAddresses", json_object_get(node, "TaggedAddresses"));
    json_object_set(e, "NodeMeta", json_object_get(node, "Meta"));
    json_object_set_new(e, "ServiceKind", json_string(""));
    json_object_set_new(e, "ServiceID", json_string(s->id));
    json_object_set_new(e, "ServiceName", json_string(s->name));
    json_object_set_new(e, "ServiceTags", json_deep_copy(s->tags));
    json_object_set_new(e, "ServiceAddress", json_string(s->address));
    json_t *t = svc_tagged(s);
    if (json_object_size(t)) json_object_set_new(e, "ServiceTaggedAddresses", t);
    else json_decref(t);
    json_object_set_new(e, "ServiceWeights", weights(s));
    json_object_set_new(e, "ServiceMeta", s->meta ? sorted(s->meta) : json_object());
    json_object_set_new(e, "ServicePort", json_integer(s->port));
    json_object_set_new(e, "ServiceSocketPath", json_string(""));
    json_object_set_new(e, "ServiceEnableTagOverride", json_boolean(s->enable_tag_override));
    json_object_set_new(e, "ServiceProxy", proxy());
    json_object_set_new(e, "ServiceConnect", json_object());
    json_object_set_new(e, "PeerName", json_string(""));
    json_object_set_new(e, "CreateIndex", json_integer((json_int_t)s->create_index));
    json_object_set_new(e, "ModifyIndex", json_integer((json_int_t)s->modify_index));
    json_decref(node);
    return e;
}

json_t *render_agent_service(const struct service *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "ID", json_string(s->id));
    json_object_set_new(o, "Service", json_string(s->name));
    json_object_set_new(o, "Tags", json_deep_copy(s->tags));
    json_object_set_new(o, "Meta", s->meta ? sorted(s->meta) : json_object());
    json_object_set_new(o, "Port", json_integer(s->port));
    json_object_set_new(o, "Address", json_string(s->address));
    json_t *t = svc_tagged(s);
    if (json_object_size(t)) json_object_set_new(o, "TaggedAddresses", t);
    else json_decref(t);
    json_object_set_new(o, "Weights", weights(s));
    json_object_set_new(o, "EnableTagOverride", json_boolean(s->enable_tag_override));
    json_object_set_new(o, "Datacenter", json_string(g_store.cfg->dc));
    return o;
}
