/* SPDX-License-Identifier: MIT */
/* Open connections counted per client address, for the per-address
 * connection limit. Entries exist only while their count is above zero,
 * so the table never holds more entries than there are connections. */
#ifndef LOREM_HTTP_ADDR_H
#define LOREM_HTTP_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct lorem_http_addr {
  uint8_t a[16]; /* IPv4 as its IPv4-mapped IPv6 form */
} lorem_http_addr;

typedef struct lorem_http_addrs lorem_http_addrs;

/* The key of a peer address (AF_INET or AF_INET6; others map to ::). */
void lorem_http_addr_of(const struct sockaddr_storage *ss, lorem_http_addr *out);

lorem_http_addrs *lorem_http_addrs_new(void);
void lorem_http_addrs_free(lorem_http_addrs *t);

/* Count one more connection from `a` unless it already has `limit`:
 * returns 1 (counted) or 0 (refused, or no memory). Thread-safety: any
 * thread. */
int lorem_http_addrs_acquire(lorem_http_addrs *t, const lorem_http_addr *a, long limit);

/* One connection from `a` closed. Thread-safety: any thread. */
void lorem_http_addrs_release(lorem_http_addrs *t, const lorem_http_addr *a);

#endif
