# Tessera's PIV driver with cards others personalised, and the other way
# round: yubico-piv-tool makes keys and certificates, Tessera uses them;
# Tessera writes a certificate, OpenSC reads it. Also: the certificate cache
# (a card seen before is read with fewer APDUs, a changed certificate is
# noticed), and a card without PIV in the other reader.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"

OPENSC=$(ls /usr/lib/*/opensc-pkcs11.so 2>/dev/null | head -1)
READER="Virtual PCD 00 00"
yk() { client yubico-piv-tool -r "$READER" "$@"; }
t11() { p11tool --slot 0x100 "$@"; }
apdus() {   # APDUs Tessera spent reading the card's objects, from its log (store: $1)
    TESSERA_HOME="$1" TESSERA_LOG=info t11 -O 2>&1 | sed -n 's/.*objects read with \([0-9]*\) APDUs.*/\1/p' | head -1
}
make_cert() {   # make_cert SLOT ALG CN: key by yubico-piv-tool, certificate by openssl, imported by yubico-piv-tool
    # (yubico-piv-tool 2.2's own selfsign-certificate fails under OpenSSL 3: Yubico/yubico-piv-tool#388)
    [ -s "$WORK/ca.key" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$WORK/ca.key" -subj "/CN=Test CA" -days 1 -out "$WORK/ca.pem" 2>/dev/null
    yk -a generate -s "$1" -A "$2" -o "$WORK/pub-$1.pem" &&
        openssl x509 -new -force_pubkey "$WORK/pub-$1.pem" -subj "/CN=$3" -key "$WORK/ca.key" -days 1 \
            -out "$WORK/cert-$1.pem" 2>/dev/null &&
        yk -a import-certificate -s "$1" -i "$WORK/cert-$1.pem"
}
verify_with_cert() {   # verify_with_cert SLOT: the signature in $WORK/sig-SLOT against the yubico certificate
    openssl x509 -in "$WORK/cert-$1.pem" -noout -pubkey > "$WORK/pk-$1.pem" &&
        openssl dgst -sha256 -verify "$WORK/pk-$1.pem" -signature "$WORK/sig-$1" "$WORK/data"
}

t_ok "a virtual PIV card in the first reader" card_up
printf 'interop' > "$WORK/data"
t_ok "yubico-piv-tool: RSA-2048 key and certificate in 9A" make_cert 9a RSA2048 "Alice Yubico"
t_ok "yubico-piv-tool: P-256 key and certificate in 9C" make_cert 9c ECCP256 "Alice Signer"
list_objects() { t11 -O > "$WORK/objects"; }
t_ok "Tessera lists the certificates yubico-piv-tool wrote" list_objects
t_ok "  9A's" grep -q "Alice Yubico" "$WORK/objects"
t_ok "  9C's" grep -q "Alice Signer" "$WORK/objects"
t_ok "Tessera signs with the 9A key" t11 -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/sig-9a"
t_ok "  and the signature verifies against yubico-piv-tool's certificate" verify_with_cert 9a
t_ok "Tessera signs with the 9C key (PIN always)" t11 -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl \
    --id 02 -i "$WORK/data" -o "$WORK/sig-9c"
t_ok "  and that verifies too" verify_with_cert 9c

mkdir -m 700 "$WORK/fresh-home"
cold=$(apdus "$WORK/fresh-home")
warm=$(apdus "$WORK/fresh-home")
echo "# objects read with $cold APDUs cold, $warm warm"
t_ok "a card seen before is read with fewer APDUs ($cold, then $warm)" test "${warm:-99}" -lt "${cold:-0}"
t_ok "a new certificate in 9A" make_cert 9a RSA2048 "Alice Renewed"
renewed_seen() { t11 -O | grep -q 'Alice Renewed'; }
t_ok "is noticed despite the cache" renewed_seen

# Tessera writes a certificate for 9D's key; OpenSC reads it.
t_ok "Tessera generates a key in 9D" t11 -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 03
make_9d_cert() {
    t11 --read-object --type pubkey --id 03 -o "$WORK/pub9d.der" &&
        openssl pkey -pubin -inform DER -in "$WORK/pub9d.der" -out "$WORK/pub9d.pem" &&
        openssl x509 -new -force_pubkey "$WORK/pub9d.pem" -subj "/CN=Key Manager" -key "$WORK/ca.key" -days 1 \
            -outform DER -out "$WORK/cert9d.der" 2>/dev/null
}
t_ok "a certificate for it" make_9d_cert
t_ok "Tessera stores it on the card (PUT DATA, management key)" t11 -l -p 123456 --write-object "$WORK/cert9d.der" \
    --type cert --id 03
t_ok "OpenSC reads it from the card" client pkcs11-tool --module "$OPENSC" -O
t_ok "  with its subject" grep -q "Key Manager" "$WORK/last.out"
t_ok "yubico-piv-tool reads it too" yk -a read-certificate -s 9d -o "$WORK/back9d.pem"
t_ok "  unchanged" sh -c "openssl x509 -in '$WORK/back9d.pem' -outform DER | cmp - '$WORK/cert9d.der'"

# A card without PIV in the second reader: a slot without a token, never an error.
blank_up() {
    python3 "$TESSERA_SRCDIR/tests/cards/blank-card.py" "$VPCD_PORT1" "$WORK/blank.card.pid" &
    for _ in $(seq 100); do client opensc-tool -l 2>/dev/null | grep -q "^1 *Yes" && return 0; sleep 0.05; done
    return 1
}
t_ok "a card without PIV in the second reader" blank_up
t_ok "Tessera lists the slots" p11tool -L
t_ok "  the second reader's slot shows no token" grep -A1 "Virtual PCD 00 01" "$WORK/last.out"
t_ok "  (empty)" sh -c "grep -A1 'Virtual PCD 00 01' '$WORK/last.out' | grep -q empty"
t_ok "  and the PIV card still works beside it" t11 -l -p 123456 -O
# Two processes using the card at once: every multi-APDU operation runs in
# a PC/SC transaction, so neither breaks the other's PIN state.
signer() { local i; for i in $(seq 8); do t11 -l -p 123456 --sign -m ECDSA-SHA256 --id 03 -i "$WORK/data" -o "$WORK/s$1" || return 1; done; }
both() { signer 1 >"$WORK/signer1.out" 2>&1 & local p=$!; signer 2 >"$WORK/signer2.out" 2>&1 || return 1; wait $p; }
t_ok "two processes sign on the card at the same time, 16 signatures" both

# A card whose management key is AES-128: Tessera takes the key from tessera.conf.
aes_key=000102030405060708090a0b0c0d0e0f
card_stop vpiv
t_ok "a card with an AES-128 management key" card_start aes "$VPCD_PORT0" --mgmt-alg aes128 --mgmt-key "$aes_key"
printf 'piv_management_key = %s\npiv_management_alg = aes128\n' "$aes_key" > "$WORK/aes.conf"
printf 'piv_management_key = %s\npiv_management_alg = aes128\n' "ffffffffffffffffffffffffffffffff" > "$WORK/wrong.conf"
t_fail "with the factory 3DES key Tessera cannot generate" t11 -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 01
t_ok "  and says why" grep -q "refused the management key" "$WORK/last.out"
wrong_keygen() {
    TESSERA_CONF="$WORK/wrong.conf" t11 -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 01
}
t_fail "nor with a wrong AES key" wrong_keygen
t_ok "  and says why" grep -q "refused the management key" "$WORK/last.out"
aes_keygen() {
    TESSERA_CONF="$WORK/aes.conf" t11 -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 01
}
t_ok "with the AES key from tessera.conf it can" aes_keygen
t_ok "and the new key signs" t11 -l -p 123456 --sign -m ECDSA-SHA256 --id 01 -i "$WORK/data" -o "$WORK/aes.sig"

# A card whose ATR offers extended length (a YubiKey 5's): a 2048-bit RSA
# operation goes as one extended APDU instead of a chain.
card_stop aes
t_ok "a card with a YubiKey 5 ATR (extended Lc/Le)" card_start ext "$VPCD_PORT0" -v \
    --atr 3BFD1300008131FE158073C021C057597562694B657940
t_ok "Tessera generates an RSA key on it" t11 -l -p 123456 --keypairgen --key-type rsa:2048 --id 01
t_ok "and signs" t11 -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/ext.sig"
t_ok "  with one extended APDU (Lc above 255)" grep -qE "^vpiv: > 00 87 07 9A lc=(2[6-9][0-9]|[3-9][0-9][0-9])" "$WORK/ext.log"
t_ok "  and no chaining" sh -c "! grep -q '^vpiv: > 10 87' '$WORK/ext.log'"
ext_verify() {
    t11 --read-object --type pubkey --id 01 -o "$WORK/ext.der" &&
        openssl pkey -pubin -inform DER -in "$WORK/ext.der" -out "$WORK/ext.pem" &&
        openssl dgst -sha256 -verify "$WORK/ext.pem" -signature "$WORK/ext.sig" "$WORK/data"
}
t_ok "  and the signature verifies" ext_verify
t_done
