/* SPDX-License-Identifier: MIT */
/* A bound on the upstream calls in flight, for the gateways' -mode async.
 *
 * Without it every waiting client would have its own call, and an HTTP/1.1
 * call its own upstream connection: 1,000 clients, 1,000 connections to
 * one instance (lorem-server refuses past 256 per address). With it at most
 * `max` calls run; the others wait, first come first served, holding no
 * thread, and start as running calls end. Items are intrusive (a
 * lorem_callq_item inside the caller's call state): waiting allocates
 * nothing. */
#ifndef LOREM_CALLQ_H
#define LOREM_CALLQ_H

typedef struct lorem_callq lorem_callq;

typedef struct lorem_callq_item {
  /* Start the asynchronous call with lorem_callq_call_done as its done
   * and `it` as its argument: 0, or an error. Runs on the submitting
   * thread or on the thread of a call that ended. */
  int (*start)(struct lorem_callq_item *it);
  /* The call ended with rc (or did not start: rc is start's error). */
  void (*end)(struct lorem_callq_item *it, int rc);
  struct lorem_callq_item *next; /* internal */
  lorem_callq *q;                /* internal */
} lorem_callq_item;

/* At most max (>= 1) calls at once. Returns NULL when out of memory. */
lorem_callq *lorem_callq_new(long max);

/* Start it now if fewer than max run, else queue it. Thread-safety: any
 * thread. */
void lorem_callq_submit(lorem_callq *q, lorem_callq_item *it);

/* The done of every call started: runs the item's end, then starts the
 * next waiting call on this thread (kitd_client_done_fn's shape). */
void lorem_callq_call_done(void *item, int rc);

/* Free; no call may be running or waiting. NULL is accepted. */
void lorem_callq_free(lorem_callq *q);

#endif
