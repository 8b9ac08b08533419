# GnuTLS with Tessera: p11tool lists a card's tokens, certificates and keys,
# exports a certificate and signs with each key (GnuTLS verifies); gnutls-cli
# makes a TLS handshake with client authentication by a key on the card,
# naming certificate and key by PKCS#11 URIs (RFC 7512). A TPM virtual card
# and the virtual PIV card.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

gt() { client_p11kit /usr/bin/p11tool --provider "$MOD" "$@"; }   # GnuTLS' p11tool (common.sh's p11tool is OpenSC's)
gt_login() { GNUTLS_PIN=$PIN gt --login "$@"; }
gt_wrong_pin() { GNUTLS_PIN=000000 gt --login "$@"; }
same_cert() {   # same_cert URI PEM: p11tool exports the certificate the CA issued
    gt --export "$1" > "$WORK/exported.pem" &&
        [ "$(openssl x509 -in "$WORK/exported.pem" -noout -fingerprint -sha256)" = \
          "$(openssl x509 -in "$2" -noout -fingerprint -sha256)" ]
}
tls_login() {   # tls_login URI-OF-OBJECT SUBJECT: a handshake as that certificate and key
    printf 'GET / HTTP/1.0\r\n\r\n' |
        client_p11kit gnutls-cli --provider "$MOD" -p "$port" 127.0.0.1 --x509cafile "$WORK/ca.pem" \
            --x509certfile "$1;type=cert" --x509keyfile "$1;type=private;pin-value=$PIN" > "$WORK/tls.out" 2>&1
    grep -q "Handshake was completed" "$WORK/tls.out" || { cat "$WORK/tls.out"; return 1; }
    # the server's answer (s_server -www) names the client certificate it checked
    sed -n '/^Client certificate/,$p' "$WORK/tls.out" | grep -q "Subject: $2$"
}

t_ok "the test PKI" prog_pki
port=$(free_port)
t_ok "a TLS server that demands a client certificate" tls_server_start tls "$port"
t_ok "a TPM card with keys and certificates" prog_tpm_card
tok="pkcs11:serial=$TPM_SERIAL"
t_ok "p11tool --list-tokens" gt --list-tokens
t_ok "  shows the card with its URL" grep -q "URL: pkcs11:.*serial=$TPM_SERIAL;token=Jane%20TPM" "$WORK/last.out"
t_ok "p11tool --list-all-certs" gt --list-all-certs "$tok"
cp "$WORK/last.out" "$WORK/certs"
t_ok "  Jane's RSA certificate" grep -q "object=Jane%20RSA;type=cert" "$WORK/certs"
t_ok "  and her EC one" grep -q "object=Jane%20EC;type=cert" "$WORK/certs"
t_ok "p11tool --export gives the certificate the CA issued" same_cert "$tok;object=Jane%20RSA;type=cert" \
    "$WORK/jane-rsa.pem"
t_fail "p11tool --list-privkeys without login" gt --list-privkeys "$tok"
t_ok "  finds no key (they are private objects)" grep -q "No matching objects found" "$WORK/last.out"
t_ok "p11tool --list-privkeys --login" gt_login --list-privkeys "$tok"
t_is "  shows both keys" "$(grep -c "URL: .*type=private" "$WORK/last.out")" 2
t_ok "p11tool --test-sign with the RSA key" gt_login --test-sign "$tok;object=Jane%20RSA;type=private"
t_ok "  verified against the card's public key" grep -q "Verifying against public key in the token... ok" \
    "$WORK/last.out"
t_ok "p11tool --test-sign with the EC key" gt_login --test-sign "$tok;object=Jane%20EC;type=private"
t_ok "  ECDSA" grep -q "Signing using ECDSA-SHA256... ok" "$WORK/last.out"
t_fail "a wrong PIN signs nothing" gt_wrong_pin --test-sign "$tok;object=Jane%20RSA;type=private"
t_ok "gnutls-cli: TLS client authentication with the RSA key" tls_login "$tok;object=Jane%20RSA" \
    "CN=Jane Doe, O=Example"
t_ok "gnutls-cli: with the EC key" tls_login "$tok;object=Jane%20EC" "CN=Jane Doe EC, O=Example"

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    tok="pkcs11:serial=$PIV_SERIAL"
    t_ok "p11tool --list-tokens" gt --list-tokens
    t_ok "  shows the PIV card" grep -q "URL: pkcs11:model=PIV%20II;.*serial=$PIV_SERIAL" "$WORK/last.out"
    t_ok "p11tool --list-all-certs" gt --list-all-certs "$tok"
    t_is "  9A's and 9D's certificates" "$(grep -c "URL: .*type=cert" "$WORK/last.out")" 2
    t_ok "p11tool --export gives 9A's certificate" same_cert "$tok;id=%01;type=cert" "$WORK/piv-auth.pem"
    t_ok "p11tool --test-sign with 9A" gt_login --test-sign "$tok;id=%01;type=private"
    t_ok "  verified against the card's public key" grep -q "Verifying against public key in the token... ok" \
        "$WORK/last.out"
    t_ok "p11tool --test-sign with 9D" gt_login --test-sign "$tok;id=%03;type=private"
    t_ok "gnutls-cli: TLS client authentication with 9A" tls_login "$tok;id=%01" "CN=Jane PIV, O=Example"
fi
t_done
