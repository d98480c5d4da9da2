/* SPDX-License-Identifier: MIT */
/* The one CURLcode -> KITD_E* map, for the Consul client and kitd_http.
 *
 * Retry policies act on the split, so each code says one thing:
 *   ECONNECT   the request never reached the server: safe to retry elsewhere.
 *   ETLS       the TLS handshake or certificate failed: nothing was sent.
 *   ETIMEDOUT  libcurl's own timeout ran out.
 *   EIO        the connection failed after the request may have been sent:
 *              the server may have acted on it.
 *   EPROTO     the server answered, but not in well-formed HTTP, or cut the
 *              answer short of its announced length.
 *   EINVAL     the URL or protocol we handed libcurl is not usable.
 *   ENOMEM     out of memory, in libcurl or in our write callback.
 *
 * CURLE_RECV_ERROR is EIO, not EPROTO (the Consul client used to say
 * EPROTO): it is a failed read on the socket (a reset, an unreachable
 * peer), not something wrong with the bytes that did arrive. Calling it
 * EPROTO would tell a retry policy that the server speaks bad HTTP when the
 * network failed. SEND_ERROR and GOT_NOTHING (the server closed without a
 * byte of answer) are EIO for the same reason. The plain-http fast path
 * (lib/http/conn.c) agrees: a failed recv() or an empty reply is EIO.
 *
 * CURLE_PARTIAL_FILE is EPROTO, not EIO (kitd_http used to say EIO): the
 * server did answer, and the answer ended before the length its own headers
 * announced. The fast path calls the same truncation EPROTO, and so did the
 * Consul client.
 *
 * Why a switch and not a table: the compiler checks the case labels are
 * distinct, and a code this libcurl lacks fails the build instead of
 * silently indexing past the end. Codes not listed are EIO: a transfer
 * that failed for a reason we do not single out may still have reached the
 * server. tests/unit/curl/test_errors.c holds the same table. */
#include "curl/kitd_curl.h"
#include "kitd/error.h"

int kitd__curl_code(CURLcode cc, int write_err) {
  switch (cc) {
  case CURLE_OK: return 0;
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: return KITD_ECONNECT;
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
  case CURLE_USE_SSL_FAILED: return KITD_ETLS;
  case CURLE_OPERATION_TIMEDOUT: return KITD_ETIMEDOUT;
  case CURLE_WRITE_ERROR:
    /* Our write callbacks refuse data only when it is too big or memory
     * ran out, and record which; anything else is a failed transfer. */
    return write_err ? write_err : KITD_EIO;
  case CURLE_OUT_OF_MEMORY: return KITD_ENOMEM;
  case CURLE_ABORTED_BY_CALLBACK: return KITD_ECANCELED;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL: return KITD_EINVAL;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_HTTP2:
  case CURLE_PARTIAL_FILE: return KITD_EPROTO;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING: return KITD_EIO;
  default: return KITD_EIO;
  }
}
