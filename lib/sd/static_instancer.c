/* SPDX-License-Identifier: MIT */
/* The static instancer: a set given by the program, changeable at run time. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kitd/error.h"
#include "sd/instancer_impl.h"

static void static_destroy(kitd_instancer *in) { free(in); }

static const struct kitd__instancer_ops static_ops = {"static", NULL, static_destroy};

/* Records for `addresses`, in a new array; 0, KITD_EINVAL or KITD_ENOMEM. */
static int records_of(const char *const *addresses, size_t count, kitd_instance ***out) {
  if (count && !addresses) return KITD_EINVAL;
  kitd_instance **v = kitd__malloc((count ? count : 1) * sizeof *v);
  if (!v) return KITD_ENOMEM;
  for (size_t i = 0; i < count; i++) {
    int rc = kitd_instance_new(addresses[i], &v[i]);
    if (rc) {
      kitd_instance_list_free(v, i);
      return rc;
    }
  }
  *out = v;
  return 0;
}

int kitd_static_instancer_new(const char *const *addresses, size_t count, kitd_instancer **out) {
  if (!out) return KITD_EINVAL;
  kitd_instance **v;
  int rc = records_of(addresses, count, &v);
  if (rc) return rc;
  kitd_instancer *in = kitd__malloc(sizeof *in);
  if (!in) {
    kitd_instance_list_free(v, count);
    return KITD_ENOMEM;
  }
  rc = kitd__instancer_init(in, &static_ops);
  if (!rc) rc = kitd__instancer_set_what(in, "instances of the static list");
  if (rc) {
    if (in->cond_ok) kitd_instancer_free(in);
    else free(in);
    kitd_instance_list_free(v, count);
    return rc;
  }
  rc = kitd__instancer_publish(in, v, count);
  if (rc) {
    kitd_instancer_free(in);
    return rc;
  }
  *out = in;
  return 0;
}

int kitd_static_instancer_set(kitd_instancer *in, const char *const *addresses, size_t count) {
  if (!in || in->ops != &static_ops) return KITD_EINVAL;
  kitd_instance **v;
  int rc = records_of(addresses, count, &v);
  if (rc) return rc;
  return kitd__instancer_publish(in, v, count);
}

int kitd_static_instancer_set_records(kitd_instancer *in, kitd_instance *const *records,
                                      size_t count) {
  if (!in || in->ops != &static_ops || (count && !records)) return KITD_EINVAL;
  for (size_t i = 0; i < count; i++)
    if (!records[i]) return KITD_EINVAL;
  kitd_instance **v = kitd__malloc((count ? count : 1) * sizeof *v);
  if (!v) return KITD_ENOMEM;
  for (size_t i = 0; i < count; i++) v[i] = kitd_instance_ref(records[i]);
  return kitd__instancer_publish(in, v, count);
}

int kitd_static_instancer_fail(kitd_instancer *in, int err, const char *detail) {
  if (!in || in->ops != &static_ops || err >= 0) return KITD_EINVAL;
  kitd__instancer_publish_error(in, err, detail);
  return 0;
}
