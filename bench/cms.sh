#!/bin/bash
# The card-management database at scale: lookups and scans by size (bench/bench-cms.c).
#   bench/cms.sh [SIZES] [REPS]      SIZES: cards, comma-separated (default 1k,10k,100k);
#                                    the audit trail is ten records per card
#                                    (the renewal scan's query plans are printed for the largest)
# As root on Debian 12 it installs the build packages if missing. Builds out of tree in
# _build/bench-cms; needs no TPM, card or daemon. The 100k step takes a few minutes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
sizes=${1:-1k,10k,100k}
reps=${2:-5}

"$top/scripts/deps.sh" build
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p _build/bench-cms
(cd _build/bench-cms && { [ -f Makefile ] || "$top/configure" >/dev/null; } &&
    make -j"$(nproc)" bench/bench-cms >/dev/null)
echo "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
exec "$top/_build/bench-cms/bench/bench-cms" --reps "$reps" "$sizes"
