/* SPDX-License-Identifier: MIT */
/* libkitd's event loop (loop.h): one thread, epoll, an eventfd, a timer
 * heap and the libcurl multi driver of the asynchronous transfers.
 *
 * An epoll event's data says what is ready: 0 the eventfd, an odd value a
 * libcurl socket (fd * 2 + 1: libcurl keeps its own state per socket, so
 * nothing of ours can go stale), anything else a struct kitd__loop_io.
 * Timers are a binary min-heap of pointers; epoll_wait sleeps until the
 * earliest, rounded up to the millisecond. */
#include "http/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/alloc.h"
#include "kitd/ctx.h"
#include "kitd/error.h"

#define LOOP_EVENTS 256

struct kitd__loop {
  pthread_t thread;
  int ep, efd;
  long refs;                           /* under g_mu */
  atomic_int stop;                     /* the thread ends its loop */
  pthread_mutex_t mu;                  /* guards the posted queue */
  struct kitd__loop_task *head, *tail; /* posted, FIFO */
  int awake;                           /* under mu: the loop runs tasks
                                         before it sleeps again */
  struct kitd__loop_timer **heap;      /* loop thread only */
  size_t nheap, capheap;
  kitd__curl_multi *curl;
  struct kitd__loop_timer curl_timer;
  struct kitd__loop_task *at_stop; /* loop thread only */
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static kitd__loop *g_loop;   /* the running loop */
static kitd__loop *g_zombie; /* stopped from its own thread: to join */
static __thread const kitd__loop *t_here __attribute__((tls_model("initial-exec")));

int kitd__loop_here(const kitd__loop *l) { return l && t_here == l; }

/* ---- timers ---- */

static void heap_swap(kitd__loop *l, size_t i, size_t j) {
  struct kitd__loop_timer *t = l->heap[i];
  l->heap[i] = l->heap[j];
  l->heap[j] = t;
  l->heap[i]->slot = i + 1;
  l->heap[j]->slot = j + 1;
}

static void heap_up(kitd__loop *l, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (l->heap[p]->at <= l->heap[i]->at) break;
    heap_swap(l, i, p);
    i = p;
  }
}

static void heap_down(kitd__loop *l, size_t i) {
  for (;;) {
    size_t a = 2 * i + 1, b = a + 1, m = i;
    if (a < l->nheap && l->heap[a]->at < l->heap[m]->at) m = a;
    if (b < l->nheap && l->heap[b]->at < l->heap[m]->at) m = b;
    if (m == i) return;
    heap_swap(l, i, m);
    i = m;
  }
}

void kitd__loop_timer_cancel(kitd__loop *l, struct kitd__loop_timer *t) {
  if (!t->slot) return;
  size_t i = t->slot - 1;
  t->slot = 0;
  l->nheap--;
  if (i == l->nheap) return;
  l->heap[i] = l->heap[l->nheap];
  l->heap[i]->slot = i + 1;
  heap_down(l, i);
  heap_up(l, i);
}

int kitd__loop_timer_set(kitd__loop *l, struct kitd__loop_timer *t, int64_t at) {
  if (t->slot) {
    size_t i = t->slot - 1;
    int64_t old = t->at;
    t->at = at;
    if (at < old) heap_up(l, i);
    else heap_down(l, i);
    return 0;
  }
  if (l->nheap == l->capheap) {
    size_t cap = l->capheap ? l->capheap * 2 : 256;
    struct kitd__loop_timer **h = kitd__realloc(l->heap, cap * sizeof *h);
    if (!h) return KITD_ENOMEM;
    l->heap = h;
    l->capheap = cap;
  }
  t->at = at;
  l->heap[l->nheap] = t;
  t->slot = ++l->nheap;
  heap_up(l, l->nheap - 1);
  return 0;
}

/* Fire every timer that is due (a handler may arm others). */
static void run_timers(kitd__loop *l) {
  if (!l->nheap) return;
  int64_t now = kitd_now_ns();
  while (l->nheap && l->heap[0]->at <= now) {
    struct kitd__loop_timer *t = l->heap[0];
    kitd__loop_timer_cancel(l, t);
    t->on(t);
  }
}

/* ---- file descriptors ---- */

