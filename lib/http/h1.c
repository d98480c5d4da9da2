/* SPDX-License-Identifier: MIT */
/* HTTP/1.x response parsing for the plain-http fast path (see h1.h).
 *
 * Hostile input is the design case: every length is checked before it is
 * used, numbers are parsed by hand with overflow checks, the head is
 * bounded (o->max_header for the status line, the fields and any 1xx
 * interim answers before it; the same again for chunked trailers), and
 * anything ambiguous is refused rather than guessed: a Content-Length
 * together with a Transfer-Encoding, two different Content-Lengths, a
 * transfer coding other than chunked, obsolete line folding, control
 * bytes in a field, a 101. Lines may end in CRLF or a bare LF. */
#include "http/h1.h"

#include <stdint.h>
#include <string.h>

#include "kitd/error.h"

#define CHUNK_LINE_MAX 4096 /* a chunk-size line with its extensions */

static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Case-insensitive: the n bytes at s equal the literal. */
static int ieq(const char *s, size_t n, const char *lit) {
  size_t m = strlen(lit);
  if (n != m) return 0;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != lit[i]) return 0;
  return 1;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* A field value or reason byte: visible, space, tab or obs-text. */
static int is_vbyte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

struct fields {
  int64_t cl; /* -1 if none */
  int te, chunked, conn_close, conn_keep;
  const char *ctype; /* the Content-Type value, not terminated */
  size_t ctype_len;
};

/* Find the line starting at p. Lines must end before `limit` (an offset).
 * Returns 1 with *le = end of the content (CR excluded) and *next = start
 * of the next line; 0 when more bytes are needed; KITD_EPROTO when the
 * line runs past the limit. */
static int line(const char *buf, size_t len, size_t p, size_t limit, size_t *le, size_t *next) {
  size_t stop = len < limit ? len : limit;
  const char *nl = p < stop ? memchr(buf + p, '\n', stop - p) : NULL;
  if (!nl) return len >= limit ? KITD_EPROTO : 0;
  size_t e = (size_t)(nl - buf);
  *next = e + 1;
  if (e > p && buf[e - 1] == '\r') e--;
  *le = e;
  return 1;
}

static int parse_cl(const char *v, size_t n, int64_t *out) {
  if (n == 0 || n > 18) return KITD_EPROTO; /* 18 digits cannot overflow */
  int64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return KITD_EPROTO;
    x = x * 10 + (v[i] - '0');
  }
  *out = x;
  return 0;
}

/* The Connection header: a comma-separated token list. */
static void parse_connection(const char *v, size_t n, struct fields *f) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t s = i;
    while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t') i++;
    if (ieq(v + s, i - s, "close")) f->conn_close = 1;
    else if (ieq(v + s, i - s, "keep-alive")) f->conn_keep = 1;
  }
}

static int field(const char *name, size_t nn, const char *v, size_t vn, struct fields *f) {
  if (ieq(name, nn, "content-length")) {
    int64_t x;
    if (parse_cl(v, vn, &x)) return KITD_EPROTO;
    if (f->cl >= 0 && f->cl != x) return KITD_EPROTO;
    f->cl = x;
  } else if (ieq(name, nn, "transfer-encoding")) {
    if (f->te || !ieq(v, vn, "chunked")) return KITD_EPROTO; /* only plain chunked */
    f->te = f->chunked = 1;
  } else if (ieq(name, nn, "connection")) {
    parse_connection(v, vn, f);
  } else if (ieq(name, nn, "content-type")) {
    f->ctype = v;
    f->ctype_len = vn;
  }
  return 0;
}

/* Field lines from p up to and including the empty line, all before
 * `limit`. `f` NULL: trailers (validated, ignored). Returns 1 with *end
 * after the empty line, 0 for more bytes, or KITD_EPROTO. */
static int parse_fields(const char *buf, size_t len, size_t p, size_t limit, struct fields *f,
                        size_t *end) {
  for (;;) {
    size_t le, next;
    int rc = line(buf, len, p, limit, &le, &next);
    if (rc <= 0) return rc;
    if (le == p) {
      *end = next;
      return 1;
    }
    size_t i = p;
    while (i < le && is_tchar((unsigned char)buf[i])) i++;
    if (i == p || i == le || buf[i] != ':') return KITD_EPROTO; /* also obs-fold */
    size_t nn = i - p;
    i++;
    while (i < le && (buf[i] == ' ' || buf[i] == '\t')) i++;
    size_t ve = le;
    while (ve > i && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) ve--;
    for (size_t k = i; k < ve; k++)
      if (!is_vbyte((unsigned char)buf[k])) return KITD_EPROTO;
    if (f && field(buf + p, nn, buf + i, ve - i, f)) return KITD_EPROTO;
    p = next;
  }
}

/* "HTTP/1.x NNN reason": the status and minor version. */
static int status_line(const char *s, size_t n, int *status, int *minor) {
  if (n < 12 || memcmp(s, "HTTP/1.", 7) || s[7] < '0' || s[7] > '9' || s[8] != ' ')
    return KITD_EPROTO;
  for (int i = 9; i < 12; i++)
    if (s[i] < '0' || s[i] > '9') return KITD_EPROTO;
  if (s[9] == '0') return KITD_EPROTO;
  if (n > 12 && s[12] != ' ') return KITD_EPROTO;
  for (size_t i = 13; i < n; i++)
    if (!is_vbyte((unsigned char)s[i])) return KITD_EPROTO;
  *status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  *minor = s[7] - '0';
  return 0;
}

