# Test harness: a private PC/SC daemon with virtual readers (vpcd), per test.
# Source this file, then:  pcscd_start DIR   ...   pcscd_stop DIR
#
# Only one pcscd can own /run/pcscd on a host, so each test's pcscd runs in
# its own mount namespace with DIR/pcscd-run bound over /run/pcscd; clients
# reach it through PCSCLITE_CSOCK_NAME. Its vpcd readers listen on ports
# chosen here; after pcscd_start, VPCD_PORT0 and VPCD_PORT1 hold the ports of
# "Virtual PCD 00 00" and "Virtual PCD 00 01" (a virtual card connects there).

pcscd_start() {
    local dir=$1 i base
    mkdir -p "$dir/pcscd-run" "$dir/reader.conf.d" /run/pcscd
    # A channel id in a quiet range, below the kernel's ephemeral ports
    # (32768 and up: a client's socket, or one in TIME_WAIT, could hold
    # them); vpcd derives both readers' ports (base, base + 1) from it. Two
    # that nothing holds now, tried a few times; a pcscd started again on
    # the same DIR keeps its ports, so that the cards find it again.
    if [ -s "$dir/vpcd.base" ]; then
        base=$(cat "$dir/vpcd.base")
    else
        for i in $(seq 20); do
            base=$(( 20000 + (RANDOM * 7 + $$ + i) % 12000 ))
            /usr/bin/python3 -c 'import socket, sys
for p in (int(sys.argv[1]), int(sys.argv[1]) + 1):
    s = socket.socket(); s.bind(("0.0.0.0", p)); s.close()' "$base" 2>/dev/null && break
        done
        echo "$base" > "$dir/vpcd.base"
    fi
    printf 'FRIENDLYNAME "Virtual PCD"\nDEVICENAME   /dev/null:0x%X\nLIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID    0x%X\n' \
        "$base" "$base" > "$dir/reader.conf.d/vpcd"
    local preload=
    [ -n "${TESSERA_TCPFAST:-}" ] && preload="LD_PRELOAD=$TESSERA_TCPFAST"
    unshare --mount --propagation private sh -c \
        "mount --bind '$dir/pcscd-run' /run/pcscd && exec env $preload pcscd -f -i ${TESSERA_PCSCD_FLAGS:-} -c '$dir/reader.conf.d'" \
        > "$dir/pcscd.log" 2>&1 &
    echo $! > "$dir/pcscd.pid"
    export PCSCLITE_CSOCK_NAME="$dir/pcscd-run/pcscd.comm"
    for i in $(seq 300); do
        [ "$(grep -c 'Waiting for virtual ICC on port' "$dir/pcscd.log" 2>/dev/null)" -ge 2 ] && [ -S "$PCSCLITE_CSOCK_NAME" ] && break
        sleep 0.05
    done
    VPCD_PORT0=$(sed -n 's/.*Waiting for virtual ICC on port \([0-9]*\).*/\1/p' "$dir/pcscd.log" | sed -n 1p)
    VPCD_PORT1=$(sed -n 's/.*Waiting for virtual ICC on port \([0-9]*\).*/\1/p' "$dir/pcscd.log" | sed -n 2p)
    export VPCD_PORT0 VPCD_PORT1
    [ -n "$VPCD_PORT0" ] && [ -S "$PCSCLITE_CSOCK_NAME" ]
}

pcscd_stop() {
    stop_pidfile "$1/pcscd.pid"
}
