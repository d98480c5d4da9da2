/* SPDX-License-Identifier: MIT
 * kitd-watch: print a service's instance set each time it changes.
 *
 *   kitd-watch [OPTION]... SOURCE
 *
 * SOURCE is a Consul service name, or any source string source.h knows
 * (consul://HOST:PORT/SERVICE?tag=T, dns+srv:///NAME, file:///PATH, ...).
 *
 * One logfmt line per change on stdout:
 *   ts=... service=lorem count=2 instances=127.0.0.1:7001,127.0.0.1:7002
 * with --verbose, followed by one line per instance:
 *   ts=... service=lorem instance=127.0.0.1:7001 weight=1 status=passing zone=a
 * and per failed watch, on stderr:
 *   ts=... level=error service=lorem err=ECONNECT detail="..." count=2
 * The agent, token and TLS come from the CONSUL_* environment variables.
 * --stats prints, on exit, what the watch cost and how it went (from its
 * metrics, kitd/metrics.h):
 *   ts=... service=lorem stats requests=12 seconds=30.0 requests_per_min=24.0 errors=1 last_error="..."
 * --once prints the current set and exits (0, or 1 on error). SIGINT and
 * SIGTERM stop it cleanly. Usage errors exit with 2. docs/man/kitd-watch.1
 * is its manual. */
#include <errno.h>
#include <getopt.h>
#include <kitd/consul.h>
#include <kitd/error.h>
#include <kitd/instance.h>
#include <kitd/kitd.h>
#include <kitd/metrics.h>
#include <kitd/source.h>
#include <kitd/version.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "kitd-watch"
#define MAX_TAGS 64

static void usage(FILE *f) {
  fputs("Usage: " PROG " [OPTION]... SOURCE\n"
        "Print the instance set of SOURCE each time it changes, one logfmt line\n"
        "per change on stdout. SOURCE is a Consul service name, or a source string:\n"
        "  consul://HOST:PORT/SERVICE?tag=T&passing=1&dc=DC   consul:///SERVICE\n"
        "  dns+srv://SERVER:PORT/NAME   dns+srv:///NAME   file:///PATH\n"
        "The Consul agent comes from CONSUL_HTTP_ADDR (default 127.0.0.1:8500),\n"
        "its token and TLS from the other CONSUL_* variables. The Consul options\n"
        "below apply to Consul sources; the source string's query wins.\n"
        "\n"
        "  -t, --tag=TAG      only instances with TAG (repeat for several tags)\n"
        "      --passing      only instances whose checks pass (the default)\n"
        "  -a, --all          every instance, whatever its checks say\n"
        "      --dc=DC        the datacenter to read from\n"
        "  -w, --wait=DUR     longest blocking query, e.g. 30s, 500ms, 5m\n"
        "  -1, --once         print the current set and exit\n"
        "  -v, --verbose      also print each instance's weight, status and zone\n"
        "      --stats        on exit, print the registry requests per minute and\n"
        "                     the last error of the watch\n"
        "      --debug        log the library's debug lines on stderr\n"
        "  -h, --help         print this help and exit\n"
        "  -V, --version      print the version and exit\n"
        "\n"
        "Exit status: 0 on success (or when stopped by SIGINT or SIGTERM),\n"
        "1 if the lookup or the watch cannot be made, 2 on a usage error.\n",
        f);
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, PROG ": ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
  return 2;
}

/* A duration: one or more NUMBER UNIT pairs ("1m30s"), UNIT one of ms, s,
 * m, h; a bare number means seconds, as the older --wait SECONDS did.
 * Returns milliseconds, or -1 for anything else (zero included). */
static int64_t parse_duration_ms(const char *s) {
  int64_t total = 0;
  if (!*s) return -1;
  while (*s) {
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v > INT64_MAX / 3600000) return -1;
    int64_t unit;
    if (*end == '\0' && total == 0) unit = 1000;
    else if (strncmp(end, "ms", 2) == 0) unit = 1, end += 2;
    else if (*end == 's') unit = 1000, end++;
    else if (*end == 'm') unit = 60000, end++;
    else if (*end == 'h') unit = 3600000, end++;
    else return -1;
    int64_t add = (int64_t)v * unit;
    if (add > INT64_MAX - total) return -1;
    total += add;
    s = end;
  }
  return total > 0 ? total : -1;
}

struct watch_state {
  const char *key; /* "service", or "source" for a source string */
  const char *service;
  int verbose;
  int once;  /* --once with a source string: the first event ends it */
  int stats; /* --stats: print the watch's metrics on exit */
  int done;  /* that event came; rc is its outcome */
  int rc;
  pthread_cond_t cv;
  pthread_mutex_t mu;
  char *last; /* last printed set (with attributes when verbose), or NULL */
  int last_err;
};

