# The virtual PIV card (tests/cards/vpiv) against yubico-piv-tool (libykpiv),
# which also needs the YubiKey extensions (version, serial, management key,
# import, PIN retries, reset, attestation, metadata); OpenSC then reads what
# yubico-piv-tool wrote. See tests/cards/README.md.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"   # pcscd_start, card_start, card_stop

VPIV=${TESSERA_VPIV:?TESSERA_VPIV not set}
OPENSC_P11=
for f in /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so /usr/lib/*/opensc-pkcs11.so /usr/lib/opensc-pkcs11.so; do
    [ -e "$f" ] && OPENSC_P11=$f && break
done
for t in yubico-piv-tool opensc-tool pkcs11-tool pcscd openssl xxd; do
    command -v "$t" >/dev/null || { echo "1..0 # SKIP $t not installed"; exit 0; }
done

READER="Virtual PCD 00 00"
CARD="$WORK/card-state"   # where cards.sh keeps the card named "card"
MGMT_DEFAULT=010203040506070801020304050607080102030405060708
MGMT_NEW=0f0e0d0c0b0a09080706050403020100f1e2d3c4b5a69788
MGMT_AES=00112233445566778899aabbccddeeff
cd "$WORK" || exit 1

# yubico-piv-tool on our reader (its default "Yubikey" would match none).
Y() { yubico-piv-tool -r "$READER" "$@"; }
p11() { pkcs11-tool --module "$OPENSC_P11" "$@"; }


# A certificate for a card key from a CA of the test's own. (yubico-piv-tool
# 2.2.0 cannot sign certificates itself with OpenSSL 3: see below.)
certify() {   # certify PUB.pem CN OUT.pem
    openssl x509 -new -subj "/CN=$2" -force_pubkey "$1" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
        -days 30 -out "$3"
}
pub_der_hex() {   # the public key of a PEM public key or certificate, DER in hex
    { openssl pkey -pubin -in "$1" -outform DER 2>/dev/null ||
        openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER; } | xxd -p | tr -d '\n'
}
same_pubkey() {   # same_pubkey A.pem B.pem
    local a
    a=$(pub_der_hex "$1")
    [ -n "$a" ] && [ "$a" = "$(pub_der_hex "$2")" ]
}
status_has() { Y -a status 2>/dev/null | grep -q "$1"; }
tries_left() { Y -a status 2>/dev/null | sed -n 's/^PIN tries left:[[:space:]]*//p'; }
fingerprint() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr A-F a-f; }
has_aes() { yubico-piv-tool --help 2>&1 | grep -q AES128; }

printf 'signed by a virtual PIV card\n' >"$WORK/data"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=vpiv-test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 30 2>/dev/null

t_ok "a private pcscd with vpcd readers" pcscd_start "$WORK"
t_ok "the card connects (serial 12345678)" card_start card "$VPCD_PORT0" --serial 12345678

# ---- what the card says about itself
t_is "version" "$(Y -a version 2>/dev/null)" "Application version 5.4.3 found."
Y -a status >"$WORK/status.txt" 2>&1
t_ok "status: serial number" grep -q '^Serial Number:[[:space:]]*12345678$' "$WORK/status.txt"
t_ok "  a CHUID (FASC-N of agency 9999)" grep -Eq '^CHUID:[[:space:]]*3019d4e739' "$WORK/status.txt"
t_ok "  a CCC" grep -Eq '^CCC:[[:space:]]*f015a000000116' "$WORK/status.txt"
t_is "  PIN tries left" "$(tries_left)" 3
t_ok "verify-pin" Y -a verify-pin -P 123456
t_fail "a wrong PIN" Y -a verify-pin -P 999999
t_ok "  says 2 tries left" grep -q '2 tries left' "$WORK/last.out"
t_ok "the right PIN restores the counter" Y -a verify-pin -P 123456
t_is "  to 3" "$(tries_left)" 3

# ---- keys and certificates
t_ok "generate RSA-2048 in 9A" Y -a generate -s 9a -A RSA2048 -o "$WORK/9a.pub"
t_ok "  a 2048-bit RSA public key" sh -c "openssl pkey -pubin -in '$WORK/9a.pub' -noout -text | grep -q 'Public-Key: (2048 bit)'"
t_fail "generating with a wrong management key is refused" Y --key=$MGMT_NEW -a generate -s 9a -A RSA2048
# selfsign-certificate and request-certificate of yubico-piv-tool 2.2.0 fail
# before talking to the card under OpenSSL 3 (Yubico/yubico-piv-tool#388).
if Y -a verify-pin -P 123456 -a selfsign-certificate -s 9a -S '/CN=vpiv 9a/' \
    -i "$WORK/9a.pub" -o "$WORK/9a.crt" >"$WORK/selfsign.out" 2>&1; then
    t_ok "selfsign-certificate: signed by the 9A key" openssl verify -CAfile "$WORK/9a.crt" "$WORK/9a.crt"
