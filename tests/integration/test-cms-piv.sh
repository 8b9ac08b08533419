# Request and collect with a PIV card (the virtual card, vpiv, in a private
# pcscd): the holder's blank card in a reader is reset by its PUK and given
# the serial collect recorded first (a new CHUID), a PIN to the profile, the
# diversified 9B key (its PUK then a secret nobody is told), a key in each
# PIV slot the profile names, made on the card, certified by the embedded
# CA and stored next to it. Someone's card is refused untouched; a collect
# killed after each step, or a card pulled out during the init, is undone
# by the next (the card must be put back), never leaving a card the
# database does not know; the card erased on the device by its admin key.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"

Y() { client yubico-piv-tool -r "Virtual PCD 00 00" "$@"; }
pp() { p11tool --slot 0x100 "$@"; }
card_serial() { $TOOL --json card info --slot 256 | field serial; }
echo 24681357 > "$WORK/pin"
printf '87654321\n' > "$WORK/puk2"
holders() { printf 'uid,name,email\nrsmith,Ro Smith,ro@example.org\nakim,Al Kim,al@example.org\n' > "$WORK/h2.csv"
    $TOOL holder import "$WORK/h2.csv"; }
t_ok "a database, the CA, holders" cms_start
t_ok "  two more holders" holders

cat > "$WORK/piv.ini" <<EOF
[profile]
name = piv
card-types = piv
[pin]
min-length = 6
max-length = 8
digits = mandatory
tries = 5
[admin-key]
master-file = $WORK/master.key
alg = 3des
[key auth]
type = p256
piv-slot = 9a
usage = sign
certificate = client-auth
subject = /CN=\${name}/UID=\${uid}
lifetime-days = 365
[key sig]
type = p256
piv-slot = 9c
usage = sign
certificate = email
subject = /CN=\${name}/emailAddress=\${email}
lifetime-days = 365
[key enc]
type = rsa2048
piv-slot = 9d
usage = decrypt
certificate = email
subject = /CN=\${name}/emailAddress=\${email}
lifetime-days = 730
EOF
sed 's/^max-length = 8/max-length = 12/' "$WORK/piv.ini" > "$WORK/long.ini"
t_ok "a PIV profile with a PIN of up to 12: exit 2" exit_is 2 T profile import "$WORK/long.ini"
t_ok "  says why" grep -q "6 to 8" "$WORK/last.out"
t_ok "a profile for PIV cards" T profile import "$WORK/piv.ini"

card_up || { echo "Bail out! no virtual PIV card"; exit 1; }
factory_serial=$(card_serial)

# ---- guards before the card is touched
t_ok "a card requested for jdoe" request jdoe --profile piv
t_is "  a PIV card" "$(sql "SELECT type FROM cards WHERE id = $(cat "$WORK/card-id")")" piv
t_ok "no card in the reader" card_stop
t_ok "  collect: exit 5" exit_is 5 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  says so" grep -q "no PIV card" "$WORK/last.out"
t_ok "the card back" card_start vpiv "$VPCD_PORT0"
printf '11111111\n' > "$WORK/wrongpuk"
t_ok "a wrong PUK: the card is not touched (exit 4)" \
    exit_is 4 T card collect --code "$(code)" --pin-file "$WORK/pin" --puk-file "$WORK/wrongpuk"
t_ok "  says which PUK" grep -q "give its PUK" "$WORK/last.out"
t_is "  its serial unchanged" "$(card_serial)" "$factory_serial"
t_is "  the PUK tried once (2 of 3 left)" "$($TOOL --json card info --slot 256 | num unblock_tries_left)" 2
t_ok "  the factory PUK still works" pp -l --login-type so --so-pin 12345678 --init-pin --new-pin 123456
t_is "  the code still good: the job waits" "$(sql "SELECT state FROM jobs WHERE card_id = $(cat "$WORK/card-id")")" pending

