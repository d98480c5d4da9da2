/* SPDX-License-Identifier: MIT */
/* Instance records: an address and the attributes a registry gives it. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "core/instance_impl.h"

static int valid_address(const char *a) {
  size_t n = 0;
  for (; a[n]; n++) {
    unsigned char c = (unsigned char)a[n];
    if (c <= ' ' || c == 0x7f || n >= KITD_ADDRESS_MAX) return 0;
  }
  return n > 0;
}

int kitd_instance_new(const char *address, kitd_instance **out) {
  if (!address || !out || !valid_address(address)) return KITD_EINVAL;
  size_t n = strlen(address);
  size_t at = (sizeof(kitd_instance) + n + 1 + _Alignof(struct kitd__attrs) - 1) &
              ~(size_t)(_Alignof(struct kitd__attrs) - 1);
  kitd_instance *i = kitd__aligned_alloc(64, at + sizeof(struct kitd__attrs));
  if (!i) return KITD_ENOMEM;
  memset(i, 0, at + sizeof(struct kitd__attrs));
  i->a = (struct kitd__attrs *)((char *)i + at);
  memcpy(i->address, address, n + 1);
  i->address_len = (uint32_t)n;
  atomic_init(&i->refs, 1);
  i->status = KITD_HEALTH_PASSING;
  i->weight = 1;
  *out = i;
  return 0;
}

static void kv_free(struct kitd__kv *v, size_t n) {
  for (size_t k = 0; k < n; k++) {
    free(v[k].key);
    free(v[k].value);
  }
  free(v);
}

static void instance_free(kitd_instance *i) {
  for (size_t k = 0; k < i->a->ntags; k++) free(i->a->tags[k]);
  free(i->a->tags);
  kv_free(i->a->meta, i->a->nmeta);
  kv_free(i->a->node_meta, i->a->nnode_meta);
  free(i->a->node);
  free(i->a->datacenter);
  free(i->a->zone);
  free(i);
}

kitd_instance *kitd_instance_ref(const kitd_instance *ci) {
  kitd_instance *i = (kitd_instance *)ci;
  if (i) atomic_fetch_add_explicit(&i->refs, 1, memory_order_relaxed);
  return i;
}

void kitd_instance_unref(const kitd_instance *ci) {
  kitd_instance *i = (kitd_instance *)ci;
  if (i && atomic_fetch_sub_explicit(&i->refs, 1, memory_order_acq_rel) == 1) instance_free(i);
}

void kitd_instance_list_free(kitd_instance **list, size_t count) {
  if (!list) return;
  for (size_t k = 0; k < count; k++) kitd_instance_unref(list[k]);
  free(list);
}

static int writable(const kitd_instance *i) { return i && !i->frozen; }

int kitd_instance_set_status(kitd_instance *i, kitd_health status) {
  if (!writable(i) || (unsigned)status > KITD_HEALTH_CRITICAL) return KITD_EINVAL;
  i->status = status;
  return 0;
}

int kitd_instance_set_weight(kitd_instance *i, uint32_t weight) {
  if (!writable(i) || weight == 0) return KITD_EINVAL;
  i->weight = weight;
  return 0;
}

int kitd_instance_add_tag(kitd_instance *i, const char *tag) {
  if (!writable(i) || !tag) return KITD_EINVAL;
  char *t = kitd__strdup(tag);
  if (!t) return KITD_ENOMEM;
  char **v = kitd__realloc(i->a->tags, (i->a->ntags + 1) * sizeof *v);
  if (!v) {
    free(t);
    return KITD_ENOMEM;
  }
  v[i->a->ntags++] = t;
  i->a->tags = v;
  return 0;
}

/* Set key=value in a sorted array, replacing an existing key. */
static int kv_set(struct kitd__kv **pv, size_t *pn, const char *key, const char *value) {
  size_t lo = 0, hi = *pn;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp((*pv)[mid].key, key);
    if (c == 0) {
      char *nv = kitd__strdup(value);
      if (!nv) return KITD_ENOMEM;
      free((*pv)[mid].value);
      (*pv)[mid].value = nv;
      return 0;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  char *k = kitd__strdup(key), *val = kitd__strdup(value);
  struct kitd__kv *v = k && val ? kitd__realloc(*pv, (*pn + 1) * sizeof *v) : NULL;
  if (!v) {
    free(k);
    free(val);
    return KITD_ENOMEM;
  }
  memmove(&v[lo + 1], &v[lo], (*pn - lo) * sizeof *v);
  v[lo].key = k;
  v[lo].value = val;
  *pv = v;
  (*pn)++;
  return 0;
}

static const char *kv_get(const struct kitd__kv *v, size_t n, const char *key) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(v[mid].key, key);
    if (c == 0) return v[mid].value;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

int kitd_instance_set_meta(kitd_instance *i, const char *key, const char *value) {
  if (!writable(i) || !key || !value) return KITD_EINVAL;
  return kv_set(&i->a->meta, &i->a->nmeta, key, value);
}

int kitd_instance_set_node_meta(kitd_instance *i, const char *key, const char *value) {
  if (!writable(i) || !key || !value) return KITD_EINVAL;
  return kv_set(&i->a->node_meta, &i->a->nnode_meta, key, value);
}

static int set_str(kitd_instance *i, char **field, const char *value) {
  if (!writable(i) || !value) return KITD_EINVAL;
  char *v = kitd__strdup(value);
  if (!v) return KITD_ENOMEM;
  free(*field);
  *field = v;
  return 0;
}

int kitd_instance_set_node(kitd_instance *i, const char *node) {
  return set_str(i, i ? &i->a->node : NULL, node);
}
int kitd_instance_set_datacenter(kitd_instance *i, const char *dc) {
  return set_str(i, i ? &i->a->datacenter : NULL, dc);
}
int kitd_instance_set_zone(kitd_instance *i, const char *zone) {
  return set_str(i, i ? &i->a->zone : NULL, zone);
}

const char *kitd_instance_address(const kitd_instance *i) { return i ? i->address : ""; }
kitd_health kitd_instance_status(const kitd_instance *i) {
  return i ? i->status : KITD_HEALTH_CRITICAL;
}
uint32_t kitd_instance_weight(const kitd_instance *i) { return i ? i->weight : 0; }
size_t kitd_instance_tag_count(const kitd_instance *i) { return i ? i->a->ntags : 0; }
const char *kitd_instance_tag(const kitd_instance *i, size_t k) {
  return i && k < i->a->ntags ? i->a->tags[k] : NULL;
}
int kitd_instance_has_tag(const kitd_instance *i, const char *tag) {
  if (!i || !tag) return 0;
  for (size_t k = 0; k < i->a->ntags; k++)
    if (strcmp(i->a->tags[k], tag) == 0) return 1;
  return 0;
}
const char *kitd_instance_meta(const kitd_instance *i, const char *key) {
  return i && key ? kv_get(i->a->meta, i->a->nmeta, key) : NULL;
}
size_t kitd_instance_meta_count(const kitd_instance *i) { return i ? i->a->nmeta : 0; }
static int kv_at(const struct kitd__kv *v, size_t n, size_t k, const char **key,
                 const char **value) {
  if (k >= n) return KITD_ENOTFOUND;
  if (key) *key = v[k].key;
  if (value) *value = v[k].value;
  return 0;
}
int kitd_instance_meta_at(const kitd_instance *i, size_t k, const char **key, const char **value) {
  return i ? kv_at(i->a->meta, i->a->nmeta, k, key, value) : KITD_EINVAL;
}
const char *kitd_instance_node(const kitd_instance *i) { return i && i->a->node ? i->a->node : ""; }
const char *kitd_instance_node_meta(const kitd_instance *i, const char *key) {
  return i && key ? kv_get(i->a->node_meta, i->a->nnode_meta, key) : NULL;
}
size_t kitd_instance_node_meta_count(const kitd_instance *i) { return i ? i->a->nnode_meta : 0; }
int kitd_instance_node_meta_at(const kitd_instance *i, size_t k, const char **key,
                               const char **value) {
  return i ? kv_at(i->a->node_meta, i->a->nnode_meta, k, key, value) : KITD_EINVAL;
}
const char *kitd_instance_datacenter(const kitd_instance *i) {
  return i && i->a->datacenter ? i->a->datacenter : "";
}
const char *kitd_instance_zone(const kitd_instance *i) {
  if (!i) return "";
  if (i->a->zone) return i->a->zone;
  const char *z = kv_get(i->a->node_meta, i->a->nnode_meta, "zone");
  if (!z) z = kv_get(i->a->meta, i->a->nmeta, "zone");
  return z ? z : "";
}

const char *kitd_health_name(kitd_health s) {
  switch (s) {
  case KITD_HEALTH_PASSING: return "passing";
  case KITD_HEALTH_WARNING: return "warning";
  case KITD_HEALTH_CRITICAL: return "critical";
  }
  return "unknown";
}

static int str_eq(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

static int kv_eq(const struct kitd__kv *a, size_t na, const struct kitd__kv *b, size_t nb) {
  if (na != nb) return 0;
  for (size_t k = 0; k < na; k++)
    if (strcmp(a[k].key, b[k].key) != 0 || strcmp(a[k].value, b[k].value) != 0) return 0;
  return 1;
}

int kitd_instance_equal(const kitd_instance *a, const kitd_instance *b) {
  if (a == b) return 1;
  if (!a || !b) return 0;
  if (a->status != b->status || a->weight != b->weight || a->a->ntags != b->a->ntags) return 0;
  if (strcmp(a->address, b->address) != 0) return 0;
  for (size_t k = 0; k < a->a->ntags; k++)
    if (strcmp(a->a->tags[k], b->a->tags[k]) != 0) return 0;
  return kv_eq(a->a->meta, a->a->nmeta, b->a->meta, b->a->nmeta) &&
         kv_eq(a->a->node_meta, a->a->nnode_meta, b->a->node_meta, b->a->nnode_meta) &&
         str_eq(a->a->node, b->a->node) && str_eq(a->a->datacenter, b->a->datacenter) &&
         str_eq(a->a->zone, b->a->zone);
}

/* FNV-1a over the attributes, each string followed by a 0 byte and each
 * list by its length, so that no two different attribute sets feed the
 * same bytes; then a final avalanche (splitmix64's). */
static uint64_t mix_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t k = 0; k < n; k++) h = (h ^ b[k]) * 0x100000001b3ull;
  return h;
}
static uint64_t mix_str(uint64_t h, const char *s) {
  if (!s) return mix_bytes(h, "\xff", 1); /* unset differs from "" */
  return mix_bytes(h, s, strlen(s) + 1);
}
static uint64_t mix_kv(uint64_t h, const struct kitd__kv *v, size_t n) {
  h = mix_bytes(h, &n, sizeof n);
  for (size_t k = 0; k < n; k++) h = mix_str(mix_str(h, v[k].key), v[k].value);
  return h;
}

