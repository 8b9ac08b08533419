#!/bin/bash
# Build Tessera and pass every test, twice: a normal build, then one with
# AddressSanitizer + UndefinedBehaviorSanitizer. Installs what it needs.
# Ends with "N passed, N failed"; exits non-zero on any failure.
#   scripts/test.sh            (from a checkout, as root on a fresh Debian 12)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/scripts/deps.sh" test || exit 1
[ -x configure ] || ./autogen.sh >/dev/null || exit 1

jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
status=0

run_suite() {   # run_suite NAME CONFIGURE-ARGS...
    local name=$1 dir="$top/_build/$1" log p f
    shift
    mkdir -p "$dir"
    echo "== $name build"
    if ! (cd "$dir" && "$top/configure" "$@" >configure.out 2>&1 && make -j"$jobs" >make.out 2>&1); then
        echo "$name: build failed"; tail -30 "$dir/make.out" "$dir/configure.out" 2>/dev/null
        failed=$((failed + 1)); status=1; return
    fi
    echo "== $name tests"
    (cd "$dir" && make -j"$jobs" check >check.out 2>&1)
    [ $? = 0 ] || status=1
    log="$dir/test-suite.log"
    p=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
    f=$(( $(sed -n 's/^# FAIL: *//p' "$log" | head -1) + $(sed -n 's/^# ERROR: *//p' "$log" | head -1) ))
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    grep -E "^(FAIL|ERROR):" "$dir/check.out" | head -40
    [ "${f:-0}" = 0 ] || { echo "-- $name: failures (from $log):"; grep -B2 -A30 "^not ok" "$dir"/tests/*/*.log | head -120; }
    echo "$name: ${p:-0} passed, ${f:-0} failed"
}

run_suite default
run_suite sanitizers --enable-sanitizers

[ $failed = 0 ] || status=1
echo "$passed passed, $failed failed"
exit $status
