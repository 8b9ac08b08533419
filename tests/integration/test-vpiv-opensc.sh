# The virtual PIV card (tests/cards/vpiv) against OpenSC: opensc-tool,
# piv-tool and OpenSC's PKCS#11 module, with OpenSSL checking every
# signature, decryption and key agreement. See tests/cards/README.md.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"   # pcscd_start, card_start, card_stop, card_wait

VPIV=${TESSERA_VPIV:?TESSERA_VPIV not set}
OPENSC_P11=
for f in /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so /usr/lib/*/opensc-pkcs11.so /usr/lib/opensc-pkcs11.so; do
    [ -e "$f" ] && OPENSC_P11=$f && break
done
for t in opensc-tool piv-tool pkcs11-tool scriptor pcscd openssl xxd; do
    command -v "$t" >/dev/null || { echo "1..0 # SKIP $t not installed"; exit 0; }
done
[ -n "$OPENSC_P11" ] || { echo "1..0 # SKIP opensc-pkcs11.so not installed"; exit 0; }

READER="Virtual PCD 00 00"
CARD="$WORK/card-state"   # where cards.sh keeps the card named "card"
MGMT_3DES=010203040506070801020304050607080102030405060708
MGMT_AES=00112233445566778899aabbccddeeff
cd "$WORK" || exit 1

p11() { pkcs11-tool --module "$OPENSC_P11" "$@"; }


# apdu "HEX APDU"...: sends raw APDUs (hex bytes, spaces between) in one
# connection with pcsc-tools' scriptor, nothing else in between (OpenSC's
# own tools add a GET DATA whenever they take the card lock), and prints
# the last answer as "SW DATA" (hex, upper case).
apdu() {
    printf '%s\n' "$@" | scriptor -r "$READER" 2>/dev/null | awk '
        /^< / { resp = ""; line = substr($0, 3); on = 1 }
        !/^< / && on { line = $0 }
        on {
            i = index(line, " : ")
            if (i) { resp = resp " " substr(line, 1, i - 1); on = 0; last = resp }
            else resp = resp " " line
        }
        END { n = split(last, b, " "); d = ""; for (k = 1; k <= n - 2; k++) d = d b[k]
              print b[n - 1] b[n], d }'
}
sw_of() { apdu "$@" | cut -d' ' -f1; }

# pubkey_of SLOT OUT.pem: the public key in a slot, from GET METADATA
# (as a YubiKey 5.3+ answers it), written as PEM. Fails if the slot is
# empty or the answer is malformed.
pubkey_of() {
    local r sw h spki
    r=$(apdu "00 F7 00 $1 00 00 00") # extended Le: the whole answer at once
    sw=${r%% *}
    h=${r#* }
    [ "$sw" = 9000 ] || return 1
    case "${h:4:2}:${h:20:8}" in
    07:04820109) # RSA-2048: 04 82 01 09 {81 82 01 00 n, 82 03 e}
        [ "${h:28:8}" = 81820100 ] && [ "${h:548:10}" = 8203010001 ] || return 1
        spki=30820122300d06092a864886f70d01010105000382010f003082010a0282010100${h:36:512}0203010001 ;;
    11:04438641) # P-256: 04 43 {86 41 point}
        spki=3059301306072a8648ce3d020106082a8648ce3d030107034200${h:28:130} ;;
    14:04638661) # P-384: 04 63 {86 61 point}
        spki=3076301006072a8648ce3d020106052b81040022036200${h:28:194} ;;
    *) return 1 ;;
    esac
    echo "$spki" | xxd -r -p | openssl pkey -pubin -inform DER -out "$2"
}
origin_of() {   # origin_of SLOT: 01 generated, 02 imported (GET METADATA)
    local r
    r=$(apdu "00 F7 00 $1 00 00 00")
    [ "${r%% *}" = 9000 ] && r=${r#* } && echo "${r:18:2}"
}

# piv-tool with the management key in a file (PIV_EXT_AUTH_KEY).
pivtool() {   # pivtool KEYHEX ARGS...
    local key=$1
    shift
    echo "$key" >"$WORK/mgmt.key"
    PIV_EXT_AUTH_KEY="$WORK/mgmt.key" piv-tool -r 0 "$@"
}
# Generates a key with piv-tool, then reads its public key back. piv-tool of
# OpenSC 0.23 makes the key on the card but cannot build the public key with
# OpenSSL 3 (RSA: OpenSC#3156, fixed in 0.26; EC: a curve name passed with
# length 8): its exit status is not used, GET METADATA tells whether the
# card made the key.
pivtool_gen() {   # pivtool_gen ALGKEY MGMTALG SLOT ALG OUT.pem
    pivtool "$1" -A "M:9B:$2" -G "$3:$4" -o "$WORK/pivtool.pub" >"$WORK/pivtool.out" 2>&1
    grep -q "admin_mode failed" "$WORK/pivtool.out" && return 1
    [ "$(origin_of "$3")" = 01 ] && pubkey_of "$3" "$5"
}
# A certificate for a card key from a CA of the test's own: OUT.pem (for
# piv-tool) and OUT.der.
certify() {   # certify PUB.pem CN OUT
    openssl x509 -new -subj "/CN=$2" -force_pubkey "$1" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
        -days 30 -out "$3.pem" && openssl x509 -in "$3.pem" -outform DER -out "$3.der"
}
verify_sig() {   # verify_sig PUB.pem SIG [openssl dgst options]
    local pub=$1 sig=$2
    shift 2
    openssl dgst -sha256 "$@" -verify "$pub" -signature "$sig" "$WORK/data"
}
# A certificate as a PIV data object (53 {70 cert, 71 00, FE}), for piv-tool -O.
cert_object() {   # cert_object CERT.der OUT
    local c n inner
    c=$(xxd -p "$1" | tr -d '\n')
    n=$(( ${#c} / 2 ))
    inner=70$(ber_len $n)${c}710100fe00
    echo "53$(ber_len $(( ${#inner} / 2 )))$inner" | xxd -r -p >"$2"
}
ber_len() {
    if [ "$1" -lt 128 ]; then printf '%02x' "$1"
    elif [ "$1" -lt 256 ]; then printf '81%02x' "$1"
    else printf '82%04x' "$1"; fi
}
token_shows() { p11 -T 2>/dev/null | grep -q "$1"; }
count_objects() {   # count_objects WANT PATTERN [pkcs11-tool options]
    local want=$1 pattern=$2
    shift 2
    [ "$(p11 "$@" -O 2>/dev/null | grep -c "$pattern")" = "$want" ]
}
reader_has_card() { opensc-tool -l 2>/dev/null | grep -Eq "^0 +Yes +$READER\$"; }
token_in_reader() { p11 -L 2>/dev/null | grep -A1 "Slot 0 .*$READER" | grep -q 'token label *: PIV_II'; }
chuid_ok() { apdu "00 CB 3F FF 05 5C 03 5F C1 02 00" | grep -q '^9000 533B3019D4E739'; }
# The object holding a certificate (53 {70 DER, 71, FE}) contains DER.
object_has() {   # object_has TAG(6 hex) DER
    local r want
    r=$(apdu "00 CB 3F FF 00 00 05 5C 03 ${1:0:2} ${1:2:2} ${1:4:2} 00 00")
    want=$(xxd -p "$2" | tr -d '\n' | tr a-f A-F)
    [ "${r%% *}" = 9000 ] && case ${r#* } in 53*70*"$want"71*) return 0 ;; esac
    return 1
}
# piv-tool -C writes the certificate, but OpenSC 0.23 returns the byte count
# written as its exit status: the object on the card is checked instead.
load_certs() {
    local s l
    for s in 9A:5FC105 9C:5FC10A 9D:5FC10B 9E:5FC101; do
        l=$(echo "${s%%:*}" | tr A-Z a-z)
        pivtool $MGMT_3DES -A M:9B:03 -C "${s%%:*}" -i "$WORK/$l.pem" >"$WORK/pivtool.out" 2>&1
        object_has "${s#*:}" "$WORK/$l.der" || return 1
    done
}
guid_of_card() {   # the GUID in the CHUID: 53 3B {30 19 FASC-N, 34 10 GUID, ...}
    local r
    r=$(apdu "00 CB 3F FF 05 5C 03 5F C1 02 00")
    r=${r#* }
    [ "${r:58:4}" = 3410 ] && echo "${r:62:32}" | tr A-F a-f
}
serial_from_guid() {   # OpenSC shows 16 hex digits of the GUID
    local g
    g=$(guid_of_card) && [ ${#1} = 16 ] && case $g in *"$1"*) return 0 ;; esac
    return 1
}
new_guid() { local g; g=$(guid_of_card) && [ -n "$g" ] && [ -n "$guid" ] && [ "$g" != "$guid" ]; }
serial_of_token() { p11 -L 2>/dev/null | sed -n 's/^ *serial num *: //p' | head -1; }

printf 'signed by a virtual PIV card\n' >"$WORK/data"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=vpiv-test-ca \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -days 30 2>/dev/null

# pcscd_start keeps the ports it chose for its folder: a restart gets the same.
t_ok "a private pcscd with vpcd readers" pcscd_start "$WORK"
t_ok "the card connects" card_start card "$VPCD_PORT0"
t_ok "the card state folder is private" test "$(stat -c %a "$CARD")" = 700

# ---- recognition
t_ok "opensc-tool -l: a card in $READER" reader_has_card
t_is "the ATR carries the PIV AID" "$(opensc-tool -r 0 -a 2>/dev/null)" \
    "3b:8d:01:80:fb:a0:00:00:03:08:00:00:10:00:01:00:4d"
t_is "opensc-tool -n: OpenSC's PIV driver" "$(opensc-tool -r 0 -n 2>/dev/null)" \
    "Personal Identity Verification Card"
t_is "full-AID SELECT" "$(sw_of "00 A4 04 00 0B A0 00 00 03 08 00 00 10 00 01 00")" 9000
t_is "partial-AID SELECT" "$(sw_of "00 A4 04 00 05 A0 00 00 03 08")" 9000
t_is "another application is not found" "$(sw_of "00 A4 04 00 07 A0 00 00 01 51 00 00")" 6A82
t_is "a fresh card has a discovery object" "$(apdu "00 CB 3F FF 03 5C 01 7E 00")" \
    "9000 7E124F0BA0000003080000100001005F2F024000"
t_ok "and a CHUID with a FASC-N (agency 9999) and a GUID" chuid_ok
t_is "absent objects answer 6A82" "$(sw_of "00 CB 3F FF 05 5C 03 5F C1 05 00")" 6A82
t_ok "PKCS#11: the token in $READER" token_in_reader
serial=$(serial_of_token)
guid=$(guid_of_card)
t_ok "  its serial number comes from the CHUID's GUID" serial_from_guid "$serial"
t_ok "  with the CHUID object" count_objects 1 "label: *'Card Holder Unique Identifier'"
t_ok "  and the CCC" count_objects 1 "label: *'Card Capability Container'"

# ---- management key and key generation with piv-tool
t_fail "a wrong management key is refused" pivtool 0102030405060708010203040506070801020304050607FF -A M:9B:03
t_ok "piv-tool mutual authentication with the 3DES key" pivtool $MGMT_3DES -A M:9B:03
t_ok "piv-tool generates RSA-2048 in 9A" pivtool_gen $MGMT_3DES 03 9A 07 "$WORK/9a.pub"
t_ok "piv-tool generates P-256 in 9C" pivtool_gen $MGMT_3DES 03 9C 11 "$WORK/9c.pub"
t_ok "piv-tool generates RSA-2048 in 9D" pivtool_gen $MGMT_3DES 03 9D 07 "$WORK/9d.pub"
t_ok "piv-tool generates P-384 in 9E" pivtool_gen $MGMT_3DES 03 9E 14 "$WORK/9e.pub"
# The management key stays authenticated until the card is reset
# (scriptor's "reset"): piv-tool's session would otherwise carry over.
t_is "generating without the management key is refused" \
    "$(sw_of reset "00 47 00 9A 05 AC 03 80 01 11")" 6982
for s in 9a 9c 9d 9e; do
    certify "$WORK/$s.pub" "vpiv $s" "$WORK/$s"
done
t_ok "piv-tool loads the four certificates" load_certs
t_is "writing an object without the management key is refused" \
    "$(sw_of reset "00 DB 3F FF 09 5C 03 5F C1 09 53 02 01 00")" 6982

# ---- PKCS#11 through OpenSC
t_ok "pkcs11-tool lists four certificates" count_objects 4 'Certificate Object'
t_ok "and four private keys after login" count_objects 4 'Private Key Object' -l -p 123456
t_ok "OpenSC reads back the 9A certificate" p11 --read-object --type cert --id 01 -o "$WORK/9a.back"
t_ok "  unchanged" cmp "$WORK/9a.der" "$WORK/9a.back"
t_ok "RSA-2048 PKCS#1 signature (9A)" p11 -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/9a.sig"
t_ok "  openssl verifies it" verify_sig "$WORK/9a.pub" "$WORK/9a.sig"
t_ok "RSA-PSS signature (9A)" p11 -l -p 123456 --sign -m SHA256-RSA-PKCS-PSS --id 01 -i "$WORK/data" -o "$WORK/9a.pss"
t_ok "  openssl verifies it" verify_sig "$WORK/9a.pub" "$WORK/9a.pss" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32
t_ok "ECDSA P-256 signature (9C, PIN always: context-specific login)" \
    p11 -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl --id 02 -i "$WORK/data" -o "$WORK/9c.sig"
t_ok "  openssl verifies it" verify_sig "$WORK/9c.pub" "$WORK/9c.sig"
t_ok "ECDSA P-384 signature (9E, card authentication)" \
    p11 -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl --id 04 -i "$WORK/data" -o "$WORK/9e.sig"
t_ok "  openssl verifies it" verify_sig "$WORK/9e.pub" "$WORK/9e.sig"
head -c 48 /dev/urandom >"$WORK/secret"
openssl pkeyutl -encrypt -pubin -inkey "$WORK/9d.pub" -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
    -pkeyopt rsa_mgf1_md:sha256 -in "$WORK/secret" -out "$WORK/secret.oaep"
t_ok "RSA-OAEP decryption (9D)" p11 -l -p 123456 --decrypt -m RSA-PKCS-OAEP --hash-algorithm SHA256 \
    --mgf MGF1-SHA256 --id 03 -i "$WORK/secret.oaep" -o "$WORK/secret.dec"
t_ok "  gives what openssl encrypted" cmp "$WORK/secret" "$WORK/secret.dec"

# PIN policies with raw APDUs. A verified PIN stays verified from one
# process to the next (OpenSC leaves the card as it is when it
# disconnects), so each sequence starts with VERIFY P1=FF, which resets it.
digest=$(openssl dgst -sha256 -binary "$WORK/data" | xxd -p -c 64 | sed 's/../& /g; s/ $//')
digest384=$(openssl dgst -sha384 -binary "$WORK/data" | xxd -p -c 96 | sed 's/../& /g; s/ $//')
unverify="00 20 FF 80"
verify="00 20 00 80 08 31 32 33 34 35 36 FF FF"
getdata="00 CB 3F FF 03 5C 01 7E 00"
sign9c="00 87 11 9C 26 7C 24 82 00 81 20 $digest 00"
sign9e="00 87 14 9E 36 7C 34 82 00 81 30 $digest384 00"
# An RSA-2048 block is 266 bytes of data: two chained commands (CLA 10).
zeros() { printf '00 %.0s' $(seq "$1"); }
sign9a_1="10 87 07 9A F0 7C 82 01 06 82 00 81 82 01 00 $(zeros 230)"
sign9a_2="00 87 07 9A 1A $(zeros 25)01 00"
t_is "9A refuses without the PIN" "$(sw_of "$unverify" "$sign9a_1" "$sign9a_2")" 6982
t_is "9A signs (chained command, 61xx answer) with a command between VERIFY and it: PIN once" \
    "$(apdu "$unverify" "$verify" "$getdata" "$sign9a_1" "$sign9a_2" | cut -c1-13)" "6108 7C820104"
t_is "9C signs right after VERIFY: PIN always" "$(apdu "$unverify" "$verify" "$sign9c" | cut -c1-7)" "9000 7C"
t_is "9C refuses with a command between VERIFY and the signature" \
    "$(sw_of "$unverify" "$verify" "$getdata" "$sign9c")" 6982
t_is "9C refuses a second signature after one VERIFY" "$(sw_of "$unverify" "$verify" "$sign9c" "$sign9c")" 6982
t_is "9E signs without the PIN: PIN never" "$(sw_of "$unverify" "$sign9e")" 9000

# ---- PIN retries, blocking, unblocking
t_is "VERIFY without data: 3 tries left" "$(sw_of "$unverify" "00 20 00 80")" 63C3
t_fail "a wrong PIN" p11 -l -p 000000 -O
t_is "  leaves 2 tries" "$(sw_of "00 20 00 80")" 63C2
t_fail "a second wrong PIN" p11 -l -p 000000 -O
t_ok "  pkcs11-tool shows the final try" token_shows 'final user PIN try'
t_fail "a third wrong PIN" p11 -l -p 000000 -O
t_ok "  blocks the PIN (user PIN locked)" token_shows 'user PIN locked'
t_fail "the right PIN no longer opens" p11 -l -p 123456 -O
t_ok "  CKR_PIN_LOCKED" grep -q CKR_PIN_LOCKED "$WORK/last.out"
t_is "  VERIFY answers 6983" "$(sw_of "00 20 00 80")" 6983
# OpenSC unblocks a PIV PIN over PKCS#11 only when configured to: C_SetPIN
# with the PUK as old PIN, in a session not logged in.
cat >"$WORK/opensc.conf" <<EOF
app default {
	framework pkcs15 {
	}
}
app opensc-pkcs11 {
	pkcs11 {
		user_pin_unblock_style = set_pin_in_unlogged_session;
	}
}
EOF
t_fail "a wrong PUK does not unblock" env OPENSC_CONF="$WORK/opensc.conf" \
    pkcs11-tool --module "$OPENSC_P11" --unlock-pin --puk 87654321 --new-pin 654321
t_ok "the PUK unblocks with a new PIN" env OPENSC_CONF="$WORK/opensc.conf" \
    pkcs11-tool --module "$OPENSC_P11" --unlock-pin --puk 12345678 --new-pin 654321
t_fail "  the token is no longer locked" token_shows 'user PIN locked'
t_ok "  the new PIN signs" p11 -l -p 654321 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/9a.sig2"
t_ok "  and openssl verifies it" verify_sig "$WORK/9a.pub" "$WORK/9a.sig2"
t_ok "pkcs11-tool changes the PIN back" p11 -l -p 654321 --change-pin --new-pin 123456
t_fail "  the old one is gone" p11 -l -p 654321 -O
t_ok "  the new one opens" p11 -l -p 123456 -O

# ---- AES management key (piv-tool sends SET MANAGEMENT KEY after -A M:)
k=$(echo $MGMT_AES | sed 's/../&:/g; s/:$//')
t_ok "switch the management key to AES-128" pivtool $MGMT_3DES -A M:9B:03 -s "00:FF:FF:FF:13:08:9B:10:$k"
t_is "  GET METADATA reports AES-128, not the default key" "$(apdu "00 F7 00 9B")" "9000 01010802020001050100"
t_fail "  the 3DES key is refused" pivtool $MGMT_3DES -A M:9B:03
t_ok "  piv-tool authenticates with AES-128" pivtool $MGMT_AES -A M:9B:08
# piv-tool -G takes 9A to 9E only: a raw GENERATE for the retired slot.
t_ok "  and generates P-256 in retired slot 82 (GENERATE sent by piv-tool -s)" \
    pivtool $MGMT_AES -A M:9B:08 -s 00:47:00:82:05:AC:03:80:01:11
t_ok "  the answer is a 7F49 template with a P-256 point" grep -q '^7F 49 43 86 41 04' "$WORK/last.out"
t_ok "  GET METADATA gives the public key" pubkey_of 82 "$WORK/82.pub"
certify "$WORK/82.pub" "vpiv 82" "$WORK/82"
cert_object "$WORK/82.der" "$WORK/82.obj"
pivtool $MGMT_AES -A M:9B:08 -O 1001 -i "$WORK/82.obj" >"$WORK/pivtool.out" 2>&1
t_ok "  piv-tool -O loads its certificate (retired object 1, 5FC10D)" object_has 5FC10D "$WORK/82.der"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/peer.key" 2>/dev/null
openssl pkey -in "$WORK/peer.key" -pubout -outform DER -out "$WORK/peer.der"
openssl pkeyutl -derive -inkey "$WORK/peer.key" -peerkey "$WORK/82.pub" -out "$WORK/ecdh.openssl"
t_ok "ECDH with the retired key (82) through OpenSC" \
    p11 -l -p 123456 --derive -m ECDH1-DERIVE --id 05 -i "$WORK/peer.der" -o "$WORK/ecdh.card"
t_ok "  the same secret as openssl's" cmp "$WORK/ecdh.openssl" "$WORK/ecdh.card"

# ---- the card keeps its state across a restart
t_ok "stop the card" card_stop card
t_ok "  its PID file is gone" test ! -e "$WORK/card.card.pid"
t_ok "start it again on the same folder" card_start card "$VPCD_PORT0"
t_ok "  the 9A key still signs" p11 -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/9a.sig3"
t_ok "  with the same key" verify_sig "$WORK/9a.pub" "$WORK/9a.sig3"
t_ok "  the AES management key stayed" pivtool $MGMT_AES -A M:9B:08
t_is "  so did the serial number" "$(serial_of_token)" "$serial"

# ---- pcscd restarts: the card reconnects by itself
t_ok "stop pcscd" pcscd_stop "$WORK"
t_ok "start pcscd again (same ports)" pcscd_start "$WORK"
t_ok "  the card comes back" card_wait
t_ok "  and signs" p11 -l -p 123456 --sign -m ECDSA-SHA256 --signature-format openssl --id 04 -i "$WORK/data" -o "$WORK/9e.sig2"
t_ok "  verifiably" verify_sig "$WORK/9e.pub" "$WORK/9e.sig2"

# ---- speed: no Nagle / delayed-ACK stalls (about 44 ms per APDU if there were)
many=()
for i in $(seq 100); do many+=("$getdata"); done
t0=$(date +%s%N)
t_is "100 APDUs in one connection" "$(sw_of "${many[@]}")" 9000
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "# 100 GET DATA APDUs: $ms ms (scriptor start-up included)"
t_ok "  take well under a second" test "$ms" -lt 1500
ten_signatures() {
    local i
    for i in $(seq 10); do
        p11 -l -p 123456 --sign -m SHA256-RSA-PKCS --id 01 -i "$WORK/data" -o "$WORK/t.sig" || return 1
    done
}
t0=$(date +%s%N)
t_ok "ten RSA-2048 signatures, one pkcs11-tool process each" ten_signatures
echo "# pkcs11-tool (OpenSC start-up, login, RSA-2048 signature): $(( ($(date +%s%N) - t0) / 10000000 )) ms each"

# ---- a new card with other credentials
MGMT_AES256=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
t_ok "stop the card" card_stop card
t_ok "--reset with --pin, --mgmt-alg aes256, --mgmt-key" \
    card_start card "$VPCD_PORT0" --reset --pin 87654321 --mgmt-alg aes256 --mgmt-key $MGMT_AES256
t_ok "  a new CHUID" new_guid
t_is "  the PIN" "$(sw_of reset "00 20 00 80 08 38 37 36 35 34 33 32 31")" 9000
t_is "  GET METADATA: AES-256" "$(apdu "00 F7 00 9B" | cut -c1-11)" "9000 01010C"
t_ok "  piv-tool authenticates with AES-256" pivtool $MGMT_AES256 -A M:9B:0C
t_fail "  the old AES-128 key is refused" pivtool $MGMT_AES -A M:9B:08
t_is "  no certificates" "$(p11 -O 2>/dev/null | grep -c 'Certificate Object')" 0
t_done
