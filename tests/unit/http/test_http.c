/* SPDX-License-Identifier: MIT */
/* kitd_http against a tiny in-test libmicrohttpd server: connection reuse
 * (counted with MHD's connection notify callback), deadlines and cancel,
 * error mapping, the body cap, callbacks, and calls from several threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include "kitd/kitd.h"

static struct MHD_Daemon *g_d;
static int g_port;
static atomic_int g_conns; /* connections accepted */
static atomic_int g_requests;

static void on_conn(void *cls, struct MHD_Connection *c, void **socket_ctx,
                    enum MHD_ConnectionNotificationCode code) {
  (void)cls, (void)c, (void)socket_ctx;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) atomic_fetch_add(&g_conns, 1);
}

struct req {
  char body[4096];
  size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             size_t len) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", "application/json");
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static void done(void *cls, struct MHD_Connection *c, void **st,
                 enum MHD_RequestTerminationCode t) {
  (void)cls, (void)c, (void)t;
  free(*st);
  *st = NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *up,
                               size_t *upsz, void **st) {
  (void)cls, (void)method, (void)version;
  struct req *q = *st;
  if (!q) {
    *st = calloc(1, sizeof *q);
    return MHD_YES;
  }
  if (*upsz) {
    size_t n = *upsz < sizeof q->body - 1 - q->len ? *upsz : sizeof q->body - 1 - q->len;
    memcpy(q->body + q->len, up, n);
    q->len += n;
    *upsz = 0;
    return MHD_YES;
  }
  atomic_fetch_add(&g_requests, 1);
  if (!strcmp(url, "/ok")) return reply(c, 200, "{\"v\":\"ok\"}", 10);
  if (!strcmp(url, "/echo")) return reply(c, 200, q->body, q->len);
  if (!strcmp(url, "/err404")) return reply(c, 404, "{\"error\":\"x\"}", 13);
  if (!strcmp(url, "/text500")) return reply(c, 500, "plain oops\nmore", 15);
  if (!strcmp(url, "/slow")) {
    usleep(1500 * 1000);
    return reply(c, 200, "{}", 2);
  }
  if (!strcmp(url, "/big")) {
    static char big[200000];
    memset(big, 'a', sizeof big);
    return reply(c, 200, big, sizeof big);
  }
  if (!strncmp(url, "/item/", 6)) return reply(c, 200, url + 6, strlen(url + 6));
  return reply(c, 404, "{\"error\":\"no route\"}", 20);
}

static int setup(void **s) {
  (void)s;
  kitd_global_init();
  g_d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, handler, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_conn, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&(struct sockaddr_in){
                             .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                         MHD_OPTION_END);
  if (!g_d) return -1;
  g_port = MHD_get_daemon_info(g_d, MHD_DAEMON_INFO_BIND_PORT)->port;
  return 0;
}

static int teardown(void **s) {
  (void)s;
  MHD_stop_daemon(g_d);
  kitd_global_cleanup();
  return 0;
}

static void instance(char *buf, size_t cap) { snprintf(buf, cap, "127.0.0.1:%d", g_port); }

/* decode: copy the body into a new string (caller frees with free()) */
static int dec_str(void *arg, int status, const char *body, size_t len, void **resp,
                   kitd_ctx *ctx) {
  (void)arg, (void)status, (void)ctx;
  *resp = strndup(body, len);
  return *resp ? 0 : KITD_ENOMEM;
}

static kitd_endpoint *make(const char *method, const char *path, kitd_http **hp) {
  kitd_http_opts o;
  kitd_http_opts_init(&o);
  o.method = method;
  o.path = path;
  o.decode = dec_str;
  kitd_http *h;
  assert_int_equal(kitd_http_new(&o, &h), 0);
  char in[64];
  instance(in, sizeof in);
  kitd_endpoint *ep;
  assert_int_equal(kitd_http_endpoint_new(h, in, &ep), 0);
  if (hp) *hp = h;
  else kitd_http_free(h); /* the endpoint keeps the client alive */
  return ep;
}

static int call(kitd_endpoint *ep, int64_t timeout_ms, kitd_ctx *ctx, char **out) {
  kitd_ctx_init(ctx);
  if (timeout_ms > 0) kitd_ctx_set_timeout_ms(ctx, timeout_ms);
  void *resp = NULL;
  int rc = kitd_endpoint_call(ep, ctx, NULL, &resp);
  if (out) *out = resp;
  else free(resp);
  return rc;
}

