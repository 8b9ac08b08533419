# cfssl as the database's CA (src/cms/ca_cfssl.c): a real `cfssl serve`
# with its own CA, auth key and certificate database, started here. Connect
# (the CA's certificate kept), collect cards whose certificates cfssl signs
# (the profile chosen by usage and lifetime, what comes back checked),
# revoke at cfssl on cancel and loss, the CRL fetched from where it is
# published and verified; what cfssl cannot do refused up front (smart-card
# logon, lifting a hold); a subject cfssl would cut, a wrong auth key, the
# CA down, a collect killed after a certificate and a server signing with
# another CA: each refused with the card undone and nothing valid left.
# Renewal on the device through cfssl; https with mutual TLS.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"
. "$TESSERA_SRCDIR/tests/lib/cfssl.sh"

CF=$WORK/cfssl
t_ok "cfssl serve: its CA, auth key, certificate database; the CRL publisher" cfssl_start
t_ok "a database, root as administrator, issuer and auditor" \
    sh -c "$TOOL db init && $TOOL operator roles root --roles administrator,issuer,auditor"
t_ok "ivan, issuer only" T operator add ivan --roles issuer
printf 'uid,name,email,upn\njdoe,Jane Doe,jane@example.org,jdoe@example.org\n' > "$WORK/holders.csv"
t_ok "holder jdoe" T holder import "$WORK/holders.csv"
openssl rand -hex 32 > "$WORK/master.key"
chmod 600 "$WORK/master.key"
echo 123456 > "$WORK/pin"
connect() { T ca connect cfssl --url "$CFSSL_URL" --auth-key-file "$CF/auth.key" --crl-url "$CFSSL_CRL_URL" "$@"; }

# ---- connecting
t_ok "no CA yet: collecting would say how to connect one (exit 5)" exit_is 5 T ca show
t_ok "  the message names ca connect cfssl" grep -q "ca connect cfssl" "$WORK/last.out"
t_ok "a server where nothing listens: refused" exit_is 1 T ca connect cfssl --url "http://127.0.0.1:$(free_port)"
t_ok "  saying it could not connect" grep -qi "connect" "$WORK/last.out"
t_ok "  no CA set" exit_is 5 T ca show
t_ok "a URL that is not http(s): a usage error" exit_is 2 T ca connect cfssl --url "ftp://127.0.0.1/"
cp "$CF/auth.key" "$WORK/loose.key" && chmod 644 "$WORK/loose.key"
t_ok "an auth key others may read: refused (exit 2)" \
    exit_is 2 T ca connect cfssl --url "$CFSSL_URL" --auth-key-file "$WORK/loose.key"
