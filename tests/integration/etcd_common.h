/* SPDX-License-Identifier: MIT */
/* Shared by the etcd integration tests (header-only): a subscriber that
 * records every event, a logger that keeps lines, and waits bounded by
 * KITD_TEST_TIMEOUT_SCALE. */
#ifndef KITD_TEST_ETCD_COMMON_H
#define KITD_TEST_ETCD_COMMON_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/etcd_server.h"
#include "../support/fixture.h"
#include "kitd/kitd.h"

#define REC_MAX 256

/* Every event as "a,b" (good) or "!ERR:a,b" (error with the kept set). */
typedef struct rec {
  pthread_mutex_t mu;
  char *ev[REC_MAX];
  int n;
} rec;

static inline void rec_init(rec *r) {
  memset(r, 0, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
}

static inline void rec_clear(rec *r) {
  for (int i = 0; i < r->n; i++) free(r->ev[i]);
  pthread_mutex_destroy(&r->mu);
}

static inline void on_event(void *arg, const kitd_event *ev) {
  rec *r = arg;
  size_t cap = 16;
  for (size_t i = 0; i < ev->count; i++) cap += strlen(kitd_instance_address(ev->instances[i])) + 1;
  char *s = malloc(cap);
  if (!s) return;
  size_t o = 0;
  if (ev->err) o += (size_t)snprintf(s, cap, "!%s:", kitd_err_name(ev->err));
  s[o] = '\0';
  for (size_t i = 0; i < ev->count; i++)
    o += (size_t)snprintf(s + o, cap - o, "%s%s", i ? "," : "",
                          kitd_instance_address(ev->instances[i]));
  pthread_mutex_lock(&r->mu);
  if (r->n < REC_MAX) r->ev[r->n++] = s;
  else free(s);
  pthread_mutex_unlock(&r->mu);
}

/* The last event (copied into out), and how many there were. */
static inline int rec_last(rec *r, char *out, size_t cap) {
  pthread_mutex_lock(&r->mu);
  int n = r->n;
  snprintf(out, cap, "%s", n ? r->ev[n - 1] : "(none)");
  pthread_mutex_unlock(&r->mu);
  return n;
}

/* Wait until the last event is `want` (up to ms, scaled). */
static inline int rec_wait(rec *r, const char *want, long ms) {
  char got[1024];
  for (long t = 0; t < ms * kt_scale(); t += 20) {
    rec_last(r, got, sizeof got);
    if (strcmp(got, want) == 0) return 1;
    kt_sleep_ms(20);
  }
  rec_last(r, got, sizeof got);
  fprintf(stderr, "waited for [%s], last event [%s]\n", want, got);
  return 0;
}

/* Wait until the last event is an error. */
static inline int rec_wait_error(rec *r, long ms) {
  char got[1024];
  for (long t = 0; t < ms * kt_scale(); t += 20) {
    rec_last(r, got, sizeof got);
    if (got[0] == '!') return 1;
    kt_sleep_ms(20);
  }
  return 0;
}

/* Count events equal to `s`. */
static inline int rec_count(rec *r, const char *s) {
  int k = 0;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->n; i++) k += strcmp(r->ev[i], s) == 0;
  pthread_mutex_unlock(&r->mu);
  return k;
}

/* Count error events. */
static inline int rec_errors(rec *r) {
  int k = 0;
  pthread_mutex_lock(&r->mu);
  for (int i = 0; i < r->n; i++) k += r->ev[i][0] == '!';
  pthread_mutex_unlock(&r->mu);
  return k;
}

/* Log lines kept for assertions. */
typedef struct loglines {
  pthread_mutex_t mu;
  char *all;
  size_t len;
} loglines;

static inline void log_keep(void *arg, const kitd_log_record *rec) {
  loglines *l = arg;
  size_t n = kitd_log_format_record(rec, KITD_LOG_LOGFMT, NULL, 0);
  char *line = malloc(n + 1);
  if (!line) return;
  kitd_log_format_record(rec, KITD_LOG_LOGFMT, line, n + 1);
  pthread_mutex_lock(&l->mu);
  char *a = realloc(l->all, l->len + n + 2);
  if (a) {
    memcpy(a + l->len, line, n);
    a[l->len + n] = '\n';
    a[l->len + n + 1] = '\0';
    l->all = a;
    l->len += n + 1;
  }
  pthread_mutex_unlock(&l->mu);
  if (getenv("KITD_TEST_VERBOSE")) fprintf(stderr, "%s\n", line);
  free(line);
}

static inline int log_has(loglines *l, const char *s) {
  pthread_mutex_lock(&l->mu);
  int y = l->all && strstr(l->all, s) != NULL;
  pthread_mutex_unlock(&l->mu);
  return y;
}

/* The test binary's etcd, started once for the group. */
static etcd_server srv;

static inline int etcd_setup_with(const char *ca, const char *cert, const char *key,
                                  const char *const *extra) {
  if (!etcd_server_available()) {
    fprintf(stderr, "etcd not installed (Debian etcd-server): skipped\n");
    return -1;
  }
  return etcd_server_start(&srv, ca, cert, key, extra);
}

static inline int etcd_setup(void **state) {
  (void)state;
  return etcd_setup_with(NULL, NULL, NULL, NULL);
}

static inline int etcd_teardown(void **state) {
  (void)state;
  etcd_server_stop(&srv);
  return 0;
}

static inline kitd_etcd *etcd_client(etcd_server *s) {
  kitd_etcd_opts o;
  kitd_etcd_opts_init(&o);
  o.endpoints = s->url;
  o.ca_file = s->ca;
  kitd_etcd *c = NULL;
  if (kitd_etcd_new(&o, NULL, &c) != 0) return NULL;
  return c;
}

#endif
