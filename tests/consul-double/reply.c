/* SPDX-License-Identifier: MIT */
/* Building answers: Consul's common headers on every answer, plain-text
 * errors without a trailing newline, JSON (?pretty indents), and gzip for
 * bodies of 1400 bytes or more when the client accepts it. */
#include "double.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define GZIP_MIN 1400

void reply_clear(struct reply *rp)
{
    free(rp->body);
    for (int i = 0; i < rp->n_hdrs; i++) free(rp->hdrs[i].value);
    memset(rp, 0, sizeof *rp);
}

void reply_add_header(struct reply *rp, const char *name, const char *fmt, ...)
{
    if (rp->n_hdrs >= (int)(sizeof rp->hdrs / sizeof rp->hdrs[0])) return;
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    if (vasprintf(&v, fmt, ap) >= 0) {
        rp->hdrs[rp->n_hdrs].name = name;
        rp->hdrs[rp->n_hdrs++].value = v;
    }
    va_end(ap);
}

void reply_text(struct reply *rp, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(rp->body);
    rp->body = NULL;
    int n = vasprintf(&rp->body, fmt, ap);
    va_end(ap);
    rp->len = n > 0 ? (size_t)n : 0;
    rp->status = status;
    rp->ctype = "text/plain; charset=utf-8";
}

void reply_json(struct reply *rp, struct req *r, int status, json_t *v)
{
    bool pretty = req_has_arg(r, "pretty");
    size_t flags = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | (pretty ? JSON_INDENT(4) : JSON_COMPACT);
    char *s = json_dumps(v, flags);
    json_decref(v);
    free(rp->body);
    rp->body = NULL;
    if (pretty && s) {
        if (asprintf(&rp->body, "%s\n", s) < 0) rp->body = NULL;
        free(s);
    } else {
        rp->body = s;
    }
    rp->len = rp->body ? strlen(rp->body) : 0;
    rp->status = status;
    rp->ctype = "application/json";
}

void reply_json_text(struct reply *rp, struct req *r, int status, char *text, size_t len)
{
    if (req_has_arg(r, "pretty")) { /* indented: through jansson */
        json_t *v = json_loadb(text, len, 0, NULL);
        free(text);
        if (!v) {
            reply_text(rp, 500, "rendering failed");
            return;
        }
        reply_json(rp, r, status, v);
        return;
    }
    free(rp->body);
    rp->body = text;
    rp->len = len;
    rp->status = status;
    rp->ctype = "application/json";
}

static bool accepts_gzip(struct req *r)
{
    const char *ae = req_header(r, "Accept-Encoding");
    if (!ae) return false;
    /* a token "gzip" not switched off with q=0 */
    const char *p = ae;
    while ((p = strcasestr(p, "gzip")) != NULL) {
        const char *q = p + 4;
        while (*q == ' ') q++;
        if (*q == ';') {
            const char *qv = strstr(q, "q=");
            if (qv && (strncmp(qv, "q=0", 3) == 0) && strspn(qv + 3, ".0") == strcspn(qv + 3, ", "))
                return false;
        }
        return true;
    }
    return false;
}

static char *gzip_buf(const char *in, size_t len, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    char *out = malloc(cap);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    *outlen = z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

void reply_common_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Consul-Default-Acl-Policy",
                            g_store.cfg->n_acl_tokens ? "deny" : "allow");
    MHD_add_response_header(resp, "Vary", "Accept-Encoding");
}

static atomic_long g_gzipped; /* answers sent gzipped */

long reply_gzipped(void) { return atomic_load(&g_gzipped); }

struct MHD_Response *reply_build(struct reply *rp, struct req *r)
{
    char *body = rp->body;
    size_t len = rp->len;
    bool gz = false;
    if (!rp->no_gzip && len >= GZIP_MIN && accepts_gzip(r)) {
        size_t zl = 0;
        char *z = gzip_buf(body, len, &zl);
        if (z) {
            free(body);
            body = z;
            len = zl;
            gz = true;
        }
    }
    rp->body = NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return NULL;
    }
    if (gz) {
        MHD_add_response_header(resp, "Content-Encoding", "gzip");
        atomic_fetch_add(&g_gzipped, 1);
    }
    reply_headers(resp, rp);
    return resp;
}

void reply_headers(struct MHD_Response *resp, struct reply *rp)
{
    reply_common_headers(resp);
    if (rp->ctype) MHD_add_response_header(resp, "Content-Type", rp->ctype);
    if (rp->blocking_headers) {
        char b[32];
        snprintf(b, sizeof b, "%llu", (unsigned long long)(rp->index ? rp->index : 1));
        MHD_add_response_header(resp, "X-Consul-Index", b);
        MHD_add_response_header(resp, "X-Consul-Knownleader", "true");
        MHD_add_response_header(resp, "X-Consul-Lastcontact", "0");
        MHD_add_response_header(resp, "X-Consul-Effective-Consistency",
                                rp->consistency ? rp->consistency : "leader");
        MHD_add_response_header(resp, "X-Consul-Query-Backend", "blocking-query");
    }
    for (int i = 0; i < rp->n_hdrs; i++)
        MHD_add_response_header(resp, rp->hdrs[i].name, rp->hdrs[i].value);
}
