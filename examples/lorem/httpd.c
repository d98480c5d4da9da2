/* SPDX-License-Identifier: MIT */
/* Shared HTTP-server plumbing for lorem-server and the gateways. */
#include "lorem/httpd.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lorem/flags.h"
#include "lorem/route.h"

int lorem_listen(const char *hostport, int *port_out) {
  char host[256];
  int port;
  if (lorem_split_hostport(hostport, host, sizeof host, &port)) {
    errno = EINVAL;
    return -1;
  }
  char ps[16];
  snprintf(ps, sizeof ps, "%d", port);
  struct addrinfo hints = {0}, *ai;
  hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  if (getaddrinfo(host[0] ? host : NULL, ps, &hints, &ai)) {
    errno = EINVAL;
    return -1;
  }
  int fd = -1;
  for (struct addrinfo *p = ai; p; p = p->ai_next) {
    fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 4096) == 0) break;
    int e = errno;
    close(fd);
    errno = e;
    fd = -1;
  }
  freeaddrinfo(ai);
  if (fd < 0) return -1;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  if (port_out)
    *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

int lorem_http_flags(lorem_flag *f, int n, lorem_http_limits *l, int workers) {
  f[n++] = (lorem_flag){"threads", FLAG_INT, &l->loops,
                        "event-loop threads serving the connections (default 0: one per core)"};
  if (workers)
    f[n++] = (lorem_flag){"workers", FLAG_INT, &l->workers,
                          "-mode pool: worker threads for requests that call upstream; a "
                          "connection waiting for one holds no thread (default 0: two per core)"};
  if (workers)
    f[n++] = (lorem_flag){
        "inline.max", FLAG_DURATION, &l->inline_max_ms,
        "-mode pool: run such a request on the event loop instead, saving the "
        "hand-off to a worker, while the loop has nothing else to do and the last calls "
        "each took at most this (default 5ms; 0: always on a worker)"};
  f[n++] = (lorem_flag){"header.timeout", FLAG_DURATION, &l->header_timeout_ms,
                        "a request's head must arrive within this of its first byte (of the "
                        "accept, for a new connection), its body within as long again; then 408 "
                        "and close (default 10s)"};
  f[n++] = (lorem_flag){"idle.timeout", FLAG_DURATION, &l->idle_timeout_ms,
                        "close a kept-alive connection with no request, or a client that stops "
                        "reading, after this (default 60s)"};
  f[n++] = (lorem_flag){"max.conns", FLAG_INT, &l->max_conns,
                        "open client connections at most, past it 503 and close (default 0: "
                        "RLIMIT_NOFILE less 128; the soft limit is lifted to the hard at start)"};
  f[n++] = (lorem_flag){"max.conns.per.addr", FLAG_INT, &l->max_conns_per_addr,
                        "open connections at most from one client IP address, past it 503 and "
                        "close (default 256)"};
  f[n++] = (lorem_flag){"max.header.bytes", FLAG_INT, &l->max_header_bytes,
                        "longest request head (request line and header fields), past it 431; "
                        "at most 65535 (default 8192)"};
  return n;
}

int lorem_http_limits_check(const lorem_http_limits *l, const char *prog) {
  if (l->header_timeout_ms <= 0 || l->idle_timeout_ms <= 0 || l->max_conns_per_addr < 1 ||
      l->max_header_bytes < 64 || l->max_header_bytes > 65535 || l->max_body_bytes < 0 ||
      l->loops > 1024 || l->workers > 4096 || l->inline_max_ms < 0) {
    fprintf(stderr,
            "%s: -header.timeout and -idle.timeout must be positive, -max.conns.per.addr at "
            "least 1, -max.header.bytes within 64..65535, -max.body and -inline.max not negative\n",
            prog);
    return -1;
  }
  return 0;
}

int lorem_mode_flags(lorem_flag *f, int n, const char **mode, long *inflight) {
  f[n++] = (lorem_flag){"mode", FLAG_STR, mode,
                        "how a request waits for its upstream: pool (a worker thread makes the "
                        "blocking call, or the event loop while calls are fast) or async (the "
                        "event loop starts an asynchronous call and goes on; no thread waits) "
                        "(default " LOREM_MODE_DEFAULT ")"};
  f[n++] = (lorem_flag){"max.inflight", FLAG_INT, inflight,
                        "-mode async: upstream calls at once (each holds an upstream "
                        "connection); more requests wait for a turn, in order, holding no "
                        "thread (default 64)"};
  return n;
}

int lorem_mode_async(const char *mode, long inflight, const char *prog) {
  if (inflight < 1) {
    fprintf(stderr, "%s: -max.inflight must be at least 1\n", prog);
    return -1;
  }
  if (!strcmp(mode, "async")) return 1;
  if (!strcmp(mode, "pool")) return 0;
  fprintf(stderr, "%s: -mode is pool or async, not \"%s\"\n", prog, mode);
  return -1;
}

void lorem_reply(lorem_http_req *rq, int status, const char *json, size_t len, const char *allow,
                 const char *upstream) {
  char h[400];
  size_t n = 0;
  h[0] = '\0';
  if (allow) n += (size_t)snprintf(h + n, sizeof h - n, "Allow: %s\r\n", allow);
  if (upstream && n < sizeof h) { /* an address from a registry: no control bytes, short */
    size_t ul = strlen(upstream);
    int ok = ul < 256;
    for (const char *p = upstream; ok && *p; p++) ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
    if (ok && n + 12 + ul + 3 <= sizeof h) { /* on every gateway answer: no printf */
      memcpy(h + n, "X-Upstream: ", 12);
      memcpy(h + n + 12, upstream, ul);
      memcpy(h + n + 12 + ul, "\r\n", 3);
      n += 12 + ul + 2;
    }
  }
  lorem_http_reply(rq, status, "application/json", json, len, n ? h : NULL);
}

void lorem_reply_error(lorem_http_req *rq, int status, const char *msg, const char *allow) {
  char body[600];
  int n = snprintf(body, sizeof body, "{\"error\":");
  int m = lorem_json_string(body + n, sizeof body - (size_t)n - 2, msg);
  if (m < 0) m = lorem_json_string(body + n, sizeof body - (size_t)n - 2, "error");
  n += m;
  body[n++] = '}';
  body[n] = '\0';
  lorem_reply(rq, status, body, (size_t)n, allow, NULL);
}

void lorem_block_signals(void) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int lorem_wait_signal(long ms) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  for (;;) {
    int sig;
    if (ms < 0) {
      sig = sigwaitinfo(&s, NULL);
    } else {
      struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
      sig = sigtimedwait(&s, NULL, &ts);
    }
    if (sig > 0) return sig;
    if (errno == EAGAIN) return 0;
    if (errno != EINTR) return 0;
  }
}
