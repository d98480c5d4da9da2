/* SPDX-License-Identifier: MIT */
/* consul-double: a Consul agent stand-in for tests.
 *
 *   consul-double --listen 127.0.0.1:0 [--node NAME] [--dc DC]
 *                 [--acl-token TOKEN]... [--min-interval MS] [--reap-floor MS]
 *                 [--reap-every MS] [--no-stagger] [--no-consul-service]
 *                 [--max-conns-per-client N]
 *                 [--tls-cert FILE --tls-key FILE]
 *
 * Prints the address it listens on (127.0.0.1:PORT) as the first line of
 * stdout. SIGTERM or SIGINT end it (exit 0). The main thread is the
 * supervisor: it waits for signals and carries out "down" faults (stop
 * listening for a while, then listen again on the same port). */
#include "double.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct config g_cfg;
static atomic_llong g_down_ms;

void supervisor_request_down(int64_t ms) { atomic_store(&g_down_ms, (long long)ms); }

static void usage(void)
{
    fprintf(stderr, "usage: consul-double --listen HOST:PORT [--node NAME] [--dc DC]\n"
                    "       [--acl-token TOKEN]... [--min-interval MS] [--reap-floor MS]\n"
                    "       [--reap-every MS] [--no-stagger] [--no-consul-service]\n"
                    "       [--max-conns-per-client N]\n"
                    "       [--tls-cert FILE --tls-key FILE] [--node-meta KEY:VALUE]...\n");
    exit(2);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + len, tmp, n);
        len += n;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

static long long ms_arg(const char *v)
{
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || x < 0) usage();
    return x;
}

static void parse_args(int argc, char **argv)
{
    strcpy(g_cfg.listen_host, "127.0.0.1");
    g_cfg.listen_port = 8500;
    strcpy(g_cfg.node, "consul-double");
    strcpy(g_cfg.dc, "dc1");
    g_cfg.min_interval_ns = 1000 * NS_PER_MS;
    g_cfg.reap_floor_ns = 60000 * NS_PER_MS;
    g_cfg.reap_every_ns = 30000 * NS_PER_MS;
    g_cfg.max_conns_per_client = 200;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--listen") == 0 && v) {
            const char *colon = strrchr(v, ':');
            if (!colon || (size_t)(colon - v) >= sizeof g_cfg.listen_host) usage();
            memcpy(g_cfg.listen_host, v, (size_t)(colon - v));
            g_cfg.listen_host[colon - v] = '\0';
            g_cfg.listen_port = (int)ms_arg(colon + 1);
            if (strcmp(g_cfg.listen_host, "localhost") == 0 || !*g_cfg.listen_host)
                strcpy(g_cfg.listen_host, "127.0.0.1");
            i++;
        } else if (strcmp(a, "--node") == 0 && v) {
            snprintf(g_cfg.node, sizeof g_cfg.node, "%s", v);
            i++;
        } else if (strcmp(a, "--node-meta") == 0 && v) {
            /* Consul's -node-meta key:value (the agent's node_meta). */
            const char *colon = strchr(v, ':');
            if (!colon || colon == v) usage();
            char **m = realloc(g_cfg.node_meta, (g_cfg.n_node_meta + 1) * 2 * sizeof(char *));
            if (!m) usage();
            g_cfg.node_meta = m;
            m[2 * g_cfg.n_node_meta] = strndup(v, (size_t)(colon - v));
            m[2 * g_cfg.n_node_meta + 1] = strdup(colon + 1);
            g_cfg.n_node_meta++;
            i++;
        } else if (strcmp(a, "--dc") == 0 && v) {
            snprintf(g_cfg.dc, sizeof g_cfg.dc, "%s", v);
            i++;
        } else if (strcmp(a, "--acl-token") == 0 && v) {
            g_cfg.acl_tokens = realloc(g_cfg.acl_tokens, (g_cfg.n_acl_tokens + 2) * sizeof(char *));
            g_cfg.acl_tokens[g_cfg.n_acl_tokens++] = strdup(v);
            g_cfg.acl_tokens[g_cfg.n_acl_tokens] = NULL;
            i++;
        } else if (strcmp(a, "--min-interval") == 0 && v) {
            g_cfg.min_interval_ns = ms_arg(v) * NS_PER_MS;
            i++;
        } else if (strcmp(a, "--reap-floor") == 0 && v) {
            g_cfg.reap_floor_ns = ms_arg(v) * NS_PER_MS;
            i++;
        } else if (strcmp(a, "--reap-every") == 0 && v) {
            g_cfg.reap_every_ns = ms_arg(v) * NS_PER_MS;
            if (g_cfg.reap_every_ns <= 0) usage();
            i++;
        } else if (strcmp(a, "--max-conns-per-client") == 0 && v) {
            g_cfg.max_conns_per_client = (int)ms_arg(v);
            i++;
        } else if (strcmp(a, "--no-stagger") == 0) {
            g_cfg.no_stagger = true;
        } else if (strcmp(a, "--no-consul-service") == 0) {
            g_cfg.no_consul_service = true;
        } else if (strcmp(a, "--tls-cert") == 0 && v) {
            cert = v;
            i++;
        } else if (strcmp(a, "--tls-key") == 0 && v) {
            key = v;
            i++;
        } else {
            usage();
        }
    }
    if (!!cert != !!key) {
        fprintf(stderr, "consul-double: --tls-cert and --tls-key go together\n");
        exit(2);
    }
    if (cert) {
        if (!server_tls_supported()) {
            fprintf(stderr, "consul-double: libmicrohttpd was built without TLS\n");
            exit(2);
        }
        g_cfg.tls_cert_pem = slurp(cert);
        g_cfg.tls_key_pem = slurp(key);
        if (!g_cfg.tls_cert_pem || !g_cfg.tls_key_pem) {
            fprintf(stderr, "consul-double: cannot read the TLS certificate or key\n");
            exit(2);
        }
    }
    /* A node ID that stays the same for the same node name. */
    unsigned long h = 5381;
    for (const char *p = g_cfg.node; *p; p++) h = h * 33 + (unsigned char)*p;
    snprintf(g_cfg.node_id, sizeof g_cfg.node_id, "%08lx-%04lx-4%03lx-8%03lx-%012lx",
             h & 0xffffffffUL, (h >> 8) & 0xffff, (h >> 4) & 0xfff, (h >> 12) & 0xfff,
             (h * 2654435761UL) & 0xffffffffffffUL);
}

