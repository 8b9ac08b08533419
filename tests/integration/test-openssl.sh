# OpenSSL with Tessera through libp11's pkcs11 engine, keys named by PKCS#11
# URIs (RFC 7512): openssl pkeyutl signs (PKCS#1 v1.5, PSS, ECDSA) and
# OpenSSL verifies with the certificate; openssl req makes a certificate
# signed on the card; openssl s_client authenticates to a TLS server that
# demands a client certificate (TLS 1.2 and 1.3). A TPM virtual card and the
# virtual PIV card.
#
# On the TPM card this is the case of tpm2-tss#3151: ESYS salts its sessions
# with OpenSSL's EC code, which the engine has taken over in this process;
# Tessera then falls back to sessions that still keep the PIN off the bus
# (doc/design.md, "Salting can fail"), so all of the below must work.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

# The engine set up by the sample configuration (conf/openssl-pkcs11.cnf.in),
# naming this build's module.
sed "s|@pkcs11dir@|$(dirname "$MOD")|" "$TESSERA_SRCDIR/conf/openssl-pkcs11.cnf.in" > "$WORK/openssl.cnf"
ossl() { OPENSSL_CONF="$WORK/openssl.cnf" client openssl "$@"; }
printf 'signed by the card\n' > "$WORK/data"
openssl dgst -sha256 -binary "$WORK/data" > "$WORK/digest"
printf '%s' "$PIN" > "$WORK/pin-exact"   # pin-source=file: reads the file as it is, newline included

engine_sign() {   # engine_sign URI CERT [PKEYOPT...]: the engine signs, OpenSSL verifies with the certificate
    local uri=$1 cert=$2 opt opts=()
    shift 2
    for opt in digest:sha256 "$@"; do opts+=(-pkeyopt "$opt"); done
    ossl pkeyutl -engine pkcs11 -keyform engine -inkey "$uri" -sign -in "$WORK/digest" -out "$WORK/sig" \
        "${opts[@]}" || return 1
    openssl x509 -in "$cert" -pubkey -noout > "$WORK/pub.pem" &&
        openssl pkeyutl -verify -pubin -inkey "$WORK/pub.pem" -in "$WORK/digest" -sigfile "$WORK/sig" "${opts[@]}"
}
self_signed() {   # self_signed URI CERT: openssl req signs a certificate with the card's key
    ossl req -new -x509 -engine pkcs11 -keyform engine -key "$1" -subj "/CN=Made on the card" -days 1 \
        -out "$WORK/self.pem" || return 1
    openssl verify -CAfile "$WORK/self.pem" "$WORK/self.pem" &&
        [ "$(openssl x509 -in "$WORK/self.pem" -pubkey -noout)" = "$(openssl x509 -in "$2" -pubkey -noout)" ]
}
tls_login() {   # tls_login VERSION URI CERT SUBJECT: s_client with the card's key; the server names the certificate
    printf 'GET / HTTP/1.0\r\n\r\n' |
        ossl s_client "$1" -engine pkcs11 -keyform engine -key "$2" -cert "$3" -CAfile "$WORK/ca.pem" \
            -connect "127.0.0.1:$port" -ign_eof > "$WORK/tls.out" 2>&1
    local version=${1#-tls}
    grep -q "Protocol *: TLSv${version/_/.}$" "$WORK/tls.out" || { cat "$WORK/tls.out"; return 1; }
    sed -n '/^Client certificate/,$p' "$WORK/tls.out" | grep -q "Subject: $4$" || { cat "$WORK/tls.out"; return 1; }
}

t_ok "the test PKI" prog_pki
port=$(free_port)
t_ok "a TLS server that demands a client certificate" tls_server_start tls "$port"
t_ok "a TPM card with keys and certificates" prog_tpm_card
rsa="pkcs11:token=Jane%20TPM;object=Jane%20RSA;type=private"
ec="pkcs11:serial=$TPM_SERIAL;object=Jane%20EC;type=private"
t_ok "pkeyutl signs with the RSA key (token and object in the URI)" engine_sign "$rsa;pin-value=$PIN" \
    "$WORK/jane-rsa.pem"
t_ok "  with RSA-PSS" engine_sign "$rsa;pin-value=$PIN" "$WORK/jane-rsa.pem" rsa_padding_mode:pss \
    rsa_pss_saltlen:32
t_ok "  the PIN from a file (pin-source)" engine_sign "$rsa;pin-source=file:$WORK/pin-exact" "$WORK/jane-rsa.pem"
t_ok "pkeyutl signs with the EC key (serial and object in the URI)" engine_sign "$ec;pin-value=$PIN" \
    "$WORK/jane-ec.pem"
t_ok "  and by its id" engine_sign "pkcs11:serial=$TPM_SERIAL;id=$(printf %s "$TPM_EC_ID" | sed 's/../%&/g');type=private;pin-value=$PIN" \
    "$WORK/jane-ec.pem"
t_fail "a wrong PIN signs nothing" engine_sign "$rsa;pin-value=000000" "$WORK/jane-rsa.pem"
t_ok "  PIN incorrect" grep -q "PIN incorrect" "$WORK/last.out"
t_ok "openssl req makes a certificate signed with the card's key" self_signed "$ec;pin-value=$PIN" "$WORK/jane-ec.pem"
for v in -tls1_2 -tls1_3; do
    t_ok "s_client $v: client authentication with the RSA key" tls_login $v "$rsa;pin-value=$PIN" \
        "$WORK/jane-rsa.pem" "CN=Jane Doe, O=Example"
    t_ok "s_client $v: with the EC key" tls_login $v "$ec;pin-value=$PIN" "$WORK/jane-ec.pem" \
        "CN=Jane Doe EC, O=Example"
done

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    piv="pkcs11:serial=$PIV_SERIAL;id=%01;type=private;pin-value=$PIN"
    t_ok "pkeyutl signs with 9A" engine_sign "$piv" "$WORK/piv-auth.pem"
    t_ok "  with RSA-PSS" engine_sign "$piv" "$WORK/piv-auth.pem" rsa_padding_mode:pss rsa_pss_saltlen:32
    t_ok "pkeyutl signs with 9D" engine_sign "pkcs11:serial=$PIV_SERIAL;id=%03;type=private;pin-value=$PIN" \
        "$WORK/piv-enc.pem"
    for v in -tls1_2 -tls1_3; do
        t_ok "s_client $v: client authentication with 9A" tls_login $v "$piv" "$WORK/piv-auth.pem" \
            "CN=Jane PIV, O=Example"
    done
fi
t_done
