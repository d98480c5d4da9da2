/* SPDX-License-Identifier: MIT */
/* A load and hostile-client generator for the example HTTP servers, for
 * the tests (loopback only). One mode per run:
 *
 *   http_load halfopen PORT N FROM WITHIN_MS
 *       N connections from address FROM send an unfinished request head
 *       and wait; meanwhile a probe thread sends GET /health from
 *       127.0.0.1 every 20 ms and needs a 200 within 100 ms each. Every
 *       half-open connection must be closed by the server within WITHIN_MS
 *       of its first byte.
 *   http_load keepalive PORT N SECONDS PID PATH BODY
 *       N kept-alive connections each POST BODY to PATH in a loop for
 *       SECONDS; counts answers, non-200s and socket errors, and samples
 *       the thread count of process PID (/proc/PID/task).
 *   http_load churn PORT N
 *       N connections opened and closed as fast as possible (a quarter
 *       after a full request, a quarter after half a head), closed with a
 *       reset so no TIME_WAIT piles up; from four threads.
 *   http_load peraddr PORT N FROM OK
 *       N connections from FROM, each sends GET /health and waits; exactly
 *       OK of them must get 200 (the others a refusal).
 *   http_load raw PORT
 *       send stdin as is, print what comes back until the server closes
 *       (5 s at most).
 * Exit status 0 when every check of the mode held, 1 otherwise. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static int g_port;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void raise_nofile(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

/* A blocking connection to 127.0.0.1:g_port from `from` (NULL: any). */
static int dial(const char *from) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (from) {
    struct sockaddr_in b = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &b.sin_addr);
    if (bind(fd, (struct sockaddr *)&b, sizeof b)) {
      close(fd);
      return -1;
    }
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return -1;
    s += w, n -= (size_t)w;
  }
  return 0;
}

/* Is buf (n bytes) a complete answer? Returns its length, or 0. */
static size_t answer_len(const char *buf, size_t n, int *status) {
  const char *e = memmem(buf, n, "\r\n\r\n", 4);
  if (!e) return 0;
  size_t hl = (size_t)(e - buf) + 4;
  if (n < 12 || memcmp(buf, "HTTP/1.", 7)) {
    *status = -1;
    return hl;
  }
  *status = atoi(buf + 9);
  size_t cl = 0;
  for (const char *p = buf; p < e; p++) {
    if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15)) {
      cl = (size_t)strtoul(p + 15, NULL, 10);
      break;
    }
  }
  return n >= hl + cl ? hl + cl : 0;
}

/* --- halfopen --- */

static atomic_int g_probe_stop;
static int g_probe_fail, g_probes;
static int64_t g_probe_worst;

static void *probe(void *arg) {
  (void)arg;
  static const char rq[] = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  while (!atomic_load(&g_probe_stop)) {
    int64_t t0 = now_ms();
    int fd = dial("127.0.0.1");
    int st = 0;
    if (fd >= 0) {
      struct timeval tv = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      size_t n = 0;
      if (send_all(fd, rq, sizeof rq - 1) == 0) {
        for (;;) {
          ssize_t r = recv(fd, buf + n, sizeof buf - n, 0);
          if (r <= 0) break;
          n += (size_t)r;
          if (answer_len(buf, n, &st)) break;
        }
      }
      close(fd);
    }
    int64_t dt = now_ms() - t0;
    g_probes++;
    if (dt > g_probe_worst) g_probe_worst = dt;
    if (st != 200 || dt > 100) {
      g_probe_fail++;
      fprintf(stderr, "probe: status %d after %lld ms\n", st, (long long)dt);
    }
    usleep(20000);
  }
  return NULL;
}

