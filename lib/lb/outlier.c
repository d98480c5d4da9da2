/* SPDX-License-Identifier: MIT */
/* Health rules of the balancers that learn from outcomes (weighted, p2c):
 * passive outlier ejection and panic mode, as Envoy has them.
 *
 * An instance's consecutive failures and ejection live in its outcome state
 * (struct kitd__ist, beside its endpoint in the snapshot), so they survive
 * set updates while the instance stays and go with it when it leaves. The
 * endpointer counts the instances ejected now; every rule here is a few
 * atomic loads and stores, no lock: an ejection decision takes a try-lock
 * (a flag), and whoever loses the race simply does not eject this time. */
#include "core/alloc.h"
#include "kitd/error.h"
#include "lb/balancer_impl.h"
#include "lb/lb_metrics.h"

/* An instance ejected again and again stays out at most this many times
 * the base (Envoy caps at 300 s, 10 × its 30 s base). */
#define EJECT_MAX_TIMES 10

void kitd_balancer_opts_init(kitd_balancer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->eject_consecutive = 5;
  o->eject_base_ms = 30000;
  o->eject_max_percent = 10;
  o->panic_percent = 50;
  o->slow_start_ms = 30000;
}

static int health_setup(kitd_balancer *b, const kitd_balancer_opts *o) {
  kitd_balancer_opts d;
  if (!o) {
    kitd_balancer_opts_init(&d);
    o = &d;
  }
  if (o->size != sizeof *o || o->eject_consecutive < 0 || o->eject_base_ms < 0 ||
      o->eject_base_ms > INT64_MAX / 1000000 / EJECT_MAX_TIMES || o->eject_max_percent < 0 ||
      o->eject_max_percent > 100 || o->panic_percent < 0 || o->panic_percent > 100 ||
      o->slow_start_ms < 0 || o->slow_start_ms > INT64_MAX / 1000000)
    return KITD_EINVAL;
  b->slow_start_ns = o->slow_start_ms * 1000000;
  if (b->slow_start_ns) b->flags |= KITD__B_SLOW;
  b->eject_consecutive = o->eject_consecutive;
  b->eject_base_ns = o->eject_base_ms * 1000000;
  b->eject_max_percent = o->eject_max_percent;
  b->panic_percent = o->panic_percent;
  if (o->zone && o->zone[0]) {
    b->zone = kitd__strdup(o->zone);
    if (!b->zone) return KITD_ENOMEM;
    b->flags |= KITD__B_ZONE;
  }
  return 0;
}

