# Key escrow and recovery. An administrator makes escrow keys, in a file
# (under a passphrase) and in an HSM (SoftHSM: made there, never leaving);
# a profile's decryption key with `escrow = yes` is made off the card,
# sealed to the current escrow key (CMS EnvelopedData, which OpenSSL's own
# `cms -decrypt` opens), certified, recorded and put on the card. Only the
# key-recovery officer recovers a key: as a PKCS#12 under a one-time
# password, or into the holder's replacement card, which then decrypts what
# was encrypted to the lost card. Wrong escrow keys, a changed archive,
# another holder's card and kills during collection are refused or undone;
# each recovery is in the trail, the password nowhere.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"
. "$TESSERA_SRCDIR/tests/lib/hsm.sh"

t_ok "a database, root as administrator and issuer, the CA, holder jdoe" cms_start
printf 'uid,name,email\nrroe,Richard Roe,richard@example.org\n' > "$WORK/more.csv"
t_ok "holder rroe" T holder import "$WORK/more.csv"
t_ok "kim, key-recovery officer" T operator add kim --roles key-recovery
t_ok "a profile: an authentication key, and an escrowed encryption key" cms_profile 365 \
    "[key enc]" "type = rsa2048" "usage = decrypt" "certificate = email" 'subject = /CN=${name}/emailAddress=${email}' \
    "lifetime-days = 730" "escrow = yes"
echo 123456 > "$WORK/pin"
( umask 077; echo 'escrow passphrase' > "$WORK/escrow.pass" )
printf 'for Jane only' > "$WORK/data"

# ---- no escrow key yet
t_ok "jdoe's card requested" request jdoe --profile vsc
t_ok "collecting it with no escrow key: refused (exit 5)" exit_is 5 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  saying what to do" grep -q "there is no escrow key: an administrator makes one" "$WORK/last.out"
t_is "  the card untouched, its code still good" "$(sql "SELECT state FROM cards WHERE id = $(cat "$WORK/card-id")")" requested

# ---- an escrow key in a file
t_ok "kim may not make escrow keys (exit 7)" exit_is 7 T escrow create kra1 --key-out "$WORK/nope.pem" --as kim
t_ok "  and made no file" test ! -e "$WORK/nope.pem"
t_ok "escrow key kra1 made in a file under a passphrase" T --json escrow create kra1 --key-out "$WORK/kra1.pem" \
    --pass-file "$WORK/escrow.pass"
fp1=$(field fingerprint < "$WORK/last.out")
t_is "  the file is 0600" "$(stat -c %a "$WORK/kra1.pem")" 600
t_ok "  encrypted (PKCS#8 under the passphrase)" grep -q "BEGIN ENCRYPTED PRIVATE KEY" "$WORK/kra1.pem"
t_ok "  its fingerprint is the SHA-256 of its public key" sh -c "openssl pkey -in '$WORK/kra1.pem' \
    -passin 'file:$WORK/escrow.pass' -pubout -outform DER | sha256sum | grep -q '^$fp1 '"
t_ok "  listed, the current one" sh -c "$TOOL escrow list | grep kra1 | grep -q current"
cert_of_escrow() { sql "SELECT hex(cert) FROM escrow_keys WHERE name = '$1'" | xxd -r -p > "$WORK/$1.der"; }
cert_of_escrow kra1
t_ok "  certified by the CA, for key encipherment" sh -c "openssl x509 -inform DER -in '$WORK/kra1.der' -out '$WORK/kra1.crt' &&
    openssl verify -CAfile '$WORK/ca.pem' '$WORK/kra1.crt' && openssl x509 -in '$WORK/kra1.crt' -noout -ext keyUsage | grep -q 'Key Encipherment'"
t_ok "a second key of the same name: refused (exit 2 for the file there, nothing recorded)" \
    exit_is 1 T escrow create kra1 --key-out "$WORK/kra1.pem"
t_is "  one escrow key" "$(sql "SELECT count(*) FROM escrow_keys")" 1

