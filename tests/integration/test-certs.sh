# Certificates and keys onto cards with the tool: a key made on the card with
# a PKCS#10 request it signed, the certificate a CA made from it loaded next
# to its key, CA certificates, and an escrowed key from a PKCS#12; on a TPM
# virtual card and on the virtual PIV card. Then pkcs11-tool and OpenSSL (its
# pkcs11 engine) use what was loaded, and OpenSSL checks the results.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"

printf '123456\n' > "$WORK/pin"
printf '12345678\n' > "$WORK/so"
printf 'escrow-pass\n' > "$WORK/p12pass"
printf 'sign me\n' > "$WORK/data"

# A test CA, and an escrowed encryption key with its certificate in a PKCS#12.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 30 \
    -subj "/CN=Tessera Test CA" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -keyout "$WORK/enc.key" -out "$WORK/enc.csr" -subj "/CN=Jane Escrow" \
    2>/dev/null
openssl x509 -req -in "$WORK/enc.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 30 \
    -out "$WORK/enc.pem" 2>/dev/null
openssl pkcs12 -export -inkey "$WORK/enc.key" -in "$WORK/enc.pem" -certfile "$WORK/ca.pem" -name "Jane escrow" \
    -passout file:"$WORK/p12pass" -out "$WORK/enc.p12"
openssl x509 -in "$WORK/enc.pem" -pubkey -noout > "$WORK/enc.pub"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/stranger.key" \
    -out "$WORK/stranger.pem" -subj "/CN=Stranger" 2>/dev/null

issue() {   # issue CSR CERT: the test CA signs a request
    openssl x509 -req -in "$1" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 30 -out "$2" 2>/dev/null
}
csr_subject_is() { openssl req -in "$1" -noout -subject | grep -q "CN = $2"; }
read_back_verifies() {   # read_back_verifies P11 ID: the card's certificate for ID chains to the CA
    "$1" --read-object --type cert --id "$2" -o "$WORK/back.der" &&
        openssl x509 -inform DER -in "$WORK/back.der" -out "$WORK/back.pem" &&
        openssl verify -CAfile "$WORK/ca.pem" "$WORK/back.pem"
}
decrypts_escrowed() {   # decrypts_escrowed P11 ID: OpenSSL encrypts to the escrowed certificate, the card decrypts
    openssl pkeyutl -encrypt -pubin -inkey "$WORK/enc.pub" -in "$WORK/data" -out "$WORK/ct" &&
        "$1" -l --pin 123456 --decrypt -m RSA-PKCS --id "$2" -i "$WORK/ct" -o "$WORK/pt" && cmp "$WORK/pt" "$WORK/data"
}
engine_signs() {   # engine_signs URI PUBKEY: OpenSSL's pkcs11 engine signs with the card's key, OpenSSL verifies
    OPENSSL_CONF=/dev/null PKCS11_MODULE_PATH="$MOD" client openssl pkeyutl -engine pkcs11 -keyform engine \
        -inkey "$1;pin-value=123456" -sign -in "$WORK/digest" -out "$WORK/eng.sig" -pkeyopt digest:sha256 \
        2>"$WORK/engine.err" || { cat "$WORK/engine.err" >&2; return 1; }
    openssl pkeyutl -verify -pubin -inkey "$2" -in "$WORK/digest" -sigfile "$WORK/eng.sig" -pkeyopt digest:sha256
}
openssl dgst -sha256 -binary "$WORK/data" > "$WORK/digest"

# --- a TPM virtual card ---
t_ok "create a card" $TOOL --json vsc create --label Certs --so-pin-file "$WORK/so" --pin-file "$WORK/pin"
serial=$(field serial < "$WORK/last.out")
tp() { p11tool --token-label Certs "$@"; }
t_ok "key generate with a request" $TOOL key generate --serial "$serial" --type p256 --label "Jane auth" \
    --pin-file "$WORK/pin" --csr "$WORK/auth.csr" --subject "/CN=Jane Doe/O=Example"
t_ok "  the request verifies (signed on the card)" openssl req -in "$WORK/auth.csr" -noout -verify
t_ok "  and names the subject" csr_subject_is "$WORK/auth.csr" "Jane Doe"
t_ok "an RSA-3072 key with a request, as JSON" $TOOL --json key generate --serial "$serial" --type rsa3072 \
    --pin-file "$WORK/pin" --csr "$WORK/rsa.csr" --subject "/CN=Jane RSA"
