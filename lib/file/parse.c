/* SPDX-License-Identifier: MIT */
/* The two forms of an instance file: "host:port [weight]" lines, or a JSON
 * array of objects. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "file/file_impl.h"
#include "kitd/error.h"

static int fail(char **detail, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char **detail, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  free(*detail);
  *detail = kitd__vasprintf(fmt, ap);
  va_end(ap);
  return err;
}

struct list {
  kitd_instance **v;
  size_t n, cap;
};

static int push(struct list *l, kitd_instance *r) {
  if (l->n == l->cap) {
    size_t nc = l->cap ? l->cap * 2 : 16;
    kitd_instance **v = kitd__realloc(l->v, nc * sizeof *v);
    if (!v) {
      kitd_instance_unref(r);
      return KITD_ENOMEM;
    }
    l->v = v;
    l->cap = nc;
  }
  l->v[l->n++] = r;
  return 0;
}

static void list_clear(struct list *l) {
  for (size_t i = 0; i < l->n; i++) kitd_instance_unref(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* "host:port" with a port in 1..65535 and a host (bracketed if it has a
 * colon). kitd_instance_new() checks the rest (length, characters). */
static int is_host_port(const char *s) {
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s) return 0;
  if (s[0] == '[') {
    if (colon[-1] != ']' || colon - s < 3) return 0;
  } else if (memchr(s, ':', (size_t)(colon - s))) {
    return 0; /* a bare IPv6 address: ambiguous without brackets */
  }
  const char *p = colon + 1;
  if (!*p) return 0;
  unsigned long port = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    port = port * 10 + (unsigned long)(*p - '0');
    if (port > 65535) return 0;
  }
  return port > 0;
}

/* A weight: a decimal in 1..2^32-1. */
static int parse_weight(const char *s, uint32_t *w) {
  if (*s < '0' || *s > '9') return 0;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v == 0 || v > UINT32_MAX) return 0;
  *w = (uint32_t)v;
  return 1;
}

static int parse_lines(const char *label, const char *text, size_t len, struct list *l,
                       char **detail) {
  char *line = NULL;
  size_t lineno = 0;
  int rc = 0;
  for (size_t off = 0; off < len && !rc;) {
    const char *nl = memchr(text + off, '\n', len - off);
    size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
    lineno++;
    free(line);
    if (!(line = kitd__malloc(n + 1))) {
      rc = KITD_ENOMEM;
      break;
    }
    memcpy(line, text + off, n);
    line[n] = '\0';
    off += n + 1;
    if (memchr(line, '\0', n)) {
      rc = fail(detail, KITD_EPROTO, "%s:%zu: NUL byte", label, lineno);
      break;
    }
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL;
    const char *ws = " \t\r\v\f";
    char *addr = strtok_r(line, ws, &save);
    if (!addr) continue;
    char *weight = strtok_r(NULL, ws, &save);
    char *extra = weight ? strtok_r(NULL, ws, &save) : NULL;
    uint32_t w = 1;
    if (!is_host_port(addr)) {
      rc = fail(detail, KITD_EPROTO, "%s:%zu: not host:port", label, lineno);
    } else if (weight && !parse_weight(weight, &w)) {
      rc = fail(detail, KITD_EPROTO, "%s:%zu: weight is not an integer from 1 to %u", label, lineno,
                (unsigned)UINT32_MAX);
    } else if (extra) {
      rc = fail(detail, KITD_EPROTO, "%s:%zu: more than \"host:port weight\"", label, lineno);
    } else {
      kitd_instance *r = NULL;
      rc = kitd_instance_new(addr, &r);
      if (!rc && weight) rc = kitd_instance_set_weight(r, w);
      if (rc) {
        kitd_instance_unref(r);
        rc = rc == KITD_ENOMEM ? KITD_ENOMEM
                               : fail(detail, KITD_EPROTO, "%s:%zu: bad address", label, lineno);
      } else {
        rc = push(l, r);
      }
    }
  }
  free(line);
  return rc;
}

