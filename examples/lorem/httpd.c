/* SPDX-License-Identifier: MIT */
/* Shared HTTP-server plumbing for lorem-server and lorem-gateway. */
#include "lorem/httpd.h"

#include <errno.h>
#include <netdb.h>
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
    if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
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

struct MHD_Daemon *lorem_httpd_start(int fd, int threads, MHD_AccessHandlerCallback h, void *arg,
                                     MHD_RequestCompletedCallback done) {
  return lorem_httpd_start_uri(fd, threads, h, arg, done, NULL);
}

/* With a URI callback its result becomes the request's first state. */
#define URI_OPT(u) MHD_OPTION_URI_LOG_CALLBACK, (u), arg

struct MHD_Daemon *lorem_httpd_start_uri(int fd, int threads, MHD_AccessHandlerCallback h,
                                         void *arg, MHD_RequestCompletedCallback done,
                                         lorem_uri_fn uri) {
  /* MHD_OPTION_URI_LOG_CALLBACK with a NULL function is the default */
  if (threads < 0) /* a thread per connection: for handlers that block */
    return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                MHD_USE_POLL | MHD_USE_TURBO | MHD_USE_ITC,
                            0, NULL, NULL, h, arg, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
                            MHD_OPTION_NOTIFY_COMPLETED, done, arg, URI_OPT(uri), MHD_OPTION_END);
  if (threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 2;
  }
  /* MHD_USE_ITC: a stopping server can quiesce the daemon (stop accepting)
   * while its threads finish the requests in flight. */
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ITC;
  return MHD_start_daemon(flags, 0, NULL, NULL, h, arg, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT,
                          (unsigned)4096, MHD_OPTION_NOTIFY_COMPLETED, done, arg, URI_OPT(uri),
                          MHD_OPTION_END);
}

enum MHD_Result lorem_reply(struct MHD_Connection *c, unsigned status, const char *json, size_t len,
                            const char *allow, const char *upstream) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
  if (upstream) MHD_add_response_header(r, "X-Upstream", upstream);
  enum MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

enum MHD_Result lorem_reply_error(struct MHD_Connection *c, unsigned status, const char *msg,
                                  const char *allow) {
  char body[600];
  int n = snprintf(body, sizeof body, "{\"error\":");
  int m = lorem_json_string(body + n, sizeof body - (size_t)n - 2, msg);
  if (m < 0) m = lorem_json_string(body + n, sizeof body - (size_t)n - 2, "error");
  n += m;
  body[n++] = '}';
  body[n] = '\0';
  return lorem_reply(c, status, body, (size_t)n, allow, NULL);
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
