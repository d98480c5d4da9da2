/* SPDX-License-Identifier: MIT */
/* A fixed pool of worker threads for handlers that block (the gateways'
 * upstream calls). Jobs are intrusive (a lorem_http_job inside the
 * caller's object), so the queue allocates nothing and is bounded by the
 * objects that exist: the server queues at most one job per connection. */
#ifndef LOREM_HTTP_POOL_H
#define LOREM_HTTP_POOL_H

typedef struct lorem_http_job {
  struct lorem_http_job *next;
} lorem_http_job;

typedef struct lorem_http_pool lorem_http_pool;

/* Start `n` threads (n >= 1) that call run(arg, job) for each job pushed.
 * Returns the pool or NULL. */
lorem_http_pool *lorem_http_pool_new(int n, void (*run)(void *arg, lorem_http_job *job), void *arg);

/* Queue a job (first in, first out). Thread-safety: any thread. */
void lorem_http_pool_push(lorem_http_pool *p, lorem_http_job *job);

/* Let the running jobs finish, join the threads and free the pool. Jobs
 * still queued are not run: they come back as a list (the caller owns
 * them). NULL is accepted. */
lorem_http_job *lorem_http_pool_free(lorem_http_pool *p);

#endif
