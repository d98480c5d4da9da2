/* SPDX-License-Identifier: MIT */
/* kitd_client: the raw and JSON codecs over real HTTP (an in-process
 * libmicrohttpd server), method and Content-Type passed per request, a
 * custom factory with failover, bad options, and free while calls run. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "../../support/double.h"
#include "../../support/fixture.h"
#include "kitd/kitd.h"

static struct MHD_Daemon *g_d;
static char g_inst[64];

struct req {
  char *body;
  size_t len;
};

static void done(void *cls, struct MHD_Connection *c, void **st,
                 enum MHD_RequestTerminationCode t) {
  (void)cls, (void)c, (void)t;
  struct req *q = *st;
  if (q) free(q->body);
  free(q);
  *st = NULL;
}

/* Echo: "<method> <url> <content-type> <body>", with Content-Type
 * text/x-echo; /status/N answers N. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *up,
                               size_t *upsz, void **st) {
  (void)cls, (void)version;
  struct req *q = *st;
  if (!q) {
    *st = calloc(1, sizeof *q);
    return *st ? MHD_YES : MHD_NO;
  }
  if (*upsz) {
    char *b = realloc(q->body, q->len + *upsz + 1);
    if (!b) return MHD_NO;
    memcpy(b + q->len, up, *upsz);
    q->body = b;
    q->len += *upsz;
    *upsz = 0;
    return MHD_YES;
  }
  unsigned status = 200;
  if (!strncmp(url, "/status/", 8)) status = (unsigned)atoi(url + 8);
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  const char *arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
  char *out = NULL;
  int n = asprintf(&out, "%s %s%s%s %s %.*s", method, url, arg ? "?q=" : "", arg ? arg : "",
                   ct ? ct : "-", (int)q->len, q->body ? q->body : "");
  if (n < 0) return MHD_NO;
  struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, out, MHD_RESPMEM_MUST_FREE);
  MHD_add_response_header(r, "Content-Type",
                          !strcmp(url, "/json") ? "application/json" : "text/x-echo");
  if (!strcmp(url, "/json")) {
    MHD_destroy_response(r);
    static const char js[] = "{\"ok\":true,\"n\":3}";
    r = MHD_create_response_from_buffer(sizeof js - 1, (void *)js, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
  }
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

static int setup(void **s) {
  (void)s;
  kitd_global_init();
  g_d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
                         MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&(struct sockaddr_in){
                             .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                         MHD_OPTION_END);
  if (!g_d) return -1;
  snprintf(g_inst, sizeof g_inst, "127.0.0.1:%d",
           MHD_get_daemon_info(g_d, MHD_DAEMON_INFO_BIND_PORT)->port);
  return 0;
}

static int teardown(void **s) {
  (void)s;
  MHD_stop_daemon(g_d);
  kitd_global_cleanup();
  return 0;
}

static kitd_client *new_client(kitd_instancer *in, kitd_codec codec, const char *method,
                               const char *path) {
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "echo";
  o.instancer = in;
  o.codec = codec;
  o.method = method;
  o.path = path;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  return c;
}

static void test_raw(void **s) {
  (void)s;
  kitd_instancer *in = kt_static(g_inst);
  kitd_client *c = new_client(in, KITD_CODEC_RAW, NULL, "/base");
  kitd_instancer_free(in); /* the client holds its own reference */
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, kitd_test_ms(5000));
  kitd_client_resp r = {0};
  assert_int_equal(kitd_client_call(c, &ctx, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "GET /base - ");
  assert_non_null(r.content_type);
  assert_string_equal(r.content_type, "text/x-echo");
  kitd_client_resp_clear(&r);
  assert_null(r.body);

  kitd_client_req rq = {
      .method = "PUT", .path = "/x?q=1", .body = "hello", .len = 5, .content_type = "text/plain"};
  assert_int_equal(kitd_client_call(c, &ctx, &rq, &r), 0);
  assert_string_equal(r.body, "PUT /x?q=1 text/plain hello");
  assert_int_equal(r.len, strlen(r.body));
  kitd_client_resp_clear(&r);
  /* a 4xx is the service's answer, not a failure */
  rq = (kitd_client_req){.path = "/status/404"};
  assert_int_equal(kitd_client_call(c, &ctx, &rq, &r), 0);
  assert_int_equal(r.status, 404);
  kitd_client_resp_clear(&r);
  /* a 5xx is a failed attempt, retried, then the error */
  rq = (kitd_client_req){.path = "/status/503"};
  assert_int_equal(kitd_client_call(c, &ctx, &rq, &r), KITD_EHTTP);
  assert_int_equal(kitd_ctx_status(&ctx), 503);
  assert_null(r.body);
  /* bad method: no request goes out */
  rq = (kitd_client_req){.method = "GE T"};
  assert_int_equal(kitd_client_call(c, &ctx, &rq, &r), KITD_EINVAL);
  /* no response wanted */
  assert_int_equal(kitd_client_call(c, &ctx, NULL, NULL), 0);
  /* too many method / type pairs */
  int einval = 0;
  for (int i = 0; i < 12; i++) {
    char ct[32];
    snprintf(ct, sizeof ct, "text/t%d", i);
    rq = (kitd_client_req){.method = "POST", .content_type = ct, .body = "x", .len = 1};
    int rc = kitd_client_call(c, &ctx, &rq, &r);
    if (rc == KITD_EINVAL) einval++;
    else assert_int_equal(rc, 0), kitd_client_resp_clear(&r);
  }
  assert_true(einval > 0 && einval < 12);
  assert_int_equal(kitd_client_count(c), 1);
  assert_string_equal(kitd_client_service(c), "echo");
  kitd_client_free(c);
}

