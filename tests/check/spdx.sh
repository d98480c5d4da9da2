#!/bin/sh
# SPDX-License-Identifier: MIT
# Every C source and header (library, headers, examples, tests, the Consul
# double) names its licence in its first lines:
#   /* SPDX-License-Identifier: MIT */
set -eu
missing=""
n=0
for f in $(find include lib examples tests -name '*.[ch]' | sort); do
  head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT' || missing="$missing
  $f"
  n=$((n + 1))
done
if [ -n "$missing" ]; then
  echo "no 'SPDX-License-Identifier: MIT' in the first 3 lines of:$missing"
  echo "add /* SPDX-License-Identifier: MIT */ as the first line"
  exit 1
fi
echo "$n C files carry SPDX-License-Identifier: MIT"
