/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition format, version 0.0.4, over the walk of a
 * registry (kitd_metrics_write_prometheus). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kitd/error.h"
#include "kitd/metrics.h"

struct writer {
  FILE *out;
  const char *last; /* the family whose HELP and TYPE are written */
  int err;
};

/* HELP text escapes backslash and newline; a label value also the
 * double quote. */
static void put_escaped(FILE *f, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\') fputs("\\\\", f);
    else if (*s == '\n') fputs("\\n", f);
    else if (*s == '"' && quote) fputs("\\\"", f);
    else fputc(*s, f);
  }
}

static void put_value(FILE *f, double v) {
  if (isnan(v)) fputs("NaN", f);
  else if (isinf(v)) fputs(v > 0 ? "+Inf" : "-Inf", f);
  /* Whole numbers below 2^53 print exactly; the cast, after the range
   * check, needs no libm (clang calls floor() out of line). */
  else if (fabs(v) < 9007199254740992.0 && v == (double)(long long)v) fprintf(f, "%.0f", v);
  else fprintf(f, "%.9g", v);
}

/* {a="x",b="y"} plus an optional le, or nothing when there is no label. */
static void put_labels(FILE *f, const kitd_metric *m, const char *le) {
  if (!m->nlabels && !le) return;
  fputc('{', f);
  for (size_t i = 0; i < m->nlabels; i++) {
    fprintf(f, "%s%s=\"", i ? "," : "", m->labels[i].name);
    put_escaped(f, m->labels[i].value, 1);
    fputc('"', f);
  }
  if (le) fprintf(f, "%sle=\"%s\"", m->nlabels ? "," : "", le);
  fputc('}', f);
}

static void put_series(void *arg, const kitd_metric *m) {
  struct writer *w = arg;
  FILE *f = w->out;
  if (!w->last || strcmp(w->last, m->name)) {
    static const char *const types[] = {"counter", "gauge", "histogram"};
    fprintf(f, "# HELP %s ", m->name);
    put_escaped(f, m->help, 0);
    fprintf(f, "\n# TYPE %s %s\n", m->name, types[m->type]);
    w->last = m->name; /* a static string of the walk */
  }
  if (m->type != KITD_METRIC_HISTOGRAM) {
    fputs(m->name, f);
    put_labels(f, m, NULL);
    fputc(' ', f);
    put_value(f, m->value);
    fputc('\n', f);
    return;
  }
  for (size_t b = 0; b < m->nbuckets; b++) {
    char le[32];
    if (isinf(m->bounds[b])) snprintf(le, sizeof le, "+Inf");
    else snprintf(le, sizeof le, "%g", m->bounds[b]);
    fprintf(f, "%s_bucket", m->name);
    put_labels(f, m, le);
    fprintf(f, " %llu\n", (unsigned long long)m->cumulative[b]);
  }
  fprintf(f, "%s_sum", m->name);
  put_labels(f, m, NULL);
  fputc(' ', f);
  put_value(f, m->sum);
  fprintf(f, "\n%s_count", m->name);
  put_labels(f, m, NULL);
  fprintf(f, " %llu\n", (unsigned long long)m->count);
}

int kitd_metrics_write_prometheus(kitd_metrics *m, FILE *out) {
  if (!m || !out) return KITD_EINVAL;
  struct writer w = {out, NULL, 0};
  int rc = kitd_metrics_walk(m, put_series, &w);
  if (rc) return rc;
  if (fflush(out) != 0 || ferror(out)) return KITD_EIO;
  return 0;
}