/* The registry named by a source string (a watched file here). */
static void test_source(void **s) {
  (void)s;
  char dir[] = "/tmp/kitd-client-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128], src[160];
  snprintf(path, sizeof path, "%s/echo.list", dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", g_inst);
  fclose(f);
  snprintf(src, sizeof src, "file://%s", path);
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "echo";
  o.source = src;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, kitd_test_ms(5000));
  kitd_client_resp r = {0};
  kitd_client_req rq = {.path = "/src"};
  assert_int_equal(kitd_client_call(c, &ctx, &rq, &r), 0);
  assert_string_equal(r.body, "GET /src - ");
  kitd_client_resp_clear(&r);
  kitd_client_free(c);
  o.source = "gopher://x/y";
  assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  unlink(path);
  rmdir(dir);
}

static void test_json(void **s) {
  (void)s;
  kitd_instancer *in = kt_static(g_inst);
  kitd_client *c = new_client(in, KITD_CODEC_JSON, NULL, "/json");
  kitd_instancer_free(in);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  kitd_ctx_set_timeout_ms(&ctx, kitd_test_ms(5000));
  json_t *req = json_pack("{s:i}", "id", 7), *resp = NULL;
  assert_int_equal(kitd_client_call(c, &ctx, req, &resp), 0);
  assert_non_null(resp);
  assert_true(json_is_true(json_object_get(resp, "ok")));
  assert_int_equal(json_integer_value(json_object_get(resp, "n")), 3);
  json_decref(resp);
  json_decref(req);
  kitd_client_free(c);
}

/* A client over `in` whose transport is the test factory. */
static kitd_client *factory_client(kitd_instancer *in, kt_factory *f) {
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "svc";
  o.instancer = in;
  kitd_factory kf = {kt_factory_fn, f, NULL};
  o.factory = &kf;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  return c;
}

static void test_factory_failover(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  snprintf(f.fail, sizeof f.fail, "%s", ":2");
  kitd_instancer *in = kt_static("10.0.0.1:1,10.0.0.2:2");
  kitd_client *c = factory_client(in, &f);
  for (int i = 0; i < 20; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    const char *who = NULL;
    assert_int_equal(kitd_client_call(c, &ctx, NULL, &who), 0);
    assert_string_equal(who, "10.0.0.1:1");
  }
  /* nothing left: the reason is in the ctx */
  assert_int_equal(kt_set(in, ""), 0);
  kitd_ctx ctx;
  kitd_ctx_init(&ctx);
  const char *who = NULL;
  assert_int_equal(kitd_client_call(c, &ctx, NULL, &who), KITD_ENOENDPOINTS);
  assert_non_null(strstr(kitd_ctx_detail(&ctx), "0 "));
  kitd_instancer_free(in);
  kitd_client_free(c);
  assert_int_equal(kt_live(&f), 0);
  kt_factory_destroy(&f);
}

static int g_released;
static void count_release(void *arg) {
  (void)arg;
  g_released++;
}

static void test_bad_options(void **s) {
  (void)s;
  kitd_instancer *in = kt_static("");
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.instancer = in;
  kitd_client *c = (kitd_client *)1;
  const char *bad[] = {"", "a/b", "tab\there"};
  for (size_t i = 0; i < 3; i++) {
    o.service = bad[i];
    assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  }
  char *longname = malloc(300);
  memset(longname, 'a', 299);
  longname[299] = '\0';
  o.service = longname;
  assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  longname[255] = '\0';
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_client_free(c);
  free(longname);
  o.service = "ok";
  o.size = 8;
  assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  kitd_client_opts_init(&o);
  o.instancer = in;
  o.service = "ok";
  o.path = "no-slash";
  assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  o.path = NULL;
  o.codec = KITD_CODEC_CUSTOM; /* with no decode callback */
  assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  /* a factory is released on the failure path too */
  kt_factory f;
  kt_factory_init(&f);
  kitd_factory kf = {kt_factory_fn, &f, count_release};
  o.factory = &kf;
  o.service = "";
  g_released = 0;
  assert_int_equal(kitd_client_new(&o, &c), KITD_EINVAL);
  assert_int_equal(g_released, 1);
  o.service = "ok";
  o.codec = KITD_CODEC_RAW;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  assert_int_equal(g_released, 1);
  kitd_client_free(c);
  assert_int_equal(g_released, 2);
  kt_factory_destroy(&f);
  assert_int_equal(kitd_service_name_ok("users"), 1);
  assert_int_equal(kitd_service_name_ok(NULL), 0);
  kitd_client_free(NULL);
  kitd_instancer_free(in);
}

