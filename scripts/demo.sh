#!/bin/bash
# Tessera end to end on a TPM virtual smart card:
#   build and install Tessera, start a software TPM (or use the real one with
#   --real-tpm), create a virtual card with a PIN, generate a key inside the
#   TPM, make a certificate for it with OpenSSL through the card, store the
#   certificate on the card, list the card with pkcs11-tool, sign a file and
#   verify the signature with OpenSSL, then log in to a TLS server with the
#   card's key. Everything it started is stopped at the end.
#
#   scripts/demo.sh [--real-tpm]        (as root on a fresh Debian 12 machine)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
real_tpm=no
[ "${1:-}" = "--real-tpm" ] && real_tpm=yes

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '  $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/    /'; }

say "1. Installing what Tessera needs (Debian packages) and building it"
"$top/scripts/deps.sh" demo
cd "$top"
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p _build/demo
(cd _build/demo && "$top/configure" --prefix="$top/_install" >/dev/null && make -j"$(nproc)" >/dev/null && make install >/dev/null)
export PATH="$top/_install/bin:$PATH"
MOD="$top/_install/lib/pkcs11/tessera-pkcs11.so"
echo "  module: $MOD"
echo "  tool:   $(command -v tessera)"

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-demo.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    if [ "$real_tpm" = no ]; then swtpm_stop "$work"; fi
    rm -rf "$work"
}
trap cleanup EXIT
. "$top/tests/lib/swtpm.sh"

if [ "$real_tpm" = yes ]; then
    say "2. Using this machine's TPM (${TESSERA_TCTI:-device:/dev/tpmrm0})"
    export TESSERA_HOME="$work/home"
else
    say "2. Starting a software TPM (swtpm) for this demo"
    swtpm_start "$work"
    echo "  TESSERA_TCTI=$TESSERA_TCTI"
fi
echo "  TESSERA_HOME=$TESSERA_HOME (the card store)"
run tessera tpm status

say "3. Creating a TPM virtual smart card: label 'Demo Card', PIN 24680135, admin (SO) PIN 12345678"
run tessera vsc create --label "Demo Card" --so-pin 12345678 --pin 24680135 --pin-min 8 --pin-digits mandatory

p11() { pkcs11-tool --module "$MOD" --token-label "Demo Card" "$@"; }
say "4. Generating an RSA-2048 key inside the TPM, through the PKCS#11 module"
run p11 --login --pin 24680135 --keypairgen --key-type rsa:2048 --id 01 --label "Demo key"

say "5. Making a self-signed certificate with OpenSSL, signed by the key on the card"
key_uri="pkcs11:token=Demo%20Card;object=Demo%20key;type=private;pin-value=24680135"
run env OPENSSL_CONF="$top/_install/share/doc/tessera/openssl-pkcs11.cnf" openssl req -new -x509 -engine pkcs11 -keyform engine -key "$key_uri" \
    -subj "/CN=Demo User/O=Tessera" -days 365 -sha256 -out "$work/cert.pem"
run openssl x509 -in "$work/cert.pem" -noout -subject -dates

say "6. Storing the certificate on the card, next to its key"
openssl x509 -in "$work/cert.pem" -outform DER -out "$work/cert.der"
run p11 --login --pin 24680135 --write-object "$work/cert.der" --type cert --id 01 --label "Demo cert"

say "7. What the card holds now (pkcs11-tool --list-objects)"
run p11 --login --pin 24680135 --list-objects

say "8. Signing a file with the card and verifying the signature with OpenSSL"
echo "Tessera demo: this file was signed by a key that never left the TPM." > "$work/document.txt"
run p11 --login --pin 24680135 --sign --mechanism SHA256-RSA-PKCS --id 01 \
    --input-file "$work/document.txt" --output-file "$work/document.sig"
openssl x509 -in "$work/cert.pem" -noout -pubkey > "$work/pub.pem"
run openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/document.sig" "$work/document.txt"

say "9. Logging in to a TLS server that requires a client certificate, with the card's key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/server.key" \
    -out "$work/server.pem" -subj "/CN=localhost" -days 1 2>/dev/null
port=$(( 20000 + RANDOM % 20000 ))
openssl s_server -accept "127.0.0.1:$port" -cert "$work/server.pem" -key "$work/server.key" \
    -Verify 1 -verify_return_error -CAfile "$work/cert.pem" -naccept 1 -www > "$work/server.log" 2>&1 &
