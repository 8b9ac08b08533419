# What the card-management tests share: the tool, exit codes, the database
# read by SQL, a request's code, and the check that the TPM and the
# database agree. Sourced after common.sh.
export TESSERA_CMS_DB="$TESSERA_HOME/cms.db"
T() { $TOOL "$@"; }
exit_is() { # exit_is CODE command...: the command exits with CODE
    local want=$1; shift
    "$@"; local got=$?
    [ "$got" = "$want" ] || { echo "exit $got, want $want"; return 1; }
}
sql() { /usr/bin/python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for r in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in r))
c.commit()' "$TESSERA_CMS_DB" "$1"; }

request() {   # request HOLDER [options]: the code in $WORK/code, the card's id in $WORK/card-id
    T --json card request --holder "$@" > "$WORK/req" || return 1
    field code < "$WORK/req" > "$WORK/code"
    sed -n 's/.*"card":\([0-9]*\).*/\1/p' "$WORK/req" > "$WORK/card-id"
    [ -s "$WORK/code" ]
}
code() { cat "$WORK/code"; }
collect() {   # collect: the requested card collected with $WORK/pin; its serial in $WORK/serial
    T --json card collect --code "$(code)" --pin-file "$WORK/pin" > "$WORK/collected" || return 1
    field card < "$WORK/collected" > "$WORK/serial"
    [ -s "$WORK/serial" ]
}

# A database with root as administrator, issuer and auditor, the embedded
# CA (its certificate in $WORK/ca.pem), holder jdoe and an admin-key master
# in $WORK/master.key.
cms_start() {
    $TOOL db init && $TOOL operator roles root --roles administrator,issuer,auditor &&
        $TOOL ca init --subject "/CN=Tessera Test CA/O=Example" && $TOOL ca certificate > "$WORK/ca.pem" || return 1
    printf 'uid,name,email\njdoe,Jane Doe,jane@example.org\n' > "$WORK/holders.csv"
    $TOOL holder import "$WORK/holders.csv" || return 1
    openssl rand -hex 32 > "$WORK/master.key" && chmod 600 "$WORK/master.key"
}
# Profile vsc: TPM cards, a PIN of 6 to 8 with 4 tries, an AES-128 admin key
# from the master, one P-256 key with a client certificate of LIFETIME days;
# any further lines are appended (a [lifecycle] section).
cms_profile() {   # cms_profile LIFETIME-DAYS [LINE...]
    local days=$1; shift
    {
        printf '[profile]\nname = vsc\ncard-types = tpm\n[pin]\nmin-length = 6\nmax-length = 8\ntries = 4\n'
        printf '[admin-key]\nmaster-file = %s\nalg = aes128\n' "$WORK/master.key"
        printf '[key auth]\ntype = p256\nusage = sign\ncertificate = client-auth\n'
        printf 'subject = /CN=${name}/UID=${uid}\nlifetime-days = %s\n' "$days"
        [ $# -eq 0 ] || printf '%s\n' "$@"
    } > "$WORK/vsc.ini"
    $TOOL profile import "$WORK/vsc.ini"
}

# The embedded CA's certificates that the database never recorded and that
# are not revoked: a collect or renewal cut short between the CA's answer
# and its record leaves one until the undo settles it (enrolment.h). Prints
# their count; escrow keys' certificates are the database's own and count
# as recorded.
ca_unrecorded() {
    /usr/bin/python3 -c 'import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
known = {int(s, 16) for (s,) in db.execute("SELECT serial FROM certificates")}
from cryptography import x509
for (der,) in db.execute("SELECT cert FROM escrow_keys"):
    known.add(x509.load_der_x509_certificate(der).serial_number)
reg = sqlite3.connect(os.path.join(os.path.dirname(sys.argv[1]), "ca", "ca.db"))
print(sum(1 for (s,) in reg.execute("SELECT serial FROM issued WHERE revoked IS NULL") if int(s, 16) not in known))' \
        "$TESSERA_CMS_DB"
}
# Serials the trail says were revoked as issued but never recorded.
unrecorded_revoked() {
    sql "SELECT detail FROM audit WHERE action = 'cert.revoke' AND detail LIKE '%never recorded%'" |
        sed -n 's/^key [^:]*: certificate \([0-9A-F]*\) from .*/\1/p'
}

# Every card on the TPM is one the database knows (in a state that has a
# card), and every active or suspended card row has its card on the TPM.
consistent() {
    $TOOL --json vsc list | tr '{' '\n' | sed -n 's/.*"serial":"\([^"]*\)".*/\1/p' | sort > "$WORK/on-tpm"
    sql "SELECT serial FROM cards WHERE serial IS NOT NULL AND state NOT IN ('erased', 'cancelled')" | sort > "$WORK/in-db"
    sql "SELECT serial FROM cards WHERE state IN ('active', 'suspended')" | sort > "$WORK/active"
    comm -23 "$WORK/on-tpm" "$WORK/in-db" > "$WORK/orphans"
    comm -13 "$WORK/on-tpm" "$WORK/active" > "$WORK/missing"
    [ ! -s "$WORK/orphans" ] || { echo "cards the database does not know: $(cat "$WORK/orphans")"; return 1; }
    [ ! -s "$WORK/missing" ] || { echo "active cards not on the TPM: $(cat "$WORK/missing")"; return 1; }
    /usr/bin/python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
assert c.execute("PRAGMA foreign_key_check").fetchall() == []' "$TESSERA_CMS_DB"
}

# Where renewal notices go in the tests: a real SMTP server (aiosmtpd, its
# messages in the Maildir $WORK/mail) that msmtp, a sendmail-compatible
# command, delivers to; and a webhook receiver (tests/lib/webhook.py: each
# POST a line of $WORK/webhook.log; `echo N > $WORK/webhook.fail` makes the
# next N answers 503; given a secret file, it checks each POST's signature).
# Both stopped by the harness (NAME.proc.pid).
smtp_start() {
    SMTP_PORT=$(free_port)
    /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$WORK/mail" \
        > "$WORK/smtp.log" 2>&1 </dev/null &
    echo $! > "$WORK/smtp.proc.pid"
    port_wait "$SMTP_PORT"
}
mail_count() { find "$WORK/mail/new" -type f 2>/dev/null | wc -l; }
webhook_start() {   # webhook_start [NAME [SECRET-FILE]]: $WORK/NAME.log ...; its port in WEBHOOK_PORT
    local i name=${1:-webhook}
    /usr/bin/python3 "$TESSERA_SRCDIR/tests/lib/webhook.py" "$WORK/$name.log" "$WORK/$name.port" \
        "$WORK/$name.fail" ${2:+"$2"} > "$WORK/$name.err" 2>&1 </dev/null &
    echo $! > "$WORK/$name.proc.pid"
    for i in $(seq 100); do
        [ -s "$WORK/$name.port" ] && { WEBHOOK_PORT=$(cat "$WORK/$name.port"); return 0; }
        sleep 0.05
    done
    return 1
}
webhook_count() { [ -f "$WORK/${1:-webhook}.log" ] && wc -l < "$WORK/${1:-webhook}.log" || echo 0; }
