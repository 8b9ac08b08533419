# A card's life after it is collected, through the guards of each change:
# suspend and enable (certificates held and released at the CA, seen in
# its CRL by openssl), a forgotten card (the original suspended, a
# temporary card that ends with it, ended when the original comes back),
# lost (revoked for key compromise, a replacement), cancel (a request's
# code void), erase and reprovision on the device (the card erased by its
# admin key), a new collection code; and changes killed (SIGKILL) after
# each step, finished by the next change of the card or `job resume`.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"

t_ok "a database, root as administrator and issuer, the CA, a holder" cms_start
t_ok "olga, helpdesk" T operator add olga --roles helpdesk
profile() { cms_profile "$1" "[lifecycle]" "temporary-card-days = 5"; }
t_ok "a profile: one key, temporary cards for 5 days" profile 365
echo 123456 > "$WORK/pin"

issue() {   # issue: a card requested and collected; its id in $WORK/card-id, serial in $WORK/serial
    request jdoe --profile vsc "$@" || return 1
    collect
}
state() { sql "SELECT state FROM cards WHERE id = $1"; }
cert_states() { sql "SELECT group_concat(state) FROM certificates WHERE card_id = $1"; }
cert_serial() { sql "SELECT serial FROM certificates WHERE card_id = $1 ORDER BY id DESC LIMIT 1"; }
crl_reason() {   # crl_reason SERIAL: its reason in the CA's CRL, "" when not listed
    T ca crl --out "$WORK/crl.pem" >/dev/null || return 1
    openssl crl -in "$WORK/crl.pem" -noout -text |
        awk -v s="$1" '/Serial Number:/ { on = ($3 == s) } on && /CRL Reason Code/ { getline; gsub(/^ +/, ""); print; exit }'
}
on_tpm() { $TOOL --json vsc list | grep -q "\"serial\":\"$1\""; }
cert_pem() {   # cert_pem CARD-ID FILE: its latest certificate from the database
    /usr/bin/python3 -c 'import sqlite3, sys, ssl
c = sqlite3.connect(sys.argv[1])
der = c.execute("SELECT der FROM certificates WHERE card_id = ? ORDER BY id DESC LIMIT 1", (int(sys.argv[2]),)).fetchone()[0]
open(sys.argv[3], "w").write(ssl.DER_cert_to_PEM_cert(der))' "$TESSERA_CMS_DB" "$1" "$2"
}
verify() {   # verify CARD-ID: openssl's word on its certificate, the CA's CRL checked
    cert_pem "$1" "$WORK/c.pem" && T ca crl --out "$WORK/crl.pem" >/dev/null &&
        openssl verify -crl_check -CAfile "$WORK/ca.pem" -CRLfile "$WORK/crl.pem" "$WORK/c.pem" 2>&1
}
valid() { verify "$1" | grep -q ": OK$"; }
revoked() { verify "$1" | grep -q "certificate revoked"; }

t_ok "card A issued to jdoe" issue
A=$(cat "$WORK/card-id"); SA=$(cat "$WORK/serial")
t_ok "  its certificate verifies, the CRL checked" valid "$A"

# ---- guards and roles
t_ok "enable an active card: exit 9" exit_is 9 T card enable "$A"
t_ok "  the guard says why" grep -q "is active: enable applies to a card that is suspended" "$WORK/last.out"
t_ok "olga (helpdesk) may not cancel it: exit 7" exit_is 7 T card cancel "$A" --as olga
t_ok "replace with no reason: a usage error" exit_is 2 T card replace "$A"
t_ok "replace for a reason there is not: a usage error" exit_is 2 T card replace "$A" --reason bored
t_ok "an unknown card: exit 5" exit_is 5 T card suspend 9999
t_is "  nothing changed" "$(state "$A")|$(cert_states "$A")" "active|active"

# ---- suspend and enable
t_ok "olga suspends card A by its serial" T card suspend "$SA" --as olga --note "holder on leave"
t_is "  suspended, its certificate too" "$(state "$A")|$(cert_states "$A")" "suspended|suspended"
t_is "  the CRL holds it" "$(crl_reason "$(cert_serial "$A")")" "Certificate Hold"
t_ok "  openssl refuses it now: revoked" revoked "$A"
t_ok "  the card itself is untouched" on_tpm "$SA"
t_ok "suspend again: exit 9" exit_is 9 T card suspend "$A"
t_ok "olga enables it" T card enable "$A" --as olga
t_is "  active, its certificate too" "$(state "$A")|$(cert_states "$A")" "active|active"
t_is "  no longer in the CRL" "$(crl_reason "$(cert_serial "$A")")" ""
t_ok "  openssl accepts it again" valid "$A"

