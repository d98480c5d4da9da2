/* SPDX-License-Identifier: MIT */
/* Per-thread counter slots (see counters.h). */
#include "core/counters.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kitd/error.h"

__thread struct kitd__ctr_tls kitd__ctr __attribute__((tls_model("initial-exec")));

/* One thread's slots, in the list readers walk. */
struct shard {
  _Atomic uint64_t *slots;
  uint32_t cap;
  struct shard *prev, *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* guards all below */
static struct shard *shards;
static uint64_t *gone;      /* what exited threads counted, per slot */
static unsigned char *used; /* 1: the slot belongs to a live block */
static uint32_t cap;        /* room in gone[] and used[] */
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_ok;

/* At thread exit: fold the thread's counts into gone[] and drop its slots. */
static void thread_exit(void *arg) {
  struct shard *s = arg;
  pthread_mutex_lock(&mu);
  for (uint32_t i = 0; i < s->cap && i < cap; i++)
    gone[i] += atomic_load_explicit(&s->slots[i], memory_order_relaxed);
  if (s->prev) s->prev->next = s->next;
  else shards = s->next;
  if (s->next) s->next->prev = s->prev;
  pthread_mutex_unlock(&mu);
  kitd__ctr.slots = NULL;
  kitd__ctr.cap = 0;
  free(s->slots);
  free(s);
}

static void key_init(void) { key_ok = pthread_key_create(&key, thread_exit) == 0; }

void kitd__ctr_add_slow(uint32_t id, uint64_t n) {
  pthread_once(&key_once, key_init);
  if (!key_ok) return;
  pthread_mutex_lock(&mu);
  struct shard *s = kitd__ctr.slots ? pthread_getspecific(key) : NULL;
  int fresh = s == NULL;
  if (fresh) {
    s = kitd__calloc(1, sizeof *s);
    if (!s || pthread_setspecific(key, s) != 0) {
      free(s);
      pthread_mutex_unlock(&mu);
      return; /* no memory: this count is lost, the program goes on */
    }
  }
  /* Room for every slot handed out so far, so that growing is rare. */
  uint32_t want = (cap > id ? cap : id + 1 + 63) & ~(uint32_t)63;
  _Atomic uint64_t *v = kitd__malloc(want * sizeof *v);
  if (v) {
    uint32_t i = 0;
    for (; i < s->cap; i++)
      atomic_init(&v[i], atomic_load_explicit(&s->slots[i], memory_order_relaxed));
    for (; i < want; i++) atomic_init(&v[i], 0);
    free(s->slots);
    s->slots = v;
    s->cap = want;
  }
  if (fresh) {
    s->next = shards;
    if (shards) shards->prev = s;
    shards = s;
  }
  pthread_mutex_unlock(&mu);
  kitd__ctr.slots = s->slots;
  kitd__ctr.cap = s->cap;
  if (id < s->cap) kitd__ctr_add(id, n);
}

int kitd__ctr_alloc(uint32_t n, uint32_t *base) {
  pthread_mutex_lock(&mu);
  /* First fit: blocks are made when a pipeline or an instance appears,
   * never on the request path. */
  uint32_t run = 0, at = 0;
  for (uint32_t i = 0; i < cap && run < n; i++) {
    if (used[i]) run = 0;
    else if (run++ == 0) at = i;
  }
  if (run < n) {
    at = cap - run;
    uint32_t ncap = cap ? cap : 256;
    while (ncap < at + n) ncap *= 2;
    uint64_t *g = kitd__realloc(gone, ncap * sizeof *g);
    if (g) gone = g;
    unsigned char *u = g ? kitd__realloc(used, ncap) : NULL;
    if (!u) {
      pthread_mutex_unlock(&mu);
      return KITD_ENOMEM;
    }
    used = u;
    memset(gone + cap, 0, (ncap - cap) * sizeof *gone);
    memset(used + cap, 0, ncap - cap);
    cap = ncap;
  }
  memset(used + at, 1, n);
  pthread_mutex_unlock(&mu);
  *base = at;
  return 0;
}

/* Under mu: zero a block in every thread and mark it free. */
static void release_locked(uint32_t base, uint32_t n) {
  for (struct shard *s = shards; s; s = s->next)
    for (uint32_t i = base; i < base + n && i < s->cap; i++)
      atomic_store_explicit(&s->slots[i], 0, memory_order_relaxed);
  for (uint32_t i = base; i < base + n && i < cap; i++) gone[i] = 0, used[i] = 0;
}

void kitd__ctr_fold(uint32_t from, uint32_t n, const uint32_t *to) {
  pthread_mutex_lock(&mu);
  for (uint32_t k = 0; k < n; k++) {
    if (to[k] == UINT32_MAX || to[k] >= cap || from + k >= cap) continue;
    uint64_t v = gone[from + k];
    for (struct shard *s = shards; s; s = s->next)
      if (from + k < s->cap) v += atomic_load_explicit(&s->slots[from + k], memory_order_relaxed);
    gone[to[k]] += v;
  }
  release_locked(from, n);
  pthread_mutex_unlock(&mu);
}

void kitd__ctr_release(uint32_t base, uint32_t n) {
  pthread_mutex_lock(&mu);
  release_locked(base, n);
  pthread_mutex_unlock(&mu);
}

void kitd__ctr_read(uint32_t base, uint32_t n, uint64_t *out) {
  pthread_mutex_lock(&mu);
  for (uint32_t k = 0; k < n; k++) out[k] = base + k < cap ? gone[base + k] : 0;
  for (struct shard *s = shards; s; s = s->next)
    for (uint32_t k = 0; k < n && base + k < s->cap; k++)
      out[k] += atomic_load_explicit(&s->slots[base + k], memory_order_relaxed);
  pthread_mutex_unlock(&mu);
}
