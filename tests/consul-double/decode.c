/* SPDX-License-Identifier: MIT */
/* Request bodies decoded the way Consul's Go decoder does it: keys match
 * without regard to case (exact match first), unknown keys are an error,
 * types are strict, null leaves the zero value, bytes after the first JSON
 * value are ignored. Error texts follow Go's encoding/json. */
#include "double.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum kind {
    K_STR,
    K_INT,
    K_BOOL,
    K_STRARR,
    K_STRMAP,
    K_DUR,
    K_ANY,
    K_WEIGHTS,
    K_TADDRS,
    K_CHECK,
    K_CHECKS,
    K_HEADER
};

struct field {
    const char *name;
    enum kind kind;
    int slot;
    const char *gotype;
};

struct dctx {
    char *err;
};

static void set_err(struct dctx *x, const char *fmt, ...)
{
    if (x->err) return; /* Go keeps the first error */
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&x->err, fmt, ap) < 0) x->err = NULL;
    va_end(ap);
}

static void json_type_text(const json_t *v, char *buf, size_t n)
{
    switch (json_typeof(v)) {
    case JSON_STRING: snprintf(buf, n, "string"); break;
    case JSON_INTEGER: snprintf(buf, n, "number %lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: snprintf(buf, n, "number %g", json_real_value(v)); break;
    case JSON_TRUE:
    case JSON_FALSE: snprintf(buf, n, "bool"); break;
    case JSON_ARRAY: snprintf(buf, n, "array"); break;
    case JSON_OBJECT: snprintf(buf, n, "object"); break;
    default: snprintf(buf, n, "null"); break;
    }
}

static void type_err(struct dctx *x, const json_t *v, const char *where, const char *gotype)
{
    char t[64];
    json_type_text(v, t, sizeof t);
    if (json_is_integer(v) || json_is_real(v)) {
        if (strcmp(gotype, "string") == 0 || strcmp(gotype, "bool") == 0 || gotype[0] == '[' ||
            strncmp(gotype, "map", 3) == 0 || strncmp(gotype, "struct", 6) == 0 ||
            strncmp(gotype, "structs.", 8) == 0)
            snprintf(t, sizeof t, "number");
    }
    set_err(x, "json: cannot unmarshal %s into Go struct field %s of type %s", t, where, gotype);
}

/* Go's field lookup: an exact name first, then a case-insensitive one. */
static const struct field *lookup(const struct field *f, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, key) == 0) return &f[i];
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(f[i].name, key) == 0) return &f[i];
    return NULL;
}

static bool get_str(struct dctx *x, json_t *v, const char *where, char **out)
{
    if (json_is_null(v)) return false;
    if (!json_is_string(v)) {
        type_err(x, v, where, "string");
        return false;
    }
    free(*out);
    *out = strdup(json_string_value(v));
    return **out != '\0';
}

static bool get_int(struct dctx *x, json_t *v, const char *where, int *out)
{
    if (json_is_null(v)) return false;
    if (!json_is_integer(v) || json_integer_value(v) > 2147483647LL ||
        json_integer_value(v) < -2147483648LL) {
        type_err(x, v, where, "int");
        return false;
    }
    *out = (int)json_integer_value(v);
    return *out != 0;
}

static bool get_bool(struct dctx *x, json_t *v, const char *where, bool *out)
{
    if (json_is_null(v)) return false;
    if (!json_is_boolean(v)) {
        type_err(x, v, where, "bool");
        return false;
    }
    *out = json_is_true(v);
    return *out;
}

/* Durations: a Go duration string or a number of nanoseconds; Consul's
 * UnmarshalJSON ignores any other type. */
static bool get_dur(struct dctx *x, json_t *v, int64_t *out)
{
    if (json_is_string(v)) {
        char *e = NULL;
        if (go_duration_parse(json_string_value(v), out, &e) != 0) {
            set_err(x, "%s", e);
            free(e);
            return false;
        }
        return *out != 0;
    }
    if (json_is_integer(v)) *out = (int64_t)json_integer_value(v);
    else if (json_is_real(v)) *out = (int64_t)json_real_value(v);
    return *out != 0;
}

