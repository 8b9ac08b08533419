# Request and collect: an issuer requests a TPM virtual card for a holder,
# the holder collects it with the single-use code (the card made with a
# diversified admin key, a PIN to the profile's policy, keys made on the
# card, certificates from the embedded CA loaded next to them), and a
# collect killed (SIGKILL) after each of its steps leaves no card the
# database does not know and no card row without its card: the next
# collect undoes the half-made card, revokes what was issued to it, and
# issues the card whole.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

. "$TESSERA_SRCDIR/tests/lib/cms.sh"

t_ok "a database, root as administrator, issuer and auditor" \
    sh -c "$TOOL db init && $TOOL operator roles root --roles administrator,issuer,auditor"
t_ok "the embedded CA" T ca init --subject "/CN=Tessera Test CA/O=Example" --crl-url http://crl.example.org/ca.crl
t_ok "  its certificate" sh -c "$TOOL ca certificate > '$WORK/ca.pem'"
printf 'uid,name,email,upn\njdoe,Jane Doe,jane@example.org,jdoe@example.org\nrsmith,Ro Smith,ro@example.org,\n' \
    > "$WORK/holders.csv"
t_ok "two holders" T holder import "$WORK/holders.csv"
openssl rand -hex 32 > "$WORK/master.key"
chmod 600 "$WORK/master.key"
cat > "$WORK/vsc.ini" <<EOF
[profile]
name = vsc
card-types = tpm
[pin]
min-length = 6
max-length = 8
digits = mandatory
special = forbidden
tries = 4
set-by = user
[admin-key]
master-file = $WORK/master.key
prf = cmac-aes256
alg = aes128
[key auth]
type = p256
usage = sign
certificate = client-auth, smartcard-logon
subject = /CN=\${name}/O=Example/UID=\${uid}
lifetime-days = 365
[key enc]
type = rsa2048
usage = decrypt
certificate = email
subject = /CN=\${name}/emailAddress=\${email}
lifetime-days = 730
EOF
t_ok "a profile for TPM cards" T profile import "$WORK/vsc.ini"
echo 123456 > "$WORK/pin"


# ---- guards: who may request, the device, the code, the PIN
t_ok "olga, helpdesk only" T operator add olga --roles helpdesk
t_ok "  may not request a card (exit 7)" exit_is 7 T card request --holder jdoe --profile vsc --as olga
t_ok "a request for an unknown holder: exit 5" exit_is 5 T card request --holder nobody --profile vsc
t_ok "a request for a PIV card on a TPM-only profile: exit 2" exit_is 2 T card request --holder jdoe --profile vsc --type piv
t_ok "device other.example.org is known" T device add other.example.org
t_ok "a card requested for that device" request jdoe --profile vsc --device other.example.org
t_ok "  collected here is refused (exit 7)" exit_is 7 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  and says where it belongs" grep -q "other.example.org" "$WORK/last.out"
t_is "  no card was made" "$(T --json vsc list)" "[]"

t_ok "a card requested for jdoe, any device" request jdoe --profile vsc
good=$(code)
wrong=$(echo "$good" | cut -c1-6)ZZZZZ-ZZZZZ-ZZZZZ
t_ok "a wrong code: exit 7" exit_is 7 T card collect --code "$wrong" --pin-file "$WORK/pin"
t_ok "  4 tries left" grep -q "4 tries left" "$WORK/last.out"
t_ok "a code of the wrong shape: exit 2" exit_is 2 T card collect --code 1234 --pin-file "$WORK/pin"
echo 12ab > "$WORK/badpin"
t_ok "a PIN the profile refuses: exit 4" exit_is 4 T card collect --code "$good" --pin-file "$WORK/badpin"
t_is "  no card was made" "$(T --json vsc list)" "[]"
t_is "  the job waits again" "$(sql "SELECT state FROM jobs WHERE code_id = '$(echo "$good" | cut -c1-5)'")" pending