else
    t_skip "selfsign-certificate" "$(yubico-piv-tool --version) cannot sign certificates with OpenSSL 3"
    certify "$WORK/9a.pub" "vpiv 9a" "$WORK/9a.crt"
fi
t_ok "import-certificate 9A" Y -a import-certificate -s 9a -i "$WORK/9a.crt"
t_ok "read-certificate 9A" Y -a read-certificate -s 9a -o "$WORK/9a.back"
t_ok "  matches" cmp "$WORK/9a.crt" "$WORK/9a.back"
t_ok "test-signature 9A (RSA)" Y -a verify-pin -P 123456 -a test-signature -s 9a -i "$WORK/9a.crt"
t_ok "test-decipher 9A (RSA)" Y -a verify-pin -P 123456 -a test-decipher -s 9a -i "$WORK/9a.crt"

t_ok "generate P-256 in 9C" Y -a generate -s 9c -A ECCP256 -o "$WORK/9c.pub"
certify "$WORK/9c.pub" "vpiv 9c" "$WORK/9c.crt"
t_ok "import-certificate 9C" Y -a import-certificate -s 9c -i "$WORK/9c.crt"
t_ok "test-signature 9C (ECDSA, PIN always)" Y -a verify-pin -P 123456 -a test-signature -s 9c -i "$WORK/9c.crt"
t_fail "  refused without the PIN" Y -a test-signature -s 9c -i "$WORK/9c.crt"

t_ok "generate P-384 in 9D" Y -a generate -s 9d -A ECCP384 -o "$WORK/9d.pub"
certify "$WORK/9d.pub" "vpiv 9d" "$WORK/9d.crt"
t_ok "import-certificate 9D" Y -a import-certificate -s 9d -i "$WORK/9d.crt"
t_ok "test-signature 9D (ECDSA P-384)" Y -a verify-pin -P 123456 -a test-signature -s 9d -i "$WORK/9d.crt"
t_ok "test-decipher 9D (ECDH P-384)" Y -a verify-pin -P 123456 -a test-decipher -s 9d -i "$WORK/9d.crt"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/9e.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/9e.key" -subj "/CN=vpiv 9e imported" -days 30 -out "$WORK/9e.crt"
t_ok "import-key RSA-2048 into 9E" Y -a import-key -s 9e -i "$WORK/9e.key"
t_ok "import-certificate 9E" Y -a import-certificate -s 9e -i "$WORK/9e.crt"
t_ok "test-signature 9E (imported RSA key, no PIN)" Y -a test-signature -s 9e -i "$WORK/9e.crt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/82.key" 2>/dev/null
openssl req -x509 -new -key "$WORK/82.key" -subj "/CN=vpiv 82 imported" -days 30 -out "$WORK/82.crt"
t_ok "import-key P-256 into retired slot 82" Y -a import-key -s 82 -i "$WORK/82.key"
t_ok "import-certificate 82" Y -a import-certificate -s 82 -i "$WORK/82.crt"
t_ok "test-signature 82 (imported EC key)" Y -a verify-pin -P 123456 -a test-signature -s 82 -i "$WORK/82.crt"
t_ok "status lists the five slots" sh -c "test \$(yubico-piv-tool -r '$READER' -a status | grep -c '^Slot ') = 5"

# ---- attestation (slot F9)
t_ok "attest 9C" Y -a attest -s 9c -o "$WORK/9c.att"
t_ok "  the attestation key's certificate" Y -a read-certificate -s f9 -o "$WORK/f9.crt"
t_ok "  signed the attestation" openssl verify -CAfile "$WORK/f9.crt" "$WORK/9c.att"
t_ok "  which certifies the 9C key" same_pubkey "$WORK/9c.att" "$WORK/9c.pub"
t_fail "an imported key cannot be attested" Y -a attest -s 9e -o "$WORK/9e.att"

# ---- OpenSC reads what yubico-piv-tool wrote
t_ok "pkcs11-tool sees the 9A certificate" p11 --read-object --type cert --id 01 -o "$WORK/9a.p11.der"
t_is "  the one yubico-piv-tool imported" "$(openssl x509 -inform DER -in "$WORK/9a.p11.der" -noout -fingerprint -sha256)" \
    "$(openssl x509 -in "$WORK/9a.crt" -noout -fingerprint -sha256)"
