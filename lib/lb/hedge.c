/* SPDX-License-Identifier: MIT */
/* Hedged first attempts of a kitd_retry endpoint (see hedge.h). */
#include "lb/hedge.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/instance_impl.h"
#include "kitd/error.h"
#include "lb/attempt.h"
#include "lb/balancer_impl.h"

/* Hedge threads: enough for a few slow calls at once; a hedge that finds
 * them all busy waits in the queue (its caller's attempt goes on). */
#define HEDGE_WORKERS 4
/* The delay is learned again every SAMPLES first attempts, from a
 * histogram whose counts are then halved (older latencies fade). No hedge
 * before the first SAMPLES. */
#define SAMPLES 256
/* Latency buckets: four per power of two of 256 ns units. */
#define NB 160

enum {
  REGISTERED = 1,
  QUEUED,
  RUNNING,
  DONE,
  SKIPPED
};

struct hcall {
  struct hcall *next;
  int64_t fire_ns;
  int state;       /* under the hedger's lock */
  int caller_done; /* likewise: the caller's attempt is over */
  int hedge_won;   /* likewise */
  const struct kitd__hedge_call *c;
  kitd_ctx *actx;            /* the caller's attempt: canceled if the hedge wins */
  const kitd_endpoint *skip; /* the caller's endpoint: the hedge goes elsewhere */
  kitd_ctx hctx;             /* the hedge's attempt */
  void *hresp;
  int hrc;
  int64_t hlat;
  kitd_endpoint *hep; /* the endpoint the hedge called (compared only) */
  char hinst[KITD_INSTANCE_MAX];
};

struct kitd__hedge {
  double q;
  atomic_uint hist[NB];
  atomic_uint samples;
  atomic_int_least64_t delay_ns;
  pthread_mutex_t mu;
  pthread_cond_t timer_cv, work_cv, done_cv; /* CLOCK_MONOTONIC */
  struct hcall *timers;                      /* the timer list, newest first */
  struct hcall *work, **work_tail;           /* the hedges to run, in order */
  int started, stop, nthreads;
  pthread_t th[1 + HEDGE_WORKERS];
};

static unsigned bucket(int64_t ns) {
  uint64_t v = ns > 0 ? (uint64_t)ns >> 8 : 0;
  if (v < 4) return (unsigned)v;
  unsigned l = 63u - (unsigned)__builtin_clzll(v);
  unsigned i = 4 * (l - 1) + (unsigned)((v >> (l - 2)) & 3);
  return i < NB ? i : NB - 1;
}

/* The bucket's upper bound in ns. */
static int64_t bucket_top(unsigned i) {
  if (i < 4) return (int64_t)(i + 1) << 8;
  unsigned l = i / 4 + 1, sub = i % 4;
  return (int64_t)((uint64_t)(5 + sub) << (l - 2)) << 8;
}

static void learn(struct kitd__hedge *h, int64_t ns) {
  atomic_fetch_add_explicit(&h->hist[bucket(ns)], 1, memory_order_relaxed);
  if (atomic_fetch_add_explicit(&h->samples, 1, memory_order_relaxed) % SAMPLES != SAMPLES - 1)
    return;
  /* One thread in SAMPLES reads the histogram (racing adds only blur it
   * by a count or two) and halves it. */
  uint64_t total = 0;
  unsigned n[NB];
  for (unsigned i = 0; i < NB; i++) {
    n[i] = atomic_load_explicit(&h->hist[i], memory_order_relaxed);
    total += n[i];
  }
  uint64_t want = (uint64_t)(h->q * (double)total + 0.5), seen = 0;
  int64_t d = bucket_top(NB - 1);
  for (unsigned i = 0; i < NB; i++) {
    seen += n[i];
    if (seen >= want && seen) {
      d = bucket_top(i);
      break;
    }
  }
  atomic_store_explicit(&h->delay_ns, d, memory_order_relaxed);
  for (unsigned i = 0; i < NB; i++)
    atomic_fetch_sub_explicit(&h->hist[i], n[i] / 2, memory_order_relaxed);
}

