/* SPDX-License-Identifier: MIT */
/* A real etcd for the tests (etcd_server.h). */
#include "etcd_server.h"
#include "fixture.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd/etcd_impl.h"

static long scaled(long ms) {
  const char *e = getenv("KITD_TEST_TIMEOUT_SCALE");
  long k = e ? atol(e) : 1;
  return ms * (k > 0 ? k : 1);
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

bool etcd_server_available(void) { return system("etcd --version >/dev/null 2>&1") == 0; }

/* Two free ports: both bound at once so they differ, then released. */
static int free_ports(int *a, int *b) {
  int fd[2] = {-1, -1}, port[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    fd[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd[i] < 0 || bind(fd[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd[i], (struct sockaddr *)&sa, &sl) != 0)
      return -1;
    port[i] = ntohs(sa.sin_port);
  }
  close(fd[0]);
  close(fd[1]);
  *a = port[0];
  *b = port[1];
  return 0;
}

static size_t sink(char *p, size_t size, size_t n, void *arg) {
  char **buf = arg;
  size_t old = *buf ? strlen(*buf) : 0, len = size * n;
  char *b = realloc(*buf, old + len + 1);
  if (!b) return 0;
  memcpy(b + old, p, len);
  b[old + len] = '\0';
  *buf = b;
  return len;
}

static int request(etcd_server *s, const char *path, const char *body, const char *token,
                   char **resp, long timeout_ms) {
  CURL *c = curl_easy_init();
  if (!c) return 0;
  char *url = kt_asprintf("%s%s", s->url, path), *auth = NULL, *out = NULL;
  struct curl_slist *h = NULL;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  if (s->ca) curl_easy_setopt(c, CURLOPT_CAINFO, s->ca);
  if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  if (token) {
    auth = kt_asprintf("Authorization: %s", token);
    h = curl_slist_append(h, auth);
  }
  h = curl_slist_append(h, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  free(url);
  free(auth);
  if (resp) *resp = out;
  else free(out);
  return (int)status;
}

int etcd_server_post(etcd_server *s, const char *path, const char *body, const char *token,
                     char **resp) {
  return request(s, path, body, token, resp, scaled(10000));
}

static void show_log(etcd_server *s) {
  char *cmd = kt_asprintf("tail -n 20 '%s/etcd.log' >&2", s->dir);
  if (cmd && system(cmd) != 0) fprintf(stderr, "(no etcd log)\n");
  free(cmd);
}

static int spawn(etcd_server *s) {
  const char *scheme = s->cert ? "https" : "http";
  char *curl_ = kt_asprintf("%s://127.0.0.1:%d", scheme, s->client_port);
  char *purl = kt_asprintf("http://127.0.0.1:%d", s->peer_port);
  char *cluster = kt_asprintf("t=%s", purl);
  char *data = kt_asprintf("%s/data", s->dir);
  char *log = kt_asprintf("%s/etcd.log", s->dir);
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    const char *argv[64];
    int k = 0;
    argv[k++] = "etcd";
    argv[k++] = "--name";
    argv[k++] = "t";
    argv[k++] = "--data-dir";
    argv[k++] = data;
    argv[k++] = "--listen-client-urls";
    argv[k++] = curl_;
    argv[k++] = "--advertise-client-urls";
    argv[k++] = curl_;
    argv[k++] = "--listen-peer-urls";
    argv[k++] = purl;
    argv[k++] = "--initial-advertise-peer-urls";
    argv[k++] = purl;
    argv[k++] = "--initial-cluster";
    argv[k++] = cluster;
    if (s->cert) {
      argv[k++] = "--cert-file";
      argv[k++] = s->cert;
      argv[k++] = "--key-file";
      argv[k++] = s->key;
    }
    for (size_t i = 0; s->extra && s->extra[i] && k < 62; i++) argv[k++] = s->extra[i];
    argv[k] = NULL;
    execvp("etcd", (char *const *)argv);
    _exit(127);
  }
  free(curl_);
  free(purl);
  free(cluster);
  free(data);
  free(log);
  if (pid < 0) return -1;
  s->pid = pid;
  long end = scaled(20000);
  for (long t = 0; t < end; t += 50) {
    char *r = NULL;
    int st = request(s, "/health", NULL, NULL, &r, 1000);
    /* GET: etcd answers /health to GET only. */
    bool ok = st == 200 && r && strstr(r, "true");
    free(r);
    if (ok) return 0;
    int ws;
    if (waitpid(pid, &ws, WNOHANG) == pid) {
      s->pid = 0;
      break;
    }
    nap_ms(50);
  }
  fprintf(stderr, "etcd did not become ready at %s\n", s->url);
  show_log(s);
  return -1;
}

int etcd_server_start(etcd_server *s, const char *ca, const char *cert, const char *key,
                      const char *const *extra) {
  memset(s, 0, sizeof *s);
  const char *tmp = getenv("TMPDIR");
  char *tmpl = kt_asprintf("%s/kitd-etcd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!tmpl || !mkdtemp(tmpl)) {
    free(tmpl);
    return -1;
  }
  s->dir = tmpl;
  if (free_ports(&s->client_port, &s->peer_port)) return -1;
  s->url = kt_asprintf("%s://127.0.0.1:%d", cert ? "https" : "http", s->client_port);
  if (ca) s->ca = strdup(ca);
  if (cert) s->cert = strdup(cert);
  if (key) s->key = strdup(key);
  size_t n = 0;
  while (extra && extra[n]) n++;
  if (n) {
    s->extra = calloc(n + 1, sizeof *s->extra);
    for (size_t i = 0; s->extra && i < n; i++) s->extra[i] = strdup(extra[i]);
  }
  return spawn(s);
}

int etcd_server_restart(etcd_server *s) {
  if (s->pid) etcd_server_kill(s);
  return spawn(s);
}

int etcd_server_wipe(etcd_server *s) {
  etcd_server_kill(s);
  char *cmd = kt_asprintf("rm -rf '%s/data'", s->dir);
  int rc = cmd ? system(cmd) : -1;
  free(cmd);
  return rc == 0 ? spawn(s) : -1;
}

void etcd_server_kill(etcd_server *s) {
  if (!s->pid) return;
  kill(s->pid, SIGKILL);
  while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {}
  s->pid = 0;
}

void etcd_server_stop(etcd_server *s) {
  etcd_server_kill(s);
  if (s->dir) {
    char *cmd = kt_asprintf("rm -rf '%s'", s->dir);
    if (cmd && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", s->dir);
    free(cmd);
  }
  free(s->dir);
  free(s->url);
  free(s->ca);
  free(s->cert);
  free(s->key);
  for (size_t i = 0; s->extra && s->extra[i]; i++) free((char *)s->extra[i]);
  free(s->extra);
  memset(s, 0, sizeof *s);
}

static long revision_of(const char *resp) {
  json_t *o = resp ? json_loads(resp, 0, NULL) : NULL;
  long rev = (long)kitd__etcd_int(json_object_get(json_object_get(o, "header"), "revision"), 0);
  json_decref(o);
  return rev;
}

long etcd_server_put(etcd_server *s, const char *key, const char *value) {
  char *k = kitd__b64_encode((const unsigned char *)key, strlen(key));
  char *v = kitd__b64_encode((const unsigned char *)value, strlen(value));
  char *body = kt_asprintf("{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
  char *resp = NULL;
  int st = etcd_server_post(s, "/v3/kv/put", body, NULL, &resp);
  long rev = st == 200 ? revision_of(resp) : -st;
  free(k);
  free(v);
  free(body);
  free(resp);
  return rev;
}

long etcd_server_del(etcd_server *s, const char *key) {
  char *k = kitd__b64_encode((const unsigned char *)key, strlen(key));
  char *body = kt_asprintf("{\"key\":\"%s\"}", k);
  char *resp = NULL;
  int st = etcd_server_post(s, "/v3/kv/deleterange", body, NULL, &resp);
  long rev = st == 200 ? revision_of(resp) : -st;
  free(k);
  free(body);
  free(resp);
  return rev;
}

long etcd_server_revision(etcd_server *s) {
  char *resp = NULL;
  int st = etcd_server_post(s, "/v3/kv/range", "{\"key\":\"AA==\"}", NULL, &resp);
  long rev = st == 200 ? revision_of(resp) : -st;
  free(resp);
  return rev;
}
