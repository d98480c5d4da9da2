/* SPDX-License-Identifier: MIT */
/* lorem-client: go-kit's lorem-consul client in C.
 *
 * Waits for the first non-empty set of passing "lorem" instances (Consul,
 * or -static host:port,...), then makes -n calls through
 * instancer -> endpointer (kitd_http) -> round robin -> retry, and prints
 * each message on its own line. -c runs that many threads (each making -n
 * calls, or calling until -duration is over) and prints a summary line. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kitd/kitd.h>

#include "lorem/flags.h"
#include "lorem/lorem.h"
#include "lorem/pipeline.h"

static lorem_pipeline *g_p;
static lorem_request g_rq;
static long g_n = 1;
static int64_t g_duration_ms;
static int g_quiet, g_show_upstream;
static atomic_long g_ok, g_failed;
static int64_t g_end_ns;
static pthread_mutex_t g_out = PTHREAD_MUTEX_INITIALIZER;

static void report_failure(int rc, kitd_ctx *ctx) {
  pthread_mutex_lock(&g_out);
  fprintf(stderr, "lorem-client: call failed: %s (%s)", kitd_strerror(rc), kitd_err_name(rc));
  if (*kitd_ctx_detail(ctx)) fprintf(stderr, ": %s", kitd_ctx_detail(ctx));
  fputc('\n', stderr);
  const kitd_attempt_error *a;
  for (unsigned i = 0; (a = kitd_ctx_attempt(ctx, i)); i++) {
    fprintf(stderr, "  attempt %u: %s instance=%s status=%d %s\n", i + 1, kitd_err_name(a->err),
            a->instance[0] ? a->instance : "-", a->status, a->detail);
  }
  pthread_mutex_unlock(&g_out);
}

static void *worker(void *arg) {
  (void)arg;
  for (long i = 0; g_duration_ms > 0 ? kitd_now_ns() < g_end_ns : i < g_n; i++) {
    kitd_ctx ctx;
    kitd_ctx_init(&ctx);
    kitd_attempt_error attempts[8]; /* for report_failure */
    kitd_ctx_set_attempt_log(&ctx, attempts, 8);
    lorem_response *r = NULL;
    int rc = lorem_pipeline_call(g_p, &ctx, &g_rq, &r);
    if (rc) {
      atomic_fetch_add_explicit(&g_failed, 1, memory_order_relaxed);
      report_failure(rc, &ctx);
      continue;
    }
    atomic_fetch_add_explicit(&g_ok, 1, memory_order_relaxed);
    if (!g_quiet) {
      pthread_mutex_lock(&g_out);
      if (g_show_upstream) printf("%s\t", r->upstream);
      puts(r->message);
      pthread_mutex_unlock(&g_out);
    }
    lorem_response_free(r);
  }
  return NULL;
}

