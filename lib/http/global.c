/* kitd_global_init: libkitd's only global set-up is libcurl's. */
#include <curl/curl.h>

#include "kitd/error.h"
#include "kitd/kitd.h"

int kitd_global_init(void) {
  return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : KITD_EINTERNAL;
}

void kitd_global_cleanup(void) { curl_global_cleanup(); }
