/* SPDX-License-Identifier: MIT */
/* Consul test double: shared declarations.
 *
 * The double is one process: an MHD daemon (thread per connection, so a
 * blocking query simply waits on a condition variable in its own thread),
 * one store guarded by one mutex, one thread per HTTP/TCP check, and a
 * ticker thread for TTL expiry and the critical-service reaper.
 * Everything follows /work/shared/consul-api.md. */
#ifndef CONSUL_DOUBLE_H
#define CONSUL_DOUBLE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

/* ---- configuration (command line) ---- */
struct config {
    char listen_host[64];
    int listen_port;
    char node[128];
    char node_id[40];
    char dc[64];
    char **acl_tokens; /* NULL-terminated; NULL = ACLs off */
    size_t n_acl_tokens;
    int64_t min_interval_ns; /* Consul: 1 s */
    int64_t reap_floor_ns;   /* Consul: 1 min */
    int64_t reap_every_ns;   /* Consul: 30 s */
    bool no_stagger;
    bool no_consul_service;
    char *tls_cert_pem;
    char *tls_key_pem;
    int max_conns_per_client; /* Consul: 200; <= 0: no limit */
    char **node_meta;         /* key, value, key, value...; Consul's node_meta */
    size_t n_node_meta;       /* pairs */
};

/* ---- the store ---- */
enum check_status {
    ST_PASSING,
    ST_WARNING,
    ST_CRITICAL
};
enum check_kind {
    CK_TTL,
    CK_HTTP,
    CK_TCP,
    CK_MAINT,
    CK_OTHER
};

struct check_def { /* what a registration asks for */
    char *id, *name, *notes;
    int status; /* -1: not given */
    enum check_kind kind;
    const char *type; /* "http", "tcp", "ttl", "grpc", ... (static) */
    char *http, *method, *body, *tcp, *tls_server_name;
    json_t *header; /* object name -> [values], or NULL */
    bool tls_skip_verify, disable_redirects;
    int64_t interval, timeout, ttl, dereg_after;
    int success_before_passing, failures_before_warning, failures_before_critical;
};

struct check {
    atomic_int refs;
    bool removed;      /* under store lock; runner exits */
    atomic_int cancel; /* probes poll it */
    struct check_def def;
    char *service_id, *service_name;
    enum check_status status;
    char *output;          /* live output (agent view) */
    char *synced_output;   /* what the catalog shows */
    char *ttl_last_output; /* last output given by a TTL update */
    uint64_t create_index, modify_index;
    int64_t ttl_deadline;   /* monotonic ns, 0 = not armed */
    int64_t critical_since; /* monotonic ns, 0 = not critical */
    int successes, failures;
};

struct service {
    char *id, *name, *address;
    json_t *tags;   /* array of strings */
    json_t *meta;   /* object, or NULL when the body had none */
    json_t *tagged; /* object name -> {Address, Port} (user's) */
    int port;
    int w_passing, w_warning;
    bool enable_tag_override;
    bool catalog_only; /* the built-in "consul" service */
    uint64_t create_index, modify_index;
    struct check **checks;
    size_t n_checks;
    char *fingerprint; /* to skip idempotent re-registrations */
};

struct name_index {
    char *name;
    uint64_t index;
};

/* Blocking queries on one service sleep on one of these, picked by a hash
 * of the name: a write wakes the watchers of its own service (and of the
 * names sharing the bucket, who check their index and sleep again), as
 * Consul's per-service watch sets do, not every waiting handler. */
#define WAKE_BUCKETS 64

struct store {
    pthread_mutex_t mu;
    pthread_cond_t changed;                   /* blocking queries on a whole table */
    pthread_cond_t svc_changed[WAKE_BUCKETS]; /* blocking queries on one service */
    pthread_cond_t tick;                      /* ticker: TTL deadlines, reaper */
    pthread_cond_t runners_cv;                /* check runners: removal, stop */
    bool stopping;
    bool cutting;           /* a "down" fault is closing connections */
    uint64_t index;         /* last raft index handed out */
    uint64_t tomb_index;    /* last deregistration of any service */
    uint64_t catalog_index; /* the services table */
    uint64_t node_index;
    uint64_t generation; /* bumped to wake every watcher */
    struct service **svcs;
    size_t n_svcs;
    struct name_index *names;
    size_t n_names;
    int live_runners;
    int active_blocking;
    const struct config *cfg;
};

