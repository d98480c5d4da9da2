/* SPDX-License-Identifier: MIT */
/* The watched file instancer: inotify on the file's directory, so that a
 * rename over the file (the atomic way to replace it) is seen as well as
 * an edit in place. Watching the file itself would follow the old inode
 * after a rename and miss every later change. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/backoff.h"
#include "core/log_impl.h"
#include "file/file_impl.h"
#include "kitd/ctx.h"
#include "kitd/error.h"
#include "kitd/file.h"
#include "sd/instancer_impl.h"

#define DIR_MASK                                                                                   \
  (IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB |  \
   IN_DELETE_SELF | IN_MOVE_SELF)

struct file_instancer {
  struct kitd_instancer base; /* first: kitd_instancer * points here */
  char *path, *dir, *name;    /* name: the last component, and the label */
  kitd_file_instancer_opts o;
  kitd_logger *lg;
  int wake_fd, ino_fd, wd;
  pthread_t th;
  bool started;
};

void kitd_file_instancer_opts_init(kitd_file_instancer_opts *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->size = sizeof *o;
  o->max_bytes = 16u << 20;
  o->settle_ms = 20;
}

#define log_file(fi, lvl, ...)                                                                     \
  kitd__log_about((fi)->lg, lvl, "file", "path", (fi)->path, __VA_ARGS__)

static void report(struct file_instancer *fi, int err, const char *detail) {
  kitd__instancer_publish_error(&fi->base, err, detail);
  if (!kitd_log_enabled(fi->lg, KITD_LOG_WARN)) return;
  char *q = kitd__log_quote_dup(detail);
  log_file(fi, KITD_LOG_WARN, "msg=\"keeping the last good set\" err=%s detail=%s",
           kitd_err_name(err), q ? q : "?");
  free(q);
}

/* Read the whole file (at most max_bytes). Returns 0 with a new buffer,
 * or an error with a new detail. */
static int slurp(struct file_instancer *fi, char **buf, size_t *len, char **detail) {
  *buf = NULL;
  *len = 0;
  int fd = open(fi->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    *detail = kitd__asprintf("%s: %s", fi->name, strerror(e));
    return e == ENOENT ? KITD_ENOTFOUND : KITD_EIO;
  }
  size_t cap = 4096, n = 0;
  char *b = kitd__malloc(cap);
  int rc = b ? 0 : KITD_ENOMEM;
  while (!rc) {
    if (n == cap) {
      if (cap > fi->o.max_bytes) {
        rc = KITD_ETOOBIG;
        *detail = kitd__asprintf("%s: larger than %zu bytes", fi->name, fi->o.max_bytes);
        break;
      }
      char *nb = kitd__realloc(b, cap * 2);
      if (!nb) {
        rc = KITD_ENOMEM;
        break;
      }
      b = nb;
      cap *= 2;
    }
    ssize_t k = read(fd, b + n, cap - n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) {
      int e = errno;
      rc = KITD_EIO;
      *detail = kitd__asprintf("%s: %s", fi->name, strerror(e));
    } else if (k == 0) {
      break;
    } else {
      n += (size_t)k;
    }
  }
  close(fd);
  if (!rc && n > fi->o.max_bytes) {
    rc = KITD_ETOOBIG;
    *detail = kitd__asprintf("%s: larger than %zu bytes", fi->name, fi->o.max_bytes);
  }
  if (rc) {
    free(b);
    return rc;
  }
  *buf = b;
  *len = n;
  return 0;
}

/* Read and publish. Returns KITD_ESTOPPED once stopped, else 0. */
static int reload(struct file_instancer *fi) {
  char *buf, *detail = NULL;
  size_t len;
  int rc = slurp(fi, &buf, &len, &detail);
  kitd_instance **set = NULL;
  size_t n = 0;
  if (!rc) {
    rc = kitd__file_parse(fi->name, buf, len, &set, &n, &detail);
    free(buf);
  }
  if (rc) {
    report(fi, rc, detail ? detail : kitd_strerror(rc));
    free(detail);
    return kitd__instancer_stopped(&fi->base) ? KITD_ESTOPPED : 0;
  }
  log_file(fi, KITD_LOG_INFO, "msg=loaded instances=%zu", n);
  return kitd__instancer_publish(&fi->base, set, n) == KITD_ESTOPPED ? KITD_ESTOPPED : 0;
}

/* Wait for the inotify fd, the stop fd, or timeout_ms (-1: none).
 * Returns -1 stopped, 1 inotify readable, 0 timeout. */
static int wait_events(struct file_instancer *fi, int64_t timeout_ms) {
  for (;;) {
    struct pollfd p[2] = {{fi->wake_fd, POLLIN, 0}, {fi->ino_fd, POLLIN, 0}};
    int np = fi->wd >= 0 ? 2 : 1;
    int r = poll(p, (nfds_t)np, timeout_ms < 0 ? -1 : (int)timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return 0;
    if (p[0].revents & POLLIN) return -1;
    return r > 0 && np == 2 && (p[1].revents & POLLIN) ? 1 : 0;
  }
}

/* Drain inotify; returns 1 if our file (or the directory itself) changed,
 * and clears wd when the directory watch is gone. */
static int drain(struct file_instancer *fi) {
  /* Aligned as the kernel writes struct inotify_event; one event is at most
   * sizeof(struct inotify_event) + NAME_MAX + 1 bytes (the kernel's bound). */
  char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
  int hit = 0;
  for (;;) {
    ssize_t n = read(fi->ino_fd, buf, sizeof buf);
    if (n <= 0) break;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        hit = 1;
        if (ev->mask & IN_IGNORED) fi->wd = -1;
      } else if (ev->mask & IN_Q_OVERFLOW) {
        hit = 1;
      } else if (ev->len && strcmp(ev->name, fi->name) == 0) {
        hit = 1;
      }
      p += sizeof *ev + ev->len;
    }
  }
  return hit;
}

