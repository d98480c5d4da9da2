/* SPDX-License-Identifier: MIT */
/* kitd_client_call_async(): a client's call run by libkitd's loop
 * (lib/http/loop.c) instead of the caller's thread.
 *
 * The caller's thread checks the arguments, encodes the request (path and
 * body, once: the caller may free the request when the call returns) and
 * posts the call to the loop. Everything else runs on the loop thread, as
 * a state machine with kitd_retry's steps (lib/lb/retry.c): wait for the
 * registry's first answer (a 1 ms poll of the instancer, no thread held),
 * pick avoiding the instances that failed in this call, run the attempt
 * on the transport (lib/http/async.c), hand the pick back with the
 * outcome and latency, decide what next as retry does (should_retry,
 * max_attempts, the retry budget and the backoff: lb/retry_next.h), back
 * off on a timer, and record every failed attempt in the caller's ctx with
 * the same helpers as retry (lb/attempt.h). Picks
 * are made and handed back on the loop thread, as the balancer asks.
 *
 * Deadlines are timers; a cancel (of the ctx or a parent) is found by a
 * sweep of the calls in flight every 10 ms, which is also how a deadline
 * moved by a parent is seen. Async calls spend from the retry budget of
 * the variant's retry endpoint: one budget for blocking and async calls.
 * Hedging is not done. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_impl.h"
#include "core/alloc.h"
#include "core/metrics_impl.h"
#include "http/async.h"
#include "kitd/error.h"
#include "lb/attempt.h"
#include "lb/balancer_impl.h"
#include "lb/budget.h"
#include "lb/retry_next.h"
#include "lb/lb_explain.h"

#define SWEEP_NS (10 * 1000 * 1000) /* cancel checks */
#define READY_POLL_NS (1000 * 1000) /* first registry answer checks */

struct kitd__client_async {
  kitd__loop *loop;       /* a reference */
  struct kitd__mpipe *mp; /* the client's call metrics, or NULL */
  int explain;            /* the logger writes debug records */
  pthread_mutex_t mu;     /* guards the four below */
  pthread_cond_t cv;      /* inflight reached 0 */
  long inflight;          /* calls posted and not ended, plus a stop */
  int stopping;           /* the last reference is gone */
  int destroy_on_loop;    /* the loop frees the client at inflight 0 */
  int stopped;            /* loop thread: the stop task ran */
  struct kitd__loop_task stop_task;
  kitd_client *c;
};

enum {
  K_READY,
  K_ATTEMPT,
  K_BACKOFF,
  K_DONE
};

struct acall {
  struct kitd__loop_task task;   /* the start, then the free */
  struct kitd__loop_timer timer; /* the ready poll, the backoff */
  struct kitd__http_att att;
  kitd_client *c;
  struct kitd__client_async *as;
  struct variant *v;
  kitd_ctx *ctx, *base;
  kitd_ctx overall, actx; /* the retry timeout's child, the attempt's */
  void *response, *out;
  kitd_client_done_fn done;
  void *arg;
  kitd_http_buf path, body;
  kitd_pick pick;
  int state, ready_full, refused;
  unsigned attempt, navoid, retries;
  kitd_endpoint *avoid[KITD__RETRY_AVOID_MAX];
  int64_t t_call, t_att, ready_until;
  struct acall *prev, *next; /* calls in flight (loop thread) */
};

/* Loop thread only: the calls in flight and the sweep over them. */
static struct acall *g_calls;
static struct kitd__loop_timer g_sweep;
static kitd__loop *g_sweep_loop;

static void attempts(struct acall *k);

/* ---- the end of a call ---- */

static void free_task(struct kitd__loop_task *t) {
  struct acall *k = (struct acall *)t;
  kitd__http_buf_release(&k->path);
  kitd__http_buf_release(&k->body);
  free(k);
}

