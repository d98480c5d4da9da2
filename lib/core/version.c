/* SPDX-License-Identifier: MIT */
/* The version of the library actually linked. */
#include "kitd/version.h"

unsigned kitd_version(void) { return KITD_VERSION_HEX; }

const char *kitd_version_string(void) { return KITD_VERSION_STRING; }
