/* SPDX-License-Identifier: MIT */
/* Test helper: the real dnsmasq (Debian dnsmasq-base) on 127.0.0.1 at a
 * free port, with its query log in a file, restartable with new flags. */
#ifndef KITD_TEST_DNSMASQ_SERVER_H
#define KITD_TEST_DNSMASQ_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct kitd_test_dnsmasq {
  pid_t pid; /* 0: not running */
  int port;
  char *dir;   /* a temporary directory: the log and the hosts file */
  char *log;   /* dir/queries.log (--log-queries) */
  char *hosts; /* dir/hosts (--addn-hosts; re-read on SIGHUP) */
  char *addr;  /* "127.0.0.1:PORT" */
} kitd_test_dnsmasq;

/* True if a dnsmasq binary is on PATH or in /usr/sbin. */
bool kitd_test_dnsmasq_available(void);

/* Start dnsmasq with the base flags (loopback, no resolv.conf, no
 * /etc/hosts, --local=/test/ so unknown names under .test are NXDOMAIN,
 * the query log, the hosts file) plus `args` (NULL-terminated, may be
 * NULL), and wait until it answers. Returns 0, or -1 (printed). */
int kitd_test_dnsmasq_start(kitd_test_dnsmasq *d, const char *const *args);

/* Stop it (SIGTERM, wait) and start it again on the same port with
 * `args`. Returns 0 or -1. */
int kitd_test_dnsmasq_restart(kitd_test_dnsmasq *d, const char *const *args);

/* Stop it (SIGKILL: a server that dies). The port stays reserved in d. */
void kitd_test_dnsmasq_kill(kitd_test_dnsmasq *d);

/* Replace the hosts file's content and send SIGHUP. Returns 0 or -1. */
int kitd_test_dnsmasq_set_hosts(kitd_test_dnsmasq *d, const char *content);

/* Number of lines of the query log that contain `needle`. */
long kitd_test_dnsmasq_count(const kitd_test_dnsmasq *d, const char *needle);

/* Kill it and remove its files. */
void kitd_test_dnsmasq_free(kitd_test_dnsmasq *d);

#endif
