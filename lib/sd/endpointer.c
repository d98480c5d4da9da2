/* SPDX-License-Identifier: MIT */
/* The endpointer: one endpoint per instance address, published as
 * immutable snapshots that balancers read through hazard slots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/hazard.h"
#include "core/instance_impl.h"
#include "kitd/error.h"
#include "sd/endpointer_impl.h"
#include "sd/instancer_impl.h"

void kitd_endpointer_opts_init(kitd_endpointer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->invalidate_on_error_ms = -1;
  o->logger = NULL;
}

/* The logger for warnings: the user's, or stderr when none was given (a
 * factory failure must not go unseen). */
static kitd_logger *warn_logger(const kitd_endpointer *ep) {
  return ep->opts.logger ? ep->opts.logger : kitd_logger_stderr();
}

_Static_assert(offsetof(struct kitd__snap, newest_join) < 64, "a pick reads one header line");

/* One allocation: header, then the endpoint, record, state and birth
 * arrays. */
static struct kitd__snap *snap_alloc(size_t n) {
  struct kitd__snap *s = kitd__aligned_alloc(
      _Alignof(struct kitd__snap),
      sizeof *s + n * (3 * sizeof(void *) + sizeof(uint64_t) + sizeof(struct kitd__skey)));
  if (s) s->cap = n;
  return s;
}

static void snap_reset(struct kitd__snap *s) {
  s->count = 0;
  s->count_m = 0;
  s->eps = (kitd_endpoint **)(s + 1);
  s->rec = (kitd_instance **)(s->eps + s->cap);
  s->st = (struct kitd__ist **)(s->rec + s->cap);
  s->born = (uint64_t *)(s->st + s->cap);
  s->key = (struct kitd__skey *)(s->born + s->cap);
  s->order = NULL;
  s->healthy = 0;
  s->weight1 = 0;
  s->newest_join = 0;
  s->gen = 0;
  atomic_init(&s->retired, 0);
  s->next = NULL;
  atomic_init(&s->refs, 0);
}

/* A block for n entries: the spare one if it fits and is not much larger
 * (a set that shrank for good should not pin its old size), else new. */
static struct kitd__snap *snap_new(kitd_endpointer *ep, size_t n) {
  struct kitd__snap *s = ep->spare;
  if (s && s->cap >= n && s->cap <= 2 * n + 64) ep->spare = NULL;
  else s = snap_alloc(n);
  if (s) snap_reset(s);
  return s;
}

/* Keep a freed block as the spare (the larger of the two) or free it. Its
 * entries belong to the live set or to limbo and are left alone. */
static void snap_free(kitd_endpointer *ep, struct kitd__snap *s) {
  free(s->order);
  s->order = NULL;
  if (ep->spare && ep->spare->cap >= s->cap) {
    free(s);
    return;
  }
  free(ep->spare);
  ep->spare = s;
}

/* Outcome states: from the pool, refilled a chunk at a time (see
 * KITD__IST_CHUNK; the lanes are zeroed here, once: a state comes back to
 * the pool with its lanes at 0). */
static struct kitd__ist *ist_new(kitd_endpointer *ep, int64_t now) {
  if (!ep->ist_free) {
    /* The chunk's first line links the chunks; states follow, aligned. */
    size_t head = KITD__IST_CHUNK * sizeof(struct kitd__ist);
    size_t nlane = (size_t)KITD__IST_LANES * KITD__IST_CHUNK;
    struct kitd__ist *c =
        kitd__aligned_alloc(_Alignof(struct kitd__ist), head + nlane * sizeof(atomic_int));
    if (!c) return NULL;
    atomic_int *lanes = (atomic_int *)(c + KITD__IST_CHUNK);
    for (size_t k = 0; k < nlane; k++) atomic_init(&lanes[k], 0);
    *(void **)c = ep->ist_chunks;
    ep->ist_chunks = c;
    for (size_t i = KITD__IST_CHUNK - 1; i >= 1; i--) {
      c[i].inflight = lanes + i;
      c[i].next_free = ep->ist_free;
      ep->ist_free = &c[i];
    }
  }
  struct kitd__ist *st = ep->ist_free;
  ep->ist_free = st->next_free;
  atomic_init(&st->fails, 0);
  atomic_init(&st->ejections, 0);
  atomic_init(&st->eject_until, 0);
  atomic_init(&st->ewma, 0);
  atomic_init(&st->stamp, 0);
  st->joined = now;
  st->next_free = NULL;
  return st;
}