/* One hold on the client's async state less (a call or a stop task). */
static void unhold(struct kitd__client_async *as) {
  pthread_mutex_lock(&as->mu);
  long n = --as->inflight;
  int destroy = n == 0 && as->destroy_on_loop;
  if (n == 0) pthread_cond_broadcast(&as->cv);
  pthread_mutex_unlock(&as->mu);
  if (destroy) kitd__client_destroy(as->c);
}

static void finish(struct acall *k, int rc) {
  kitd__loop *l = k->as->loop;
  kitd__loop_timer_cancel(l, &k->timer);
  k->state = K_DONE;
  if (k->prev) k->prev->next = k->next;
  else g_calls = k->next;
  if (k->next) k->next->prev = k->prev;
  struct kitd__client_async *as = k->as;
  if (as->mp) {
    if (k->retries) kitd__mp_count(as->mp, KITD__MP_RETRIES, k->retries);
    if (k->refused) kitd__mp_count(as->mp, KITD__MP_REFUSED, 1);
    kitd__mp_end(as->mp, rc, kitd_now_ns() - k->t_call);
  }
  if (rc == 0) kitd__client_fill(k->c, k->ctx, k->out, k->response);
  k->done(k->arg, rc);
  /* Freed by a task: an event of this batch may still name k->att.io. */
  k->task.fn = free_task;
  kitd__loop_post(l, &k->task);
  unhold(as);
}

/* ---- attempts ---- */

/* Pick, passing over the endpoints that failed in this call while the
 * snapshot holds others: re-pick up to repick_limit times, then walk the
 * snapshot (the pick protects it) to the next one that did not fail. */
static int pick(struct acall *k) {
  kitd_balancer *b = k->v->lb;
  kitd_pick *p = &k->pick;
  int rc = kitd_balancer_pick(b, p);
  unsigned tries = 0;
  while (rc == 0 && k->navoid && p->count > k->navoid &&
         kitd__avoided(k->avoid, k->navoid, p->endpoint)) {
    if (tries++ == k->c->retry.repick_limit) {
      const struct kitd__snap *s = p->snap_;
      for (size_t j = 1; j < s->count; j++) {
        size_t i = (p->index + j) % s->count;
        if (!kitd__avoided(k->avoid, k->navoid, s->eps[i])) {
          kitd__pick_move(b, p, i);
          break;
        }
      }
      break;
    }
    kitd_balancer_done(b, p, KITD__RESULT_UNUSED, -1);
    rc = kitd_balancer_pick(b, p);
  }
  return rc;
}

/* After a failed attempt: 1 to try again now, 0 when the call has ended
 * or waits for its backoff timer. */
static int after_failure(struct acall *k, int rc) {
  int e = kitd_ctx_err(k->base);
  if (!e && k->as->stopped) e = KITD_ESTOPPED;
  if (e) {
    finish(k, e);
    return 0;
  }
  struct kitd__retry_next nx = kitd__retry_next(&k->c->retry, k->v->budget, k->attempt, rc, k->ctx);
  if (!nx.again) {
    k->refused = nx.refused;
    finish(k, nx.result);
    return 0;
  }
  int64_t wait = nx.wait_ns;
  if (wait == 0) return 1;
  int64_t at = kitd_now_ns() + wait, dl = kitd_ctx_deadline_ns(k->base);
  if (dl && dl < at) at = dl;
  k->state = K_BACKOFF;
  if (kitd__loop_timer_set(k->as->loop, &k->timer, at)) {
    finish(k, KITD_ENOMEM);
    return 0;
  }
  return 0;
}

