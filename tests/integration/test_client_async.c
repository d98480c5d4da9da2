/* SPDX-License-Identifier: MIT */
/* kitd_client_call_async() against real lorem-server processes on
 * 127.0.0.1: success (fast path and libcurl), 1,000 calls in flight from
 * one thread, retry past a dead instance (connection refused) and past one
 * that answers 500, a deadline against a server that never answers, a
 * cancel, freeing a client with calls in flight, done starting the next
 * call and freeing the client, and the errors given at the start. Every
 * wait is bounded. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../support/double.h"
#include "../support/fixture.h"
#include "../support/lorem_proc.h"
#include "kitd/kitd.h"

#define NSRV 2

struct server {
  pid_t pid;
  int port;
  char addr[64];
};
static struct server g_srv[NSRV];
static struct MHD_Daemon *g_500; /* answers every request with 500 */
static char g_500_addr[64];
static int g_hole = -1; /* listens, never accepts: never answers */
static char g_hole_addr[64];
static char g_dead_addr[64]; /* nothing listens: connection refused */

/* ---- servers ---- */

static int start_lorem(struct server *s) {
  static const char *const flags[] = {"-max.conns.per.addr", "4000", NULL};
  if (kitd_test_lorem_start(flags, &s->pid, &s->port)) return -1;
  snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
  return 0;
}

static enum MHD_Result answer_500(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *up,
                                  size_t *upsz, void **st) {
  (void)cls, (void)url, (void)method, (void)version, (void)up;
  if (!*st) {
    *st = (void *)1;
    return MHD_YES;
  }
  if (*upsz) {
    *upsz = 0;
    return MHD_YES;
  }
  static const char body[] = "{\"error\":\"broken\"}";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret = MHD_queue_response(c, 500, r);
  MHD_destroy_response(r);
  return ret;
}

static int listen_any(int backlog, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, backlog) ||
      getsockname(fd, (struct sockaddr *)&a, &len)) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

static void stop_all(void) {
  for (int i = 0; i < NSRV; i++)
    if (g_srv[i].pid > 0) {
      kitd_test_lorem_stop(g_srv[i].pid);
      g_srv[i].pid = 0;
    }
  if (g_500) MHD_stop_daemon(g_500);
  g_500 = NULL;
  if (g_hole >= 0) close(g_hole);
  g_hole = -1;
}

static int setup(void **state) {
  (void)state;
  kitd_global_init();
  for (int i = 0; i < NSRV; i++)
    if (start_lorem(&g_srv[i])) {
      fprintf(stderr, "lorem-server %d did not start\n", i);
      stop_all();
      return -1;
    }
  g_500 = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                           NULL, answer_500, NULL, MHD_OPTION_SOCK_ADDR,
                           (struct sockaddr *)&(struct sockaddr_in){
                               .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                           MHD_OPTION_END);
  int port;
  g_hole = listen_any(1024, &port);
  if (!g_500 || g_hole < 0) {
    stop_all();
    return -1;
  }
  snprintf(g_hole_addr, sizeof g_hole_addr, "127.0.0.1:%d", port);
  snprintf(g_500_addr, sizeof g_500_addr, "127.0.0.1:%d",
           MHD_get_daemon_info(g_500, MHD_DAEMON_INFO_BIND_PORT)->port);
  int dead = listen_any(1, &port); /* a port that was free a moment ago */
  if (dead < 0) {
    stop_all();
    return -1;
  }
  close(dead);
  snprintf(g_dead_addr, sizeof g_dead_addr, "127.0.0.1:%d", port);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  stop_all();
  kitd_global_cleanup();
  return 0;
}

/* ---- calls and their ends ---- */

struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int ended, want;
};

struct call {
  kitd_ctx ctx;
  kitd_client_resp resp;
  kitd_attempt_error log[8];
  int rc, ends;
  pthread_t thread; /* where done ran */
  struct waiter *w;
};

static void waiter_init(struct waiter *w, int want) {
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->ended = 0;
  w->want = want;
}