/* Chunked body from r->body_off. */
static int parse_chunked(const char *buf, size_t len, const kitd__h1_opts *o, size_t max_header,
                         kitd__h1_resp *r) {
  size_t p = r->body_off, total = 0;
  for (;;) {
    size_t le, next;
    size_t limit = p + CHUNK_LINE_MAX;
    int rc = line(buf, len, p, limit, &le, &next);
    if (rc < 0) return rc;
    if (rc == 0) {
      r->need = len + 1;
      return o->eof ? KITD_EPROTO : 0;
    }
    size_t i = p, size = 0;
    while (i < le && hexval((unsigned char)buf[i]) >= 0) {
      if (size > (o->max_body >> 4)) return KITD_ETOOBIG; /* before it can overflow */
      size = size * 16 + (size_t)hexval((unsigned char)buf[i]);
      i++;
    }
    if (i == p) return KITD_EPROTO;
    while (i < le && (buf[i] == ' ' || buf[i] == '\t')) i++;
    if (i < le) { /* chunk extensions: ignored, but only printable bytes */
      if (buf[i] != ';') return KITD_EPROTO;
      for (; i < le; i++)
        if (!is_vbyte((unsigned char)buf[i])) return KITD_EPROTO;
    }
    if (size > o->max_body - total) return KITD_ETOOBIG;
    p = next;
    if (size == 0) {
      size_t end;
      rc = parse_fields(buf, len, p, p + max_header, NULL, &end);
      if (rc < 0) return rc;
      if (rc == 0) {
        r->need = len + 1;
        return o->eof ? KITD_EPROTO : 0;
      }
      r->body_len = total;
      r->consumed = end;
      return 1;
    }
    total += size;
    size_t d = p + size; /* the CRLF after the data */
    if (len < d + 1 || (buf[d] == '\r' && len < d + 2)) {
      r->need = len < d + 1 ? d + 1 : d + 2;
      return o->eof ? KITD_EPROTO : 0;
    }
    if (buf[d] == '\r') {
      if (buf[d + 1] != '\n') return KITD_EPROTO;
      p = d + 2;
    } else if (buf[d] == '\n') {
      p = d + 1;
    } else {
      return KITD_EPROTO;
    }
  }
}

int kitd__h1_parse_response(const char *buf, size_t len, const kitd__h1_opts *oo,
                            kitd__h1_resp *r) {
  kitd__h1_opts ob = *oo, *o = &ob;
  if (o->max_body > SIZE_MAX / 4) o->max_body = SIZE_MAX / 4; /* offsets cannot wrap */
  size_t max_header = o->max_header ? o->max_header : KITD__H1_MAX_HEADER;
  memset(r, 0, sizeof *r);
  r->content_length = -1;
  size_t p = 0;
  struct fields f;
  for (;;) { /* interim 1xx answers, then the final one */
    size_t le, next;
    int rc = line(buf, len, p, max_header, &le, &next);
    if (rc < 0) return rc;
    if (rc == 0) {
      /* Not even "HTTP/1.": no use waiting for the rest of the line. */
      size_t n = len - p < 7 ? len - p : 7;
      if (memcmp(buf + p, "HTTP/1.", n)) return KITD_EPROTO;
      r->need = len + 1;
      return o->eof ? KITD_EPROTO : 0;
    }
    if (status_line(buf + p, le - p, &r->status, &r->minor)) return KITD_EPROTO;
    memset(&f, 0, sizeof f);
    f.cl = -1;
    size_t end;
    rc = parse_fields(buf, len, next, max_header, &f, &end);
    if (rc < 0) return rc;
    if (rc == 0) {
      r->need = len + 1;
      return o->eof ? KITD_EPROTO : 0;
    }
    p = end;
    if (r->status >= 200) break;
    if (r->status == 101) return KITD_EPROTO; /* we never ask to switch */
  }
  if (f.te && f.cl >= 0) return KITD_EPROTO; /* ambiguous framing */
  r->chunked = f.chunked;
  r->content_length = f.cl;
  r->body_off = p;
  if (f.ctype) r->ctype_off = (size_t)(f.ctype - buf), r->ctype_len = f.ctype_len;
  r->close = f.conn_close || (r->minor == 0 && !f.conn_keep);
  if (o->head || r->status == 204 || r->status == 304) {
    r->chunked = 0;
    r->consumed = p;
    return 1;
  }
  if (f.chunked) {
    if (r->minor == 0) r->close = 1;
    return parse_chunked(buf, len, o, max_header, r);
  }
  if (f.cl >= 0) {
    if ((uint64_t)f.cl > (uint64_t)o->max_body) return KITD_ETOOBIG;
    size_t want = p + (size_t)f.cl;
    if (len < want) {
      r->need = want;
      return o->eof ? KITD_EPROTO : 0;
    }
    r->body_len = (size_t)f.cl;
    r->consumed = want;
    return 1;
  }
  /* Neither: the body runs until the server closes. */
  r->close = 1;
  if (len - p > o->max_body) return KITD_ETOOBIG;
  if (!o->eof) {
    r->need = len + 1;
    return 0;
  }
  r->body_len = len - p;
  r->consumed = len;
  return 1;
}

void kitd__h1_dechunk(char *buf, const kitd__h1_resp *r) {
  if (!r->chunked) return;
  size_t p = r->body_off, w = r->body_off;
  for (;;) {
    size_t size = 0;
    int v;
    while ((v = hexval((unsigned char)buf[p])) >= 0) size = size * 16 + (size_t)v, p++;
    p = (size_t)((char *)memchr(buf + p, '\n', r->consumed - p) - buf) + 1;
    if (size == 0) return;
    memmove(buf + w, buf + p, size);
    w += size;
    p += size;
    p += buf[p] == '\r' ? 2 : 1;
  }
}
