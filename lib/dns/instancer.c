/* SPDX-License-Identifier: MIT */
/* The DNS SRV instancer: one thread per name, polling at the TTL. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/backoff.h"
#include "core/log_impl.h"
#include "core/rand.h"
#include "dns/dns_impl.h"
#include "kitd/ctx.h"
#include "kitd/dns.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

struct dns_instancer {
  struct kitd_instancer base; /* first: kitd_instancer * points here */
  char *name;
  kitd__dns dns;
  kitd_dns_instancer_opts o;
  kitd_logger *lg;
  pthread_t th;
  bool started;
};

static const struct kitd__instancer_ops dns_ops;

void kitd_dns_instancer_opts_init(kitd_dns_instancer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->min_refresh_ms = 1000;
  o->max_refresh_ms = 300000;
  o->timeout_ms = 2000;
  o->attempts = 2;
  o->backoff_min_ms = 500;
  o->backoff_max_ms = 30000;
}

/* Sleep up to ms on the stop fd; false once stopped. */
static bool nap(struct dns_instancer *di, int64_t ms) {
  int64_t end = kitd_now_ns() + ms * 1000000;
  for (;;) {
    int64_t left = end - kitd_now_ns();
    if (left <= 0) return true;
    struct pollfd p = {di->dns.wake_fd, POLLIN, 0};
    int r = poll(&p, 1, (int)((left + 999999) / 1000000));
    if (r > 0) return false;
    if (r < 0 && errno != EINTR) return true;
  }
}

#define log_name(di, lvl, ...)                                                                     \
  kitd__log_about((di)->lg, lvl, "dns", "name", (di)->name, __VA_ARGS__)

static void *watch(void *arg) {
  struct dns_instancer *di = arg;
  unsigned fails = 0;
  size_t last_count = (size_t)-1;
  for (;;) {
    int64_t t0 = kitd_now_ns();
    kitd_instance **set = NULL;
    size_t n = 0;
    uint32_t ttl = 0;
    char *detail = NULL;
    int rc = kitd__dns_resolve_srv(&di->dns, di->name, &set, &n, &ttl, &detail);
    if (rc == KITD_ESTOPPED) break;
    int64_t wait_ms;
    if (rc) {
      fails++;
      kitd__instancer_publish_error(&di->base, rc, detail ? detail : kitd_strerror(rc));
      wait_ms = kitd__backoff_ns(di->o.backoff_min_ms * 1000000, di->o.backoff_max_ms * 1000000,
                                 fails, KITD__JITTER_HALF) /
                1000000;
      if (kitd_log_enabled(di->lg, fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN)) {
        char *dq = kitd__log_quote_dup(detail);
        log_name(di, fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN,
                 "msg=\"lookup failed\" err=%s detail=%s failures=%u retry_ms=%lld",
                 kitd_err_name(rc), dq ? dq : "?", fails, (long long)wait_ms);
        free(dq);
      }
      free(detail);
    } else {
      if (fails) log_name(di, KITD_LOG_INFO, "msg=\"lookup recovered\" failures=%u", fails);
      fails = 0;
      if (n != last_count) log_name(di, KITD_LOG_INFO, "instances=%zu ttl=%u", n, ttl);
      last_count = n;
      if (kitd__instancer_publish(&di->base, set, n) == KITD_ESTOPPED) break;
      /* min(TTL, max), never under min: a TTL of 0 (dnsmasq's default for
       * its own records) must not turn into a hot loop. */
      wait_ms = (int64_t)ttl * 1000;
      if (wait_ms > di->o.max_refresh_ms) wait_ms = di->o.max_refresh_ms;
      int64_t spent = (kitd_now_ns() - t0) / 1000000;
      if (wait_ms < di->o.min_refresh_ms - spent) wait_ms = di->o.min_refresh_ms - spent;
      if (wait_ms < 0) wait_ms = 0;
    }
    if (!nap(di, wait_ms)) break;
  }
  return NULL;
}

static void di_stop(kitd_instancer *in) {
  struct dns_instancer *di = (struct dns_instancer *)in;
  uint64_t one = 1;
  if (di->dns.wake_fd >= 0 && write(di->dns.wake_fd, &one, sizeof one) < 0) {
    /* an eventfd write fails only on overflow: it is readable then anyway */
  }
  if (di->started) {
    pthread_join(di->th, NULL);
    di->started = false;
  }
}

