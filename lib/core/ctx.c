/* SPDX-License-Identifier: MIT */
/* kitd_ctx: deadline, cancel flag, detail, instance and attempts of one
 * call. */
#include "kitd/ctx.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kitd/error.h"

/* A sleeping call polls the cancel flag at this period: short enough for a
 * prompt cancel, long enough to cost nothing. */
#define KITD__CTX_POLL_NS (5 * 1000 * 1000)

/* Written by kitd_ctx_init: a ctx without it was never initialised (zeroed
 * memory, or a struct copied around before init), and its pointers and
 * strings must not be trusted. */
#define KITD__CTX_MAGIC 0x6b697464u /* "kitd" */

static inline int ready(const kitd_ctx *c) { return c && c->magic_ == KITD__CTX_MAGIC; }

int64_t kitd_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Only the fields a call reads are set: the strings get a NUL each, so a
 * ctx on the stack costs a few stores, not a 512-byte memset. */
void kitd_ctx_init(kitd_ctx *c) {
  if (!c) return;
  c->deadline_ns_ = 0;
  c->parent_ = NULL;
  c->log_ = NULL;
  c->logcap_ = 0;
  c->nattempts_ = 0;
  c->lasterr_ = 0;
  __atomic_store_n(&c->canceled_, 0, __ATOMIC_RELAXED);
  c->status_ = 0;
  c->magic_ = KITD__CTX_MAGIC;
  c->detail_[0] = '\0';
  c->instance_[0] = '\0';
}

void kitd_ctx_init_child(kitd_ctx *child, const kitd_ctx *parent, int64_t timeout_ms) {
  if (!child) return;
  kitd_ctx_init(child);
  child->parent_ = parent;
  /* The parent's deadline is not copied: every reader walks the chain, so
   * the child's own deadline is only the one it adds. */
  if (timeout_ms > 0) {
    int64_t d = kitd_ctx_deadline_ns(parent);
    int64_t mine = kitd_now_ns() + timeout_ms * 1000000;
    if (d == 0 || mine < d) d = mine;
    child->deadline_ns_ = d;
  }
}

void kitd_ctx_set_timeout_ms(kitd_ctx *c, int64_t ms) {
  if (ready(c)) c->deadline_ns_ = ms > 0 ? kitd_now_ns() + ms * 1000000 : 0;
}

void kitd_ctx_set_deadline_ns(kitd_ctx *c, int64_t deadline_ns) {
  if (ready(c)) c->deadline_ns_ = deadline_ns > 0 ? deadline_ns : 0;
}

int64_t kitd_ctx_deadline_ns(const kitd_ctx *c) {
  int64_t d = 0;
  for (; ready(c); c = c->parent_)
    if (c->deadline_ns_ && (d == 0 || c->deadline_ns_ < d)) d = c->deadline_ns_;
  return d;
}

int64_t kitd_ctx_remaining_ms(const kitd_ctx *c) {
  int64_t d = kitd_ctx_deadline_ns(c);
  if (d == 0) return -1;
  int64_t left = d - kitd_now_ns();
  return left <= 0 ? 0 : (left + 999999) / 1000000;
}

/* A thread sleeping in kitd_ctx_sleep_ns() waits on its ctx's cancel word:
 * a cancel of that very ctx wakes it at once (a hedge's loser stops at
 * once), a cancel up the chain within KITD__CTX_POLL_NS. */
static void futex_wait(int *word, int64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
}

