/* SPDX-License-Identifier: MIT */
/* libcurl's global state, set up once for all of libkitd.
 *
 * Why a counted reference under a mutex and not pthread_once: the state
 * must also go away again. kitd_global_cleanup() is API ("undo
 * kitd_global_init()"), and a client freed last must leave nothing behind
 * for the leak checks, so the last holder runs curl_global_cleanup(). The
 * mutex makes the first init and the last cleanup safe among libkitd's own
 * threads, which curl_global_init() itself is not before libcurl 7.84.
 * libcurl counts its own init calls too, so an application that also calls
 * curl_global_init() keeps its state when libkitd lets go. */
#include <pthread.h>

#include "curl/kitd_curl.h"
#include "kitd/error.h"
#include "kitd/kitd.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long refs;

int kitd__curl_acquire(void) {
  int rc = 0;
  pthread_mutex_lock(&mu);
  if (refs == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) rc = KITD_EINTERNAL;
  else refs++;
  pthread_mutex_unlock(&mu);
  return rc;
}

void kitd__curl_release(void) {
  pthread_mutex_lock(&mu);
  if (refs > 0 && --refs == 0) curl_global_cleanup();
  pthread_mutex_unlock(&mu);
}

int kitd_global_init(void) { return kitd__curl_acquire(); }

void kitd_global_cleanup(void) { kitd__curl_release(); }
