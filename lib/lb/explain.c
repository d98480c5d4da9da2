/* SPDX-License-Identifier: MIT */
/* Explain a pick: the policy, how many candidates the snapshot held, which
 * one was chosen, and which were passed over and why (kitd_balancer_explain
 * and kitd_retry's debug line). It reads the snapshot the pick still
 * protects, so it is only valid between pick and done. An empty set is
 * explained by kitd_endpointer_explain(). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kitd/error.h"
#include "lb/balancer_impl.h"
#include "lb/lb_explain.h"

/* At most this many skipped candidates are named; the rest are counted. */
#define EXPLAIN_NAMED 16

struct out {
  char *buf;
  size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...) {
  if (o->len >= o->cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  o->len += (size_t)n; /* past cap once cut: nothing more is written */
}

/* Why entry i was passed over, or NULL if nothing set it apart. */
static const char *why(const kitd_balancer *b, const struct kitd__snap *s, size_t i, int64_t now,
                       kitd_endpoint *const *avoid, unsigned navoid, char *tmp, size_t tcap) {
  for (unsigned k = 0; k < navoid; k++)
    if (avoid[k] == s->eps[i]) return "tried in this call";
  /* Health, ejection, zone and slow start exist only for the balancers that
   * learn from outcomes (their snapshots carry outcome states). */
  if (!b->ops->done) return NULL;
  const kitd_instance *r = s->rec[i];
  if (kitd_instance_status(r) != KITD_HEALTH_PASSING)
    return kitd_health_name(kitd_instance_status(r));
  const struct kitd__ist *st = s->st[i];
  int64_t until = atomic_load_explicit(&st->eject_until, memory_order_relaxed);
  if (until && now < until) return "ejected";
  if (b->zone && strcmp(kitd_instance_zone(r), b->zone) != 0) return "other zone";
  if (b->slow_start_ns && st->joined && now - st->joined < b->slow_start_ns) {
    snprintf(tmp, tcap, "slow start (%d%% of its share)",
             (int)((now - st->joined) * 100 / b->slow_start_ns));
    return tmp;
  }
  return NULL;
}

size_t kitd__pick_explain(kitd_balancer *b, const kitd_pick *p, kitd_endpoint *const *avoid,
                          unsigned navoid, char *buf, size_t cap) {
  struct out o = {buf, cap, 0};
  if (cap) buf[0] = '\0';
  const struct kitd__snap *s = p ? p->snap_ : NULL;
  if (!s || !p->instance) {
    char why_empty[KITD_CTX_DETAIL_MAX], q[2 * KITD_CTX_DETAIL_MAX];
    kitd_endpointer_explain(b->ep, why_empty, sizeof why_empty);
    put(&o, "policy=%s candidates=0 reason=%s", b->ops->name,
        kitd_log_quote(q, sizeof q, why_empty));
    return o.len;
  }
  put(&o, "policy=%s candidates=%zu chosen=%s", b->ops->name, s->count,
      kitd_instance_address(p->instance));
  int64_t now = b->ops->done ? kitd_now_ns() : 0;
  if (b->ops->done && kitd__panic(b, s)) put(&o, " panic=1");
  size_t named = 0, more = 0;
  for (size_t i = 0; i < s->count; i++) {
    if (i == p->index) continue;
    char tmp[48];
    const char *w = why(b, s, i, now, avoid, navoid, tmp, sizeof tmp);
    if (!w) continue;
    if (named == EXPLAIN_NAMED) {
      more++;
      continue;
    }
    put(&o, "%s%s %s", named ? ", " : " skipped=\"", kitd_instance_address(s->rec[i]), w);
    named++;
  }
  if (more) put(&o, ", %zu more", more);
  if (named) put(&o, "\"");
  return o.len;
}

const char *kitd_balancer_explain(kitd_balancer *b, const kitd_pick *p, char *buf, size_t cap) {
  if (!buf || cap == 0) return buf;
  buf[0] = '\0';
  if (!b) return buf;
  kitd__pick_explain(b, p, NULL, 0, buf, cap);
  return buf;
}