# ---- collect
t_ok "collect: the card issued" T --json card collect --code "$(code)" --pin-file "$WORK/pin"
cp "$WORK/last.out" "$WORK/collected"
S=$(field card < "$WORK/collected")
t_is "  the card's serial is the one recorded (its new CHUID)" "$(card_serial)" "$S"
t_ok "  not the factory one" test "$S" != "$factory_serial"
t_is "  the card row: active, that serial" "$(sql "SELECT state, serial FROM cards WHERE id = $(cat "$WORK/card-id")")" "active|$S"
key=$($TOOL admin-key derive --master-file "$WORK/master.key" --serial "$S" --alg 3des)
t_ok "  its 9B key is the diversified one (yubico-piv-tool)" Y -k"$key" -a set-ccc
t_ok "  card info says so" sh -c "$TOOL --json card info --slot 256 | grep -q '\"kcv\":\"$(kcv_of "$key")\",\"default\":false'"
t_ok "  the PIN chosen works" pp -l -p 24681357 -I
t_fail "  a wrong PIN" Y -a verify-pin -P 00000000
t_ok "  leaves 4 of the profile's 5 tries" grep -q '4 tries left' "$WORK/last.out"
t_ok "  the right PIN again" pp -l -p 24681357 -I
read_cert() { Y -a read-certificate -s "$1" > "$WORK/$1.pem" && [ -s "$WORK/$1.pem" ]; }
for s in 9a:auth 9c:sig 9d:enc; do
    slot=${s%%:*}; name=${s#*:}
    t_ok "  slot $slot holds a certificate ($name)" read_cert "$slot"
    t_ok "    issued by the CA" openssl verify -CAfile "$WORK/ca.pem" "$WORK/$slot.pem"
    t_is "    recorded for the card" "$(sql "SELECT count(*) FROM certificates c JOIN cards k ON k.id = c.card_id
        WHERE k.serial = '$S' AND c.key_name = '$name' AND c.state = 'active'")" 1
done
sign_9a() {
    echo data > "$WORK/data"
    pp -l -p 24681357 --sign --id 01 -m ECDSA-SHA256 --signature-format openssl -i "$WORK/data" -o "$WORK/sig" &&
        openssl x509 -in "$WORK/9a.pem" -pubkey -noout > "$WORK/9a.pub" &&
        openssl dgst -sha256 -verify "$WORK/9a.pub" -signature "$WORK/sig" "$WORK/data"
}
decrypt_9d() {
    echo secret > "$WORK/plain"
    openssl x509 -in "$WORK/9d.pem" -pubkey -noout > "$WORK/9d.pub" &&
        openssl pkeyutl -encrypt -pubin -inkey "$WORK/9d.pub" -in "$WORK/plain" -out "$WORK/enc" &&
        pp -l -p 24681357 --decrypt --id 03 -m RSA-PKCS -i "$WORK/enc" -o "$WORK/dec" && cmp "$WORK/plain" "$WORK/dec"
}
t_ok "  the 9A key signs (pkcs11-tool), verified with its certificate" sign_9a
t_ok "  the 9D key decrypts what its certificate's key encrypted" decrypt_9d
t_ok "  the subject is the holder's" sh -c "openssl x509 -in '$WORK/9a.pem' -noout -subject | grep -q 'CN = Jane Doe'"

# ---- someone's card is not issued again
t_ok "a card requested for rsmith" request rsmith --profile piv
t_ok "  jdoe's card in the reader: exit 9" exit_is 9 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  says whose" grep -q "Jane Doe\|jdoe" "$WORK/last.out"
t_is "  jdoe's card untouched" "$(card_serial)" "$S"
t_ok "  its PIN still works" pp -l -p 24681357 -I

# ---- erased on the device, by its admin key
JD=$(sql "SELECT id FROM cards WHERE serial = '$S'")
t_ok "jdoe's card erased (card erase, the lifecycle's)" T card erase "$JD"
t_is "  the card row: erased" "$(sql "SELECT state FROM cards WHERE id = $JD")" erased
t_ok "  the card: factory PIN" pp -l -p 123456 -I
t_ok "  the factory PUK" pp -l --login-type so --so-pin 12345678 --init-pin --new-pin 123456
t_ok "  its certificates revoked" test "$(sql "SELECT group_concat(DISTINCT state) FROM certificates WHERE card_id = $JD")" = revoked
t_ok "  then collected for rsmith" T --json card collect --code "$(code)" --pin-file "$WORK/pin"
R=$(field card < "$WORK/last.out")
t_is "  rsmith's card has its serial" "$(card_serial)" "$R"

# ---- a card whose PUK is not the factory one
RS=$(sql "SELECT id FROM cards WHERE serial = '$R'")
t_ok "rsmith's card erased" T card erase "$RS"
t_ok "  its PUK changed by its owner" pp -l --login-type so --so-pin 12345678 --change-pin --new-pin 87654321
t_ok "a card requested for akim" request akim --profile piv
t_ok "  collect without the PUK: exit 4" exit_is 4 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  collect with it" T --json card collect --code "$(code)" --pin-file "$WORK/pin" --puk-file "$WORK/puk2"
A=$(field card < "$WORK/last.out")
t_is "  akim's card" "$(card_serial)" "$A"

# ---- killed after each step: the next collect undoes the half-made card
AK=$(sql "SELECT id FROM cards WHERE serial = '$A'")
t_ok "akim's card erased" T card erase "$AK"
revoked0=$(sql "SELECT count(*) FROM certificates WHERE state = 'revoked'")
# The card in the reader is the one the database says, or a blank one.
agree() {
    local now st
    now=$(card_serial) || return 1
    st=$(sql "SELECT state FROM cards WHERE serial = '$now'")
    [ -z "$st" ] || [ "$st" = active ] || [ "$st" = requested ] || [ "$st" = erased ] ||
        { echo "card $now is $st"; return 1; }
    [ -n "$st" ] || pp -l -p 123456 -I >/dev/null 2>&1 || { echo "card $now: unknown and not blank"; return 1; }
}
for step in serial created key:auth enrolled:auth recorded:auth loaded:auth key:sig loaded:enc loaded done; do
    request jdoe --profile piv >/dev/null
    c=$(code)
    TESSERA_TEST_KILL_AT=$step T card collect --code "$c" --pin-file "$WORK/pin" > "$WORK/killed" 2>&1
    t_is "killed after step $step" "$?" 137
    t_ok "  the card and the database agree" agree
    if [ "$step" = done ]; then
        t_ok "  the card was complete: the code is spent (exit 7)" exit_is 7 T card collect --code "$c" --pin-file "$WORK/pin"
        s=$(card_serial)
    else
        t_ok "  the next collect undoes it and issues the card" T --json card collect --code "$c" --pin-file "$WORK/pin"
        s=$(field card < "$WORK/last.out")
    fi
    t_is "  the card in the reader is the one issued" "$(card_serial)" "$s"
    t_is "  three certificates active" \
        "$(sql "SELECT count(*) FROM certificates c JOIN cards k ON k.id = c.card_id WHERE k.serial = '$s' AND c.state = 'active'")" 3
    t_ok "  its PIN works" pp -l -p 24681357 -I
    T card erase "$(sql "SELECT id FROM cards WHERE serial = '$s'")" > /dev/null || t_ok "  erased for the next" false
done
# Recorded before undone: one after recorded:auth, loaded:auth and key:sig;
# three after loaded:enc and loaded; the erases after each collect revoke
# three each (10 collects).
t_is "every certificate of an undone card was revoked" \
    "$(sql "SELECT count(*) FROM certificates WHERE state = 'revoked'")" $((revoked0 + 3 + 3 + 3 + 30))

# ---- killed after the card was made, then pulled out: it must come back
request jdoe --profile piv >/dev/null
c=$(code)
TESSERA_TEST_KILL_AT=key:sig T card collect --code "$c" --pin-file "$WORK/pin" > "$WORK/killed" 2>&1
t_is "killed after key:sig" "$?" 137
half=$(card_serial)
t_ok "  the card pulled out" card_stop
t_ok "  the next collect waits for it (exit 5)" exit_is 5 T card collect --code "$c" --pin-file "$WORK/pin"
t_ok "  names it" grep -q "$half" "$WORK/last.out"
t_is "  its certificate stays recorded" "$(sql "SELECT count(*) FROM certificates c JOIN cards k ON k.id = c.card_id WHERE k.serial = '$half' AND c.state = 'active'")" 1
t_ok "  put back" card_start vpiv "$VPCD_PORT0"
t_ok "  undone and issued" T --json card collect --code "$c" --pin-file "$WORK/pin"
s=$(field card < "$WORK/last.out")
t_is "  the card in the reader is the one issued" "$(card_serial)" "$s"
t_is "  the half card's certificate revoked" "$(sql "SELECT count(*) FROM certificates WHERE serial IN (SELECT c.serial FROM certificates c JOIN cards k ON k.id = c.card_id WHERE k.id = (SELECT card_id FROM jobs WHERE id = (SELECT max(id) FROM jobs))) AND state = 'revoked'")" 1
T card erase "$(sql "SELECT id FROM cards WHERE serial = '$s'")" > /dev/null

# ---- pulled out during the init: put back, the next collect finishes
request jdoe --profile piv >/dev/null
c=$(code)
pulled_n=0; pulled_ok=0; orphans=0
for n in $(seq 4 5 150); do
    card_stop && card_start vpiv "$VPCD_PORT0" --pull-after "$n" || break
    T card collect --code "$c" --pin-file "$WORK/pin" > "$WORK/pull.out" 2>&1 && break   # not pulled before the end
    card_gone && card_start vpiv "$VPCD_PORT0" || break
    pulled_n=$((pulled_n + 1))
    if T --json card collect --code "$c" --pin-file "$WORK/pin" > "$WORK/pull2.out" 2>&1 &&
        s=$(field card < "$WORK/pull2.out") && [ "$(card_serial)" = "$s" ] &&
        T card erase "$(sql "SELECT id FROM cards WHERE serial = '$s'")" > /dev/null 2>&1 &&
        request jdoe --profile piv >/dev/null; then
        pulled_ok=$((pulled_ok + 1)); c=$(code)
        grep -q "left half made" "$WORK/pull2.out" && orphans=$((orphans + 1))
        echo "# pulled after $n commands: $(grep -c . "$WORK/pull2.out") line(s) from the next collect"
    else
        echo "# pulled after $n commands: $(tr '\n' ' ' < "$WORK/pull.out") / $(tr '\n' ' ' < "$WORK/pull2.out")"
        break
    fi
done
card_stop; card_start vpiv "$VPCD_PORT0"
t_ok "collect was pulled at steps of its init and keys ($pulled_n)" test "$pulled_n" -ge 5
t_is "  and each time the next collect issued the card" "$pulled_ok" "$pulled_n"
t_ok "  some pulled when the card had its serial but was not recorded: erased as half made ($orphans)" \
    test "$orphans" -ge 1
t_ok "the audit trail is whole" T audit verify
t_done
