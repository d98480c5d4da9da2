/* libkitd: logfmt logging.
 *
 * Lines look like go-kit's:
 *   ts=2026-11-25T09:45:30.123Z level=info component=instancer service=lorem instances=2
 * Every object that logs takes an optional kitd_logger (borrowed: it must
 * outlive the object). A NULL logger means silence; kitd_logger_stderr() is
 * the ready-made default. Nothing in libkitd prints otherwise. */
#ifndef KITD_LOG_H
#define KITD_LOG_H

#include <stdarg.h>
#include <stddef.h>

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

/* Receives one whole line (no trailing newline; borrowed for the call).
 * Runs on whichever thread logs, possibly on several at once.
 * Thread-safety: must be safe from any thread. */
typedef void (*kitd_log_fn)(void *arg, kitd_log_level level, const char *line);

/* A new logger passing lines of `min` and above to `fn(arg, ...)`; with a
 * NULL `fn` lines go to stderr, one write per line. Caller frees with
 * kitd_logger_free() after every object using it is freed.
 * Returns 0, KITD_EINVAL or KITD_ENOMEM. Thread-safety: any thread. */
KITD_API int kitd_logger_new(kitd_log_level min, kitd_log_fn fn, void *arg,
                             kitd_logger **out);

/* NULL is allowed. Thread-safety: one thread at a time per handle. */
KITD_API void kitd_logger_free(kitd_logger *lg);

/* A static logger writing info and above to stderr. Never freed.
 * Thread-safety: any thread. */
KITD_API kitd_logger *kitd_logger_stderr(void);

/* Log one line: "ts=… level=… component=<component> " then the formatted
 * `fmt` (which should be key=value pairs; quote values with
 * kitd_log_quote()). A NULL logger does nothing. Lines are cut at 4 KiB.
 * Thread-safety: any thread. */
KITD_API void kitd_log(kitd_logger *lg, kitd_log_level level,
                       const char *component, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
KITD_API void kitd_logv(kitd_logger *lg, kitd_log_level level,
                        const char *component, const char *fmt, va_list ap);

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
