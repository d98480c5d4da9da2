/* SPDX-License-Identifier: MIT */
/* The bound on upstream calls in flight (see callq.h): a count and a FIFO
 * under one mutex. */
#include "lorem/callq.h"

#include <pthread.h>
#include <stdlib.h>

struct lorem_callq {
  pthread_mutex_t mu;
  long max, running;
  lorem_callq_item *head, *tail;
};

lorem_callq *lorem_callq_new(long max) {
  if (max < 1) return NULL;
  lorem_callq *q = calloc(1, sizeof *q);
  if (!q) return NULL;
  pthread_mutex_init(&q->mu, NULL);
  q->max = max;
  return q;
}

/* The next waiting item, or NULL after giving back the slot. Under mu. */
static lorem_callq_item *next_or_release(lorem_callq *q) {
  lorem_callq_item *it = q->head;
  if (!it) {
    q->running--;
    return NULL;
  }
  q->head = it->next;
  if (!q->head) q->tail = NULL;
  return it;
}

/* Holding a slot: start items until one starts or none waits. */
static void run(lorem_callq *q, lorem_callq_item *it) {
  while (it) {
    int rc = it->start(it);
    if (rc == 0) return;
    it->end(it, rc); /* answered: the slot goes to the next */
    pthread_mutex_lock(&q->mu);
    it = next_or_release(q);
    pthread_mutex_unlock(&q->mu);
  }
}

void lorem_callq_submit(lorem_callq *q, lorem_callq_item *it) {
  it->next = NULL;
  it->q = q;
  pthread_mutex_lock(&q->mu);
  if (q->running < q->max) {
    q->running++;
    pthread_mutex_unlock(&q->mu);
    run(q, it);
    return;
  }
  if (q->tail) q->tail->next = it;
  else q->head = it;
  q->tail = it;
  pthread_mutex_unlock(&q->mu);
}

void lorem_callq_call_done(void *item, int rc) {
  lorem_callq_item *it = item;
  lorem_callq *q = it->q;
  it->end(it, rc); /* may free it */
  pthread_mutex_lock(&q->mu);
  it = next_or_release(q);
  pthread_mutex_unlock(&q->mu);
  run(q, it);
}

void lorem_callq_free(lorem_callq *q) {
  if (!q) return;
  pthread_mutex_destroy(&q->mu);
  free(q);
}
