/* SPDX-License-Identifier: MIT */
/* etcd's encodings: base64 keys and values, a prefix's range end, int64s
 * sent as strings, and the instance values the instancer reads. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *kitd__b64_encode(const unsigned char *p, size_t n) {
  if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
  size_t outn = (n + 2) / 3 * 4;
  char *o = kitd__malloc(outn + 1);
  if (!o) return NULL;
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n) v |= p[i + 2];
    o[j++] = b64[(v >> 18) & 63];
    o[j++] = b64[(v >> 12) & 63];
    o[j++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
    o[j++] = i + 2 < n ? b64[v & 63] : '=';
  }
  o[j] = '\0';
  return o;
}

static int b64_val(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+') return 62;
  if (ch == '/') return 63;
  return -1;
}

int kitd__b64_decode(const char *s, size_t n, unsigned char **out, size_t *outlen) {
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return KITD_EPROTO;
  unsigned char *o = kitd__malloc(n / 4 * 3 + 3);
  if (!o) return KITD_ENOMEM;
  size_t j = 0;
  uint32_t acc = 0;
  unsigned bits = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64_val((unsigned char)s[i]);
    if (v < 0) {
      free(o);
      return KITD_EPROTO;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      o[j++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  o[j] = '\0';
  *out = o;
  *outlen = j;
  return 0;
}

size_t kitd__etcd_prefix_end(const unsigned char *p, size_t n, unsigned char *out) {
  /* The first key after every key starting with p: bump the last byte that
   * can be bumped and drop what follows; all 0xff (or empty): "\0", which
   * etcd reads as "every key from `key` on". */
  for (size_t i = n; i-- > 0;) {
    if (p[i] < 0xff) {
      memcpy(out, p, i);
      out[i] = (unsigned char)(p[i] + 1);
      return i + 1;
    }
  }
  out[0] = 0;
  return 1;
}

int64_t kitd__etcd_int(const json_t *v, int64_t def) {
  if (!v) return def;
  if (json_is_integer(v)) return (int64_t)json_integer_value(v);
  if (!json_is_string(v)) return def;
  const char *s = json_string_value(v);
  if (!*s) return def;
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (errno || *end) return def;
  return (int64_t)x;
}

/* "host:port" with a port in 1..65535 and a host of sane bytes. */
static bool is_address(const char *s, size_t n) {
  if (n == 0 || n > KITD_ADDRESS_MAX) return false;
  const char *colon = NULL;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == '"' || ch == '{') return false;
    if (ch == ':') colon = s + i;
  }
  if (!colon || colon == s) return false;
  if (s[0] == '[') {
    if (colon[-1] != ']' || colon - s < 3) return false;
  } else if (memchr(s, ':', (size_t)(colon - s))) {
    return false; /* a bare IPv6 address: the port is ambiguous */
  }
  size_t pl = n - (size_t)(colon + 1 - s);
  if (pl == 0 || pl > 5) return false;
  long port = 0;
  for (const char *q = colon + 1; q < s + n; q++) {
    if (!isdigit((unsigned char)*q)) return false;
    port = port * 10 + (*q - '0');
  }
  return port >= 1 && port <= 65535;
}

static int fail(char *detail, size_t cap, const char *what) {
  snprintf(detail, cap, "%s", what);
  return KITD_EPROTO;
}

static int parse_object(const char *v, size_t n, kitd_instance **out, char *detail, size_t cap) {
  json_error_t je;
  json_t *o = json_loadb(v, n, JSON_REJECT_DUPLICATES, &je);
  if (!o) return fail(detail, cap, "value is neither host:port nor JSON");
  int rc = KITD_EPROTO;
  kitd_instance *in = NULL;
  json_t *a = json_object_get(o, "address");
  if (!json_is_object(o)) {
    fail(detail, cap, "JSON value is not an object");
    goto out;
  }
  if (!json_is_string(a) || !is_address(json_string_value(a), json_string_length(a))) {
    fail(detail, cap, "\"address\" is missing or not host:port");
    goto out;
  }
  rc = kitd_instance_new(json_string_value(a), &in);
  if (rc) {
    if (rc != KITD_ENOMEM) fail(detail, cap, "\"address\" is not accepted");
    goto out;
  }
  json_t *w = json_object_get(o, "weight");
  if (w) {
    json_int_t wv = json_is_integer(w) ? json_integer_value(w) : 0;
    if (wv < 1 || wv > UINT32_MAX) {
      rc = fail(detail, cap, "\"weight\" is not an integer >= 1");
      goto out;
    }
    if ((rc = kitd_instance_set_weight(in, (uint32_t)wv))) goto out;
  }
  json_t *tags = json_object_get(o, "tags"), *t;
  size_t i;
  if (tags && !json_is_array(tags)) {
    rc = fail(detail, cap, "\"tags\" is not an array");
    goto out;
  }
  json_array_foreach(tags, i, t) {
    if (!json_is_string(t)) {
      rc = fail(detail, cap, "a tag is not a string");
      goto out;
    }
    if ((rc = kitd_instance_add_tag(in, json_string_value(t)))) goto out;
  }
  json_t *meta = json_object_get(o, "meta"), *mv;
  const char *mk;
  if (meta && !json_is_object(meta)) {
    rc = fail(detail, cap, "\"meta\" is not an object");
    goto out;
  }
  json_object_foreach(meta, mk, mv) {
    if (!json_is_string(mv)) {
      rc = fail(detail, cap, "a meta value is not a string");
      goto out;
    }
    if ((rc = kitd_instance_set_meta(in, mk, json_string_value(mv)))) goto out;
  }
  json_t *z = json_object_get(o, "zone");
  if (z && !json_is_string(z)) {
    rc = fail(detail, cap, "\"zone\" is not a string");
    goto out;
  }
  if (z && (rc = kitd_instance_set_zone(in, json_string_value(z)))) goto out;
  *out = in;
  in = NULL;
  rc = 0;
out:
  if (rc && rc != KITD_ENOMEM && rc != KITD_EPROTO) {
    fail(detail, cap, "a field is not accepted");
    rc = KITD_EPROTO;
  }
  kitd_instance_unref(in);
  json_decref(o);
  return rc;
}

int kitd__etcd_parse_value(const char *v, size_t n, kitd_instance **out, char *detail, size_t cap) {
  size_t b = 0;
  while (b < n && isspace((unsigned char)v[b])) b++;
  while (n > b && isspace((unsigned char)v[n - 1])) n--;
  if (b == n) return fail(detail, cap, "empty value");
  if (v[b] == '{') return parse_object(v + b, n - b, out, detail, cap);
  if (memchr(v + b, '\0', n - b) || !is_address(v + b, n - b))
    return fail(detail, cap, "value is not host:port");
  char *s = kitd__strndup(v + b, n - b);
  if (!s) return KITD_ENOMEM;
  int rc = kitd_instance_new(s, out);
  free(s);
  if (rc && rc != KITD_ENOMEM) return fail(detail, cap, "value is not host:port");
  return rc;
}
