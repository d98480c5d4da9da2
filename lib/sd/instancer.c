/* The instancer base: subscribers, the last good set, the last error. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t kitd__strv_sort_unique(char **v, size_t count) {
  if (count < 2) return count;
  qsort(v, count, sizeof *v, cmp_str);
  size_t o = 1;
  for (size_t i = 1; i < count; i++) {
    if (strcmp(v[i], v[o - 1]) == 0) {
      free(v[i]);
    } else {
      v[o++] = v[i];
    }
  }
  return o;
}

void kitd_strv_free(char **v, size_t count) {
  if (!v) return;
  for (size_t i = 0; i < count; i++) free(v[i]);
  free(v);
}

int kitd__instancer_init(kitd_instancer *in, const struct kitd__instancer_ops *ops) {
  memset(in, 0, sizeof *in);
  in->ops = ops;
  if (pthread_mutex_init(&in->mu, NULL) != 0) return KITD_ENOMEM;
  return 0;
}

/* Deliver the current state to one subscriber; called with in->mu held. */
static void deliver(kitd_instancer *in, const struct kitd__subscriber *s) {
  kitd_event ev;
  ev.err = in->err;
  ev.detail = in->detail ? in->detail : "";
  ev.instances = (const char *const *)in->set;
  ev.count = in->count;
  s->fn(s->arg, &ev);
}

static void deliver_all(kitd_instancer *in) {
  for (size_t i = 0; i < in->nsubs; i++) deliver(in, &in->subs[i]);
}

static int same_set(char **a, size_t na, char **b, size_t nb) {
  if (na != nb) return 0;
  for (size_t i = 0; i < na; i++)
    if (strcmp(a[i], b[i]) != 0) return 0;
  return 1;
}

int kitd__instancer_publish(kitd_instancer *in, char **instances, size_t count) {
  if (count && !instances) return KITD_EINVAL;
  /* Sorting happens outside the lock: subscribers and the state readers
   * never wait for a qsort of a large answer. */
  count = kitd__strv_sort_unique(instances, count);
  pthread_mutex_lock(&in->mu);
  if (in->stopped) {
    pthread_mutex_unlock(&in->mu);
    kitd_strv_free(instances, count);
    return KITD_ESTOPPED;
  }
  int changed = !in->has_state || in->err != 0 ||
                !same_set(in->set, in->count, instances, count);
  if (!changed) {
    pthread_mutex_unlock(&in->mu);
    kitd_strv_free(instances, count);
    return 0;
  }
  kitd_strv_free(in->set, in->count);
  in->set = instances;
  in->count = count;
  in->err = 0;
  free(in->detail);
  in->detail = NULL;
  in->has_state = true;
  deliver_all(in);
  pthread_mutex_unlock(&in->mu);
  return 0;
}

void kitd__instancer_publish_error(kitd_instancer *in, int err, const char *detail) {
  char *d = detail ? kitd__strdup(detail) : NULL;
  pthread_mutex_lock(&in->mu);
  if (in->stopped) {
    pthread_mutex_unlock(&in->mu);
    free(d);
    return;
  }
  /* Keep the last good set on an error: a registry outage or a half-read
   * answer must never empty the pool while the servers are healthy. */
  free(in->detail);
  in->detail = d;
  in->err = err ? err : KITD_EINTERNAL;
  in->has_state = true;
  deliver_all(in);
  pthread_mutex_unlock(&in->mu);
}

int kitd_instancer_subscribe(kitd_instancer *in, kitd_event_fn fn, void *arg) {
  if (!in || !fn) return KITD_EINVAL;
  pthread_mutex_lock(&in->mu);
  int rc = in->stopped ? KITD_ESTOPPED : 0;
  for (size_t i = 0; !rc && i < in->nsubs; i++)
    if (in->subs[i].fn == fn && in->subs[i].arg == arg) rc = KITD_EEXIST;
  if (!rc && in->nsubs == in->capsubs) {
    size_t cap = in->capsubs ? in->capsubs * 2 : 4;
    struct kitd__subscriber *n = kitd__realloc(in->subs, cap * sizeof *n);
    if (!n) {
      rc = KITD_ENOMEM;
    } else {
      in->subs = n;
      in->capsubs = cap;
    }
  }
  if (!rc) {
    struct kitd__subscriber *s = &in->subs[in->nsubs++];
    s->fn = fn;
    s->arg = arg;
    if (in->has_state) deliver(in, s);
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

int kitd_instancer_unsubscribe(kitd_instancer *in, kitd_event_fn fn, void *arg) {
  if (!in || !fn) return KITD_EINVAL;
  int rc = KITD_ENOTFOUND;
  pthread_mutex_lock(&in->mu);
  for (size_t i = 0; i < in->nsubs; i++) {
    if (in->subs[i].fn == fn && in->subs[i].arg == arg) {
      memmove(&in->subs[i], &in->subs[i + 1], (in->nsubs - i - 1) * sizeof *in->subs);
      in->nsubs--;
      rc = 0;
      break;
    }
  }
  pthread_mutex_unlock(&in->mu);
  return rc;
}

int kitd_instancer_state(kitd_instancer *in, char ***instances, size_t *count) {
  if (!in || !instances || !count) return KITD_EINVAL;
  pthread_mutex_lock(&in->mu);
  size_t n = in->count;
  char **v = kitd__calloc(n ? n : 1, sizeof *v);
  int rc = v ? 0 : KITD_ENOMEM;
  for (size_t i = 0; v && i < n; i++) {
    v[i] = kitd__strdup(in->set[i]);
    if (!v[i]) {
      kitd_strv_free(v, i);
      v = NULL;
      rc = KITD_ENOMEM;
    }
  }
  if (!rc) rc = in->has_state ? in->err : KITD_ENOTFOUND;
  pthread_mutex_unlock(&in->mu);
  if (!v) return rc;
  *instances = v;
  *count = n;
  return rc;
}

void kitd_instancer_stop(kitd_instancer *in) {
  if (!in) return;
  pthread_mutex_lock(&in->mu);
  bool was = in->stopped;
  in->stopped = true;
  pthread_mutex_unlock(&in->mu);
  if (!was && in->ops && in->ops->stop) in->ops->stop(in);
}

void kitd_instancer_free(kitd_instancer *in) {
  if (!in) return;
  kitd_instancer_stop(in);
  kitd_strv_free(in->set, in->count);
  free(in->detail);
  free(in->subs);
  pthread_mutex_destroy(&in->mu);
  if (in->ops && in->ops->destroy) in->ops->destroy(in);
}
