/* SPDX-License-Identifier: MIT */
/* Test helper: a real etcd (Debian etcd-server 3.4) on 127.0.0.1 at free
 * ports, in a throwaway data directory: start, wait until /health answers,
 * kill -9, restart on the same data directory and ports, stop (and remove
 * the directory), which is made under $TMPDIR (default /tmp). Plus one
 * JSON POST to it for setting up a test. */
#ifndef KITD_TEST_ETCD_SERVER_H
#define KITD_TEST_ETCD_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct etcd_server {
  char *dir; /* work directory (data dir and log inside) */
  char *url; /* "http://127.0.0.1:P" or "https://..." */
  char *ca;  /* CA file for https, or NULL */
  char *cert, *key;
  const char **extra; /* more etcd flags (NULL-terminated copy), or NULL */
  int client_port, peer_port;
  pid_t pid; /* 0: not running */
} etcd_server;

/* 1 if the etcd binary is there (tests skip otherwise). */
bool etcd_server_available(void);

/* Start a fresh etcd. With cert and key (files, copied), it serves https
 * and the helper verifies it with `ca`. `extra`: more flags (NULL-terminated,
 * copied; may be NULL). Returns 0 once it answers /health (within 20 s,
 * scaled), -1 otherwise (its log is printed). */
int etcd_server_start(etcd_server *s, const char *ca, const char *cert, const char *key,
                      const char *const *extra);
/* Start it again on the same ports and data directory. */
int etcd_server_restart(etcd_server *s);
/* Kill it, empty its data directory and start it again: a new cluster
 * whose revisions start over. */
int etcd_server_wipe(etcd_server *s);
/* kill -9 and reap. */
void etcd_server_kill(etcd_server *s);
/* Kill, reap and remove the directory. */
void etcd_server_stop(etcd_server *s);

/* POST `body` to `path` ("/v3/kv/put") with `token` (may be NULL) as the
 * Authorization header. Returns the HTTP status (0: no answer) and the
 * answer in *resp (malloc'd; may be NULL when not wanted). */
int etcd_server_post(etcd_server *s, const char *path, const char *body, const char *token,
                     char **resp);

/* put `key` = `value` (plain strings) and return the new revision (<= 0 on
 * failure); delete `key` likewise. */
long etcd_server_put(etcd_server *s, const char *key, const char *value);
long etcd_server_del(etcd_server *s, const char *key);
/* The current revision, or <= 0. */
long etcd_server_revision(etcd_server *s);

#endif