static void ist_free(kitd_endpointer *ep, struct kitd__ist *st) {
  if (!st) return;
  st->next_free = ep->ist_free;
  ep->ist_free = st;
}

static void drop_release(kitd_endpointer *ep, struct kitd__drop *d) {
  ist_free(ep, d->st);
  kitd_endpoint_unref(d->ep);
  kitd_instance_unref(d->rec);
}

/* Generations of the retired snapshots a picker still holds: up to
 * HELD_MAX exactly, then a conservative [lo, hi] range. */
#define HELD_MAX 16
struct held {
  uint64_t gen[HELD_MAX];
  unsigned n;
  int overflow;
  uint64_t lo, hi;
};

static void held_add(struct held *h, uint64_t g) {
  if (h->n == 0 && !h->overflow) h->lo = h->hi = g;
  if (g < h->lo) h->lo = g;
  if (g > h->hi) h->hi = g;
  if (h->n < HELD_MAX) h->gen[h->n++] = g;
  else h->overflow = 1;
}

static int held_in(const struct held *h, uint64_t born, uint64_t died) {
  if (h->overflow) return !(died < h->lo || born > h->hi);
  for (unsigned i = 0; i < h->n; i++)
    if (h->gen[i] >= born && h->gen[i] <= died) return 1;
  return 0;
}

/* How many removed entries ahead a reclaim prefetches their endpoint and
 * record. */
#define RELEASE_AHEAD 8

/* Free every retired snapshot no picker holds, and every removed entry
 * that no held snapshot can reach. A pick that is never handed back thus
 * pins its own snapshot's entries, never a later update's. */
static void reclaim_locked(kitd_endpointer *ep) {
  if (!ep->retired && !ep->nlimbo) return;
  struct held h = {{0}, 0, 0, 0, 0};
  if (ep->retired && kitd__hp_scan_begin() != 0) return; /* the next reclaim tries again */
  struct kitd__snap **pp = &ep->retired;
  while (*pp) {
    struct kitd__snap *s = *pp;
    if (atomic_load_explicit(&s->refs, memory_order_acquire) != 0 || kitd__hp_in_use(s)) {
      held_add(&h, s->gen);
      pp = &s->next;
    } else {
      *pp = s->next;
      snap_free(ep, s);
    }
  }
  /* Read once: h.n and h.overflow tested together in the loop compiled
   * to one 8-byte load of two 4-byte stores, which the store buffer
   * cannot forward (a stall per entry, an eighth of a full update). */
  const bool any_held = h.n || h.overflow;
  size_t o = 0;
  for (size_t i = 0; i < ep->nlimbo; i++) {
    struct kitd__drop *d = &ep->limbo[i];
    if (i + RELEASE_AHEAD <
        ep->nlimbo) { /* their counts are written: lines scattered over the heap */
      __builtin_prefetch(d[RELEASE_AHEAD].rec, 1);
      __builtin_prefetch(d[RELEASE_AHEAD].ep, 1);
    }
    if (any_held && held_in(&h, d->born, d->died)) ep->limbo[o++] = *d;
    else drop_release(ep, d);
  }
  ep->nlimbo = o;
}

void kitd__endpointer_try_reclaim(kitd_endpointer *ep) {
  if (pthread_mutex_trylock(&ep->mu) != 0) return;
  reclaim_locked(ep);
  pthread_mutex_unlock(&ep->mu);
}

struct kitd__snap *kitd__endpointer_ref_snap(kitd_endpointer *ep) {
  /* Under the lock, so the reclaimer (also under it) never sees a count
   * that is about to rise from 0. */
  pthread_mutex_lock(&ep->mu);
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
  pthread_mutex_unlock(&ep->mu);
  return s;
}