static void waiter_end(struct waiter *w) {
  pthread_mutex_lock(&w->mu);
  w->ended++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

/* Wait (at most ms, scaled) for the calls to end; how many did. */
static int waiter_wait(struct waiter *w, long ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ns = (long long)ts.tv_nsec + kitd_test_ms(ms) * 1000000LL;
  ts.tv_sec += (time_t)(ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&w->mu);
  while (w->ended < w->want)
    if (pthread_cond_timedwait(&w->cv, &w->mu, &ts)) break;
  int n = w->ended;
  pthread_mutex_unlock(&w->mu);
  return n;
}

static void on_done(void *arg, int rc) {
  struct call *k = arg;
  k->rc = rc;
  k->ends++;
  k->thread = pthread_self();
  waiter_end(k->w);
}

static void call_init(struct call *k, struct waiter *w, int64_t timeout_ms) {
  memset(k, 0, sizeof *k);
  kitd_ctx_init(&k->ctx);
  if (timeout_ms > 0) kitd_ctx_set_timeout_ms(&k->ctx, timeout_ms);
  kitd_ctx_set_attempt_log(&k->ctx, k->log, 8);
  k->rc = 12345;
  k->w = w;
}

/* A client of "lorem" over the static list csv, POSTing to path with the
 * codec, retrying as ro says. */
static kitd_client *new_client(const char *csv, kitd_codec codec, const char *path,
                               const kitd_retry_opts *ro) {
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "lorem";
  o.instancer = kt_static(csv);
  assert_non_null(o.instancer);
  o.method = "POST";
  o.codec = codec;
  o.path = path;
  o.retry = ro;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_instancer_free(o.instancer);
  assert_int_equal(kitd_client_wait_ready(c, 2000), 0);
  return c;
}

static kitd_client *client_on(const char *csv, int max_attempts) {
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.max_attempts = max_attempts;
  ro.budget_percent = -1; /* these tests count retries: no budget */
  return new_client(csv, KITD_CODEC_RAW, "/lorem/word/1/3", &ro);
}

static int is_lorem(const char *addr) {
  for (int i = 0; i < NSRV; i++)
    if (!strcmp(addr, g_srv[i].addr)) return 1;
  return 0;
}

/* A lorem answer: {"message": "..."} with status 200. */
static void assert_lorem_answer(const struct call *k) {
  assert_int_equal(k->rc, 0);
  assert_int_equal(k->ends, 1);
  assert_int_equal(k->resp.status, 200);
  assert_non_null(k->resp.body);
  assert_non_null(strstr(k->resp.body, "\"message\""));
  assert_non_null(k->resp.content_type);
  assert_string_equal(k->resp.content_type, "application/json");
}

/* Start n calls on c (each with a deadline of timeout_ms, scaled for
 * valgrind and the sanitizers; 0: none) that end in `done`, counted by
 * w. */
static void start_calls(kitd_client *c, struct call *k, int n, struct waiter *w, int64_t timeout_ms,
                        kitd_client_done_fn done) {
  waiter_init(w, n);
  for (int i = 0; i < n; i++) {
    call_init(&k[i], w, timeout_ms > 0 ? kitd_test_ms(timeout_ms) : 0);
    assert_int_equal(kitd_client_call_async(c, &k[i].ctx, NULL, &k[i].resp, done, &k[i]), 0);
  }
}

/* Start n calls on c (each with a deadline of timeout_ms), wait for all
 * to end, and check that each got a lorem answer. */
static void run_calls(kitd_client *c, int n, int64_t timeout_ms, const char *instance_part) {
  struct call *k = calloc((size_t)n, sizeof *k);
  assert_non_null(k);
  struct waiter w;
  start_calls(c, k, n, &w, timeout_ms, on_done);
  assert_int_equal(waiter_wait(&w, timeout_ms + 10000), n);
  for (int i = 0; i < n; i++) {
    if (k[i].rc)
      fprintf(stderr, "call %d: %s: %s\n", i, kitd_err_name(k[i].rc), kitd_ctx_detail(&k[i].ctx));
    assert_lorem_answer(&k[i]);
    assert_non_null(strstr(kitd_ctx_instance(&k[i].ctx), instance_part));
    kitd_client_resp_clear(&k[i].resp);
  }
  free(k);
}

/* ---- tests ---- */

static void test_success(void **s) {
  (void)s;
  char csv[160];
  snprintf(csv, sizeof csv, "%s,%s", g_srv[0].addr, g_srv[1].addr);
  kitd_client *c = client_on(csv, 3);
  struct waiter w;
  struct call k[4];
  start_calls(c, k, 4, &w, 5000, on_done);
  assert_int_equal(waiter_wait(&w, 10000), 4);
  int seen[NSRV] = {0};
  for (int i = 0; i < 4; i++) {
    assert_lorem_answer(&k[i]);
    assert_false(pthread_equal(k[i].thread, pthread_self())); /* the loop's thread */
    assert_true(is_lorem(kitd_ctx_instance(&k[i].ctx)));
    for (int j = 0; j < NSRV; j++) seen[j] += !strcmp(kitd_ctx_instance(&k[i].ctx), g_srv[j].addr);
    assert_int_equal(kitd_ctx_attempt_count(&k[i].ctx), 0);
    kitd_client_resp_clear(&k[i].resp);
  }
  assert_int_equal(seen[0], 2); /* round robin over both */
  assert_int_equal(seen[1], 2);
  kitd_client_free(c);
}

/* The JSON codec, and a raw request naming its own path. */
static void test_codecs(void **s) {
  (void)s;
  kitd_client *c = new_client(g_srv[0].addr, KITD_CODEC_JSON, "/lorem/sentence/2/2", NULL);
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, kitd_test_ms(5000));
  json_t *req = json_object(), *resp = NULL;
  assert_int_equal(kitd_client_call_async(c, &k.ctx, req, &resp, on_done, &k), 0);
  json_decref(req); /* encoded already */
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, 0);
  assert_true(json_is_string(json_object_get(resp, "message")));
  json_decref(resp);
  kitd_client_free(c);

  c = client_on(g_srv[1].addr, 1);
  waiter_init(&w, 1);
  call_init(&k, &w, kitd_test_ms(5000));
  kitd_client_req rq = {.path = "/nothing/here"};
  assert_int_equal(kitd_client_call_async(c, &k.ctx, &rq, &k.resp, on_done, &k), 0);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, 0); /* a 4xx is the service's answer */
  assert_int_equal(k.resp.status, 404);
  kitd_client_resp_clear(&k.resp);
  kitd_client_free(c);
}

