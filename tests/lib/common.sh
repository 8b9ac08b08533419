# TAP helpers for shell tests (run under with-swtpm.sh: TESSERA_TCTI and
# TESSERA_HOME point at this test's own TPM and store).
#   t_ok "name" command...      passes when the command succeeds
#   t_fail "name" command...    passes when it fails
#   t_is "name" got want
#   t_done                      prints the plan; exit status = failures

t_n=0
t_failed=0
MOD=${TESSERA_MODULE:?TESSERA_MODULE not set}
TOOL=${TESSERA_TOOL:?TESSERA_TOOL not set}
WORK=${TESSERA_TEST_DIR:?run me under tests/lib/with-swtpm.sh}

t_start=
t_report() {
    t_n=$((t_n + 1))
    [ -n "$t_start" ] && echo "# $(( ($(date +%s%N) - t_start) / 1000000 )) ms" && t_start=
    if [ "$1" = 0 ]; then
        echo "ok $t_n - $2"
    else
        t_failed=$((t_failed + 1))
        echo "not ok $t_n - $2"
        [ -s "$WORK/last.out" ] && sed 's/^/#   /' "$WORK/last.out" | tail -20
    fi
}

# Run a check; its output goes to last.out only once it is done, so the next
# check may read what the previous command printed. Sets t_rc.
t_run() {
    t_start=$(date +%s%N)
    "$@" >"$WORK/cur.out" 2>&1
    t_rc=$?
    mv "$WORK/cur.out" "$WORK/last.out"
}

t_ok() {
    local name=$1; shift
    t_run "$@"
    t_report $t_rc "$name"
}

t_fail() {
    local name=$1; shift
    t_run "$@"
    if [ $t_rc = 0 ]; then t_report 1 "$name (unexpectedly succeeded)"; else t_report 0 "$name"; fi
}

t_is() {
    if [ "$2" = "$3" ]; then t_report 0 "$1"; else echo "got '$2', want '$3'" >"$WORK/last.out"; t_report 1 "$1"; fi
}

t_done() {
    echo "1..$t_n"
    [ "$t_failed" = 0 ]
}

# A program we did not build, loading our (perhaps sanitized) module.
# Under sanitizers the ASan runtime is preloaded into it; such a client's own
# memory errors (pkcs11-tool has some) are logged and ignored, while any
# report that touches Tessera's code fails the command (exit 99).
client() {
    [ -n "${TESSERA_PRELOAD:-}" ] || { "$@"; return; }
    local rc f bad=0
    rm -f "$WORK"/asan.*
    LD_PRELOAD="$TESSERA_PRELOAD" \
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=0:log_path=$WORK/asan" "$@"
    rc=$?
    for f in "$WORK"/asan.*; do
        [ -e "$f" ] || continue
        if grep -qE "tessera-pkcs11|$TESSERA_SRCDIR" "$f"; then
            cat "$f" >&2
            bad=1
        fi
        rm -f "$f"
    done
    [ $bad = 0 ] || return 99
    return $rc
}

p11tool() { client pkcs11-tool --module "$MOD" "$@"; }

# The tool's --json output: a string member, a number member.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
# A 3DES key's check value (as card info prints it), computed by OpenSSL.
kcv_of() { printf '0000000000000000' | xxd -r -p | openssl enc -des-ede3 -K "$1" -nopad 2>/dev/null | xxd -p | cut -c1-6; }