static void test_reuse(void **s) {
  (void)s;
  kitd_http *h;
  kitd_endpoint *ep = make("GET", "/ok", &h);
  int before = atomic_load(&g_conns);
  for (int i = 0; i < 200; i++) {
    kitd_ctx ctx;
    char *out;
    assert_int_equal(call(ep, 2000, &ctx, &out), 0);
    assert_string_equal(out, "{\"v\":\"ok\"}");
    assert_int_equal(kitd_ctx_status(&ctx), 200);
    free(out);
  }
  assert_int_equal(atomic_load(&g_conns) - before, 1); /* one connection, kept alive */
  unsigned long created;
  unsigned idle;
  kitd_http_stats(h, &created, &idle);
  assert_int_equal(created, 1);
  assert_int_equal(idle, 1);
  kitd_http_free(h);
  kitd_endpoint_unref(ep);
}

static void test_post_callbacks(void **s) {
  (void)s;
  /* path from the request, body from the request, decode into a string */
  struct {
    const char *id;
  } rq = {"abc"};
  kitd_http_opts o;
  kitd_http_opts_init(&o);
  int path_fn(void *, const void *, kitd_http_buf *, kitd_ctx *);
  o.path_fn = path_fn;
  o.decode = dec_str;
  kitd_http *h;
  assert_int_equal(kitd_http_new(&o, &h), 0);
  char in[64];
  instance(in, sizeof in);
  kitd_endpoint *ep;
  kitd_factory f = kitd_http_factory(h);
  kitd_instance *rec;
  assert_int_equal(kitd_instance_new(in, &rec), 0);
  assert_int_equal(f.fn(f.arg, rec, &ep), 0);
  kitd_instance_unref(rec);
  f.release(f.arg);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(ep, &ctx, &rq, &resp), 0);
  assert_string_equal(resp, "abc");
  free(resp);
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
}

int path_fn(void *arg, const void *req, kitd_http_buf *b, kitd_ctx *ctx) {
  (void)arg, (void)ctx;
  const char *const *id = req;
  return kitd_http_buf_printf(b, "/item/%s", *id);
}

static int enc_json(void *arg, const void *req, kitd_http_buf *b, kitd_ctx *ctx) {
  (void)arg, (void)ctx;
  return kitd_http_buf_printf(b, "{\"n\":%d}", *(const int *)req);
}

static void test_post_echo(void **s) {
  (void)s;
  kitd_http_opts o;
  kitd_http_opts_init(&o);
  o.path = "/echo";
  o.encode = enc_json; /* method defaults to POST */
  o.decode = dec_str;
  kitd_http *h;
  assert_int_equal(kitd_http_new(&o, &h), 0);
  char in[64];
  instance(in, sizeof in);
  kitd_endpoint *ep;
  assert_int_equal(kitd_http_endpoint_new(h, in, &ep), 0);
  kitd_http_free(h);
  for (int i = 0; i < 3; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    void *resp = NULL;
    int n = 40 + i;
    assert_int_equal(kitd_endpoint_call(ep, &ctx, &n, &resp), 0);
    char want[32];
    snprintf(want, sizeof want, "{\"n\":%d}", n);
    assert_string_equal(resp, want);
    free(resp);
  }
  kitd_endpoint_unref(ep);
}

static void test_error_mapping(void **s) {
  (void)s;
  kitd_endpoint *ep = make("GET", "/err404", NULL);
  kitd_ctx ctx;
  void *out = (void *)"untouched";
  kitd_ctx_init(&ctx);
  assert_int_equal(kitd_endpoint_call(ep, &ctx, NULL, &out), KITD_EHTTP);
  assert_string_equal(out, "untouched"); /* response untouched on failure */
  assert_int_equal(kitd_ctx_status(&ctx), 404);
  assert_string_equal(kitd_ctx_detail(&ctx), "x");
  kitd_endpoint_unref(ep);

  ep = make("POST", "/text500", NULL);
  assert_int_equal(call(ep, 2000, &ctx, NULL), KITD_EHTTP);
  assert_int_equal(kitd_ctx_status(&ctx), 500);
  assert_string_equal(kitd_ctx_detail(&ctx), "HTTP 500: plain oops");
  kitd_endpoint_unref(ep);
}

static void test_refused(void **s) {
  (void)s;
  /* a port that was free a moment ago: bind, read it, close */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  getsockname(fd, (struct sockaddr *)&a, &al);
  close(fd);
  kitd_http *h;
  assert_int_equal(kitd_http_new(NULL, &h), 0);
  char in[64];
  snprintf(in, sizeof in, "127.0.0.1:%d", ntohs(a.sin_port));
  kitd_endpoint *ep;
  assert_int_equal(kitd_http_endpoint_new(h, in, &ep), 0);
  kitd_ctx ctx;
  assert_int_equal(call(ep, 2000, &ctx, NULL), KITD_ECONNECT);
  assert_int_equal(kitd_ctx_status(&ctx), 0);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), in));
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
}

