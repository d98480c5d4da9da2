/* SPDX-License-Identifier: MIT */
/* Test helper: real lorem-server processes on 127.0.0.1, for the tests and
 * benches that call a service over the network. */
#ifndef KITD_TEST_LOREM_PROC_H
#define KITD_TEST_LOREM_PROC_H

#include <sys/types.h>

/* The lorem-server of the build (KITD_BUILD, default "build") into bin;
 * 0, or -1 when it is not built. */
int kitd_test_lorem_bin(char *bin, size_t cap);

/* Start it on 127.0.0.1 port 0 with -no-register, -threads 1 and the
 * flags in `extra` (NULL-terminated; NULL: none). It dies with the test
 * (PR_SET_PDEATHSIG). Returns 0 with *pid and *port once it logs its
 * port (within 5 s, scaled), else -1 (the process is killed). */
int kitd_test_lorem_start(const char *const *extra, pid_t *pid, int *port);

/* SIGKILL and reap it; 0 is ignored. */
void kitd_test_lorem_stop(pid_t pid);

#endif