void kitd__endpointer_unref_snap(kitd_endpointer *ep, struct kitd__snap *s) {
  int retired = atomic_load_explicit(&s->retired, memory_order_relaxed);
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_release) == 1 && retired)
    kitd__endpointer_try_reclaim(ep);
}

/* Room in limbo for n more entries, reserved before a merge so that it
 * cannot fail half-way. */
static int limbo_reserve(kitd_endpointer *ep, size_t n) {
  if (ep->nlimbo + n <= ep->caplimbo) return 0;
  size_t cap = ep->caplimbo ? ep->caplimbo : 16;
  while (cap < ep->nlimbo + n) cap *= 2;
  struct kitd__drop *d = kitd__realloc(ep->limbo, cap * sizeof *d);
  if (!d) return KITD_ENOMEM;
  ep->limbo = d;
  ep->caplimbo = cap;
  return 0;
}

static void limbo_add(kitd_endpointer *ep, kitd_endpoint *e, kitd_instance *r, struct kitd__ist *st,
                      uint64_t born, uint64_t died) {
  struct kitd__drop *d = &ep->limbo[ep->nlimbo++];
  if (st && atomic_exchange_explicit(&st->eject_until, 0, memory_order_relaxed) != 0)
    atomic_fetch_sub_explicit(&ep->ejected, 1, memory_order_relaxed); /* leaves ejected */
  d->ep = e;
  d->rec = r;
  d->st = st;
  d->born = born;
  d->died = died;
}

/* Count a record into (d = 1) or out of (d = -1) the snapshot's tallies. */
static inline void tally(struct kitd__snap *s, const kitd_instance *r, int d) {
  s->healthy += (size_t)(d * (r->status == KITD_HEALTH_PASSING));
  s->weight1 += (size_t)(d * (r->weight == 1));
}

/* A new endpoint for in, or NULL (logged). */
static kitd_endpoint *make_endpoint(kitd_endpointer *ep, const kitd_instance *in) {
  kitd_endpoint *e = NULL;
  int rc = ep->factory.fn(ep->factory.arg, in, &e);
  if (rc == 0 && e) return e;
  if (rc == 0) rc = KITD_EINTERNAL;
  ep->factory_failed++;
  ep->factory_err = rc;
  /* Skipped, not fatal: the instance is tried again on the next event that
   * still lists it (it is not in the live set, so it is "new"). */
  char q[KITD_ADDRESS_MAX + 8];
  kitd_log(warn_logger(ep), KITD_LOG_WARN, "endpointer",
           "msg=\"factory failed; instance skipped\" instance=%s err=%s",
           kitd_log_quote(q, sizeof q, kitd_instance_address(in)), kitd_err_name(rc));
  return NULL;
}

/* The address of r as words, zero past its end (an address shorter than
 * KITD__SKEY_ADDR). Reads bytes [40, 64) of r's 64-byte aligned block, its
 * first cache line, where the address and the digest are: strcmp's 32-byte
 * loads crossed into the second line, and a merge over a large set costs
 * about the lines it touches. No byte needs masking: a record is zeroed
 * when made, and its attributes start at the first multiple of 8 past the
 * address's NUL (lib/core/instance.c), so a word holding part of the
 * address holds nothing else, and a word past it is left out. */
_Static_assert(offsetof(struct kitd_instance, address) + KITD__SKEY_ADDR == 64,
               "the short address ends the record's first line");
_Static_assert(offsetof(struct kitd_instance, address) % 8 == 0 &&
                   _Alignof(struct kitd__attrs) == 8 &&
                   sizeof(struct kitd__attrs) >= KITD__SKEY_ADDR,
               "words of the address start at multiples of 8 and stay in the block");
static inline uint64_t addr_word(const kitd_instance *r, size_t k) {
  uint64_t x;
  memcpy(&x, r->address + 8 * k, 8);
  return r->address_len >= 8 * k ? x : 0;
}

/* The merge's key of record r. */
static inline void key_set(struct kitd__skey *k, const kitd_instance *r) {
  k->digest = r->digest;
  for (size_t q = 0; q < KITD__SKEY_ADDR / 8; q++)
    k->w[q] = r->address_len < KITD__SKEY_ADDR ? addr_word(r, q) : 0;
}