# ---- collect
t_ok "jdoe collects her card" T --json card collect --code "$(echo "$good" | tr A-Z a-z)" --pin-file "$WORK/pin"
serial=$(field card < "$WORK/last.out")
t_ok "  (the code typed in lower case is the same code)" test -n "$serial"
t_ok "  the TPM holds card $serial" sh -c "$TOOL --json vsc list | grep -q '\"serial\":\"$serial\"'"
t_ok "  labelled with her name" sh -c "$TOOL --json vsc list | grep -q '\"label\":\"Jane Doe\"'"
t_ok "  active in the database" sh -c "$TOOL card show $serial | grep -q ' active '"
t_is "  two certificates recorded" "$(sql "SELECT count(*) FROM certificates c JOIN cards k ON k.id = c.card_id WHERE k.serial = '$serial' AND c.state = 'active'")" 2
t_ok "  the PIN policy and tries of the profile" \
    sh -c "$TOOL --json vsc list | grep -q 'min=6 max=8 digits=mandatory uppercase=optional lowercase=optional special=forbidden' && $TOOL --json vsc list | grep -q '\"user_tries_max\":4'"
key=$(T --json admin-key derive --master-file "$WORK/master.key" --serial "$serial" --alg aes128 | field admin_key)
kcv=$(printf '%032d' 0 | xxd -r -p | openssl enc -aes-128-ecb -K "$key" -nopad | xxd -p | cut -c1-6)
t_ok "  its admin key is the one diversified from the master for its serial" \
    sh -c "$TOOL --json card info --serial $serial | grep -q '\"kcv\":\"$kcv\"'"
t_ok "the authentication certificate, read from the card" \
    p11tool --token-label "Jane Doe" --read-object --type cert --label auth --output-file "$WORK/auth.der"
openssl x509 -inform DER -in "$WORK/auth.der" -out "$WORK/auth.pem"
t_ok "  verifies against the CA" openssl verify -CAfile "$WORK/ca.pem" "$WORK/auth.pem"
openssl x509 -in "$WORK/auth.pem" -noout -text > "$WORK/auth.txt"
t_ok "  subject from the holder's attributes" grep -q "Subject: CN = Jane Doe, O = Example, UID = jdoe" "$WORK/auth.txt"
t_ok "  client authentication and smart-card logon" grep -q "TLS Web Client Authentication, Microsoft Smartcard Login" "$WORK/auth.txt"
t_ok "  her UPN in the alternative name" grep -q "othername: UPN::jdoe@example.org" "$WORK/auth.txt"
t_ok "  the CRL distribution point" grep -q "URI:http://crl.example.org/ca.crl" "$WORK/auth.txt"
t_ok "  key usage: digital signature" \
    sh -c "grep -A1 'Key Usage: critical' '$WORK/auth.txt' | grep -q 'Digital Signature'"
t_ok "the encryption certificate" \
    p11tool --token-label "Jane Doe" --read-object --type cert --label enc --output-file "$WORK/enc.der"
openssl x509 -inform DER -in "$WORK/enc.der" -noout -text > "$WORK/enc.txt"
t_ok "  for e-mail, her address in the alternative name" \
    sh -c "grep -q 'E-mail Protection' '$WORK/enc.txt' && grep -q 'email:jane@example.org' '$WORK/enc.txt' && grep -q 'Key Encipherment' '$WORK/enc.txt'"
printf 'to be signed' > "$WORK/data"
t_ok "her PIN signs with the authentication key on the card" \
    p11tool --token-label "Jane Doe" --login --pin 123456 --sign --mechanism ECDSA-SHA256 \
        --id 01 --input-file "$WORK/data" --output-file "$WORK/sig"
t_ok "the code again: it is gone (exit 7)" exit_is 7 T card collect --code "$good" --pin-file "$WORK/pin"
t_ok "the trail tells the story" T audit --card "$serial"
t_ok "  card.create, two cert.issue, card.collect ok" \
    sh -c "grep -q card.create '$WORK/last.out' && [ \$(grep -c cert.issue '$WORK/last.out') = 2 ] && grep -q 'card.collect ok' '$WORK/last.out'"
t_ok "  and never the code" sh -c "! grep -q '$good' '$TESSERA_CMS_DB' && ! $TOOL audit | grep -q '$good'"

