/* SPDX-License-Identifier: MIT */
/* The request-head parser (see http_parse.h). */
#include "lorem/http_parse.h"

#include <string.h>
#include <strings.h>

size_t lorem_http_head_end(const char *buf, size_t len, size_t *scan) {
  size_t i = *scan;
  while (i < len) {
    const char *nl = memchr(buf + i, '\n', len - i);
    if (!nl) break;
    i = (size_t)(nl - buf);
    if (i + 1 < len && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    if (i + 2 >= len) break; /* the blank line may still be coming */
    i++;
  }
  *scan = i < len ? i : len;
  return 0;
}

/* RFC 9110 token characters. */
static int tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Does the comma-separated list s (n bytes) hold token `tok`? */
static int list_has(const char *s, size_t n, const char *tok) {
  size_t tl = strlen(tok), i = 0;
  while (i < n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
    size_t j = i;
    while (j < n && s[j] != ',') j++;
    size_t e = j;
    while (e > i && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
    if (e - i == tl && !strncasecmp(s + i, tok, tl)) return 1;
    i = j;
  }
  return 0;
}

#define FAIL(st, msg)                                                                              \
  do {                                                                                             \
    *err = (msg);                                                                                  \
    return (st);                                                                                   \
  } while (0)

int lorem_http_parse_head(char *buf, size_t len, lorem_http_head *h, const char **err) {
  memset(h, 0, offsetof(lorem_http_head, f));
  h->content_length = -1;
  if (len > LOREM_HTTP_HEAD_MAX) FAIL(431, "request header fields too large");
  size_t i = 0;
  /* request line: method SP target SP HTTP/1.x */
  while (i < len && tchar((unsigned char)buf[i])) i++;
  if (i == 0 || i >= len || buf[i] != ' ') FAIL(400, "malformed request line");
  h->method = buf;
  h->method_len = i;
  size_t t0 = ++i;
  while (i < len && (unsigned char)buf[i] > ' ' && (unsigned char)buf[i] < 0x7f) i++;
  if (i == t0 || i >= len || buf[i] != ' ') FAIL(400, "malformed request target");
  h->target = buf + t0;
  h->target_len = i - t0;
  size_t v = ++i;
  if (len - v < 8 || memcmp(buf + v, "HTTP/", 5) || buf[v + 5] < '0' || buf[v + 5] > '9' ||
      buf[v + 6] != '.' || buf[v + 7] < '0' || buf[v + 7] > '9')
    FAIL(400, "malformed HTTP version");
  if (buf[v + 5] != '1') FAIL(505, "HTTP version not supported (HTTP/1.x only)");
  h->minor = buf[v + 7] - '0';
  i = v + 8;
  if (i < len && buf[i] == '\r') i++;
  if (i >= len || buf[i] != '\n') FAIL(400, "malformed request line");
  i++;
  buf[h->method_len] = '\0';
  buf[t0 + h->target_len] = '\0';
  int conn_close = 0, conn_keep = 0;
  /* fields, up to the blank line */
  for (;;) {
    if (i >= len) FAIL(400, "malformed header section");
    if (buf[i] == '\n') break;
    if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') break;
    if (buf[i] == ' ' || buf[i] == '\t') FAIL(400, "folded header lines are not accepted");
    size_t n0 = i;
    while (i < len && tchar((unsigned char)buf[i])) i++;
    if (i == n0 || i >= len || buf[i] != ':') FAIL(400, "malformed header field");
    size_t nl = i - n0;
    i++;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t')) i++;
    size_t v0 = i;
    while (i < len && buf[i] != '\r' && buf[i] != '\n') {
      unsigned char c = (unsigned char)buf[i];
      if ((c < 0x20 && c != '\t') || c == 0x7f) FAIL(400, "control byte in a header value");
      i++;
    }
    size_t ve = i;
    if (i < len && buf[i] == '\r') i++;
    if (i >= len || buf[i] != '\n') FAIL(400, "malformed header field");
    i++;
    while (ve > v0 && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
    if (h->nfields == LOREM_HTTP_HEADERS_MAX) FAIL(431, "too many header fields");
    lorem_http_field *f = &h->f[h->nfields++];
    f->name = (uint16_t)n0;
    f->name_len = (uint16_t)nl;
    f->value = (uint16_t)v0;
    f->value_len = (uint16_t)(ve - v0);
    const char *name = buf + n0, *val = buf + v0;
    size_t vl = ve - v0;
    if (nl == 14 && !strncasecmp(name, "content-length", 14)) {
      if (vl == 0 || vl > 18) FAIL(400, "bad Content-Length");
      int64_t n = 0;
      for (size_t k = 0; k < vl; k++) {
        if (val[k] < '0' || val[k] > '9') FAIL(400, "bad Content-Length");
        n = n * 10 + (val[k] - '0');
      }
      if (h->content_length >= 0 && h->content_length != n) FAIL(400, "conflicting Content-Length");
      h->content_length = n;
    } else if (nl == 17 && !strncasecmp(name, "transfer-encoding", 17)) {
      h->transfer_encoding = 1;
    } else if (nl == 10 && !strncasecmp(name, "connection", 10)) {
      conn_close |= list_has(val, vl, "close");
      conn_keep |= list_has(val, vl, "keep-alive");
    } else if (nl == 6 && !strncasecmp(name, "expect", 6)) {
      if (vl == 12 && !strncasecmp(val, "100-continue", 12)) h->expect_continue = 1;
    }
    buf[ve] = '\0'; /* ends the value: a space, CR or LF was there */
  }
  if (h->transfer_encoding)
    FAIL(411, "Transfer-Encoding (chunked) request bodies are not accepted: send Content-Length");
  h->keep_alive = h->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
  return 0;
}

const char *lorem_http_head_get(const lorem_http_head *h, const char *buf, const char *name) {
  size_t nl = strlen(name);
  for (unsigned k = 0; k < h->nfields; k++)
    if (h->f[k].name_len == nl && !strncasecmp(buf + h->f[k].name, name, nl))
      return buf + h->f[k].value;
  return NULL;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

long lorem_http_path_decode(const char *in, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (in[i] != '%') {
      out[o++] = in[i];
      continue;
    }
    if (n - i < 3) return -1;
    int a = hexval(in[i + 1]), b = hexval(in[i + 2]);
    if (a < 0 || b < 0 || (a | b) == 0) return -1;
    out[o++] = (char)(a * 16 + b);
    i += 2;
  }
  return (long)o;
}