static void test_deadline(void **s) {
  (void)s;
  kitd_endpoint *ep = make("GET", "/slow", NULL);
  kitd_ctx ctx;
  int64_t t0 = kitd_now_ns();
  assert_int_equal(call(ep, 200, &ctx, NULL), KITD_ETIMEDOUT);
  int64_t ms = (kitd_now_ns() - t0) / 1000000;
  assert_true(ms >= 190);
  assert_true(ms < 600);
  /* an expired ctx fails before any I/O */
  kitd_ctx_init(&ctx);
  kitd_ctx_set_deadline_ns(&ctx, kitd_now_ns() - 1);
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(ep, &ctx, NULL, &resp), KITD_ETIMEDOUT);
  assert_null(resp);
  kitd_endpoint_unref(ep);
}

static void *canceler(void *arg) {
  usleep(100 * 1000);
  kitd_ctx_cancel(arg);
  return NULL;
}

static void test_cancel(void **s) {
  (void)s;
  kitd_endpoint *ep = make("GET", "/slow", NULL);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  pthread_t t;
  pthread_create(&t, NULL, canceler, &ctx);
  int64_t t0 = kitd_now_ns();
  void *resp = NULL;
  assert_int_equal(kitd_endpoint_call(ep, &ctx, NULL, &resp), KITD_ECANCELED);
  assert_null(resp);
  int64_t ms = (kitd_now_ns() - t0) / 1000000;
  assert_true(ms >= 95);
  assert_true(ms < 300); /* canceled 100 ms in; checked every 10 ms */
  pthread_join(t, NULL);
  kitd_endpoint_unref(ep);
}

static void test_body_cap(void **s) {
  (void)s;
  kitd_http_opts o;
  kitd_http_opts_init(&o);
  o.path = "/big";
  o.max_body = 1000;
  kitd_http *h;
  assert_int_equal(kitd_http_new(&o, &h), 0);
  char in[64];
  instance(in, sizeof in);
  kitd_endpoint *ep;
  assert_int_equal(kitd_http_endpoint_new(h, in, &ep), 0);
  kitd_ctx ctx;
  assert_int_equal(call(ep, 2000, &ctx, NULL), KITD_ETOOBIG);
  /* the handle stays usable afterwards */
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
}

static kitd_endpoint *g_shared;
static atomic_int g_fail;

static void *worker(void *arg) {
  (void)arg;
  for (int i = 0; i < 300; i++) {
    kitd_ctx ctx;
    char *out = NULL;
    if (call(g_shared, 5000, &ctx, &out) || !out || strcmp(out, "{\"v\":\"ok\"}"))
      atomic_fetch_add(&g_fail, 1);
    free(out);
  }
  return NULL;
}

static void test_threads(void **s) {
  (void)s;
  kitd_http *h;
  g_shared = make("GET", "/ok", &h);
  int before = atomic_load(&g_conns);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&g_fail), 0);
  unsigned long created;
  kitd_http_stats(h, &created, NULL);
  assert_true(created >= 1 && created <= 4);
  /* one connection per handle: 1200 calls, at most 4 connections */
  assert_true(atomic_load(&g_conns) - before <= (int)created);
  kitd_http_free(h);
  kitd_endpoint_unref(g_shared);
}

static void test_error_text(void **s) {
  (void)s;
  char b[8];
  assert_int_equal(kitd_http_error_text("{\"error\":\"boom\"}", 16, b, sizeof b), 1);
  assert_string_equal(b, "boom");
  assert_int_equal(kitd_http_error_text("{\"error\":\"0123456789\"}", 22, b, sizeof b), 1);
  assert_string_equal(b, "0123456"); /* truncated */
  assert_int_equal(kitd_http_error_text("{\"error\":3}", 11, b, sizeof b), 0);
  assert_string_equal(b, "");
  assert_int_equal(kitd_http_error_text("nope", 4, b, sizeof b), 0);
  assert_int_equal(kitd_http_error_text("{\"err", 5, b, sizeof b), 0);
  assert_int_equal(kitd_http_error_text(NULL, 0, b, sizeof b), 0);
}

