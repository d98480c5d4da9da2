/* Internal: per-thread hazard slots, the reclamation scheme of the pick path.
 *
 * A reader publishes the snapshot pointer it is about to use in one of its
 * thread's slots (a seq_cst store), re-reads the shared pointer to be sure
 * the snapshot was not retired meanwhile, and clears the slot when done. A
 * writer that replaced a snapshot frees it only once no slot holds it. This
 * costs a reader about 2 ns and no shared write; a per-pick refcount on a
 * shared cache line costs tens of ns under two threads (docs/threads.md).
 *
 * Records live in one process-wide list that only grows; a thread takes a
 * free record on its first pick and gives it back when it exits, so the list
 * is as long as the largest number of threads that ever picked at once. */
#ifndef KITD_SD_HAZARD_H
#define KITD_SD_HAZARD_H

#include <stdatomic.h>
#include <stddef.h>

#include "kitd/balancer.h"

#define KITD__HP_SLOTS KITD_PICK_FAST
#define KITD__HP_FULL ((1u << KITD__HP_SLOTS) - 1)

struct kitd__hp_rec {
  _Atomic(void *) slot[KITD__HP_SLOTS];
  atomic_int active;               /* owned by a live thread */
  struct kitd__hp_rec *next;       /* in the global list; set before publication */
  struct kitd__hp_rec *overflow;   /* more slots for the same thread, or NULL */
  unsigned used;                   /* bit i: slot i in use (owner thread only) */
};

/* The calling thread's first record; NULL when it has none yet. */
extern __thread struct kitd__hp_rec *kitd__hp_tls __attribute__((tls_model("initial-exec")));

/* Get (or make) the calling thread's record. NULL on allocation failure. */
struct kitd__hp_rec *kitd__hp_self_slow(void);

/* A free slot for the calling thread: *rec (the first record, or one of its
 * overflow records) and the slot index in it, marked used.
 * Returns 0, or KITD_ENOMEM. */
int kitd__hp_acquire_slow(struct kitd__hp_rec **rec, int *slot);

static inline int kitd__hp_acquire(struct kitd__hp_rec **rec, int *slot) {
  struct kitd__hp_rec *r = kitd__hp_tls;
  if (__builtin_expect(r != NULL && r->used != KITD__HP_FULL, 1)) {
    int s = __builtin_ctz(~r->used);
    r->used |= 1u << s;
    *rec = r;
    *slot = s;
    return 0;
  }
  return kitd__hp_acquire_slow(rec, slot);
}

/* Protect the pointer currently in *src: returns it, published in the slot. */
static inline void *kitd__hp_protect(struct kitd__hp_rec *r, int slot, void *_Atomic *src) {
  void *p = atomic_load_explicit(src, memory_order_acquire);
  for (;;) {
    atomic_store_explicit(&r->slot[slot], p, memory_order_seq_cst);
    void *again = atomic_load_explicit(src, memory_order_seq_cst);
    if (again == p) return p;
    p = again;
  }
}

/* Clear the slot and give it back. */
static inline void kitd__hp_release(struct kitd__hp_rec *r, int slot) {
  atomic_store_explicit(&r->slot[slot], NULL, memory_order_release);
  r->used &= ~(1u << slot);
}

/* Is `p` published in any slot of any thread? (writers only) */
int kitd__hp_in_use(const void *p);

#endif
