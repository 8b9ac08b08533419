# The renewal scan (`tessera scan`): renewal jobs for cards whose
# certificates entered the profile's window, one per card, cancelled when
# the card leaves use; holders told through msmtp to a real SMTP server and
# through a webhook to a real HTTP listener, again every notify-every-days,
# at least once (a scan killed between sending and recording sends the same
# notice, with the same id, again; a refused webhook is tried again); a
# channel that keeps failing is given up for the run; a holder without an
# address; temporary cards past their end ended (revoked at the CA, or
# cancelled with their code when never collected).
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"

t_ok "a database, root as administrator and issuer, the CA, holder jdoe" cms_start
printf 'uid,name,email\nrsmith,Rob Smith,\nkim,Kim Lee,kim@example.org\nlee,Lee Park,lee@example.org\n' \
    > "$WORK/more.csv"
t_ok "three more holders, rsmith without a mail address" T holder import "$WORK/more.csv"
t_ok "olga, helpdesk; ivan, issuer; carl, auditor" sh -c "$TOOL operator add olga --roles helpdesk &&
    $TOOL operator add ivan --roles issuer && $TOOL operator add carl --roles auditor"
t_ok "a profile: certificates of 20 days, a 30-day window, told every 7 days, temporary cards of 2" \
    cms_profile 20 "[lifecycle]" "renewal-window-days = 30" "notify-every-days = 7" "temporary-card-days = 2"
echo 123456 > "$WORK/pin"

collect() {   # collect HOLDER: requested and collected; its id in $WORK/card-id
    request "$1" --profile vsc && T --json card collect --code "$(code)" --pin-file "$WORK/pin" > /dev/null
}
t_ok "jdoe's card collected" collect jdoe
A=$(cat "$WORK/card-id")
t_ok "rsmith's" collect rsmith
B=$(cat "$WORK/card-id")
t_ok "kim's" collect kim
t_ok "lee's" collect lee

at() { date -u -d "+$1 days" '+%Y-%m-%d %H:%M'; }
scan() {   # scan [options]: one scan; its JSON summary in $WORK/scan.json
    T --json scan "$@" > "$WORK/scan.json" 2> "$WORK/scan.err"
}
says() { grep -q "$1" "$WORK/scan.json" || { cat "$WORK/scan.json" "$WORK/scan.err"; return 1; }; }
renewals() { sql "SELECT count(*) FROM jobs WHERE kind = 'renew' AND state = '${1:-pending}'"; }
job_of() { sql "SELECT id FROM jobs WHERE kind = 'renew' AND card_id = $1 AND state = 'pending'"; }

# ---- renewal jobs
t_ok "helpdesk may not scan (exit 7)" exit_is 7 T scan --as olga
t_ok "a dry run" scan --dry-run
t_ok "  would make 4 renewals" says '"renewals":{"made":4,'
t_is "  and made none" "$(renewals)" 0
t_ok "the scan, before any way to tell holders is set up" scan
t_ok "  makes the 4 renewals and tells no one" says '"made":4,.*"sent":0,"unreachable":0,"failed":0,"waiting":4'
t_ok "  and says why" grep -q "tessera notify set" "$WORK/scan.err"
t_is "  4 pending renewal jobs" "$(renewals)" 4
t_is "  each recorded" "$(sql "SELECT count(*) FROM audit WHERE action = 'card.renewal' AND result = 'requested'")" 4
t_ok "a second scan makes none" scan
t_ok "  (made 0)" says '"renewals":{"made":0,"cancelled":0}'
t_fail "the database refuses a second open renewal of a card" sql "INSERT INTO jobs (kind, state, card_id,
    created, created_by, updated) VALUES ('renew', 'pending', $A, 'x', 'x', 'x')"
JA=$(job_of "$A")

# ---- the channels
t_ok "an issuer may not set them (exit 7)" exit_is 7 T notify set --from cms@example.org --as ivan
t_ok "a webhook that is not http(s) is refused (exit 2)" exit_is 2 T notify set --webhook ftp://example.org/x
t_ok "a mail command not named by its path (exit 2)" exit_is 2 T notify set --sendmail "msmtp -t"
t_ok "a From that is not an address (exit 2)" exit_is 2 T notify set --from "cms example.org"
t_ok "a real SMTP server" smtp_start
t_ok "msmtp, sendmail-compatible, to it" T notify set --from cms@example.org \
    --sendmail "/usr/bin/msmtp --host=127.0.0.1 --port=$SMTP_PORT --from=cms@example.org"
t_ok "an auditor may read them" sh -c "$TOOL notify show --as carl | grep -q msmtp"