/* Free the caller's handle while other threads call: they keep going. */
struct caller {
  kitd_client *c;
  int ok;
};

static void *call_loop(void *arg) {
  struct caller *k = arg;
  for (int i = 0; i < 200; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    const char *who = NULL;
    if (kitd_client_call(k->c, &ctx, NULL, &who) == 0 && who) k->ok++;
  }
  kitd_client_free(k->c);
  return NULL;
}

static void test_free_while_calling(void **s) {
  (void)s;
  kt_factory f;
  kt_factory_init(&f);
  kitd_instancer *in = kt_static("10.0.0.1:1,10.0.0.2:2");
  kitd_client *c = factory_client(in, &f);
  kitd_instancer_free(in);
  pthread_t th[4];
  struct caller k[4];
  for (int i = 0; i < 4; i++) {
    k[i] = (struct caller){kitd_client_ref(c), 0};
    pthread_create(&th[i], NULL, call_loop, &k[i]);
  }
  kitd_client_free(c);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(k[i].ok, 200);
  }
  assert_int_equal(kt_live(&f), 0);
  kt_factory_destroy(&f);
}

/* Hedging through a client over real HTTP: a second server answers at
 * once until told to stall each answer for 2 s; calls that land on it are
 * answered by the first server's hedge, long before the stall ends. */
static atomic_int g_stall;
static enum MHD_Result stall_handler(void *cls, struct MHD_Connection *c, const char *url,
                                     const char *method, const char *version, const char *up,
                                     size_t *upsz, void **st) {
  (void)cls, (void)url, (void)method, (void)version, (void)up, (void)upsz, (void)st;
  if (atomic_load(&g_stall)) sleep(2);
  static const char body[] = "stalled";
  struct MHD_Response *r =
      MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

static void test_hedge(void **s) {
  (void)s;
  atomic_store(&g_stall, 0);
  struct MHD_Daemon *d2 =
      MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                       NULL, stall_handler, NULL, MHD_OPTION_SOCK_ADDR,
                       (struct sockaddr *)&(struct sockaddr_in){
                           .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
                       MHD_OPTION_END);
  assert_non_null(d2);
  char slow[64], list[160];
  snprintf(slow, sizeof slow, "127.0.0.1:%d",
           MHD_get_daemon_info(d2, MHD_DAEMON_INFO_BIND_PORT)->port);
  snprintf(list, sizeof list, "%s,%s", g_inst, slow);
  kitd_instancer *in = kt_static(list);
  kitd_retry_opts ro;
  kitd_retry_opts_init(&ro);
  ro.timeout_ms = 10000;
  ro.hedge_quantile = 0.9; /* the client fills free_response */
  kitd_client_opts o;
  kitd_client_opts_init(&o);
  o.service = "echo";
  o.instancer = in;
  o.codec = KITD_CODEC_RAW;
  o.retry = &ro;
  kitd_client *c = NULL;
  assert_int_equal(kitd_client_new(&o, &c), 0);
  kitd_instancer_free(in);
  for (int i = 0; i < 256; i++) { /* the delay is learned first */
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_client_resp r = {0};
    assert_int_equal(kitd_client_call(c, &ctx, NULL, &r), 0);
    kitd_client_resp_clear(&r);
  }
  atomic_store(&g_stall, 1);
  for (int i = 0; i < 6; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_client_resp r = {0};
    int64_t t0 = kt_ms();
    assert_int_equal(kitd_client_call(c, &ctx, NULL, &r), 0);
    assert_true(kt_ms() - t0 < 1500);
    assert_string_equal(kitd_ctx_instance(&ctx), g_inst);
    assert_int_equal(r.status, 200);
    kitd_client_resp_clear(&r);
  }
  kitd_client_free(c);
  MHD_stop_daemon(d2); /* waits for the stalled handlers */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_raw),         cmocka_unit_test(test_json),
      cmocka_unit_test(test_source),      cmocka_unit_test(test_factory_failover),
      cmocka_unit_test(test_bad_options), cmocka_unit_test(test_free_while_calling),
      cmocka_unit_test(test_hedge),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
