# Request and collect with a PIV card (the virtual card, vpiv, in a private
# pcscd): the holder's blank card in a reader is reset by its PUK and given
# the serial collect recorded first (a new CHUID), a PIN to the profile, the
# diversified 9B key (its PUK then a secret nobody is told), a key in each
# PIV slot the profile names, made on the card (the 9D key off the card and
# escrowed), certified by the embedded CA and stored next to it. Someone's card is refused untouched; a collect
# killed after each step, or a card pulled out during the init, is undone
# by the next (the card must be put back), never leaving a card the
# database does not know; the card erased on the device by its admin key.
# Renewal on the device: new certificates for the keys in the slots, in
# place of the old; killed at each step, taken up by the next run; rolled
# back for good (the card suspended meanwhile), the old ones put back. A
# PIN locked by the agent, unlocked by the helpdesk for 8 hours, locked
# again. A lost card replaced by a card in a second reader, its escrowed key
# recovered into the replacement's first retired slot (82).
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
escrow = yes
EOF
sed 's/^max-length = 8/max-length = 12/' "$WORK/piv.ini" > "$WORK/long.ini"
t_ok "a PIV profile with a PIN of up to 12: exit 2" exit_is 2 T profile import "$WORK/long.ini"
t_ok "  says why" grep -q "6 to 8" "$WORK/last.out"
t_ok "a profile for PIV cards" T profile import "$WORK/piv.ini"
( umask 077; echo 'escrow passphrase' > "$WORK/escrow.pass" )
t_ok "an escrow key for the 9D keys" T escrow create kra --key-out "$WORK/kra.pem" --pass-file "$WORK/escrow.pass"
t_ok "kim, key-recovery officer" T operator add kim --roles key-recovery

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
t_is "  and the one issued but never recorded (after enrolled:auth), found by its key" "$(unrecorded_revoked | wc -l)" 1
t_is "  no certificate of the CA is valid that the database does not have" "$(ca_unrecorded)" 0

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

# ---- killed after the card was made, pulled out, never back: cancelled
request jdoe --profile piv >/dev/null
c=$(code); LOSTID=$(cat "$WORK/card-id")
TESSERA_TEST_KILL_AT=enrolled:sig T card collect --code "$c" --pin-file "$WORK/pin" > "$WORK/killed" 2>&1
t_is "killed after enrolled:sig (its certificate issued, not recorded)" "$?" 137
half=$(card_serial)
t_ok "  the card pulled out" card_stop
t_ok "  an operator may not cancel while a collect runs it: the next collect waits (exit 5)" \
    exit_is 5 T card collect --code "$c" --pin-file "$WORK/pin"
t_ok "  the operator cancels the card" T card cancel "$LOSTID" --note "never came back"
t_is "  cancelled, its serial kept" "$(sql "SELECT state, serial FROM cards WHERE id = $LOSTID")" "cancelled|$half"
t_is "  its recorded certificate revoked" \
    "$(sql "SELECT group_concat(state) FROM certificates WHERE card_id = $LOSTID")" revoked
t_is "  the collect job cancelled" "$(sql "SELECT state FROM jobs WHERE card_id = $LOSTID AND kind = 'issue'")" cancelled
t_is "  the sig certificate the CA issued to the killed collect, revoked too" "$(unrecorded_revoked | wc -l)" 2
t_is "    by the operator who cancelled" \
    "$(sql "SELECT operator FROM audit WHERE action = 'cert.revoke' AND detail LIKE 'key sig:%never recorded%'")" root
t_is "  no certificate of the CA is valid that the database does not have" "$(ca_unrecorded)" 0
t_ok "the card found again" card_start vpiv "$VPCD_PORT0"
request jdoe --profile piv >/dev/null
t_ok "  not issued again as it is (exit 9)" exit_is 9 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  erased (its cancelled card)" T card erase "$LOSTID"
t_ok "  then issued" T --json card collect --code "$(code)" --pin-file "$WORK/pin"
s=$(field card < "$WORK/last.out")
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