static void abs_time(struct timespec *ts, int64_t ns) {
  ts->tv_sec = (time_t)(ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}

/* The timer thread: fires the calls past their delay. */
static void *timer_main(void *arg) {
  struct kitd__hedge *h = arg;
  pthread_mutex_lock(&h->mu);
  while (!h->stop) {
    struct hcall **first = NULL;
    for (struct hcall **pp = &h->timers; *pp; pp = &(*pp)->next)
      if (!first || (*pp)->fire_ns < (*first)->fire_ns) first = pp;
    if (!first) {
      pthread_cond_wait(&h->timer_cv, &h->mu);
      continue;
    }
    int64_t now = kitd_now_ns();
    struct hcall *c = *first;
    if (now < c->fire_ns) {
      struct timespec ts;
      abs_time(&ts, c->fire_ns);
      pthread_cond_timedwait(&h->timer_cv, &h->mu, &ts);
      continue;
    }
    *first = c->next;
    /* A hedge is a retry that may reach a backend: the budget pays. */
    if (!kitd__budget_withdraw(c->c->budget)) {
      c->state = SKIPPED;
      continue;
    }
    c->state = QUEUED;
    c->next = NULL;
    *h->work_tail = c;
    h->work_tail = &c->next;
    pthread_cond_signal(&h->work_cv);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* Run the hedge of `c` (unlocked): pick another endpoint and call it. */
static void run_hedge(struct hcall *c) {
  kitd_balancer *b = c->c->b;
  kitd_pick p;
  c->hrc = KITD_ENOENDPOINTS;
  c->hep = NULL;
  if (kitd_balancer_pick(b, &p) != 0) return;
  for (unsigned t = 0; t < 4 && p.endpoint == c->skip && p.count > 1; t++) {
    kitd_balancer_done(b, &p, KITD__RESULT_UNUSED, -1);
    if (kitd_balancer_pick(b, &p) != 0) return;
  }
  if (p.endpoint == c->skip && p.count > 1) kitd__pick_move(b, &p, (p.index + 1) % p.count);
  if (p.endpoint == c->skip) { /* a set of one: nowhere else to go */
    kitd_balancer_done(b, &p, KITD__RESULT_UNUSED, -1);
    return;
  }
  int64_t t0 = kitd_now_ns();
  c->hresp = NULL;
  c->hrc = kitd_endpoint_call(p.endpoint, &c->hctx, c->c->req, &c->hresp);
  c->hlat = kitd_now_ns() - t0;
  c->hep = p.endpoint;
  kitd__copy_address(c->hinst, p.instance);
  /* Canceled because the caller's attempt won: no outcome to learn. */
  int lost = c->hrc == KITD_ECANCELED && !kitd_ctx_err(c->c->base);
  kitd_balancer_done(b, &p, lost ? KITD__RESULT_UNUSED : c->hrc, lost ? -1 : c->hlat);
}

static void *worker_main(void *arg) {
  struct kitd__hedge *h = arg;
  pthread_mutex_lock(&h->mu);
  for (;;) {
    while (!h->stop && !h->work) pthread_cond_wait(&h->work_cv, &h->mu);
    if (h->stop) break;
    struct hcall *c = h->work;
    h->work = c->next;
    if (!h->work) h->work_tail = &h->work;
    c->state = RUNNING;
    pthread_mutex_unlock(&h->mu);
    run_hedge(c);
    pthread_mutex_lock(&h->mu);
    if (c->hrc == 0 && !c->caller_done) {
      c->hedge_won = 1;
      kitd_ctx_cancel(c->actx);
    }
    /* After this the caller may return: c is not touched again. */
    c->state = DONE;
    pthread_cond_broadcast(&h->done_cv);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

static int init_cond(pthread_cond_t *cv) {
  pthread_condattr_t a;
  if (pthread_condattr_init(&a)) return -1;
  int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) || pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
  return rc ? -1 : 0;
}

int kitd__hedge_new(double q, struct kitd__hedge **out) {
  struct kitd__hedge *h = calloc(1, sizeof *h);
  if (!h) return KITD_ENOMEM;
  h->q = q;
  h->work_tail = &h->work;
  if (pthread_mutex_init(&h->mu, NULL)) {
    free(h);
    return KITD_ENOMEM;
  }
  int ok = !init_cond(&h->timer_cv);
  ok = ok && !init_cond(&h->work_cv);
  ok = ok && !init_cond(&h->done_cv);
  if (!ok) { /* a failed init leaves nothing to destroy on Linux */
    pthread_mutex_destroy(&h->mu);
    free(h);
    return KITD_ENOMEM;
  }
  *out = h;
  return 0;
}

void kitd__hedge_free(struct kitd__hedge *h) {
  if (!h) return;
  pthread_mutex_lock(&h->mu);
  h->stop = 1;
  pthread_cond_broadcast(&h->timer_cv);
  pthread_cond_broadcast(&h->work_cv);
  pthread_mutex_unlock(&h->mu);
  for (int i = 0; i < h->nthreads; i++) pthread_join(h->th[i], NULL);
  pthread_cond_destroy(&h->timer_cv);
  pthread_cond_destroy(&h->work_cv);
  pthread_cond_destroy(&h->done_cv);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

/* Start the threads once (under the lock). 0 if none could start: the
 * call then goes unhedged. */
static int start(struct kitd__hedge *h) {
  if (h->started) return h->nthreads > 0;
  h->started = 1;
  if (pthread_create(&h->th[0], NULL, timer_main, h)) return 0;
  h->nthreads = 1;
  for (int i = 0; i < HEDGE_WORKERS; i++)
    if (!pthread_create(&h->th[h->nthreads], NULL, worker_main, h)) h->nthreads++;
  if (h->nthreads == 1) { /* a timer with no worker would skip every hedge */
    h->stop = 1;
    pthread_cond_broadcast(&h->timer_cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->th[0], NULL);
    pthread_mutex_lock(&h->mu);
    h->stop = 0;
    h->nthreads = 0;
    return 0;
  }
  return 1;
}

static void unlink_timer(struct kitd__hedge *h, struct hcall *c) {
  for (struct hcall **pp = &h->timers; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      return;
    }
}

static void unlink_work(struct kitd__hedge *h, struct hcall *c) {
  struct hcall *prev = NULL;
  for (struct hcall **pp = &h->work; *pp; prev = *pp, pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      if (!*pp) h->work_tail = prev ? &prev->next : &h->work;
      return;
    }
}

/* A failed attempt of this call: into the caller's ctx and avoid list. */
static void note_failure(const struct kitd__hedge_call *c, int rc, int status, int64_t lat,
                         const char *inst, const char *detail, kitd_endpoint *ep) {
  kitd__attempt_failed(c->ctx, rc, status, lat, inst, detail, c->avoid, c->navoid, c->avoid_max,
                       ep);
}

int kitd__hedge_first(struct kitd__hedge *h, const struct kitd__hedge_call *c, kitd_pick *p) {
  kitd_ctx actx;
  kitd_ctx_init_child(&actx, c->base, c->attempt_timeout_ms);
  struct hcall hc;
  int registered = 0;
  int64_t delay = atomic_load_explicit(&h->delay_ns, memory_order_relaxed);
  int64_t t0 = kitd_now_ns();
  if (delay > 0 && p->count > 1) {
    hc.next = NULL;
    hc.fire_ns = t0 + delay;
    hc.caller_done = hc.hedge_won = 0;
    hc.c = c;
    hc.actx = &actx;
    hc.skip = p->endpoint;
    hc.hresp = NULL;
    hc.hrc = 0;
    /* Its deadline counts from now, as the caller's attempt's does. */
    kitd_ctx_init_child(&hc.hctx, c->base, c->attempt_timeout_ms);
    pthread_mutex_lock(&h->mu);
    if (start(h)) {
      hc.state = REGISTERED;
      registered = 1;
      /* Wake the timer only when it may be sleeping past this call. */
      int wake = !h->timers;
      hc.next = h->timers;
      h->timers = &hc;
      if (wake) pthread_cond_signal(&h->timer_cv);
    }
    pthread_mutex_unlock(&h->mu);
  }
  void *r1 = NULL;
  int rc = kitd_endpoint_call(p->endpoint, &actx, c->req, &r1);
  int64_t lat = kitd_now_ns() - t0;
  int hedged = 0;
  if (registered) {
    pthread_mutex_lock(&h->mu);
    if (hc.state == REGISTERED) {
      unlink_timer(h, &hc);
    } else if (hc.state == QUEUED) {
      unlink_work(h, &hc); /* its token is spent: the budget is not refunded */
    } else if (hc.state == RUNNING) {
      hc.caller_done = 1;
      if (rc == 0 && !hc.hedge_won) kitd_ctx_cancel(&hc.hctx);
      while (hc.state != DONE) pthread_cond_wait(&h->done_cv, &h->mu);
      hedged = 1;
    } else if (hc.state == DONE) {
      hedged = 1;
    }
    pthread_mutex_unlock(&h->mu);
  }
  /* The hedge's answer is taken when it came first, or when the caller's
   * attempt failed. */
  int won = hedged && hc.hep && hc.hrc == 0 && (hc.hedge_won || rc != 0);
  /* A first attempt the hedge beat was slow, not failed: it teaches its
   * latency so far. */
  if (rc == 0 || won) learn(h, lat);
  c->ctx->status_ = actx.status_;
  kitd__copy_address(c->ctx->instance_, p->instance);
  int result;
  if (won) {
    if (rc == 0 || hc.hedge_won) { /* slow, not failed */
      if (rc == 0 && r1 && c->free_response) c->free_response(r1);
      kitd_balancer_done(c->b, p, 0, lat);
    } else {
      note_failure(c, rc, actx.status_, lat, c->ctx->instance_, kitd_ctx_detail(&actx),
                   p->endpoint);
      kitd_balancer_done(c->b, p, rc, lat);
    }
    *c->resp = hc.hresp;
    c->ctx->status_ = hc.hctx.status_;
    kitd_ctx_set_instance(c->ctx, hc.hinst);
    if (hc.hctx.detail_[0]) kitd_ctx_set_detail(c->ctx, "%s", hc.hctx.detail_);
    return 0;
  }
  if (rc == 0) {
    kitd_balancer_done(c->b, p, 0, lat);
    *c->resp = r1;
    if (actx.detail_[0]) kitd_ctx_set_detail(c->ctx, "%s", actx.detail_);
    result = 0;
  } else {
    note_failure(c, rc, actx.status_, lat, c->ctx->instance_, kitd_ctx_detail(&actx), p->endpoint);
    kitd_balancer_done(c->b, p, rc, lat);
    result = rc;
  }
  if (hedged && hc.hep) {
    /* The hedge ran too: free a late answer, record a failure. */
    if (hc.hrc == 0) {
      if (hc.hresp && c->free_response) c->free_response(hc.hresp);
    } else if (hc.hrc != KITD_ECANCELED || rc != 0) {
      note_failure(c, hc.hrc, hc.hctx.status_, hc.hlat, hc.hinst, kitd_ctx_detail(&hc.hctx),
                   hc.hep);
    }
  }
  return result;
}