static void now_ts(char *buf, size_t cap) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (ts.tv_nsec / 1000000) % 1000);
}

/* The set as one string, to print and to tell a change: the addresses
 * joined by commas, plus each instance's weight, status and zone when
 * `verbose` (so a change of those alone is printed too). NULL if out of
 * memory. */
static char *join(const kitd_instance *const *v, size_t n, int verbose) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) {
    len += strlen(kitd_instance_address(v[i])) + 1;
    if (verbose) len += strlen(kitd_instance_zone(v[i])) + 40;
  }
  char *s = malloc(len);
  if (!s) return NULL;
  size_t off = 0;
  s[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(s + off, len - off, "%s%s", i ? "," : "", kitd_instance_address(v[i]));
    if (w < 0 || (size_t)w >= len - off) break;
    off += (size_t)w;
    if (verbose) {
      w = snprintf(s + off, len - off, "/%u/%s/%s", (unsigned)kitd_instance_weight(v[i]),
                   kitd_health_name(kitd_instance_status(v[i])), kitd_instance_zone(v[i]));
      if (w < 0 || (size_t)w >= len - off) break;
      off += (size_t)w;
    }
  }
  return s;
}

static void print_set(const char *key, const char *service, const kitd_instance *const *v, size_t n,
                      int verbose) {
  char ts[64], svc[600];
  now_ts(ts, sizeof ts);
  kitd_log_quote(svc, sizeof svc, service);
  printf("ts=%s %s=%s count=%zu instances=", ts, key, svc, n);
  for (size_t i = 0; i < n; i++) printf("%s%s", i ? "," : "", kitd_instance_address(v[i]));
  putchar('\n');
  for (size_t i = 0; verbose && i < n; i++) {
    char zone[300];
    printf("ts=%s %s=%s instance=%s weight=%u status=%s zone=%s\n", ts, key, svc,
           kitd_instance_address(v[i]), (unsigned)kitd_instance_weight(v[i]),
           kitd_health_name(kitd_instance_status(v[i])),
           kitd_log_quote(zone, sizeof zone, kitd_instance_zone(v[i])));
  }
  fflush(stdout);
}

static void print_error(const char *key, const char *service, int err, const char *detail,
                        size_t n) {
  char ts[64], svc[600], d[600];
  now_ts(ts, sizeof ts);
  fprintf(stderr, "ts=%s level=error %s=%s err=%s detail=%s count=%zu\n", ts, key,
          kitd_log_quote(svc, sizeof svc, service), kitd_err_name(err),
          kitd_log_quote(d, sizeof d, detail ? detail : ""), n);
  fflush(stderr);
}

static void on_event(void *arg, const kitd_event *ev) {
  struct watch_state *st = arg;
  pthread_mutex_lock(&st->mu);
  if (st->once && st->done) {
    pthread_mutex_unlock(&st->mu);
    return;
  }
  if (ev->err) {
    print_error(st->key, st->service, ev->err, ev->detail, ev->count);
  } else {
    char *list = join(ev->instances, ev->count, st->verbose);
    if (list && (!st->last || st->last_err || strcmp(list, st->last) != 0))
      print_set(st->key, st->service, ev->instances, ev->count, st->verbose);
    free(st->last);
    st->last = list;
  }
  st->last_err = ev->err;
  if (st->once) {
    st->done = 1;
    st->rc = ev->err ? 1 : 0;
    pthread_cond_signal(&st->cv);
  }
  pthread_mutex_unlock(&st->mu);
}

/* The command line, for watch_source(). */
struct flags {
  const char *const *tags;
  size_t ntags;
  int all;
  const char *dc;
  int64_t wait_ms;
  int once, verbose, debug, stats;
};

/* What --stats reads from the watch's metrics. */
struct stats {
  double requests, errors;
  const char *last_error; /* copied by the walk callback */
  char buf[512];
};

static void stats_fn(void *arg, const kitd_metric *m) {
  struct stats *s = arg;
  if (!strcmp(m->name, "kitd_watch_requests_total")) s->requests = m->value;
  else if (!strcmp(m->name, "kitd_watch_errors_total")) s->errors = m->value;
  else if (!strcmp(m->name, "kitd_watch_error") && m->nlabels == 2) {
    snprintf(s->buf, sizeof s->buf, "%s", m->labels[1].value);
    s->last_error = s->buf;
  }
}

/* One logfmt line: requests, the time watched, requests a minute, errors
 * and the last error ("" if none). */
