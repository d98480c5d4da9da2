/* Per-thread hazard slots (see hazard.h). */
#include "sd/hazard.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "kitd/error.h"

__thread struct kitd__hp_rec *kitd__hp_tls __attribute__((tls_model("initial-exec")));

static _Atomic(struct kitd__hp_rec *) hp_head;
static pthread_key_t hp_key;
static pthread_once_t hp_once = PTHREAD_ONCE_INIT;

/* At thread exit the record (and its overflow chain) becomes free for the
 * next thread; its slots are all clear, since every pick was handed back. */
static void hp_thread_exit(void *arg) {
  struct kitd__hp_rec *r = arg;
  for (struct kitd__hp_rec *o = r; o; o = o->overflow) o->used = 0;
  atomic_store_explicit(&r->active, 0, memory_order_release);
}

static void hp_init_key(void) { (void)pthread_key_create(&hp_key, hp_thread_exit); }

static struct kitd__hp_rec *hp_new_rec(void) {
  struct kitd__hp_rec *r = kitd__calloc(1, sizeof *r);
  if (!r) return NULL;
  atomic_store_explicit(&r->active, 1, memory_order_relaxed);
  struct kitd__hp_rec *head = atomic_load_explicit(&hp_head, memory_order_acquire);
  do {
    r->next = head;
  } while (!atomic_compare_exchange_weak_explicit(&hp_head, &head, r, memory_order_acq_rel,
                                                  memory_order_acquire));
  return r;
}

struct kitd__hp_rec *kitd__hp_self_slow(void) {
  if (kitd__hp_tls) return kitd__hp_tls;
  pthread_once(&hp_once, hp_init_key);
  struct kitd__hp_rec *r = NULL;
  /* Reuse a record a finished thread gave back. Overflow records are never
   * top-level owners: they stay active while their primary is. */
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
  kitd__hp_tls = r;
  return r;
}

int kitd__hp_acquire_slow(struct kitd__hp_rec **rec, int *slot) {
  struct kitd__hp_rec *r = kitd__hp_self_slow();
  if (!r) return KITD_ENOMEM;
  /* More than KITD_PICK_FAST picks held at once: walk (or grow) the chain;
   * the pick remembers which record its slot is in. */
  for (;;) {
    if (r->used != KITD__HP_FULL) {
      int s = __builtin_ctz(~r->used);
      r->used |= 1u << s;
      *rec = r;
      *slot = s;
      return 0;
    }
    if (!r->overflow) {
      struct kitd__hp_rec *o = hp_new_rec();
      if (!o) return KITD_ENOMEM;
      r->overflow = o;
    }
    r = r->overflow;
  }
}

int kitd__hp_in_use(const void *p) {
  for (struct kitd__hp_rec *c = atomic_load_explicit(&hp_head, memory_order_acquire); c;
       c = c->next)
    for (int i = 0; i < KITD__HP_SLOTS; i++)
      if (atomic_load_explicit(&c->slot[i], memory_order_seq_cst) == p) return 1;
  return 0;
}
