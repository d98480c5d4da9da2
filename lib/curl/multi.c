/* SPDX-License-Identifier: MIT */
/* A multi handle driven by an event loop: libcurl's socket interface
 * (curl_multi_socket_action), for the asynchronous calls of kitd_http.
 *
 * Why the socket interface and not curl_multi_perform on every wake-up:
 * with hundreds of transfers in flight, perform walks all of them, and
 * curl_multi_wait would need a poll set of its own; socket_action touches
 * only the transfers of the socket that is ready, and the loop's one epoll
 * set watches libcurl's sockets beside its own. */
#include <stdlib.h>

#include "core/alloc.h"
#include "curl/kitd_curl.h"
#include "kitd/error.h"

struct kitd__curl_multi {
  CURLM *multi;
  kitd__curl_loop_ops ops;
};

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp) {
  (void)easy, (void)sockp;
  kitd__curl_multi *m = arg;
  return m->ops.watch(m->ops.arg, fd, what) ? -1 : 0;
}

static int on_timer(CURLM *multi, long ms, void *arg) {
  (void)multi;
  kitd__curl_multi *m = arg;
  m->ops.timer(m->ops.arg, ms);
  return 0;
}

int kitd__curl_multi_new(const kitd__curl_loop_ops *ops, kitd__curl_multi **out) {
  kitd__curl_multi *m = kitd__calloc(1, sizeof *m);
  if (!m) return KITD_ENOMEM;
  int rc = kitd__curl_acquire();
  if (rc) {
    free(m);
    return rc;
  }
  m->ops = *ops;
  if (!(m->multi = curl_multi_init())) {
    kitd__curl_release();
    free(m);
    return KITD_ENOMEM;
  }
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  *out = m;
  return 0;
}

void kitd__curl_multi_free(kitd__curl_multi *m) {
  if (!m) return;
  curl_multi_cleanup(m->multi);
  kitd__curl_release();
  free(m);
}

int kitd__curl_multi_add(kitd__curl_multi *m, struct kitd__curl_xfer *x) {
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x);
  CURLMcode mc = curl_multi_add_handle(m->multi, x->easy);
  if (mc == CURLM_OK) return 0;
  return mc == CURLM_OUT_OF_MEMORY ? KITD_ENOMEM : KITD_EINTERNAL;
}

void kitd__curl_multi_remove(kitd__curl_multi *m, struct kitd__curl_xfer *x) {
  curl_multi_remove_handle(m->multi, x->easy);
}

void kitd__curl_multi_action(kitd__curl_multi *m, curl_socket_t fd, int events) {
  int running = 0;
  curl_multi_socket_action(m->multi, fd, events, &running);
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode cc = msg->data.result;
    void *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    curl_multi_remove_handle(m->multi, easy);
    struct kitd__curl_xfer *x = priv;
    if (x) x->done(x, cc);
  }
}
