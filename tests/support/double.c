/* SPDX-License-Identifier: MIT */
/* Test helper: start/stop the Consul double, or use a real agent. */
#include "double.h"

#include <curl/curl.h>
#include <pthread.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One handle for all test requests, so its connection is kept alive: a
 * benchmark that times a change from the request on should not time a new
 * TCP connection each time. Freed in kitd_test_agent_stop(). */
static pthread_mutex_t http_mu = PTHREAD_MUTEX_INITIALIZER;
static CURL *http_handle;

long kitd_test_ms(long ms) {
  const char *s = getenv("KITD_TEST_TIMEOUT_SCALE");
  long k = s ? atol(s) : 1;
  return ms * (k > 0 ? k : 1);
}

static int spawn(kitd_test_agent *a, const char *listen) {
  const char *b = getenv("KITD_BUILD");
  char bin[512];
  snprintf(bin, sizeof bin, "%s/tests/consul-double", b && *b ? b : "build");
  int pfd[2];
  if (pipe(pfd) != 0) return -1;
  char *argv[24];
  int n = 0;
  argv[n++] = bin;
  argv[n++] = "--listen";
  argv[n++] = (char *)listen;
  for (int i = 0; i < a->nargs; i++) argv[n++] = a->args[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(pfd[1], STDOUT_FILENO);
    close(pfd[0]);
    close(pfd[1]);
    execv(bin, argv);
    fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
    _exit(127);
  }
  close(pfd[1]);
  /* The first line of stdout is the address ("127.0.0.1:port", maybe with
   * "http://"). Read byte by byte: the rest of the pipe stays unread. */
  char line[256];
  size_t o = 0;
  char ch;
  while (o + 1 < sizeof line && read(pfd[0], &ch, 1) == 1 && ch != '\n') line[o++] = ch;
  line[o] = '\0';
  /* Keep the pipe open (closing it would kill a double that prints more
   * with SIGPIPE); it is closed when the double stops. */
  a->outfd = pfd[0];
  if (o == 0) {
    fprintf(stderr, "consul-double printed no address (is %s built?)\n", bin);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(a->outfd);
    a->outfd = -1;
    return -1;
  }
  char *p = line;
  if (strncmp(p, "http://", 7) == 0) p += 7;
  char *sp = strpbrk(p, " \t\r/");
  if (sp) *sp = '\0';
  a->pid = pid;
  snprintf(a->addr, sizeof a->addr, "%s", p);
  snprintf(a->url, sizeof a->url, "http://%s", a->addr);
  return 0;
}

int kitd_test_agent_start(kitd_test_agent *a, const char *const *extra) {
  memset(a, 0, sizeof *a);
  signal(SIGPIPE, SIG_IGN);
  const char *real = getenv("CONSUL_HTTP_ADDR");
  if (real && *real) {
    a->real = true;
    const char *p = strstr(real, "://") ? strstr(real, "://") + 3 : real;
    snprintf(a->addr, sizeof a->addr, "%s", p);
    snprintf(a->url, sizeof a->url, "%s%s", strstr(real, "://") ? "" : "http://", real);
    return 0;
  }
  const char *b = getenv("KITD_BUILD");
  char bin[512];
  snprintf(bin, sizeof bin, "%s/tests/consul-double", b && *b ? b : "build");
  if (access(bin, X_OK) != 0) {
    fprintf(stderr, "SKIP: %s is not built\n", bin);
    return 1;
  }
  for (int i = 0; extra && extra[i] && i < 15; i++) a->args[a->nargs++] = strdup(extra[i]);
  return spawn(a, "127.0.0.1:0");
}