void kitd_ctx_cancel(kitd_ctx *c) {
  if (!ready(c)) return;
  if (__atomic_exchange_n(&c->canceled_, 1, __ATOMIC_RELEASE)) return;
  syscall(SYS_futex, &c->canceled_, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* One walk up the chain for both checks: this runs several times per call
 * on the request path. A cancel anywhere wins over a deadline; a link never
 * initialised wins over both, as its flags mean nothing. */
int kitd_ctx_err(const kitd_ctx *c) {
  int64_t d = 0;
  for (; c; c = c->parent_) {
    if (c->magic_ != KITD__CTX_MAGIC) return KITD_EINVAL;
    if (__atomic_load_n(&c->canceled_, __ATOMIC_ACQUIRE)) return KITD_ECANCELED;
    if (c->deadline_ns_ && (d == 0 || c->deadline_ns_ < d)) d = c->deadline_ns_;
  }
  if (d && kitd_now_ns() >= d) return KITD_ETIMEDOUT;
  return 0;
}

int kitd_ctx_sleep_ns(const kitd_ctx *c, int64_t ns) {
  int64_t end = kitd_now_ns() + (ns > 0 ? ns : 0);
  for (;;) {
    int e = kitd_ctx_err(c);
    if (e) return e;
    int64_t now = kitd_now_ns();
    if (now >= end) return 0;
    int64_t step = end - now;
    if (c && step > KITD__CTX_POLL_NS) step = KITD__CTX_POLL_NS;
    int64_t d = kitd_ctx_deadline_ns(c);
    if (d && d - now < step) step = d - now > 0 ? d - now : 0;
    if (ready(c)) {
      futex_wait((int *)&c->canceled_, step);
    } else {
      struct timespec ts = {(time_t)(step / 1000000000), (long)(step % 1000000000)};
      nanosleep(&ts, NULL);
    }
  }
}

void kitd_ctx_set_detailv(kitd_ctx *c, const char *fmt, va_list ap) {
  if (!ready(c)) return;
  if (!fmt) fmt = "";
  vsnprintf(c->detail_, sizeof c->detail_, fmt, ap);
}

void kitd_ctx_set_detail(kitd_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kitd_ctx_set_detailv(c, fmt, ap);
  va_end(ap);
}

const char *kitd_ctx_detail(const kitd_ctx *c) { return ready(c) ? c->detail_ : ""; }

void kitd_ctx_set_status(kitd_ctx *c, int status) {
  if (ready(c)) c->status_ = status;
}

int kitd_ctx_status(const kitd_ctx *c) { return ready(c) ? c->status_ : 0; }

/* Copy at most cap-1 bytes and a NUL. */
static void copy_str(char *dst, size_t cap, const char *src) {
  if (!src) src = "";
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

void kitd_ctx_set_instance(kitd_ctx *c, const char *address) {
  if (ready(c)) copy_str(c->instance_, sizeof c->instance_, address);
}

const char *kitd_ctx_instance(const kitd_ctx *c) { return ready(c) ? c->instance_ : ""; }

void kitd_ctx_set_attempt_log(kitd_ctx *c, kitd_attempt_error *buf, unsigned cap) {
  if (!ready(c)) return;
  c->log_ = cap ? buf : NULL;
  c->logcap_ = buf ? cap : 0;
  c->nattempts_ = 0;
  c->lasterr_ = 0;
}

unsigned kitd_ctx_attempt_count(const kitd_ctx *c) { return ready(c) ? c->nattempts_ : 0; }

int kitd_ctx_last_attempt_err(const kitd_ctx *c) { return ready(c) ? c->lasterr_ : 0; }

const kitd_attempt_error *kitd_ctx_attempt(const kitd_ctx *c, unsigned i) {
  if (!ready(c) || i >= c->nattempts_ || i >= c->logcap_) return NULL;
  return &c->log_[i];
}

void kitd_ctx_add_attempt(kitd_ctx *c, int err, int status, int64_t latency_ns,
                          const char *instance, const char *detail) {
  if (!ready(c)) return;
  if (c->nattempts_ < c->logcap_) {
    kitd_attempt_error *a = &c->log_[c->nattempts_];
    a->err = err;
    a->status = status;
    a->latency_ns = latency_ns;
    copy_str(a->instance, sizeof a->instance, instance);
    copy_str(a->detail, sizeof a->detail, detail);
  }
  /* The count saturates rather than wrap back under the log's capacity. */
  if (c->nattempts_ < UINT_MAX) c->nattempts_++;
  c->lasterr_ = err;
}