# ---- renewal on the device: the same keys, new certificates in place
erase_active() {   # the card in the reader erased, if the database has it active
    local id
    id=$(sql "SELECT id FROM cards WHERE serial = '$(card_serial)' AND state = 'active'")
    [ -z "$id" ] || T card erase "$id"
}
t_ok "the card in the reader erased" erase_active
t_ok "a card requested for jdoe" request jdoe --profile piv
t_ok "  collected" T --json card collect --code "$(code)" --pin-file "$WORK/pin"
P=$(cat "$WORK/card-id"); SP=$(field card < "$WORK/last.out")
age() { sql "UPDATE certificates SET not_after = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+5 days')
             WHERE card_id = $P AND state = 'active'"; }
open_job() { sql "SELECT id FROM jobs WHERE kind = 'renew' AND card_id = $P AND state IN ('pending','running')"; }
due() { age && $TOOL scan > /dev/null && [ "$(open_job)" != "" ]; }
# Each slot holds the certificate the database calls active for its key,
# and the slot's key is that certificate's (9A and 9C sign, 9D decrypts).
whole() {
    local s slot name on_card in_db n
    for s in 9a:auth 9c:sig 9d:enc; do
        slot=${s%%:*}; name=${s#*:}
        read_cert "$slot" || { echo "no certificate in $slot"; return 1; }
        on_card=$(openssl x509 -in "$WORK/$slot.pem" -noout -serial | cut -d= -f2)
        in_db=$(sql "SELECT serial FROM certificates WHERE card_id = $P AND key_name = '$name' AND state = 'active'")
        [ "$on_card" = "$in_db" ] || { echo "$slot: card has $on_card, database says $in_db"; return 1; }
    done
    n=$(pp -O 2>/dev/null | grep -c "Certificate Object")
    [ "$n" = 3 ] || { echo "the module shows $n certificates"; return 1; }
    sign_9a >/dev/null 2>&1 || { echo "9A does not sign for its certificate"; return 1; }
    decrypt_9d >/dev/null 2>&1 || { echo "9D does not decrypt for its certificate"; return 1; }
}
t_ok "the card is whole" whole
cp "$WORK/9a.pem" "$WORK/9a-old.pem"
t_ok "its certificates near their end: the scan opens a renewal" due
t_ok "the holder renews with the PIN" T --json card renew "$P" --pin-file "$WORK/pin"
t_ok "  three renewed, nothing removed, three superseded" \
    grep -q '"renewed":3,"removed":0,"superseded":3,"resumed":false' "$WORK/last.out"
t_ok "  whole: new certificates in the slots" whole
t_ok "  not the old one" sh -c "! cmp -s '$WORK/9a.pem' '$WORK/9a-old.pem'"
t_ok "  for the same key" sh -c "[ \"\$(openssl x509 -in '$WORK/9a.pem' -noout -pubkey)\" = \"\$(openssl x509 -in '$WORK/9a-old.pem' -noout -pubkey)\" ]"
t_is "  the old ones superseded" "$(sql "SELECT count(*) FROM certificates WHERE card_id = $P AND state = 'superseded'")" 3

for step in renew:key:auth renew:enrolled:auth renew:recorded:auth renew:loaded:auth renew:key:sig \
            renew:loaded:enc renew:switched renew:removed renew:revoked; do
    t_ok "a renewal due" due
    t_ok "renew killed after $step (exit 137)" \
        exit_is 137 env TESSERA_TEST_KILL_AT="$step" $TOOL card renew "$P" --pin-file "$WORK/pin"
    t_ok "  the next run takes it up" T --json card renew "$P" --pin-file "$WORK/pin"
    t_ok "  the card is whole" whole
    t_is "  three certificates active" "$(sql "SELECT count(*) FROM certificates WHERE card_id = $P AND state = 'active'")" 3
done
t_is "the renewals rolled back: before switched (6)" \
    "$(sql "SELECT count(*) FROM audit WHERE action = 'card.renew' AND result = 'rolled back'")" 6
# Killed after renew:enrolled:auth: a certificate for the key in 9A that the
# database never recorded, found by that key; the card's own certificates
# for the same key stay good.
t_is "the certificate issued but never recorded, revoked by the roll-back" "$(unrecorded_revoked | wc -l)" 3
t_is "  no certificate of the CA is valid that the database does not have" "$(ca_unrecorded)" 0
sql "SELECT serial FROM certificates WHERE state = 'active'" | sort > "$WORK/active-serials"
t_ok "  no active certificate is in the CRL" sh -c "[ -s '$WORK/active-serials' ] &&
    $TOOL ca crl --out - | openssl crl -noout -text | sed -n 's/^ *Serial Number: //p' | sort |
    comm -12 - '$WORK/active-serials' | wc -l | grep -qx 0"

# Rolled back for good: the old certificates go back into the slots.
t_ok "a renewal due" due
read_cert 9a && cp "$WORK/9a.pem" "$WORK/9a-old.pem"
t_ok "renew killed after the new 9A certificate is in its slot" \
    exit_is 137 env TESSERA_TEST_KILL_AT=renew:loaded:auth $TOOL card renew "$P" --pin-file "$WORK/pin"
read_cert 9a && cp "$WORK/9a.pem" "$WORK/9a-new.pem"
t_ok "  (another certificate than before)" sh -c "! cmp -s '$WORK/9a-new.pem' '$WORK/9a-old.pem'"
t_ok "the card suspended meanwhile" T card suspend "$P" --note "on leave"
t_ok "renew rolls back and stops (exit 9)" exit_is 9 T card renew "$P" --pin-file "$WORK/pin"
read_cert 9a
t_ok "  slot 9A has its old certificate back" cmp "$WORK/9a.pem" "$WORK/9a-old.pem"
t_is "  the new one revoked" "$(sql "SELECT state FROM certificates WHERE card_id = $P ORDER BY id DESC LIMIT 1")" revoked
t_ok "the card enabled" T card enable "$P"
t_ok "  whole again, its old certificates active" whole

# ---- the PIN locked by the agent, unlocked by the helpdesk for some hours
t_ok "olga, helpdesk" T operator add olga --roles helpdesk
printf '13572468\n' > "$WORK/pin2"
pin_locked() { pp -l -p "$1" -I 2>&1 | grep -q CKR_PIN_LOCKED; }
agent() {   # agent LOCKED SKIPPED FAILED: one run, and what it says it did
    T --json agent > "$WORK/agent.out"
    local rc=$?
    grep -q "\"locked\":$1,\"skipped\":$2,\"failed\":$3}" "$WORK/agent.out" ||
        { echo "exit $rc: $(cat "$WORK/agent.out")"; return 1; }
}
t_ok "a lock of jdoe's PIV card, at the next run" T card lock "$P" --note "on leave"
t_ok "the card out of its reader" card_stop
t_ok "  the agent cannot lock it: the job waits" agent 0 0 1
t_is "  the card still active" "$(sql "SELECT state FROM cards WHERE id = $P")" active
t_ok "the card back" card_start vpiv "$VPCD_PORT0"
t_ok "the agent locks it" agent 1 0 0
t_is "  the card is locked" "$(sql "SELECT state FROM cards WHERE id = $P")" locked
t_ok "  the right PIN: CKR_PIN_LOCKED" pin_locked 24681357
chal=$($TOOL --json unblock challenge --slot 256 | field challenge)
t_ok "olga unlocks it for 8 hours" T --json card unlock "$P" --challenge "$chal" --hours 8 --note "left at home" --as olga
resp=$(field response < "$WORK/last.out"); RL=$(num relock_job < "$WORK/last.out")
t_ok "  the holder types the response and a new PIN" \
    T unblock complete --slot 256 --response "$resp" --pin-file "$WORK/pin2"
t_ok "  which logs in" pp -l -p 13572468 -I
sql "UPDATE jobs SET due = '2000-01-01T00:00:00Z' WHERE id = $RL"
t_ok "eight hours later the agent locks it again" agent 1 0 0
t_ok "  the new PIN: CKR_PIN_LOCKED" pin_locked 13572468
chal=$($TOOL --json unblock challenge --slot 256 | field challenge)
t_ok "unlocked for good" T --json card unlock "$P" --challenge "$chal" --note "back" --as olga
resp=$(field response < "$WORK/last.out")
t_ok "  the response and the first PIN again" T unblock complete --slot 256 --response "$resp" --pin-file "$WORK/pin"
t_ok "  the card is whole" whole

# ---- lost: a replacement in a second reader, the old key recovered into it
Y2() { client yubico-piv-tool -r "Virtual PCD 00 01" "$@"; }
read_cert 9d && cp "$WORK/9d.pem" "$WORK/lost-9d.pem"
t_ok "jdoe's card lost: replaced" T --json card replace "$P" --reason lost
field code < "$WORK/last.out" > "$WORK/code"
B=$(num replacement < "$WORK/last.out")
card2_up() {   # vpiv2 in the second reader, keeping no key history of itself (as a YubiKey); its slot in slot2
    local i
    "$VPIV" --port "$VPCD_PORT1" --state "$WORK/vpiv2-state" --pid-file "$WORK/vpiv2.card.pid" --no-key-history \
        >> "$WORK/vpiv2.log" 2>&1 &
    for i in $(seq 100); do client opensc-tool -l 2>/dev/null | grep -q "^1 *Yes" && break; sleep 0.05; done
    slot2=$(p11tool -L 2>/dev/null | sed -n 's/^Slot [0-9]* (\(0x[0-9a-f]*\)): Virtual PCD 00 01.*/\1/p')
    [ -n "$slot2" ] && slot2=$((slot2))
}
t_ok "a second blank card, in the second reader" card2_up
t_ok "  two PIV cards: collect asks which (exit 2)" exit_is 2 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  collected there (--slot $slot2)" T --json card collect --code "$(code)" --pin-file "$WORK/pin" --slot "$slot2"
SB=$(field card < "$WORK/last.out")
t_ok "  its serial" test -n "$SB"
t_is "  the second card is the replacement" "$($TOOL --json card info --slot "$slot2" | field serial)" "$SB"
t_ok "the lost card's key recovered into the replacement" T key recover --as kim --card "$P" --to-card "$SB" \
    --pin-file "$WORK/pin" --escrow-key "$WORK/kra.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "  into the first retired slot (82: id 05)" grep -q "(id 05, a retired key slot)" "$WORK/last.out"
recovered_decrypts() {
    echo "for the lost card" > "$WORK/plain2"
    openssl x509 -in "$WORK/lost-9d.pem" -pubkey -noout > "$WORK/lost.pub" &&
        openssl pkeyutl -encrypt -pubin -inkey "$WORK/lost.pub" -in "$WORK/plain2" -out "$WORK/enc2" &&
        p11tool --slot "$slot2" -l -p 24681357 --decrypt --id 05 -m RSA-PKCS -i "$WORK/enc2" -o "$WORK/dec2" &&
        cmp "$WORK/plain2" "$WORK/dec2"
}
t_ok "  it decrypts what was encrypted to the lost card's certificate" recovered_decrypts
t_ok "  the card's key history counts slot 82 (5FC10C written)" test -s "$WORK/vpiv2-state/objects/5fc10c"
Y2 -a read-certificate -s 82 > "$WORK/82.pem" 2>/dev/null
same_pub() { [ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl x509 -in "$2" -noout -pubkey)" ]; }
t_ok "  slot 82 holds a certificate for that key (yubico-piv-tool)" same_pub "$WORK/82.pem" "$WORK/lost-9d.pem"
t_ok "    the newest: 9D's after its renewals in place, not the one the key was archived with" \
    cmp "$WORK/82.pem" "$WORK/lost-9d.pem"
t_ok "  done again: completes, no second copy" T key recover --as kim --card "$P" --to-card "$SB" \
    --pin-file "$WORK/pin" --escrow-key "$WORK/kra.pem" --escrow-pass-file "$WORK/escrow.pass"
t_ok "  still in 82" grep -q "(id 05, a retired key slot)" "$WORK/last.out"
t_fail "  nothing in 83" Y2 -a read-certificate -s 83
t_ok "the audit trail is whole" T audit verify
t_done
