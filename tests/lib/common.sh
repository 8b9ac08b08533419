# TAP helpers for shell tests (run under with-swtpm.sh: TESSERA_TCTI and
# TESSERA_HOME point at this test's own TPM and store).
#   t_ok "name" command...      passes when the command succeeds
#   t_fail "name" command...    passes when it fails
#   t_is "name" got want
#   t_skip "name" reason        a TAP skip
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

t_skip() {
    t_n=$((t_n + 1))
    echo "ok $t_n - $1 # SKIP $2"
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
    client_asan "$TESSERA_PRELOAD" "detect_leaks=0:halt_on_error=0:log_path=$WORK/asan" "$@"
}
# The same for a program linked with libp11-kit (p11-kit, GnuTLS's p11tool and
# gnutls-cli): with a preloaded ASan runtime it hangs at exit (in glibc's
# freelocale, even with no module loaded), so the sanitized module brings the
# runtime in itself; its reports are checked as above.
client_p11kit() {
    [ -n "${TESSERA_PRELOAD:-}" ] || { "$@"; return; }
    client_asan "" "verify_asan_link_order=0:detect_leaks=0:halt_on_error=0:log_path=$WORK/asan" "$@"
}
client_asan() {   # client_asan PRELOAD ASAN-OPTIONS command...: run it, fail on reports naming Tessera
    local rc f bad=0 preload=$1 options=$2
    shift 2
    rm -f "$WORK"/asan.*
    LD_PRELOAD="$preload" ASAN_OPTIONS="$options" "$@"
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

# client_bg NAME command...: a program that runs in the background and has
# a helper process load the module (ssh-agent); its PID goes to
# $WORK/NAME.proc.pid, which the harness stops. ssh-agent does not pass
# LD_PRELOAD on to its helper, so under sanitizers the module brings the ASan
# runtime in itself there. client_bg_clean NAME fails if the sanitizer
# reports of that program and its helpers touch Tessera's code.
client_bg() {
    local name=$1; shift
    if [ -n "${TESSERA_PRELOAD:-}" ]; then
        ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:halt_on_error=0:log_path=$WORK/asan-$name" \
            "$@" >> "$WORK/$name.log" 2>&1 &
    else
        "$@" >> "$WORK/$name.log" 2>&1 &
    fi
    echo $! > "$WORK/$name.proc.pid"
}
client_bg_clean() {
    local f bad=0
    for f in "$WORK/asan-$1".*; do
        [ -e "$f" ] || continue
        grep -qE "tessera-pkcs11|$TESSERA_SRCDIR" "$f" && { cat "$f"; bad=1; }
    done
    return $bad
}

p11tool() { client pkcs11-tool --module "$MOD" "$@"; }

# A TCP port nobody listens on now; and waiting (5 s at most) until something
# listens on 127.0.0.1:PORT (the servers the tests start).
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_wait() {
    local i
    for i in $(seq 100); do
        /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1).close()" \
            2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# The tool's --json output: a string member, a number member.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
# A 3DES key's check value (as card info prints it), computed by OpenSSL.
kcv_of() { printf '0000000000000000' | xxd -r -p | openssl enc -des-ede3 -K "$1" -nopad 2>/dev/null | xxd -p | cut -c1-6; }