static bool get_strarr(struct dctx *x, json_t *v, const char *where, json_t **out)
{
    if (json_is_null(v)) return false;
    if (!json_is_array(v)) {
        type_err(x, v, where, "[]string");
        return false;
    }
    json_t *a = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (json_is_null(e)) {
            json_array_append_new(a, json_string(""));
            continue;
        }
        if (!json_is_string(e)) {
            type_err(x, e, where, "string");
            json_decref(a);
            return false;
        }
        json_array_append(a, e);
    }
    json_decref(*out);
    *out = a;
    return true;
}

static bool get_strmap(struct dctx *x, json_t *v, const char *where, json_t **out)
{
    if (json_is_null(v)) return false;
    if (!json_is_object(v)) {
        type_err(x, v, where, "map[string]string");
        return false;
    }
    const char *k;
    json_t *e;
    json_t *m = json_object();
    json_object_foreach(v, k, e)
    {
        if (json_is_null(e)) {
            json_object_set_new(m, k, json_string(""));
            continue;
        }
        if (!json_is_string(e)) {
            type_err(x, e, where, "string");
            json_decref(m);
            return false;
        }
        json_object_set(m, k, e);
    }
    json_decref(*out);
    *out = m;
    return true;
}

/* ---- checks ---- */
enum {
    C_ID,
    C_NAME,
    C_STATUS,
    C_NOTES,
    C_SCRIPT,
    C_HTTP,
    C_H2PING,
    C_H2TLS,
    C_HEADER,
    C_METHOD,
    C_BODY,
    C_NOREDIR,
    C_TCP,
    C_UDP,
    C_INTERVAL,
    C_ALIASNODE,
    C_ALIASSVC,
    C_DOCKER,
    C_SHELL,
    C_GRPC,
    C_GRPCTLS,
    C_OSSVC,
    C_TLSNAME,
    C_TLSSKIP,
    C_TIMEOUT,
    C_TTL,
    C_SBP,
    C_FBW,
    C_FBC,
    C_PROXYHTTP,
    C_PROXYGRPC,
    C_DEREG,
    C_OUTMAX,
    C_TCPTLS
};

static const struct field check_fields[] = {
    {"CheckID", K_STR, C_ID, "types.CheckID"},
    {"Name", K_STR, C_NAME, "string"},
    {"Status", K_STR, C_STATUS, "string"},
    {"Notes", K_STR, C_NOTES, "string"},
    {"ScriptArgs", K_STRARR, C_SCRIPT, "[]string"},
    {"args", K_STRARR, C_SCRIPT, "[]string"},
    {"script_args", K_STRARR, C_SCRIPT, "[]string"},
    {"HTTP", K_STR, C_HTTP, "string"},
    {"H2PING", K_STR, C_H2PING, "string"},
    {"H2PingUseTLS", K_BOOL, C_H2TLS, "bool"},
    {"h2ping_use_tls", K_BOOL, C_H2TLS, "bool"},
    {"Header", K_HEADER, C_HEADER, "map[string][]string"},
    {"Method", K_STR, C_METHOD, "string"},
    {"Body", K_STR, C_BODY, "string"},
    {"DisableRedirects", K_BOOL, C_NOREDIR, "bool"},
    {"TCP", K_STR, C_TCP, "string"},
    {"TCPUseTLS", K_BOOL, C_TCPTLS, "bool"},
    {"UDP", K_STR, C_UDP, "string"},
    {"Interval", K_DUR, C_INTERVAL, "time.Duration"},
    {"AliasNode", K_STR, C_ALIASNODE, "string"},
    {"AliasService", K_STR, C_ALIASSVC, "string"},
    {"DockerContainerID", K_STR, C_DOCKER, "string"},
    {"docker_container_id", K_STR, C_DOCKER, "string"},
    {"Shell", K_STR, C_SHELL, "string"},
    {"GRPC", K_STR, C_GRPC, "string"},
    {"GRPCUseTLS", K_BOOL, C_GRPCTLS, "bool"},
    {"grpc_use_tls", K_BOOL, C_GRPCTLS, "bool"},
    {"OSService", K_STR, C_OSSVC, "string"},
    {"TLSServerName", K_STR, C_TLSNAME, "string"},
    {"tls_server_name", K_STR, C_TLSNAME, "string"},
    {"TLSSkipVerify", K_BOOL, C_TLSSKIP, "bool"},
    {"tls_skip_verify", K_BOOL, C_TLSSKIP, "bool"},
    {"Timeout", K_DUR, C_TIMEOUT, "time.Duration"},
    {"TTL", K_DUR, C_TTL, "time.Duration"},
    {"SuccessBeforePassing", K_INT, C_SBP, "int"},
    {"FailuresBeforeWarning", K_INT, C_FBW, "int"},
    {"FailuresBeforeCritical", K_INT, C_FBC, "int"},
    {"ProxyHTTP", K_STR, C_PROXYHTTP, "string"},
    {"ProxyGRPC", K_STR, C_PROXYGRPC, "string"},
    {"DeregisterCriticalServiceAfter", K_DUR, C_DEREG, "time.Duration"},
    {"deregister_critical_service_after", K_DUR, C_DEREG, "time.Duration"},
    {"OutputMaxSize", K_INT, C_OUTMAX, "int"},
};

