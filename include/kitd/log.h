/* SPDX-License-Identifier: MIT */
/* libkitd: structured logging.
 *
 * Every object that logs takes an optional kitd_logger (borrowed: it must
 * outlive the object). A NULL logger means silence; kitd_logger_stderr() is
 * the ready-made default (the endpointer falls back to it for factory
 * failures). Nothing in libkitd prints otherwise.
 *
 * A log entry is a record: the time, the level, the component and the
 * key/value fields, handed to the logger's callback separately. Two writers
 * ship with the library: logfmt, as go-kit's lines look,
 *   ts=2026-11-25T09:45:30.123Z level=info component=instancer service=lorem instances=2
 * and JSON, one object a line:
 *   {"ts":"2026-11-25T09:45:30.123Z","level":"info","component":"instancer","service":"lorem","instances":"2"}
 *
 * KITD_LOG_LEVEL (debug, info, warn, error or none) in the environment, when
 * set to one of those, overrides the level of every logger: an operator can
 * turn on debug lines without a rebuild. */
#ifndef KITD_LOG_H
#define KITD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kitd_log_level {
  KITD_LOG_DEBUG = 0,
  KITD_LOG_INFO = 1,
  KITD_LOG_WARN = 2,
  KITD_LOG_ERROR = 3,
  KITD_LOG_NONE = 4
} kitd_log_level;

typedef struct kitd_logger kitd_logger;

/* One key/value field of a record; both strings borrowed for the call. */
typedef struct kitd_log_field {
  const char *key;
  const char *value; /* unquoted: the value itself */
} kitd_log_field;

/* One log entry. Everything is borrowed for the call only. */
typedef struct kitd_log_record {
  int64_t time_ns; /* CLOCK_REALTIME, ns since the epoch */
  kitd_log_level level;
  const char *component; /* "endpointer", "consul", ... */
  const kitd_log_field *fields;
  size_t nfields;
} kitd_log_record;

/* Receives one record. Runs on whichever thread logs, possibly on several
 * at once. Thread-safety: must be safe from any thread. */
typedef void (*kitd_log_fn)(void *arg, const kitd_log_record *rec);

/* Output formats of the built-in writers. */
typedef enum kitd_log_format {
  KITD_LOG_LOGFMT = 0,
  KITD_LOG_JSON = 1
} kitd_log_format;

/* A new logger passing records of `min` and above to `fn(arg, ...)`; with
 * a NULL `fn`, lines go to stderr in `format`, one write per line. Caller
 * frees with kitd_logger_free() after every object using it is freed.
 * Returns 0, KITD_EINVAL or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_logger_new(kitd_log_level min, kitd_log_fn fn, void *arg, kitd_log_format format,
                             kitd_logger **out);

/* Write `rec` as one line (no newline) in `format` into buf: always
 * NUL-terminated, cut at cap - 1. Returns the length the whole line needs
 * (as snprintf does). Thread-safety: any thread. */
KITD_API size_t kitd_log_format_record(const kitd_log_record *rec, kitd_log_format format,
                                       char *buf, size_t cap);

/* NULL is allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_logger_free(kitd_logger *lg);

/* A static logger writing info and above (or KITD_LOG_LEVEL's level) to
 * stderr in logfmt. Never freed. Thread-safety: any thread. */
KITD_API kitd_logger *kitd_logger_stderr(void);

/* Log one record: `fmt` formats its fields as logfmt key=value pairs
 * (quote values with kitd_log_quote()); they reach the callback split and
 * unquoted. A NULL logger does nothing. A record is cut at 4 KiB of
 * fields. Thread-safety: any thread. */
KITD_API void kitd_log(kitd_logger *lg, kitd_log_level level, const char *component,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
KITD_API void kitd_logv(kitd_logger *lg, kitd_log_level level, const char *component,
                        const char *fmt, va_list ap);

/* Would a line at `level` be written? Thread-safety: any thread. */
KITD_API int kitd_log_enabled(const kitd_logger *lg, kitd_log_level level);

/* "debug", "info", "warn", "error". Thread-safety: any thread. */
KITD_API const char *kitd_log_level_name(kitd_log_level level);

/* Write `value` into buf as a logfmt value, quoted and escaped when it holds
 * spaces, quotes, '=' or control bytes; always NUL-terminated, truncated to
 * cap. Returns buf. Thread-safety: any thread. */
KITD_API char *kitd_log_quote(char *buf, size_t cap, const char *value);

#ifdef __cplusplus
}
#endif
#endif