# ---- collect: the key made off the card, escrowed, loaded
t_ok "jdoe collects the card" T card collect --code "$(code)" --pin-file "$WORK/pin"
A=$(cat "$WORK/card-id"); SA=$(sql "SELECT serial FROM cards WHERE id = $A")
slot_of() { $TOOL --json card info --serial "$1" | num slot; }
on_card() { local s; s=$(slot_of "$1"); shift; p11tool --slot "$s" -l -p 123456 "$@" 2>/dev/null; }
t_is "  one archive, next to the encryption certificate" \
    "$(sql "SELECT count(*) FROM escrowed_keys e JOIN certificates x ON x.id = e.certificate_id
            WHERE x.card_id = $A AND x.key_name = 'enc'")" 1
sql "SELECT hex(der) FROM certificates WHERE card_id = $A AND key_name = 'enc'" | xxd -r -p > "$WORK/encA.der"
openssl x509 -inform DER -in "$WORK/encA.der" -pubkey -noout > "$WORK/encA.pub"
decrypts() {   # decrypts SERIAL ID PUBKEY: OpenSSL encrypts to PUBKEY, the card decrypts with the key under ID
    openssl pkeyutl -encrypt -pubin -inkey "$3" -in "$WORK/data" -out "$WORK/ct" &&
        on_card "$1" --decrypt -m RSA-PKCS --id "$2" -i "$WORK/ct" -o "$WORK/pt" && cmp -s "$WORK/pt" "$WORK/data"
}
t_ok "  the card decrypts what is encrypted to its certificate" decrypts "$SA" 02 "$WORK/encA.pub"
openssl_opens() {   # OpenSSL's own cms -decrypt opens the archive with the escrow key: the card's key
    sql "SELECT hex(archive) FROM escrowed_keys" | xxd -r -p > "$WORK/a1.der" &&
        openssl cms -decrypt -binary -inform DER -in "$WORK/a1.der" -recip "$WORK/kra1.crt" -inkey "$WORK/kra1.pem" \
            -passin "file:$WORK/escrow.pass" -out "$WORK/a1.p8" &&
        openssl pkey -inform DER -in "$WORK/a1.p8" -pubout | cmp -s - "$WORK/encA.pub"
}
t_ok "  the archive is CMS enveloped data OpenSSL opens with the escrow key" openssl_opens
t_ok "  key transport by RSAES-OAEP with SHA-256" sh -c "openssl cms -cmsout -print -inform DER -in '$WORK/a1.der' |
    grep -A3 keyEncryptionAlgorithm | grep -q rsaesOaep"
t_ok "  the archive lists with the holder and card, for kim" sh -c "$TOOL escrow archives --as kim --holder jdoe |
    grep jdoe | grep -q 'enc'"

# ---- recovery as a PKCS#12
t_ok "root (administrator) may not recover keys: exit 7" exit_is 7 T key recover --card "$A" --p12 "$WORK/x.p12" \
    --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "  no file made" test ! -e "$WORK/x.p12"
t_ok "  the refusal is in the trail" test "$(sql "SELECT count(*) FROM audit WHERE action = 'key.recover' AND result LIKE 'denied%'")" = 1
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/other.pem" 2>/dev/null
t_ok "another RSA key does not open the archive (exit 1)" exit_is 1 T key recover --as kim --card "$A" \
    --p12 "$WORK/x.p12" --escrow-key "$WORK/other.pem"
t_ok "  said so" grep -q "this escrow key does not open the archive" "$WORK/last.out"
t_ok "a wrong passphrase for the escrow key (exit 4)" exit_is 4 T key recover --as kim --card "$A" \
    --p12 "$WORK/x.p12" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/pin"
t_is "  nothing recovered, no file" "$(sql "SELECT count(*) FROM audit WHERE action = 'key.recover' AND result = 'ok'")|$(test -e "$WORK/x.p12" && echo file)" "0|"
t_ok "kim recovers jdoe's key as a PKCS#12" T --json key recover --as kim --card "$A" --key enc \
    --p12 "$WORK/jane.p12" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
