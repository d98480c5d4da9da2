/* SPDX-License-Identifier: MIT */
/* The gateway's JSON request parser (see gwreq.h). */
#include "lorem/gwreq.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int count(json_t *root, const char *key, lorem_type t, int *out, char *err, size_t cap) {
  json_t *v = json_object_get(root, key);
  if (!v) {
    snprintf(err, cap, "missing field \"%s\"", key);
    return -1;
  }
  if (!json_is_integer(v)) {
    snprintf(err, cap, "\"%s\" must be an integer", key);
    return -1;
  }
  json_int_t n = json_integer_value(v);
  if (n < 0) {
    snprintf(err, cap, "\"%s\" must not be negative", key);
    return -1;
  }
  if (n > lorem_limit(t)) {
    snprintf(err, cap, "\"%s\" over the limit of %d for %s", key, lorem_limit(t),
             lorem_type_name(t));
    return -1;
  }
  *out = (int)n;
  return 0;
}

int lorem_gw_parse(const char *body, size_t len, lorem_request *out, char *err, size_t cap) {
  if (cap) err[0] = '\0';
  if (len > LOREM_GWREQ_MAX) {
    snprintf(err, cap, "request body over %d bytes", LOREM_GWREQ_MAX);
    return -1;
  }
  json_error_t je;
  /* JSON_REJECT_DUPLICATES: one meaning per request; depth is capped by
   * jansson itself (2048), so a deeply nested body cannot exhaust the stack */
  json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
  if (!root) {
    snprintf(err, cap, "invalid JSON: %s", body ? je.text : "empty body");
    return -1;
  }
  int rc = -1;
  lorem_request rq;
  if (!json_is_object(root)) {
    snprintf(err, cap, "the body must be a JSON object");
    goto out;
  }
  json_t *t = json_object_get(root, "requestType");
  if (!json_is_string(t)) {
    snprintf(err, cap, t ? "\"requestType\" must be a string" : "missing field \"requestType\"");
    goto out;
  }
  if (lorem_type_parse(json_string_value(t), json_string_length(t), &rq.type)) {
    snprintf(err, cap, "unknown requestType (word, sentence or paragraph)");
    goto out;
  }
  if (count(root, "min", rq.type, &rq.min, err, cap) ||
      count(root, "max", rq.type, &rq.max, err, cap))
    goto out;
  *out = rq;
  rc = 0;
out:
  json_decref(root);
  return rc;
}
