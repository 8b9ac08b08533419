# Fixture for the tests of real programs using Tessera (test-p11kit.sh,
# test-ssh.sh, test-openssl.sh, ...): a test CA with a TLS server certificate,
# and cards holding keys whose certificates that CA issued, loaded by the
# tool as an issuance station would. Needs common.sh (and cards.sh for PIV).
#
#   prog_pki                    CA ($WORK/ca.pem, ca.key), server.pem/.key
#   prog_tpm_card               a TPM virtual card "Jane TPM": RSA-2048 "Jane RSA"
#                               (TPM_RSA_ID) and P-256 "Jane EC" (TPM_EC_ID),
#                               each with a client/S-MIME certificate (jane-rsa.pem,
#                               jane-ec.pem); sets TPM_SERIAL
#   prog_piv_card               the virtual PIV card: RSA-2048 in 9A (id 01) and
#                               RSA-2048 in 9D (id 03) with certificates
#                               (piv-auth.pem, piv-enc.pem); sets PIV_SERIAL
#   token_label_of SERIAL       the label of the token with that serial number
#   prog_have_piv               is the virtual PIV card available (PC/SC built)?
#   lock_pin TOKEN-OPTION...    wrong PINs (pkcs11-tool) until the user PIN is locked
#   with_folder_over DIR TARGET command...
#                               run the command with DIR bound over the system
#                               folder TARGET, in a private mount namespace: a
#                               program's system settings without touching the host's
#   free_port, port_wait PORT   (common.sh) a TCP port nobody listens on now; wait for one
#   tls_server_start NAME PORT  openssl s_server on 127.0.0.1:PORT that demands a
#                               client certificate from the CA and answers
#                               with what it saw (-www); stopped by the harness
#   xvfb_start                  an X server of the test's own (Xvfb, on a free
#                               display number); sets DISPLAY
# Processes a test starts write $WORK/NAME.proc.pid; with-swtpm.sh stops them.

PIN=123456
SO_PIN=12345678
printf '%s\n' "$PIN" > "$WORK/pin"
printf '%s\n' "$SO_PIN" > "$WORK/so"

prog_pki() {
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 30 \
        -subj "/CN=Tessera Test CA" -addext "basicConstraints=critical,CA:true" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || return 1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/server.key" \
        -out "$WORK/server.csr" -subj "/CN=localhost" 2>/dev/null || return 1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$WORK/server.ext"
    openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
        -days 30 -extfile "$WORK/server.ext" -out "$WORK/server.pem" 2>/dev/null
}

# The CA issues a person's certificate: client authentication, S/MIME and
# Microsoft smart-card logon usages, the e-mail address in subjectAltName.
prog_issue() {   # prog_issue CSR CERT EMAIL
    cat > "$WORK/person.ext" <<EOF
basicConstraints=CA:false
keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement
extendedKeyUsage=clientAuth,emailProtection,1.3.6.1.4.1.311.20.2.2
subjectAltName=email:$3
EOF
    openssl x509 -req -in "$1" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 30 \
        -extfile "$WORK/person.ext" -out "$2" 2>/dev/null
}

prog_tpm_card() {
    $TOOL --json vsc create --label "Jane TPM" --so-pin-file "$WORK/so" --pin-file "$WORK/pin" \
        > "$WORK/card.json" || return 1
    TPM_SERIAL=$(field serial < "$WORK/card.json")
    $TOOL --json key generate --serial "$TPM_SERIAL" --type rsa2048 --label "Jane RSA" --pin-file "$WORK/pin" \
        --csr "$WORK/jane-rsa.csr" --subject "/CN=Jane Doe/O=Example" > "$WORK/key.json" || return 1
    TPM_RSA_ID=$(field "key generated" < "$WORK/key.json")
    $TOOL --json key generate --serial "$TPM_SERIAL" --type p256 --label "Jane EC" --pin-file "$WORK/pin" \
        --csr "$WORK/jane-ec.csr" --subject "/CN=Jane Doe EC/O=Example" > "$WORK/key.json" || return 1
    TPM_EC_ID=$(field "key generated" < "$WORK/key.json")
    prog_issue "$WORK/jane-rsa.csr" "$WORK/jane-rsa.pem" jane@example.org &&
        prog_issue "$WORK/jane-ec.csr" "$WORK/jane-ec.pem" jane@example.org &&
        $TOOL cert load --serial "$TPM_SERIAL" --pin-file "$WORK/pin" "$WORK/jane-rsa.pem" >/dev/null &&
        $TOOL cert load --serial "$TPM_SERIAL" --pin-file "$WORK/pin" "$WORK/jane-ec.pem" >/dev/null
}