/* strcmp(r->address, address of entry j of s), from its key when both
 * addresses are short: equal words first (the common case: a kept
 * entry), then the first unequal word in byte order. */
static inline int key_cmp(const kitd_instance *r, const struct kitd__snap *s, size_t j) {
  const struct kitd__skey *k = &s->key[j];
  if (__builtin_expect(r->address_len >= KITD__SKEY_ADDR || k->w[0] == 0, 0))
    return strcmp(r->address, s->rec[j]->address);
  for (size_t q = 0; q < KITD__SKEY_ADDR / 8; q++) {
    uint64_t w = addr_word(r, q);
    if (w != k->w[q]) {
      uint64_t a = __builtin_bswap64(w), b = __builtin_bswap64(k->w[q]);
      return a < b ? -1 : 1;
    }
  }
  return 0;
}

/* How many entries ahead the merge prefetches the records it adds (their
 * count is written and their key read). */
#define PREFETCH_AHEAD 8

/* Copy the kept entries old[j, j + len) to s[k, k + len): one copy per
 * array, not one per entry and array. */
static void copy_kept(struct kitd__snap *s, size_t k, const struct kitd__snap *old, size_t j,
                      size_t len, bool ws) {
  memcpy(s->eps + k, old->eps + j, len * sizeof *s->eps);
  memcpy(s->rec + k, old->rec + j, len * sizeof *s->rec);
  if (ws) memcpy(s->st + k, old->st + j, len * sizeof *s->st); /* else st[] is not read */
  memcpy(s->born + k, old->born + j, len * sizeof *s->born);
  memcpy(s->key + k, old->key + j, len * sizeof *s->key);
}

/* An update's merge in progress: the snapshot it fills and what it did. */
struct merge {
  kitd_endpointer *ep;
  const struct kitd__snap *old;
  struct kitd__snap *s;
  uint64_t gen;   /* of s */
  int64_t joined; /* what a joining instance's state says; 0 in the first set */
  bool ws;        /* want_state */
  size_t k, added, ndrop, nrec;
};

/* A new address, in[i]: an endpoint from the factory (on failure it is
 * skipped and logged, and the next event that lists it tries again). */
static inline __attribute__((always_inline)) void
merge_add(struct merge *m, const kitd_instance *const *in, size_t i, size_t n) {
  kitd_endpointer *ep = m->ep;
  struct kitd__snap *s = m->s;
  const kitd_instance *r = in[i];
  kitd_endpoint *e = NULL;
  if (i + PREFETCH_AHEAD < n) __builtin_prefetch(in[i + PREFETCH_AHEAD], 1);
  if (__builtin_expect(m->ws, 0)) {
    struct kitd__ist *st = ist_new(ep, m->joined);
    if (!st) ep->factory_failed++, ep->factory_err = KITD_ENOMEM;
    e = st ? make_endpoint(ep, r) : NULL;
    if (!e) {
      ist_free(ep, st);
    } else {
      s->st[m->k] = st;
      if (m->joined) s->newest_join = m->joined;
      tally(s, r, 1);
    }
  } else {
    e = make_endpoint(ep, r);
  }
  if (!e) return;
  s->eps[m->k] = e;
  s->rec[m->k] = kitd_instance_ref(r);
  key_set(&s->key[m->k], r);
  s->born[m->k] = m->gen;
  m->k++, m->added++;
}

/* An address gone, old entry j: to limbo until no picker can reach it. */
static inline __attribute__((always_inline)) void merge_drop(struct merge *m, size_t j) {
  const struct kitd__snap *old = m->old;
  limbo_add(m->ep, old->eps[j], old->rec[j], m->ws ? old->st[j] : NULL, old->born[j], old->gen);
  if (m->ws) tally(m->s, old->rec[j], -1);
  m->ndrop++;
}

/* The address of old entry j with new attributes, r: the same endpoint
 * and state, the new record; the old record to limbo. */
