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

# Stop the process named in a PID file and wait (5 s at most) until it is
# gone; a zombie counts as gone (PID 1 here may not reap it).
stop_pidfile() {
    local file=$1 pid i
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
        sleep 0.1
    done
    rm -f "$file"
}

swtpm_stop() {
    stop_pidfile "$1/swtpm.pid"
}

# Several processes sharing one TPM need a resource manager: tpm2-abrmd on a
# private D-Bus. After abrmd_start DIR, TESSERA_TCTI goes through it.
abrmd_start() {
    local dir=$1 i root=
    [ "$(id -u)" = 0 ] && root=--allow-root
    dbus-daemon --session --fork --nopidfile --address="unix:path=$dir/dbus.sock" --print-pid=1 > "$dir/dbus.pid" || return 1
    export DBUS_SESSION_BUS_ADDRESS="unix:path=$dir/dbus.sock"
    tpm2-abrmd --session $root --flush-all --tcti="swtpm:path=$dir/swtpm.sock" > "$dir/abrmd.log" 2>&1 &
    echo $! > "$dir/abrmd.pid"
    for i in $(seq 100); do
        tpm2_getrandom -T tabrmd:bus_type=session 4 >/dev/null 2>&1 && break
        sleep 0.1
    done
    export TESSERA_TCTI=tabrmd:bus_type=session
}

abrmd_stop() {
    stop_pidfile "$1/abrmd.pid"
    stop_pidfile "$1/dbus.pid"
}