#define MANY 1000

/* 1,000 calls in flight at once, started from this one thread. */
static void test_many_in_flight(void **s) {
  (void)s;
  char csv[160];
  snprintf(csv, sizeof csv, "%s,%s", g_srv[0].addr, g_srv[1].addr);
  kitd_client *c = client_on(csv, 3);
  run_calls(c, MANY, 20000, "127.0.0.1:");
  kitd_client_free(c);
}

/* One instance of two fails every call (`bad`): every call still succeeds,
 * on the live one, and the failures are in the attempt logs with `code`. */
static void retry_past(const char *bad, int code, int status) {
  char csv[160];
  snprintf(csv, sizeof csv, "%s,%s", bad, g_srv[0].addr);
  kitd_client *c = client_on(csv, 3);
  enum {
    N = 10
  };
  struct call k[N];
  struct waiter w;
  start_calls(c, k, N, &w, 5000, on_done);
  assert_int_equal(waiter_wait(&w, 10000), N);
  int failed = 0;
  for (int i = 0; i < N; i++) {
    assert_lorem_answer(&k[i]);
    assert_string_equal(kitd_ctx_instance(&k[i].ctx), g_srv[0].addr);
    unsigned n = kitd_ctx_attempt_count(&k[i].ctx);
    assert_true(n <= 1);
    if (n) {
      const kitd_attempt_error *a = kitd_ctx_attempt(&k[i].ctx, 0);
      assert_non_null(a);
      assert_int_equal(a->err, code);
      assert_int_equal(a->status, status);
      assert_string_equal(a->instance, bad);
      failed++;
    }
    kitd_client_resp_clear(&k[i].resp);
  }
  /* Round robin sends first attempts there as often as retries let it:
   * how often depends on how the calls interleave, but some did. */
  assert_true(failed >= 1);
  kitd_client_free(c);
}

