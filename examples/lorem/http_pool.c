/* SPDX-License-Identifier: MIT */
/* The worker pool (see http_pool.h): one mutex, one condition variable. */
#include "lorem/http_pool.h"

#include <pthread.h>
#include <stdlib.h>

struct lorem_http_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  lorem_http_job *head, *tail;
  int stop;
  int idle; /* workers waiting on cv */
  int n;
  void (*run)(void *arg, lorem_http_job *job);
  void *arg;
  pthread_t th[];
};

static void *worker(void *vp) {
  lorem_http_pool *p = vp;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->head && !p->stop) {
      p->idle++;
      pthread_cond_wait(&p->cv, &p->mu);
      p->idle--;
    }
    if (p->stop) break;
    lorem_http_job *j = p->head;
    p->head = j->next;
    if (!p->head) p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    j->next = NULL;
    p->run(p->arg, j);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

lorem_http_pool *lorem_http_pool_new(int n, void (*run)(void *arg, lorem_http_job *job),
                                     void *arg) {
  if (n < 1) return NULL;
  lorem_http_pool *p = calloc(1, sizeof *p + (size_t)n * sizeof(pthread_t));
  if (!p) return NULL;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->run = run;
  p->arg = arg;
  for (; p->n < n; p->n++)
    if (pthread_create(&p->th[p->n], NULL, worker, p)) break;
  if (p->n == 0) {
    lorem_http_pool_free(p);
    return NULL;
  }
  return p;
}

void lorem_http_pool_push(lorem_http_pool *p, lorem_http_job *job) {
  job->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->tail) p->tail->next = job;
  else p->head = job;
  p->tail = job;
  int wake = p->idle > 0;
  pthread_mutex_unlock(&p->mu);
  /* signalled after the unlock, so the woken worker does not block at once
   * on the mutex still held here; only when a worker waits */
  if (wake) pthread_cond_signal(&p->cv);
}

lorem_http_job *lorem_http_pool_free(lorem_http_pool *p) {
  if (!p) return NULL;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n; i++) pthread_join(p->th[i], NULL);
  lorem_http_job *left = p->head;
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
  return left;
}