int kitd__loop_io_add(kitd__loop *l, struct kitd__loop_io *w, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
    return errno == ENOMEM || errno == ENOSPC ? KITD_ENOMEM : KITD_EINTERNAL;
  w->fd = fd;
  return 0;
}

int kitd__loop_io_mod(kitd__loop *l, struct kitd__loop_io *w, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = w};
  return epoll_ctl(l->ep, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? KITD_EINTERNAL : 0;
}

void kitd__loop_io_del(kitd__loop *l, struct kitd__loop_io *w) {
  if (w->fd < 0) return;
  epoll_ctl(l->ep, EPOLL_CTL_DEL, w->fd, NULL);
  w->fd = -1;
}

/* ---- libcurl's sockets and timer ---- */

static int curl_watch(void *arg, curl_socket_t fd, int what) {
  kitd__loop *l = arg;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
    return 0;
  }
  struct epoll_event ev = {.data.u64 = (uint64_t)fd * 2 + 1};
  if (what & CURL_POLL_IN) ev.events |= EPOLLIN;
  if (what & CURL_POLL_OUT) ev.events |= EPOLLOUT;
  if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno == ENOENT && epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  return KITD_EINTERNAL;
}

static void curl_timer_fired(struct kitd__loop_timer *t) {
  kitd__loop *l = (kitd__loop *)((char *)t - offsetof(kitd__loop, curl_timer));
  kitd__curl_multi_action(l->curl, CURL_SOCKET_TIMEOUT, 0);
}

static void curl_set_timer(void *arg, long ms) {
  kitd__loop *l = arg;
  if (ms < 0) kitd__loop_timer_cancel(l, &l->curl_timer);
  else kitd__loop_timer_set(l, &l->curl_timer, kitd_now_ns() + (int64_t)ms * 1000000);
}

kitd__curl_multi *kitd__loop_curl(kitd__loop *l) {
  if (!l->curl) {
    kitd__curl_loop_ops ops = {curl_watch, curl_set_timer, l};
    l->curl_timer.on = curl_timer_fired;
    if (kitd__curl_multi_new(&ops, &l->curl)) l->curl = NULL;
  }
  return l->curl;
}

void kitd__loop_at_stop(kitd__loop *l, struct kitd__loop_task *t) {
  t->next = l->at_stop;
  l->at_stop = t;
}

/* ---- posted tasks ---- */

void kitd__loop_post(kitd__loop *l, struct kitd__loop_task *t) {
  t->next = NULL;
  pthread_mutex_lock(&l->mu);
  if (l->tail) l->tail->next = t;
  else l->head = t;
  l->tail = t;
  int wake = !l->awake;
  l->awake = 1;
  pthread_mutex_unlock(&l->mu);
  if (wake && !kitd__loop_here(l)) {
    uint64_t one = 1;
    ssize_t n = write(l->efd, &one, sizeof one);
    (void)n; /* a full counter still wakes the loop */
  }
}

/* Run what was posted; 1 if there was anything. */
static int run_tasks(kitd__loop *l) {
  pthread_mutex_lock(&l->mu);
  struct kitd__loop_task *t = l->head;
  l->head = l->tail = NULL;
  pthread_mutex_unlock(&l->mu);
  int any = t != NULL;
  while (t) {
    struct kitd__loop_task *next = t->next;
    t->fn(t);
    t = next;
  }
  return any;
}

/* ---- the thread ---- */

static int wait_ms(kitd__loop *l) {
  pthread_mutex_lock(&l->mu);
  int busy = l->head != NULL;
  if (!busy) l->awake = 0; /* from now on a post writes the eventfd */
  pthread_mutex_unlock(&l->mu);
  if (busy) return 0;
  if (!l->nheap) return -1;
  int64_t left = l->heap[0]->at - kitd_now_ns();
  if (left <= 0) return 0;
  int64_t ms = (left + 999999) / 1000000;
  return ms > 60000 ? 60000 : (int)ms;
}