extern struct store g_store;
extern struct config g_cfg;

int64_t now_mono(void);
int64_t now_real(void);
/* Sleep up to ns, returning early (true) when the double stops. */
bool sleep_interruptible(int64_t ns);

void store_init(const struct config *cfg);
void store_free(void);
void store_stop(void); /* wake everyone, runners end */
/* Called with the lock held. */
uint64_t store_bump(const char *service_name); /* new index, wakes watchers */
uint64_t store_service_index(const char *name);
struct service *store_find(const char *id);
void store_remove_service(size_t i); /* deregister at i */
void store_wake_all(void);
void store_reset_dev(void);
void store_reset_normal(void);
void store_index_reset(void);
/* Wait until *cond(arg) or deadline (monotonic ns) or a generation change
 * or stop: on the bucket of `service` (a blocking query on that service),
 * or with service NULL on `changed` (any indexed change). Lock held. */
void store_wait(const char *service, bool (*done)(void *), void *arg, int64_t deadline);

/* check objects */
void check_unref(struct check *c);
char *utf8_clean(const char *s);
void check_def_clear(struct check_def *d);
void check_set_status(struct check *c, enum check_status st, const char *output);
const char *status_name(enum check_status s);
int status_parse(const char *s); /* -1 when not a status */

/* checks.c: runners, ticker */
void checks_start_ticker(void);
void checks_stop(void);                            /* join ticker, wait for runners */
void checks_attach(struct check *c, bool stagger); /* lock held */
void checks_ttl_touch(void);                       /* lock held: deadline changed */
void status_handler_result(struct check *c, enum check_status st, const char *out);

/* probe.c */
char *probe_http(const struct check_def *d, atomic_int *cancel, enum check_status *st);
char *probe_tcp(const struct check_def *d, atomic_int *cancel, enum check_status *st);

/* duration.c */
int go_duration_parse(const char *s, int64_t *out, char **err); /* 0 ok */
char *go_duration_format(int64_t ns);
bool go_parse_bool(const char *s, bool *out);

/* ---- HTTP side ---- */
struct hdr {
    const char *name;
    char *value;
};

struct req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path;  /* cleaned, decoded */
    const char *route; /* the pattern matched, for stats */
    const char *rest;  /* path after a subtree pattern */
    const char *body;
    size_t body_len;
    int fault; /* enum fault_mode picked for this request */
};

struct reply {
    int status;
    char *body; /* malloc'd, may be NULL */
    size_t len;
    const char *ctype;
    struct hdr hdrs[8];
    int n_hdrs;
    bool blocking_headers; /* X-Consul-Index and friends */
    uint64_t index;
    const char *consistency;
    bool no_gzip;
};

const char *req_arg(struct req *r, const char *name);
bool req_has_arg(struct req *r, const char *name);
const char *req_header(struct req *r, const char *name);

