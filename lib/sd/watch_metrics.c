/* SPDX-License-Identifier: MIT */
/* A watch in a metrics registry: the instancer's state, read at walk time
 * (kitd_metrics_watch). */
#include <pthread.h>

#include "core/metrics_impl.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

void kitd__instancer_metrics_read(void *obj,
                                  void (*done)(void *arg, const struct kitd__mwatch_state *st),
                                  void *arg) {
  kitd_instancer *in = obj;
  pthread_mutex_lock(&in->mu);
  struct kitd__mwatch_state st;
  st.err = in->err;
  st.last_err = in->last_err;
  st.detail = in->last_detail ? in->last_detail : "";
  st.last_good_ns = in->last_good_ns;
  st.count = in->count;
  st.answers = in->answers;
  st.errors = in->errors;
  done(arg, &st);
  pthread_mutex_unlock(&in->mu);
}

static void release(void *obj) { kitd_instancer_free(obj); }

int kitd_metrics_watch(kitd_metrics *m, kitd_instancer *in, const char *name) {
  if (!m || !in || !name || !name[0]) return KITD_EINVAL;
  return kitd__metrics_add_watch(m, name, in, kitd__instancer_ref(in), kitd__instancer_metrics_read,
                                 release);
}