static int halfopen(int n, const char *from, int64_t within) {
  int *fds = calloc((size_t)n, sizeof *fds);
  int64_t *sent = calloc((size_t)n, sizeof *sent), *closed = calloc((size_t)n, sizeof *closed);
  pthread_t th;
  pthread_create(&th, NULL, probe, NULL);
  int ep = epoll_create1(0), open_n = 0, refused = 0;
  static const char part[] = "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ";
  for (int i = 0; i < n; i++) {
    fds[i] = dial(from);
    if (fds[i] < 0 || send_all(fds[i], part, sizeof part - 1)) {
      fprintf(stderr, "halfopen: connection %d: %s\n", i, strerror(errno));
      refused++;
      if (fds[i] >= 0) close(fds[i]);
      fds[i] = -1;
      continue;
    }
    sent[i] = now_ms();
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
    open_n++;
  }
  int64_t t_open = now_ms();
  printf("halfopen: %d connections from %s open (%d failed)\n", open_n, from, refused);
  int left = open_n, late = 0;
  int64_t worst = 0, give_up = t_open + within + 5000;
  char sink[4096];
  while (left > 0 && now_ms() < give_up) {
    struct epoll_event ev[256];
    int k = epoll_wait(ep, ev, 256, 100);
    for (int j = 0; j < k; j++) {
      int i = (int)ev[j].data.u32;
      ssize_t r = recv(fds[i], sink, sizeof sink, MSG_DONTWAIT);
      if (r > 0 && !(ev[j].events & (EPOLLRDHUP | EPOLLHUP))) continue; /* the 408 first */
      if (r < 0 && errno == EAGAIN) continue;
      closed[i] = now_ms();
      int64_t dt = closed[i] - sent[i];
      if (dt > worst) worst = dt;
      if (dt > within) late++;
      epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
      close(fds[i]);
      fds[i] = -1;
      left--;
    }
  }
  atomic_store(&g_probe_stop, 1);
  pthread_join(th, NULL);
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
  close(ep);
  printf("halfopen: %d still open, %d closed late, slowest close %lld ms after the first byte "
         "(limit %lld)\n",
         left, late, (long long)worst, (long long)within);
  printf("halfopen: probes %d, failed %d, slowest %lld ms\n", g_probes, g_probe_fail,
         (long long)g_probe_worst);
  free(fds), free(sent), free(closed);
  return left || late || g_probe_fail || refused || g_probes == 0 ? 1 : 0;
}

/* --- keepalive --- */

static int threads_of(int pid) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/task", pid);
  DIR *d = opendir(p);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

struct kconn {
  int fd;
  size_t n;
  char buf[8192];
};

static int keepalive(int n, int secs, int pid, const char *path, const char *body) {
  char rq[1024];
  int rl = snprintf(rq, sizeof rq,
                    "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n%s",
                    path, strlen(body), body);
  struct kconn *c = calloc((size_t)n, sizeof *c);
  int ep = epoll_create1(0);
  long errors = 0, non200 = 0, answers = 0;
  int max_threads = threads_of(pid);
  for (int i = 0; i < n; i++) {
    c[i].fd = dial(NULL);
    if (c[i].fd < 0 || send_all(c[i].fd, rq, (size_t)rl)) {
      fprintf(stderr, "keepalive: connection %d: %s\n", i, strerror(errno));
      errors++;
      continue;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &e);
  }
  int64_t end = now_ms() + secs * 1000LL, next_sample = 0;
  int live = n - (int)errors;
  while (now_ms() < end && live > 0) {
    struct epoll_event ev[256];
    int k = epoll_wait(ep, ev, 256, 50);
    for (int j = 0; j < k; j++) {
      struct kconn *q = &c[ev[j].data.u32];
      ssize_t r = recv(q->fd, q->buf + q->n, sizeof q->buf - q->n, 0);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        fprintf(stderr, "keepalive: %s\n", r ? strerror(errno) : "closed by the server");
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, q->fd, NULL);
        close(q->fd);
        q->fd = -1;
        live--;
        continue;
      }
      q->n += (size_t)r;
      int st;
      size_t al = answer_len(q->buf, q->n, &st);
      if (!al) continue;
      answers++;
      if (st != 200) non200++;
      memmove(q->buf, q->buf + al, q->n - al);
      q->n -= al;
      if (send_all(q->fd, rq, (size_t)rl)) errors++;
    }
    if (now_ms() >= next_sample) {
      int t = threads_of(pid);
      if (t > max_threads) max_threads = t;
      next_sample = now_ms() + 100;
    }
  }
  for (int i = 0; i < n; i++)
    if (c[i].fd >= 0) close(c[i].fd);
  close(ep);
  free(c);
  printf("keepalive: %d connections, %ld answers in %d s, %ld not 200, %ld socket errors, "
         "threads at most %d\n",
         n, answers, secs, non200, errors, max_threads);
  return errors || non200 || answers < n ? 1 : 0;
}

