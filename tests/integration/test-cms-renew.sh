# Renewal on the device (`tessera card renew`): the holder's PIN opens the
# card (a wrong one changes nothing), new keys are made on it for each key
# of the profile with a certificate, certified and loaded, then the old
# keys and certificates leave the card and the old certificates are
# revoked as superseded. Killed at every step, the next run rolls back (before
# "switched") or finishes (after): the card always holds exactly one key and
# certificate per profile key, and they are the ones the database calls
# active. A card suspended while its renewal was interrupted: rolled back
# and cancelled. The new key signs and its certificate verifies that.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"

t_ok "a database, root as administrator and issuer, the CA, holder jdoe" cms_start
t_ok "a profile: two keys with year-long certificates, a 30-day window" cms_profile 365 \
    "[key mail]" "type = p256" "usage = sign" "certificate = email" 'subject = /CN=${name}' "lifetime-days = 365" \
    "[lifecycle]" "renewal-window-days = 30"
echo 123456 > "$WORK/pin"
echo 654321 > "$WORK/wrong"

t_ok "jdoe's card requested" request jdoe --profile vsc
t_ok "  and collected" T card collect --code "$(code)" --pin-file "$WORK/pin"
A=$(cat "$WORK/card-id"); SA=$(sql "SELECT serial FROM cards WHERE id = $A")
slot=$($TOOL --json card info --serial "$SA" | num slot)
tp() { p11tool --slot "$slot" -l -p 123456 "$@" 2>/dev/null; }