struct raw_check {
    struct check_def d;
    char *status, *script0, *udp, *grpc, *h2ping, *alias_node, *alias_svc, *docker, *ossvc, *shell,
        *proxy;
    json_t *script;
    int outmax;
    bool nonzero;
};

static void raw_check_clear(struct raw_check *r)
{
    check_def_clear(&r->d);
    free(r->status);
    free(r->udp);
    free(r->grpc);
    free(r->h2ping);
    free(r->alias_node);
    free(r->alias_svc);
    free(r->docker);
    free(r->ossvc);
    free(r->shell);
    free(r->proxy);
    json_decref(r->script);
}

static void decode_check(struct dctx *x, json_t *o, const char *where, struct raw_check *r)
{
    char path[160];
    if (json_is_null(o)) return;
    if (!json_is_object(o)) {
        type_err(x, o, where, "structs.CheckType");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        const struct field *f =
            lookup(check_fields, sizeof check_fields / sizeof check_fields[0], key);
        if (!f) {
            set_err(x, "json: unknown field \"%s\"", key);
            return;
        }
        snprintf(path, sizeof path, "%s.%s", where, f->name);
        bool nz = false, b = false;
        int iv = 0;
        switch (f->slot) {
        case C_ID: nz = get_str(x, v, path, &r->d.id); break;
        case C_NAME: nz = get_str(x, v, path, &r->d.name); break;
        case C_STATUS: nz = get_str(x, v, path, &r->status); break;
        case C_NOTES: nz = get_str(x, v, path, &r->d.notes); break;
        case C_SCRIPT: nz = get_strarr(x, v, path, &r->script); break;
        case C_HTTP: nz = get_str(x, v, path, &r->d.http); break;
        case C_H2PING: nz = get_str(x, v, path, &r->h2ping); break;
        case C_METHOD: nz = get_str(x, v, path, &r->d.method); break;
        case C_BODY: nz = get_str(x, v, path, &r->d.body); break;
        case C_TCP: nz = get_str(x, v, path, &r->d.tcp); break;
        case C_UDP: nz = get_str(x, v, path, &r->udp); break;
        case C_ALIASNODE: nz = get_str(x, v, path, &r->alias_node); break;
        case C_ALIASSVC: nz = get_str(x, v, path, &r->alias_svc); break;
        case C_DOCKER: nz = get_str(x, v, path, &r->docker); break;
        case C_SHELL: nz = get_str(x, v, path, &r->shell); break;
        case C_GRPC: nz = get_str(x, v, path, &r->grpc); break;
        case C_OSSVC: nz = get_str(x, v, path, &r->ossvc); break;
        case C_TLSNAME: nz = get_str(x, v, path, &r->d.tls_server_name); break;
        case C_PROXYHTTP:
        case C_PROXYGRPC: nz = get_str(x, v, path, &r->proxy); break;
        case C_H2TLS:
        case C_GRPCTLS:
        case C_TCPTLS: nz = get_bool(x, v, path, &b); break;
        case C_NOREDIR: nz = get_bool(x, v, path, &r->d.disable_redirects); break;
        case C_TLSSKIP: nz = get_bool(x, v, path, &r->d.tls_skip_verify); break;
        case C_INTERVAL: nz = get_dur(x, v, &r->d.interval); break;
        case C_TIMEOUT: nz = get_dur(x, v, &r->d.timeout); break;
        case C_TTL: nz = get_dur(x, v, &r->d.ttl); break;
        case C_DEREG: nz = get_dur(x, v, &r->d.dereg_after); break;
        case C_SBP: nz = get_int(x, v, path, &r->d.success_before_passing); break;
        case C_FBW: nz = get_int(x, v, path, &r->d.failures_before_warning); break;
        case C_FBC: nz = get_int(x, v, path, &r->d.failures_before_critical); break;
        case C_OUTMAX:
            nz = get_int(x, v, path, &iv);
            r->outmax = iv;
            break;
        case C_HEADER:
            if (json_is_null(v)) break;
            if (!json_is_object(v)) {
                type_err(x, v, path, "map[string][]string");
                break;
            }
            {
                const char *hk;
                json_t *hv;
                json_t *h = json_object();
                json_object_foreach(v, hk, hv)
                {
                    json_t *arr = NULL;
                    if (!json_is_null(hv) && !get_strarr(x, hv, path, &arr)) {
                        json_decref(h);
                        h = NULL;
                        break;
                    }
                    json_object_set_new(h, hk, arr ? arr : json_array());
                }
                if (h) {
                    json_decref(r->d.header);
                    r->d.header = h;
                    nz = true;
                }
            }
            break;
        }
        if (nz) r->nonzero = true;
        if (x->err) return;
    }
}

