/* SPDX-License-Identifier: MIT */
/* Internal: libkitd's event loop, the one thread that drives asynchronous
 * calls (kitd_client_call_async). Not API.
 *
 * One loop per process at a time, shared by every client that calls
 * asynchronously: an epoll set, an eventfd other threads wake it with, a
 * heap of timers (its top is epoll_wait's timeout), and the libcurl multi
 * handle of the asynchronous libcurl transfers, whose sockets and timer it
 * carries (lib/curl/multi.c). It is reference-counted: the first
 * kitd__loop_acquire() starts the thread, the last kitd__loop_release()
 * stops it and joins it (from the loop's own thread it cannot: the thread
 * then ends by itself, and the next acquire, or the library's unload,
 * joins it).
 *
 * Everything but acquire, release, post and here runs on the loop thread.
 * Handlers must not block, and must take a spurious wake-up calmly (a
 * non-blocking read that says EAGAIN): an event fetched in the same batch
 * as the one that ended a transfer may still be delivered to the handler,
 * so memory an io handler points to is freed only by a posted task (which
 * runs after the batch). */
#ifndef KITD_HTTP_LOOP_H
#define KITD_HTTP_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "curl/kitd_curl.h"

typedef struct kitd__loop kitd__loop;

/* A file descriptor the loop watches (level-triggered). */
struct kitd__loop_io {
  int fd; /* -1 when not watched */
  void (*on)(struct kitd__loop_io *w, uint32_t events);
};

/* A one-shot timer. */
struct kitd__loop_timer {
  int64_t at;  /* kitd_now_ns() terms */
  size_t slot; /* heap index + 1; 0: not armed */
  void (*on)(struct kitd__loop_timer *t);
};

/* Work handed to the loop: fn(t) runs once on the loop thread. */
struct kitd__loop_task {
  void (*fn)(struct kitd__loop_task *t);
  struct kitd__loop_task *next;
};

/* The running loop with a new reference (the thread starts with the
 * first): 0, KITD_ENOMEM or KITD_EINTERNAL. Thread-safety: any thread. */
int kitd__loop_acquire(kitd__loop **out);
/* Drop a reference; the last one stops the loop (and joins its thread,
 * unless called on it). Thread-safety: any thread. */
void kitd__loop_release(kitd__loop *l);
/* Run t->fn(t) on the loop thread, after what was posted before it; from
 * the loop thread itself, after the current handler and batch. t must stay
 * valid until it runs. Thread-safety: any thread. */
void kitd__loop_post(kitd__loop *l, struct kitd__loop_task *t);
/* Is this the loop's thread? Thread-safety: any thread. */
int kitd__loop_here(const kitd__loop *l);

/* Loop thread only. */
int kitd__loop_io_add(kitd__loop *l, struct kitd__loop_io *w, int fd, uint32_t events);
int kitd__loop_io_mod(kitd__loop *l, struct kitd__loop_io *w, uint32_t events);
void kitd__loop_io_del(kitd__loop *l, struct kitd__loop_io *w);
/* Arm (or move) t to fire at `at`: 0 or KITD_ENOMEM. */
int kitd__loop_timer_set(kitd__loop *l, struct kitd__loop_timer *t, int64_t at);
void kitd__loop_timer_cancel(kitd__loop *l, struct kitd__loop_timer *t);
/* Run t->fn(t) on the loop thread when the loop stops, after the last
 * posted task (what a module keeps on the loop is released there). */
void kitd__loop_at_stop(kitd__loop *l, struct kitd__loop_task *t);
/* The loop's libcurl multi driver, made on first use (NULL: out of memory
 * or libcurl's global set-up failed). */
struct kitd__curl_multi *kitd__loop_curl(kitd__loop *l);

#endif
