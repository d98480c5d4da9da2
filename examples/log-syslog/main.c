/* SPDX-License-Identifier: MIT */
/* log-syslog: an adapter from libkitd's structured log records to
 * syslog(3), the example of a kitd_log_fn.
 *
 *   log-syslog [IDENT]
 *
 * Each record becomes one syslog message at the matching priority (debug,
 * info, warning, err), its component and fields written as logfmt after
 * the level (kitd_log_format_record() does the quoting). The program opens
 * the log with LOG_PERROR, so the message shows on stderr too, logs one
 * record through the adapter and exits. */
#include <stdio.h>
#include <syslog.h>

#include <kitd/log.h>

static int priority(kitd_log_level l) {
  switch (l) {
  case KITD_LOG_DEBUG: return LOG_DEBUG;
  case KITD_LOG_INFO: return LOG_INFO;
  case KITD_LOG_WARN: return LOG_WARNING;
  case KITD_LOG_ERROR:
  case KITD_LOG_NONE: break;
  }
  return LOG_ERR;
}

/* The adapter. syslog stamps the message with its own time; the record's
 * (ts=, with milliseconds) stays in the line as well. */
static void to_syslog(void *arg, const kitd_log_record *rec) {
  (void)arg;
  char line[1024];
  size_t n = kitd_log_format_record(rec, KITD_LOG_LOGFMT, line, sizeof line);
  syslog(priority(rec->level), "%s%s", line, n >= sizeof line ? " (cut)" : "");
}

int main(int argc, char **argv) {
  openlog(argc > 1 ? argv[1] : "log-syslog", LOG_PID | LOG_PERROR, LOG_USER);
  kitd_logger *lg;
  if (kitd_logger_new(KITD_LOG_INFO, to_syslog, NULL, KITD_LOG_LOGFMT, &lg) != 0) return 1;
  char q[64];
  kitd_log(lg, KITD_LOG_WARN, "endpointer", "msg=\"factory failed; instance skipped\" instance=%s",
           kitd_log_quote(q, sizeof q, "10.0.0.7:8080"));
  kitd_logger_free(lg);
  closelog();
  return 0;
}