/* Consul's CheckType.Validate, in its order. */
static const char *validate_check(struct raw_check *r)
{
    bool script = r->script && json_array_size(r->script) > 0;
    bool alias = (r->alias_node && *r->alias_node) || (r->alias_svc && *r->alias_svc);
    bool interval = script || (r->d.http && *r->d.http) || (r->d.tcp && *r->d.tcp) ||
                    (r->udp && *r->udp) || (r->grpc && *r->grpc) || (r->h2ping && *r->h2ping) ||
                    (r->ossvc && *r->ossvc);
    if (r->d.interval > 0 && r->d.ttl > 0) return "Interval and TTL cannot both be specified";
    if (interval && r->d.interval <= 0)
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks";
    if (interval && alias) return "Interval cannot be set for Alias checks";
    if (alias && r->d.ttl > 0) return "TTL must be not be set for Alias checks";
    if (!interval && !alias && r->d.ttl <= 0) return "TTL must be > 0 for TTL checks";
    if (r->outmax < 0) return "MaxOutputMaxSize must be positive";
    if (script) {
        r->d.kind = CK_OTHER;
        r->d.type = r->docker && *r->docker ? "docker" : "script";
    } else if (r->d.http && *r->d.http) {
        r->d.kind = CK_HTTP;
        r->d.type = "http";
    } else if (r->d.tcp && *r->d.tcp) {
        r->d.kind = CK_TCP;
        r->d.type = "tcp";
    } else if (r->udp && *r->udp) {
        r->d.kind = CK_OTHER;
        r->d.type = "udp";
    } else if (r->grpc && *r->grpc) {
        r->d.kind = CK_OTHER;
        r->d.type = "grpc";
    } else if (r->h2ping && *r->h2ping) {
        r->d.kind = CK_OTHER;
        r->d.type = "h2ping";
    } else if (r->ossvc && *r->ossvc) {
        r->d.kind = CK_OTHER;
        r->d.type = "os_service";
    } else if (alias) {
        r->d.kind = CK_OTHER;
        r->d.type = "alias";
    } else {
        r->d.kind = CK_TTL;
        r->d.type = "ttl";
    }
    return NULL;
}

