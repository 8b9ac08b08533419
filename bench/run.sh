#!/bin/bash
# Signing benchmark: Tessera vs tpm2-pkcs11 vs the ESYS floor, on one swtpm.
#   bench/run.sh [SECONDS-PER-RUN] [ROUNDS]        (as root on Debian 12; installs what it needs)
# Starts its own swtpm (and, to provision tpm2-pkcs11, tpm2-abrmd on a private
# D-Bus: tests/lib/swtpm.sh), provisions both tokens with an RSA-2048 and a P-256 key, runs
# bench-sign, and stops everything it started, by PID.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-3}
rounds=${2:-5}

"$top/scripts/deps.sh" bench
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p _build/bench
(cd _build/bench && { [ -f Makefile ] || "$top/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null)
MOD="$top/_build/bench/.libs/tessera-pkcs11.so"
PEER=$(ls /usr/lib/*/pkcs11/libtpm2_pkcs11.so | head -1)

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")
cleanup() {
    abrmd_stop "$work"
    swtpm_stop "$work"
    rm -rf "$work"
}
trap cleanup EXIT
. "$top/tests/lib/swtpm.sh"
swtpm_start "$work"

gcc -O2 -Wall -Wextra -Wno-unused-parameter -I"$top/_build/bench" $(pkg-config --cflags p11-kit-1) \
    "$top/bench/bench-sign.c" -o "$work/bench-sign" $(pkg-config --libs tss2-esys tss2-tctildr) -ldl

# Tessera: a virtual card with the two keys.
"$top/_build/bench/tessera" vsc create --label bench --so-pin 12345678 --pin 123456 >/dev/null
pkcs11-tool --module "$MOD" --token-label bench -l -p 123456 --keypairgen --key-type rsa:2048 --label rsa >/dev/null
pkcs11-tool --module "$MOD" --token-label bench -l -p 123456 --keypairgen --key-type EC:prime256v1 --label ec >/dev/null

# tpm2-pkcs11: provisioning needs a resource manager (tpm2_ptool); signing then
# uses the same direct TCTI as Tessera.
direct_tcti=$TESSERA_TCTI
abrmd_start "$work"
mkdir -p "$work/peer"
(
    export TPM2_PKCS11_TCTI=tabrmd:bus_type=session TPM2TOOLS_TCTI=tabrmd:bus_type=session TPM2_PKCS11_STORE="$work/peer"
    tpm2_ptool init >/dev/null
    tpm2_ptool addtoken --pid=1 --label=peer --userpin=123456 --sopin=12345678 >/dev/null
    tpm2_ptool addkey --label=peer --key-label=rsa --id=01 --userpin=123456 --algorithm=rsa2048 >/dev/null
    tpm2_ptool addkey --label=peer --key-label=ec --id=02 --userpin=123456 --algorithm=ecc256 >/dev/null
)
abrmd_stop "$work"
export TESSERA_TCTI=$direct_tcti

echo "TPM: swtpm $(swtpm --version | sed -n 's/.*version \([0-9.]*\).*/\1/p'), direct unix socket; $(nproc) cores"
echo "peer: $PEER ($(dpkg-query -W -f='${Version}' libtpm2-pkcs11-1))"
TPM2_PKCS11_TCTI="$TESSERA_TCTI" TPM2_PKCS11_STORE="$work/peer" TPM2_PKCS11_LOG_LEVEL=0 \
    "$work/bench-sign" --tcti "$TESSERA_TCTI" --tessera "$MOD:bench" --peer "$PEER:peer" \
    --seconds "$seconds" --rounds "$rounds"
