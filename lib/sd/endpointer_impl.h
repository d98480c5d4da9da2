/* SPDX-License-Identifier: MIT */
/* Internal: the endpointer's snapshot, read by balancers without a lock. */
#ifndef KITD_SD_ENDPOINTER_IMPL_H
#define KITD_SD_ENDPOINTER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kitd/endpointer.h"
#include "kitd/log.h"

/* What an update removed (an endpoint and its record, or only a record
 * replaced by a newer one of the same address): it is reachable through
 * the snapshots of generations born..died, and released once no picker
 * holds any of them. */
struct kitd__drop {
  kitd_endpoint *ep; /* NULL when only the record was replaced */
  kitd_instance *rec;
  struct kitd__ist *st; /* with ep (NULL when only the record was replaced) */
  uint64_t born, died;
};

/* Calls in flight are counted per thread: in lanes, one per thread that
 * picks (its hazard record's index modulo KITD__IST_LANES: threads share a
 * lane only once more than that many have picked at the same time). A pick
 * adds 1 to its thread's lane (the lane is kept in the pick), done() takes
 * 1 from that same lane, whichever thread runs it: every lane returns to 0
 * once its picks are handed back, and the sum over the lanes is the
 * instance's calls in flight.
 *
 * States are carved from chunks: a link line, KITD__IST_CHUNK - 1 states,
 * then the lanes, each an array of KITD__IST_CHUNK ints (int k counts for
 * the chunk's state k). A lane's counts of several instances share lines
 * that its thread alone writes; two threads' picks write no common line. */
#define KITD__IST_LANES 16
#define KITD__IST_CHUNK 256

/* What the calls on one instance taught the balancers: written from
 * kitd_balancer_done() without a lock, by every balancer of the
 * endpointer. One per instance, made when the instance joins, handed from
 * snapshot to snapshot like its endpoint, and released with it through
 * limbo (no pick holds it then: its lanes are all 0). A cache line of its
 * own, read by every pick and written by done() when it learns something
 * (a failure, a latency sample), never by a plain pick and done. */
struct kitd__ist {
  _Alignas(64) atomic_int fails;    /* consecutive failed calls */
  atomic_int ejections;             /* times ejected (decays on success) */
  atomic_int_least64_t eject_until; /* kitd_now_ns() end of the ejection; 0: none */
  atomic_int_least64_t ewma;        /* peak-EWMA latency, ns; 0: no sample yet */
  atomic_int_least64_t stamp;       /* coarse-clock ns of the last ewma sample */
  int64_t joined;                   /* kitd_now_ns() when the instance joined */
  atomic_int *inflight;             /* its count in lane 0 (set with the chunk) */
  struct kitd__ist *next_free;      /* in the endpointer's pool, when unused */
};

/* The in-flight count of st in lane `lane` (< KITD__IST_LANES). */
static inline atomic_int *kitd__ist_lane(const struct kitd__ist *st, unsigned lane) {
  return st->inflight + (size_t)lane * KITD__IST_CHUNK;
}

/* A smooth weighted order of a snapshot's entries, made by the update when
 * the weights are not all equal (lib/sd/weights.c): entry i appears in
 * order[] in proportion to its weight, spread evenly. */
struct kitd__worder {
  size_t len;
  uint64_t len_m; /* kitd__fastmod_magic(len) */
  uint32_t idx[];
};

/* x % d for a 32-bit x and d without a divide (Lemire's fastmod; a 32-bit
 * divide costs a rotating pick about a third of its time): m is
 * kitd__fastmod_magic(d), computed once per snapshot. */
static inline uint64_t kitd__fastmod_magic(uint64_t d) { return UINT64_MAX / (d ? d : 1) + 1; }
static inline uint32_t kitd__fastmod(uint32_t x, uint64_t m, uint32_t d) {
  return (uint32_t)(((__uint128_t)(m * x) * d) >> 64);
}

/* What an update's merge reads of an entry it keeps, inline in the
 * snapshot: the address as 8-byte words, zero past its end (all zero for
 * an address of KITD__SKEY_ADDR bytes or more, which the merge reads from
 * the record) and the digest of the other attributes. The merge of a large
 * set then reads one line of each new record and these dense keys, not
 * two lines of each new and each old record. */
#define KITD__SKEY_ADDR 24
struct kitd__skey {
  uint64_t w[KITD__SKEY_ADDR / 8];
  uint64_t digest;
};

/* An immutable view of the endpoints, sorted by address, in one block: the
 * header, then eps[cap], rec[cap], st[cap], born[cap], key[cap]. Entries belong to the
 * endpointer's live set while they are in the current snapshot; an update
 * moves those it removes to the endpointer's limbo list. */