static void merge_reattr(struct merge *m, const kitd_instance *r, size_t j) {
  const struct kitd__snap *old = m->old;
  struct kitd__snap *s = m->s;
  s->eps[m->k] = old->eps[j];
  if (m->ws) s->st[m->k] = old->st[j];
  s->born[m->k] = old->born[j];
  s->rec[m->k] = kitd_instance_ref(r);
  key_set(&s->key[m->k], r);
  if (m->ws) tally(s, r, 1), tally(s, old->rec[j], -1);
  limbo_add(m->ep, NULL, old->rec[j], NULL, old->born[j], old->gen);
  m->k++, m->nrec++;
}

/* Replace the live set by `in` (sorted by address, unique). Called with
 * ep->mu held. Cost: one merge over both sets, the factory for new
 * addresses only, and a copy of each run of kept entries: no refcount
 * traffic on those, and no record of theirs read but the new one's first
 * line (none when the instancer hands the same record again). */
static int update_locked(kitd_endpointer *ep, const kitd_instance *const *in, size_t n) {
  struct kitd__snap *old = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  if (limbo_reserve(ep, old->count) != 0) return KITD_ENOMEM;
  struct kitd__snap *s = snap_new(ep, n);
  if (!s) return KITD_ENOMEM;
  const bool ws = ep->want_state;
  const size_t on = old->count;
  /* Instances of the first set are not "joining" (slow start would hold
   * all of them back alike): their joined time is 0. */
  struct merge m = {ep, old, s, ep->gen + 1, ws && on ? kitd_now_ns() : 0, ws, 0, 0, 0, 0};
  ep->factory_failed = 0;
  /* The counts change by what changes: kept records are not read again.
   * Like st[], they (and the weighted order) are kept only once a learning
   * balancer asked: the others never read them. */
  s->healthy = old->healthy;
  s->weight1 = old->weight1;
  s->newest_join = old->newest_join;
  /* Short waits only: an ejection decision is a few loads and stores. */
  while (atomic_flag_test_and_set_explicit(&ep->ejecting, memory_order_acquire)) {}
  size_t i = 0, j = 0;
  while (i < n && j < on) {
    /* A run of kept entries, copied at its end. The same record as before
     * (an instancer that hands unchanged instances on) is kept without
     * being read; another one of the same address and digest
     * (kitd__instance_same_attrs) from the key. */
    size_t j0 = j;
    int c = 0;
    for (; i < n && j < on; i++, j++)
      if (in[i] != old->rec[j] &&
          ((c = key_cmp(in[i], old, j)) != 0 || in[i]->digest != old->key[j].digest))
        break;
    if (j > j0) copy_kept(s, m.k, old, j0, j - j0, ws), m.k += j - j0;
    if (i == n || j == on) break;
    if (c == 0) merge_reattr(&m, in[i++], j++);
    else if (c < 0) merge_add(&m, in, i++, n);
    else merge_drop(&m, j++);
  }
  while (j < on) merge_drop(&m, j++);
  while (i < n) merge_add(&m, in, i++, n);
  size_t k = m.k, added = m.added, ndrop = m.ndrop, nrec = m.nrec;
  uint64_t gen = m.gen;
  if (added == 0 && ndrop == 0 && nrec == 0) { /* nothing changed */
    atomic_flag_clear_explicit(&ep->ejecting, memory_order_release);
    snap_free(ep, s);
    return 0;
  }
  s->count = k;
  s->count_m = kitd__fastmod_magic(k);
  s->gen = gen;
  /* Out of memory for the weighted order: the set is still right, and a
   * weighted balancer rotates evenly over it until the next update. */
  if (ws && s->weight1 != k && kitd__worder_build(s) != 0)
    kitd_log(warn_logger(ep), KITD_LOG_WARN, "endpointer",
             "msg=\"no memory for the weighted order; equal weights used\"");
  ep->gen = gen;
  atomic_store_explicit(&ep->snap, s, memory_order_seq_cst);
  atomic_flag_clear_explicit(&ep->ejecting, memory_order_release);
  atomic_store_explicit(&old->retired, 1, memory_order_relaxed);
  old->next = ep->retired;
  ep->retired = old;
  reclaim_locked(ep);
  kitd_log(ep->opts.logger, KITD_LOG_DEBUG, "endpointer",
           "endpoints=%zu added=%zu removed=%zu updated=%zu", k, added, ndrop, nrec);
  return 0;
}