/* Blocking and async calls spend from one retry budget: once blocking
 * calls have drained it (no percent, a reserve of 1 a second, about 10
 * banked), an async call on the same client gets no retry either. With a
 * budget of its own it would start with a full reserve and make all 3
 * attempts. (A token the reserve earns meanwhile allows at most 2.) */
static void test_budget_shared(void **s) {
  (void)s;
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.max_attempts = 3;
  ro.budget_percent = 0;
  ro.budget_min_per_sec = 1;
  kitd_client *c = new_client(g_500_addr, KITD_CODEC_RAW, "/lorem/word/1/3", &ro);
  unsigned n = 3;
  for (int i = 0; i < 40 && n > 1; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_attempt_error log[8];
    kitd_ctx_set_attempt_log(&ctx, log, 8);
    kitd_client_resp r;
    assert_int_equal(kitd_client_call(c, &ctx, NULL, &r), KITD_EHTTP);
    n = kitd_ctx_attempt_count(&ctx);
  }
  assert_int_equal(n, 1); /* the budget is drained: one attempt, no retry */
  struct waiter w;
  struct call k;
  start_calls(c, &k, 1, &w, 5000, on_done);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, KITD_EHTTP);
  assert_true(kitd_ctx_attempt_count(&k.ctx) <= 2);
  kitd_client_free(c);
}

/* should_retry for test_same_decision: stops at the second attempt with
 * its own code when asked to (arg non-NULL), else replaces the error but
 * goes on. */
static int replace_retry(void *arg, unsigned attempt, int *err, const kitd_ctx *ctx) {
  (void)ctx;
  *err = KITD_EPROTO;
  return !(arg && attempt >= 2);
}

/* Async calls decide after a failure as blocking calls do (one decision,
 * lb/retry_next.h): a callback that replaces the error and stops makes
 * its code the result; one that replaces it but goes on until
 * max_attempts leaves the raw last error, as in go-kit. */
static void test_same_decision(void **s) {
  (void)s;
  static int stop = 1;
  for (int k = 0; k < 2; k++) {
    kitd_retry_opts ro;
    kitd_retry_opts_init(&ro);
    ro.max_attempts = 3;
    ro.budget_percent = -1;
    ro.should_retry = replace_retry;
    ro.arg = k == 0 ? &stop : NULL;
    kitd_client *c = new_client(g_500_addr, KITD_CODEC_RAW, "/lorem/word/1/3", &ro);
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_client_resp r;
    int brc = kitd_client_call(c, &ctx, NULL, &r);
    unsigned bn = kitd_ctx_attempt_count(&ctx);
    struct waiter w;
    struct call a;
    start_calls(c, &a, 1, &w, 5000, on_done);
    assert_int_equal(waiter_wait(&w, 10000), 1);
    assert_int_equal(brc, k == 0 ? KITD_EPROTO : KITD_EHTTP);
    assert_int_equal(bn, k == 0 ? 2 : 3);
    assert_int_equal(a.rc, brc);
    assert_int_equal(kitd_ctx_attempt_count(&a.ctx), bn);
    kitd_client_free(c);
  }
}

static void test_retry_refused(void **s) {
  (void)s;
  retry_past(g_dead_addr, KITD_ECONNECT, 0);
}

static void test_retry_500(void **s) {
  (void)s;
  retry_past(g_500_addr, KITD_EHTTP, 500);
}

/* A body far over the socket's buffer is written as the socket drains
 * (the send resumes on writability), and the 500 is the call's answer. */
