#!/bin/bash
# PIV cards: APDUs and time, Tessera vs OpenSC, on the same virtual PIV card.
#   bench/bench-piv.sh [RUNS]        (as root on Debian 12; installs what it needs)
# A private pcscd and the virtual card (tests/cards/vpiv, counting every APDU
# it receives) are started here and stopped by PID at the end. The card holds
# three keys with certificates (9A RSA-2048, 9C and 9D P-256), made by
# yubico-piv-tool and openssl. For each module, with pkcs11-tool, one process
# each time: list the objects cold (Tessera's store empty) and warm (again),
# and log in + one RSA signature.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}

"$top/scripts/deps.sh" bench
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p _build/bench
(cd _build/bench && { [ -f Makefile ] || "$top/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null &&
    make tests/cards/vpiv/vpiv >/dev/null)
TESSERA="$top/_build/bench/.libs/tessera-pkcs11.so"
OPENSC=$(ls /usr/lib/*/opensc-pkcs11.so | head -1)
VPIV="$top/_build/bench/tests/cards/vpiv/vpiv"

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench-piv.XXXXXX")
cleanup() { stop_pidfile "$work/card.pid"; pcscd_stop "$work"; rm -rf "$work"; }
trap cleanup EXIT
. "$top/tests/lib/swtpm.sh"
. "$top/tests/lib/pcsc.sh"
pcscd_start "$work"
"$VPIV" -v --port "$VPCD_PORT0" --state "$work/card" --pid-file "$work/card.pid" 2> "$work/card.log" &
for _ in $(seq 100); do opensc-tool -l 2>/dev/null | grep -q "^0 *Yes" && break; sleep 0.05; done

yk() { yubico-piv-tool -r "Virtual PCD 00 00" "$@" >/dev/null 2>&1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" -subj "/CN=Bench CA" \
    -days 30 -out "$work/ca.pem" 2>/dev/null
for spec in "9a RSA2048" "9c ECCP256" "9d ECCP256"; do
    set -- $spec
    yk -a generate -s "$1" -A "$2" -o "$work/pub-$1.pem"
    openssl x509 -new -force_pubkey "$work/pub-$1.pem" -subj "/CN=Bench User $1/O=Tessera bench/OU=PIV" \
        -key "$work/ca.key" -days 30 -out "$work/cert-$1.pem" 2>/dev/null
    yk -a import-certificate -s "$1" -i "$work/cert-$1.pem"
done
printf 'bench' > "$work/data"

apdus() { grep -c '^vpiv: > ' "$work/card.log" || true; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# measure MODULE HOME ACTION: prints "APDUs ms"
measure() {
    local mod=$1 home=$2 action=$3 a0 t0
    local args=(--module "$mod" --slot-index 0)
    a0=$(apdus); t0=$(now_ms)
    case $action in
        list) TESSERA_HOME="$home" TESSERA_TCTI=none pkcs11-tool "${args[@]}" -O >/dev/null 2>&1 ;;
        sign) TESSERA_HOME="$home" TESSERA_TCTI=none pkcs11-tool "${args[@]}" -l -p 123456 --sign \
                  -m SHA256-RSA-PKCS --id 01 -i "$work/data" -o "$work/sig" >/dev/null 2>&1 ;;
    esac
    echo "$(( $(apdus) - a0 )) $(( $(now_ms) - t0 ))"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "virtual PIV card (vpiv, $(nproc) cores); $runs runs each, median; APDUs counted by the card"
printf '%-34s %12s %10s %12s %10s %10s\n' "operation" "Tessera APDU" "ms" "OpenSC APDU" "ms" "APDU ratio"
for op in "cold list" "warm list" "login + RSA sign"; do
    ta=(); tt=(); oa=(); ot=()
    for r in $(seq "$runs"); do
        home="$work/home-$r"; mkdir -p -m 700 "$home"
        case $op in
            "cold list") read -r a t < <(measure "$TESSERA" "$home" list) ;;
            "warm list") measure "$TESSERA" "$home" list >/dev/null; read -r a t < <(measure "$TESSERA" "$home" list) ;;
            *) read -r a t < <(measure "$TESSERA" "$home" sign) ;;
        esac
        ta+=("$a"); tt+=("$t")
        case $op in
            "login + RSA sign") read -r a t < <(measure "$OPENSC" "$home" sign) ;;
            *) read -r a t < <(measure "$OPENSC" "$home" list) ;;
        esac
        oa+=("$a"); ot+=("$t")
    done
    TA=$(printf '%s\n' "${ta[@]}" | median); TT=$(printf '%s\n' "${tt[@]}" | median)
    OA=$(printf '%s\n' "${oa[@]}" | median); OT=$(printf '%s\n' "${ot[@]}" | median)
    printf '%-34s %12s %10s %12s %10s %10.2f\n' "$op" "$TA" "$TT" "$OA" "$OT" "$(awk -v a="$TA" -v b="$OA" 'BEGIN { print b ? a / b : 0 }')"
done
