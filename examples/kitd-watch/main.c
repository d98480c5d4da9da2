/* kitd-watch: print a Consul service's instance set each time it changes.
 *
 *   kitd-watch [--tag T]... [--passing|--all] [--once] [--dc DC] [--wait DUR]
 *              [--verbose] SERVICE
 *
 * One logfmt line per change on stdout:
 *   ts=... service=lorem count=2 instances=127.0.0.1:7001,127.0.0.1:7002
 * and per failed watch:
 *   ts=... level=error service=lorem err=ECONNECT detail="..." count=2
 * The agent, token and TLS come from the CONSUL_* environment variables.
 * --once prints the current set and exits (0, or 1 on error). SIGINT and
 * SIGTERM stop it cleanly. */
#include <kitd/consul.h>
#include <kitd/error.h>
#include <kitd/kitd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
  fputs("usage: kitd-watch [--tag T]... [--passing|--all] [--once] [--dc DC]\n"
        "                  [--wait SECONDS] [--verbose] SERVICE\n"
        "Prints the instance set of SERVICE each time it changes (logfmt).\n"
        "Only passing instances are shown unless --all is given.\n"
        "The agent comes from CONSUL_HTTP_ADDR (default 127.0.0.1:8500).\n",
        f);
}

struct watch_state {
  const char *service;
  pthread_mutex_t mu;
  char *last;       /* last printed instance list, or NULL */
  int last_err;
};

static void now_ts(char *buf, size_t cap) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (ts.tv_nsec / 1000000) % 1000);
}

static char *join(const kitd_instance *const *v, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(kitd_instance_address(v[i])) + 1;
  char *s = malloc(len);
  if (!s) return NULL;
  s[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(s, ",");
    strcat(s, kitd_instance_address(v[i]));
  }
  return s;
}

static void print_set(const char *service, const kitd_instance *const *v, size_t n) {
  char ts[64], svc[300];
  char *list = join(v, n);
  now_ts(ts, sizeof ts);
  printf("ts=%s service=%s count=%zu instances=%s\n", ts,
         kitd_log_quote(svc, sizeof svc, service), n, list ? list : "");
  fflush(stdout);
  free(list);
}

static void print_error(const char *service, int err, const char *detail, size_t n) {
  char ts[64], svc[300], d[600];
  now_ts(ts, sizeof ts);
  printf("ts=%s level=error service=%s err=%s detail=%s count=%zu\n", ts,
         kitd_log_quote(svc, sizeof svc, service), kitd_err_name(err),
         kitd_log_quote(d, sizeof d, detail), n);
  fflush(stdout);
}

static void on_event(void *arg, const kitd_event *ev) {
  struct watch_state *st = arg;
  pthread_mutex_lock(&st->mu);
  if (ev->err) {
    print_error(st->service, ev->err, ev->detail, ev->count);
  } else {
    char *list = join(ev->instances, ev->count);
    if (list && (!st->last || st->last_err || strcmp(list, st->last) != 0))
      print_set(st->service, ev->instances, ev->count);
    free(st->last);
    st->last = list;
  }
  st->last_err = ev->err;
  pthread_mutex_unlock(&st->mu);
}

int main(int argc, char **argv) {
  const char *tags[64];
  size_t ntags = 0;
  int once = 0, all = 0, verbose = 0;
  const char *dc = NULL, *service = NULL;
  long wait_s = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--tag") == 0 && i + 1 < argc) {
      if (ntags == sizeof tags / sizeof tags[0]) {
        fprintf(stderr, "kitd-watch: too many tags\n");
        return 2;
      }
      tags[ntags++] = argv[++i];
    } else if (strncmp(a, "--tag=", 6) == 0 && ntags < sizeof tags / sizeof tags[0]) {
      tags[ntags++] = a + 6;
    } else if (strcmp(a, "--passing") == 0) {
      all = 0;
    } else if (strcmp(a, "--all") == 0) {
      all = 1;
    } else if (strcmp(a, "--once") == 0) {
      once = 1;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      verbose = 1;
    } else if (strcmp(a, "--dc") == 0 && i + 1 < argc) {
      dc = argv[++i];
    } else if (strcmp(a, "--wait") == 0 && i + 1 < argc) {
      wait_s = strtol(argv[++i], NULL, 10);
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (a[0] == '-' || service) {
      usage(stderr);
      return 2;
    } else {
      service = a;
    }
  }
  if (!service) {
    usage(stderr);
    return 2;
  }
  if (kitd_global_init() != 0) {
    fprintf(stderr, "kitd-watch: cannot initialise libcurl\n");
    return 1;
  }
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_consul *c = NULL;
  int e = kitd_consul_new(0, &ctx, &c);
  if (e) {
    print_error(service, e, kitd_ctx_detail(&ctx), 0);
    kitd_global_cleanup();
    return 1;
  }
  kitd_consul_instancer_opts o;
  kitd_consul_instancer_opts_init(&o);
  o.passing_only = !all;
  o.tags = tags;
  o.ntags = ntags;
  o.datacenter = dc;
  if (wait_s > 0) o.wait_ms = wait_s * 1000;

  int rc = 0;
  if (once) {
    kitd_instance **set = NULL;
    size_t n = 0;
    kitd_ctx_set_timeout_ms(&ctx, 30000);
    e = kitd_consul_lookup(c, service, &o, &ctx, &set, &n);
    if (e) {
      print_error(service, e, kitd_ctx_detail(&ctx), 0);
      rc = 1;
    } else {
      print_set(service, (const kitd_instance *const *)set, n);
      kitd_instance_list_free(set, n);
    }
    kitd_consul_free(c);
    kitd_global_cleanup();
    return rc;
  }

  /* Block the signals in every thread; the main thread takes them with
   * sigwait() and then stops the watch. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  kitd_logger *lg = NULL;
  if (verbose) kitd_logger_new(KITD_LOG_DEBUG, NULL, NULL, KITD_LOG_LOGFMT, &lg);
  struct watch_state st = {.service = service, .last = NULL, .last_err = 0};
  pthread_mutex_init(&st.mu, NULL);
  kitd_instancer *in = NULL;
  e = kitd_consul_instancer_new(c, service, &o, lg, &in);
  if (e) {
    print_error(service, e, "cannot start the watch", 0);
    rc = 1;
  } else if ((e = kitd_instancer_subscribe(in, on_event, &st)) != 0) {
    print_error(service, e, "cannot subscribe", 0);
    rc = 1;
  } else {
    int sig = 0;
    sigwait(&sigs, &sig);
    kitd_instancer_unsubscribe(in, on_event, &st);
  }
  kitd_instancer_free(in);
  kitd_logger_free(lg);
  kitd_consul_free(c);
  free(st.last);
  pthread_mutex_destroy(&st.mu);
  kitd_global_cleanup();
  return rc;
}