/* --- churn --- */

static atomic_long g_churn_next, g_churn_fail;
static long g_churn_n;

static void *churner(void *arg) {
  (void)arg;
  static const char full[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
  static const char half[] = "GET /health HTT";
  long i;
  while ((i = atomic_fetch_add(&g_churn_next, 1)) < g_churn_n) {
    int fd = dial(NULL);
    if (fd < 0) {
      atomic_fetch_add(&g_churn_fail, 1);
      continue;
    }
    if (i % 4 == 0) send_all(fd, full, sizeof full - 1);
    else if (i % 4 == 1) send_all(fd, half, sizeof half - 1);
    struct linger lg = {1, 0}; /* a reset: no TIME_WAIT on our side */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
  }
  return NULL;
}

static int churn(long n) {
  g_churn_n = n;
  pthread_t th[4];
  int64_t t0 = now_ms();
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, churner, NULL);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  int64_t dt = now_ms() - t0;
  printf("churn: %ld connections in %lld ms (%ld failed to connect)\n", n, (long long)dt,
         (long)atomic_load(&g_churn_fail));
  return atomic_load(&g_churn_fail) > n / 100 ? 1 : 0;
}

/* --- peraddr --- */

/* N connections from FROM, each sends GET /health; count the 200s. */
static int peraddr(int n, const char *from, int want_ok) {
  static const char rq[] = "GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
  int *fds = calloc((size_t)n, sizeof *fds), ok = 0, refused = 0;
  for (int i = 0; i < n; i++) {
    fds[i] = dial(from);
    if (fds[i] >= 0) send_all(fds[i], rq, sizeof rq - 1);
  }
  for (int i = 0; i < n; i++) {
    if (fds[i] < 0) {
      refused++;
      continue;
    }
    struct timeval tv = {2, 0};
    setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    size_t k = 0;
    int st = 0;
    for (;;) {
      ssize_t r = recv(fds[i], buf + k, sizeof buf - k, 0);
      if (r <= 0) break;
      k += (size_t)r;
      if (answer_len(buf, k, &st)) break;
    }
    if (st == 200) ok++;
    else refused++;
  }
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
  free(fds);
  printf("peraddr: %d connections from %s: %d answered 200, %d refused (want %d answered)\n", n,
         from, ok, refused, want_ok);
  return ok == want_ok ? 0 : 1;
}

/* --- raw --- */

static int raw(void) {
  static char in[1 << 20];
  size_t n = fread(in, 1, sizeof in, stdin);
  int fd = dial(NULL);
  if (fd < 0) return 1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  send_all(fd, in, n); /* the server may close before all of it is sent */
  char buf[4096];
  ssize_t r;
  while ((r = recv(fd, buf, sizeof buf, 0)) > 0) fwrite(buf, 1, (size_t)r, stdout);
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: http_load halfopen|keepalive|churn|raw PORT ...\n");
    return 2;
  }
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);
  g_port = atoi(argv[2]);
  const char *m = argv[1];
  if (!strcmp(m, "halfopen") && argc == 6) return halfopen(atoi(argv[3]), argv[4], atoll(argv[5]));
  if (!strcmp(m, "keepalive") && argc == 8)
    return keepalive(atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6], argv[7]);
  if (!strcmp(m, "churn") && argc == 4) return churn(atol(argv[3]));
  if (!strcmp(m, "raw") && argc == 3) return raw();
  if (!strcmp(m, "peraddr") && argc == 6) return peraddr(atoi(argv[3]), argv[4], atoi(argv[5]));
  fprintf(stderr, "http_load: bad arguments\n");
  return 2;
}