static void test_big_body(void **s) {
  (void)s;
  kitd_client *c = client_on(g_500_addr, 1);
  size_t n = 8u << 20;
  char *body = malloc(n);
  assert_non_null(body);
  memset(body, 'x', n);
  kitd_client_req rq = {.body = body, .len = n, .content_type = "text/plain"};
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, kitd_test_ms(10000));
  assert_int_equal(kitd_client_call_async(c, &k.ctx, &rq, &k.resp, on_done, &k), 0);
  free(body); /* encoded already */
  assert_int_equal(waiter_wait(&w, 20000), 1);
  assert_int_equal(k.rc, KITD_EHTTP);
  assert_int_equal(kitd_ctx_status(&k.ctx), 500);
  assert_non_null(strstr(kitd_ctx_detail(&k.ctx), "broken"));
  kitd_client_free(c);
}

/* Async calls are counted as blocking ones are: calls, retries, and the
 * failures of the instance that refused. */
static void test_metrics(void **s) {
  (void)s;
  kitd_metrics *m = NULL;
  assert_int_equal(kitd_metrics_new(&m), 0);
  char csv[160];
  snprintf(csv, sizeof csv, "%s,%s", g_dead_addr, g_srv[0].addr);
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "counted";
  o.instancer = kt_static(csv);
  o.method = "POST";
  o.path = "/lorem/word/1/3";
  o.metrics = m;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_instancer_free(o.instancer);
  enum {
    N = 6
  };
  struct call k[N];
  struct waiter w;
  start_calls(c, k, N, &w, 5000, on_done);
  assert_int_equal(waiter_wait(&w, 10000), N);
  unsigned retries = 0;
  for (int i = 0; i < N; i++) {
    assert_lorem_answer(&k[i]);
    retries += kitd_ctx_attempt_count(&k[i].ctx);
    kitd_client_resp_clear(&k[i].resp);
  }
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_non_null(f);
  assert_int_equal(kitd_metrics_write_prometheus(m, f), 0);
  fclose(f);
  char want[128];
  assert_non_null(strstr(text, "kitd_calls_total{service=\"counted\"} 6\n"));
  snprintf(want, sizeof want, "kitd_retries_total{service=\"counted\"} %u\n", retries);
  assert_non_null(strstr(text, want));
  snprintf(want, sizeof want,
           "kitd_instance_failures_total{service=\"counted\",instance=\"%s\"} %u\n", g_dead_addr,
           retries);
  assert_non_null(strstr(text, want));
  free(text);
  kitd_client_free(c);
  kitd_metrics_free(m);
}

/* KITD_CODEC_CUSTOM: kitd_http's own encode and decode callbacks. */
static int custom_encode(void *arg, const void *request, kitd_http_buf *body, kitd_ctx *ctx) {
  (void)arg, (void)ctx;
  return kitd_http_buf_append(body, request, strlen(request));
}

static int custom_decode(void *arg, int status, const char *body, size_t len, void **response,
                         kitd_ctx *ctx) {
  (void)arg, (void)ctx;
  char *out = malloc(len + 16);
  if (!out) return KITD_ENOMEM;
  snprintf(out, len + 16, "%d %.*s", status, (int)len, body);
  *response = out;
  return 0;
}

static void test_custom_codec(void **s) {
  (void)s;
  kitd_http_opts ho;
  kitd_http_opts_init(&ho);
  ho.encode = custom_encode;
  ho.decode = custom_decode;
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "lorem";
  o.instancer = kt_static(g_srv[1].addr);
  o.codec = KITD_CODEC_CUSTOM;
  o.path = "/lorem/word/2/2";
  o.http = &ho;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_instancer_free(o.instancer);
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, kitd_test_ms(5000));
  char *req = strdup("{}"), *resp = NULL;
  assert_int_equal(kitd_client_call_async(c, &k.ctx, req, &resp, on_done, &k), 0);
  free(req); /* encoded already */
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, 0);
  assert_non_null(resp);
  assert_true(!strncmp(resp, "200 {\"message\"", 14));
  free(resp);
  kitd_client_free(c);
}