/* The attempt on the picked endpoint ended with rc: 1 to try again now. */
static int attempt_ended(struct acall *k, int rc) {
  int64_t lat = kitd_now_ns() - k->t_att;
  kitd_ctx *ctx = k->ctx;
  kitd_ctx_set_status(ctx, kitd_ctx_status(&k->actx));
  kitd__copy_address(ctx->instance_, k->pick.instance);
  kitd_balancer *b = k->v->lb;
  if (rc == 0) {
    kitd_balancer_done(b, &k->pick, 0, lat);
    if (kitd_ctx_detail(&k->actx)[0]) kitd_ctx_set_detail(ctx, "%s", kitd_ctx_detail(&k->actx));
    int e = k->base != ctx || kitd_ctx_deadline_ns(ctx) ? kitd_ctx_err(k->base) : 0;
    if (e) { /* answered, but after the deadline: the call has failed */
      if (k->c->retry.free_response && k->out) k->c->retry.free_response(k->out);
      k->out = NULL;
      kitd_ctx_add_attempt(ctx, e, kitd_ctx_status(&k->actx), lat, ctx->instance_,
                           "answered after the deadline");
    }
    finish(k, e);
    return 0;
  }
  kitd__attempt_failed(ctx, rc, kitd_ctx_status(&k->actx), lat, ctx->instance_,
                       kitd_ctx_detail(&k->actx), k->avoid, &k->navoid, KITD__RETRY_AVOID_MAX,
                       k->pick.endpoint);
  /* A call stopped by kitd_client_free says nothing about the instance:
   * the balancer hears what a cancel tells it. */
  kitd_balancer_done(b, &k->pick, rc == KITD_ESTOPPED ? KITD_ECANCELED : rc, lat);
  return after_failure(k, rc);
}

static void att_end(struct kitd__http_att *a, int rc) {
  struct acall *k = (struct acall *)((char *)a - offsetof(struct acall, att));
  k->state = K_BACKOFF; /* between attempts */
  if (attempt_ended(k, rc)) attempts(k);
}

static void explain(struct acall *k, int picked) {
  char why[1024];
  kitd__pick_explain(k->v->lb, picked ? &k->pick : NULL, k->avoid, k->navoid, why, sizeof why);
  kitd_log(k->c->lg, KITD_LOG_DEBUG, "retry", "msg=pick attempt=%u async=1 %s", k->attempt, why);
}

/* Attempts until one is under way, a backoff waits, or the call ends. */
static void attempts(struct acall *k) {
  for (;;) {
    if (k->as->stopped) {
      finish(k, KITD_ESTOPPED);
      return;
    }
    k->attempt++;
    if (k->attempt > 1) k->retries++;
    int rc = pick(k);
    if (k->as->explain) explain(k, rc == 0);
    if (rc == 0 && !kitd__http_is_endpoint(k->pick.endpoint)) {
      kitd_balancer_done(k->v->lb, &k->pick, KITD__RESULT_UNUSED, -1);
      finish(k, KITD_EINTERNAL); /* only kitd_http endpoints run on the loop */
      return;
    }
    if (rc == 0) {
      kitd_ctx_init_child(&k->actx, k->base, k->c->retry.attempt_timeout_ms);
      k->t_att = kitd_now_ns();
      k->out = NULL;
      rc = kitd__http_att_start(&k->att, k->as->loop, k->pick.endpoint, &k->actx, &k->path,
                                &k->body, &k->out);
      if (rc == 0) {
        k->state = K_ATTEMPT;
        return;
      }
      if (!attempt_ended(k, rc)) return;
      continue;
    }
    /* Nothing to call: say why, as the blocking call does. */
    char why[KITD_CTX_DETAIL_MAX];
    kitd_endpointer_explain(k->v->ep, why, sizeof why);
    kitd_ctx_set_status(k->ctx, 0);
    kitd_ctx_set_instance(k->ctx, NULL);
    kitd_ctx_add_attempt(k->ctx, rc, 0, -1, NULL, why);
    kitd_ctx_set_detail(k->ctx, "%s", why);
    if (!after_failure(k, rc)) return;
  }
}

/* The registry has answered (or the wait is over): the first attempt. */
static void begin(struct acall *k) {
  int e = kitd_ctx_err(k->ctx);
  if (e) {
    finish(k, e);
    return;
  }
  k->base = k->ctx;
  if (k->c->retry.timeout_ms > 0) {
    kitd_ctx_init_child(&k->overall, k->ctx, k->c->retry.timeout_ms);
    k->base = &k->overall;
  }
  if (k->v->budget->deposit > 0) kitd__budget_deposit_on(k->v->budget);
  attempts(k);
}