/* go-kit's InvalidateOnError: close every endpoint as if the set were
 * empty. Called with ep->mu held. */
static int invalidate_locked(kitd_endpointer *ep) {
  int rc = update_locked(ep, NULL, 0);
  if (rc == 0) {
    ep->invalidated = true;
    kitd_log(warn_logger(ep), KITD_LOG_WARN, "endpointer",
             "msg=\"registry error outlasted invalidate_on_error; endpoints closed\" "
             "invalidate_on_error_ms=%lld",
             (long long)ep->opts.invalidate_on_error_ms);
  }
  return rc;
}

static void remember(kitd_endpointer *ep, const kitd_event *ev) {
  ep->seen = true;
  ep->last_err = ev->err;
  ep->last_good_ns = ev->last_good_ns;
  ep->last_count = ev->count;
  char *d = ev->err && ev->detail[0] ? kitd__strdup(ev->detail) : NULL;
  free(ep->last_detail);
  ep->last_detail = d; /* NULL on ENOMEM: the code's name stands in */
}

static void on_event(void *arg, const kitd_event *ev) {
  kitd_endpointer *ep = arg;
  pthread_mutex_lock(&ep->mu);
  remember(ep, ev);
  int rc = 0;
  if (ev->err) {
    if (ep->opts.invalidate_on_error_ms >= 0 && !ep->erroring) {
      ep->erroring = true;
      if (ep->opts.invalidate_on_error_ms == 0) {
        /* Out of memory: the next error event tries again. */
        if (invalidate_locked(ep) != 0) ep->erroring = false;
      } else {
        ep->invalidate_at_ns = kitd_now_ns() + ep->opts.invalidate_on_error_ms * 1000000;
        pthread_cond_signal(&ep->cond);
      }
    }
    /* An error event carries the last good set: a late subscriber serves it
     * (and instances a factory skipped get another try), unless the error
     * has lasted long enough to invalidate it. */
    if (!ep->invalidated) rc = update_locked(ep, ev->instances, ev->count);
  } else {
    ep->erroring = false;
    ep->invalidated = false;
    if (ep->timer_running) pthread_cond_signal(&ep->cond);
    rc = update_locked(ep, ev->instances, ev->count);
  }
  if (rc)
    kitd_log(warn_logger(ep), KITD_LOG_ERROR, "endpointer",
             "msg=\"update failed; previous endpoints kept\" err=%s", kitd_err_name(rc));
  pthread_mutex_unlock(&ep->mu);
}

/* The invalidate-on-error timer: sleeps on the condition variable until the
 * error deadline (or a change of plan), so invalidation happens on time and
 * not at the next event, which in an outage may never come. */
static void *invalidate_thread(void *arg) {
  kitd_endpointer *ep = arg;
  pthread_mutex_lock(&ep->mu);
  while (!ep->closing) {
    if (!ep->erroring || ep->invalidated) {
      pthread_cond_wait(&ep->cond, &ep->mu);
      continue;
    }
    int64_t now = kitd_now_ns();
    if (now >= ep->invalidate_at_ns) {
      if (invalidate_locked(ep) != 0) ep->invalidate_at_ns = now + 100 * 1000000;
      continue;
    }
    struct timespec ts = {(time_t)(ep->invalidate_at_ns / 1000000000),
                          (long)(ep->invalidate_at_ns % 1000000000)};
    pthread_cond_timedwait(&ep->cond, &ep->mu, &ts);
  }
  pthread_mutex_unlock(&ep->mu);
  return NULL;
}

/* Every snapshot and entry, at the end (no picker is left: each holds a
 * reference on a balancer, which holds one on us). */