/* Kept-alive connections the server closes while idle (the loop sees
 * them close, or finds them stale on use and replaces them) do not fail
 * the calls that follow: one attempt each, no retry. */
static void test_stale_connection(void **s) {
  (void)s;
  static const char *const flags[] = {"-idle.timeout", "100ms", NULL};
  pid_t pid;
  int port;
  assert_int_equal(kitd_test_lorem_start(flags, &pid, &port), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  kitd_client *c = client_on(addr, 1);
  for (int round = 0; round < 3; round++) {
    run_calls(c, 4, 5000, addr);
    kt_sleep_ms(300); /* past the server's idle timeout: it closes them */
  }
  kitd_client_free(c);
  kitd_test_lorem_stop(pid);
}

/* A client whose registry never answers (a Consul address where nothing
 * listens): the first call waits for the registry up to ready_timeout_ms
 * or the ctx's deadline, on the loop, and ends as the blocking call does
 * on a client just like it. */
static kitd_client *unready_client(void) {
  char src[128];
  snprintf(src, sizeof src, "consul://%s/lorem", g_dead_addr);
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "lorem";
  o.source = src;
  o.ready_timeout_ms = 200;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  return c;
}

static void test_first_wait(void **s) {
  (void)s;
  for (int deadline = 0; deadline < 2; deadline++) {
    int64_t ms = deadline ? 50 : 0; /* shorter than the 200 ms wait */
    kitd_client *c = unready_client();
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    if (ms) kitd_ctx_set_timeout_ms(&ctx, ms);
    kitd_client_resp r = {0};
    int blocking = kitd_client_call(c, &ctx, NULL, &r);
    kitd_client_free(c);

    c = unready_client();
    struct waiter w;
    waiter_init(&w, 1);
    struct call k;
    call_init(&k, &w, ms);
    assert_int_equal(kitd_client_call_async(c, &k.ctx, NULL, &k.resp, on_done, &k), 0);
    assert_int_equal(waiter_wait(&w, 10000), 1);
    assert_int_equal(k.rc, blocking);
    assert_int_equal(k.rc, deadline ? KITD_ETIMEDOUT : KITD_ENOENDPOINTS);
    if (!deadline) assert_true(kitd_ctx_detail(&k.ctx)[0] != '\0');
    kitd_client_free(c);
  }
}

/* A server that never answers: the ctx deadline ends the call. */
static void test_deadline(void **s) {
  (void)s;
  kitd_client *c = client_on(g_hole_addr, 3);
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, 300);
  assert_int_equal(kitd_client_call_async(c, &k.ctx, NULL, &k.resp, on_done, &k), 0);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, KITD_ETIMEDOUT);
  assert_int_equal(k.ends, 1);
  assert_null(k.resp.body); /* untouched */
  assert_string_equal(kitd_ctx_instance(&k.ctx), g_hole_addr);
  assert_non_null(strstr(kitd_ctx_detail(&k.ctx), "timed out"));
  kitd_client_free(c);
}

/* The retry's overall timeout is a deadline too. */
static void test_retry_timeout(void **s) {
  (void)s;
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.timeout_ms = 200;
  kitd_client *c = new_client(g_hole_addr, KITD_CODEC_RAW, "/lorem/word/1/3", &ro);
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, 0); /* no deadline of its own */
  assert_int_equal(kitd_client_call_async(c, &k.ctx, NULL, &k.resp, on_done, &k), 0);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, KITD_ETIMEDOUT);
  kitd_client_free(c);
}

static void test_cancel(void **s) {
  (void)s;
  kitd_client *c = client_on(g_hole_addr, 3);
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, 0);
  assert_int_equal(kitd_client_call_async(c, &k.ctx, NULL, &k.resp, on_done, &k), 0);
  kt_sleep_ms(50);
  assert_int_equal(k.ends, 0);
  kitd_ctx_cancel(&k.ctx);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, KITD_ECANCELED);
  assert_int_equal(k.ends, 1);
  kitd_client_free(c);
}