void kitd__instance_freeze(kitd_instance *i) {
  if (i->frozen) return;
  uint64_t h = 0xcbf29ce484222325ull;
  uint32_t st = (uint32_t)i->status;
  h = mix_bytes(h, &st, sizeof st);
  h = mix_bytes(h, &i->weight, sizeof i->weight);
  h = mix_bytes(h, &i->a->ntags, sizeof i->a->ntags);
  for (size_t k = 0; k < i->a->ntags; k++) h = mix_str(h, i->a->tags[k]);
  h = mix_kv(h, i->a->meta, i->a->nmeta);
  h = mix_kv(h, i->a->node_meta, i->a->nnode_meta);
  h = mix_str(mix_str(mix_str(h, i->a->node), i->a->datacenter), i->a->zone);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  i->digest = h ^ (h >> 31);
  i->frozen = true;
}

static int cmp_addr(const void *x, const void *y) {
  const kitd_instance *a = *(kitd_instance *const *)x, *b = *(kitd_instance *const *)y;
  return strcmp(a->address, b->address);
}

size_t kitd__instance_sort_unique(kitd_instance **v, size_t count) {
  if (count < 2) return count;
  qsort(v, count, sizeof *v, cmp_addr);
  size_t o = 1;
  for (size_t k = 1; k < count; k++) {
    if (strcmp(v[k]->address, v[o - 1]->address) == 0) kitd_instance_unref(v[k]);
    else v[o++] = v[k];
  }
  return o;
}
