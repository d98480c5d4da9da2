/* SPDX-License-Identifier: MIT */
/* Per-address connection counts (see http_addr.h): a chained hash table
 * under one mutex, taken once per accept and once per close. */
#include "lorem/http_addr.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096

struct entry {
  struct entry *next;
  lorem_http_addr a;
  long n;
};

struct lorem_http_addrs {
  pthread_mutex_t mu;
  struct entry *b[NBUCKETS];
};

void lorem_http_addr_of(const struct sockaddr_storage *ss, lorem_http_addr *out) {
  memset(out, 0, sizeof *out);
  if (ss->ss_family == AF_INET) {
    out->a[10] = out->a[11] = 0xff;
    memcpy(out->a + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    memcpy(out->a, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
  }
}

static unsigned hash(const lorem_http_addr *a) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (int i = 0; i < 16; i++) h = (h ^ a->a[i]) * 16777619u;
  return h % NBUCKETS;
}

lorem_http_addrs *lorem_http_addrs_new(void) {
  lorem_http_addrs *t = calloc(1, sizeof *t);
  if (t) pthread_mutex_init(&t->mu, NULL);
  return t;
}

void lorem_http_addrs_free(lorem_http_addrs *t) {
  if (!t) return;
  for (int i = 0; i < NBUCKETS; i++)
    for (struct entry *e = t->b[i], *n; e; e = n) {
      n = e->next;
      free(e);
    }
  pthread_mutex_destroy(&t->mu);
  free(t);
}

int lorem_http_addrs_acquire(lorem_http_addrs *t, const lorem_http_addr *a, long limit) {
  unsigned h = hash(a);
  int ok = 0;
  pthread_mutex_lock(&t->mu);
  struct entry *e = t->b[h];
  while (e && memcmp(&e->a, a, sizeof *a)) e = e->next;
  if (e) {
    if (e->n < limit) e->n++, ok = 1;
  } else if (limit > 0 && (e = malloc(sizeof *e))) {
    e->a = *a;
    e->n = 1;
    e->next = t->b[h];
    t->b[h] = e;
    ok = 1;
  }
  pthread_mutex_unlock(&t->mu);
  return ok;
}

void lorem_http_addrs_release(lorem_http_addrs *t, const lorem_http_addr *a) {
  unsigned h = hash(a);
  pthread_mutex_lock(&t->mu);
  for (struct entry **pp = &t->b[h]; *pp; pp = &(*pp)->next) {
    struct entry *e = *pp;
    if (memcmp(&e->a, a, sizeof *a)) continue;
    if (--e->n == 0) {
      *pp = e->next;
      free(e);
    }
    break;
  }
  pthread_mutex_unlock(&t->mu);
}