token_label_of() {
    client pkcs11-tool --module "$MOD" -L 2>/dev/null | awk -v serial="$1" '
        /token label/ { sub(/^[^:]*: /, ""); label = $0 }
        /serial num/ && $NF == serial { print label; exit }'
}

prog_have_piv() { [ -x "${TESSERA_VPIV:-}" ]; }

lock_pin() {
    local i
    for i in $(seq 20); do
        p11tool "$@" -l --pin 000000 -O >/dev/null 2>&1
        p11tool "$@" -T 2>/dev/null | grep -q "user PIN locked" && return 0
    done
    return 1
}

prog_piv_card() {
    card_up || return 1
    $TOOL --json card info --slot 256 > "$WORK/card.json" || return 1
    PIV_SERIAL=$(field serial < "$WORK/card.json")
    $TOOL key generate --serial "$PIV_SERIAL" --type rsa2048 --id 01 --pin-file "$WORK/pin" \
        --csr "$WORK/piv-auth.csr" --subject "/CN=Jane PIV/O=Example" >/dev/null || return 1
    $TOOL key generate --serial "$PIV_SERIAL" --type rsa2048 --id 03 --pin-file "$WORK/pin" \
        --csr "$WORK/piv-enc.csr" --subject "/CN=Jane PIV Encryption/O=Example" >/dev/null || return 1
    prog_issue "$WORK/piv-auth.csr" "$WORK/piv-auth.pem" jane.piv@example.org &&
        prog_issue "$WORK/piv-enc.csr" "$WORK/piv-enc.pem" jane.piv@example.org &&
        $TOOL cert load --serial "$PIV_SERIAL" --pin-file "$WORK/pin" "$WORK/piv-auth.pem" >/dev/null &&
        $TOOL cert load --serial "$PIV_SERIAL" --pin-file "$WORK/pin" "$WORK/piv-enc.pem" >/dev/null
}

with_folder_over() {
    local dir=$1 target=$2
    shift 2
    unshare --mount --propagation private sh -c 'mount --bind "$0" "$1" && shift && exec "$@"' \
        "$dir" "$target" "$@"
}

tls_server_start() {   # tls_server_start NAME PORT
    # -www answers each request with the session, including the client's
    # certificate; -verify_return_error refuses a handshake without one.
    openssl s_server -accept "127.0.0.1:$2" -cert "$WORK/server.pem" -key "$WORK/server.key" \
        -CAfile "$WORK/ca.pem" -Verify 1 -verify_return_error -www \
        > "$WORK/$1.log" 2>&1 </dev/null &
    echo $! > "$WORK/$1.proc.pid"
    # s_server prints ACCEPT once it listens (a probe connection would be
    # answered with an error, harmless here but noisy in its log).
    local i
    for i in $(seq 100); do
        grep -q '^ACCEPT' "$WORK/$1.log" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

xvfb_start() {
    # -displayfd: Xvfb picks a free display and writes its number once it
    # accepts clients. No TCP; the socket is in /tmp/.X11-unix as usual.
    Xvfb -displayfd 3 -nolisten tcp -screen 0 1280x800x24 3>"$WORK/xvfb.display" \
        >"$WORK/xvfb.log" 2>&1 </dev/null &
    echo $! > "$WORK/xvfb.proc.pid"
    local i
    for i in $(seq 100); do
        [ -s "$WORK/xvfb.display" ] && { DISPLAY=:$(cat "$WORK/xvfb.display"); export DISPLAY; return 0; }
        sleep 0.05
    done
    cat "$WORK/xvfb.log"
    return 1
}