static void *watch(void *arg) {
  struct file_instancer *fi = arg;
  unsigned fails = 0;
  bool dirty = true;
  int64_t due = 0; /* kitd_now_ns() when a dirty file is read */
  for (;;) {
    if (fi->wd < 0) {
      fi->wd = inotify_add_watch(fi->ino_fd, fi->dir, DIR_MASK | IN_ONLYDIR);
      if (fi->wd < 0) {
        int e = errno;
        char *d = kitd__asprintf("%s: cannot watch its directory: %s", fi->name, strerror(e));
        report(fi, e == ENOENT ? KITD_ENOTFOUND : KITD_EIO, d ? d : "cannot watch");
        free(d);
        if (kitd__instancer_stopped(&fi->base)) break;
        fails++;
        int64_t ms = kitd__backoff_ns(100000000, 10000000000LL, fails, KITD__JITTER_HALF) / 1000000;
        if (wait_events(fi, ms) < 0) break;
        continue;
      }
      fails = 0;
      dirty = true; /* the file may have changed while unwatched */
      due = 0;
    }
    if (dirty) {
      int64_t left = (due - kitd_now_ns()) / 1000000;
      if (left <= 0) {
        dirty = false;
        if (reload(fi) == KITD_ESTOPPED) break;
        continue;
      }
      int w = wait_events(fi, left);
      if (w < 0) break;
      if (w > 0 && drain(fi)) due = kitd_now_ns() + fi->o.settle_ms * 1000000;
      continue;
    }
    int w = wait_events(fi, -1);
    if (w < 0) break;
    if (w > 0 && drain(fi)) {
      dirty = true;
      due = kitd_now_ns() + fi->o.settle_ms * 1000000;
    }
  }
  return NULL;
}

static void fi_stop(kitd_instancer *in) {
  struct file_instancer *fi = (struct file_instancer *)in;
  uint64_t one = 1;
  if (fi->wake_fd >= 0 && write(fi->wake_fd, &one, sizeof one) < 0) {
    /* only on overflow, when it is readable anyway */
  }
  if (fi->started) {
    pthread_join(fi->th, NULL);
    fi->started = false;
  }
}

static void fi_free_fields(struct file_instancer *fi) {
  if (fi->wake_fd >= 0) close(fi->wake_fd);
  if (fi->ino_fd >= 0) close(fi->ino_fd);
  free(fi->path);
  free(fi->dir);
  free(fi->name);
  free(fi);
}

static void fi_destroy(kitd_instancer *in) { fi_free_fields((struct file_instancer *)in); }

static const struct kitd__instancer_ops file_ops = {"file", fi_stop, fi_destroy};

int kitd_file_instancer_new(const char *path, const kitd_file_instancer_opts *o, kitd_logger *lg,
                            kitd_instancer **out) {
  if (!path || !*path || !out) return KITD_EINVAL;
  kitd_file_instancer_opts ro;
  kitd_file_instancer_opts_init(&ro);
  if (o) {
    if (o->size < offsetof(kitd_file_instancer_opts, settle_ms) + sizeof o->settle_ms ||
        o->size > sizeof *o)
      return KITD_EINVAL;
    if (o->max_bytes) ro.max_bytes = o->max_bytes;
    if (o->settle_ms >= 0) ro.settle_ms = o->settle_ms;
  }
  size_t plen = strlen(path);
  if (path[plen - 1] == '/') return KITD_EINVAL; /* a directory */
  struct file_instancer *fi = kitd__calloc(1, sizeof *fi);
  if (!fi) return KITD_ENOMEM;
  fi->wake_fd = fi->ino_fd = fi->wd = -1;
  fi->o = ro;
  fi->lg = lg;
  int e = 0;
  const char *slash = strrchr(path, '/');
  fi->path = kitd__strdup(path);
  fi->name = kitd__strdup(slash ? slash + 1 : path);
  if (slash == path) fi->dir = kitd__strdup("/");
  else if (slash) {
    if ((fi->dir = kitd__malloc((size_t)(slash - path) + 1))) {
      memcpy(fi->dir, path, (size_t)(slash - path));
      fi->dir[slash - path] = '\0';
    }
  } else {
    fi->dir = kitd__strdup(".");
  }
  if (!fi->path || !fi->name || !fi->dir) e = KITD_ENOMEM;
  if (!e && (fi->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) e = KITD_EIO;
  if (!e && (fi->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) e = KITD_EIO;
  if (e) {
    fi_free_fields(fi);
    return e;
  }
  if ((e = kitd__instancer_init(&fi->base, &file_ops))) {
    fi_free_fields(fi);
    return e;
  }
  char *what = kitd__asprintf("instances listed in '%s'", path);
  e = what ? kitd__instancer_set_what(&fi->base, what) : KITD_ENOMEM;
  free(what);
  if (e) {
    kitd_instancer_free(&fi->base);
    return e;
  }
  if (pthread_create(&fi->th, NULL, watch, fi) != 0) {
    kitd_instancer_free(&fi->base);
    return KITD_EINTERNAL;
  }
  fi->started = true;
  *out = &fi->base;
  return 0;
}
