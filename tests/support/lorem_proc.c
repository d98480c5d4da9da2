/* SPDX-License-Identifier: MIT */
/* Real lorem-server processes for tests (lorem_proc.h). */
#include "lorem_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "double.h"

int kitd_test_lorem_bin(char *bin, size_t cap) {
  const char *b = getenv("KITD_BUILD");
  snprintf(bin, cap, "%s/examples/lorem-server", b && *b ? b : "build");
  return access(bin, X_OK) == 0 ? 0 : -1;
}

/* The port of the server's first "action=listen ... port=N" log line. */
static int wait_port(const char *log) {
  for (long i = 0; i < kitd_test_ms(5000) / 20; i++) {
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
      const char *p = strstr(line, "action=listen") ? strstr(line, " port=") : NULL;
      if (p) {
        fclose(f);
        return atoi(p + 6);
      }
    }
    if (f) fclose(f);
    usleep(20000);
  }
  return -1;
}

int kitd_test_lorem_start(const char *const *extra, pid_t *pid, int *port) {
  char bin[512];
  if (kitd_test_lorem_bin(bin, sizeof bin)) return -1;
  const char *tmp = getenv("TMPDIR");
  char log[512];
  snprintf(log, sizeof log, "%s/kitd-lorem-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(log);
  if (fd < 0) return -1;
  const char *argv[32] = {bin, "-listen", "127.0.0.1:0", "-no-register", "-threads", "1"};
  int n = 6;
  for (; extra && *extra && n < 31; extra++) argv[n++] = *extra;
  argv[n] = NULL;
  pid_t p = fork();
  if (p == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* dies with the test, whatever ends it */
    dup2(fd, STDERR_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  close(fd);
  int got = p > 0 ? wait_port(log) : -1;
  if (got <= 0) {
    fprintf(stderr, "lorem-server did not start; its log:\n");
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
    if (f) fclose(f);
  }
  unlink(log); /* nothing left behind */
  if (got <= 0) {
    kitd_test_lorem_stop(p > 0 ? p : 0);
    return -1;
  }
  *pid = p;
  *port = got;
  return 0;
}

void kitd_test_lorem_stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}