server_pid=$!
# s_server says ACCEPT once it listens (a probe connection would use up its one accept)
for _ in $(seq 50); do grep -q ACCEPT "$work/server.log" 2>/dev/null && break; sleep 0.1; done
printf 'GET / HTTP/1.0\r\n\r\n' | OPENSSL_CONF="$top/_install/share/doc/tessera/openssl-pkcs11.cnf" openssl s_client -engine pkcs11 -keyform engine \
    -key "$key_uri" -cert "$work/cert.pem" -connect "127.0.0.1:$port" -servername localhost -quiet \
    > "$work/client.log" 2>&1 || true
wait "$server_pid" 2>/dev/null || true
server_pid=
if grep -q "Demo User" "$work/client.log"; then
    echo "    the server accepted the card's certificate:"
    # (the -www page ends with the client certificate the server checked)
    sed -n '/^Client certificate/,$p' "$work/client.log" | grep -m1 "Subject:" | sed "s/^ */      /" || true
    tls=ok
else
    echo "    the TLS handshake did not complete:"; sed 's/^/      /' "$work/client.log" | tail -5
    tls=failed
fi

say "10. Card management: an issuer requests a card for Jane Doe; she collects it with a one-time code"
export TESSERA_CMS_DB="$TESSERA_HOME/cms.db"
run tessera db init
run tessera operator roles "$(id -un)" --roles administrator,issuer,auditor
run tessera ca init --subject "/CN=Demo CA/O=Tessera"
printf 'uid,name,email\njdoe,Jane Doe,jane@example.org\n' > "$work/holders.csv"
run tessera holder import "$work/holders.csv"
openssl rand -hex 32 > "$work/master.key"
chmod 600 "$work/master.key"
cat > "$work/profile.ini" <<EOF
[profile]
name = demo
card-types = tpm
[pin]
min-length = 8
digits = mandatory
tries = 5
[admin-key]
master-file = $work/master.key
[key authentication]
type = p256
usage = sign
certificate = client-auth
subject = /CN=\${name}/O=Tessera/UID=\${uid}
lifetime-days = 365
EOF
run tessera profile import "$work/profile.ini"
code=$(tessera --json card request --holder jdoe --profile demo | sed -n 's/.*"code":"\([^"]*\)".*/\1/p')
echo "  collection code for Jane: $code"
echo 13572468 > "$work/jane.pin"
run tessera card collect --code "$code" --pin-file "$work/jane.pin"
run tessera card list
say "11. The helpdesk suspends Jane's card (her certificate on hold in the CA's CRL), then enables it"
card=$(tessera --json card list | sed -n 's/.*"id":\([0-9]*\).*/\1/p' | head -n1)
run tessera card suspend "$card" --note "reported missing"
tessera ca crl --out "$work/crl.pem" && openssl crl -in "$work/crl.pem" -noout -text | grep -A1 "CRL Reason Code" | sed 's/^/  /'
run tessera card enable "$card" --note "found in her bag"

say "12. Jane goes on leave: the agent on her machine locks her PIN; the helpdesk opens it for 8 hours"
serial=$(tessera --json card show "$card" | grep -o '"serial":"[^"]*"' | head -n1 | cut -d'"' -f4)
run tessera card lock "$card" --at "$(date -u -d '1 minute ago' '+%Y-%m-%d %H:%M')" --tz UTC --note "on leave"
run tessera agent
tessera card list | grep -q " locked " && locked=yes || locked=no
echo "  (her card is locked: $locked)"
chal=$(tessera --json unblock challenge --serial "$serial" | sed -n 's/.*"challenge":"\([^"]*\)".*/\1/p')
echo "  Jane reads her challenge to the helpdesk: $chal"
resp=$(tessera --json card unlock "$card" --challenge "$chal" --hours 8 --note "needs a file while on leave" |
    sed -n 's/.*"response":"\([^"]*\)".*/\1/p')
echo "  the helpdesk reads back the response: $resp"
echo 24681357 > "$work/jane2.pin"
run tessera unblock complete --serial "$serial" --response "$resp" --pin-file "$work/jane2.pin"
run tessera job list --state pending