otp=$(field password < "$WORK/last.out")
t_ok "  a one-time password of 100 bits, written as collection codes are" sh -c "echo '$otp' | grep -Eq '^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){3}$'"
t_is "  the file is 0600" "$(stat -c %a "$WORK/jane.p12")" 600
t_ok "  it opens with the password: the key of the certificate" sh -c "openssl pkcs12 -in '$WORK/jane.p12' -nocerts -nodes \
    -passin 'pass:$otp' | openssl pkey -pubout | cmp -s - '$WORK/encA.pub'"
t_ok "  under AES-256 and a SHA-256 MAC" sh -c "openssl pkcs12 -in '$WORK/jane.p12' -info -noout -passin 'pass:$otp' 2>&1 |
    grep -q 'AES-256-CBC' && openssl pkcs12 -in '$WORK/jane.p12' -info -noout -passin 'pass:$otp' 2>&1 | grep -q 'MAC: sha256'"
t_ok "  not with another password" sh -c "! openssl pkcs12 -in '$WORK/jane.p12' -nokeys -passin pass:wrong 2>/dev/null"
t_ok "  recorded in the trail, by kim" test "$(sql "SELECT count(*) FROM audit WHERE action = 'key.recover' AND result = 'ok'
    AND operator = 'kim' AND holder = 'jdoe' AND detail LIKE '%pkcs12%'")" = 1
t_ok "  the password is nowhere in the database" sh -c "! grep -qa '$otp' '$TESSERA_CMS_DB' '$TESSERA_CMS_DB-wal' 2>/dev/null"
t_ok "a second recovery will not write over the file (exit 1)" exit_is 1 T key recover --as kim --card "$A" \
    --p12 "$WORK/jane.p12" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "the PKCS#12 goes onto a card as any other (key import)" sh -c "echo '$otp' > '$WORK/otp' &&
    $TOOL vsc create --label Spare --so-pin-file '$WORK/pin' --pin-file '$WORK/pin' > /dev/null"
spare=$($TOOL --json vsc list | tr '{' '\n' | grep '"label":"Spare"' | sed -n 's/.*"serial":"\([^"]*\)".*/\1/p')
t_ok "  imported with the one-time password" T key import --serial "$spare" --p12 "$WORK/jane.p12" \
    --p12-pass-file "$WORK/otp" --pin-file "$WORK/pin"
spare_id=$(sed -n 's/.*id \([0-9a-f]*\).*/\1/p' "$WORK/last.out" | head -1)
t_ok "  and it decrypts there" decrypts "$spare" "$spare_id" "$WORK/encA.pub"
t_ok "  (the spare card deleted)" T vsc delete --serial "$spare" --so-pin-file "$WORK/pin" --yes

# ---- a changed archive
sql "UPDATE escrowed_keys SET archive = substr(archive, 1, length(archive) - 40) || randomblob(8) ||
     substr(archive, length(archive) - 31) WHERE id = 1"
t_ok "a changed archive is not handed out (exit 8)" exit_is 8 T key recover --as kim --archive 1 \
    --p12 "$WORK/bad.p12" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "  said so" grep -q "the archive was changed" "$WORK/last.out"
t_ok "  no file" test ! -e "$WORK/bad.p12"
t_ok "  (the tampered archive put back)" sql "UPDATE escrowed_keys SET archive = x'$(xxd -p "$WORK/a1.der" | tr -d '\n')' WHERE id = 1"

# ---- lost card: a replacement, and the old key recovered into it
t_ok "card A lost: replaced" T --json card replace "$A" --reason lost
field code < "$WORK/last.out" > "$WORK/code"
B=$(num replacement < "$WORK/last.out")
t_ok "jdoe collects the replacement: a new escrowed key" T card collect --code "$(code)" --pin-file "$WORK/pin"
SB=$(sql "SELECT serial FROM cards WHERE id = $B")
t_is "  two archives for jdoe now" "$($TOOL --json escrow archives --as kim --holder jdoe | grep -o '"id":' | wc -l)" 2
t_ok "the lost card's key does not go into a revoked card (exit 9)" exit_is 9 T key recover --as kim --card "$A" \
    --to-card "$A" --pin-file "$WORK/pin" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "rroe's card requested" request rroe --profile vsc
