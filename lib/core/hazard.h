/* SPDX-License-Identifier: MIT */
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
 * is as long as the largest number of threads that ever picked at once.
 * Which slots are busy is a thread-local bitmask: only the owner touches it.
 * A thread holding all KITD_PICK_FAST slots (or one that could not get a
 * record) falls back to a refcount on the snapshot (see balancer.c). */
#ifndef KITD_CORE_HAZARD_H
#define KITD_CORE_HAZARD_H

#include <stdatomic.h>
#include <stddef.h>

/* Slots per thread: how many picks a thread may hold on the fast path
 * (balancer.h exports the same number as KITD_PICK_FAST). */
#define KITD__HP_SLOTS 8
#define KITD__HP_FULL ((1u << KITD__HP_SLOTS) - 1)

/* 128-byte aligned: the slots are written on every pick, so two threads'
 * records must not share a cache line (nor an adjacent-line prefetch pair). */
struct kitd__hp_rec {
  _Alignas(128) _Atomic(void *) slot[KITD__HP_SLOTS];
  struct kitd__hp_rec *next; /* in the global list; set before publication */
  atomic_int active;         /* owned by a live thread */
  /* The record's place in the order of making (0, 1, 2...): a small number
   * that no two live threads share, for state kept per thread (p2c's
   * in-flight lanes, lib/sd/endpointer_impl.h). */
  unsigned index;
};

/* The calling thread's record (NULL before its first pick) and which of its
 * slots are busy. */
extern __thread struct kitd__hp_rec *kitd__hp_tls __attribute__((tls_model("initial-exec")));
extern __thread unsigned kitd__hp_used __attribute__((tls_model("initial-exec")));

/* Get (or make) the calling thread's record. NULL on allocation failure. */
struct kitd__hp_rec *kitd__hp_self_slow(void);

/* A free slot of the calling thread, marked busy; -1 if there is none (all
 * busy, or no record could be made). */
static inline int kitd__hp_acquire(void) {
  unsigned used = kitd__hp_used;
  if (__builtin_expect(kitd__hp_tls == NULL, 0) && kitd__hp_self_slow() == NULL) return -1;
  if (__builtin_expect(used == KITD__HP_FULL, 0)) return -1;
  int s = __builtin_ctz(~used);
  kitd__hp_used = used | (1u << s);
  return s;
}

/* 1 once kitd__hp_init() registered the process for expedited
 * membarrier: readers then order "publish slot, re-read pointer" with a
 * compiler fence only, and the reclaimer pays a membarrier() instead (an
 * asymmetric fence, as folly's hazptr does). The seq_cst store it replaces
 * is an xchg, about 2 ns of a 3 ns slot protocol on our machines. 0 (no
 * membarrier, or a TSan build, which cannot see the syscall's ordering):
 * readers use the seq_cst store. Set before any endpointer exists and
 * never cleared, so every reader and reclaimer of an endpointer agrees. */
extern int kitd__hp_asym;

/* Register for membarrier (once per process); called by kitd_endpointer_new
 * before any pick or reclaim can involve the new endpointer. */
void kitd__hp_init(void);

/* Protect the pointer currently in *src in slot `slot`; returns it. */
static inline void *kitd__hp_protect(int slot, void *_Atomic *src) {
  struct kitd__hp_rec *r = kitd__hp_tls;
  void *p = atomic_load_explicit(src, memory_order_acquire);
  for (;;) {
    if (__builtin_expect(kitd__hp_asym, 1)) {
      atomic_store_explicit(&r->slot[slot], p, memory_order_relaxed);
      atomic_signal_fence(memory_order_seq_cst); /* paired with kitd__hp_scan_begin */
    } else {
      atomic_store_explicit(&r->slot[slot], p, memory_order_seq_cst);
    }
    void *again = atomic_load_explicit(src, memory_order_seq_cst);
    if (__builtin_expect(again == p, 1)) return p;
    p = again;
  }
}

/* Clear the slot and give it back. */
static inline void kitd__hp_release(int slot) {
  atomic_store_explicit(&kitd__hp_tls->slot[slot], NULL, memory_order_release);
  kitd__hp_used &= ~(1u << slot);
}

/* Before a scan: the reclaimer's half of the fence pair (after it stored
 * the new pointer). Makes every slot a reader published before its
 * re-read visible to kitd__hp_in_use(). Returns 0, or -1 when the barrier
 * could not be made (membarrier failed after registering): the caller must
 * then free nothing this time, and try again at its next reclaim. */
int kitd__hp_scan_begin(void);

/* Is `p` published in any slot of any thread? (reclaimers only, after
 * kitd__hp_scan_begin) */
int kitd__hp_in_use(const void *p);

#endif