void reply_text(struct reply *rp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void reply_json(struct reply *rp, struct req *r, int status, json_t *v); /* steals v */
/* The same for a body already written as compact JSON text (taken). */
void reply_json_text(struct reply *rp, struct req *r, int status, char *text, size_t len);
void reply_add_header(struct reply *rp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void reply_clear(struct reply *rp);
/* Turn a reply into an MHD response with the common headers (and gzip). */
struct MHD_Response *reply_build(struct reply *rp, struct req *r);
void reply_common_headers(struct MHD_Response *resp);
void reply_headers(struct MHD_Response *resp, struct reply *rp);

/* acl.c */
enum acl_who {
    ACL_OFF,
    ACL_KNOWN,
    ACL_ANON,
    ACL_UNKNOWN
};
enum acl_who acl_resolve(struct req *r);
/* false (and a 403 in rp) when the request's token may not write. */
bool acl_write(struct req *r, struct reply *rp, const char *perm, const char *res);
/* false (and a 403) for an unknown token; *filtered set when an
 * anonymous reader must see an empty answer. */
bool acl_read(struct req *r, struct reply *rp, bool *filtered);
/* 400 for the Enterprise-only ns/partition parameters. */
bool reject_enterprise(struct req *r, struct reply *rp);

/* decode.c: Go-style strict, case-insensitive JSON decoding */
struct svc_def {
    char *id, *name, *address;
    json_t *tags, *meta, *tagged;
    int port;
    bool has_weights;
    int w_passing, w_warning;
    bool enable_tag_override;
    struct check_def *checks; /* [Check, Checks...] without empty Check */
    size_t n_checks;
};
/* 0 ok; else *err is a malloc'd text for a 400. */
int decode_service(const char *body, size_t len, struct svc_def *out, char **err);
void svc_def_clear(struct svc_def *d);
int decode_check_update(const char *body, size_t len, char **status, char **output, char **err);

/* render.c (lock held) */
json_t *render_health_entry(const struct service *s);
json_t *render_catalog_entry(const struct service *s);
json_t *render_agent_service(const struct service *s);
/* `c` is one of `s`'s checks (its ServiceTags come from `s`). */
json_t *render_check(const struct service *s, const struct check *c, bool catalog_view);
/* A check's fields as an answer shows them; check_row_of() borrows them
 * from `s` and `c` (lock held), and a copy made under the lock (strings
 * and tags copied) can be rendered after it is released. */
struct check_row {
    const char *id, *name, *notes, *output, *service_id, *service_name, *type;
    enum check_status status;
    int64_t interval, timeout;
    uint64_t create_index, modify_index;
    json_t *tags; /* the service's Tags array, or NULL */
};
void check_row_of(const struct service *s, const struct check *c, bool catalog_view,
                  struct check_row *r);
json_t *render_check_row(const struct check_row *r);
/* A growing text; oom set when a growth failed (the text is then cut). */
struct text {
    char *p;
    size_t len, cap;
    bool oom;
};
void text_add(struct text *t, const char *s, size_t n);
void text_free(struct text *t);
/* Appends the row as render_check_row() would dump it, compact. */
void write_check_row(struct text *t, const struct check_row *r);
/* The node's serfHealth check, as the health endpoints show it. */
json_t *serf_check(void);
json_t *render_node(void);

/* endpoints */
void api_agent(struct req *r, struct reply *rp, const char *route);
void api_health(struct req *r, struct reply *rp, const char *route);

/* faults.c */
struct MHD_Response;
enum fault_mode {
    F_NONE,
    F_DOWN,
    F_SLOW,
    F_STALL,
    F_500,
    F_429,
    F_503,
    F_GARBAGE,
    F_TRUNCATED,
    F_OVERSIZED
};
/* Returns true when a fault took over: *resp set (or NULL to drop the
 * connection). Otherwise the normal handler runs, maybe after a delay. */
bool fault_intercept(struct req *r, struct MHD_Response **resp, unsigned *status, bool *drop);
/* For stall/truncated faults applied to a real answer. */
struct MHD_Response *fault_wrap(struct req *r, struct reply *rp);
bool fault_wants_wrap(struct req *r);
void control_handle(struct req *r, struct reply *rp);
void stats_count(const char *method, const char *route, const char *token);
/* acl.c: the request's token (?token=, X-Consul-Token, Bearer) or NULL */
const char *acl_token(struct req *r, char *buf, size_t n);
void faults_init(void);
void faults_free(void);

/* main.c: supervisor requests */
void supervisor_request_down(int64_t ms);
/* server.c */
int server_start(struct config *cfg);
void server_stop(void);
/* Open HTTP connections now (all peers), and the most one peer held at
 * once since the start (for the connection-limit tests and benches). */
int server_conns_now(void);
int server_max_conns_seen(void);
/* Answers sent gzipped since the start (reported by /_double/stats). */
long reply_gzipped(void);
/* Start max_connections again from the connections open now (stats reset). */
void server_reset_max_conns(void);
bool server_tls_supported(void);
/* Lock held: is the connection being cut (stop or down fault)? */
bool store_cut(void);

#endif