# As if the card's certificates were issued 360 days ago: the database says
# they end in 5 days (the scan reads the database).
age() { sql "UPDATE certificates SET not_after = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+5 days')
             WHERE card_id = $A AND state = 'active'"; }
due() { age && $TOOL scan > /dev/null && [ "$(open_job)" != "" ]; }
open_job() { sql "SELECT id FROM jobs WHERE kind = 'renew' AND card_id = $A AND state IN ('pending','running')"; }
job_state() { sql "SELECT state FROM jobs WHERE id = $1"; }
# The card holds one certificate and one private key per profile key, under
# the same id, and each certificate is the one the database calls active.
whole() {
    local key n id db_serial card_serial
    for key in auth mail; do
        n=$(tp -O --type cert | grep -c "label: *$key\$")
        [ "$n" = 1 ] || { echo "$n certificates labelled $key"; return 1; }
        n=$(tp -O --type privkey | grep -c "label: *$key\$")
        [ "$n" = 1 ] || { echo "$n private keys labelled $key"; return 1; }
        id=$(tp -O --type cert | grep -A3 "label: *$key\$" | sed -n 's/.*ID: *\([0-9a-f]*\).*/\1/p')
        tp --read-object --type cert --id "$id" -o "$WORK/$key.der" > /dev/null || return 1
        card_serial=$(openssl x509 -inform DER -in "$WORK/$key.der" -noout -serial | cut -d= -f2)
        db_serial=$(sql "SELECT serial FROM certificates WHERE card_id = $A AND key_name = '$key' AND state = 'active'")
        [ "$card_serial" = "$db_serial" ] || { echo "$key: card has $card_serial, database says $db_serial"; return 1; }
        tp -O --type privkey --id "$id" | grep -q "Private Key Object" || { echo "$key: no key under $id"; return 1; }
    done
}

t_ok "the card is whole before any renewal" whole
t_ok "no renewal due yet: renew says so (exit 5)" exit_is 5 T card renew --pin-file "$WORK/pin"
t_ok "its certificates near their end: the scan opens a renewal" due
J=$(open_job)
t_ok "a wrong PIN (exit 4)" exit_is 4 T card renew --pin-file "$WORK/wrong"
t_is "  changes nothing" "$(job_state "$J")" pending
t_ok "the holder renews (the only card of this machine with a renewal due)" \
    T --json card renew --pin-file "$WORK/pin"
t_ok "  two keys renewed, six old objects (certificate, private and public key) removed, two certificates superseded" \
    grep -q '"renewed":2,"removed":6,"superseded":2,"resumed":false' "$WORK/last.out"
t_is "  the job done" "$(job_state "$J")" done
t_ok "  the card whole" whole
t_is "  the old certificates superseded" \
    "$(sql "SELECT count(*) FROM certificates WHERE card_id = $A AND state = 'superseded'")" 2
t_ok "  and in the CRL" sh -c "$TOOL ca crl --out - | openssl crl -noout -text | grep -c 'Superseded' | grep -qx 2"
t_is "  each in the trail" \
    "$(sql "SELECT count(*) FROM audit WHERE action = 'cert.revoke' AND detail LIKE '%superseded'")" 2
id=$(tp -O --type cert | grep -A3 "label: *auth\$" | sed -n 's/.*ID: *\([0-9a-f]*\).*/\1/p')
t_ok "  the new key has a new id ($id)" test "${#id}" = 12
printf 'renewed' > "$WORK/data"
t_ok "the new key signs" tp --sign -m ECDSA-SHA256 --id "$id" -i "$WORK/data" -o "$WORK/sig" \
    --signature-format openssl
openssl x509 -inform DER -in "$WORK/auth.der" -pubkey -noout > "$WORK/auth.pub"
t_ok "  and its new certificate verifies it" \
    openssl dgst -sha256 -verify "$WORK/auth.pub" -signature "$WORK/sig" "$WORK/data"
t_ok "the next scan opens no renewal (the new certificates are a year long)" sh -c "$TOOL --json scan | grep -q '\"made\":0'"
t_is "  and tells no one" "$(open_job)" ""

# ---- killed at each step, then run again
for step in renew:key:auth renew:enrolled:auth renew:recorded:auth renew:loaded:auth renew:key:mail \
            renew:loaded:mail renew:switched renew:removed renew:revoked; do
    t_ok "a renewal due" due
    J=$(open_job)
    t_ok "renew killed after $step (exit 137)" \
        exit_is 137 env TESSERA_TEST_KILL_AT="$step" $TOOL card renew "$A" --pin-file "$WORK/pin"
    t_is "  its job left running" "$(job_state "$J")" running
    t_ok "  the next run takes it up" T --json card renew "$A" --pin-file "$WORK/pin"
    t_ok "  (resumed)" grep -q '"resumed":true' "$WORK/last.out"
    t_is "  the job done" "$(job_state "$J")" done
    t_ok "  the card whole" whole
done
t_is "the six runs killed before switching over were rolled back, the three after it finished" \
    "$(sql "SELECT count(*) FROM audit WHERE action = 'card.renew' AND result = 'rolled back'")" 6
t_is "no certificate left active but the card's two" \
    "$(sql "SELECT count(*) FROM certificates WHERE state = 'active'")" 2
# Killed after renew:enrolled:auth, the CA had issued a certificate the
# database never recorded: the roll-back found it by its key and revoked it.
t_is "the certificate issued but never recorded, revoked by the roll-back" "$(unrecorded_revoked | wc -l)" 1
t_is "  no certificate of the CA is valid that the database does not have" "$(ca_unrecorded)" 0
t_is "every certificate made and let go is revoked at the CA" \
    "$(( $(sql "SELECT count(*) FROM certificates WHERE state IN ('superseded', 'revoked')") + 1 ))" \
    "$($TOOL ca crl --out - | openssl crl -noout -text | grep -c 'Serial Number')"

# ---- the card suspended while its renewal was interrupted
t_ok "a renewal due" due
J=$(open_job)
t_ok "renew killed after the new auth certificate is recorded" \
    exit_is 137 env TESSERA_TEST_KILL_AT=renew:recorded:auth $TOOL card renew --pin-file "$WORK/pin"
t_ok "the card suspended meanwhile (a renewal does not hold it up)" T card suspend "$A" --note "on leave"
t_ok "renew now rolls back and stops (exit 9)" exit_is 9 T card renew --pin-file "$WORK/pin"
t_is "  the renewal cancelled" "$(job_state "$J")" cancelled
t_is "  the new certificate revoked" \
    "$(sql "SELECT state FROM certificates WHERE card_id = $A ORDER BY id DESC LIMIT 1")" revoked
t_fail "  the new key gone from the card" sh -c "$(declare -f tp p11tool client); MOD='$MOD'; slot=$slot;
    tp -O --type privkey | grep -q 'ID: *0152$(printf %08x "$J")'"
t_ok "enabled again" T card enable "$A"
t_ok "  the card whole, with its old keys" whole
t_ok "a card locked by the agent is not renewed: its PIN does not open it (exit 6)" sh -c "$TOOL scan >/dev/null 2>&1;
    $TOOL card lock $A && $TOOL agent >/dev/null && $TOOL card renew --pin-file '$WORK/pin'; test \$? = 6"
t_ok "the trail verifies" T audit verify
t_ok "the TPM and the database agree" consistent
t_done