static void call_timer(struct kitd__loop_timer *t) {
  struct acall *k = (struct acall *)((char *)t - offsetof(struct acall, timer));
  if (k->state == K_BACKOFF) {
    int e = kitd_ctx_err(k->base);
    if (e) finish(k, e);
    else attempts(k);
    return;
  }
  /* K_READY: as the blocking call's wait_first. */
  int ready = kitd_instancer_wait_ready(k->c->in, 0) == 0;
  int64_t now = kitd_now_ns();
  if (ready || now >= k->ready_until || kitd_ctx_err(k->ctx)) {
    if (ready || (now >= k->ready_until && k->ready_full)) kitd__client_set_ready(k->c);
    begin(k);
    return;
  }
  int64_t at = now + READY_POLL_NS;
  if (kitd__loop_timer_set(k->as->loop, &k->timer, at < k->ready_until ? at : k->ready_until))
    finish(k, KITD_ENOMEM);
}

/* Every 10 ms while calls are in flight: a canceled ctx ends its call. */
static void sweep(struct kitd__loop_timer *t) {
  (void)t;
  for (struct acall *k = g_calls, *next; k; k = next) {
    next = k->next;
    int e;
    if (k->state == K_ATTEMPT && (e = kitd_ctx_err(&k->actx))) kitd__http_att_fail(&k->att, e);
    else if (k->state == K_BACKOFF && (e = kitd_ctx_err(k->base))) finish(k, e);
    else if (k->state == K_READY && kitd_ctx_err(k->ctx)) begin(k);
  }
  if (g_calls) kitd__loop_timer_set(g_sweep_loop, &g_sweep, kitd_now_ns() + SWEEP_NS);
}

static void start_task(struct kitd__loop_task *t) {
  struct acall *k = (struct acall *)t;
  kitd__loop *l = k->as->loop;
  k->next = g_calls;
  if (g_calls) g_calls->prev = k;
  g_calls = k;
  if (!g_sweep.slot) {
    g_sweep.on = sweep;
    g_sweep_loop = l;
    kitd__loop_timer_set(l, &g_sweep, kitd_now_ns() + SWEEP_NS);
  }
  k->t_call = kitd_now_ns();
  if (k->as->mp) kitd__mp_count(k->as->mp, KITD__MP_STARTED, 1);
  if (k->as->stopped) {
    finish(k, KITD_ESTOPPED);
    return;
  }
  if (atomic_load_explicit(&k->c->ready, memory_order_acquire)) {
    begin(k);
    return;
  }
  int64_t ms = k->c->ready_timeout_ms;
  int64_t left = kitd_ctx_remaining_ms(k->ctx);
  if (left >= 0 && left < ms) ms = left;
  k->ready_full = ms == k->c->ready_timeout_ms;
  k->ready_until = k->t_call + ms * 1000000;
  k->state = K_READY;
  call_timer(&k->timer);
}

/* ---- the client's side ---- */

static void stop_task(struct kitd__loop_task *t) {
  struct kitd__client_async *as =
      (struct kitd__client_async *)((char *)t - offsetof(struct kitd__client_async, stop_task));
  as->stopped = 1;
  for (struct acall *k = g_calls, *next; k; k = next) {
    next = k->next;
    if (k->c != as->c) continue;
    if (k->state == K_ATTEMPT) kitd__http_att_fail(&k->att, KITD_ESTOPPED);
    else finish(k, KITD_ESTOPPED);
  }
  unhold(as);
}

