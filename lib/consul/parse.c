/* SPDX-License-Identifier: MIT */
/* The health answer parser: /v1/health/service/<name> → instance records.
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
#include "kitd/instance.h"

int kitd__consul_instance(char *buf, size_t cap, const char *host, long port) {
  size_t hl = strlen(host);
  bool v6 = memchr(host, ':', hl) != NULL && host[0] != '[';
  /* A host name is at most 253 bytes; with brackets and port this fits
   * KITD_ADDRESS_MAX. */
  if (hl == 0 || hl > 253) return KITD_EPROTO;
  for (size_t i = 0; i < hl; i++) {
    unsigned char ch = (unsigned char)host[i];
    if (ch <= ' ' || ch == 0x7f || ch == ',' || ch == '/' || ch == '"') return KITD_EPROTO;
  }
  int n = snprintf(buf, cap, v6 ? "[%s]:%ld" : "%s:%ld", host, port);
  return n < 0 || (size_t)n >= cap ? KITD_EPROTO : 0;
}

static int bad(char *detail, size_t cap, size_t i, const char *what) {
  if (detail && cap) snprintf(detail, cap, "consul: bad health answer: entry %zu: %s", i, what);
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
static int entry_matches(json_t *svc, json_t *checks, const char *const *tags, size_t ntags,
                         bool passing, const char **why) {
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

/* The worst status of the checks (Consul's own aggregation: critical over
 * warning over passing; an unknown status counts as critical). */
static kitd_health worst_status(json_t *checks) {
  kitd_health w = KITD_HEALTH_PASSING;
  size_t i;
  json_t *ch;
  if (!json_is_array(checks)) return w;
  json_array_foreach(checks, i, ch) {
    const char *st = json_string_value(json_object_get(ch, "Status"));
    kitd_health h = KITD_HEALTH_CRITICAL;
    if (st && strcmp(st, "passing") == 0) h = KITD_HEALTH_PASSING;
    else if (st && strcmp(st, "warning") == 0) h = KITD_HEALTH_WARNING;
    if (h > w) w = h;
  }
  return w;
}

/* Weights.Passing or .Warning by status (default 1; critical: Passing's,
 * for a caller that asked for every instance). -1: not a weight. */
static long entry_weight(json_t *svc, kitd_health st) {
  json_t *w = json_object_get(svc, "Weights");
  if (!json_is_object(w)) return 1;
  json_t *v = json_object_get(w, st == KITD_HEALTH_WARNING ? "Warning" : "Passing");
  if (!v || json_is_null(v)) return 1;
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535) return -1;
  return (long)json_integer_value(v);
}

/* Copy a JSON object of strings into meta through `set`; non-string values
 * are skipped (Consul's meta values are strings). */
static int copy_meta(kitd_instance *r, json_t *obj,
                     int (*set)(kitd_instance *, const char *, const char *)) {
  const char *k;
  json_t *v;
  if (!json_is_object(obj)) return 0;
  json_object_foreach(obj, k, v) {
    const char *sv = json_string_value(v);
    if (sv && set(r, k, sv) != 0) return KITD_ENOMEM;
  }
  return 0;
}

/* Fill the attributes of a record from one health entry. */
static int fill_record(kitd_instance *r, json_t *svc, json_t *node, json_t *checks, kitd_health st,
                       long weight, const char *zone_key) {
  int rc = kitd_instance_set_status(r, st);
  if (!rc && weight > 0) rc = kitd_instance_set_weight(r, (uint32_t)weight);
  json_t *tags = json_object_get(svc, "Tags");
  size_t i;
  json_t *t;
  if (json_is_array(tags)) json_array_foreach(tags, i, t) {
      if (!rc && json_is_string(t)) rc = kitd_instance_add_tag(r, json_string_value(t));
    }
  if (!rc) rc = copy_meta(r, json_object_get(svc, "Meta"), kitd_instance_set_meta);
  if (!rc && node) rc = copy_meta(r, json_object_get(node, "Meta"), kitd_instance_set_node_meta);
  const char *nn = node ? json_string_value(json_object_get(node, "Node")) : NULL;
  if (!rc && nn) rc = kitd_instance_set_node(r, nn);
  const char *dc = node ? json_string_value(json_object_get(node, "Datacenter")) : NULL;
  if (!rc && dc) rc = kitd_instance_set_datacenter(r, dc);
  if (!rc && zone_key) {
    /* The user's key: node meta first, then service meta. Without it the
     * zone is "", not the default key's value: a zone read from a key the
     * user did not name would group instances wrongly. */
    const char *z = kitd_instance_node_meta(r, zone_key);
    if (!z) z = kitd_instance_meta(r, zone_key);
    rc = kitd_instance_set_zone(r, z ? z : "");
  }
  (void)checks;
  return rc ? KITD_ENOMEM : 0;
}

/* The filters of one parse. */
struct filter {
  const char *const *tags;
  size_t ntags;
  bool passing;
  const char *zone_key;
};

/* "host:port" of an entry into buf: Service.Address, else Node.Address.
 * Returns 1 usable, 0 skip (no usable address, a unix socket), or <0 with
 * *why set. */
static int entry_address(json_t *svc, json_t *node, char *buf, size_t cap, const char **why) {
  /* Port: left out when 0 (Consul >= 1.10). */
  json_t *jp = json_object_get(svc, "Port");
  long port = 0;
  if (jp && !json_is_null(jp)) {
    if (!json_is_integer(jp)) {
      *why = "Service.Port is not an integer";
      return -1;
    }
    json_int_t p = json_integer_value(jp);
    if (p < 0 || p > 65535) {
      *why = "Service.Port out of range";
      return -1;
    }
    port = (long)p;
  }
  /* A service behind a unix socket has no usable host:port. */
  const char *sock = json_string_value(json_object_get(svc, "SocketPath"));
  if (sock && *sock && port == 0) return 0;
  json_t *ja = json_object_get(svc, "Address");
  if (ja && !json_is_null(ja) && !json_is_string(ja)) {
    *why = "Service.Address is not a string";
    return -1;
  }
  const char *addr = json_string_value(ja);
  if (!addr || !*addr) {
    json_t *jn = node ? json_object_get(node, "Address") : NULL;
    if (jn && !json_is_null(jn) && !json_is_string(jn)) {
      *why = "Node.Address is not a string";
      return -1;
    }
    addr = json_string_value(jn);
  }
  /* An entry with no usable address is skipped, not fatal: one odd
   * registration must not hide every other instance. */
  if (!addr || !*addr || kitd__consul_instance(buf, cap, addr, port)) return 0;
  return 1;
}

/* One entry of the answer: 0 with a record in *out, or with *out NULL when
 * the entry is filtered out or skipped; KITD_EPROTO (*why set) or
 * KITD_ENOMEM. */
static int parse_entry(json_t *ent, const struct filter *f, kitd_instance **out, const char **why) {
  *out = NULL;
  if (!json_is_object(ent)) {
    *why = "not an object";
    return KITD_EPROTO;
  }
  json_t *svc = json_object_get(ent, "Service");
  if (!json_is_object(svc)) {
    *why = "Service is missing or not an object";
    return KITD_EPROTO;
  }
  json_t *node = json_object_get(ent, "Node");
  if (node && !json_is_null(node) && !json_is_object(node)) {
    *why = "Node is not an object";
    return KITD_EPROTO;
  }
  json_t *checks = json_object_get(ent, "Checks");
  int m = entry_matches(svc, checks, f->tags, f->ntags, f->passing, why);
  if (m <= 0) return m < 0 ? KITD_EPROTO : 0;
  char buf[KITD_ADDRESS_MAX + 1];
  int a = entry_address(svc, node, buf, sizeof buf, why);
  if (a <= 0) return a < 0 ? KITD_EPROTO : 0;
  kitd_health st = worst_status(checks);
  long weight = entry_weight(svc, st);
  if (weight < 0) {
    *why = "Service.Weights is not a pair of counts";
    return KITD_EPROTO;
  }
  /* Weight 0 (Weights.Warning may be 0): the registration asks for no
   * traffic in this state, so the instance is left out of the set. */
  if (weight == 0) return 0;
  kitd_instance *r;
  int e = kitd_instance_new(buf, &r);
  if (e == KITD_EINVAL) return 0; /* unusable address: skipped, as above */
  if (!e) e = fill_record(r, svc, node, checks, st, weight, f->zone_key);
  if (e) {
    kitd_instance_unref(r);
    return KITD_ENOMEM;
  }
  *out = r;
  return 0;
}

int kitd__consul_parse_health(const char *body, size_t len, const char *const *tags, size_t ntags,
                              bool passing, const char *zone_key, kitd_instance ***out,
                              size_t *count, char *detail, size_t detail_cap) {
  json_error_t jerr;
  json_t *root = json_loadb(body ? body : "", body ? len : 0, JSON_DECODE_ANY, &jerr);
  if (!root) {
    if (detail && detail_cap)
      snprintf(detail, detail_cap, "consul: bad health answer: not JSON: %s at byte %d", jerr.text,
               jerr.position);
    return KITD_EPROTO;
  }
  if (!json_is_array(root)) {
    json_decref(root);
    if (detail && detail_cap)
      snprintf(detail, detail_cap, "consul: bad health answer: not a JSON array");
    return KITD_EPROTO;
  }
  struct filter f = {tags, ntags, passing, zone_key};
  size_t n = json_array_size(root), kept = 0;
  kitd_instance **v = n ? kitd__calloc(n, sizeof *v) : NULL;
  int rc = n && !v ? KITD_ENOMEM : 0;
  for (size_t i = 0; i < n && !rc; i++) {
    const char *why = NULL;
    kitd_instance *r = NULL;
    rc = parse_entry(json_array_get(root, i), &f, &r, &why);
    if (rc == KITD_EPROTO) bad(detail, detail_cap, i, why);
    if (r) v[kept++] = r;
  }
  json_decref(root);
  if (rc) {
    kitd_instance_list_free(v, kept);
    if (rc == KITD_ENOMEM && detail && detail_cap)
      snprintf(detail, detail_cap, "consul: out of memory");
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
