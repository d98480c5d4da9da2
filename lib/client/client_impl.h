/* Internal: what the directory needs of a client. Not API. */
#ifndef KITD_CLIENT_IMPL_H
#define KITD_CLIENT_IMPL_H

#include <stddef.h>

#include "kitd/client.h"

/* Why the client's set is empty (kitd_endpointer_explain of its default
 * pipeline); returns buf. */
const char *kitd__client_explain(kitd_client *c, char *buf, size_t cap);

#endif
