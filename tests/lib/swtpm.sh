# Test harness: a private software TPM per test, started and stopped by PID.
# Source this file, then:  swtpm_start DIR   ...   swtpm_stop DIR
# Sets TESSERA_TCTI (direct unix socket) and TESSERA_HOME (DIR/home).

swtpm_start() {
    local dir=$1 i
    mkdir -p "$dir/tpm" "$dir/home"
    chmod 700 "$dir/home"
    swtpm socket --tpm2 \
        --server "type=unixio,path=$dir/swtpm.sock" \
        --ctrl "type=unixio,path=$dir/swtpm.sock.ctrl" \
        --tpmstate "dir=$dir/tpm" \
        --flags not-need-init,startup-clear \
        --log "file=$dir/swtpm.log" \
        --pid "file=$dir/swtpm.pid" --daemon || return 1
    export TESSERA_TCTI="swtpm:path=$dir/swtpm.sock"
    export TESSERA_HOME="$dir/home"
    for i in $(seq 50); do
        tpm2_getrandom -T "$TESSERA_TCTI" 4 >/dev/null 2>&1 && break
        sleep 0.1
    done
    # A deployed machine's dictionary-attack policy (Windows-like): the
    # cards' own 5 tries run out long before the TPM's 32.
    tpm2_dictionarylockout -T "$TESSERA_TCTI" -s -n 32 -t 600 -l 600 >/dev/null
}

swtpm_stop() {
    local dir=$1 pid i
    [ -s "$dir/swtpm.pid" ] || return 0
    pid=$(cat "$dir/swtpm.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    rm -f "$dir/swtpm.pid"
}