static void print_stats(const char *key, const char *service, kitd_metrics *m, int64_t t0) {
  struct stats s = {0, 0, "", {0}};
  if (kitd_metrics_walk(m, stats_fn, &s) != 0) return;
  double secs = (double)(kitd_now_ns() - t0) / 1e9;
  char ts[64], svc[600], e[600];
  now_ts(ts, sizeof ts);
  printf("ts=%s %s=%s stats requests=%.0f seconds=%.1f requests_per_min=%.1f errors=%.0f "
         "last_error=%s\n",
         ts, key, kitd_log_quote(svc, sizeof svc, service), s.requests, secs,
         secs > 0 ? s.requests * 60 / secs : 0, s.errors,
         kitd_log_quote(e, sizeof e, s.last_error));
  fflush(stdout);
}

/* Block SIGINT and SIGTERM in every thread: the main thread takes them
 * with sigwait() and then stops the watch. */
static void block_signals(sigset_t *sigs) {
  sigemptyset(sigs);
  sigaddset(sigs, SIGINT);
  sigaddset(sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

static struct watch_state *watch_state_init(struct watch_state *st, const char *key,
                                            const char *service, int verbose, int once, int stats) {
  *st = (struct watch_state){
      .key = key, .service = service, .verbose = verbose, .once = once, .stats = stats};
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);
  return st;
}

/* Subscribe to `in` and print its sets until a signal in `sigs` comes or,
 * with st->once, until the first event (30 s at most); then release `in`
 * and `st`. Returns the exit status. */
static int run_watch(kitd_instancer *in, struct watch_state *st, const sigset_t *sigs) {
  int rc = 0;
  /* --stats: the watch's own metrics, counted from now. */
  kitd_metrics *m = NULL;
  int64_t t0 = kitd_now_ns();
  if (st->stats && (kitd_metrics_new(&m) || kitd_metrics_watch(m, in, st->service))) {
    print_error(st->key, st->service, KITD_ENOMEM, "cannot count the watch", 0);
    kitd_metrics_free(m);
    m = NULL;
  }
  int e = kitd_instancer_subscribe(in, on_event, st);
  if (e) {
    print_error(st->key, st->service, e, "cannot subscribe", 0);
    rc = 1;
  } else if (st->once) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&st->mu);
    while (!st->done && pthread_cond_timedwait(&st->cv, &st->mu, &until) == 0) continue;
    if (!st->done) print_error(st->key, st->service, KITD_ETIMEDOUT, "no answer in 30 s", 0);
    rc = st->done ? st->rc : 1;
    pthread_mutex_unlock(&st->mu);
    kitd_instancer_unsubscribe(in, on_event, st);
  } else {
    int sig = 0;
    sigwait(sigs, &sig);
    kitd_instancer_unsubscribe(in, on_event, st);
  }
  if (m) print_stats(st->key, st->service, m, t0);
  kitd_metrics_free(m);
  kitd_instancer_free(in);
  free(st->last);
  pthread_cond_destroy(&st->cv);
  pthread_mutex_destroy(&st->mu);
  return rc;
}

/* Watch (or, with --once, read once) the registry a source string names.
 * A source that does not parse or names an unknown scheme is a usage
 * error (exit 2). --once waits up to 30 s for the first event, a set or an
 * error. */
static int watch_source(const char *source, const struct flags *f) {
  if (kitd_global_init() != 0) {
    fprintf(stderr, PROG ": cannot initialise libcurl\n");
    return 1;
  }
  sigset_t sigs;
  block_signals(&sigs);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul_instancer_opts co;
  kitd_consul_instancer_opts_init(&co);
  co.passing_only = !f->all;
  co.tags = f->tags;
  co.ntags = f->ntags;
  co.datacenter = f->dc;
  if (f->wait_ms > 0) co.wait_ms = f->wait_ms;
  kitd_source_opts so;
  kitd_source_opts_init(&so);
  so.consul = &co;
  so.ctx = &ctx;
  kitd_logger *lg = NULL;
  if (f->debug) kitd_logger_new(KITD_LOG_DEBUG, NULL, NULL, KITD_LOG_LOGFMT, &lg);
  kitd_instancer *in = NULL;
  int e = kitd_source_instancer_new(source, &so, lg, &in);
  if (e) {
    int rc = 1;
    if (e == KITD_EINVAL) {
      fprintf(stderr, PROG ": %s\nTry '" PROG " --help' for more information.\n",
              kitd_ctx_detail(&ctx)[0] ? kitd_ctx_detail(&ctx) : "invalid SOURCE");
      rc = 2;
    } else {
      print_error("source", source, e, kitd_ctx_detail(&ctx), 0);
    }
    kitd_logger_free(lg);
    kitd_global_cleanup();
    return rc;
  }
  struct watch_state st;
  int rc =
      run_watch(in, watch_state_init(&st, "source", source, f->verbose, f->once, f->stats), &sigs);
  kitd_logger_free(lg);
  kitd_global_cleanup();
  return rc;
}