static void test_bad_args(void **s) {
  (void)s;
  kitd_http *h;
  kitd_http_opts o;
  kitd_http_opts_init(&o);
  o.scheme = "ftp";
  assert_int_equal(kitd_http_new(&o, &h), KITD_EINVAL);
  kitd_http_opts_init(&o);
  o.method = "GE T";
  assert_int_equal(kitd_http_new(&o, &h), KITD_EINVAL);
  o.method = NULL;
  o.path = "relative";
  assert_int_equal(kitd_http_new(&o, &h), KITD_EINVAL);
  assert_int_equal(kitd_http_new(NULL, &h), 0);
  kitd_endpoint *ep = NULL;
  assert_int_equal(kitd_http_endpoint_new(h, "", &ep), KITD_EINVAL);
  assert_int_equal(kitd_http_endpoint_new(h, "a/b:1", &ep), KITD_EINVAL);
  assert_int_equal(kitd_http_endpoint_new(h, "u@h:1", &ep), KITD_EINVAL);
  assert_null(ep);
  assert_int_equal(kitd_http_endpoint_new(h, "[::1]:80", &ep), 0);
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
  kitd_http_free(NULL);
}

/* --- the plain-http fast path against a raw socket server that answers
 * exactly what a test asks for (stale keep-alive, chunked, Connection:
 * close, malformed and truncated answers) --- */

static const char *volatile g_raw_answer; /* what to write for each request */
static volatile int g_raw_close;          /* close the connection after it */
static atomic_int g_raw_conns, g_raw_stop;
static int g_raw_port;

static void *raw_server(void *arg) {
  int ls = *(int *)arg;
  while (!atomic_load(&g_raw_stop)) {
    struct pollfd pf = {.fd = ls, .events = POLLIN};
    if (poll(&pf, 1, 20) <= 0) continue;
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) continue;
    atomic_fetch_add(&g_raw_conns, 1);
    char buf[8192];
    size_t len = 0;
    for (;;) {
      struct pollfd cf = {.fd = fd, .events = POLLIN};
      if (atomic_load(&g_raw_stop)) break;
      if (poll(&cf, 1, 20) <= 0) continue;
      ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
      if (n <= 0) break;
      len += (size_t)n;
      buf[len] = '\0';
      char *end = strstr(buf, "\r\n\r\n");
      if (!end) continue;
      size_t used = (size_t)(end + 4 - buf); /* GET: no request body */
      memmove(buf, buf + used, len - used);
      len -= used;
      const char *a = g_raw_answer;
      if (a && send(fd, a, strlen(a), MSG_NOSIGNAL) < 0) break;
      if (g_raw_close || !a) break;
    }
    close(fd);
  }
  return NULL;
}

static pthread_t g_raw_thread;
static int g_raw_ls;

static void raw_start(void) {
  g_raw_ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(g_raw_ls, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(g_raw_ls, 16), 0);
  getsockname(g_raw_ls, (struct sockaddr *)&a, &al);
  g_raw_port = ntohs(a.sin_port);
  atomic_store(&g_raw_stop, 0);
  atomic_store(&g_raw_conns, 0);
  pthread_create(&g_raw_thread, NULL, raw_server, &g_raw_ls);
}

static void raw_stop(void) {
  atomic_store(&g_raw_stop, 1);
  pthread_join(g_raw_thread, NULL);
  close(g_raw_ls);
}

static int fast_active(void) {
  const char *f = getenv("KITD_HTTP_FAST");
  const char *p = getenv("http_proxy"), *ap = getenv("all_proxy"), *AP = getenv("ALL_PROXY");
  return !(f && !strcmp(f, "0")) && !(p && *p) && !(ap && *ap) && !(AP && *AP);
}

static kitd_endpoint *raw_ep(kitd_http **hp) {
  kitd_http_opts o;
  kitd_http_opts_init(&o);
  o.path = "/x";
  o.decode = dec_str;
  kitd_http *h;
  assert_int_equal(kitd_http_new(&o, &h), 0);
  char in[64];
  snprintf(in, sizeof in, "127.0.0.1:%d", g_raw_port);
  kitd_endpoint *ep;
  assert_int_equal(kitd_http_endpoint_new(h, in, &ep), 0);
  *hp = h;
  return ep;
}

static void test_fast_stale_keepalive(void **s) {
  (void)s;
  if (!fast_active()) skip();
  /* A server that closes every connection after one answer, without
   * saying so: each call after the first finds its kept-alive connection
   * closed, and is retried once on a fresh one, unseen by the caller. */
  g_raw_answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  g_raw_close = 1;
  raw_start();
  kitd_http *h;
  kitd_endpoint *ep = raw_ep(&h);
  for (int i = 0; i < 20; i++) {
    kitd_ctx ctx;
    char *out = NULL;
    assert_int_equal(call(ep, 2000, &ctx, &out), 0);
    assert_string_equal(out, "ok");
    free(out);
  }
  assert_int_equal(atomic_load(&g_raw_conns), 20);
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
  raw_stop();
}