# ---- forgotten: a temporary card
t_ok "card A forgotten at home: replaced" T --json card replace "$A" --reason forgotten --note "left at home"
field code < "$WORK/last.out" > "$WORK/code"
B=$(num replacement < "$WORK/last.out")
t_is "  A suspended, held at the CA" "$(state "$A")|$(crl_reason "$(cert_serial "$A")")" "suspended|Certificate Hold"
t_is "  B is a temporary card replacing A" "$(sql "SELECT state, temporary, replaces_id FROM cards WHERE id = $B")" "requested|1|$A"
t_ok "a second temporary card: exit 9" exit_is 9 T card replace "$A" --reason forgotten
t_ok "  the guard says why" grep -q "is suspended: replacing a card as forgotten applies to a card that is active or locked" "$WORK/last.out"
t_ok "jdoe collects the temporary card" collect
SB=$(cat "$WORK/serial")
cert_pem "$B" "$WORK/b.pem"
days=$(/usr/bin/python3 -c 'import ssl, sys, time
print(int((ssl.cert_time_to_seconds(sys.argv[1]) - time.time()) / 86400))' \
    "$(openssl x509 -in "$WORK/b.pem" -noout -enddate | cut -d= -f2)")
t_ok "  its certificate ends with it (in $days days, not 365)" test "$days" -le 5
t_ok "  and verifies" valid "$B"
t_ok "A found again: enabled" T card enable "$A"
t_is "  A active, released at the CA" "$(state "$A")|$(crl_reason "$(cert_serial "$A")")" "active|"
t_is "  the temporary card revoked" "$(state "$B")|$(cert_states "$B")" "revoked|revoked"
t_is "  its certificate ended at the CA" "$(crl_reason "$(cert_serial "$B")")" "Cessation Of Operation"
t_ok "  still on the TPM, for erasing" on_tpm "$SB"
t_ok "a temporary card is not replaced as forgotten: exit 9" exit_is 9 T card replace "$B" --reason forgotten

# ---- erase
t_ok "olga may not erase: exit 7" exit_is 7 T card erase "$B" --as olga
t_ok "the temporary card erased, on this machine" T card erase "$B"
t_ok "  gone from the TPM" sh -c "! $TOOL --json vsc list | grep -q '\"serial\":\"$SB\"'"
t_is "  erased" "$(state "$B")" erased
t_ok "  the trail has it" sh -c "$TOOL audit --card $SB | grep -q 'card.erase.*erased'"
t_ok "erased twice: exit 9" exit_is 9 T card erase "$B"
t_ok "database and TPM agree" consistent

# ---- lost, and a replacement cancelled
t_ok "card A lost: replaced" T --json card replace "$A" --reason lost
field code < "$WORK/last.out" > "$WORK/code"
C=$(num replacement < "$WORK/last.out")
t_is "  A revoked for key compromise" "$(state "$A")|$(crl_reason "$(cert_serial "$A")")" "revoked|Key Compromise"
t_ok "  enable it now: exit 9" exit_is 9 T card enable "$A"
t_is "  C replaces it, not temporary" "$(sql "SELECT state, temporary, replaces_id FROM cards WHERE id = $C")" "requested|0|$A"
t_ok "the replacement cancelled before it is collected" T card cancel "$C"
t_is "  cancelled" "$(state "$C")" cancelled
t_ok "  its code is void (exit 7)" exit_is 7 T card collect --code "$(code)" --pin-file "$WORK/pin"
t_ok "  a new code for it: exit 9" exit_is 9 T card code "$C"
t_ok "  erase it: there is no card to erase (exit 9)" exit_is 9 T card erase "$C"
t_ok "    saying it was never made" grep -q "was never made" "$WORK/last.out"
t_is "    still cancelled" "$(state "$C")" cancelled
t_ok "the lost card A, found, erased here" T card erase "$SA"
t_ok "  gone from the TPM" sh -c "! $TOOL --json vsc list | grep -q '\"serial\":\"$SA\"'"

# ---- a new code
t_ok "card D requested" request jdoe --profile vsc
D=$(cat "$WORK/card-id"); old=$(code)
t_ok "  a new code for it" T --json card code "$D"
field code < "$WORK/last.out" > "$WORK/code"
t_ok "  the old code is void (exit 7)" exit_is 7 T card collect --code "$old" --pin-file "$WORK/pin"
t_ok "  the new one collects it" collect
SD=$(cat "$WORK/serial")

# ---- reprovision to the latest profile
t_ok "the profile's next version (certificates for 200 days)" profile 200
t_ok "card D reprovisioned" T --json card reprovision "$D"
field code < "$WORK/last.out" > "$WORK/code"
E=$(num replacement < "$WORK/last.out")
t_is "  D erased, its certificate superseded" "$(state "$D")|$(crl_reason "$(cert_serial "$D")")" "erased|Superseded"
t_ok "  gone from the TPM" sh -c "! $TOOL --json vsc list | grep -q '\"serial\":\"$SD\"'"
t_is "  E: the same device, the latest version" \
    "$(sql "SELECT k.state, k.replaces_id, p.version, d.name = (SELECT d2.name FROM cards c2 JOIN devices d2 ON d2.id = c2.device_id WHERE c2.id = $D) FROM cards k JOIN profiles p ON p.id = k.profile_id JOIN devices d ON d.id = k.device_id WHERE k.id = $E")" \
    "requested|$D|2|1"
t_ok "  collected" collect
SE=$(cat "$WORK/serial")
t_ok "database and TPM agree" consistent

# ---- a card no longer in this machine
t_ok "card F issued" issue
F=$(cat "$WORK/card-id"); SF=$(cat "$WORK/serial")
T vsc delete --serial "$SF" --response "$(T unblock response --master-file "$WORK/master.key" --serial "$SF" --alg aes128 \
    --challenge "$(T --json unblock challenge --serial "$SF" | field challenge)")" --yes >/dev/null 2>&1
t_ok "(its TPM card deleted by hand)" sh -c "! $TOOL --json vsc list | grep -q '\"serial\":\"$SF\"'"
jobs_before=$(sql "SELECT count(*) FROM jobs")
t_ok "erase it: not in this machine, exit 5" exit_is 5 T card erase "$F"
t_ok "  says so" grep -q "is not in this machine" "$WORK/last.out"
t_is "  nothing changed, no job made" "$(state "$F")|$(cert_states "$F")|$(sql "SELECT count(*) FROM jobs")" "active|active|$jobs_before"
t_ok "replaced as damaged instead" T card replace "$F" --reason damaged
t_is "  revoked as superseded" "$(state "$F")|$(crl_reason "$(cert_serial "$F")")" "revoked|Superseded"
t_ok "  its replacement cancelled" T card cancel "$(sql "SELECT id FROM cards WHERE replaces_id = $F")"

# ---- a batch
printf 'uid,name,email\nbjones,Bo Jones,bo@example.org\nckim,Cy Kim,cy@example.org\n' > "$WORK/more.csv"
t_ok "two more holders" T holder import "$WORK/more.csv"
printf '# the new starters\nbjones\n  ckim  \n\nnobody\n' > "$WORK/batch"
cards_before=$(sql "SELECT count(*) FROM cards")
t_ok "a batch naming an unknown holder: exit 5" exit_is 5 T card request --holders "$WORK/batch" --profile vsc --out "$WORK/codes.csv"
t_ok "  says which line" grep -q "holder 3 of the batch (nobody)" "$WORK/last.out"
t_is "  no card requested, no codes file" "$(sql "SELECT count(*) FROM cards")|$(test -e "$WORK/codes.csv" && echo file)" "$cards_before|"
sed -i '/nobody/d' "$WORK/batch"
t_ok "the batch for two" T card request --holders "$WORK/batch" --profile vsc --out "$WORK/codes.csv"
t_is "  two cards requested" "$(sql "SELECT count(*) FROM cards") $(sql "SELECT group_concat(h.uid) FROM cards c JOIN holders h ON h.id = c.holder_id WHERE c.id > $cards_before")" "$((cards_before + 2)) bjones,ckim"
t_is "  the codes only its owner may read" "$(stat -c %a "$WORK/codes.csv") $(wc -l < "$WORK/codes.csv")" "600 3"
t_ok "  a batch to the same file is refused: exit 1" exit_is 1 T card request --holders "$WORK/batch" --profile vsc --out "$WORK/codes.csv"
grep '^ckim,' "$WORK/codes.csv" | cut -d, -f4 > "$WORK/code"
t_ok "  ckim collects hers with the code from the file" collect
t_is "  on her card" "$(sql "SELECT h.uid FROM cards c JOIN holders h ON h.id = c.holder_id WHERE c.serial = '$(cat "$WORK/serial")'")" ckim

# ---- killed
t_ok "killed after E's certificate is held" exit_is 137 env TESSERA_TEST_KILL_AT=change:certificate $TOOL card suspend "$E"
t_is "  the card still active, its certificate held" "$(state "$E")|$(cert_states "$E")" "active|suspended"
t_is "  the job is running" "$(sql "SELECT kind, state FROM jobs WHERE id = (SELECT max(id) FROM jobs)")" "suspend|running"
t_ok "  another change of E: exit 9 while it waits? no: it finishes the suspend first" T card suspend "$E"
t_ok "  and says so" grep -q "finishing the interrupted suspend" "$WORK/last.out"
t_is "  suspended, once" "$(state "$E")|$(sql "SELECT count(*) FROM jobs WHERE card_id = $E AND kind = 'suspend'")" "suspended|1"
t_ok "killed after E's certificate is released" exit_is 137 env TESSERA_TEST_KILL_AT=change:certificate $TOOL card enable "$E"
t_ok "  a cancel finishes the enable, then cancels" T card cancel "$E"
t_is "  revoked, both jobs done" \
    "$(state "$E")|$(sql "SELECT group_concat(kind || ':' || state) FROM jobs WHERE card_id = $E AND kind != 'issue'")" \
    "revoked|suspend:done,enable:done,cancel:done"
t_is "  for cessation" "$(crl_reason "$(cert_serial "$E")")" "Cessation Of Operation"
t_ok "killed after erasing E" exit_is 137 env TESSERA_TEST_KILL_AT=change:erased $TOOL card erase "$E"
t_ok "  gone from the TPM" sh -c "! $TOOL --json vsc list | grep -q '\"serial\":\"$SE\"'"
t_is "  the database: revoked, job running" "$(state "$E")|$(sql "SELECT state, step FROM jobs WHERE id = (SELECT max(id) FROM jobs)")" "revoked|running|erased"
job=$(sql "SELECT max(id) FROM jobs")
t_ok "  job list shows it" sh -c "$TOOL job list --state running | grep -q '^$job '"
t_ok "  olga (helpdesk) may resume jobs, not an erase: exit 7" exit_is 7 T job resume "$job" --as olga
t_ok "  resumed" T job resume "$job"
t_is "  erased" "$(state "$E")" erased
t_ok "  resumed twice: exit 9" exit_is 9 T job resume "$job"
t_ok "card G issued" issue
G=$(cat "$WORK/card-id")
t_ok "killed as G's replacement is made: its code never shown" \
    exit_is 137 env TESSERA_TEST_KILL_AT=change:done $TOOL card replace "$G" --reason stolen
H=$(sql "SELECT id FROM cards WHERE replaces_id = $G")
t_is "  G revoked, H requested" "$(state "$G")|$(state "$H")" "revoked|requested"
t_ok "  a new code for H" T --json card code "$H"
field code < "$WORK/last.out" > "$WORK/code"
t_ok "  collects it" collect

t_ok "database and TPM agree" consistent
t_ok "no job left running" test "$(sql "SELECT count(*) FROM jobs WHERE state = 'running'")" = 0
t_ok "the audit trail is whole" T audit verify
t_ok "  and tells of holds, releases, revocations and the resumed job" sh -c "
    $TOOL audit > '$WORK/trail' &&
    grep -q cert.hold '$WORK/trail' && grep -q cert.release '$WORK/trail' && grep -q cert.revoke '$WORK/trail' &&
    grep -q job.resume '$WORK/trail' && grep -q 'card.replace' '$WORK/trail' && grep -q 'holder on leave' '$WORK/trail'"
t_done
