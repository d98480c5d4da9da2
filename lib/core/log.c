/* logfmt logger. */
#include "core/alloc.h"
#include "core/log_impl.h"
#include "kitd/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kitd/error.h"

#define KITD__LOG_LINE_MAX 4096

struct kitd_logger {
  kitd_log_level min;
  kitd_log_fn fn;
  void *arg;
};

static kitd_logger stderr_logger = {KITD_LOG_INFO, NULL, NULL};

kitd_logger *kitd_logger_stderr(void) { return &stderr_logger; }

int kitd_logger_new(kitd_log_level min, kitd_log_fn fn, void *arg, kitd_logger **out) {
  if (!out || min < KITD_LOG_DEBUG || min > KITD_LOG_NONE) return KITD_EINVAL;
  kitd_logger *lg = kitd__malloc(sizeof *lg);
  if (!lg) return KITD_ENOMEM;
  lg->min = min;
  lg->fn = fn;
  lg->arg = arg;
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
  return lg && level >= lg->min && level < KITD_LOG_NONE;
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
  if (cap < 3) { buf[0] = '\0'; return buf; }
  buf[o++] = '"';
  for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
    char esc[8];
    size_t n;
    if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; n = 2; }
    else if (*p == '\n') { memcpy(esc, "\\n", 2); n = 2; }
    else if (*p == '\t') { memcpy(esc, "\\t", 2); n = 2; }
    else if (*p < ' ' || *p == 0x7f) { n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p); }
    else { esc[0] = (char)*p; n = 1; }
    if (o + n + 2 > cap) break; /* room for the closing quote and NUL */
    memcpy(buf + o, esc, n);
    o += n;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

void kitd_logv(kitd_logger *lg, kitd_log_level level, const char *component,
               const char *fmt, va_list ap) {
  if (!kitd_log_enabled(lg, level)) return;
  char line[KITD__LOG_LINE_MAX];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line,
                   "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s component=%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                   tm.tm_sec, ts.tv_nsec / 1000000, kitd_log_level_name(level),
                   component ? component : "kitd");
  if (n < 0) return;
  size_t o = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
  if (fmt && fmt[0] && o + 1 < sizeof line) {
    line[o++] = ' ';
    int m = vsnprintf(line + o, sizeof line - o, fmt, ap);
    if (m > 0) o += (size_t)m < sizeof line - o ? (size_t)m : sizeof line - o - 1;
  }
  line[o] = '\0';
  if (lg->fn) {
    lg->fn(lg->arg, level, line);
    return;
  }
  /* One write per line so lines from several threads never interleave. */
  char out[KITD__LOG_LINE_MAX + 1];
  memcpy(out, line, o);
  out[o] = '\n';
  ssize_t w = write(STDERR_FILENO, out, o + 1);
  (void)w;
}

void kitd_log(kitd_logger *lg, kitd_log_level level, const char *component,
              const char *fmt, ...) {
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

void kitd__log_about(kitd_logger *lg, kitd_log_level lvl, const char *component,
                     const char *key, const char *value, const char *fmt, ...) {
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