/* The listener goes away for `ms` (connections are refused and every open
 * one is cut), then comes back on the same port. */
static void go_down(long long ms, const sigset_t *sigs, bool *stop)
{
    struct timespec pause = {0, 30 * 1000 * 1000}; /* let the control answer leave */
    nanosleep(&pause, NULL);
    pthread_mutex_lock(&g_store.mu);
    g_store.cutting = true;
    store_wake_all();
    pthread_mutex_unlock(&g_store.mu);
    server_stop();
    pthread_mutex_lock(&g_store.mu);
    g_store.cutting = false;
    pthread_mutex_unlock(&g_store.mu);
    int64_t until = now_mono() + ms * NS_PER_MS;
    while (!*stop && now_mono() < until) {
        int64_t left = until - now_mono();
        if (left > 50 * NS_PER_MS) left = 50 * NS_PER_MS;
        struct timespec ts = {0, (long)left};
        if (sigtimedwait(sigs, NULL, &ts) > 0) *stop = true;
    }
    if (*stop) return;
    for (int tries = 0; tries < 100; tries++) {
        if (server_start(&g_cfg) == 0) return;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "consul-double: cannot listen again on port %d\n", g_cfg.listen_port);
    *stop = true;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread inherits it */
    signal(SIGPIPE, SIG_IGN);
    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);
    srandom((unsigned)(seed.tv_nsec ^ getpid()));

    store_init(&g_cfg);
    faults_init();
    checks_start_ticker();
    if (server_start(&g_cfg) != 0) {
        fprintf(stderr, "consul-double: cannot listen on %s:%d: %s\n", g_cfg.listen_host,
                g_cfg.listen_port, strerror(errno));
        store_stop();
        checks_stop();
        faults_free();
        store_free();
        return 1;
    }
    printf("%s:%d\n", g_cfg.listen_host, g_cfg.listen_port);
    fflush(stdout);

    bool stop = false;
    while (!stop) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        int s = sigtimedwait(&sigs, NULL, &ts);
        if (s > 0) break;
        long long down = atomic_exchange(&g_down_ms, 0);
        if (down > 0) go_down(down, &sigs, &stop);
    }

    store_stop();
    server_stop();
    checks_stop();
    faults_free();
    store_free();
    for (size_t i = 0; i < g_cfg.n_acl_tokens; i++) free(g_cfg.acl_tokens[i]);
    free(g_cfg.acl_tokens);
    for (size_t i = 0; i < 2 * g_cfg.n_node_meta; i++) free(g_cfg.node_meta[i]);
    free(g_cfg.node_meta);
    free(g_cfg.tls_cert_pem);
    free(g_cfg.tls_key_pem);
    return 0;
}
