/* How a failed transfer or an error answer becomes a KITD_E* code + detail.
 * Retry callbacks depend on the split: ECONNECT means the request never
 * reached the instance (always safe to retry elsewhere), EIO means it may
 * have, ETIMEDOUT that the deadline ran out, EHTTP that the server answered. */
#include <jansson.h>
#include <string.h>

#include "http/http_impl.h"
#include "kitd/error.h"

int kitd__http_curl_err(CURLcode cc, const struct kitd__http_conn *c) {
  switch (cc) {
  case CURLE_OK:
    return 0;
  case CURLE_ABORTED_BY_CALLBACK: {
    int e = c->ctx ? kitd_ctx_err(c->ctx) : 0;
    return e ? e : KITD_ECANCELED;
  }
  case CURLE_WRITE_ERROR:
    return c->too_big ? KITD_ETOOBIG : KITD_EIO;
  case CURLE_OPERATION_TIMEDOUT:
    return KITD_ETIMEDOUT;
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return KITD_ECONNECT;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED:
    return KITD_ETLS;
  case CURLE_OUT_OF_MEMORY:
    return KITD_ENOMEM;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    return KITD_EINVAL;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_HTTP2:
    return KITD_EPROTO;
  default: /* SEND_ERROR, RECV_ERROR, GOT_NOTHING, PARTIAL_FILE, ... */
    return KITD_EIO;
  }
}

int kitd_http_error_text(const char *body, size_t len, char *buf, size_t cap) {
  if (buf && cap) buf[0] = '\0';
  if (!body || !buf || !cap) return 0;
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n')) i++;
  if (i == len || body[i] != '{') return 0; /* skip the parser for non-JSON */
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_DISABLE_EOF_CHECK, &jerr);
  const char *s = json_is_object(root) ? json_string_value(json_object_get(root, "error")) : NULL;
  int found = s != NULL;
  if (found) {
    size_t n = strlen(s);
    if (n >= cap) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
  }
  json_decref(root);
  return found;
}