say "13. Eleven months on, her certificate nears its end: the renewal scan (run here as at that date) opens a renewal; she renews on her machine with her PIN"
run tessera scan --at "$(date -u -d '+340 days' '+%Y-%m-%d %H:%M')"
tessera --json card renew "$card" --pin-file "$work/jane2.pin" > "$work/renew.json" 2>&1 || true
sed 's/^/    /' "$work/renew.json"
grep -q '"renewed":1' "$work/renew.json" && renewed=yes || renewed=no
run tessera audit --card "$serial" --last 4
run tessera audit verify
[ "$locked" = yes ] && [ "$renewed" = yes ] && tessera card list | grep -q " active " &&
    tessera job list --state pending | grep -q " lock " && cms=ok || cms=failed

say "14. Her mail encryption key is escrowed: made off the card, archived to an escrow key, then recovered by the key-recovery officer as a PKCS#12 under a one-time password"
echo "escrow passphrase for the demo" > "$work/escrow.pass"
chmod 600 "$work/escrow.pass"
run tessera escrow create demo-kra --key-out "$work/escrow-key.pem" --pass-file "$work/escrow.pass"
sed -e 's/^name = demo$/name = mail/' -e '/^\[key authentication\]/,$d' "$work/profile.ini" > "$work/mail.ini"
cat >> "$work/mail.ini" <<EOF
[key encryption]
type = rsa2048
usage = decrypt
certificate = email
subject = /CN=\${name}/emailAddress=\${email}
lifetime-days = 730
escrow = yes
EOF
run tessera profile import "$work/mail.ini"
code=$(tessera --json card request --holder jdoe --profile mail | sed -n 's/.*"code":"\([^"]*\)".*/\1/p')
run tessera card collect --code "$code" --pin-file "$work/jane.pin"
run tessera escrow archives --holder jdoe
archive=$(tessera --json escrow archives --holder jdoe | grep -o '"id":[0-9]*' | head -n1 | cut -d: -f2)
echo "  (recovering is the key-recovery role's alone: the demo's operator takes it, which the trail records)"
run tessera operator roles "$(id -un)" --roles administrator,issuer,auditor,key-recovery
tessera --json key recover --archive "$archive" --p12 "$work/jane-mail.p12" --escrow-key "$work/escrow-key.pem" \
    --escrow-pass-file "$work/escrow.pass" > "$work/recover.json" 2>&1 || true
sed 's/^/    /' "$work/recover.json"
otp=$(sed -n 's/.*"password":"\([^"]*\)".*/\1/p' "$work/recover.json")
if [ -n "$otp" ] && openssl pkcs12 -in "$work/jane-mail.p12" -passin "pass:$otp" -nocerts -nodes 2>/dev/null |
    grep -q "PRIVATE KEY"; then
    echo "  the PKCS#12 opens with the one-time password: escrow ok"
    escrow=ok
else
    escrow=failed
fi
run tessera audit --action key.recover

say "What happened"
cat <<TXT
  - A software TPM stood in for a TPM chip; Tessera created a virtual smart card in it, protected
    by a PIN that the TPM itself checks (5 wrong PINs lock the card; the TPM's own lockout sits behind).
  - The RSA key was generated inside the TPM and never left it: the card store under
    TESSERA_HOME holds only TPM-wrapped blobs and public data.
  - OpenSSL used the card through Tessera's PKCS#11 module to sign a certificate; pkcs11-tool
    stored it on the card, listed the card and signed a file; OpenSSL verified the signature.
  - A TLS server that demands a client certificate let the card in: handshake $tls.
  - The card-management database recorded Jane Doe, a credential profile and a request; her
    collection code made a second virtual card with her PIN, an admin key diversified from the
    profile's master key, a key generated on the card and a certificate from the embedded CA,
    each step in a hash-chained audit trail; suspending it put the certificate on hold in the
    CA's CRL and enabling it lifted the hold; a lock asked for a time in a named timezone was done
    by the agent on the device, and the helpdesk's challenge/response opened the card for 8 hours,
    after which it is locked again; the renewal scan found her certificate in its window and she
    renewed it on her machine with her PIN alone (a new key on the card, the old certificate
    superseded): card management $cms.
  - A second card's encryption key was made off the card, sealed to an escrow key (CMS enveloped
    data) before it went onto the card, and recovered by the key-recovery officer as a PKCS#12
    under a one-time password printed once, the recovery in the trail: escrow $escrow.
  Everything this demo started is now stopped and its files removed.
TXT
[ "$tls" = ok ] && [ "$cms" = ok ] && [ "$escrow" = ok ]
