# NSS (Firefox, Thunderbird, Chromium) with Tessera: modutil adds the module
# to an NSS database; certutil lists the card's certificates; tstclnt makes a
# TLS handshake with client authentication by the card's key against a
# server that demands it; cmsutil signs an S/MIME message that OpenSSL
# verifies, and decrypts one OpenSSL encrypted to the card's certificate.
# A TPM virtual card and the virtual PIV card.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

db="sql:$WORK/nssdb"
printf 'GET / HTTP/1.0\r\n\r\n' > "$WORK/request"
printf 'From the card, with love.\n' > "$WORK/message"

nss_db() {
    mkdir -p "$WORK/nssdb" &&
        certutil -N -d "$db" --empty-password &&
        certutil -A -d "$db" -n "Tessera Test CA" -t "CT,C,C" -i "$WORK/ca.pem"
}
tls_login() {   # tls_login NICKNAME SUBJECT [PIN]: tstclnt as that certificate; the server names what it saw
    # (-A: the request from a file; with stdin, tstclnt does not notice the server close)
    client tstclnt -A "$WORK/request" -h 127.0.0.1 -p "$port" -d "$db" -n "$1" -w "${3:-$PIN}" -V tls1.2:tls1.3 > "$WORK/tls.out" 2>&1
    sed -n '/^Client certificate/,$p' "$WORK/tls.out" | grep -q "Subject: $2$" || { cat "$WORK/tls.out"; return 1; }
}
friendly_list() { # friendly_list TOKEN: its certificates, and no PIN prompt
    client certutil -L -d "$db" -h "$1" < /dev/null > "$WORK/friendly.out" 2>&1 &&
        ! grep -qi "password\|PIN" "$WORK/friendly.out" && grep -q "^$1:" "$WORK/friendly.out" ||
        { cat "$WORK/friendly.out"; return 1; }
}
smime_sign() {    # smime_sign NICKNAME: cmsutil signs on the card, OpenSSL verifies the S/MIME signature
    client cmsutil -S -d "$db" -N "$1" -p "$PIN" -i "$WORK/message" -o "$WORK/signed.p7m" &&
        openssl cms -verify -inform DER -in "$WORK/signed.p7m" -CAfile "$WORK/ca.pem" -purpose smimesign \
            -out "$WORK/verified" && cmp "$WORK/verified" "$WORK/message"
}
smime_decrypt() { # smime_decrypt CERT: OpenSSL encrypts to the card's certificate, cmsutil decrypts on the card
    openssl cms -encrypt -binary -aes256 -outform DER -in "$WORK/message" -out "$WORK/enveloped.p7m" "$1" &&
        client cmsutil -D -d "$db" -p "$PIN" -i "$WORK/enveloped.p7m" -o "$WORK/decrypted" &&
        cmp "$WORK/decrypted" "$WORK/message"
}

t_ok "the test PKI" prog_pki
port=$(free_port)
t_ok "a TLS server that demands a client certificate" tls_server_start tls "$port"
t_ok "a TPM card with keys and certificates" prog_tpm_card
t_ok "an NSS database that trusts the test CA" nss_db
t_ok "modutil adds Tessera" client modutil -dbdir "$db" -add Tessera -libfile "$MOD" -force
t_ok "modutil -list" client modutil -dbdir "$db" -list Tessera
cp "$WORK/last.out" "$WORK/modules"
t_ok "  shows the module" grep -q "Library file: $MOD" "$WORK/modules"
t_ok "  and the card as a token" grep -q "Token Name: Jane TPM" "$WORK/modules"
t_ok "certutil -L -h all lists the card's certificates" client certutil -L -d "$db" -h all
cp "$WORK/last.out" "$WORK/certs"
t_ok "  Jane's RSA certificate" grep -q "^Jane TPM:Jane RSA " "$WORK/certs"
t_ok "  and her EC one" grep -q "^Jane TPM:Jane EC " "$WORK/certs"
# A token that says CKP_PUBLIC_CERTIFICATES_TOKEN is "friendly" to NSS: its
# certificates are listed without a PIN (no -f, nothing on stdin to answer with).
t_ok "certutil -L -h TOKEN lists them without asking for the PIN" friendly_list "Jane TPM"
t_ok "certutil -K lists the keys (after login)" client certutil -K -d "$db" -h "Jane TPM" -f "$WORK/pin"
t_is "  both" "$(grep -c "^<.*  Jane \(RSA\|EC\)$" "$WORK/last.out")" 2
t_ok "tstclnt: TLS client authentication with the RSA key" tls_login "Jane TPM:Jane RSA" "CN=Jane Doe, O=Example"
t_ok "tstclnt: with the EC key" tls_login "Jane TPM:Jane EC" "CN=Jane Doe EC, O=Example"
t_fail "tstclnt with a wrong PIN gets no session" tls_login "Jane TPM:Jane RSA" "CN=Jane Doe, O=Example" 000000
t_ok "cmsutil signs a message with the RSA key, OpenSSL verifies" smime_sign "Jane TPM:Jane RSA"
t_ok "  and with the EC key" smime_sign "Jane TPM:Jane EC"
t_ok "cmsutil decrypts a message OpenSSL encrypted to the RSA certificate" smime_decrypt "$WORK/jane-rsa.pem"

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    token=$(token_label_of "$PIV_SERIAL")
    auth="$token:Certificate for PIV Authentication"
    enc="$token:Certificate for Key Management"
    t_ok "certutil -L -h all lists its certificates" client certutil -L -d "$db" -h all
    cp "$WORK/last.out" "$WORK/certs"
    t_ok "  9A's, named by its PIV slot" grep -q "^$auth " "$WORK/certs"
    t_ok "  and 9D's" grep -q "^$enc " "$WORK/certs"
    t_ok "certutil -L -h TOKEN lists them without asking for the PIN" friendly_list "$token"
    t_ok "tstclnt: TLS client authentication with 9A" tls_login "$auth" "CN=Jane PIV, O=Example"
    t_ok "cmsutil signs with 9A, OpenSSL verifies" smime_sign "$auth"
    t_ok "cmsutil decrypts with 9D" smime_decrypt "$WORK/piv-enc.pem"
fi
t_done