t_ok "  and collected" T card collect --code "$(code)" --pin-file "$WORK/pin"
R=$(cat "$WORK/card-id")
t_ok "  jdoe's key does not go into rroe's card (exit 7)" exit_is 7 T key recover --as kim --card "$A" \
    --to-card "$R" --pin-file "$WORK/pin" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "kim recovers the lost card's key into the replacement" T key recover --as kim --card "$A" --to-card "$SB" \
    --pin-file "$WORK/pin" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
rid=$(sed -n 's/.*(id \([0-9a-f]*\)).*/\1/p' "$WORK/last.out")
t_ok "  under its own id ($rid)" test "${#rid}" = 10
t_ok "  the replacement decrypts what was encrypted to the lost card's certificate" decrypts "$SB" "$rid" "$WORK/encA.pub"
t_is "  labelled as recovered" "$(on_card "$SB" -O --type privkey | grep -c 'enc (recovered)')" 1
t_ok "  recorded in the trail with the card" test "$(sql "SELECT count(*) FROM audit WHERE action = 'key.recover'
    AND result = 'ok' AND detail LIKE '%card $SB'")" = 1
t_ok "  done again: completes, no second copy" T key recover --as kim --card "$A" --to-card "$SB" \
    --pin-file "$WORK/pin" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_is "  one recovered key on the card" "$(on_card "$SB" -O --type privkey | grep -c 'enc (recovered)')" 1
t_ok "--all without --to-card: a usage error" exit_is 2 T key recover --as kim --holder jdoe --all --p12 "$WORK/all.p12" \
    --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "all of jdoe's escrowed keys into the replacement" T --json key recover --as kim --holder jdoe --all --to-card "$B" \
    --pin-file "$WORK/pin" --escrow-key "$WORK/kra1.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "  the lost card's key again (completed, not copied); the card's own key left as it is" \
    grep -qx '\[{"archive":1,"card":"'"$SB"'","id":"4500000001"}\]' "$WORK/last.out"
t_is "  still one recovered key, one key of its own" \
    "$(on_card "$SB" -O --type privkey | grep -c 'label: *enc')|$(on_card "$SB" -O --type privkey | grep -c 'enc (recovered)')" "2|1"

# ---- renewal escrows the renewed key
sql "UPDATE certificates SET not_after = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+5 days') WHERE card_id = $B AND state = 'active'"
t_ok "the replacement's certificates near their end: a renewal opened" sh -c "$TOOL scan > /dev/null"
t_ok "  jdoe renews on the device" T card renew "$B" --pin-file "$WORK/pin"
t_is "  the renewed encryption key escrowed too: two archives of card B, one active certificate" \
    "$(sql "SELECT count(*), sum(x.state = 'active') FROM escrowed_keys e JOIN certificates x ON x.id = e.certificate_id
            WHERE x.card_id = $B")" "2|1"
sql "SELECT hex(der) FROM certificates WHERE card_id = $B AND key_name = 'enc' AND state = 'active'" | xxd -r -p > "$WORK/encB2.der"
openssl x509 -inform DER -in "$WORK/encB2.der" -pubkey -noout > "$WORK/encB2.pub"
newid=$(on_card "$SB" -O --type privkey | grep -B1 -A4 "label: *enc$" | sed -n 's/.*ID: *\([0-9a-f]*\).*/\1/p' | head -1)
t_ok "  the card decrypts with the renewed key ($newid)" decrypts "$SB" "$newid" "$WORK/encB2.pub"
t_ok "  and still with the recovered one of the lost card" decrypts "$SB" "$rid" "$WORK/encA.pub"

