# Real clients against the module: OpenSC's pkcs11-tool (its --test suite,
# threads and fork tests) and OpenSSL verifying what the card signed.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

p() { p11tool --token-label Tool "$@"; }

verify_rsa() {
    openssl pkey -pubin -inform DER -in "$WORK/rsa.der" -out "$WORK/rsa.pem" &&
        openssl dgst -sha256 -verify "$WORK/rsa.pem" -signature "$WORK/rsa.sig" "$WORK/data"
}
verify_ec() {
    openssl pkey -pubin -inform DER -in "$WORK/ec.der" -out "$WORK/ec.pem" &&
        openssl dgst -sha256 -verify "$WORK/ec.pem" -signature "$WORK/ec.sig" "$WORK/data"
}
decrypt_oaep() {
    openssl pkeyutl -encrypt -pubin -inkey "$WORK/rsa.pem" -pkeyopt rsa_padding_mode:oaep \
        -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256 -in "$WORK/data" -out "$WORK/ct" &&
        p -l -p 123456 --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA256 --mgf MGF1-SHA256 --id 01 \
            -i "$WORK/ct" -o "$WORK/pt" &&
        cmp "$WORK/pt" "$WORK/data"
}
label_blank_padded() { p -T | grep -q 'token label *: Tool$'; }
count_low_shown() { p -T | grep -q 'user PIN count low'; }

t_ok "create a card" $TOOL vsc create --label Tool --so-pin 12345678 --pin 123456
t_ok "RSA-2048 key" p -l -p 123456 --keypairgen --key-type rsa:2048 --id 01 --label rsa
t_ok "RSA-3072 key" p -l -p 123456 --keypairgen --key-type rsa:3072 --id 03 --label rsa3072
t_ok "EC P-256 key" p -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 02 --label ec
printf 'sign me\n' > "$WORK/data"
t_ok "RSA sign" p -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/rsa.sig"
t_ok "export public key" p --read-object --type pubkey --id 01 -o "$WORK/rsa.der"
t_ok "openssl verifies" verify_rsa
t_ok "RSA-PSS sign" p -l -p 123456 --sign -m SHA256-RSA-PKCS-PSS --id 01 -i "$WORK/data" -o "$WORK/pss.sig"
t_ok "openssl verifies PSS" openssl dgst -sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 \
    -verify "$WORK/rsa.pem" -signature "$WORK/pss.sig" "$WORK/data"
t_ok "ECDSA sign" p -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl --id 02 \
    -i "$WORK/data" -o "$WORK/ec.sig"
t_ok "export EC public key" p --read-object --type pubkey --id 02 -o "$WORK/ec.der"
t_ok "openssl verifies ECDSA" verify_ec
t_ok "decrypt what openssl encrypted (OAEP)" decrypt_oaep
t_ok "pkcs11-tool --test (incl. OAEP with a label)" p -l -p 123456 --test
t_ok "  and it reports no errors" grep -q "No errors" "$WORK/last.out"
t_ok "pkcs11-tool --test-threads" p -l -p 123456 --test-threads ILGISL --test-threads ILGISL
t_ok "pkcs11-tool --test-fork" p --test-fork
t_ok "token fields are blank-padded, not NUL-padded" label_blank_padded
t_fail "wrong PIN" p -l -p 999999 -O
t_ok "token flags report the count" count_low_shown
t_done