t_ok "the scan tells the holders" scan
t_ok "  3 by mail; rsmith has no address" says '"sent":3,"unreachable":1,"failed":0,"waiting":0'
t_is "  3 messages arrived" "$(mail_count)" 3
jmail=$(grep -l "^To: <jane@example.org>" "$WORK"/mail/new/* | head -1)
t_ok "  jane's" test -n "$jmail"
SA=$(sql "SELECT serial FROM cards WHERE id = $A")
t_ok "  names her card" grep -q "smart card $SA" "$jmail"
t_ok "  and when it expires" grep -q "^Subject: Your smart card certificates expire on 20" "$jmail"
t_ok "  with the notice's id in its Message-ID" grep -q "^Message-ID: <renewal-$JA-first@tessera.invalid>" "$jmail"
t_is "  rsmith's recorded as unreachable" \
    "$(sql "SELECT count(*) FROM audit WHERE action = 'card.renewal' AND result = 'unreachable' AND holder = 'rsmith'")" 1
t_ok "a scan the same day tells no one again" scan
t_ok "  (nothing sent)" says '"sent":0,"unreachable":0,"failed":0,"waiting":0'
t_is "  no new message" "$(mail_count)" 3
t_ok "8 days later they are told again" scan --at "$(at 8)"
t_ok "  (4 notices)" says '"sent":3,"unreachable":1'
t_is "  6 messages" "$(mail_count)" 6
t_ok "  jane's second one has another id" \
    sh -c "grep -l '^Message-ID: <renewal-$JA-20' '$WORK'/mail/new/* | grep -q ."

# ---- the webhook, and at least once
t_ok "a webhook receiver" webhook_start
t_ok "the webhook set as well" T notify set --webhook "http://127.0.0.1:$WEBHOOK_PORT/tessera/renewal"
echo 1 > "$WORK/webhook.fail"
t_ok "16 days on, the receiver refuses the first notice (scan exits 1)" exit_is 1 scan --at "$(at 16)"
t_ok "  one failed, the other three told by both" says '"sent":3,"unreachable":0,"failed":1'
t_is "  the webhook got 3" "$(webhook_count)" 3
t_ok "  the failure is said" grep -q "HTTP 503" "$WORK/scan.err"
t_ok "the next scan sends the failed one again" scan --at "$(at 16)"
t_ok "  (one sent)" says '"sent":1,"unreachable":0,"failed":0'
t_is "  4 at the webhook" "$(webhook_count)" 4
# The last document the webhook got about a card: one member (a.b for a nested one).
body() { /usr/bin/python3 -c 'import json, sys
last = None
for line in open(sys.argv[1]):
    b = json.loads(json.loads(line)["body"])
    if b["card"] == int(sys.argv[2]): last = b
for k in sys.argv[3].split("."): last = last[k]
print(last)' "$WORK/webhook.log" "$@"; }
# How many documents the webhook got with this id.
hook_ids() { /usr/bin/python3 -c 'import json, sys
print(sum(json.loads(json.loads(l)["body"])["id"] == sys.argv[2] for l in open(sys.argv[1])))' "$WORK/webhook.log" "$1"; }
t_is "  rsmith reached by the webhook alone" "$(body "$B" holder.uid)" rsmith
t_is "  a document per notice: jane's address" "$(body "$A" holder.email)" jane@example.org
t_is "  the event" "$(body "$A" event)" certificate.renewal
t_ok "  its days left" test "$(body "$A" days_left)" -lt 5
t_ok "  the path and type posted" grep -q '"path": "/tessera/renewal".*application/json' "$WORK/webhook.log"

mails=$(mail_count); hooks=$(webhook_count)
t_ok "24 days on, a scan killed after sending the first notice (exit 137)" \
    exit_is 137 env TESSERA_TEST_KILL_AT=scan:sent $TOOL scan --at "$(at 24)"
t_is "  it went out by mail" "$(mail_count)" $((mails + 1))
t_is "  and by webhook" "$(webhook_count)" $((hooks + 1))
first_id=$(tail -1 "$WORK/webhook.log" | /usr/bin/python3 -c 'import json, sys; print(json.loads(json.loads(sys.stdin.read())["body"])["id"])')
t_ok "the next scan sends it again, and the rest" scan --at "$(at 24)"
t_ok "  (4 sent)" says '"sent":4,"unreachable":0,"failed":0'
t_is "  the repeat has the same id, for the receiver to drop" "$(hook_ids "$first_id")" 2
t_ok "  an expired certificate is said so" test "$(body "$A" days_left)" -lt 0

t_ok "a webhook nobody answers" T notify set --webhook "http://127.0.0.1:$(free_port)/"
t_ok "  after 3 failures in a row the rest wait (exit 1)" exit_is 1 scan --at "$(at 32)"
t_ok "  (3 failed, 1 waiting)" says '"failed":3,"waiting":1'
t_ok "  the scan says so" grep -q "the rest wait for the next scan" "$WORK/scan.err"
t_ok "webhook cleared: mail alone" T notify set --webhook ''
t_ok "  and the 4 are told" scan --at "$(at 32)"
t_ok "  (3 by mail, rsmith unreachable)" says '"sent":3,"unreachable":1,"failed":0,"waiting":0'

# ---- a signed webhook
openssl rand -hex 32 > "$WORK/hook.secret"; chmod 644 "$WORK/hook.secret"
t_ok "a receiver that checks signatures" webhook_start signed "$WORK/hook.secret"
t_ok "the webhook signed with a secret file" T notify set --webhook "http://127.0.0.1:$WEBHOOK_PORT/signed" \
    --webhook-secret-file "$WORK/hook.secret"
t_ok "  a secret file others may read is refused at the scan (exit 1)" exit_is 1 scan --at "$(at 40)"
t_ok "  (said)" grep -q "mode 0600 or 0400" "$WORK/scan.err"
t_is "  nothing was posted" "$(webhook_count signed)" 0
chmod 600 "$WORK/hook.secret"
t_ok "  0600: the 4 are told" scan --at "$(at 40)"
t_ok "  (3 by mail and webhook, rsmith by webhook)" says '"sent":4,"unreachable":0,"failed":0'
t_is "  the receiver verified all 4" "$(grep -c '"verified": true' "$WORK/signed.log")" 4
t_ok "  notify show names the file, not the secret" sh -c "$TOOL notify show | grep -q hook.secret &&
    ! $TOOL notify show | grep -q $(cat "$WORK/hook.secret") && ! $TOOL audit | grep -q $(cat "$WORK/hook.secret")"
openssl rand -hex 32 > "$WORK/other.secret"; chmod 600 "$WORK/other.secret"
t_ok "signed with another secret" T notify set --webhook-secret-file "$WORK/other.secret"
t_ok "  the receiver refuses (401; exit 1)" exit_is 1 scan --at "$(at 48)"
t_ok "  (said)" grep -q "HTTP 401" "$WORK/scan.err"
t_ok "webhook and secret cleared" T notify set --webhook '' --webhook-secret-file ''

# ---- a renewal ends with its card's use
t_ok "jdoe's card suspended" T card suspend "$A" --note "on leave"
t_ok "the scan cancels its renewal" scan
t_ok "  (cancelled 1)" says '"cancelled":1'
t_is "  the job says why" "$(sql "SELECT state || ': ' || error FROM jobs WHERE id = $JA")" "cancelled: the card is suspended"
t_ok "enabled again" T card enable "$A"
t_ok "  the next scan makes a new renewal" scan
t_ok "  (made 1)" says '"made":1,'

# ---- temporary cards
t_ok "kim forgot her card: a temporary one" T --json card replace "$(sql "SELECT id FROM cards WHERE holder_id = (SELECT id FROM holders WHERE uid = 'kim')")" --reason forgotten
KT=$(num replacement < "$WORK/last.out")
field code < "$WORK/last.out" > "$WORK/code"
t_ok "  collected" T card collect --code "$(code)" --pin-file "$WORK/pin"
KTS=$(sql "SELECT serial FROM cards WHERE id = $KT")
KTC=$(sql "SELECT serial FROM certificates WHERE card_id = $KT")
t_ok "lee forgot his: a temporary card never collected" T --json card replace \
    "$(sql "SELECT id FROM cards WHERE holder_id = (SELECT id FROM holders WHERE uid = 'lee')")" --reason forgotten
LT=$(num replacement < "$WORK/last.out")
field code < "$WORK/last.out" > "$WORK/lee-code"
t_ok "the scan the next day ends neither" scan --at "$(at 1)"
t_ok "  (ended 0)" says '"temporaries":{"ended":0,"failed":0}'
t_is "  and gives the temporary card no renewal" "$(sql "SELECT count(*) FROM jobs WHERE kind = 'renew' AND card_id = $KT")" 0
t_ok "three days on, the scan ends both" scan --at "$(at 3)"
t_ok "  (ended 2)" says '"temporaries":{"ended":2,"failed":0}'
t_is "  kim's temporary card revoked" "$(sql "SELECT state FROM cards WHERE id = $KT")" revoked
t_is "  its certificate too" "$(sql "SELECT state FROM certificates WHERE card_id = $KT")" revoked
t_ok "  in the CA's CRL" sh -c "$TOOL ca crl --out - | openssl crl -noout -text | grep -qi 'Serial Number: *$KTC'"
t_is "  her own card stays suspended for the helpdesk" \
    "$(sql "SELECT state FROM cards WHERE holder_id = (SELECT id FROM holders WHERE uid = 'kim') AND temporary = 0")" suspended
t_is "  lee's never-collected one cancelled" "$(sql "SELECT state FROM cards WHERE id = $LT")" cancelled
t_ok "  its code opens nothing (exit 7)" exit_is 7 T card collect --code "$(cat "$WORK/lee-code")" --pin-file "$WORK/pin"
t_is "  recorded as card.expire" "$(sql "SELECT count(*) FROM audit WHERE action = 'card.expire' AND result = 'ok'")" 2
t_ok "a second scan ends nothing more" scan --at "$(at 3)"
t_ok "  (ended 0)" says '"temporaries":{"ended":0,"failed":0}'
t_ok "each scan is in the trail" test "$(sql "SELECT count(*) FROM audit WHERE action = 'renewal.scan'")" -ge 10
t_ok "the trail verifies" T audit verify
t_ok "the TPM and the database agree" consistent
t_ok "kim's temporary card is still on the TPM, as the database says (revoked)" sh -c "$TOOL vsc list | grep -q '$KTS'"
t_done