static void di_free_fields(struct dns_instancer *di) {
  if (di->dns.wake_fd >= 0) close(di->dns.wake_fd);
  free(di->dns.servers);
  free(di->name);
  free(di);
}

static void di_destroy(kitd_instancer *in) { di_free_fields((struct dns_instancer *)in); }

static const struct kitd__instancer_ops dns_ops = {"dns", di_stop, di_destroy};

unsigned long kitd_dns_instancer_queries(const kitd_instancer *in) {
  if (!in || in->ops != &dns_ops) return 0;
  const struct dns_instancer *di = (const struct dns_instancer *)in;
  return __atomic_load_n(&di->dns.queries, __ATOMIC_RELAXED);
}

/* Copy the fields the caller's struct has (by its size). */
static int resolve_opts(const kitd_dns_instancer_opts *o, kitd_dns_instancer_opts *r) {
  kitd_dns_instancer_opts_init(r);
  if (!o) return 0;
  if (o->size < offsetof(kitd_dns_instancer_opts, backoff_max_ms) + sizeof o->backoff_max_ms ||
      o->size > sizeof *o)
    return KITD_EINVAL;
  r->server = o->server;
  if (o->min_refresh_ms > 0) r->min_refresh_ms = o->min_refresh_ms;
  if (o->max_refresh_ms > 0) r->max_refresh_ms = o->max_refresh_ms;
  if (o->timeout_ms > 0) r->timeout_ms = o->timeout_ms;
  if (o->attempts > 0) r->attempts = o->attempts;
  if (o->backoff_min_ms > 0) r->backoff_min_ms = o->backoff_min_ms;
  if (o->backoff_max_ms > 0) r->backoff_max_ms = o->backoff_max_ms;
  if (r->max_refresh_ms < r->min_refresh_ms) r->max_refresh_ms = r->min_refresh_ms;
  if (r->backoff_max_ms < r->backoff_min_ms) r->backoff_max_ms = r->backoff_min_ms;
  return 0;
}

int kitd_dns_instancer_new(const char *name, const kitd_dns_instancer_opts *o, kitd_logger *lg,
                           kitd_instancer **out) {
  if (!name || !*name || !out) return KITD_EINVAL;
  kitd_dns_instancer_opts ro;
  if (resolve_opts(o, &ro)) return KITD_EINVAL;
  struct dns_instancer *di = kitd__calloc(1, sizeof *di);
  if (!di) return KITD_ENOMEM;
  di->dns.wake_fd = -1;
  di->o = ro;
  di->o.server = NULL; /* not kept: copied into dns.servers */
  di->lg = lg;
  di->dns.timeout_ms = ro.timeout_ms;
  di->dns.attempts = ro.attempts;
  di->dns.rng = kitd__seed64(di) | 1;
  int e = 0;
  if (!(di->name = kitd__strdup(name))) e = KITD_ENOMEM;
  if (!e && ro.server) {
    di->dns.fixed = 1;
    di->dns.nservers = 1;
    if (!(di->dns.servers = kitd__calloc(1, sizeof *di->dns.servers))) e = KITD_ENOMEM;
    else e = kitd__dns_parse_server(ro.server, &di->dns.servers[0]);
  } else if (!e) {
    e = kitd__dns_load_system(&di->dns);
  }
  if (!e && (di->dns.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) e = KITD_EINTERNAL;
  if (!e) {
    char *what = kitd__asprintf("SRV targets of '%s'", name);
    if (!what) e = KITD_ENOMEM;
    if (!e && (e = kitd__instancer_init(&di->base, &dns_ops))) {
      free(what);
      di_free_fields(di);
      return e;
    }
    if (!e) {
      e = kitd__instancer_set_what(&di->base, what);
      free(what);
      if (e) {
        kitd_instancer_free(&di->base);
        return e;
      }
    } else {
      free(what);
    }
  }
  if (e) {
    di_free_fields(di);
    return e;
  }
  if (pthread_create(&di->th, NULL, watch, di) != 0) {
    kitd_instancer_free(&di->base); /* stop (no thread) + destroy */
    return KITD_EINTERNAL;
  }
  di->started = true;
  *out = &di->base;
  return 0;
}
