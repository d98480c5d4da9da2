/* SPDX-License-Identifier: MIT */
/* libkitd: the watched file instancer.
 *
 * The file lists the instances, in one of two forms:
 * - lines: "host:port [weight]" per line; "#" starts a comment; blank
 *   lines are skipped. An IPv6 host goes in brackets ("[::1]:8080").
 * - JSON (the first non-blank character is '['): an array of objects
 *   {"address": "host:port", "weight": 3, "tags": ["a"],
 *    "meta": {"k": "v"}, "zone": "z"}; only "address" is required.
 *
 * The file is read at start and again on every change, seen with inotify
 * on its directory: an edit in place, a write to a temporary file then a
 * rename over it (how editors, Ansible and Kubernetes' ConfigMap volumes
 * update a file), a delete and a re-create. A file that is missing or
 * does not parse keeps the last good set (an error event whose detail
 * names the file and line: "lorem.list:3: not host:port"). */
#ifndef KITD_FILE_H
#define KITD_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "instancer.h"
#include "log.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kitd_file_instancer_opts {
  size_t size;       /* sizeof(kitd_file_instancer_opts), set by _init */
  size_t max_bytes;  /* a larger file is an error (KITD_ETOOBIG); default 16 MiB */
  int64_t settle_ms; /* wait this long after the last change before reading
                        (a writer may still be writing); default 20 */
} kitd_file_instancer_opts;

/* Fill `o` with the defaults above. Thread-safety: any thread. */
KITD_API void kitd_file_instancer_opts_init(kitd_file_instancer_opts *o);

/* A new instancer for the file at `path` (copied), watched on a thread of
 * its own. The file need not exist yet (an error event until it does).
 * `o` is copied (NULL: defaults; a size this library does not know:
 * KITD_EINVAL). `lg` is borrowed and must outlive the instancer.
 * Returns 0 and a new instancer in *out (free with kitd_instancer_free()),
 * or KITD_EINVAL, KITD_ENOMEM, KITD_EIO (inotify unavailable) or
 * KITD_EINTERNAL (no thread); *out is then untouched.
 * Thread-safety: any thread. */
KITD_API int kitd_file_instancer_new(const char *path, const kitd_file_instancer_opts *o,
                                     kitd_logger *lg, kitd_instancer **out);

#ifdef __cplusplus
}
#endif
#endif
