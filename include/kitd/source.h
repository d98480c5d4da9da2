/* SPDX-License-Identifier: MIT */
/* libkitd: one string names a registry (a "source").
 *
 *   consul://HOST:PORT/SERVICE?tag=T&passing=1&dc=DC
 *       Consul's agent at HOST:PORT; tag= may repeat (all must match);
 *       passing=1 (the default) or 0; dc= the datacenter.
 *       consul:///SERVICE?… and a plain SERVICE use Consul from the
 *       environment (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …; see consul.h).
 *   etcd://HOST:PORT/PREFIX
 *       etcd v3 at HOST:PORT, every key under /PREFIX (the path, its
 *       leading '/' included, is the key prefix).
 *   dns+srv://SERVER:PORT/NAME
 *       SRV records of NAME asked of the name server SERVER:PORT (numeric;
 *       IPv6 in brackets; port 53 when left out).
 *   dns+srv:///NAME
 *       the same through the servers of /etc/resolv.conf.
 *   file:///PATH
 *       the instances listed in the file at the absolute PATH (file.h).
 *
 * Scheme names are case-insensitive; SERVICE, NAME, PATH and the query
 * values may be percent-encoded. */
#ifndef KITD_SOURCE_H
#define KITD_SOURCE_H

#include <stddef.h>

#include "consul.h"
#include "ctx.h"
#include "dns.h"
#include "etcd.h"
#include "export.h"
#include "file.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_source_opts {
  size_t size; /* sizeof(kitd_source_opts), set by _init */
  /* Options for each kind (NULL: its defaults). What the source string
   * says (tags, passing, dc, server) overrides them. Borrowed for the call. */
  const kitd_consul_instancer_opts *consul;
  const kitd_dns_instancer_opts *dns;
  const kitd_file_instancer_opts *file;
  const kitd_etcd_opts *etcd; /* user, password, TLS */
  const kitd_etcd_instancer_opts *etcd_instancer;
  /* When not NULL, a failure's reason goes into its detail
   * ("unknown scheme 'http' in 'http://x' (expected consul://, …)"). */
  kitd_ctx *ctx;
} kitd_source_opts;

/* Fill `o` with the defaults (all NULL). Thread-safety: any thread. */
KITD_API void kitd_source_opts_init(kitd_source_opts *o);

/* A new instancer for the registry `source` names. `o` may be NULL
 * (defaults); `lg` is borrowed and must outlive the instancer (NULL:
 * silent; a failure is logged there at ERROR as well as put in o->ctx).
 * Returns 0 and a new instancer in *out (free with kitd_instancer_free()),
 * or KITD_EINVAL (an unknown scheme or a source that does not parse),
 * KITD_ECONFIG (a Consul environment variable, or etcd options, that do
 * not parse), KITD_ENOMEM, or what the kind's constructor returns;
 * *out is then untouched.
 * Thread-safety: any thread (reads the environment for Consul). */
KITD_API int kitd_source_instancer_new(const char *source, const kitd_source_opts *o,
                                       kitd_logger *lg, kitd_instancer **out);

#ifdef __cplusplus
}
#endif
#endif