t_ok "  saying so" grep -q "mode 0600 or 0400" "$WORK/last.out"
t_ok "an issuer may not connect the CA (exit 7)" exit_is 7 connect --profile card,short --as ivan
t_ok "root connects cfssl, profiles card and short" connect --profile card,short
cp "$WORK/last.out" "$WORK/connected"
fp=$(openssl x509 -in "$CF/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
t_ok "  naming the CA by its certificate's SHA-256" grep -q "$fp" "$WORK/connected"
t_ok "  and what each profile gives" \
    sh -c "grep -q \"profile 'card': 365 days\" '$WORK/connected' && grep -q \"profile 'short': 14 days\" '$WORK/connected'"
t_ok "ca show: kind cfssl" sh -c "$TOOL --json ca show | grep -q '\"kind\":\"cfssl\"'"
T ca certificate > "$WORK/ca.pem"
t_ok "ca certificate: cfssl's CA" sh -c "openssl x509 -in '$WORK/ca.pem' -noout -fingerprint -sha256 | tr -d : | tr 'A-F' 'a-f' | grep -q '$fp'"
t_ok "the embedded CA cannot be made over it (exit 1)" exit_is 1 T ca init --subject "/CN=Other/O=Example"
t_ok "the auth key is not in the database" sh -c "! grep -q '$(cat "$CF/auth.key")' '$TESSERA_CMS_DB'"

# ---- issuing
cat > "$WORK/cf.ini" <<EOF
[profile]
name = cf
card-types = tpm
[pin]
min-length = 6
max-length = 8
tries = 4
[admin-key]
master-file = $WORK/master.key
alg = aes128
[key auth]
type = p256
usage = sign
certificate = client-auth
subject = /CN=\${name}/O=Example
lifetime-days = 365
[key mail]
type = rsa2048
usage = decrypt
certificate = email
subject = /CN=\${name}/O=Example
lifetime-days = 365
EOF
t_ok "a profile: a signing key for client auth, a decryption key for mail" T profile import "$WORK/cf.ini"
cert_of() {   # cert_of CARD-ID KEY: its active certificate in $WORK/KEY.pem
    /usr/bin/python3 -c 'import sqlite3, sys, ssl
der = sqlite3.connect(sys.argv[1]).execute("SELECT der FROM certificates WHERE card_id = ? AND key_name = ? "
                                           "ORDER BY id DESC LIMIT 1", (int(sys.argv[2]), sys.argv[3])).fetchone()[0]
open(sys.argv[4], "w").write(ssl.DER_cert_to_PEM_cert(der))' "$TESSERA_CMS_DB" "$1" "$2" "$WORK/$2.pem"
}
serial_of() { openssl x509 -in "$WORK/$1.pem" -noout -serial | cut -d= -f2; }
lasts() {   # lasts KEY MIN MAX: its certificate ends in MIN to MAX days
    local d=$(( ($(date -d "$(openssl x509 -in "$WORK/$1.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
    [ "$d" -ge "$2" ] && [ "$d" -le "$3" ] || { echo "$1 ends in $d days"; return 1; }
}
certs_at_cfssl() { /usr/bin/python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM certificates").fetchone()[0])' "$CF/certs.db"; }

t_ok "a card requested for jdoe" request jdoe --profile cf
t_ok "  collected: cfssl signs both certificates" collect
A=$(cat "$WORK/card-id"); SA=$(cat "$WORK/serial")
t_ok "  consistent" consistent
cert_of "$A" auth && cert_of "$A" mail
t_ok "the authentication certificate verifies under cfssl's CA" openssl verify -CAfile "$CF/ca.pem" "$WORK/auth.pem"
t_ok "  the mail certificate too" openssl verify -CAfile "$CF/ca.pem" "$WORK/mail.pem"
t_is "  cfssl's database has them good" "$(cfssl_status "$(serial_of auth)") $(cfssl_status "$(serial_of mail)")" "good|0 good|0"
openssl x509 -in "$WORK/auth.pem" -noout -text > "$WORK/auth.txt"
openssl x509 -in "$WORK/mail.pem" -noout -text > "$WORK/mail.txt"
t_ok "  subject: Jane Doe of Example" grep -q "Subject: O = Example, CN = Jane Doe" "$WORK/auth.txt"
t_ok "  for client auth, signing" \
    sh -c "grep -q 'TLS Web Client Authentication' '$WORK/auth.txt' && grep -q 'Digital Signature' '$WORK/auth.txt'"
t_ok "  mail: e-mail protection, key encipherment, her address" \
    sh -c "grep -q 'E-mail Protection' '$WORK/mail.txt' && grep -q 'Key Encipherment' '$WORK/mail.txt' && grep -q 'email:jane@example.org' '$WORK/mail.txt'"
t_ok "  a year long (cfssl's profile card)" lasts auth 364 365
t_is "  recorded as issued by cfssl" "$(sql "SELECT DISTINCT ca FROM certificates WHERE card_id = $A")" \
    "cfssl:/O=Example/CN=Tessera Test cfssl CA"
printf 'to be signed' > "$WORK/data"
t_ok "her PIN signs with the key cfssl certified" \
    p11tool --token-label "Jane Doe" --login --pin 123456 --sign --mechanism ECDSA-SHA256 --id 01 \
        --input-file "$WORK/data" --output-file "$WORK/sig" --signature-format openssl
openssl x509 -in "$WORK/auth.pem" -pubkey -noout > "$WORK/auth.pub"
t_ok "  and the signature verifies with the certificate" \
    openssl dgst -sha256 -verify "$WORK/auth.pub" -signature "$WORK/sig" "$WORK/data"

# ---- a shorter lifetime: the longest profile within it
sed -e 's/^name = cf$/name = brief/' -e 's/^lifetime-days = 365$/lifetime-days = 20/' "$WORK/cf.ini" > "$WORK/brief.ini"
t_ok "a profile whose certificates live 20 days" T profile import "$WORK/brief.ini"
issue_to() { request jdoe --profile "$1" && collect; }
t_ok "a card to it collected" issue_to brief
B=$(cat "$WORK/card-id")
cert_of "$B" auth
t_ok "  its certificate from cfssl's profile short (14 days)" lasts auth 13 14

# ---- what cfssl cannot issue: refused before a card is made
sed -e 's/^name = cf$/name = logon/' -e 's/^certificate = client-auth$/certificate = client-auth, smartcard-logon/' \
    "$WORK/cf.ini" > "$WORK/logon.ini"
t_ok "a profile for smart-card logon" T profile import "$WORK/logon.ini"
t_ok "  a card requested" request jdoe --profile logon
before=$(certs_at_cfssl)
t_ok "  its collect fails" exit_is 1 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  saying cfssl cannot issue for smart-card logon" grep -q "cfssl cannot issue certificates for smart-card logon" "$WORK/last.out"
t_is "  cfssl was not asked" "$(certs_at_cfssl)" "$before"
t_ok "  consistent: no half-made card" consistent

# ---- a subject cfssl would cut: issued, found short, revoked, refused
sed -e 's/^name = cf$/name = uid/' -e 's|^subject = /CN=${name}/O=Example$|subject = /CN=${name}/O=Example/UID=${uid}|' \
    "$WORK/cf.ini" > "$WORK/uid.ini"
t_ok "a profile whose subject has a UID" T profile import "$WORK/uid.ini"
t_ok "  a card requested" request jdoe --profile uid
t_ok "  its collect fails" exit_is 1 T card collect --code "$(code)" --pin-file "$WORK/pin"
cut=$(sed -n 's/.*issued certificate \([0-9A-F]*\), but.*/\1/p' "$WORK/last.out")
t_ok "  saying the subject is not the profile's" grep -q "its subject is not the profile's" "$WORK/last.out"
t_is "  the certificate it cut is revoked at cfssl" "$(cfssl_status "$cut")" "revoked|5"
t_ok "  consistent" consistent
t_ok "the request cancelled" T card cancel "$(cat "$WORK/card-id")"

# ---- no profile that gives what the key needs
t_ok "reconnected with only cfssl's server profile" connect --profile server
t_ok "  a card requested" request jdoe --profile cf
t_ok "  its collect fails" exit_is 1 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  naming what no profile gives" grep -q "none of cfssl's profiles this database uses gives digital signature, client auth" "$WORK/last.out"
t_ok "  consistent" consistent
t_ok "reconnected with card and short" connect --profile card,short

# ---- faults: a wrong auth key, the CA down, a kill after enrolment
(umask 077 && openssl rand -hex 32 > "$WORK/wrong.key")
t_ok "reconnected with a wrong auth key" \
    T ca connect cfssl --url "$CFSSL_URL" --auth-key-file "$WORK/wrong.key" --crl-url "$CFSSL_CRL_URL" --profile card,short
before=$(certs_at_cfssl)
t_ok "  the pending card's collect is refused by cfssl" exit_is 1 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  saying cfssl refused" grep -q "cfssl refused (authsign" "$WORK/last.out"
t_is "  nothing issued" "$(certs_at_cfssl)" "$before"
t_ok "  consistent" consistent
t_ok "reconnected with the right key" connect --profile card,short
t_ok "cfssl stopped" cfssl_stop
t_ok "  the collect fails" exit_is 1 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  saying cfssl cannot be reached" grep -q "cfssl: http://127.0.0.1:$CFSSL_PORT/api/v1/cfssl/.*connect" "$WORK/last.out"
t_is "  no request left to look up at cfssl: it never reached it, nor any refused one" \
    "$(sql "SELECT count(*) FROM audit WHERE action = 'cert.unrecorded'")|$(sql "SELECT count(*) FROM enrolments")" "0|0"
t_ok "  consistent" consistent
t_ok "cfssl started again" cfssl_serve
t_ok "  the collect now issues the card" collect
C=$(cat "$WORK/card-id")
t_ok "  consistent" consistent
t_ok "a card requested" request jdoe --profile cf
t_ok "  collect killed once cfssl's first certificate is recorded (exit 137)" \
    exit_is 137 env TESSERA_TEST_KILL_AT=recorded:auth $TOOL card collect --code "$(code)" --pin-file "$WORK/pin"
killed=$(cat "$WORK/card-id")
cert_of "$killed" auth
t_ok "  the next collect undoes it and issues the card" collect
t_is "  the certificate of the killed run revoked at cfssl" "$(cfssl_status "$(serial_of auth)")" "revoked|5"
t_ok "  consistent" consistent
unknown_to_db() { echo $(( $(certs_at_cfssl) - $(sql "SELECT count(*) FROM certificates") )); }
unknown0=$(unknown_to_db)
t_ok "a card requested" request jdoe --profile cf
t_ok "  collect killed once cfssl signed the first certificate, before it is recorded (exit 137)" \
    exit_is 137 env TESSERA_TEST_KILL_AT=enrolled:auth $TOOL card collect --code "$(code)" --pin-file "$WORK/pin"
t_is "  (cfssl has one certificate more that the database does not)" "$(unknown_to_db)" $((unknown0 + 1))
t_ok "  the next collect undoes it and issues the card" collect
t_ok "  warning that cfssl cannot be searched for what the killed run was given" \
    grep -q "this CA cannot be searched by key" "$WORK/last.out"
t_is "  the trail names the key to look for there" \
    "$(sql "SELECT count(*) FROM audit WHERE action = 'cert.unrecorded' AND result = 'unchecked'")" 1
# The hash in the trail finds, in cfssl's own database, the one certificate
# the killed collect was issued and the database never recorded.
unrecorded_at_cfssl() {
    /usr/bin/python3 -c 'import hashlib, re, sqlite3, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization as s
db = sqlite3.connect(sys.argv[1])
detail = db.execute("SELECT detail FROM audit WHERE action = \"cert.unrecorded\"").fetchone()[0]
want = re.search("sha256:([0-9a-f]{64})", detail).group(1)
known = {int(n, 16) for (n,) in db.execute("SELECT serial FROM certificates")}
for (pem,) in sqlite3.connect(sys.argv[2]).execute("SELECT pem FROM certificates"):
    c = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    spki = c.public_key().public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)
    if hashlib.sha256(spki).hexdigest() == want:
        print("recorded" if c.serial_number in known else "unrecorded")' "$TESSERA_CMS_DB" "$CF/certs.db"
}
t_is "  at cfssl: one certificate for that key, unrecorded" "$(unrecorded_at_cfssl)" unrecorded
t_is "  no enrolment left open" "$(sql "SELECT count(*) FROM enrolments")" 0
t_ok "  consistent" consistent

# ---- revocation and the CRL
t_ok "suspending a card: refused, cfssl cannot lift a hold (exit 9)" exit_is 9 T card suspend "$A"
t_ok "  saying so" grep -q "cannot lift a hold" "$WORK/last.out"
t_ok "replacing it as forgotten (a suspension): refused (exit 9)" exit_is 9 T card replace "$A" --reason forgotten
t_is "  the card still active" "$(sql "SELECT state FROM cards WHERE id = $A")" active
cert_of "$A" auth && cert_of "$A" mail
t_is "  its certificates good at cfssl" "$(cfssl_status "$(serial_of auth)")" "good|0"
t_ok "card A lost: replaced" T card replace "$A" --reason lost
t_is "  its certificates revoked at cfssl for key compromise" \
    "$(cfssl_status "$(serial_of auth)") $(cfssl_status "$(serial_of mail)")" "revoked|1 revoked|1"
cert_of "$B" auth
t_ok "card B cancelled" T card cancel "$B"
t_is "  revoked at cfssl, cessation of operation" "$(cfssl_status "$(serial_of auth)")" "revoked|5"
t_ok "the CRL fetched from where it is published, verified" T ca crl --out "$WORK/crl.pem"
t_ok "  openssl agrees it is the CA's" openssl crl -in "$WORK/crl.pem" -CAfile "$CF/ca.pem" -noout
t_ok "  card B's certificate revoked by it" \
    sh -c "openssl verify -crl_check -CAfile '$CF/ca.pem' -CRLfile '$WORK/crl.pem' '$WORK/auth.pem' 2>&1 | grep -q 'certificate revoked'"
cert_of "$C" auth
t_ok "  card C's valid" openssl verify -crl_check -CAfile "$CF/ca.pem" -CRLfile "$WORK/crl.pem" "$WORK/auth.pem"
touch "$CF/crl.stale"
t_ok "an old CRL replayed (signed by the CA, past its next update): refused (exit 8)" exit_is 8 T ca crl --out "$WORK/old.pem"
t_ok "  saying it is not current" grep -q "is not current" "$WORK/last.out"
rm -f "$CF/crl.stale"

# ---- renewal on the device: cfssl signs the new certificates, the old ones superseded there
cert_of "$C" mail && cp "$WORK/auth.pem" "$WORK/old-auth.pem" && cp "$WORK/mail.pem" "$WORK/old-mail.pem"
near_end() {   # near_end CARD-ID: its certificates end in 5 days, as the database says; the scan run
    sql "UPDATE certificates SET not_after = strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+5 days')
         WHERE card_id = $1 AND state = 'active'" && $TOOL scan > /dev/null
}
t_ok "card C's certificates near their end: the scan opens a renewal" near_end "$C"
t_ok "  the holder renews on the device" T card renew "$C" --pin-file "$WORK/pin"
cert_of "$C" auth && cert_of "$C" mail
t_ok "  the new certificates are cfssl's" \
    sh -c "openssl verify -CAfile '$CF/ca.pem' '$WORK/auth.pem' '$WORK/mail.pem' && ! cmp -s '$WORK/auth.pem' '$WORK/old-auth.pem'"
t_is "  good at cfssl" "$(cfssl_status "$(serial_of auth)") $(cfssl_status "$(serial_of mail)")" "good|0 good|0"
t_is "  the old ones superseded at cfssl" \
    "$(cfssl_status "$(serial_of old-auth)") $(cfssl_status "$(serial_of old-mail)")" "revoked|4 revoked|4"
t_ok "  consistent" consistent

# ---- a server that signs with another CA
t_ok "cfssl stopped" cfssl_stop
mkdir -p "$WORK/rogue" && cp "$CF/csr.json" "$WORK/rogue/"
(cd "$WORK/rogue" && cfssl gencert -initca csr.json 2>/dev/null | cfssljson -bare ca)
t_ok "cfssl started with another CA of the same name" cfssl_serve "$WORK/rogue"
t_ok "  reconnecting to it: refused, not the CA connected to (exit 8)" exit_is 8 connect --profile card,short
t_ok "  naming its fingerprint" grep -q "is not the one this database was connected to" "$WORK/last.out"
t_ok "a card requested" request jdoe --profile cf
t_ok "  its collect is refused (exit 1)" exit_is 1 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  the certificate is not signed by the connected CA" grep -q "not signed by the CA this database was connected to" "$WORK/last.out"
t_ok "  consistent" consistent
t_ok "cfssl stopped" cfssl_stop
t_ok "cfssl's own CA back" cfssl_serve
t_ok "  the collect issues the card" collect
t_ok "  consistent" consistent

# ---- https, and mutual TLS: the server's certificate checked, the station's shown
t_ok "a TLS CA, cfssl's server certificate, an issuing station's client certificate" tls_make
t_ok "cfssl stopped" cfssl_stop
t_ok "cfssl started on https, client certificates required" cfssl_serve
TLS=$WORK/tls
via_tls() { T ca connect cfssl --url "https://127.0.0.1:$CFSSL_PORT" --auth-key-file "$CF/auth.key" \
                --crl-url "$CFSSL_CRL_URL" --profile card,short "$@"; }
t_ok "connecting without trusting the server's CA: refused" \
    exit_is 1 via_tls --tls-client-cert "$TLS/client.pem" --tls-client-key "$TLS/client.key"
t_ok "  saying the server's certificate does not verify" grep -qi "certificate" "$WORK/last.out"
t_ok "connecting without a client certificate: refused" exit_is 1 via_tls --tls-ca-file "$TLS/ca.pem"
t_ok "  the connection refused by the server" grep -q "cfssl: https://127.0.0.1:$CFSSL_PORT/api/v1/cfssl/info: " "$WORK/last.out"
t_ok "a client certificate without its key: a usage error" \
    exit_is 2 via_tls --tls-ca-file "$TLS/ca.pem" --tls-client-cert "$TLS/client.pem"
cp "$TLS/client.key" "$WORK/open.key" && chmod 644 "$WORK/open.key"
t_ok "a client key others may read: refused (exit 2)" \
    exit_is 2 via_tls --tls-ca-file "$TLS/ca.pem" --tls-client-cert "$TLS/client.pem" --tls-client-key "$WORK/open.key"
t_ok "connected over mutual TLS" \
    via_tls --tls-ca-file "$TLS/ca.pem" --tls-client-cert "$TLS/client.pem" --tls-client-key "$TLS/client.key"
t_ok "  the same CA as before" grep -q "$fp" "$WORK/last.out"
t_ok "  a card collected through it" issue_to cf
D=$(cat "$WORK/card-id")
t_ok "  consistent" consistent
cert_of "$D" auth
t_ok "  cancelled" T card cancel "$D"
t_is "  revoked at cfssl through it" "$(cfssl_status "$(serial_of auth)")" "revoked|5"

# ---- the trail
t_ok "the trail verifies" T audit verify
t_ok "  it has each connection" sh -c "[ \$($TOOL audit --action ca.connect | grep -c 'ca.connect') -ge 6 ]"
t_done