# ---- five wrong codes void it
t_ok "a card requested for rsmith" request rsmith --profile vsc
c2=$(code)
for i in 1 2 3 4; do T card collect --code "$(echo "$c2" | cut -c1-6)ZZZZZ-ZZZZZ-ZZZZ$i" --pin-file "$WORK/pin" >/dev/null 2>&1; done
t_ok "the fifth wrong code voids it" exit_is 7 T card collect --code "$(echo "$c2" | cut -c1-6)ZZZZZ-ZZZZZ-ZZZZ5" --pin-file "$WORK/pin"
t_ok "  so says the message" grep -q "void" "$WORK/last.out"
t_ok "  the right code no longer works" exit_is 7 T card collect --code "$c2" --pin-file "$WORK/pin"
t_is "  the card is cancelled" "$(sql "SELECT state FROM cards WHERE id = (SELECT max(id) FROM cards)")" cancelled

t_ok "another card requested for rsmith" request rsmith --profile vsc
sql "UPDATE jobs SET code_expires = '2020-01-01T00:00:00Z' WHERE id = (SELECT max(id) FROM jobs)" >/dev/null
t_ok "  its code, expired (moved to the past): exit 9" exit_is 9 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  says it expired" grep -q "expired" "$WORK/last.out"

# ---- killed after each step
t_ok "before the kills: consistent" consistent
for step in serial created key:auth enrolled:auth recorded:auth loaded:auth key:enc enrolled:enc recorded:enc \
            loaded:enc loaded done; do
    request jdoe --profile vsc >/dev/null
    c=$(code)
    TESSERA_TEST_KILL_AT=$step T card collect --code "$c" --pin-file "$WORK/pin" > "$WORK/killed" 2>&1
    rc=$?
    t_is "killed after step $step" "$rc" 137
    t_ok "  database and TPM agree" consistent
    if [ "$step" = done ]; then
        t_ok "  the card was complete: the code is spent (exit 7)" exit_is 7 T card collect --code "$c" --pin-file "$WORK/pin"
        continue
    fi
    t_ok "  the next collect undoes it and issues the card" T --json card collect --code "$c" --pin-file "$WORK/pin"
    s=$(field card < "$WORK/last.out")
    t_ok "  consistent again" consistent
    t_is "  its certificates: two active" \
        "$(sql "SELECT count(*) FROM certificates c JOIN cards k ON k.id = c.card_id WHERE k.serial = '$s' AND c.state = 'active'")" 2
    t_is "  one card for this request" "$(sql "SELECT count(*) FROM cards WHERE id = (SELECT card_id FROM jobs WHERE id = (SELECT max(id) FROM jobs)) AND state = 'active'")" 1
    T vsc delete --serial "$s" --response "$(T unblock response --master-file "$WORK/master.key" --serial "$s" --alg aes128 \
        --challenge "$(T --json unblock challenge --serial "$s" | field challenge)")" --yes >/dev/null 2>&1
    sql "UPDATE cards SET state = 'erased' WHERE serial = '$s'" >/dev/null
done
# Recorded before they were undone: after recorded:auth, loaded:auth, key:enc
# and enrolled:enc one each (auth), after recorded:enc, loaded:enc and
# loaded two each.
t_is "every certificate recorded for an undone card is revoked (10)" \
    "$(sql "SELECT count(*) FROM certificates WHERE state = 'revoked'")" 10
# Killed after enrolled:auth and enrolled:enc, the CA had issued a
# certificate the database never recorded: the undo found each by the key
# its request was recorded with, and revoked it.
t_is "the two certificates issued but never recorded, revoked by the undo" "$(unrecorded_revoked | wc -l)" 2
t_is "  no certificate of the CA is valid that the database does not have" "$(ca_unrecorded)" 0
t_is "  no enrolment left open" "$(sql "SELECT count(*) FROM enrolments")" 0
t_ok "a CRL" T ca crl --out "$WORK/crl.pem"
{ sql "SELECT serial FROM certificates WHERE state = 'revoked'"; unrecorded_revoked; } | sort > "$WORK/db-revoked"
t_ok "  lists exactly the twelve revoked certificates, recorded or not" sh -c "
    openssl crl -in '$WORK/crl.pem' -noout -text | sed -n 's/^ *Serial Number: //p' | sort > '$WORK/crl-serials'
    [ \$(wc -l < '$WORK/db-revoked') = 12 ] && cmp '$WORK/crl-serials' '$WORK/db-revoked'"
t_ok "  signed by the CA" openssl crl -in "$WORK/crl.pem" -CAfile "$WORK/ca.pem" -noout
t_ok "job list: every issue job done, failed or pending" T job list
t_ok "the audit trail is whole" T audit verify

t_done
