/* SPDX-License-Identifier: MIT */
/* Per-thread hazard slots (see hazard.h). */
#include "core/hazard.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/alloc.h"
#include "kitd/error.h"

__thread struct kitd__hp_rec *kitd__hp_tls __attribute__((tls_model("initial-exec")));
__thread unsigned kitd__hp_used __attribute__((tls_model("initial-exec")));

int kitd__hp_asym;

static _Atomic(struct kitd__hp_rec *) hp_head;
static pthread_once_t asym_once = PTHREAD_ONCE_INIT;

#if defined(__SANITIZE_THREAD__)
#define KITD__HP_NO_ASYM 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KITD__HP_NO_ASYM 1
#endif
#endif

static void asym_init(void) {
#ifndef KITD__HP_NO_ASYM
  long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0);
  if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
      syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0) == 0)
    kitd__hp_asym = 1;
#endif
}

void kitd__hp_init(void) { pthread_once(&asym_once, asym_init); }

int kitd__hp_scan_begin(void) {
  if (kitd__hp_asym) {
    /* Every thread of the process now runs a full barrier (or is not
     * running): a slot stored before its owner's re-read is visible. If
     * the kernel refuses, no slot can be trusted: free nothing now. */
    return syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) == 0 ? 0 : -1;
  }
  atomic_thread_fence(memory_order_seq_cst);
  return 0;
}
static pthread_key_t hp_key;
static pthread_once_t hp_once = PTHREAD_ONCE_INIT;
static int hp_key_ok;

/* At thread exit the record becomes free for the next thread; its slots are
 * all clear, since every pick was handed back. */
static void hp_thread_exit(void *arg) {
  struct kitd__hp_rec *r = arg;
  kitd__hp_tls = NULL;
  kitd__hp_used = 0;
  atomic_store_explicit(&r->active, 0, memory_order_release);
}

static void hp_init_key(void) { hp_key_ok = pthread_key_create(&hp_key, hp_thread_exit) == 0; }

static struct kitd__hp_rec *hp_new_rec(void) {
  struct kitd__hp_rec *r = kitd__aligned_alloc(_Alignof(struct kitd__hp_rec), sizeof *r);
  if (!r) return NULL;
  for (int i = 0; i < KITD__HP_SLOTS; i++) atomic_init(&r->slot[i], NULL);
  atomic_init(&r->active, 1);
  struct kitd__hp_rec *head = atomic_load_explicit(&hp_head, memory_order_acquire);
  do {
    r->next = head;
    r->index = head ? head->index + 1 : 0;
  } while (!atomic_compare_exchange_weak_explicit(&hp_head, &head, r, memory_order_acq_rel,
                                                  memory_order_acquire));
  return r;
}

struct kitd__hp_rec *kitd__hp_self_slow(void) {
  if (kitd__hp_tls) return kitd__hp_tls;
  pthread_once(&hp_once, hp_init_key);
  if (!hp_key_ok) return NULL;
  struct kitd__hp_rec *r = NULL;
  /* Reuse a record a finished thread gave back. */
  for (struct kitd__hp_rec *c = atomic_load_explicit(&hp_head, memory_order_acquire); c;
       c = c->next) {
    int zero = 0;
    if (atomic_load_explicit(&c->active, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong_explicit(&c->active, &zero, 1, memory_order_acq_rel,
                                                memory_order_relaxed)) {
      r = c;
      break;
    }
  }
  if (!r) r = hp_new_rec();
  if (!r) return NULL;
  if (pthread_setspecific(hp_key, r) != 0) {
    atomic_store_explicit(&r->active, 0, memory_order_release);
    return NULL;
  }
  kitd__hp_used = 0;
  kitd__hp_tls = r;
  return r;
}

int kitd__hp_in_use(const void *p) {
  for (struct kitd__hp_rec *c = atomic_load_explicit(&hp_head, memory_order_acquire); c;
       c = c->next)
    for (int i = 0; i < KITD__HP_SLOTS; i++)
      if (atomic_load_explicit(&c->slot[i], memory_order_seq_cst) == p) return 1;
  return 0;
}