static void release_all(kitd_endpointer *ep) {
  while (ep->retired) {
    struct kitd__snap *h = ep->retired;
    ep->retired = h->next;
    snap_free(ep, h);
  }
  for (size_t i = 0; i < ep->nlimbo; i++) drop_release(ep, &ep->limbo[i]);
  free(ep->limbo);
  ep->limbo = NULL;
  ep->nlimbo = ep->caplimbo = 0;
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  if (s) {
    for (size_t i = 0; i < s->count; i++) {
      kitd_endpoint_unref(s->eps[i]);
      kitd_instance_unref(s->rec[i]);
    }
    snap_free(ep, s);
  }
  free(ep->spare);
  ep->spare = NULL;
  while (ep->ist_chunks) {
    void *c = ep->ist_chunks;
    ep->ist_chunks = *(void **)c;
    free(c);
  }
  ep->ist_free = NULL;
}

static void stop_timer(kitd_endpointer *ep) {
  if (!ep->timer_running) return;
  pthread_mutex_lock(&ep->mu);
  ep->closing = true;
  pthread_cond_signal(&ep->cond);
  pthread_mutex_unlock(&ep->mu);
  pthread_join(ep->timer, NULL);
  ep->timer_running = false;
}

static void destroy(kitd_endpointer *ep) {
  stop_timer(ep);
  release_all(ep);
  free(ep->last_detail);
  if (ep->cond_ok) pthread_cond_destroy(&ep->cond);
  pthread_mutex_destroy(&ep->mu);
  if (ep->factory.release) ep->factory.release(ep->factory.arg);
  kitd_instancer_free(ep->src);
  free(ep);
}

static int start_timer(kitd_endpointer *ep) {
  pthread_condattr_t ca;
  if (pthread_condattr_init(&ca) != 0) return KITD_ENOMEM;
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  ep->cond_ok = pthread_cond_init(&ep->cond, &ca) == 0;
  pthread_condattr_destroy(&ca);
  if (!ep->cond_ok || pthread_create(&ep->timer, NULL, invalidate_thread, ep) != 0)
    return KITD_ENOMEM;
  ep->timer_running = true;
  return 0;
}

int kitd_endpointer_new(kitd_instancer *src, const kitd_factory *factory,
                        const kitd_endpointer_opts *opts, kitd_endpointer **out) {
  int bad = !src || !factory || !factory->fn || !out || (opts && opts->size != sizeof *opts);
  kitd_endpointer *ep = bad ? NULL : kitd__aligned_alloc(_Alignof(kitd_endpointer), sizeof *ep);
  if (!ep || pthread_mutex_init(&ep->mu, NULL) != 0) {
    /* The factory argument is taken on every path. */
    if (factory && factory->release) factory->release(factory->arg);
    free(ep);
    return bad ? KITD_EINVAL : KITD_ENOMEM;
  }
  memset((char *)ep + offsetof(kitd_endpointer, refs), 0,
         sizeof *ep - offsetof(kitd_endpointer, refs));
  atomic_init(&ep->refs, 1);
  if (opts) ep->opts = *opts;
  else kitd_endpointer_opts_init(&ep->opts);
  kitd__hp_init(); /* before any pick or reclaim can involve this endpointer */
  ep->src = kitd__instancer_ref(src);
  ep->factory = *factory;
  struct kitd__snap *empty = snap_new(ep, 0);
  atomic_init(&ep->snap, empty);
  int rc = empty ? 0 : KITD_ENOMEM;
  if (!rc && ep->opts.invalidate_on_error_ms > 0) rc = start_timer(ep);
  if (!rc) rc = kitd_instancer_subscribe(src, on_event, ep);
  if (rc) {
    destroy(ep);
    return rc;
  }
  *out = ep;
  return 0;
}

int kitd__endpointer_want_state(kitd_endpointer *ep) {
  int rc = 0;
  pthread_mutex_lock(&ep->mu);
  if (!ep->want_state) {
    /* Fill the current snapshot's states in place: no picker reads st[]
     * yet (only balancers that asked for states do, and this one picks
     * only after we return); the snapshots after it get them as they are
     * made. Instances already there are not young (joined 0). */
    struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
    size_t i = 0;
    for (; i < s->count; i++)
      if (!(s->st[i] = ist_new(ep, 0))) break;
    s->healthy = s->weight1 = 0;
    s->newest_join = 0;
    for (size_t k = 0; k < s->count; k++) tally(s, s->rec[k], 1);
    if (i < s->count || (s->weight1 != s->count && kitd__worder_build(s) != 0)) {
      /* No memory: as before, try again next time. */
      while (i-- > 0) ist_free(ep, s->st[i]);
      rc = KITD_ENOMEM;
    }
    ep->want_state = rc == 0;
  }
  pthread_mutex_unlock(&ep->mu);
  return rc;
}

