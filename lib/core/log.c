/* SPDX-License-Identifier: MIT */
/* The logger: records of key/value fields, logfmt and JSON writers. */
#include "core/alloc.h"
#include "core/log_impl.h"
#include "kitd/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kitd/error.h"

#define KITD__LOG_LINE_MAX 4096

#define KITD__LOG_FIELDS_MAX 64

struct kitd_logger {
  kitd_log_level min;
  kitd_log_fn fn;
  void *arg;
  kitd_log_format format;
};

static kitd_logger stderr_logger = {KITD_LOG_INFO, NULL, NULL, KITD_LOG_LOGFMT};

/* KITD_LOG_LEVEL, read once: -1 when unset or not a level name. */
static int env_level = -2;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env_level(void) {
  const char *v = getenv("KITD_LOG_LEVEL");
  env_level = -1;
  for (int l = KITD_LOG_DEBUG; v && l <= KITD_LOG_NONE; l++)
    if (strcasecmp(v, kitd_log_level_name((kitd_log_level)l)) == 0) env_level = l;
}

static kitd_log_level effective_min(const kitd_logger *lg) {
  pthread_once(&env_once, read_env_level);
  return env_level >= 0 ? (kitd_log_level)env_level : lg->min;
}

kitd_logger *kitd_logger_stderr(void) { return &stderr_logger; }

int kitd_logger_new(kitd_log_level min, kitd_log_fn fn, void *arg, kitd_log_format format,
                    kitd_logger **out) {
  if (!out || min < KITD_LOG_DEBUG || min > KITD_LOG_NONE ||
      (format != KITD_LOG_LOGFMT && format != KITD_LOG_JSON))
    return KITD_EINVAL;
  kitd_logger *lg = kitd__malloc(sizeof *lg);
  if (!lg) return KITD_ENOMEM;
  lg->min = min;
  lg->fn = fn;
  lg->arg = arg;
  lg->format = format;
  *out = lg;
  return 0;
}

void kitd_logger_free(kitd_logger *lg) {
  if (lg && lg != &stderr_logger) free(lg);
}

const char *kitd_log_level_name(kitd_log_level level) {
  switch (level) {
  case KITD_LOG_DEBUG: return "debug";
  case KITD_LOG_INFO: return "info";
  case KITD_LOG_WARN: return "warn";
  case KITD_LOG_ERROR: return "error";
  case KITD_LOG_NONE: return "none";
  }
  return "unknown";
}

int kitd_log_enabled(const kitd_logger *lg, kitd_log_level level) {
  return lg && level >= effective_min(lg) && level < KITD_LOG_NONE;
}

/* One byte of a quoted value, escaped for logfmt (json 0: control bytes
 * as \xHH) or JSON (json 1: as \u00HH), into esc; returns its length. */
static size_t escape_byte(unsigned char c, int json, char esc[8]) {
  if (c == '"' || c == '\\') {
    esc[0] = '\\';
    esc[1] = (char)c;
    return 2;
  }
  if (c == '\n') return memcpy(esc, "\\n", 2), 2;
  if (c == '\t') return memcpy(esc, "\\t", 2), 2;
  if (c < ' ' || c == 0x7f) return (size_t)snprintf(esc, 8, json ? "\\u%04x" : "\\x%02x", c);
  esc[0] = (char)c;
  return 1;
}

char *kitd_log_quote(char *buf, size_t cap, const char *value) {
  if (!buf || cap == 0) return buf;
  if (!value) value = "";
  int needs = value[0] == '\0';
  for (const unsigned char *p = (const unsigned char *)value; *p && !needs; p++)
    if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f) needs = 1;
  size_t o = 0;
  if (!needs) {
    size_t n = strnlen(value, cap - 1);
    memcpy(buf, value, n);
    buf[n] = '\0';
    return buf;
  }
  if (cap < 3) {
    buf[0] = '\0';
    return buf;
  }
  buf[o++] = '"';
  for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
    char esc[8];
    size_t n = escape_byte(*p, 0, esc);
    if (o + n + 2 > cap) break; /* room for the closing quote and NUL */
    memcpy(buf + o, esc, n);
    o += n;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

/* Split logfmt text into fields, unquoting values in place. Text that is
 * not key=value (a bare word) becomes a field with key "msg". */