static void *loop_main(void *arg) {
  kitd__loop *l = arg;
  t_here = l;
  pthread_setname_np(pthread_self(), "kitd-loop"); /* for top -H, perf */
  struct epoll_event evs[LOOP_EVENTS];
  while (!atomic_load_explicit(&l->stop, memory_order_acquire)) {
    run_tasks(l);
    run_timers(l);
    /* A task or timer may have released the last reference (a client
     * freed from a done callback): with nothing left to wake it, the
     * wait below would never end, and the join at unload would hang. */
    if (atomic_load_explicit(&l->stop, memory_order_acquire)) break;
    int n = epoll_wait(l->ep, evs, LOOP_EVENTS, wait_ms(l));
    pthread_mutex_lock(&l->mu);
    l->awake = 1;
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < n; i++) {
      uint64_t d = evs[i].data.u64;
      uint32_t e = evs[i].events;
      if (d == 0) {
        uint64_t v;
        ssize_t r = read(l->efd, &v, sizeof v);
        (void)r;
      } else if (d & 1) {
        int cs = 0;
        if (e & (EPOLLIN | EPOLLHUP)) cs |= CURL_CSELECT_IN;
        if (e & EPOLLOUT) cs |= CURL_CSELECT_OUT;
        if (e & EPOLLERR) cs |= CURL_CSELECT_ERR;
        if (l->curl) kitd__curl_multi_action(l->curl, (curl_socket_t)(d >> 1), cs);
      } else {
        struct kitd__loop_io *w = evs[i].data.ptr;
        if (w->fd >= 0) w->on(w, e);
      }
    }
  }
  run_tasks(l); /* what the last handlers posted (frees) */
  for (struct kitd__loop_task *t = l->at_stop, *next; t; t = next) {
    next = t->next;
    t->fn(t);
  }
  return NULL;
}

static void loop_free(kitd__loop *l) {
  for (size_t i = 0; i < l->nheap; i++) l->heap[i]->slot = 0;
  kitd__curl_multi_free(l->curl);
  free(l->heap);
  close(l->ep);
  close(l->efd);
  pthread_mutex_destroy(&l->mu);
  free(l);
}

static void join_zombie(void) {
  kitd__loop *z = g_zombie;       /* under g_mu */
  if (kitd__loop_here(z)) return; /* exit() from its own thread: leave it */
  g_zombie = NULL;
  if (z) {
    pthread_join(z->thread, NULL);
    loop_free(z);
  }
}

int kitd__loop_acquire(kitd__loop **out) {
  pthread_mutex_lock(&g_mu);
  if (g_loop) {
    g_loop->refs++;
    *out = g_loop;
    pthread_mutex_unlock(&g_mu);
    return 0;
  }
  join_zombie();
  int rc = KITD_ENOMEM;
  kitd__loop *l = kitd__calloc(1, sizeof *l);
  if (!l) goto out;
  l->ep = epoll_create1(EPOLL_CLOEXEC);
  l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rc = KITD_EINTERNAL;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
  if (l->ep < 0 || l->efd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev) < 0 ||
      pthread_mutex_init(&l->mu, NULL)) {
    if (l->ep >= 0) close(l->ep);
    if (l->efd >= 0) close(l->efd);
    free(l);
    goto out;
  }
  atomic_init(&l->stop, 0);
  l->awake = 1;
  l->refs = 1;
  if (pthread_create(&l->thread, NULL, loop_main, l)) {
    l->curl = NULL;
    loop_free(l);
    goto out;
  }
  g_loop = l;
  *out = l;
  rc = 0;
out:
  pthread_mutex_unlock(&g_mu);
  return rc;
}

void kitd__loop_release(kitd__loop *l) {
  if (!l) return;
  pthread_mutex_lock(&g_mu);
  int last = --l->refs == 0;
  if (last) {
    g_loop = NULL;
    if (kitd__loop_here(l)) g_zombie = l; /* it cannot join itself */
  }
  pthread_mutex_unlock(&g_mu);
  if (!last) return;
  atomic_store_explicit(&l->stop, 1, memory_order_release);
  if (kitd__loop_here(l)) return;
  uint64_t one = 1;
  ssize_t n = write(l->efd, &one, sizeof one);
  (void)n;
  pthread_join(l->thread, NULL);
  loop_free(l);
}

/* A loop that stopped from its own thread, joined when the library goes. */
__attribute__((destructor)) static void loop_unload(void) {
  pthread_mutex_lock(&g_mu);
  join_zombie();
  pthread_mutex_unlock(&g_mu);
}