t_ok "  the id in JSON" grep -q '"key generated":"[0-9a-f]\{40\}"' "$WORK/last.out"
t_ok "  the request verifies" openssl req -in "$WORK/rsa.csr" -noout -verify
t_fail "a subject that does not parse" $TOOL key generate --serial "$serial" --pin-file "$WORK/pin" \
    --csr "$WORK/x.csr" --subject "CN=no slash"
t_ok "the CA issues the EC certificate" issue "$WORK/auth.csr" "$WORK/auth.pem"
t_ok "and the RSA one" issue "$WORK/rsa.csr" "$WORK/rsa.pem"
t_ok "cert load finds the key by its public key" $TOOL --json cert load --serial "$serial" --pin-file "$WORK/pin" \
    "$WORK/auth.pem"
auth_id=$(field "certificate loaded" < "$WORK/last.out")
t_ok "  its certificate sits next to it" tp -O --type cert --id "$auth_id"
t_ok "  named as its key" grep -q "Jane auth" "$WORK/last.out"
t_ok "  read back, it chains to the CA" read_back_verifies tp "$auth_id"
t_ok "loading it again replaces it, no duplicate" $TOOL cert load --serial "$serial" --pin-file "$WORK/pin" \
    "$WORK/auth.pem"
count_certs() { tp -O --type cert --id "$1" | grep -c "^Certificate Object"; }
t_is "  one certificate for that key" "1" "$(count_certs "$auth_id")"
t_ok "the RSA one too" $TOOL cert load --serial "$serial" --pin-file "$WORK/pin" "$WORK/rsa.pem"
t_is "a certificate whose key is not on the card" 5 "$($TOOL cert load --serial "$serial" --pin-file "$WORK/pin" \
    "$WORK/stranger.pem" 2>/dev/null; echo $?)"
t_is "a wrong PIN" 4 "$(printf '000000\n' | $TOOL cert load --serial "$serial" --pin-file - "$WORK/auth.pem" \
    2>/dev/null; echo $?)"
t_ok "cert import-ca" $TOOL cert import-ca --serial "$serial" --pin-file "$WORK/pin" "$WORK/ca.pem"
t_ok "  the CA certificate is listed" tp -O --type cert
t_ok "  by its name" grep -q "Tessera Test CA" "$WORK/last.out"
t_is "key import with a wrong PKCS#12 password" 4 "$(printf 'nope\n' | $TOOL key import --serial "$serial" \
    --pin-file "$WORK/pin" --p12 "$WORK/enc.p12" --p12-pass-file - 2>/dev/null; echo $?)"
t_ok "key import from the PKCS#12" $TOOL --json key import --serial "$serial" --pin-file "$WORK/pin" \
    --p12 "$WORK/enc.p12" --p12-pass-file "$WORK/p12pass"
enc_id=$(field "key imported" < "$WORK/last.out")
t_ok "  pkcs11-tool decrypts what OpenSSL encrypted to the escrowed certificate" decrypts_escrowed tp "$enc_id"
t_ok "  pkcs11-tool signs with it" tp -l --pin 123456 --sign -m SHA256-RSA-PKCS --id "$enc_id" -i "$WORK/data" \
    -o "$WORK/enc.sig"
t_ok "  OpenSSL verifies against the certificate" openssl dgst -sha256 -verify "$WORK/enc.pub" \
    -signature "$WORK/enc.sig" "$WORK/data"
t_ok "  its certificate and public key are on the card" tp -O --id "$enc_id"
cp "$WORK/last.out" "$WORK/enc-objects"
t_ok "    certificate" grep -q "^Certificate Object" "$WORK/enc-objects"
t_ok "    public key" grep -q "^Public Key Object" "$WORK/enc-objects"
t_ok "    labelled with the PKCS#12's name" grep -q "Jane escrow" "$WORK/enc-objects"
count() { tp -l --pin 123456 -O --type "$1" 2>/dev/null | grep -c "^$2"; }
keys_before=$(count privkey 'Private Key Object'); certs_before=$(count cert 'Certificate Object')
t_ok "key import run again" $TOOL --json key import --serial "$serial" --pin-file "$WORK/pin" \
    --p12 "$WORK/enc.p12" --p12-pass-file "$WORK/p12pass"