static int json_record(const char *label, size_t k, json_t *o, kitd_instance **out, char **detail) {
  if (!json_is_object(o))
    return fail(detail, KITD_EPROTO, "%s: element %zu: not an object", label, k);
  json_t *a = json_object_get(o, "address");
  if (!json_is_string(a) || !is_host_port(json_string_value(a)))
    return fail(detail, KITD_EPROTO, "%s: element %zu: \"address\" is not host:port", label, k);
  kitd_instance *r = NULL;
  int rc = kitd_instance_new(json_string_value(a), &r);
  if (rc) {
    if (rc == KITD_ENOMEM) return rc;
    return fail(detail, KITD_EPROTO, "%s: element %zu: bad address", label, k);
  }
  json_t *w = json_object_get(o, "weight");
  if (w && (!json_is_integer(w) || json_integer_value(w) < 1 ||
            json_integer_value(w) > (json_int_t)UINT32_MAX)) {
    rc = fail(detail, KITD_EPROTO, "%s: element %zu: \"weight\" is not an integer from 1 to %u",
              label, k, (unsigned)UINT32_MAX);
  } else if (w) {
    rc = kitd_instance_set_weight(r, (uint32_t)json_integer_value(w));
  }
  json_t *tags = json_object_get(o, "tags");
  if (!rc && tags) {
    if (!json_is_array(tags)) {
      rc = fail(detail, KITD_EPROTO, "%s: element %zu: \"tags\" is not an array", label, k);
    } else {
      size_t i;
      json_t *t;
      json_array_foreach(tags, i, t) {
        if (!json_is_string(t)) {
          rc = fail(detail, KITD_EPROTO, "%s: element %zu: tag %zu is not a string", label, k, i);
          break;
        }
        if ((rc = kitd_instance_add_tag(r, json_string_value(t)))) break;
      }
    }
  }
  json_t *meta = json_object_get(o, "meta");
  if (!rc && meta) {
    if (!json_is_object(meta)) {
      rc = fail(detail, KITD_EPROTO, "%s: element %zu: \"meta\" is not an object", label, k);
    } else {
      const char *key;
      json_t *v;
      json_object_foreach(meta, key, v) {
        if (!json_is_string(v)) {
          rc = fail(detail, KITD_EPROTO, "%s: element %zu: meta \"%s\" is not a string", label, k,
                    key);
          break;
        }
        if ((rc = kitd_instance_set_meta(r, key, json_string_value(v)))) break;
      }
    }
  }
  json_t *zone = json_object_get(o, "zone");
  if (!rc && zone) {
    if (!json_is_string(zone))
      rc = fail(detail, KITD_EPROTO, "%s: element %zu: \"zone\" is not a string", label, k);
    else rc = kitd_instance_set_zone(r, json_string_value(zone));
  }
  if (rc == KITD_EINVAL) /* a setter refused a value (an empty key, …) */
    rc = fail(detail, KITD_EPROTO, "%s: element %zu: bad value", label, k);
  if (rc) {
    kitd_instance_unref(r);
    return rc;
  }
  *out = r;
  return 0;
}

static int parse_json(const char *label, const char *text, size_t len, struct list *l,
                      char **detail) {
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) return fail(detail, KITD_EPROTO, "%s:%d: %s", label, je.line, je.text);
  int rc = 0;
  if (!json_is_array(root)) {
    rc = fail(detail, KITD_EPROTO, "%s: not a JSON array", label);
  } else {
    size_t k;
    json_t *o;
    json_array_foreach(root, k, o) {
      kitd_instance *r = NULL;
      if ((rc = json_record(label, k, o, &r, detail))) break;
      if ((rc = push(l, r))) break;
    }
  }
  json_decref(root);
  return rc;
}

int kitd__file_parse(const char *label, const char *text, size_t len, kitd_instance ***out,
                     size_t *count, char **detail) {
  *out = NULL;
  *count = 0;
  *detail = NULL;
  size_t i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
  struct list l = {0};
  /* JSON when the text opens with '[', unless its first word is a
   * bracketed IPv6 "host:port" ("[::1]:80" is a line). */
  bool json = false;
  if (i < len && text[i] == '[') {
    size_t j = i;
    while (j < len && !strchr(" \t\r\n", text[j]) && text[j]) j++;
    char *word = kitd__strndup(text + i, j - i);
    if (!word) return fail(detail, KITD_ENOMEM, "out of memory");
    json = !is_host_port(word);
    free(word);
  }
  int rc =
      json ? parse_json(label, text, len, &l, detail) : parse_lines(label, text, len, &l, detail);
  if (rc == KITD_ENOMEM && !*detail) *detail = kitd__strdup("out of memory");
  if (rc) {
    list_clear(&l);
    return rc;
  }
  free(*detail);
  *detail = NULL;
  *out = l.v;
  *count = l.n;
  return 0;
}