void kitd_test_agent_stop(kitd_test_agent *a) {
  pthread_mutex_lock(&http_mu);
  if (http_handle) curl_easy_cleanup(http_handle);
  http_handle = NULL;
  pthread_mutex_unlock(&http_mu);
  if (a->pid > 0) {
    kill(a->pid, SIGTERM);
    int st;
    for (int i = 0; i < 200; i++) {
      if (waitpid(a->pid, &st, WNOHANG) == a->pid) goto reaped;
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    kill(a->pid, SIGKILL);
    waitpid(a->pid, &st, 0);
  reaped:
    a->pid = 0;
  }
  if (a->outfd > 0) close(a->outfd);
  a->outfd = -1;
  for (int i = 0; i < a->nargs; i++) free(a->args[i]);
  a->nargs = 0;
}

int kitd_test_agent_restart(kitd_test_agent *a) {
  if (a->real || a->pid <= 0) return -1;
  char listen[256];
  snprintf(listen, sizeof listen, "%s", a->addr);
  kill(a->pid, SIGTERM);
  waitpid(a->pid, NULL, 0);
  a->pid = 0;
  if (a->outfd > 0) close(a->outfd);
  a->outfd = -1;
  /* The port may linger briefly: retry. */
  for (int i = 0; i < 50; i++) {
    if (spawn(a, listen) == 0) return 0;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return -1;
}

struct buf {
  char *p;
  size_t n;
};

static size_t on_data(char *d, size_t s, size_t n, void *arg) {
  struct buf *b = arg;
  char *q = realloc(b->p, b->n + s * n + 1);
  if (!q) return 0;
  memcpy(q + b->n, d, s * n);
  b->p = q;
  b->n += s * n;
  b->p[b->n] = '\0';
  return s * n;
}

static int agent_http_locked(const kitd_test_agent *a, const char *method, const char *path,
                             const char *body, char **out);

int kitd_test_agent_http(const kitd_test_agent *a, const char *method, const char *path,
                         const char *body, char **out) {
  pthread_mutex_lock(&http_mu);
  int st = agent_http_locked(a, method, path, body, out);
  pthread_mutex_unlock(&http_mu);
  return st;
}

static int agent_http_locked(const kitd_test_agent *a, const char *method, const char *path,
                             const char *body, char **out) {
  if (http_handle) curl_easy_reset(http_handle);
  else http_handle = curl_easy_init();
  CURL *c = http_handle;
  if (!c) return 0;
  char url[1024];
  snprintf(url, sizeof url, "%s%s", a->url, path);
  struct buf b = {NULL, 0};
  struct curl_slist *h = NULL;
  char tok[512];
  const char *t = getenv("CONSUL_HTTP_TOKEN");
  if (t && *t) {
    snprintf(tok, sizeof tok, "X-Consul-Token: %s", t);
    h = curl_slist_append(h, tok);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    h = curl_slist_append(h, "Content-Type: application/json");
  } else if (strcmp(method, "PUT") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  }
  if (h) curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  if (out) *out = b.p ? b.p : strdup("");
  else free(b.p);
  return (int)status;
}

int kitd_test_agent_register(const kitd_test_agent *a, const char *name, const char *id,
                             const char *address, int port, const char *tags_json,
                             const char *status, int ttl_s) {
  char body[2048];
  snprintf(body, sizeof body,
           "{\"Name\":\"%s\",\"ID\":\"%s\",\"Address\":\"%s\",\"Port\":%d,\"Tags\":%s,"
           "\"Check\":{\"CheckID\":\"service:%s\",\"TTL\":\"%ds\",\"Status\":\"%s\"}}",
           name, id, address, port, tags_json ? tags_json : "[]", id, ttl_s, status);
  return kitd_test_agent_http(a, "PUT", "/v1/agent/service/register", body, NULL);
}

int kitd_test_agent_deregister(const kitd_test_agent *a, const char *id) {
  char path[512];
  snprintf(path, sizeof path, "/v1/agent/service/deregister/%s", id);
  return kitd_test_agent_http(a, "PUT", path, NULL, NULL);
}

int kitd_test_agent_ttl(const kitd_test_agent *a, const char *id, const char *verb) {
  char path[512];
  snprintf(path, sizeof path, "/v1/agent/check/%s/service:%s", verb, id);
  return kitd_test_agent_http(a, "PUT", path, NULL, NULL);
}

/* --- the double's control path (see tests/consul-double/README.md) --- */

long kitd_test_agent_requests(const kitd_test_agent *a, const char *path_prefix) {
  if (a->real) return -1;
  char *out = NULL;
  int st = kitd_test_agent_http(a, "GET", "/_double/stats", NULL, &out);
  long total = -1;
  if (st == 200 && out) {
    /* Sum "<path>": N pairs whose path starts with path_prefix. */
    total = 0;
    /* Only the "requests" object ("METHOD /path/": n); the double also
     * lists the same counts under "paths". */
    char *p = strstr(out, "\"requests\"");
    char *end = p ? strchr(p, '}') : NULL;
    if (end) *end = '\0';
    for (p = p ? p + 10 : out + strlen(out); (p = strchr(p, '"')) != NULL;) {
      char *e = strchr(p + 1, '"');
      if (!e) break;
      size_t kl = (size_t)(e - p - 1);
      char *colon = e + 1;
      while (*colon == ' ') colon++;
      /* keys are "<METHOD> <path prefix>", e.g. "GET /v1/health/service/" */
      const char *key = p + 1;
      const char *sp = memchr(key, ' ', kl);
      if (sp) {
        kl -= (size_t)(sp + 1 - key);
        key = sp + 1;
      }
      if (*colon == ':' && kl >= strlen(path_prefix) &&
          strncmp(key, path_prefix, strlen(path_prefix)) == 0)
        total += strtol(colon + 1, NULL, 10);
      p = e + 1;
    }
  }
  free(out);
  return total;
}

/* knob: a fault mode of the double (slow, stall, 500, 429, 503, garbage,
 * truncated, oversized, index-reset) applied to the read endpoints, or
 * "down": the double stops listening (connections are refused) for `value`
 * milliseconds (default 3000) and comes back with its registrations.
 * value: a duration for slow/stall ("500ms", "2s"), a size in bytes for
 * oversized, else unused. */
int kitd_test_agent_fault(kitd_test_agent *a, const char *knob, const char *value) {
  if (a->real) return -1;
  char path[512];
  if (strcmp(knob, "down") == 0) {
    snprintf(path, sizeof path, "/_double/down?ms=%s", value ? value : "3000");
    int st = kitd_test_agent_http(a, "PUT", path, NULL, NULL);
    /* The double goes down a moment after it answers: wait until it
     * refuses connections, so the caller's next step sees it down. */
    for (int i = 0; st == 200 && i < 200; i++) {
      if (kitd_test_agent_http(a, "GET", "/v1/status/leader", NULL, NULL) == 0) break;
      struct timespec ts = {0, 5 * 1000000L};
      nanosleep(&ts, NULL);
    }
    return st;
  }
  int n = snprintf(path, sizeof path, "/_double/fault?mode=%s", knob);
  if (value && (strcmp(knob, "slow") == 0 || strcmp(knob, "stall") == 0)) {
    char *end;
    double v = strtod(value, &end);
    long ms = (long)(strcmp(end, "s") == 0 ? v * 1000 : v);
    snprintf(path + n, sizeof path - (size_t)n, "&ms=%ld", ms);
  } else if (value && strcmp(knob, "oversized") == 0) {
    snprintf(path + n, sizeof path - (size_t)n, "&bytes=%s", value);
  }
  return kitd_test_agent_http(a, "PUT", path, NULL, NULL);
}

/* While the double is down, the control path is down too: try for up to
 * 10 s (scaled), so that clearing also waits for it to be back. */
int kitd_test_agent_clear_faults(kitd_test_agent *a) {
  if (a->real) return -1;
  int st = 0;
  for (long waited = 0; waited < kitd_test_ms(10000); waited += 50) {
    st = kitd_test_agent_http(a, "PUT", "/_double/fault?mode=none", NULL, NULL);
    if (st != 0) return st;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return st;
}

long kitd_test_agent_stat(const kitd_test_agent *a, const char *key) {
  char *body = NULL;
  if (kitd_test_agent_http(a, "GET", "/_double/stats", NULL, &body) != 200) {
    free(body);
    return -1;
  }
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(body, pat);
  long v = p ? strtol(p + strlen(pat), NULL, 10) : -1;
  free(body);
  return v;
}

int kitd_test_threads(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}