/* Free with calls in flight: each ends with KITD_ESTOPPED, and every done
 * has run by the time kitd_client_free() returns. */
static void test_free_in_flight(void **s) {
  (void)s;
  kitd_client *c = client_on(g_hole_addr, 3);
  enum {
    N = 50
  };
  struct call k[N];
  struct waiter w;
  start_calls(c, k, N, &w, 0, on_done);
  kt_sleep_ms(50);
  kitd_client_free(c);
  pthread_mutex_lock(&w.mu);
  int ended = w.ended;
  pthread_mutex_unlock(&w.mu);
  assert_int_equal(ended, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(k[i].rc, KITD_ESTOPPED);
    assert_int_equal(k[i].ends, 1);
  }
}

/* done starts the next call; the last one frees the client from done. */
struct chain {
  kitd_client *c;
  struct call k;
  int left, failures;
  struct waiter w;
};

static void chain_done(void *arg, int rc) {
  struct chain *ch = arg;
  if (rc || ch->k.resp.status != 200) ch->failures++;
  kitd_client_resp_clear(&ch->k.resp);
  if (--ch->left > 0) {
    kitd_ctx_init(&ch->k.ctx);
    kitd_ctx_set_timeout_ms(&ch->k.ctx, 5000);
    if (kitd_client_call_async(ch->c, &ch->k.ctx, NULL, &ch->k.resp, chain_done, ch) == 0) return;
    ch->failures++;
  }
  kitd_client_free(ch->c); /* from done: allowed */
  ch->c = NULL;
  waiter_end(&ch->w);
}

static void test_done_chains(void **s) {
  (void)s;
  struct chain ch;
  memset(&ch, 0, sizeof ch);
  ch.c = client_on(g_srv[0].addr, 3);
  ch.left = 200;
  waiter_init(&ch.w, 1);
  kitd_ctx_init(&ch.k.ctx);
  assert_int_equal(kitd_client_call_async(ch.c, &ch.k.ctx, NULL, &ch.k.resp, chain_done, &ch), 0);
  assert_int_equal(waiter_wait(&ch.w, 20000), 1);
  assert_int_equal(ch.left, 0);
  assert_int_equal(ch.failures, 0);
  assert_null(ch.c);
}

/* A done that frees its client while others of its calls are in flight:
 * they end with KITD_ESTOPPED, once each, after that done returns. */
static struct {
  kitd_client *c;
  struct call k[8];
  struct waiter w;
} g_ffd;

static void free_done(void *arg, int rc) {
  on_done(arg, rc);
  if (arg == &g_ffd.k[0]) kitd_client_free(g_ffd.c); /* the last reference */
}

static void test_free_from_done(void **s) {
  (void)s;
  g_ffd.c = client_on(g_hole_addr, 1);
  start_calls(g_ffd.c, g_ffd.k, 8, &g_ffd.w, 0, free_done);
  kt_sleep_ms(30);
  kitd_ctx_cancel(&g_ffd.k[0].ctx); /* its done frees the client */
  assert_int_equal(waiter_wait(&g_ffd.w, 10000), 8);
  assert_int_equal(g_ffd.k[0].rc, KITD_ECANCELED);
  for (int i = 1; i < 8; i++) {
    assert_int_equal(g_ffd.k[i].rc, KITD_ESTOPPED);
    assert_int_equal(g_ffd.k[i].ends, 1);
  }
  /* The loop ended on its own thread; the next async call joins it and
   * starts a new one (a loop left waiting would hang here). */
  kitd_client *c = client_on(g_srv[0].addr, 1);
  run_calls(c, 1, 5000, g_srv[0].addr);
  kitd_client_free(c);
}

