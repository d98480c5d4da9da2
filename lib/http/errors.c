/* SPDX-License-Identifier: MIT */
/* How an error answer becomes a detail, for both paths of an endpoint call
 * (endpoint.c over libcurl, fast.c over our own HTTP/1.1). A failed
 * transfer's code comes from lib/curl's one map (kitd__curl_code), or from
 * conn.c on the fast path, which follows the same table. */
#include <jansson.h>
#include <string.h>

#include "http/http_impl.h"
#include "kitd/error.h"

int kitd_http_error_text(const char *body, size_t len, char *buf, size_t cap) {
  if (buf && cap) buf[0] = '\0';
  if (!body || !buf || !cap) return 0;
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
  if (i == len || body[i] != '{') return 0; /* skip the parser for non-JSON */
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr);
  const char *s = json_is_object(root) ? json_string_value(json_object_get(root, "error")) : NULL;
  int found = s != NULL;
  if (found) {
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
  }
  json_decref(root);
  return found;
}

void kitd__http_error_detail(kitd_ctx *ctx, int status, const char *body, size_t len) {
  char text[KITD_CTX_DETAIL_MAX];
  if (kitd_http_error_text(body, len, text, sizeof text)) {
    kitd_ctx_set_detail(ctx, "%s", text);
    return;
  }
  size_t n = 0;
  while (n < len && n < 120 && body[n] != '\n' && body[n] != '\r') n++;
  if (n) kitd_ctx_set_detail(ctx, "HTTP %d: %.*s", status, (int)n, body);
  else kitd_ctx_set_detail(ctx, "HTTP %d", status);
}