static size_t parse_fields(char *t, kitd_log_field *f, size_t max) {
  size_t n = 0;
  while (*t && n < max) {
    while (*t == ' ') t++;
    if (!*t) break;
    char *k = t;
    while (*t && *t != '=' && *t != ' ') t++;
    if (*t != '=') { /* a bare word */
      if (*t) *t++ = '\0';
      f[n].key = "msg";
      f[n++].value = k;
      continue;
    }
    *t++ = '\0';
    char *v = t, *o = t;
    if (*t == '"') {
      t++;
      while (*t && *t != '"') {
        if (*t == '\\' && t[1]) {
          t++;
          if (*t == 'n') *o++ = '\n';
          else if (*t == 't') *o++ = '\t';
          else if (*t == 'x' && t[1] && t[2]) {
            char hex[3] = {t[1], t[2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            t += 2;
          } else *o++ = *t;
          t++;
        } else {
          *o++ = *t++;
        }
      }
      if (*t == '"') t++;
    } else {
      while (*t && *t != ' ') *o++ = *t++;
    }
    char next = *t;
    *o = '\0';
    if (next) t++;
    f[n].key = k;
    f[n++].value = v;
  }
  return n;
}

/* Append to buf at *o, never past cap - 1; count what it needs in *need. */
static void put(char *buf, size_t cap, size_t *o, size_t *need, const char *s, size_t n) {
  *need += n;
  if (*o + 1 >= cap) return;
  size_t room = cap - 1 - *o;
  if (n > room) n = room;
  memcpy(buf + *o, s, n);
  *o += n;
}

static void put_json_str(char *buf, size_t cap, size_t *o, size_t *need, const char *v) {
  put(buf, cap, o, need, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    char esc[8];
    size_t n = escape_byte(*p, 1, esc);
    put(buf, cap, o, need, esc, n);
  }
  put(buf, cap, o, need, "\"", 1);
}

size_t kitd_log_format_record(const kitd_log_record *rec, kitd_log_format format, char *buf,
                              size_t cap) {
  if (!rec) return 0;
  char tsb[96];
  time_t sec = (time_t)(rec->time_ns / 1000000000);
  struct tm tm;
  gmtime_r(&sec, &tm);
  snprintf(tsb, sizeof tsb, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((rec->time_ns / 1000000) % 1000));
  const char *comp = rec->component ? rec->component : "kitd";
  size_t o = 0, need = 0;
  char tmp[1];
  if (!buf || cap == 0) {
    buf = tmp;
    cap = 0;
  }
  if (format == KITD_LOG_JSON) {
    put(buf, cap, &o, &need, "{\"ts\":", 6);
    put_json_str(buf, cap, &o, &need, tsb);
    put(buf, cap, &o, &need, ",\"level\":", 9);
    put_json_str(buf, cap, &o, &need, kitd_log_level_name(rec->level));
    put(buf, cap, &o, &need, ",\"component\":", 13);
    put_json_str(buf, cap, &o, &need, comp);
    for (size_t i = 0; i < rec->nfields; i++) {
      put(buf, cap, &o, &need, ",", 1);
      put_json_str(buf, cap, &o, &need, rec->fields[i].key);
      put(buf, cap, &o, &need, ":", 1);
      put_json_str(buf, cap, &o, &need, rec->fields[i].value);
    }
    put(buf, cap, &o, &need, "}", 1);
  } else {
    char q[KITD__LOG_LINE_MAX];
    put(buf, cap, &o, &need, "ts=", 3);
    put(buf, cap, &o, &need, tsb, strlen(tsb));
    put(buf, cap, &o, &need, " level=", 7);
    put(buf, cap, &o, &need, kitd_log_level_name(rec->level),
        strlen(kitd_log_level_name(rec->level)));
    put(buf, cap, &o, &need, " component=", 11);
    kitd_log_quote(q, sizeof q, comp);
    put(buf, cap, &o, &need, q, strlen(q));
    for (size_t i = 0; i < rec->nfields; i++) {
      put(buf, cap, &o, &need, " ", 1);
      put(buf, cap, &o, &need, rec->fields[i].key, strlen(rec->fields[i].key));
      put(buf, cap, &o, &need, "=", 1);
      kitd_log_quote(q, sizeof q, rec->fields[i].value);
      put(buf, cap, &o, &need, q, strlen(q));
    }
  }
  if (cap) buf[o] = '\0';
  return need;
}

void kitd_logv(kitd_logger *lg, kitd_log_level level, const char *component, const char *fmt,
               va_list ap) {
  if (!kitd_log_enabled(lg, level)) return;
  char text[KITD__LOG_LINE_MAX];
  text[0] = '\0';
  if (fmt && fmt[0]) {
    int m = vsnprintf(text, sizeof text, fmt, ap);
    if (m < 0) text[0] = '\0';
  }
  kitd_log_field fields[KITD__LOG_FIELDS_MAX];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  kitd_log_record rec;
  rec.time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  rec.level = level;
  rec.component = component ? component : "kitd";
  rec.fields = fields;
  rec.nfields = parse_fields(text, fields, KITD__LOG_FIELDS_MAX);
  if (lg->fn) {
    lg->fn(lg->arg, &rec);
    return;
  }
  /* One write per line so lines from several threads never interleave. */
  char out[KITD__LOG_LINE_MAX + 1];
  size_t n = kitd_log_format_record(&rec, lg->format, out, sizeof out - 1);
  if (n > sizeof out - 2) n = sizeof out - 2;
  out[n] = '\n';
  ssize_t w = write(STDERR_FILENO, out, n + 1);
  (void)w;
}

void kitd_log(kitd_logger *lg, kitd_log_level level, const char *component, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kitd_logv(lg, level, component, fmt, ap);
  va_end(ap);
}

char *kitd__log_quote_dup(const char *value) {
  if (!value) value = "";
  size_t cap = strlen(value) * 4 + 3; /* "\xNN" per byte, quotes, NUL */
  char *q = kitd__malloc(cap);
  return q ? kitd_log_quote(q, cap, value) : NULL;
}

void kitd__log_about(kitd_logger *lg, kitd_log_level lvl, const char *component, const char *key,
                     const char *value, const char *fmt, ...) {
  if (!kitd_log_enabled(lg, lvl)) return;
  char *q = kitd__log_quote_dup(value);
  va_list ap;
  va_start(ap, fmt);
  char *rest = kitd__vasprintf(fmt, ap);
  va_end(ap);
  kitd_log(lg, lvl, component, "%s=%s %s", key, q ? q : "?", rest ? rest : "");
  free(q);
  free(rest);
}