/* Instances given by host name go through libcurl on the loop's multi. */
static void test_curl_path(void **s) {
  (void)s;
  char csv[160];
  snprintf(csv, sizeof csv, "localhost:%d,localhost:%d", g_srv[0].port, g_srv[1].port);
  kitd_client *c = client_on(csv, 3);
  run_calls(c, 100, 10000, "localhost:");
  kitd_client_free(c);

  /* and a deadline on that path */
  snprintf(csv, sizeof csv, "localhost:%s", strchr(g_hole_addr, ':') + 1);
  c = client_on(csv, 1);
  struct call h;
  struct waiter w;
  waiter_init(&w, 1);
  call_init(&h, &w, 300);
  assert_int_equal(kitd_client_call_async(c, &h.ctx, NULL, &h.resp, on_done, &h), 0);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(h.rc, KITD_ETIMEDOUT);
  kitd_client_free(c);
}

static void never(void *arg, int rc) {
  (void)arg, (void)rc;
  fail_msg("done ran for a call that did not start");
}

static int noop_factory(void *arg, const kitd_instance *in, kitd_endpoint **out) {
  (void)arg, (void)in, (void)out;
  return KITD_EINVAL;
}

static void test_start_errors(void **s) {
  (void)s;
  kitd_client *c = client_on(g_srv[0].addr, 1);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_client_resp r = {0};
  assert_int_equal(kitd_client_call_async(NULL, &ctx, NULL, &r, never, NULL), KITD_EINVAL);
  assert_int_equal(kitd_client_call_async(c, NULL, NULL, &r, never, NULL), KITD_EINVAL);
  assert_int_equal(kitd_client_call_async(c, &ctx, NULL, &r, NULL, NULL), KITD_EINVAL);
  kitd_ctx bad;
  memset(&bad, 0, sizeof bad);
  assert_int_equal(kitd_client_call_async(c, &bad, NULL, &r, never, NULL), KITD_EINVAL);
  kitd_ctx_cancel(&ctx);
  assert_int_equal(kitd_client_call_async(c, &ctx, NULL, &r, never, NULL), KITD_ECANCELED);
  kitd_ctx_init(&ctx);
  kitd_client_req rq = {.method = "BAD METHOD"};
  assert_int_equal(kitd_client_call_async(c, &ctx, &rq, &r, never, NULL), KITD_EINVAL);
  kitd_client_free(c);

  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "custom";
  o.instancer = kt_static("10.0.0.1:1");
  kitd_factory f = {noop_factory, NULL, NULL};
  o.factory = &f;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_instancer_free(o.instancer);
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_client_call_async(c, &ctx, NULL, &r, never, NULL), KITD_EINVAL);
  kitd_client_free(c);
}

/* An empty set: the call ends with KITD_ENOENDPOINTS and the reason. */
static void test_empty_set(void **s) {
  (void)s;
  kitd_client *c = client_on("", 2);
  struct waiter w;
  waiter_init(&w, 1);
  struct call k;
  call_init(&k, &w, kitd_test_ms(5000));
  assert_int_equal(kitd_client_call_async(c, &k.ctx, NULL, &k.resp, on_done, &k), 0);
  assert_int_equal(waiter_wait(&w, 10000), 1);
  assert_int_equal(k.rc, KITD_ENOENDPOINTS);
  assert_true(kitd_ctx_detail(&k.ctx)[0] != '\0');
  kitd_client_free(c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_success),          cmocka_unit_test(test_codecs),
      cmocka_unit_test(test_many_in_flight),   cmocka_unit_test(test_retry_refused),
      cmocka_unit_test(test_same_decision),    cmocka_unit_test(test_retry_500),
      cmocka_unit_test(test_deadline),         cmocka_unit_test(test_retry_timeout),
      cmocka_unit_test(test_cancel),           cmocka_unit_test(test_free_in_flight),
      cmocka_unit_test(test_done_chains),      cmocka_unit_test(test_free_from_done),
      cmocka_unit_test(test_curl_path),        cmocka_unit_test(test_start_errors),
      cmocka_unit_test(test_empty_set),        cmocka_unit_test(test_big_body),
      cmocka_unit_test(test_metrics),          cmocka_unit_test(test_custom_codec),
      cmocka_unit_test(test_stale_connection), cmocka_unit_test(test_first_wait),
      cmocka_unit_test(test_budget_shared),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
