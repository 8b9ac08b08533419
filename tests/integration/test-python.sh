# doc/examples/card-admin.py: a management tool in Python, PyKCS11 for the
# standard functions and ctypes for Tessera's vendor interface, run with
# Debian's python3-pykcs11 against a TPM virtual card and the virtual PIV
# card: it lists the cards with their admin keys, gives a challenge, unblocks
# a locked PIN with the helpdesk's response, and signs (OpenSSL verifies).
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

EX="$TESSERA_SRCDIR/doc/examples/card-admin.py"
# Debian's Python, where python3-pykcs11 is. Under sanitizers libstdc++ is
# preloaded with the ASan runtime: PyKCS11's C++ part throws exceptions,
# which ASan can only intercept when libstdc++ was there at its start.
stdcxx=$(ldconfig -p | sed -n 's/.*libstdc++\.so\.6 (libc6,x86-64) => //p' | head -1)
ex() { TESSERA_PRELOAD="${TESSERA_PRELOAD:+$TESSERA_PRELOAD $stdcxx}" client /usr/bin/python3 "$EX" "$MOD" "$@"; }
ex_pin() { local pin=$1; shift; printf '%s\n' "$pin" | ex "$@"; }
response_to() {   # response_to CHALLENGE [SERIAL]: what the helpdesk answers (default key, or the master's)
    if [ -n "${2:-}" ]; then
        $TOOL --json unblock response --challenge "$1" --master-file "$WORK/master.key" --serial "$2"
    else
        $TOOL --json unblock response --challenge "$1" --admin-key default
    fi | field response_hex
}
( umask 077; openssl rand -hex 32 > "$WORK/master.key" )
signs() {   # signs SERIAL LABEL CERT-OR-CSR: the example signs, OpenSSL verifies
    ex_pin "$4" sign "$1" "$2" "$WORK/data" > "$WORK/py.sig" || return 1
    case $3 in
        *.csr) openssl req -in "$3" -pubkey -noout > "$WORK/py.pub" ;;
        *) openssl x509 -in "$3" -pubkey -noout > "$WORK/py.pub" ;;
    esac
    openssl dgst -sha256 -verify "$WORK/py.pub" -signature "$WORK/py.sig" "$WORK/data"
}
printf 'signed from Python\n' > "$WORK/data"

t_ok "PyKCS11 is there" /usr/bin/python3 -c "import PyKCS11"
t_ok "the test PKI" prog_pki
t_ok "a card with the default admin key" $TOOL --json vsc create --label "Py Card" --so-pin-file "$WORK/so" \
    --pin-file "$WORK/pin" --admin-key default
serial=$(field serial < "$WORK/last.out")
t_ok "an RSA key on it" $TOOL key generate --serial "$serial" --type rsa2048 --label "Py RSA" --pin-file "$WORK/pin" \
    --csr "$WORK/py.csr" --subject "/CN=Py"
t_ok "the example lists the card" ex list
cp "$WORK/last.out" "$WORK/list"
t_ok "  by type, label and serial" grep -q "TPM virtual card \"Py Card\": serial $serial" "$WORK/list"
t_ok "  with its default key's check value" grep -q "3DES-192, KCV B073DC (default key!)" "$WORK/list"
t_ok "  and its unblock counter" grep -q "unblock: 5 of 5 tries left" "$WORK/list"
t_ok "it signs with PyKCS11, OpenSSL verifies" signs "$serial" "Py RSA" "$WORK/py.csr" "$PIN"
t_fail "a wrong PIN signs nothing" signs "$serial" "Py RSA" "$WORK/py.csr" 000000
t_ok "the PIN locked by wrong tries" lock_pin --token-label "Py Card"
t_fail "  then the right PIN signs nothing" signs "$serial" "Py RSA" "$WORK/py.csr" "$PIN"
t_ok "the example gives a challenge" ex challenge "$serial"
chal=$(cat "$WORK/last.out")
t_ok "  (hex)" grep -qx "[0-9A-F]\{16,64\}" "$WORK/last.out"
t_fail "a wrong response is refused" ex_pin 654321 unblock "$serial" 0011223344556677
t_ok "  as wrong" grep -q "wrong response" "$WORK/last.out"
t_ok "a new challenge" ex challenge "$serial"
chal=$(cat "$WORK/last.out")
t_ok "the example unblocks with the helpdesk's response" ex_pin 654321 unblock "$serial" "$(response_to "$chal")"
t_ok "  and the new PIN signs" signs "$serial" "Py RSA" "$WORK/py.csr" 654321
t_fail "an unknown serial" ex challenge 0000000000000000
t_is "usage" "$(ex frobnicate >/dev/null 2>&1; echo $?)" 2

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    t_ok "the example lists the PIV card" ex list
    t_ok "  by type and serial" grep -q "PIV card \".*\": serial $PIV_SERIAL" "$WORK/last.out"
    label="PIV Authentication key"
    t_ok "it signs with 9A (\"$label\"), OpenSSL verifies" signs "$PIV_SERIAL" "$label" "$WORK/piv-auth.pem" "$PIN"
    t_ok "the issuer gives it an admin key diversified from a master key" $TOOL admin-key set \
        --serial "$PIV_SERIAL" --so-pin-file "$WORK/so" --master-file "$WORK/master.key"
    t_ok "the PIV card's PIN locked by wrong tries" lock_pin --slot 0x100
    t_ok "a challenge from the PIV card" ex challenge "$PIV_SERIAL"
    chal=$(cat "$WORK/last.out")
    t_ok "the example unblocks it with the helpdesk's response" ex_pin 654321 unblock "$PIV_SERIAL" \
        "$(response_to "$chal" "$PIV_SERIAL")"
    t_ok "  and the new PIN signs" signs "$PIV_SERIAL" "$label" "$WORK/piv-auth.pem" 654321
fi
t_done
