/* SPDX-License-Identifier: MIT */
/* Running checks: one thread per HTTP/TCP check (first run after a random
 * stagger within the interval, then every interval), and one ticker that
 * expires TTL checks and reaps services critical for longer than their
 * DeregisterCriticalServiceAfter (raised to the reap floor). */
#include "double.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_t g_ticker;
static bool g_ticker_started;

static struct timespec ts_of(int64_t t)
{
    struct timespec ts = {.tv_sec = t / NS_PER_S, .tv_nsec = t % NS_PER_S};
    return ts;
}

/* Consul's StatusHandler: consecutive successes/failures needed to flip;
 * warning counts as a success. Lock held. */
void status_handler_result(struct check *c, enum check_status st, const char *out)
{
    const struct check_def *d = &c->def;
    if (st == ST_PASSING || st == ST_WARNING) {
        c->successes++;
        c->failures = 0;
        if (c->successes >= d->success_before_passing) check_set_status(c, st, out);
    } else {
        c->failures++;
        c->successes = 0;
        if (c->failures >= d->failures_before_critical) check_set_status(c, ST_CRITICAL, out);
        else if (c->failures >= d->failures_before_warning) check_set_status(c, ST_WARNING, out);
    }
}

static void *runner_main(void *arg)
{
    struct check *c = arg;
    pthread_mutex_lock(&g_store.mu);
    int64_t iv = c->def.interval;
    int64_t next = now_mono();
    if (!g_store.cfg->no_stagger && iv > 0)
        next += (int64_t)(((double)random() / ((double)RAND_MAX + 1.0)) * (double)iv);
    for (;;) {
        while (!c->removed && !g_store.stopping && now_mono() < next) {
            struct timespec ts = ts_of(next);
            pthread_cond_timedwait(&g_store.runners_cv, &g_store.mu, &ts);
        }
        if (c->removed || g_store.stopping) break;
        pthread_mutex_unlock(&g_store.mu);
        enum check_status st = ST_CRITICAL;
        char *out = c->def.kind == CK_HTTP ? probe_http(&c->def, &c->cancel, &st)
                                           : probe_tcp(&c->def, &c->cancel, &st);
        pthread_mutex_lock(&g_store.mu);
        if (!c->removed && !g_store.stopping) status_handler_result(c, st, out ? out : "");
        free(out);
        next = now_mono() + iv;
    }
    pthread_mutex_unlock(&g_store.mu);
    check_unref(c); /* before leaving the count, so shutdown frees all */
    pthread_mutex_lock(&g_store.mu);
    g_store.live_runners--;
    pthread_cond_broadcast(&g_store.runners_cv);
    pthread_mutex_unlock(&g_store.mu);
    return NULL;
}

void checks_attach(struct check *c, bool stagger)
{
    (void)stagger;
    if (c->def.kind == CK_TTL) {
        c->ttl_deadline = now_mono() + c->def.ttl;
        pthread_cond_broadcast(&g_store.tick);
        return;
    }
    if (c->def.kind != CK_HTTP && c->def.kind != CK_TCP) return;
    atomic_fetch_add(&c->refs, 1);
    g_store.live_runners++;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256 * 1024);
    if (pthread_create(&t, &a, runner_main, c) != 0) {
        g_store.live_runners--;
        atomic_fetch_sub(&c->refs, 1);
    }
    pthread_attr_destroy(&a);
}

void checks_ttl_touch(void) { pthread_cond_broadcast(&g_store.tick); }

static void expire_ttls(int64_t now, int64_t *earliest)
{
    for (size_t i = 0; i < g_store.n_svcs; i++) {
        struct service *s = g_store.svcs[i];
        for (size_t k = 0; k < s->n_checks; k++) {
            struct check *c = s->checks[k];
            if (c->def.kind != CK_TTL || !c->ttl_deadline) continue;
            if (c->ttl_deadline <= now) {
                c->ttl_deadline = 0;
                char *out = NULL;
                if (c->ttl_last_output && *c->ttl_last_output)
                    (void)!asprintf(&out, "TTL expired (last output before timeout follows): %s",
                                    c->ttl_last_output);
                check_set_status(c, ST_CRITICAL, out ? out : "TTL expired");
                free(out);
            } else if (c->ttl_deadline < *earliest) {
                *earliest = c->ttl_deadline;
            }
        }
    }
}

static void reap(int64_t now)
{
    for (size_t i = 0; i < g_store.n_svcs; i++) {
        struct service *s = g_store.svcs[i];
        bool gone = false;
        for (size_t k = 0; k < s->n_checks && !gone; k++) {
            struct check *c = s->checks[k];
            if (c->def.dereg_after <= 0 || c->status != ST_CRITICAL || !c->critical_since) continue;
            int64_t timeout = c->def.dereg_after;
            if (timeout < g_store.cfg->reap_floor_ns) timeout = g_store.cfg->reap_floor_ns;
            if (now - c->critical_since > timeout) gone = true;
        }
        if (gone) {
            store_remove_service(i);
            i--;
        }
    }
}

static void *ticker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_store.mu);
    int64_t next_reap = now_mono() + g_store.cfg->reap_every_ns;
    while (!g_store.stopping) {
        int64_t now = now_mono();
        int64_t earliest = next_reap;
        expire_ttls(now, &earliest);
        if (now >= next_reap) {
            reap(now);
            next_reap = now + g_store.cfg->reap_every_ns;
            if (next_reap < earliest) earliest = next_reap;
        }
        struct timespec ts = ts_of(earliest);
        pthread_cond_timedwait(&g_store.tick, &g_store.mu, &ts);
    }
    pthread_mutex_unlock(&g_store.mu);
    return NULL;
}

void checks_start_ticker(void)
{
    g_ticker_started = pthread_create(&g_ticker, NULL, ticker_main, NULL) == 0;
}

void checks_stop(void)
{
    if (g_ticker_started) pthread_join(g_ticker, NULL);
    g_ticker_started = false;
    pthread_mutex_lock(&g_store.mu);
    while (g_store.live_runners > 0) pthread_cond_wait(&g_store.runners_cv, &g_store.mu);
    pthread_mutex_unlock(&g_store.mu);
}
