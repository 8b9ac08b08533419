# Keys from outside onto a card with a real client (pkcs11-tool
# --write-object --type privkey, i.e. C_CreateObject of a private key): on
# a TPM virtual card and on the virtual PIV card, then used by pkcs11-tool
# and checked by OpenSSL against the original key; the key never readable
# again and never in the store in the clear.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"

printf 'sign me\n' > "$WORK/data"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/ec.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$WORK/ec384.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp521r1 -out "$WORK/ec521.pem" 2>/dev/null
for k in rsa ec ec384; do openssl pkey -in "$WORK/$k.pem" -pubout -out "$WORK/$k.pub" 2>/dev/null; done

verify() {   # verify KEY SIG [openssl dgst options]
    local key=$1 sig=$2
    shift 2
    openssl dgst -sha256 "$@" -verify "$WORK/$key.pub" -signature "$sig" "$WORK/data"
}
# The first 32 bytes of one of the RSA key's numbers (modulus, prime1 ...)
# as hex, and whether the store's file holds them.
number_hex() {
    openssl pkey -in "$WORK/rsa.pem" -text -noout | awk -v n="$1:" '$1==n{f=1;next} /^[a-zA-Z]/{f=0} f' |
        tr -d ' :\n' | sed 's/^00//' | cut -c1-64
}
store_has() {
    local h
    h=$(number_hex "$1")
    [ ${#h} = 64 ] && [ -s "$TESSERA_HOME/tessera.db" ] || { echo "no $1, or no store" >&2; return 2; }
    od -An -v -tx1 "$TESSERA_HOME"/tessera.db* | tr -d ' \n' | grep -q "$h"
}
decrypt_pkcs1() {   # decrypt_pkcs1 KEY-ID p11tool args...
    local id=$1
    shift
    openssl pkeyutl -encrypt -pubin -inkey "$WORK/rsa.pub" -in "$WORK/data" -out "$WORK/ct" &&
        "$@" --decrypt -m RSA-PKCS --id "$id" -i "$WORK/ct" -o "$WORK/pt" && cmp "$WORK/pt" "$WORK/data"
}

# --- a TPM virtual card ---
tp() { p11tool --token-label Import "$@"; }
t_ok "create a card" $TOOL vsc create --label Import --so-pin 12345678 --pin 123456
t_fail "no import without the user PIN" tp --write-object "$WORK/rsa.pem" --type privkey --id 10
t_ok "import an RSA-2048 key" tp -l -p 123456 --write-object "$WORK/rsa.pem" --type privkey --id 10 --label imported
t_ok "import an EC P-256 key" tp -l -p 123456 --write-object "$WORK/ec.pem" --type privkey --id 11
t_ok "import an EC P-384 key" tp -l -p 123456 --write-object "$WORK/ec384.pem" --type privkey --id 12
t_fail "a P-521 key is refused" tp -l -p 123456 --write-object "$WORK/ec521.pem" --type privkey --id 13
t_ok "RSA sign with the imported key" tp -l -p 123456 --sign -m SHA256-RSA-PKCS --id 10 -i "$WORK/data" \
    -o "$WORK/rsa.sig"
t_ok "openssl verifies with the original public key" verify rsa "$WORK/rsa.sig"
t_ok "RSA-PSS too" tp -l -p 123456 --sign -m SHA256-RSA-PKCS-PSS --id 10 -i "$WORK/data" -o "$WORK/pss.sig"
t_ok "  verified" verify rsa "$WORK/pss.sig" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32
t_ok "decrypt what openssl encrypted to the original key" decrypt_pkcs1 10 tp -l -p 123456
t_ok "ECDSA P-256 with the imported key" tp -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl \
    --id 11 -i "$WORK/data" -o "$WORK/ec.sig"
t_ok "openssl verifies" verify ec "$WORK/ec.sig"
t_ok "ECDSA P-384 with the imported key" tp -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl \
    --id 12 -i "$WORK/data" -o "$WORK/ec384.sig"
t_ok "openssl verifies" verify ec384 "$WORK/ec384.sig"
t_ok "the key is listed as sensitive, not local" tp -l -p 123456 -O --id 10 --type privkey
cp "$WORK/last.out" "$WORK/attrs.out"
t_ok "  sensitive" grep -q "sensitive" "$WORK/attrs.out"
t_fail "  not local" grep -q "local" "$WORK/attrs.out"
t_ok "the store holds the key's modulus (the search works)" store_has modulus
t_fail "but its prime is nowhere in the store" store_has prime1
t_ok "the key survives a new process (stored, reloaded)" tp -l -p 123456 --sign -m SHA256-RSA-PKCS --id 10 \
    -i "$WORK/data" -o "$WORK/rsa2.sig"
t_ok "  verified" verify rsa "$WORK/rsa2.sig"

# --- the virtual PIV card (YubiKey import command; management key from tessera.conf: default) ---
card_up || { echo "Bail out! no virtual PIV card"; exit 1; }
pp() { p11tool --slot 0x100 "$@"; }
t_ok "import an RSA-2048 key into 9A" pp -l -p 123456 --write-object "$WORK/rsa.pem" --type privkey --id 01
t_ok "import an EC P-256 key into 9E" pp -l -p 123456 --write-object "$WORK/ec.pem" --type privkey --id 04
t_fail "a P-521 key is refused by a PIV card" pp -l -p 123456 --write-object "$WORK/ec521.pem" --type privkey --id 02
t_fail "a key needs a slot (CKA_ID 01..18)" pp -l -p 123456 --write-object "$WORK/ec.pem" --type privkey --id 40
t_ok "RSA sign on the card" pp -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/p.sig"
t_ok "openssl verifies with the original public key" verify rsa "$WORK/p.sig"
t_ok "ECDSA on the card (9E)" pp -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl --id 04 \
    -i "$WORK/data" -o "$WORK/pe.sig"
t_ok "openssl verifies" verify ec "$WORK/pe.sig"
t_ok "decrypt on the card" decrypt_pkcs1 01 pp -l -p 123456
t_done