/* The client's async state, made by its first async call. */
static int async_state(kitd_client *c, struct kitd__client_async **out) {
  struct kitd__client_async *as = atomic_load_explicit(&c->as, memory_order_acquire);
  if (as) return *out = as, 0;
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  if (!(as = atomic_load_explicit(&c->as, memory_order_relaxed))) {
    rc = KITD_ENOMEM;
    as = kitd__calloc(1, sizeof *as);
    if (as && pthread_mutex_init(&as->mu, NULL)) free(as), as = NULL;
    if (as && pthread_cond_init(&as->cv, NULL)) {
      pthread_mutex_destroy(&as->mu);
      free(as), as = NULL;
    }
    if (as && c->m && !(as->mp = kitd__mpipe_get(c->m, c->service))) rc = KITD_ENOMEM;
    else if (as) rc = kitd__loop_acquire(&as->loop);
    if (rc && as) {
      kitd__mpipe_unref(as->mp);
      pthread_cond_destroy(&as->cv);
      pthread_mutex_destroy(&as->mu);
      free(as), as = NULL;
    }
    if (as) {
      as->c = c;
      as->explain = c->lg && kitd_log_enabled(c->lg, KITD_LOG_DEBUG);
      as->stop_task.fn = stop_task;
      atomic_store_explicit(&c->as, as, memory_order_release);
    }
  }
  pthread_mutex_unlock(&c->mu);
  *out = as;
  return rc;
}

int kitd__client_async_stop(kitd_client *c) {
  struct kitd__client_async *as = atomic_load_explicit(&c->as, memory_order_acquire);
  if (!as) return 0;
  int here = kitd__loop_here(as->loop);
  pthread_mutex_lock(&as->mu);
  as->stopping = 1;
  as->destroy_on_loop = here;
  as->inflight++; /* the stop task */
  pthread_mutex_unlock(&as->mu);
  kitd__loop_post(as->loop, &as->stop_task);
  if (here) return 1;
  pthread_mutex_lock(&as->mu);
  while (as->inflight > 0) pthread_cond_wait(&as->cv, &as->mu);
  pthread_mutex_unlock(&as->mu);
  return 0;
}

void kitd__client_async_free(kitd_client *c) {
  struct kitd__client_async *as = atomic_exchange_explicit(&c->as, NULL, memory_order_acq_rel);
  if (!as) return;
  kitd__mpipe_unref(as->mp);
  pthread_cond_destroy(&as->cv);
  pthread_mutex_destroy(&as->mu);
  kitd__loop *l = as->loop;
  free(as);
  kitd__loop_release(l);
}

int kitd_client_call_async(kitd_client *c, kitd_ctx *ctx, const void *request, void *response,
                           kitd_client_done_fn done, void *arg) {
  if (!c || !ctx || !done) return KITD_EINVAL;
  int rc = kitd_ctx_err(ctx);
  if (rc) return rc;
  if (c->custom_factory) {
    kitd_ctx_set_detail(ctx, "'%s': a client with a custom factory cannot call asynchronously",
                        c->service);
    return KITD_EINVAL;
  }
  struct kitd__client_async *as;
  if ((rc = async_state(c, &as))) return rc;
  struct variant *v;
  if ((rc = kitd__client_variant(c, request, ctx, &v))) return rc;
  struct acall *k = kitd__calloc(1, sizeof *k);
  if (!k) return KITD_ENOMEM;
  if ((rc = kitd__http_build(v->h, request, &k->path, &k->body, ctx)) ||
      (rc = kitd_http_buf_append(&k->body, "", 0))) {
    free_task(&k->task);
    return rc;
  }
  k->c = c;
  k->as = as;
  k->v = v;
  k->ctx = k->base = ctx;
  k->response = response;
  k->done = done;
  k->arg = arg;
  k->timer.on = call_timer;
  k->att.end = att_end;
  k->task.fn = start_task;
  pthread_mutex_lock(&as->mu);
  int stopping = as->stopping;
  if (!stopping) as->inflight++;
  pthread_mutex_unlock(&as->mu);
  if (stopping) {
    free_task(&k->task);
    return KITD_ESTOPPED;
  }
  kitd__loop_post(as->loop, &k->task);
  return 0;
}