int kitd__balancer_new_health(kitd_endpointer *ep, const struct kitd__balancer_ops *ops,
                              const kitd_balancer_opts *opts, kitd_balancer **out) {
  kitd_balancer *b;
  if (opts && opts->size != sizeof *opts) return KITD_EINVAL;
  int rc = kitd__balancer_new(ep, ops, 0, &b);
  if (rc) return rc;
  rc = health_setup(b, opts);
  if (!rc) rc = kitd__endpointer_want_state(ep);
  if (rc) {
    kitd_balancer_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

/* End an ejection: only the one who clears eject_until counts it. */
static void uneject(kitd_endpointer *ep, struct kitd__ist *st, int64_t until) {
  if (atomic_compare_exchange_strong_explicit(&st->eject_until, &until, 0, memory_order_relaxed,
                                              memory_order_relaxed))
    atomic_fetch_sub_explicit(&ep->ejected, 1, memory_order_relaxed);
}

static int in_zone(const kitd_balancer *b, const kitd_instance *r) {
  return strcmp(kitd_instance_zone(r), b->zone) == 0;
}

/* zone_cache: the local zone's passing and total instances of the
 * snapshot of generation gen, computed by the first pick that needs them:
 * (gen mod 2^24) << 40 | total << 20 | passing (each count at most
 * ZONE_MAX). */
#define ZONE_MAX ((UINT64_C(1) << 20) - 1)

int kitd__zone_pick(kitd_balancer *b, const struct kitd__snap *s) {
  if (!(b->flags & KITD__B_ZONE)) return 0;
  uint64_t g = s->gen & ((UINT64_C(1) << 24) - 1);
  uint64_t c = atomic_load_explicit(&b->zone_cache, memory_order_relaxed);
  if (c >> 40 != g || c == 0) {
    /* First pick from this snapshot: count once (no allocation, no lock;
     * two pickers racing store the same value). */
    uint64_t total = 0, passing = 0;
    for (size_t i = 0; i < s->count && total < ZONE_MAX; i++) {
      if (!in_zone(b, s->rec[i])) continue;
      total++;
      passing += kitd_instance_status(s->rec[i]) == KITD_HEALTH_PASSING;
    }
    c = g << 40 | total << 20 | passing;
    atomic_store_explicit(&b->zone_cache, c, memory_order_relaxed);
  }
  uint64_t total = (c >> 20) & ZONE_MAX, passing = c & ZONE_MAX;
  if (passing == 0) return -1;
  if (passing >= total) return 1;
  /* passing / total of the picks stay, against a uniform 32-bit draw. */
  return (kitd__rand64() >> 32) * total < (passing << 32) ? 1 : -1;
}

int kitd__usable(const kitd_balancer *b, const struct kitd__snap *s, size_t i, int64_t *now,
                 int zone) {
  if (kitd_instance_status(s->rec[i]) != KITD_HEALTH_PASSING) return 0;
  if (zone && in_zone(b, s->rec[i]) != (zone > 0)) return 0;
  struct kitd__ist *st = s->st[i];
  int64_t until = atomic_load_explicit(&st->eject_until, memory_order_relaxed);
  if (!until) return 1;
  if (!*now) *now = kitd_now_ns();
  if (*now < until) return 0;
  uneject(b->ep, st, until); /* its time is up: back in */
  return 1;
}

int kitd__panic(const kitd_balancer *b, const struct kitd__snap *s) {
  long ej = atomic_load_explicit(&b->ep->ejected, memory_order_relaxed);
  long healthy = (long)s->healthy - (ej > 0 ? ej : 0);
  return (double)healthy * 100.0 < (double)b->panic_percent * (double)s->count;
}

int kitd__warming(kitd_balancer *b, const struct kitd__snap *s, int64_t *now) {
  if (kitd__settled(b, s)) return 0;
  if (!*now) *now = kitd_now_ns();
  if (*now - s->newest_join < b->slow_start_ns) return 1;
  atomic_store_explicit(&b->warm_gen, s->gen, memory_order_relaxed);
  return 0;
}

int kitd__warm_accept(const kitd_balancer *b, const struct kitd__snap *s, size_t i, int64_t now) {
  int64_t j = s->st[i]->joined, age = now - j;
  if (!j || age >= b->slow_start_ns) return 1;
  if (age <= 0) return 0;
  /* age / window against a uniform draw, in 32-bit fixed point. */
  uint64_t f = (uint64_t)((double)age / (double)b->slow_start_ns * 4294967296.0);
  return (kitd__rand64() >> 32) < f;
}

/* Eject entry i of s if the cap allows (called with ep->ejecting held). */
static void eject_locked(kitd_balancer *b, struct kitd__snap *s, size_t i) {
  kitd_endpointer *ep = b->ep;
  struct kitd__ist *st = s->st[i];
  /* An update replaced s since the pick: the instance may have left the
   * set (and its ejection would never be counted back). Let it be. */
  if (atomic_load_explicit(&ep->snap, memory_order_acquire) != s) return;
  if (atomic_load_explicit(&st->eject_until, memory_order_relaxed)) return;
  int64_t now = kitd_now_ns();
  /* Ejections whose time is up but that no pick has ended yet still hold
   * a place under the cap: end them first (rare: this runs per ejection). */
  for (size_t k = 0; k < s->count; k++) {
    int64_t u = atomic_load_explicit(&s->st[k]->eject_until, memory_order_relaxed);
    if (u && u <= now) uneject(ep, s->st[k], u);
  }
  long max = (long)(s->count * (size_t)b->eject_max_percent / 100);
  if (max < 1) max = 1;
  if (atomic_load_explicit(&ep->ejected, memory_order_relaxed) >= max) return;
  int times = atomic_fetch_add_explicit(&st->ejections, 1, memory_order_relaxed) + 1;
  if (times > EJECT_MAX_TIMES) times = EJECT_MAX_TIMES;
  atomic_store_explicit(&st->fails, 0, memory_order_relaxed);
  atomic_fetch_add_explicit(&ep->ejected, 1, memory_order_relaxed);
  atomic_store_explicit(&st->eject_until, now + b->eject_base_ns * times, memory_order_relaxed);
  if (b->mp) kitd__lb_count_eject(b, s->eps[i], s->rec[i]); /* metrics */
}

void kitd__outcome(kitd_balancer *b, const kitd_pick *p, int result) {
  if (!b->eject_consecutive) return;
  struct kitd__snap *s = p->snap_;
  struct kitd__ist *st = s->st[p->index];
  if (result == 0) {
    /* Read first: a healthy instance's line is not written by every call. */
    if (atomic_load_explicit(&st->fails, memory_order_relaxed))
      atomic_store_explicit(&st->fails, 0, memory_order_relaxed);
    return;
  }
  /* The caller gave up: says nothing about the instance. */
  if (result == KITD_ECANCELED) return;
  int f = atomic_fetch_add_explicit(&st->fails, 1, memory_order_relaxed) + 1;
  if (f < b->eject_consecutive) return;
  kitd_endpointer *ep = b->ep;
  if (atomic_flag_test_and_set_explicit(&ep->ejecting, memory_order_acquire)) return;
  eject_locked(b, s, p->index);
  atomic_flag_clear_explicit(&ep->ejecting, memory_order_release);
}
