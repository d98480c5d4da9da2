/* SPDX-License-Identifier: MIT */
/* The one perform loop: a multi handle driving one easy handle.
 *
 * Why a multi handle and not curl_easy_perform(): easy_perform cannot be
 * cut short from outside except by a progress callback, which sees a flag
 * only about once a second during an idle long poll and reads the clock on
 * every chunk. Here the loop checks the stop flag and the ctx between
 * waits, and a wakeable wait (curl_multi_poll) ends at once when another
 * thread calls curl_multi_wakeup(). Keeping the multi handle between calls
 * also keeps its connection cache, so keep-alive connections survive. */
#include "curl/kitd_curl.h"
#include "kitd/error.h"

/* Longest wait before the ctx's cancel flag and deadline are read again. */
#define CTX_SLICE_MS 10
/* Longest wait with no ctx: only the flag (which wakes us) can end it. */
#define IDLE_SLICE_MS 1000

static int multi_err(CURLMcode mc) {
  return mc == CURLM_OUT_OF_MEMORY ? KITD_ENOMEM : KITD_EINTERNAL;
}

static int stop_err(const kitd__curl_stop *s) {
  if (s->flag && __atomic_load_n(s->flag, __ATOMIC_ACQUIRE)) return KITD_ESTOPPED;
  return s->ctx ? kitd_ctx_err(s->ctx) : 0;
}

/* How long the next wait may last: libcurl's next timer, capped by the
 * slice and by the ctx's deadline. */
static int wait_ms(CURLM *multi, const kitd__curl_stop *s) {
  long t = -1;
  curl_multi_timeout(multi, &t);
  long ms = s->ctx ? CTX_SLICE_MS : IDLE_SLICE_MS;
  if (s->ctx) {
    int64_t left = kitd_ctx_remaining_ms(s->ctx);
    if (left >= 0 && left < ms) ms = (long)left;
  }
  if (t >= 0 && t < ms) ms = t;
  return (int)ms;
}

/* One round: let libcurl work, then collect the result if it is done.
 * Returns 1 when done (*cc set), 0 to go on, or a KITD_E* code. */
static int step(CURLM *multi, CURL *easy, CURLcode *cc) {
  int running = 0;
  CURLMcode mc = curl_multi_perform(multi, &running);
  if (mc != CURLM_OK) return multi_err(mc);
  int done = 0, left;
  CURLMsg *m;
  while ((m = curl_multi_info_read(multi, &left)) != NULL)
    if (m->msg == CURLMSG_DONE && m->easy_handle == easy) {
      *cc = m->data.result;
      done = 1;
    }
  return done;
}

int kitd__curl_perform(CURLM *multi, CURL *easy, const kitd__curl_stop *stop, CURLcode *cc) {
  static const kitd__curl_stop none = {0};
  const kitd__curl_stop *s = stop ? stop : &none;
  int rc = stop_err(s);
  if (rc) return rc;
  CURLMcode mc = curl_multi_add_handle(multi, easy);
  if (mc != CURLM_OK) return multi_err(mc);
  for (;;) {
    rc = step(multi, easy, cc);
    if (rc) break;
    if ((rc = stop_err(s))) break;
    int ms = wait_ms(multi, s);
    if (ms == 0) continue;
    mc = s->wakeable ? curl_multi_poll(multi, NULL, 0, ms, NULL)
                     : curl_multi_wait(multi, NULL, 0, ms, NULL);
    if (mc != CURLM_OK) {
      rc = multi_err(mc);
      break;
    }
  }
  curl_multi_remove_handle(multi, easy);
  return rc == 1 ? 0 : rc;
}

void kitd__curl_wake(CURLM *multi) {
  if (multi) curl_multi_wakeup(multi);
}