# ---- an escrow key in an HSM
t_ok "an HSM token for the key-recovery officers" hsm_init
t_ok "escrow key kra2 made in the HSM" T --json escrow create kra2 --hsm-uri "pkcs11:token=helpdesk;object=escrow" $HSM_OPTS
t_is "  SoftHSM decrypts OAEP with SHA-1 only: tried, and recorded" "$(field oaep < "$WORK/last.out")" sha1
t_ok "  now the current one" sh -c "$TOOL escrow list | grep kra2 | grep -q current"
hsm -l -p 1234 -O --type privkey > "$WORK/hsm-keys" 2>&1
t_ok "  its private key is sensitive and never extractable" grep -q "Access: *sensitive, always sensitive, never extractable" "$WORK/hsm-keys"
t_ok "  it decrypts, and signs no more" sh -c "grep 'Usage:' '$WORK/hsm-keys' | grep -v sign | grep -q decrypt"
t_ok "rroe's second card, replacing the first as damaged" T --json card replace "$R" --reason damaged
field code < "$WORK/last.out" > "$WORK/code"
R2=$(num replacement < "$WORK/last.out")
t_ok "  collected: its key escrowed to kra2" T card collect --code "$(code)" --pin-file "$WORK/pin"
t_is "  the archive names kra2" "$(sql "SELECT k.name FROM escrowed_keys e JOIN escrow_keys k ON k.id = e.escrow_key_id
    JOIN certificates x ON x.id = e.certificate_id WHERE x.card_id = $R2")" kra2
sql "SELECT hex(der) FROM certificates WHERE card_id = $R2 AND key_name = 'enc'" | xxd -r -p > "$WORK/encR.der"
openssl x509 -inform DER -in "$WORK/encR.der" -pubkey -noout > "$WORK/encR.pub"
t_ok "kim recovers it with the HSM" T --json key recover --as kim --card "$R2" --p12 "$WORK/rroe.p12" \
    --hsm-uri "pkcs11:token=helpdesk;object=escrow" $HSM_OPTS
otp2=$(field password < "$WORK/last.out")
t_ok "  the key of rroe's certificate" sh -c "openssl pkcs12 -in '$WORK/rroe.p12' -nocerts -nodes -passin 'pass:$otp2' |
    openssl pkey -pubout | cmp -s - '$WORK/encR.pub'"
t_ok "the HSM's key does not open kra1's archives (exit 1)" exit_is 1 T key recover --as kim --card "$A" \
    --p12 "$WORK/y.p12" --hsm-uri "pkcs11:token=helpdesk;object=escrow" $HSM_OPTS
t_ok "  no file" test ! -e "$WORK/y.p12"
t_ok "a wrong HSM PIN (exit 4)" sh -c "echo 9999 > '$WORK/bad.pin'; $TOOL key recover --as kim --card '$R2' \
    --p12 '$WORK/z.p12' --hsm-uri 'pkcs11:token=helpdesk;object=escrow' --hsm-module '$SOFTHSM' \
    --hsm-pin-file '$WORK/bad.pin'; test \$? -eq 4"

# ---- killed while collecting an escrowed key
for step in key:enc enrolled:enc recorded:enc loaded:enc; do
    request jdoe --profile vsc > /dev/null
    N=$(cat "$WORK/card-id")
    t_ok "collect killed after $step" exit_is 137 env TESSERA_TEST_KILL_AT="$step" $TOOL card collect --code "$(code)" \
        --pin-file "$WORK/pin"
    t_ok "  the next collect undoes it and issues the card" T card collect --code "$(code)" --pin-file "$WORK/pin"
    t_is "  one active escrowed certificate, its archive there" "$(sql "SELECT count(*) FROM certificates x
        JOIN escrowed_keys e ON e.certificate_id = x.id WHERE x.card_id = $N AND x.state = 'active'")" 1
    t_ok "  TPM and database agree" consistent
done
t_is "archives of undone collects stay, their certificates revoked" \
    "$(sql "SELECT count(*) FROM escrowed_keys e JOIN certificates x ON x.id = e.certificate_id WHERE x.state = 'revoked'
            AND x.card_id > $R2")" 2

t_ok "the trail verifies" T audit verify
t_done
