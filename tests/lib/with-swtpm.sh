#!/bin/bash
# Run one test with its own software TPM and TESSERA_HOME, both removed after.
#   with-swtpm.sh PROGRAM [ARGS...]
# What the test starts through the harness (swtpm, tpm2-abrmd, pcscd, virtual
# cards writing DIR/NAME.card.pid, programs writing DIR/NAME.proc.pid) is
# stopped by PID whatever the test does.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/swtpm.sh"
. "$here/pcsc.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-test.XXXXXX")
cleanup() {
    local f
    for f in "$dir"/*.proc.pid; do stop_pidfile "$f"; done   # servers, agents (tests/lib/programs.sh)
    for f in "$dir"/*.card.pid; do stop_pidfile "$f"; done   # virtual cards (tests/cards)
    pcscd_stop "$dir"
    abrmd_stop "$dir"
    swtpm_stop "$dir"
    rm -rf "$dir"
}
trap cleanup EXIT
if ! swtpm_start "$dir"; then
    echo "Bail out! swtpm did not start"
    exit 1
fi
export TESSERA_TEST_DIR="$dir"
"$@"
rc=$?
exit $rc