static void test_fast_chunked_keepalive(void **s) {
  (void)s;
  if (!fast_active()) skip();
  g_raw_answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "4\r\n{\"v\"\r\n6\r\n:\"ok\"}\r\n0\r\n\r\n";
  g_raw_close = 0;
  raw_start();
  kitd_http *h;
  kitd_endpoint *ep = raw_ep(&h);
  for (int i = 0; i < 50; i++) {
    kitd_ctx ctx;
    char *out = NULL;
    assert_int_equal(call(ep, 2000, &ctx, &out), 0);
    assert_string_equal(out, "{\"v\":\"ok\"}");
    free(out);
  }
  assert_int_equal(atomic_load(&g_raw_conns), 1);
  unsigned long created;
  unsigned idle;
  kitd_http_stats(h, &created, &idle);
  assert_int_equal(created, 1);
  assert_int_equal(idle, 1);
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
  raw_stop();
}

static void test_fast_connection_close(void **s) {
  (void)s;
  if (!fast_active()) skip();
  g_raw_answer = "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 16\r\n\r\n"
                 "{\"error\":\"gone\"}";
  g_raw_close = 1;
  raw_start();
  kitd_http *h;
  kitd_endpoint *ep = raw_ep(&h);
  for (int i = 0; i < 3; i++) {
    kitd_ctx ctx;
    assert_int_equal(call(ep, 2000, &ctx, NULL), KITD_EHTTP);
    assert_int_equal(kitd_ctx_status(&ctx), 404);
    assert_string_equal(kitd_ctx_detail(&ctx), "gone");
    unsigned idle;
    kitd_http_stats(h, NULL, &idle);
    assert_int_equal(idle, 0); /* honoured: not kept */
  }
  assert_int_equal(atomic_load(&g_raw_conns), 3);
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
  raw_stop();
}

static void test_fast_malformed(void **s) {
  (void)s;
  if (!fast_active()) skip();
  static const struct {
    const char *answer;
    int close, want;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 1, KITD_EPROTO}, /* truncated */
      {"SSH-2.0-OpenSSH_9.2\r\n", 1, KITD_EPROTO},                        /* not HTTP */
      {"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 0, KITD_EPROTO},   /* bad number */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n", 0, KITD_EPROTO},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n", 0, KITD_ETOOBIG},
      {NULL, 1, KITD_EIO}, /* closed without a byte, on a fresh connection */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    g_raw_answer = cases[i].answer;
    g_raw_close = cases[i].close;
    raw_start();
    kitd_http *h;
    kitd_endpoint *ep = raw_ep(&h);
    kitd_ctx ctx;
    void *out = (void *)"untouched";
    kitd_ctx_init(&ctx);
    kitd_ctx_set_timeout_ms(&ctx, 2000);
    int rc = kitd_endpoint_call(ep, &ctx, NULL, &out);
    if (rc != cases[i].want)
      fail_msg("case %zu: %d, want %d (%s)", i, rc, cases[i].want, kitd_ctx_detail(&ctx));
    assert_string_equal(out, "untouched");
    assert_non_null(strstr(kitd_ctx_detail(&ctx), "GET http://127.0.0.1:"));
    kitd_endpoint_unref(ep);
    kitd_http_free(h);
    raw_stop();
  }
}

static void test_fast_header_bound(void **s) {
  (void)s;
  if (!fast_active()) skip();
  /* a head that never ends: refused once it passes 16 KiB */
  static char big[40000];
  strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
  memset(big + strlen(big), 'a', sizeof big - 1 - strlen(big));
  g_raw_answer = big;
  g_raw_close = 0;
  raw_start();
  kitd_http *h;
  kitd_endpoint *ep = raw_ep(&h);
  kitd_ctx ctx;
  assert_int_equal(call(ep, 2000, &ctx, NULL), KITD_EPROTO);
  kitd_endpoint_unref(ep);
  kitd_http_free(h);
  raw_stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reuse),
      cmocka_unit_test(test_post_callbacks),
      cmocka_unit_test(test_post_echo),
      cmocka_unit_test(test_error_mapping),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_deadline),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_body_cap),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_error_text),
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_fast_stale_keepalive),
      cmocka_unit_test(test_fast_chunked_keepalive),
      cmocka_unit_test(test_fast_connection_close),
      cmocka_unit_test(test_fast_malformed),
      cmocka_unit_test(test_fast_header_bound),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
