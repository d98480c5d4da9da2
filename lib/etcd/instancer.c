/* SPDX-License-Identifier: MIT */
/* The etcd instancer: one thread per watched prefix. It lists the prefix
 * with /v3/kv/range, then follows one /v3/watch stream from the next
 * revision, applying each event to its own copy of the keys and publishing
 * the set. shared/etcd-api.md section 5 is the contract followed here:
 * resume from the last event's mod_revision + 1 (never from a header), list
 * again after a compaction, one watch per POST, close to cancel. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/backoff.h"
#include "etcd/etcd_impl.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

/* A stream that lived this long resets the failure count: a watch that is
 * accepted and then dropped at once must still back off. */
#define STABLE_NS ((int64_t)10 * 1000000000)

struct entry {
  unsigned char *key;
  size_t klen;
  kitd_instance *rec; /* NULL: the value was not an instance (skipped) */
};

struct etcd_instancer {
  struct kitd_instancer base; /* first */
  kitd__etcd_client cl;
  unsigned char *prefix;
  size_t plen;
  char *key_b64, *end_b64;
  char *qprefix; /* quoted prefix for the log */
  int64_t backoff_min_ms, backoff_max_ms;
  kitd_logger *lg;
  pthread_mutex_t mu; /* for interruptible sleeps */
  pthread_cond_t cv;
  pthread_t th;
  bool started;
  /* Watch thread only: */
  struct entry *ents; /* sorted by key */
  size_t n, cap;
  int64_t next; /* the first revision not applied yet */
  bool need_list;
  bool told_recovery; /* "watch recovered" logged since the last failure */
  unsigned fails;
};

/* State of one watch stream, for the line callback. */
struct stream {
  struct etcd_instancer *ei;
  bool created, relist, reauth;
  int err;
  char detail[KITD__ETCD_DETAIL];
  int64_t created_ns;
};

void kitd_etcd_instancer_opts_init(kitd_etcd_instancer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->backoff_min_ms = 100;
  o->backoff_max_ms = 10000;
}

static bool is_stopped(struct etcd_instancer *ei) { return kitd__etcd_client_stopped(&ei->cl); }

static void nap(struct etcd_instancer *ei, int64_t ns) {
  kitd__etcd_nap(&ei->cl, &ei->mu, &ei->cv, ns);
}

