/* The health answer parser: /v1/health/service/<name> → "host:port" strings.
 * Kept apart from the watch loop so that it can be fuzzed on its own. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "consul/consul_impl.h"
#include "kitd/ctx.h"
#include "kitd/error.h"

int kitd__consul_instance(char *buf, size_t cap, const char *host, long port) {
  size_t hl = strlen(host);
  bool v6 = memchr(host, ':', hl) != NULL && host[0] != '[';
  /* A host name is at most 253 bytes; with brackets and port this fits
   * KITD_INSTANCE_MAX. */
  if (hl == 0 || hl > 253) return KITD_EPROTO;
  for (size_t i = 0; i < hl; i++) {
    unsigned char ch = (unsigned char)host[i];
    if (ch <= ' ' || ch == 0x7f || ch == ',' || ch == '/' || ch == '"') return KITD_EPROTO;
  }
  int n = snprintf(buf, cap, v6 ? "[%s]:%ld" : "%s:%ld", host, port);
  return n < 0 || (size_t)n >= cap ? KITD_EPROTO : 0;
}

static int bad(char *detail, size_t cap, size_t i, const char *what) {
  if (detail && cap) snprintf(detail, cap, "bad health answer: entry %zu: %s", i, what);
  return KITD_EPROTO;
}

static bool has_tag(json_t *tags, const char *want) {
  size_t i;
  json_t *t;
  json_array_foreach(tags, i, t) {
    const char *s = json_string_value(t);
    if (s && strcasecmp(s, want) == 0) return true;
  }
  return false;
}

/* Checks the answer against the filters the agent should already have
 * applied: agents before 1.3 honour only the first tag, and a proxy may
 * drop parameters. Returns 1 keep, 0 skip, <0 bad entry. */
static int entry_matches(json_t *svc, json_t *checks, const char *const *tags,
                         size_t ntags, bool passing, const char **why) {
  json_t *jt = json_object_get(svc, "Tags");
  if (jt && !json_is_null(jt) && !json_is_array(jt)) {
    *why = "Service.Tags is not an array";
    return -1;
  }
  for (size_t k = 0; k < ntags; k++)
    if (!json_is_array(jt) || !has_tag(jt, tags[k])) return 0;
  if (checks && !json_is_null(checks) && !json_is_array(checks)) {
    *why = "Checks is not an array";
    return -1;
  }
  if (passing && json_is_array(checks)) {
    size_t i;
    json_t *ch;
    json_array_foreach(checks, i, ch) {
      if (!json_is_object(ch)) {
        *why = "a check is not an object";
        return -1;
      }
      const char *st = json_string_value(json_object_get(ch, "Status"));
      if (!st || strcmp(st, "passing") != 0) return 0;
    }
  }
  return 1;
}

int kitd__consul_parse_health(const char *body, size_t len,
                              const char *const *tags, size_t ntags,
                              bool passing, char ***out, size_t *count,
                              char *detail, size_t detail_cap) {
  json_error_t jerr;
  json_t *root = json_loadb(body ? body : "", body ? len : 0, JSON_DECODE_ANY, &jerr);
  if (!root) {
    if (detail && detail_cap)
      snprintf(detail, detail_cap, "bad health answer: not JSON: %s at byte %d", jerr.text,
               jerr.position);
    return KITD_EPROTO;
  }
  if (!json_is_array(root)) {
    json_decref(root);
    if (detail && detail_cap)
      snprintf(detail, detail_cap, "bad health answer: not a JSON array");
    return KITD_EPROTO;
  }
  size_t n = json_array_size(root), kept = 0;
  char **v = n ? kitd__calloc(n, sizeof *v) : NULL;
  int rc = 0;
  if (n && !v) rc = KITD_ENOMEM;
  for (size_t i = 0; i < n && !rc; i++) {
    json_t *ent = json_array_get(root, i);
    if (!json_is_object(ent)) {
      rc = bad(detail, detail_cap, i, "not an object");
      break;
    }
    json_t *svc = json_object_get(ent, "Service");
    if (!json_is_object(svc)) {
      rc = bad(detail, detail_cap, i, "Service is missing or not an object");
      break;
    }
    json_t *node = json_object_get(ent, "Node");
    if (node && !json_is_null(node) && !json_is_object(node)) {
      rc = bad(detail, detail_cap, i, "Node is not an object");
      break;
    }
    const char *why = NULL;
    int m = entry_matches(svc, json_object_get(ent, "Checks"), tags, ntags, passing, &why);
    if (m < 0) {
      rc = bad(detail, detail_cap, i, why);
      break;
    }
    if (m == 0) continue;
    /* Port: left out when 0 (Consul >= 1.10). */
    json_t *jp = json_object_get(svc, "Port");
    long port = 0;
    if (jp && !json_is_null(jp)) {
      if (!json_is_integer(jp)) {
        rc = bad(detail, detail_cap, i, "Service.Port is not an integer");
        break;
      }
      json_int_t p = json_integer_value(jp);
      if (p < 0 || p > 65535) {
        rc = bad(detail, detail_cap, i, "Service.Port out of range");
        break;
      }
      port = (long)p;
    }
    /* A service behind a unix socket has no usable host:port. */
    const char *sock = json_string_value(json_object_get(svc, "SocketPath"));
    if (sock && *sock && port == 0) continue;
    json_t *ja = json_object_get(svc, "Address");
    if (ja && !json_is_null(ja) && !json_is_string(ja)) {
      rc = bad(detail, detail_cap, i, "Service.Address is not a string");
      break;
    }
    const char *addr = json_string_value(ja);
    if (!addr || !*addr) {
      json_t *jn = node ? json_object_get(node, "Address") : NULL;
      if (jn && !json_is_null(jn) && !json_is_string(jn)) {
        rc = bad(detail, detail_cap, i, "Node.Address is not a string");
        break;
      }
      addr = json_string_value(jn);
    }
    /* An entry with no usable address is skipped, not fatal: one odd
     * registration must not hide every other instance. */
    char buf[KITD_INSTANCE_MAX];
    if (!addr || !*addr || kitd__consul_instance(buf, sizeof buf, addr, port)) continue;
    if (!(v[kept] = kitd__strdup(buf))) {
      rc = KITD_ENOMEM;
      break;
    }
    kept++;
  }
  json_decref(root);
  if (rc) {
    for (size_t i = 0; i < kept; i++) free(v[i]);
    free(v);
    if (rc == KITD_ENOMEM && detail && detail_cap) snprintf(detail, detail_cap, "out of memory");
    return rc;
  }
  if (kept == 0) {
    free(v);
    v = NULL;
  }
  *out = v;
  *count = kept;
  return 0;
}
