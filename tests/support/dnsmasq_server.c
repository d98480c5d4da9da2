/* SPDX-License-Identifier: MIT */
/* Test helper: run the real dnsmasq on loopback. */
#include "dnsmasq_server.h"
#include "fixture.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <resolv.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *dnsmasq_path(void) {
  static const char *const cand[] = {"/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"};
  for (size_t i = 0; i < sizeof cand / sizeof *cand; i++)
    if (access(cand[i], X_OK) == 0) return cand[i];
  return NULL;
}

bool kitd_test_dnsmasq_available(void) { return dnsmasq_path() != NULL; }

/* A port free for UDP and TCP on 127.0.0.1 (the kernel's pick for UDP,
 * checked for TCP: dnsmasq listens on both and exits if either is taken). */
static int free_port(void) {
  for (int attempt = 0; attempt < 20; attempt++) {
    int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof a;
    int port = -1;
    if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(u, (struct sockaddr *)&a, &l) == 0 &&
        bind(t, (struct sockaddr *)&a, sizeof a) == 0)
      port = ntohs(a.sin_port);
    if (u >= 0) close(u);
    if (t >= 0) close(t);
    if (port > 0) return port;
  }
  return -1;
}

/* One A query for probe.test; true if any answer came within 200 ms. */
static bool answers(int port) {
  unsigned char q[NS_PACKETSZ], a[NS_PACKETSZ];
  struct __res_state st;
  memset(&st, 0, sizeof st);
  st.options = RES_INIT;
  int n = res_nmkquery(&st, ns_o_query, "probe.test", ns_c_in, ns_t_a, NULL, 0, NULL, q, sizeof q);
  if (n < 0) return false;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && send(fd, q, (size_t)n, 0) == n) {
    struct pollfd p = {fd, POLLIN, 0};
    ok = poll(&p, 1, 200) == 1 && recv(fd, a, sizeof a, 0) > 0;
  }
  close(fd);
  return ok;
}

static int spawn(kitd_test_dnsmasq *d, const char *const *args) {
  const char *bin = dnsmasq_path();
  if (!bin) {
    fprintf(stderr, "dnsmasq: not installed (Debian dnsmasq-base)\n");
    return -1;
  }
  char *argv[64];
  int k = 0;
  char *own[8] = {0};
  int no = 0;
  argv[k++] = (char *)bin;
  argv[k++] = "--no-daemon";
  argv[k++] = own[no++] = kt_asprintf("--port=%d", d->port);
  argv[k++] = "--listen-address=127.0.0.1";
  argv[k++] = "--bind-interfaces";
  argv[k++] = "--no-resolv";
  argv[k++] = "--no-hosts";
  argv[k++] = "--conf-file=/dev/null";
  argv[k++] = "--pid-file=";
  argv[k++] = "--local=/test/";
  argv[k++] = "--log-queries";
  argv[k++] = own[no++] = kt_asprintf("--log-facility=%s", d->log);
  argv[k++] = own[no++] = kt_asprintf("--addn-hosts=%s", d->hosts);
  struct passwd *pw = getpwuid(getuid());
  if (getuid() == 0 && pw) argv[k++] = own[no++] = kt_asprintf("--user=%s", pw->pw_name);
  for (size_t i = 0; args && args[i] && k < 62; i++) argv[k++] = (char *)args[i];
  argv[k] = NULL;
  for (int i = 0; i < no; i++)
    if (!own[i]) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    /* Its own log goes to the file; keep the test's output readable. */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(bin, argv);
    _exit(127);
  }
  for (int i = 0; i < no; i++) free(own[i]);
  if (pid < 0) return -1;
  d->pid = pid;
  for (int i = 0; i < 100; i++) { /* up to ~25 s on a loaded machine */
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      d->pid = 0;
      fprintf(stderr, "dnsmasq exited at start (port %d)\n", d->port);
      return -1;
    }
    if (answers(d->port)) return 0;
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "dnsmasq did not answer on port %d\n", d->port);
  kitd_test_dnsmasq_kill(d);
  return -1;
}

int kitd_test_dnsmasq_start(kitd_test_dnsmasq *d, const char *const *args) {
  memset(d, 0, sizeof *d);
  char tmpl[] = "/tmp/kitd-dnsmasq-XXXXXX";
  if (!mkdtemp(tmpl)) return -1;
  d->dir = strdup(tmpl);
  d->log = kt_asprintf("%s/queries.log", tmpl);
  d->hosts = kt_asprintf("%s/hosts", tmpl);
  if (!d->dir || !d->log || !d->hosts) return -1;
  FILE *f = fopen(d->hosts, "w");
  if (!f) return -1;
  fclose(f);
  /* dnsmasq may write as another user: let it. */
  chmod(tmpl, 0777);
  for (int attempt = 0; attempt < 5; attempt++) {
    d->port = free_port();
    if (d->port <= 0) return -1;
    free(d->addr);
    d->addr = kt_asprintf("127.0.0.1:%d", d->port);
    if (spawn(d, args) == 0) return 0;
  }
  return -1;
}

static void reap(kitd_test_dnsmasq *d, int sig) {
  if (d->pid <= 0) return;
  kill(d->pid, sig);
  int st;
  while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR) {}
  d->pid = 0;
}

void kitd_test_dnsmasq_kill(kitd_test_dnsmasq *d) { reap(d, SIGKILL); }

int kitd_test_dnsmasq_restart(kitd_test_dnsmasq *d, const char *const *args) {
  reap(d, SIGTERM);
  for (int i = 0; i < 20; i++) { /* the port may linger a moment */
    if (spawn(d, args) == 0) return 0;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return -1;
}

int kitd_test_dnsmasq_set_hosts(kitd_test_dnsmasq *d, const char *content) {
  char *tmp = kt_asprintf("%s.tmp", d->hosts);
  if (!tmp) return -1;
  FILE *f = fopen(tmp, "w");
  int rc = -1;
  if (f) {
    bool ok = fputs(content, f) >= 0;
    if (fclose(f) == 0 && ok && rename(tmp, d->hosts) == 0) rc = 0;
  }
  free(tmp);
  if (rc == 0 && d->pid > 0 && kill(d->pid, SIGHUP) != 0) rc = -1;
  return rc;
}

long kitd_test_dnsmasq_count(const kitd_test_dnsmasq *d, const char *needle) {
  FILE *f = fopen(d->log, "r");
  if (!f) return 0;
  long n = 0;
  char *line = NULL;
  size_t cap = 0;
  while (getline(&line, &cap, f) >= 0)
    if (strstr(line, needle)) n++;
  free(line);
  fclose(f);
  return n;
}

void kitd_test_dnsmasq_free(kitd_test_dnsmasq *d) {
  reap(d, SIGKILL);
  if (d->dir) {
    unlink(d->log);
    unlink(d->hosts);
    char *tmp = kt_asprintf("%s.tmp", d->hosts);
    if (tmp) unlink(tmp);
    free(tmp);
    rmdir(d->dir);
  }
  free(d->dir);
  free(d->log);
  free(d->hosts);
  free(d->addr);
  memset(d, 0, sizeof *d);
}