static void logp(struct etcd_instancer *ei, kitd_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void logp(struct etcd_instancer *ei, kitd_log_level lvl, const char *fmt, ...) {
  if (!kitd_log_enabled(ei->lg, lvl)) return;
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  char *rest = n >= 0 ? kitd__malloc((size_t)n + 1) : NULL;
  if (rest && vsnprintf(rest, (size_t)n + 1, fmt, ap2) == n)
    kitd_log(ei->lg, lvl, "etcd", "prefix=%s %s", ei->qprefix, rest);
  free(rest);
  va_end(ap2);
  va_end(ap);
}

/* --- the key table --- */

static int cmp_key(const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
  int c = memcmp(a, b, an < bn ? an : bn);
  return c ? c : (an < bn ? -1 : an > bn);
}

/* Index of `key`, or where it would go (*found false). */
static size_t find(struct etcd_instancer *ei, const unsigned char *key, size_t klen, bool *found) {
  size_t lo = 0, hi = ei->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_key(ei->ents[mid].key, ei->ents[mid].klen, key, klen);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  *found = false;
  return lo;
}

static void clear_table(struct etcd_instancer *ei) {
  for (size_t i = 0; i < ei->n; i++) {
    free(ei->ents[i].key);
    kitd_instance_unref(ei->ents[i].rec);
  }
  ei->n = 0;
}

/* Set `key` to `value`: takes `key` (malloc'd) on every path. A value that
 * is no instance is remembered as skipped (and logged). */
static int put_key(struct etcd_instancer *ei, unsigned char *key, size_t klen, const char *value,
                   size_t vlen) {
  char why[160];
  kitd_instance *rec = NULL;
  int rc = kitd__etcd_parse_value(value, vlen, &rec, why, sizeof why);
  if (rc == KITD_ENOMEM) {
    free(key);
    return rc;
  }
  if (rc && kitd_log_enabled(ei->lg, KITD_LOG_WARN)) {
    /* The key as etcd has it, however long (quoting at most quadruples). */
    char qw[200], *qk = kitd__malloc(klen * 4 + 3);
    if (qk)
      logp(ei, KITD_LOG_WARN, "msg=\"value skipped\" key=%s reason=%s",
           kitd_log_quote(qk, klen * 4 + 3, (const char *)key), kitd_log_quote(qw, sizeof qw, why));
    free(qk);
  }
  bool found;
  size_t i = find(ei, key, klen, &found);
  if (found) {
    free(key);
    kitd_instance_unref(ei->ents[i].rec);
    ei->ents[i].rec = rec;
    return 0;
  }
  if (ei->n == ei->cap) {
    size_t cap = ei->cap ? ei->cap * 2 : 16;
    struct entry *e = kitd__realloc(ei->ents, cap * sizeof *e);
    if (!e) {
      free(key);
      kitd_instance_unref(rec);
      return KITD_ENOMEM;
    }
    ei->ents = e;
    ei->cap = cap;
  }
  memmove(ei->ents + i + 1, ei->ents + i, (ei->n - i) * sizeof *ei->ents);
  ei->ents[i].key = key;
  ei->ents[i].klen = klen;
  ei->ents[i].rec = rec;
  ei->n++;
  return 0;
}

static void del_key(struct etcd_instancer *ei, const unsigned char *key, size_t klen) {
  bool found;
  size_t i = find(ei, key, klen, &found);
  if (!found) return;
  free(ei->ents[i].key);
  kitd_instance_unref(ei->ents[i].rec);
  memmove(ei->ents + i, ei->ents + i + 1, (ei->n - i - 1) * sizeof *ei->ents);
  ei->n--;
}

/* Apply one kv of a range answer or a PUT/DELETE event. */
static int apply_kv(struct etcd_instancer *ei, json_t *kv, bool del) {
  const char *k64 = json_string_value(json_object_get(kv, "key"));
  if (!k64) return KITD_EPROTO;
  unsigned char *key;
  size_t klen;
  int rc = kitd__b64_decode(k64, strlen(k64), &key, &klen);
  if (rc) return rc;
  if (klen < ei->plen || memcmp(key, ei->prefix, ei->plen) != 0) {
    free(key); /* outside the prefix: not ours (cannot happen with etcd) */
    return 0;
  }
  if (del) {
    del_key(ei, key, klen);
    free(key);
    return 0;
  }
  /* An absent value is an empty one (etcd omits zero values). */
  const char *v64 = json_string_value(json_object_get(kv, "value"));
  unsigned char *val = NULL;
  size_t vlen = 0;
  if (v64 && (rc = kitd__b64_decode(v64, strlen(v64), &val, &vlen))) {
    free(key);
    return rc;
  }
  rc = put_key(ei, key, klen, val ? (const char *)val : "", vlen);
  free(val);
  return rc;
}

/* Publish the table's records. Returns KITD_ESTOPPED once stopped. */
static int publish(struct etcd_instancer *ei) {
  kitd_instance **set = kitd__malloc((ei->n ? ei->n : 1) * sizeof *set);
  if (!set) {
    kitd__instancer_publish_error(&ei->base, KITD_ENOMEM, "out of memory");
    return 0;
  }
  size_t k = 0;
  for (size_t i = 0; i < ei->n; i++)
    if (ei->ents[i].rec) set[k++] = kitd_instance_ref(ei->ents[i].rec);
  int rc = kitd__instancer_publish(&ei->base, set, k);
  return rc == KITD_ESTOPPED ? rc : 0;
}

static void failed(struct etcd_instancer *ei, int err, const char *detail) {
  ei->fails++;
  ei->told_recovery = false;
  int64_t d = kitd__backoff_ns(ei->backoff_min_ms * 1000000, ei->backoff_max_ms * 1000000,
                               ei->fails, KITD__JITTER_HALF);
  kitd__instancer_publish_error(&ei->base, err, detail);
  char dq[400];
  logp(ei, ei->fails == 1 ? KITD_LOG_ERROR : KITD_LOG_WARN,
       "msg=\"watch failed\" err=%s detail=%s failures=%u retry_ms=%lld", kitd_err_name(err),
       kitd_log_quote(dq, sizeof dq, detail), ei->fails, (long long)(d / 1000000));
  nap(ei, d);
}

/* List the prefix: the whole table from one revision. */
static int list(struct etcd_instancer *ei, char *detail) {
  json_t *req = json_pack("{s:s, s:s}", "key", ei->key_b64, "range_end", ei->end_b64);
  if (!req) return KITD_ENOMEM;
  json_t *resp = NULL;
  int rc = kitd__etcd_call(&ei->cl, "/v3/kv/range", req, 0, &resp, NULL, detail);
  json_decref(req);
  if (rc) return rc;
  int64_t rev = kitd__etcd_int(json_object_get(json_object_get(resp, "header"), "revision"), 0);
  json_t *kvs = json_object_get(resp, "kvs"), *kv;
  if (rev < 1 || (kvs && !json_is_array(kvs))) {
    json_decref(resp);
    snprintf(detail, KITD__ETCD_DETAIL, "/v3/kv/range: answer without revision or kvs");
    return KITD_EPROTO;
  }
  clear_table(ei);
  size_t i;
  json_array_foreach(kvs, i, kv) {
    if ((rc = apply_kv(ei, kv, false))) {
      snprintf(detail, KITD__ETCD_DETAIL, "/v3/kv/range: a bad key or value");
      json_decref(resp);
      return rc;
    }
  }
  json_decref(resp);
  ei->next = rev + 1;
  return 0;
}

static int on_line(void *arg, char *line, size_t len) {
  struct stream *s = arg;
  struct etcd_instancer *ei = s->ei;
  json_t *o = json_loadb(line, len, 0, NULL);
  json_t *res = json_object_get(o, "result");
  if (!json_is_object(res)) {
    json_t *e = json_object_get(o, "error");
    const char *m = json_string_value(json_object_get(e, "message"));
    s->err = e ? KITD_ECONNECT : KITD_EPROTO;
    snprintf(s->detail, sizeof s->detail, "watch stream: %s",
             m ? m : (e ? "error" : "a message is not {\"result\":..}"));
    json_decref(o);
    return 1;
  }
  json_t *hdr = json_object_get(res, "header");
  if (json_is_true(json_object_get(res, "canceled"))) {
    int64_t compact = kitd__etcd_int(json_object_get(res, "compact_revision"), 0);
    const char *why = json_string_value(json_object_get(res, "cancel_reason"));
    if (compact > 0) {
      logp(ei, KITD_LOG_INFO, "msg=\"revision compacted, listing again\" next=%lld compact=%lld",
           (long long)ei->next, (long long)compact);
      s->relist = true;
    } else {
      /* Refused at creation: an auth failure (our token expired between
       * the range and the watch). Log in again at once, once. */
      bool auth = why && strstr(why, "auth");
      if (auth && ei->cl.token) s->reauth = true;
      if (auth) kitd__etcd_client_drop_token(&ei->cl);
      s->err = auth ? KITD_EACL : KITD_EPROTO;
      snprintf(s->detail, sizeof s->detail, "watch canceled: %s", why ? why : "no reason");
    }
    json_decref(o);
    return 1; /* a canceled watch stays open: close it ourselves */
  }
  if (json_is_true(json_object_get(res, "created"))) {
    s->created = true;
    s->created_ns = kitd_now_ns();
    int64_t head = kitd__etcd_int(json_object_get(hdr, "revision"), 0);
    if (head > 0 && head + 1 < ei->next) {
      /* etcd's history went back (a new data directory): our revision
       * would only come in the future. Start from a fresh list. */
      logp(ei, KITD_LOG_WARN, "msg=\"etcd revision went back, listing again\" head=%lld next=%lld",
           (long long)head, (long long)ei->next);
      s->relist = true;
      json_decref(o);
      return 1;
    }
    if (ei->fails && !ei->told_recovery)
      logp(ei, KITD_LOG_INFO, "msg=\"watch recovered\" failures=%u", ei->fails);
    ei->told_recovery = true;
    /* Clears an earlier error event; no event if nothing changed. */
    int rc = publish(ei);
    json_decref(o);
    return rc == KITD_ESTOPPED;
  }
  json_t *evs = json_object_get(res, "events"), *ev;
  if (!evs) {
    /* Progress: every change up to header.revision has been sent. */
    int64_t head = kitd__etcd_int(json_object_get(hdr, "revision"), 0);
    if (head + 1 > ei->next) ei->next = head + 1;
    json_decref(o);
    return 0;
  }
  size_t i;
  bool applied = false;
  int64_t from = ei->next;
  json_array_foreach(evs, i, ev) {
    json_t *kv = json_object_get(ev, "kv");
    int64_t mod = kitd__etcd_int(json_object_get(kv, "mod_revision"), 0);
    if (mod < from) continue; /* seen already */
    const char *type = json_string_value(json_object_get(ev, "type"));
    int rc = apply_kv(ei, kv, type && strcmp(type, "DELETE") == 0);
    if (rc) {
      s->err = rc;
      snprintf(s->detail, sizeof s->detail, "watch stream: a bad event");
      json_decref(o);
      return 1;
    }
    /* Several events may share a revision (a txn): move on only past it. */
    ei->next = mod + 1;
    applied = true;
  }
  json_decref(o);
  if (applied && publish(ei) == KITD_ESTOPPED) return 1;
  return is_stopped(ei);
}

static void *watch(void *arg) {
  struct etcd_instancer *ei = arg;
  char detail[KITD__ETCD_DETAIL];
  size_t last_count = (size_t)-1;
  bool reauthed = false; /* the last watch was retried with a new token */
  while (!is_stopped(ei)) {
    if (ei->need_list) {
      int rc = list(ei, detail);
      if (rc == KITD_ESTOPPED || is_stopped(ei)) break;
      if (rc) {
        failed(ei, rc, detail);
        continue;
      }
      ei->need_list = false;
      if (ei->n != last_count)
        logp(ei, KITD_LOG_INFO, "keys=%zu revision=%lld", ei->n, (long long)(ei->next - 1));
      last_count = ei->n;
      if (publish(ei) == KITD_ESTOPPED) break;
    }
    json_t *req =
        json_pack("{s:{s:s, s:s, s:I, s:b}}", "create_request", "key", ei->key_b64, "range_end",
                  ei->end_b64, "start_revision", (json_int_t)ei->next, "progress_notify", 1);
    if (!req) {
      failed(ei, KITD_ENOMEM, "out of memory");
      continue;
    }
    struct stream s = {0};
    s.ei = ei;
    int rc = kitd__etcd_watch(&ei->cl, req, on_line, &s, NULL, detail);
    json_decref(req);
    if (rc == KITD_ESTOPPED || is_stopped(ei)) break;
    if (s.created && kitd_now_ns() - s.created_ns >= STABLE_NS) ei->fails = 0;
    if (s.relist) {
      ei->need_list = true;
      continue;
    }
    if (s.reauth && !reauthed) {
      reauthed = true;
      continue;
    }
    reauthed = false;
    if (!rc && s.err) {
      rc = s.err;
      snprintf(detail, sizeof detail, "%s", s.detail);
    } else if (!rc) {
      rc = KITD_ECONNECT;
      snprintf(detail, sizeof detail, "watch stream ended");
    }
    failed(ei, rc, detail);
  }
  return NULL;
}

static void ei_stop(kitd_instancer *in) {
  struct etcd_instancer *ei = (struct etcd_instancer *)in;
  pthread_mutex_lock(&ei->mu);
  kitd__etcd_client_stop(&ei->cl);
  pthread_cond_broadcast(&ei->cv);
  pthread_mutex_unlock(&ei->mu);
  if (ei->started) {
    pthread_join(ei->th, NULL);
    ei->started = false;
  }
}

static void ei_free(struct etcd_instancer *ei) {
  clear_table(ei);
  free(ei->ents);
  kitd__etcd_client_clear(&ei->cl);
  free(ei->prefix);
  free(ei->key_b64);
  free(ei->end_b64);
  free(ei->qprefix);
  pthread_cond_destroy(&ei->cv);
  pthread_mutex_destroy(&ei->mu);
  free(ei);
}

static void ei_destroy(kitd_instancer *in) { ei_free((struct etcd_instancer *)in); }

static const struct kitd__instancer_ops etcd_ops = {"etcd", ei_stop, ei_destroy};

static int describe(struct etcd_instancer *ei) {
  size_t qn = ei->plen * 4 + 3;
  if (!(ei->qprefix = kitd__malloc(qn))) return KITD_ENOMEM;
  kitd_log_quote(ei->qprefix, qn, (const char *)ei->prefix);
  size_t wn = qn + 64;
  char *what = kitd__malloc(wn);
  if (!what) return KITD_ENOMEM;
  int k = snprintf(what, wn, "instances under etcd prefix '%s'", (const char *)ei->prefix);
  int rc = (k < 0 || (size_t)k >= wn) ? KITD_EINTERNAL : kitd__instancer_set_what(&ei->base, what);
  free(what);
  return rc;
}

int kitd_etcd_instancer_new(const kitd_etcd *c, const char *prefix,
                            const kitd_etcd_instancer_opts *o, kitd_logger *lg,
                            kitd_instancer **out) {
  if (!c || !prefix || !*prefix || !out) return KITD_EINVAL;
  kitd_etcd_instancer_opts r;
  kitd_etcd_instancer_opts_init(&r);
  if (o && kitd__etcd_copy_opts(&r, sizeof r, o, o->size)) return KITD_ECONFIG;
  struct etcd_instancer *ei = kitd__calloc(1, sizeof *ei);
  if (!ei) return KITD_ENOMEM;
  kitd__etcd_cond_init(&ei->cv);
  pthread_mutex_init(&ei->mu, NULL);
  ei->backoff_min_ms = r.backoff_min_ms > 0 ? r.backoff_min_ms : 100;
  ei->backoff_max_ms =
      r.backoff_max_ms > ei->backoff_min_ms ? r.backoff_max_ms : ei->backoff_min_ms;
  ei->lg = lg;
  ei->need_list = true;
  ei->plen = strlen(prefix);
  int e = kitd__etcd_client_init(&ei->cl, c);
  if (e) {
    ei_free(ei);
    return e;
  }
  unsigned char *end = kitd__malloc(ei->plen);
  if (!(ei->prefix = (unsigned char *)kitd__strdup(prefix)) || !end) e = KITD_ENOMEM;
  if (!e) {
    size_t elen = kitd__etcd_prefix_end(ei->prefix, ei->plen, end);
    ei->key_b64 = kitd__b64_encode(ei->prefix, ei->plen);
    ei->end_b64 = kitd__b64_encode(end, elen);
    if (!ei->key_b64 || !ei->end_b64) e = KITD_ENOMEM;
  }
  free(end);
  if (!e) e = kitd__instancer_init(&ei->base, &etcd_ops);
  if (e) {
    ei_free(ei);
    return e;
  }
  if ((e = describe(ei))) {
    kitd_instancer_free(&ei->base);
    return e;
  }
  if (pthread_create(&ei->th, NULL, watch, ei) != 0) {
    kitd_instancer_free(&ei->base);
    return KITD_EINTERNAL;
  }
  ei->started = true;
  *out = &ei->base;
  return 0;
}