t_ok "  finds the key on the card" grep -q "already holds this key (id $enc_id)" "$WORK/last.out"
t_is "  and puts no second copy in" "$(count privkey 'Private Key Object')" "$keys_before"
t_is "  nor a second certificate" "$(count cert 'Certificate Object')" "$certs_before"
# An import killed after the key went in and before its certificate: the
# key alone on the card (put there by pkcs11-tool); key import finishes.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/cut.key" -out "$WORK/cut.csr" \
    -subj "/CN=Cut Short" 2>/dev/null
issue "$WORK/cut.csr" "$WORK/cut.pem"
openssl pkcs12 -export -inkey "$WORK/cut.key" -in "$WORK/cut.pem" -name "Cut short" \
    -passout file:"$WORK/p12pass" -out "$WORK/cut.p12"
keys_before=$(count privkey 'Private Key Object')
t_ok "a key whose import was cut short" tp -l --pin 123456 --write-object "$WORK/cut.key" --type privkey --id 77
t_ok "key import completes it" $TOOL --json key import --serial "$serial" --pin-file "$WORK/pin" \
    --p12 "$WORK/cut.p12" --p12-pass-file "$WORK/p12pass"
t_ok "  with the key already there (id 77)" grep -q '"key imported":"77"' "$WORK/last.out"
t_ok "  its certificate and public key next to it" tp -O --id 77
cp "$WORK/last.out" "$WORK/cut-objects"
t_ok "    certificate" grep -q "^Certificate Object" "$WORK/cut-objects"
t_ok "    public key" grep -q "^Public Key Object" "$WORK/cut-objects"
t_is "  and no second copy of the key" "$(count privkey 'Private Key Object')" $((keys_before + 1))

# --- the virtual PIV card ---
card_up || { echo "Bail out! no virtual PIV card"; exit 1; }
pp() { p11tool --slot 0x100 "$@"; }
t_ok "the PIV card is found by its slot" $TOOL --json card info --slot 256
piv_serial=$(field serial < "$WORK/last.out")
t_ok "  a PIV card, its 9B key the factory default" grep -q '"type":"piv".*"default":true' "$WORK/last.out"
t_ok "key generate in 9A with a request" $TOOL --json key generate --serial "$piv_serial" --type p256 \
    --pin-file "$WORK/pin" --csr "$WORK/piv.csr" --subject "/CN=Jane PIV"
t_ok "  into 9A (id 01)" grep -q '"key generated":"01"' "$WORK/last.out"
t_ok "  the request verifies" openssl req -in "$WORK/piv.csr" -noout -verify
t_ok "key generate in 9C (PIN at every use) with a request" $TOOL key generate --serial "$piv_serial" \
    --type rsa2048 --id 02 --pin-file "$WORK/pin" --csr "$WORK/sig.csr" --subject "/CN=Jane Signature"
t_ok "  the request verifies" openssl req -in "$WORK/sig.csr" -noout -verify
t_ok "the CA issues for 9A" issue "$WORK/piv.csr" "$WORK/piv.pem"
t_ok "and for 9C" issue "$WORK/sig.csr" "$WORK/sig.pem"
t_ok "cert load into 9A" $TOOL cert load --serial "$piv_serial" --pin-file "$WORK/pin" "$WORK/piv.pem"
t_ok "cert load into 9C" $TOOL cert load --serial "$piv_serial" --pin-file "$WORK/pin" "$WORK/sig.pem"
t_ok "  9A's certificate chains to the CA" read_back_verifies pp 01
t_ok "  9C's too" read_back_verifies pp 02
t_ok "key import from the PKCS#12 into 9D" $TOOL --json key import --serial "$piv_serial" --pin-file "$WORK/pin" \
    --p12 "$WORK/enc.p12" --p12-pass-file "$WORK/p12pass"
t_ok "  id 03" grep -q '"key imported":"03"' "$WORK/last.out"
t_ok "  the card decrypts what OpenSSL encrypted to the escrowed certificate" decrypts_escrowed pp 03
t_ok "  9D's certificate is the escrowed one" read_back_verifies pp 03
t_ok "  OpenSSL's pkcs11 engine signs with the imported key" engine_signs \
    "pkcs11:serial=$piv_serial;id=%03;type=private" "$WORK/enc.pub"
t_done
