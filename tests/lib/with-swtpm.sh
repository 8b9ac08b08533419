#!/bin/bash
# Run one test with its own software TPM and TESSERA_HOME, both removed after.
#   with-swtpm.sh PROGRAM [ARGS...]
# The swtpm is stopped by its PID whatever the test does (trap on EXIT).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/swtpm.sh"
dir=$(mktemp -d "${TMPDIR:-/tmp}/tessera-test.XXXXXX")
cleanup() { abrmd_stop "$dir"; swtpm_stop "$dir"; rm -rf "$dir"; }
trap cleanup EXIT
if ! swtpm_start "$dir"; then
    echo "Bail out! swtpm did not start"
    exit 1
fi
export TESSERA_TEST_DIR="$dir"
"$@"
rc=$?
exit $rc