/* ---- services ---- */
enum {
    S_ID,
    S_NAME,
    S_TAGS,
    S_ADDR,
    S_TADDR,
    S_META,
    S_PORT,
    S_WEIGHTS,
    S_ETO,
    S_CHECK,
    S_CHECKS,
    S_IGNORE
};

static const struct field svc_fields[] = {
    {"ID", K_STR, S_ID, "string"},
    {"Name", K_STR, S_NAME, "string"},
    {"Tags", K_STRARR, S_TAGS, "[]string"},
    {"Address", K_STR, S_ADDR, "string"},
    {"TaggedAddresses", K_TADDRS, S_TADDR, "map[string]structs.ServiceAddress"},
    {"tagged_addresses", K_TADDRS, S_TADDR, "map[string]structs.ServiceAddress"},
    {"Meta", K_STRMAP, S_META, "map[string]string"},
    {"Port", K_INT, S_PORT, "int"},
    {"Weights", K_WEIGHTS, S_WEIGHTS, "structs.Weights"},
    {"EnableTagOverride", K_BOOL, S_ETO, "bool"},
    {"enable_tag_override", K_BOOL, S_ETO, "bool"},
    {"Check", K_CHECK, S_CHECK, "structs.CheckType"},
    {"Checks", K_CHECKS, S_CHECKS, "structs.CheckTypes"},
    {"Kind", K_ANY, S_IGNORE, ""},
    {"SocketPath", K_ANY, S_IGNORE, ""},
    {"Token", K_ANY, S_IGNORE, ""},
    {"Proxy", K_ANY, S_IGNORE, ""},
    {"Connect", K_ANY, S_IGNORE, ""},
    {"Namespace", K_ANY, S_IGNORE, ""},
    {"Partition", K_ANY, S_IGNORE, ""},
    {"Locality", K_ANY, S_IGNORE, ""},
};

static void decode_weights(struct dctx *x, json_t *v, struct svc_def *d)
{
    static const struct field wf[] = {{"Passing", K_INT, 0, "int"}, {"Warning", K_INT, 1, "int"}};
    if (json_is_null(v)) return;
    if (!json_is_object(v)) {
        type_err(x, v, "ServiceDefinition.Weights", "structs.Weights");
        return;
    }
    d->has_weights = true;
    d->w_passing = d->w_warning = 0;
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        const struct field *f = lookup(wf, 2, k);
        if (!f) {
            set_err(x, "json: unknown field \"%s\"", k);
            return;
        }
        get_int(x, e,
                f->slot ? "ServiceDefinition.Weights.Warning" : "ServiceDefinition.Weights.Passing",
                f->slot ? &d->w_warning : &d->w_passing);
    }
}

static void decode_taddrs(struct dctx *x, json_t *v, struct svc_def *d)
{
    static const struct field af[] = {{"Address", K_STR, 0, "string"}, {"Port", K_INT, 1, "int"}};
    if (json_is_null(v)) return;
    if (!json_is_object(v)) {
        type_err(x, v, "ServiceDefinition.TaggedAddresses", "map[string]structs.ServiceAddress");
        return;
    }
    json_t *out = json_object();
    const char *name;
    json_t *a;
    json_object_foreach(v, name, a)
    {
        char *addr = NULL;
        int port = 0;
        if (!json_is_null(a) && !json_is_object(a)) {
            type_err(x, a, "ServiceDefinition.TaggedAddresses", "structs.ServiceAddress");
            break;
        }
        const char *k;
        json_t *e;
        if (json_is_object(a)) {
            json_object_foreach(a, k, e)
            {
                const struct field *f = lookup(af, 2, k);
                if (!f) {
                    set_err(x, "json: unknown field \"%s\"", k);
                    break;
                }
                if (f->slot == 0) get_str(x, e, "ServiceAddress.Address", &addr);
                else get_int(x, e, "ServiceAddress.Port", &port);
            }
        }
        json_object_set_new(out, name,
                            json_pack("{s:s,s:i}", "Address", addr ? addr : "", "Port", port));
        free(addr);
        if (x->err) break;
    }
    json_decref(d->tagged);
    d->tagged = out;
}