struct kitd__snap {
  /* What picks read, in the first 64 bytes (the block is 64-aligned). */
  size_t count;
  uint64_t count_m; /* kitd__fastmod_magic(count) */
  kitd_endpoint **eps;
  kitd_instance **rec;
  struct kitd__ist **st;      /* outcome state, beside each endpoint */
  struct kitd__worder *order; /* NULL: equal weights (plain rotation) */
  size_t healthy;             /* entries whose record says passing */
  int64_t newest_join;        /* latest st->joined of its entries; 0: none */
  /* What updates read. */
  size_t weight1;         /* entries of weight 1: all of them, no order */
  uint64_t *born;         /* generation each entry first appeared in */
  struct kitd__skey *key; /* the merge's view of rec[] */
  uint64_t gen;
  atomic_int retired;      /* set once replaced: done() then tries a reclaim */
  struct kitd__snap *next; /* retired list */
  size_t cap;              /* room in the arrays (a reused block may be larger) */
  /* Pickers that found no free hazard slot hold the snapshot by this count
   * (taken under the endpointer's lock). On its own cache line: the line
   * above is read by every pick. */
  _Alignas(64) atomic_long refs;
};

struct kitd_endpointer {
  /* The only word pickers read, on a line of its own. */
  _Alignas(64) _Atomic(struct kitd__snap *) snap;
  _Alignas(64) pthread_mutex_t mu; /* guards all below and reclamation */
  atomic_long refs;
  kitd_instancer *src;
  kitd_factory factory;
  kitd_endpointer_opts opts;
  uint64_t gen;               /* of the current snapshot */
  struct kitd__snap *retired; /* replaced snapshots not yet freed */
  struct kitd__drop *limbo;   /* removed entries not yet released */
  size_t nlimbo, caplimbo;
  /* One freed snapshot block kept for the next update: allocating it anew
   * (240 KB for 10,000 instances) made glibc consolidate every small chunk
   * the update had just freed. */
  struct kitd__snap *spare;
  /* Outcome states are carved from chunks and recycled through this list
   * (a state per joining instance made a full update of 10,000 three times
   * slower). The chunks are freed with the endpointer. */
  struct kitd__ist *ist_free;
  void *ist_chunks;
  /* Set once a balancer that learns from outcomes is made on this
   * endpointer: only then do instances get a state (st[] entries are NULL
   * before). Writing a fresh cache line per joining instance made a full
   * update of 10,000 several times slower, a cost round robin and random
   * need not pay. */
  bool want_state;
  /* What the last event said, to explain an empty snapshot. */
  bool seen;
  int last_err;
  char *last_detail;
  int64_t last_good_ns;
  size_t last_count, factory_failed;
  int factory_err;
  /* invalidate-on-error */
  pthread_t timer;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  bool cond_ok, timer_running, closing, erroring, invalidated;
  int64_t invalidate_at_ns;
  /* Instances currently ejected by outlier detection (lib/lb/outlier.c),
   * kept with the set: whoever clears an instance's eject_until (a picker
   * that sees the time is up, or the update that drops it) decrements. */
  _Alignas(64) atomic_int ejected;
  /* One ejection decision at a time (a try-lock); an update holds it
   * while it publishes, so an ejection never lands on a dropped entry. */
  atomic_flag ejecting;
  /* The coarse clock as the last done() with a latency read it: how old
   * each latency estimate is, for picks that read no clock (p2c). */
  atomic_int_least64_t clock;
};

/* Build the weighted order of s (its rec[] and count set; called when not
 * every weight is 1). KITD_ENOMEM on failure (s->order NULL). */
int kitd__worder_build(struct kitd__snap *s);

/* Give every instance an outcome state, from now on (what a balancer that
 * learns from outcomes calls before its first pick). 0 or KITD_ENOMEM. */
int kitd__endpointer_want_state(kitd_endpointer *ep);

/* Add a reference (what a balancer takes). */
kitd_endpointer *kitd__endpointer_ref(kitd_endpointer *ep);

/* The current snapshot with a reference (the pickers' slow path; takes the
 * lock), and its release. */
struct kitd__snap *kitd__endpointer_ref_snap(kitd_endpointer *ep);
void kitd__endpointer_unref_snap(kitd_endpointer *ep, struct kitd__snap *s);

/* Try to free retired snapshots no picker holds (only if the lock is free:
 * whoever holds it reclaims before letting go, or the next update does). */
void kitd__endpointer_try_reclaim(kitd_endpointer *ep);

#endif
