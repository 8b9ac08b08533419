# Test harness: a virtual PIV card (tests/cards/vpiv) in a private pcscd.
# Needs common.sh (WORK) and pcsc.sh; after card_up [NAME], the card NAME
# (default "vpiv") sits in reader "Virtual PCD 00 00", keeping its state in
# $WORK/NAME-state; the harness stops it by $WORK/NAME.card.pid.
. "$TESSERA_SRCDIR/tests/lib/swtpm.sh"
. "$TESSERA_SRCDIR/tests/lib/pcsc.sh"

VPIV=${TESSERA_VPIV:?TESSERA_VPIV not set}

card_present() {   # is a card in "Virtual PCD 00 00"?
    client opensc-tool -l 2>/dev/null | grep -q "Yes .*Virtual PCD 00 00"
}

card_wait() {      # wait up to 15 s for a card in "Virtual PCD 00 00"
    local i
    for i in $(seq 300); do
        card_present && return 0
        sleep 0.05
    done
    return 1
}

card_start() {     # card_start NAME PORT [vpiv options]
    local name=$1 port=$2 i
    shift 2
    "$VPIV" --port "$port" --state "$WORK/$name-state" --pid-file "$WORK/$name.card.pid" "$@" \
        >> "$WORK/$name.log" 2>&1 &
    for i in $(seq 300); do
        [ -s "$WORK/$name.card.pid" ] && card_present && return 0
        sleep 0.05
    done
    return 1
}

card_gone() {      # wait up to 15 s until the card has left "Virtual PCD 00 00" (vpiv --pull-after)
    local i
    for i in $(seq 300); do card_present || return 0; sleep 0.05; done
    return 1
}

card_stop() {      # card_stop NAME: pull the card out, and wait until pcscd has seen it go
    local i
    stop_pidfile "$WORK/${1:-vpiv}.card.pid"
    for i in $(seq 300); do
        card_present || return 0
        sleep 0.05
    done
    return 1
}

card_up() {        # pcscd, then the card in the first reader
    [ -n "${PCSCLITE_CSOCK_NAME:-}" ] || pcscd_start "$WORK" || return 1
    card_start "${1:-vpiv}" "$VPCD_PORT0"
}