static void add_check(struct svc_def *d, struct raw_check *r)
{
    d->checks = realloc(d->checks, (d->n_checks + 1) * sizeof *d->checks);
    d->checks[d->n_checks++] = r->d;
    memset(&r->d, 0, sizeof r->d);
}

static char *parse_err(const char *body, size_t len, const json_error_t *je)
{
    char *e = NULL;
    size_t pos = (size_t)je->position;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) return strdup("Request decode failed: EOF");
    if (pos >= len) return strdup("Request decode failed: unexpected EOF");
    if (pos > 0) pos--;
    unsigned char c = (unsigned char)body[pos < len ? pos : len - 1];
    if (c >= 0x20 && c < 0x7f)
        (void)!asprintf(
            &e, "Request decode failed: invalid character '%c' looking for beginning of value", c);
    else
        (void)!asprintf(
            &e, "Request decode failed: invalid character '\\x%02x' looking for beginning of value",
            c);
    return e;
}

static json_t *load(const char *body, size_t len, char **err)
{
    json_error_t je;
    json_t *root = json_loadb(body ? body : "", len, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
    if (!root) *err = parse_err(body ? body : "", len, &je);
    return root;
}

static char *prefixed(char *e)
{
    char *s = NULL;
    (void)!asprintf(&s, "Request decode failed: %s", e);
    free(e);
    return s;
}

int decode_service(const char *body, size_t len, struct svc_def *d, char **err)
{
    memset(d, 0, sizeof *d);
    json_t *root = load(body, len, err);
    if (!root) return -1;
    struct dctx x = {0};
    if (!json_is_object(root)) {
        if (json_is_null(root)) {
            json_decref(root);
            return 0;
        }
        char t[64];
        json_type_text(root, t, sizeof t);
        if (json_is_number(root)) snprintf(t, sizeof t, "number");
        set_err(&x, "json: cannot unmarshal %s into Go value of type structs.ServiceDefinition", t);
    }
    struct raw_check single = {0};
    bool have_single = false;
    json_t *checks = NULL;
    const char *key;
    json_t *v;
    if (!x.err) json_object_foreach(root, key, v)
        {
            const struct field *f =
                lookup(svc_fields, sizeof svc_fields / sizeof svc_fields[0], key);
            if (!f) {
                set_err(&x, "json: unknown field \"%s\"", key);
                break;
            }
            switch (f->slot) {
            case S_ID: get_str(&x, v, "ServiceDefinition.ID", &d->id); break;
            case S_NAME: get_str(&x, v, "ServiceDefinition.Name", &d->name); break;
            case S_TAGS: get_strarr(&x, v, "ServiceDefinition.Tags", &d->tags); break;
            case S_ADDR: get_str(&x, v, "ServiceDefinition.Address", &d->address); break;
            case S_META: get_strmap(&x, v, "ServiceDefinition.Meta", &d->meta); break;
            case S_PORT: get_int(&x, v, "ServiceDefinition.Port", &d->port); break;
            case S_ETO:
                get_bool(&x, v, "ServiceDefinition.EnableTagOverride", &d->enable_tag_override);
                break;
            case S_WEIGHTS: decode_weights(&x, v, d); break;
            case S_TADDR: decode_taddrs(&x, v, d); break;
            case S_CHECK:
                raw_check_clear(&single);
                memset(&single, 0, sizeof single);
                single.d.status = -1;
                decode_check(&x, v, "ServiceDefinition.Check", &single);
                have_single = !json_is_null(v);
                break;
            case S_CHECKS:
                if (!json_is_null(v) && !json_is_array(v))
                    type_err(&x, v, "ServiceDefinition.Checks", "structs.CheckTypes");
                else checks = v;
                break;
            default: break;
            }
            if (x.err) break;
        }
    struct raw_check *list = NULL;
    size_t nlist = 0;
    if (!x.err && checks) {
        size_t i;
        json_t *c;
        json_array_foreach(checks, i, c)
        {
            list = realloc(list, (nlist + 1) * sizeof *list);
            memset(&list[nlist], 0, sizeof *list);
            list[nlist].d.status = -1;
            if (!json_is_null(c)) decode_check(&x, c, "ServiceDefinition.Checks", &list[nlist]);
            nlist++;
            if (x.err) break;
        }
    }
    /* Build [Check, Checks...]; an all-zero Check does not count. */
    if (!x.err && have_single && single.nonzero) {
        const char *e = validate_check(&single);
        if (e) set_err(&x, "\x01Invalid check: %s", e);
    }
    if (!x.err) {
        for (size_t i = 0; i < nlist && !x.err; i++) {
            const char *e = validate_check(&list[i]);
            if (e) set_err(&x, "\x01Invalid check: %s", e);
        }
    }
    /* Status is checked after every check validated, as Consul does. */
    struct raw_check *all[1 + nlist];
    size_t nall = 0;
    if (have_single && single.nonzero) all[nall++] = &single;
    for (size_t i = 0; i < nlist; i++) all[nall++] = &list[i];
    for (size_t i = 0; i < nall && !x.err; i++) {
        if (all[i]->status && *all[i]->status) {
            int st = status_parse(all[i]->status);
            if (st < 0) set_err(&x, "\x01Status for checks must 'passing', 'warning', 'critical'");
            all[i]->d.status = st;
        }
    }
    if (!x.err)
        for (size_t i = 0; i < nall; i++) add_check(d, all[i]);
    raw_check_clear(&single);
    for (size_t i = 0; i < nlist; i++) raw_check_clear(&list[i]);
    free(list);
    json_decref(root);
    if (x.err) {
        /* \x01 marks a validation error (no decode prefix); they are
         * reported by the caller after the name/address/meta checks. */
        if (x.err[0] == '\x01') {
            *err = strdup(x.err + 1);
            free(x.err);
            return 1; /* d stays filled in for the earlier checks */
        }
        *err = prefixed(x.err);
        svc_def_clear(d);
        return -1;
    }
    return 0;
}

void svc_def_clear(struct svc_def *d)
{
    free(d->id);
    free(d->name);
    free(d->address);
    json_decref(d->tags);
    json_decref(d->meta);
    json_decref(d->tagged);
    for (size_t i = 0; i < d->n_checks; i++) check_def_clear(&d->checks[i]);
    free(d->checks);
    memset(d, 0, sizeof *d);
}

int decode_check_update(const char *body, size_t len, char **status, char **output, char **err)
{
    static const struct field uf[] = {{"Status", K_STR, 0, "string"},
                                      {"Output", K_STR, 1, "string"}};
    json_t *root = load(body, len, err);
    if (!root) return -1;
    struct dctx x = {0};
    if (json_is_object(root)) {
        const char *k;
        json_t *v;
        json_object_foreach(root, k, v)
        {
            const struct field *f = lookup(uf, 2, k);
            if (!f) {
                set_err(&x, "json: unknown field \"%s\"", k);
                break;
            }
            get_str(&x, v, f->slot ? "checkUpdate.Output" : "checkUpdate.Status",
                    f->slot ? output : status);
            if (x.err) break;
        }
    } else if (!json_is_null(root)) {
        char t[64];
        json_type_text(root, t, sizeof t);
        set_err(&x, "json: cannot unmarshal %s into Go value of type agent.checkUpdate", t);
    }
    json_decref(root);
    if (x.err) {
        *err = prefixed(x.err);
        return -1;
    }
    return 0;
}
