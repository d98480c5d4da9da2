/* SPDX-License-Identifier: MIT */
/* Internal: what an attempt of a kitd_retry call writes into the caller's
 * ctx and its avoid list; shared by the retry loop (retry.c) and its
 * hedged first attempt (hedge.c). */
#ifndef KITD_LB_ATTEMPT_H
#define KITD_LB_ATTEMPT_H

#include <string.h>

#include "core/instance_impl.h"
#include "kitd/ctx.h"
#include "kitd/endpoint.h"
#include "kitd/error.h"

/* Is `e` among the n endpoints of `avoid`? */
static inline int kitd__avoided(kitd_endpoint *const *avoid, unsigned n, const kitd_endpoint *e) {
  for (unsigned i = 0; i < n; i++)
    if (avoid[i] == e) return 1;
  return 0;
}

/* An instance's address into a ctx's instance field, with the length the
 * record keeps, the one write the success path adds. Finding the length
 * here (strnlen then memcpy, or memccpy) cost 4 to 5 ns of a 23 ns call.
 * Most addresses are 8 to 32 bytes ("10.0.0.1:8080"): two overlapping
 * copies of a fixed size, which compile to a few moves, instead of a
 * memcpy call. */
static inline void kitd__copy_address(char dst[KITD_INSTANCE_MAX], const kitd_instance *rec) {
  size_t n = rec->address_len < KITD_ADDRESS_MAX ? rec->address_len : KITD_ADDRESS_MAX;
  const char *src = rec->address;
  if (n >= 8 && n <= 16) {
    memcpy(dst, src, 8);
    memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n > 16 && n <= 32) {
    memcpy(dst, src, 16);
    memcpy(dst + n - 16, src + n - 16, 16);
  } else {
    memcpy(dst, src, n);
  }
  dst[n] = '\0';
}

/* A failed attempt on endpoint `ep` of `inst`: recorded in ctx (its detail,
 * or the code's text, becomes the ctx's detail), and `ep` added to the
 * avoid list (of at most `max`) unless it is there. */
static inline void kitd__attempt_failed(kitd_ctx *ctx, int rc, int status, int64_t lat,
                                        const char *inst, const char *detail, kitd_endpoint **avoid,
                                        unsigned *navoid, unsigned max, kitd_endpoint *ep) {
  if (!detail[0]) detail = kitd_strerror(rc);
  kitd_ctx_add_attempt(ctx, rc, status, lat, inst, detail);
  kitd_ctx_set_detail(ctx, "%s", detail);
  if (*navoid < max && !kitd__avoided(avoid, *navoid, ep)) avoid[(*navoid)++] = ep;
}

#endif
