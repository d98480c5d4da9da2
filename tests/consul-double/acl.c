/* SPDX-License-Identifier: MIT */
/* ACLs, as far as a client can see them: the token comes from ?token=
 * (it wins), then X-Consul-Token, then "Authorization: Bearer"; an
 * unknown token is 403 "ACL not found"; the anonymous token may not
 * write and reads an empty (filtered) catalog, as with default deny. */
#include "double.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *acl_token(struct req *r, char *buf, size_t n)
{
    const char *t = req_arg(r, "token");
    if (t && *t) return t;
    t = req_header(r, "X-Consul-Token");
    if (t && *t) return t;
    t = req_header(r, "Authorization");
    if (t) {
        while (*t == ' ') t++;
        if (strncasecmp(t, "bearer ", 7) == 0) {
            t += 7;
            while (*t == ' ') t++;
            size_t len = strlen(t);
            while (len && t[len - 1] == ' ') len--;
            if (len && len < n) {
                memcpy(buf, t, len);
                buf[len] = '\0';
                return buf;
            }
        }
    }
    return NULL;
}

enum acl_who acl_resolve(struct req *r)
{
    const struct config *c = g_store.cfg;
    if (!c->n_acl_tokens) return ACL_OFF;
    char buf[512];
    const char *t = acl_token(r, buf, sizeof buf);
    if (!t || strcmp(t, "anonymous") == 0) return ACL_ANON;
    for (size_t i = 0; i < c->n_acl_tokens; i++)
        if (strcmp(c->acl_tokens[i], t) == 0) return ACL_KNOWN;
    return ACL_UNKNOWN;
}

bool acl_write(struct req *r, struct reply *rp, const char *perm, const char *res)
{
    switch (acl_resolve(r)) {
    case ACL_OFF:
    case ACL_KNOWN: return true;
    case ACL_UNKNOWN: reply_text(rp, 403, "ACL not found"); return false;
    case ACL_ANON:
        reply_text(rp, 403, "Permission denied: anonymous token lacks permission '%s' on \"%s\"",
                   perm, res);
        return false;
    }
    return false;
}

bool acl_read(struct req *r, struct reply *rp, bool *filtered)
{
    *filtered = false;
    switch (acl_resolve(r)) {
    case ACL_OFF:
    case ACL_KNOWN: return true;
    case ACL_UNKNOWN: reply_text(rp, 403, "ACL not found"); return false;
    case ACL_ANON: *filtered = true; return true;
    }
    return false;
}

bool reject_enterprise(struct req *r, struct reply *rp)
{
    const char *ns = req_arg(r, "ns");
    if (ns && *ns) {
        reply_text(rp, 400,
                   "Invalid query parameter: \"ns\" - Namespaces are a Consul Enterprise feature");
        return true;
    }
    const char *p = req_arg(r, "partition");
    if (p && *p) {
        reply_text(
            rp, 400,
            "Invalid query parameter: \"partition\" - Partitions are a Consul Enterprise feature");
        return true;
    }
    return false;
}