int main(int argc, char **argv) {
  const char *tags[MAX_TAGS];
  size_t ntags = 0;
  int once = 0, all = 0, verbose = 0, debug = 0, stats = 0;
  const char *dc = NULL;
  int64_t wait_ms = 0;
  enum {
    OPT_PASSING = 256,
    OPT_DC,
    OPT_DEBUG,
    OPT_STATS
  };
  static const struct option longopts[] = {
      {"tag", required_argument, NULL, 't'},   {"passing", no_argument, NULL, OPT_PASSING},
      {"all", no_argument, NULL, 'a'},         {"dc", required_argument, NULL, OPT_DC},
      {"wait", required_argument, NULL, 'w'},  {"once", no_argument, NULL, '1'},
      {"verbose", no_argument, NULL, 'v'},     {"debug", no_argument, NULL, OPT_DEBUG},
      {"stats", no_argument, NULL, OPT_STATS}, {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0}};
  /* getopt_long names an unknown option or a missing value on stderr
   * itself; we add the hint and exit 2. */
  int c;
  while ((c = getopt_long(argc, argv, "t:aw:1vhV", longopts, NULL)) != -1) {
    switch (c) {
    case 't':
      if (ntags == MAX_TAGS) return usage_error("too many tags (at most %s)", "64");
      tags[ntags++] = optarg;
      break;
    case OPT_PASSING: all = 0; break;
    case 'a': all = 1; break;
    case OPT_DC: dc = optarg; break;
    case 'w':
      wait_ms = parse_duration_ms(optarg);
      if (wait_ms < 0) return usage_error("invalid duration '%s' (e.g. 30s, 500ms, 5m)", optarg);
      break;
    case '1': once = 1; break;
    case 'v': verbose = 1; break;
    case OPT_DEBUG: debug = 1; break;
    case OPT_STATS: stats = 1; break;
    case 'h': usage(stdout); return 0;
    case 'V':
      /* The version built against, then the one running (they differ when
       * a newer libkitd.so.0 is installed under the tool). */
      printf(PROG " (libkitd) %s\nlibrary %s\n", KITD_VERSION_STRING, kitd_version_string());
      return 0;
    default: fprintf(stderr, "Try '" PROG " --help' for more information.\n"); return 2;
    }
  }
  if (optind == argc) return usage_error("%s", "missing SOURCE");
  if (argc - optind > 1) return usage_error("unexpected argument '%s'", argv[optind + 1]);
  const char *service = argv[optind];
  if (!*service) return usage_error("%s", "empty SOURCE");
  /* A plain name is a Consul service, looked up and watched directly (a
   * failed --once lookup reports at once); "scheme://" goes through
   * source.h, which knows every registry. */
  if (strstr(service, "://"))
    return watch_source(
        service, &(struct flags){tags, ntags, all, dc, wait_ms, once, verbose, debug, stats});

  if (kitd_global_init() != 0) {
    fprintf(stderr, PROG ": cannot initialise libcurl\n");
    return 1;
  }
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *cl = NULL;
  int e = kitd_consul_new(0, &ctx, &cl);
  if (e) {
    print_error("service", service, e, kitd_ctx_detail(&ctx), 0);
    kitd_global_cleanup();
    return 1;
  }
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.passing_only = !all;
  o.tags = tags;
  o.ntags = ntags;
  o.datacenter = dc;
  if (wait_ms > 0) o.wait_ms = wait_ms;

  int rc = 0;
  if (once) {
    kitd_instance **set = NULL;
    size_t n = 0;
    kitd_ctx_set_timeout_ms(&ctx, 30000);
    e = kitd_consul_lookup(cl, service, &o, &ctx, &set, &n);
    if (e) {
      print_error("service", service, e, kitd_ctx_detail(&ctx), 0);
      rc = 1;
    } else {
      print_set("service", service, (const kitd_instance *const *)set, n, verbose);
      kitd_instance_list_free(set, n);
    }
    kitd_consul_free(cl);
    kitd_global_cleanup();
    return rc;
  }

  sigset_t sigs;
  block_signals(&sigs);

  kitd_logger *lg = NULL;
  if (debug) kitd_logger_new(KITD_LOG_DEBUG, NULL, NULL, KITD_LOG_LOGFMT, &lg);
  kitd_instancer *in = NULL;
  e = kitd_consul_instancer_new(cl, service, &o, lg, &in);
  if (e) {
    print_error("service", service, e, "cannot start the watch", 0);
    rc = 1;
  } else {
    struct watch_state st;
    rc = run_watch(in, watch_state_init(&st, "service", service, verbose, 0, stats), &sigs);
  }
  kitd_logger_free(lg);
  kitd_consul_free(cl);
  kitd_global_cleanup();
  return rc;
}