int main(int argc, char **argv) {
  const char *consul_addr = NULL, *consul_port = NULL, *static_list = NULL, *source = NULL;
  const char *type = "sentence", *service = "lorem", *tag = "lorem";
  long min = 5, max = 20, conc = 1, attempts = 3, per_thread = 0;
  int64_t wait_ms = 10000, timeout_ms = 3000, attempt_ms = 1000;
  lorem_flag flags[] = {
      {"consul.addr", FLAG_STR, &consul_addr,
       "Consul agent address (default: CONSUL_HTTP_ADDR, else 127.0.0.1)"},
      {"consul.port", FLAG_STR, &consul_port, "Consul agent port (default 8500)"},
      {"static", FLAG_STR, &static_list,
       "host:port,host:port: use these instances instead of Consul"},
      {"source", FLAG_STR, &source,
       "the registry as a source string: consul://HOST:PORT/SERVICE?tag=T, "
       "etcd://HOST:PORT/PREFIX, dns+srv://SERVER:PORT/NAME, file:///PATH (wins over -static and "
       "-consul.*)"},
      {"service", FLAG_STR, &service, "Consul service name (default lorem)"},
      {"tag", FLAG_STR, &tag, "Consul tag the instances must carry (default lorem; \"\" for none)"},
      {"type", FLAG_STR, &type, "word, sentence or paragraph (default sentence)"},
      {"min", FLAG_INT, &min, "minimum count (default 5)"},
      {"max", FLAG_INT, &max, "maximum count, exclusive (default 20)"},
      {"n", FLAG_INT, &g_n, "calls per thread (default 1)"},
      {"c", FLAG_INT, &conc, "concurrent threads (default 1)"},
      {"duration", FLAG_DURATION, &g_duration_ms,
       "call until this much time has passed (instead of -n)"},
      {"wait", FLAG_DURATION, &wait_ms, "how long to wait for a first instance (default 10s)"},
      {"timeout", FLAG_DURATION, &timeout_ms,
       "overall deadline of one call, across attempts (default 3s)"},
      {"attempt.timeout", FLAG_DURATION, &attempt_ms, "deadline of one attempt (default 1s)"},
      {"attempts", FLAG_INT, &attempts, "attempts per call, across instances (default 3)"},
      {"per-thread-rr", FLAG_BOOL, &per_thread,
       "round robin per thread instead of one global rotation"},
      {"upstream", FLAG_BOOL, &g_show_upstream,
       "prefix each message with the instance that served it and a tab"},
      {"q", FLAG_BOOL, &g_quiet, "do not print the messages"},
  };
  int pr = lorem_flags_parse(argc, argv, flags, (int)(sizeof flags / sizeof flags[0]),
                             "lorem-client [flags]");
  if (pr) return pr > 0 ? 0 : 2;
  if (lorem_type_parse(type, strlen(type), &g_rq.type)) {
    fprintf(stderr, "lorem-client: -type must be word, sentence or paragraph\n");
    return 2;
  }
  if (min < 0 || max < 0 || min > 1000000 || max > 1000000 || conc < 1 || conc > 1024 ||
      attempts < 1 || g_n < 0) {
    fprintf(stderr, "lorem-client: bad -min, -max, -c, -attempts or -n\n");
    return 2;
  }
  g_rq.min = (int)min;
  g_rq.max = (int)max;

  kitd_global_init();
  kitd_logger *lg = NULL;
  kitd_logger_new(KITD_LOG_WARN, NULL, NULL, KITD_LOG_LOGFMT,
                  &lg); /* quiet unless something goes wrong */
  struct lorem_pipeline_conf pc = {static_list,
                                   consul_addr,
                                   consul_port,
                                   service,
                                   tag,
                                   (unsigned)attempts,
                                   attempt_ms,
                                   timeout_ms,
                                   per_thread ? KITD_RR_PER_THREAD : KITD_RR_GLOBAL,
                                   lg,
                                   source,
                                   NULL,
                                   0};
  if (lorem_pipeline_new(&pc, &g_p)) {
    fprintf(stderr, "lorem-client: cannot build the pipeline (see the log above)\n");
    return 1;
  }
  size_t n = lorem_pipeline_wait(g_p, wait_ms);
  if (n == 0) {
    fprintf(stderr, "lorem-client: no instance of %s found within %lld ms%s\n", service,
            (long long)wait_ms,
            static_list ? ""
                        : " (is the Consul agent up, and a lorem-server registered and passing?)");
    lorem_pipeline_free(g_p);
    kitd_logger_free(lg);
    return 1;
  }
  int64_t t0 = kitd_now_ns();
  g_end_ns = t0 + g_duration_ms * 1000000;
  pthread_t *t = calloc((size_t)conc, sizeof *t);
  for (long i = 1; i < conc; i++) pthread_create(&t[i], NULL, worker, NULL);
  worker(NULL);
  for (long i = 1; i < conc; i++) pthread_join(t[i], NULL);
  free(t);
  double secs = (double)(kitd_now_ns() - t0) / 1e9;
  long ok = atomic_load(&g_ok), failed = atomic_load(&g_failed);
  if (conc > 1 || g_duration_ms > 0 || g_quiet)
    fprintf(stderr,
            "lorem-client: calls=%ld ok=%ld failed=%ld threads=%ld instances=%zu seconds=%.3f "
            "rate=%.0f req/s\n",
            ok + failed, ok, failed, conc, lorem_pipeline_count(g_p), secs,
            secs > 0 ? (double)(ok + failed) / secs : 0);
  lorem_pipeline_free(g_p);
  kitd_logger_free(lg);
  kitd_global_cleanup();
  return failed ? 1 : 0;
}