kitd_endpointer *kitd__endpointer_ref(kitd_endpointer *ep) {
  atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
  return ep;
}

void kitd_endpointer_free(kitd_endpointer *ep) {
  if (!ep) return;
  if (atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) != 1) return;
  /* After this no event arrives: the instancer guarantees the callback is
   * not running and never runs again. */
  kitd_instancer_unsubscribe(ep->src, on_event, ep);
  destroy(ep);
}

int kitd_endpointer_endpoints(kitd_endpointer *ep, kitd_endpoint ***out, size_t *count) {
  if (!ep || !out || !count) return KITD_EINVAL;
  pthread_mutex_lock(&ep->mu);
  struct kitd__snap *s = atomic_load_explicit(&ep->snap, memory_order_relaxed);
  kitd_endpoint **v = kitd__malloc((s->count ? s->count : 1) * sizeof *v);
  if (!v) {
    pthread_mutex_unlock(&ep->mu);
    return KITD_ENOMEM;
  }
  for (size_t i = 0; i < s->count; i++) v[i] = kitd_endpoint_ref(s->eps[i]);
  *count = s->count;
  pthread_mutex_unlock(&ep->mu);
  *out = v;
  return 0;
}

size_t kitd_endpointer_count(kitd_endpointer *ep) {
  if (!ep) return 0;
  /* Read as a pick reads, through a hazard slot, not under the lock: an
   * update holds the lock through its merge and its reclaim's barrier
   * (membarrier, which took up to milliseconds on a loaded machine), and
   * the count is what a caller watching for a change polls. */
  int slot = kitd__hp_acquire();
  if (slot < 0) {
    struct kitd__snap *s = kitd__endpointer_ref_snap(ep);
    size_t n = s->count;
    kitd__endpointer_unref_snap(ep, s);
    return n;
  }
  struct kitd__snap *s = kitd__hp_protect(slot, (void *_Atomic *)&ep->snap);
  size_t n = s->count;
  kitd__hp_release(slot);
  /* Retired meanwhile: the update's reclaim may have kept it for us. */
  if (atomic_load_explicit(&s->retired, memory_order_relaxed)) kitd__endpointer_try_reclaim(ep);
  return n;
}

const char *kitd_endpointer_explain(kitd_endpointer *ep, char *buf, size_t cap) {
  if (!buf || cap == 0) return buf;
  buf[0] = '\0';
  if (!ep) return buf;
  const char *what = kitd_instancer_describe(ep->src);
  pthread_mutex_lock(&ep->mu);
  size_t live = atomic_load_explicit(&ep->snap, memory_order_relaxed)->count;
  int n;
  if (!ep->seen) {
    n = snprintf(buf, cap, "no answer yet from the registry for %s", what);
  } else if (ep->last_err) {
    const char *d = ep->last_detail ? ep->last_detail : kitd_strerror(ep->last_err);
    if (ep->last_good_ns) {
      long long age = (long long)((kitd_now_ns() - ep->last_good_ns) / 1000000000);
      n = snprintf(buf, cap, "%s; last good answer %lld s ago", d, age);
    } else {
      n = snprintf(buf, cap, "%s; no good answer yet", d);
    }
  } else if (ep->last_count > 0 && live == 0) {
    n = snprintf(buf, cap, "%zu %s, none usable: the endpoint factory failed (%s)", ep->last_count,
                 what, kitd_err_name(ep->factory_err));
  } else {
    n = snprintf(buf, cap, "%zu %s", live, what);
  }
  pthread_mutex_unlock(&ep->mu);
  (void)n; /* truncation is documented: the message is cut at cap - 1 */
  return buf;
}

void kitd_endpoint_list_free(kitd_endpoint **list, size_t count) {
  if (!list) return;
  for (size_t i = 0; i < count; i++) kitd_endpoint_unref(list[i]);
  free(list);
}