t_ok "OpenSC signs with the 9A key" p11 -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/9a.sig"
t_ok "  openssl verifies it" openssl dgst -sha256 -verify "$WORK/9a.pub" -signature "$WORK/9a.sig" "$WORK/data"
t_ok "pkcs11-tool sees the retired 82 certificate" p11 --read-object --type cert --id 05 -o "$WORK/82.p11.der"
t_is "  the one yubico-piv-tool imported" "$(openssl x509 -inform DER -in "$WORK/82.p11.der" -noout -fingerprint -sha256)" \
    "$(openssl x509 -in "$WORK/82.crt" -noout -fingerprint -sha256)"

# ---- management key
t_ok "set-mgm-key (3DES)" Y -a set-mgm-key -n $MGMT_NEW
t_fail "  the default key no longer works" Y -a generate -s 9e -A ECCP256
t_ok "  the new one does" Y --key=$MGMT_NEW -a delete-certificate -s 9e
t_fail "  9E has no certificate now" Y -a read-certificate -s 9e
if has_aes; then
    t_ok "set-mgm-key to AES-128" Y --key=$MGMT_NEW -a set-mgm-key -m AES128 -n $MGMT_AES
    t_ok "  and use it" Y --key=$MGMT_AES -a generate -s 9e -A ECCP256 -o "$WORK/9e2.pub"
    mgmt=$MGMT_AES
else
    t_skip "set-mgm-key to AES-128" "$(yubico-piv-tool --version) knows 3DES management keys only (see test-vpiv-opensc.sh)"
    mgmt=$MGMT_NEW
fi

# ---- PIN and PUK
t_ok "change-pin" Y -a change-pin -P 123456 -N 24680135
t_fail "  the old PIN fails" Y -a verify-pin -P 123456
t_ok "  the new PIN works" Y -a verify-pin -P 24680135
t_ok "change-puk" Y -a change-puk -P 12345678 -N 87654321
t_fail "a wrong PIN" Y -a verify-pin -P 000000
t_fail "a second" Y -a verify-pin -P 000000
t_fail "a third blocks it" Y -a verify-pin -P 000000
t_ok "  blocked" grep -q 'blocked' "$WORK/last.out"
t_fail "  the right PIN fails now" Y -a verify-pin -P 24680135
t_fail "unblock-pin with the old PUK fails" Y -a unblock-pin -P 12345678 -N 11112222
t_ok "unblock-pin with the PUK" Y -a unblock-pin -P 87654321 -N 11112222
t_ok "  the new PIN works" Y -a verify-pin -P 11112222
t_ok "  and signs" Y -a verify-pin -P 11112222 -a test-signature -s 9a -i "$WORK/9a.crt"
t_ok "pin-retries 5/4 (resets PIN and PUK to their defaults)" \
    Y --key=$mgmt -a verify-pin -P 11112222 -a pin-retries --pin-retries 5 --puk-retries 4
t_is "  5 tries" "$(tries_left)" 5
t_ok "  the default PIN works again" Y -a verify-pin -P 123456

# ---- the card keeps its state across a restart
fp=$(fingerprint "$WORK/9a.crt")
t_ok "stop the card" card_stop card
t_ok "start it again on the same folder" card_start card "$VPCD_PORT0"
t_ok "  9A still has its certificate" Y -a read-certificate -s 9a -o "$WORK/9a.back2"
t_is "  the same" "$(fingerprint "$WORK/9a.back2")" "$fp"
t_ok "  and its key signs" Y -a verify-pin -P 123456 -a test-signature -s 9a -i "$WORK/9a.crt"
t_ok "  the management key stayed" Y --key=$mgmt -a generate -s 9e -A ECCP256 -o "$WORK/9e3.pub"
t_is "  so did the PIN retries" "$(tries_left)" 5

# ---- reset: only with PIN and PUK blocked
t_fail "reset refused while the PIN works" Y -a reset
for i in 1 2 3 4 5; do Y -a verify-pin -P 000000 >/dev/null 2>&1; done
for i in 1 2 3 4; do Y -a unblock-pin -P 00000000 -N 000000 >/dev/null 2>&1; done
chuid=$(Y -a status 2>/dev/null | sed -n 's/^CHUID:[[:space:]]*//p')
t_ok "reset with PIN and PUK blocked" Y -a reset
t_is "  no certificates left" "$(Y -a status 2>/dev/null | grep -c '^Slot ')" 0
t_ok "  default PIN" Y -a verify-pin -P 123456
t_is "  3 tries" "$(tries_left)" 3
t_ok "  default management key" Y -a generate -s 9a -A ECCP256 -o "$WORK/9a.new"
t_ok "  a new CHUID" sh -c "test -n '$chuid' && ! yubico-piv-tool -r '$READER' -a status | grep -q '$chuid'"
t_ok "  the same serial number" status_has '^Serial Number:[[:space:]]*12345678$'
t_done
