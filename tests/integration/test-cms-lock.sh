# PIN locks asked for a date and time in a named timezone and done by
# `tessera agent` on the card's device (pkcs11-tool then sees
# CKR_PIN_LOCKED); moved and cancelled while pending, one per card; the
# helpdesk's unlock by challenge and response, for good or for some hours
# and then locked again; a lock asked for a card that has since changed,
# let go; an agent killed after locking, finished by its next run.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cms.sh"

t_ok "a database, root as administrator and issuer, the CA, a holder" cms_start
t_ok "olga, helpdesk; ivan, issuer; carl, auditor" sh -c "$TOOL operator add olga --roles helpdesk &&
    $TOOL operator add ivan --roles issuer && $TOOL operator add carl --roles auditor"
t_ok "a profile" cms_profile 365
echo 123456 > "$WORK/pin"
echo 246810 > "$WORK/pin2"
echo 135790 > "$WORK/pin3"

t_ok "card A requested" request jdoe --profile vsc
t_ok "  and collected" T --json card collect --code "$(code)" --pin-file "$WORK/pin"
A=$(cat "$WORK/card-id"); SA=$(field card < "$WORK/last.out")
slot=$($TOOL --json card info --serial "$SA" | num slot)
t_ok "  its slot" test -n "$slot"

state() { sql "SELECT state FROM cards WHERE id = $A"; }
job_state() { sql "SELECT state FROM jobs WHERE id = $1"; }
due() { sql "SELECT due FROM jobs WHERE id = $1"; }
logs_in() { p11tool --slot "$slot" -l -p "$1" -I >/dev/null 2>&1; }
pin_locked() { p11tool --slot "$slot" -l -p "$1" -I 2>&1 | grep -q CKR_PIN_LOCKED; }
agent() {   # agent LOCKED SKIPPED FAILED: one run, and what it says it did
    T --json agent > "$WORK/agent.out"
    local rc=$?
    grep -q "\"locked\":$1,\"skipped\":$2,\"failed\":$3}" "$WORK/agent.out" ||
        { echo "exit $rc: $(cat "$WORK/agent.out")"; return 1; }
}
challenge() { $TOOL --json unblock challenge --slot "$slot" | field challenge; }

# ---- a time in a named zone
t_ok "a lock asked for 09:30 in Tokyo" T --json card lock "$A" --at "2026-03-10 09:30" --tz Asia/Tokyo --note leave
J=$(num job < "$WORK/last.out")
t_is "  due at 00:30 UTC" "$(due "$J")" "2026-03-10T00:30:00Z"
t_ok "a second lock of the card is refused (exit 9)" exit_is 9 T card lock "$A"
t_ok "  the message names the pending one" sh -c "$TOOL card lock $A 2>&1 | grep -q 'job $J'"
t_ok "moved to 08:00 in New York in July (EDT)" T job move "$J" --at "2026-07-01 08:00" --tz America/New_York
t_is "  due at 12:00 UTC" "$(due "$J")" "2026-07-01T12:00:00Z"
t_ok "and in December (EST)" T job move "$J" --at "2026-12-01 08:00" --tz America/New_York
t_is "  due at 13:00 UTC" "$(due "$J")" "2026-12-01T13:00:00Z"
t_ok "a time the clocks skip is refused (exit 2)" \
    exit_is 2 T job move "$J" --at "2026-03-08 02:30" --tz America/New_York
t_ok "a time they repeat is the first of the two" T job move "$J" --at "2026-11-01 01:30" --tz America/New_York
t_is "  05:30 UTC (EDT)" "$(due "$J")" "2026-11-01T05:30:00Z"
t_ok "seconds and a T are read" T job move "$J" --at "2026-12-24T17:45:30" --tz Europe/Berlin
t_is "  due at 16:45:30 UTC" "$(due "$J")" "2026-12-24T16:45:30Z"
t_ok "an unknown zone is refused (exit 2)" exit_is 2 T job move "$J" --at "2026-12-01 08:00" --tz Mars/Olympus
t_ok "  and a path for one" exit_is 2 T job move "$J" --at "2026-12-01 08:00" --tz ../../../etc/passwd
t_ok "30 February is refused" exit_is 2 T job move "$J" --at "2026-02-30 08:00" --tz UTC
t_ok "  and a time with more after it" exit_is 2 T job move "$J" --at "2026-12-01 08:00x" --tz UTC
t_ok "--at needs --tz" exit_is 2 T card lock "$A" --at "2026-12-01 08:00"
t_is "  none of it moved the lock" "$(due "$J")" "2026-12-24T16:45:30Z"
t_ok "an auditor may not move it (exit 7)" exit_is 7 T job move "$J" --at "2027-01-01 00:00" --tz UTC --as carl
t_ok "helpdesk may" T job move "$J" --at "2099-01-01 00:00" --tz UTC --as olga

# ---- the agent on the device
t_ok "the agent: nothing due yet" agent 0 0 0
t_ok "  the PIN still logs in" logs_in 123456
t_ok "moved to a time past" T job move "$J" --at "2020-01-01 00:00" --tz Europe/Berlin
t_ok "the agent locks the card" agent 1 0 0
t_is "  the card is locked" "$(state)" locked
t_is "  the job done" "$(job_state "$J")" done
t_ok "  the right PIN: CKR_PIN_LOCKED" pin_locked 123456
t_is "  recorded by the agent of this machine" \
    "$(sql "SELECT operator LIKE 'agent:%' FROM audit WHERE action = 'card.lock' AND result = 'ok'")" 1
t_ok "a done lock is not moved or cancelled (exit 9)" exit_is 9 T job cancel "$J"
t_ok "a locked card is not locked again (exit 9)" exit_is 9 T card lock "$A"
t_ok "job resume does not take a lock (exit 9)" exit_is 9 T job resume "$J"

# ---- the helpdesk's unlock, for eight hours
chal=$(challenge)
t_ok "the holder's challenge" test -n "$chal"
t_ok "an issuer may not unlock (exit 7)" exit_is 7 T card unlock "$A" --challenge "$chal" --note x --as ivan
t_ok "  nor without a reason (exit 2)" exit_is 2 T card unlock "$A" --challenge "$chal" --as olga
t_ok "  nor with a mistyped challenge (exit 2)" exit_is 2 T card unlock "$A" --challenge "XXXX-XXXX" --note x --as olga
t_is "  none of it unlocked the card" "$(state)" locked
t_ok "olga unlocks for 8 hours" \
    T --json card unlock "$A" --challenge "$chal" --hours 8 --note "card left at home" --as olga
resp=$(field response < "$WORK/last.out"); R=$(num relock_job < "$WORK/last.out")
t_ok "  the holder types the response and a new PIN" \
    T unblock complete --slot "$slot" --response "$resp" --pin-file "$WORK/pin2"
t_ok "  which logs in" logs_in 246810
t_is "  the card is active" "$(state)" active
t_is "  a relock pending" "$(job_state "$R")" pending
t_is "  due in 8 hours" "$(/usr/bin/python3 -c 'import sys, datetime as d
due = d.datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ")
left = (due - d.datetime.utcnow()).total_seconds()
print(7.9 * 3600 < left <= 8 * 3600)' "$(due "$R")")" True
t_ok "the agent before then: nothing" agent 0 0 0
# Eight hours pass.
sql "UPDATE jobs SET due = '2000-01-01T00:00:00Z' WHERE id = $R"
t_ok "after them the agent locks it again" agent 1 0 0
t_ok "  the new PIN: CKR_PIN_LOCKED" pin_locked 246810
t_is "  locked" "$(state)" locked

# ---- unlocked for good
chal=$(challenge)
t_ok "olga unlocks for good" T --json card unlock "$A" --challenge "$chal" --note "back from leave" --as olga
resp=$(field response < "$WORK/last.out")
t_ok "  no relock" grep -q '"relock_job":0' "$WORK/last.out"
t_ok "  the response and PIN typed" T unblock complete --slot "$slot" --response "$resp" --pin-file "$WORK/pin3"
t_ok "  the PIN logs in" logs_in 135790
t_is "  no lock pending" "$(sql "SELECT count(*) FROM jobs WHERE card_id = $A AND state = 'pending'")" 0

# ---- a pending lock cancelled; an unlock replaces a pending lock
t_ok "a lock for next year" T --json card lock "$A" --at "2027-06-01 12:00" --tz Europe/Paris
J2=$(num job < "$WORK/last.out")
t_ok "  cancelled by helpdesk" T job cancel "$J2" --note "leave cancelled" --as olga
t_is "  cancelled" "$(job_state "$J2")" cancelled
t_ok "  cancelled once only (exit 9)" exit_is 9 T job cancel "$J2"
t_ok "  the agent does nothing" agent 0 0 0
t_ok "a job that is not a lock is not moved (exit 9)" \
    exit_is 9 T job move "$(sql "SELECT id FROM jobs WHERE kind = 'issue' LIMIT 1")" --at "2027-01-01 00:00" --tz UTC
t_ok "no job 9999 (exit 5)" exit_is 5 T job cancel 9999

# ---- a lock asked for, then the card suspended: the agent lets it go
t_ok "a lock at the next run" T --json card lock "$A"
J3=$(num job < "$WORK/last.out")
t_ok "the card suspended meanwhile" T card suspend "$A"
t_ok "the agent skips the lock" agent 0 1 0
t_is "  cancelled" "$(job_state "$J3")" cancelled
why=$(sql "SELECT error FROM jobs WHERE id = $J3")
t_ok "  saying why: $why" test -n "$(echo "$why" | grep 'the card is suspended')"
t_ok "  the PIN still logs in" logs_in 135790
t_ok "the card enabled" T card enable "$A"

# ---- an agent killed after locking the card, before recording it
t_ok "a lock at the next run" T --json card lock "$A"
J4=$(num job < "$WORK/last.out")
t_ok "the agent killed after the lock" exit_is 137 env TESSERA_TEST_KILL_AT=agent:locked $TOOL agent
t_is "  the job is left running" "$(job_state "$J4")" running
t_ok "  the card's PIN is locked" pin_locked 135790
t_ok "a change of the card is not held up by it" sh -c "$TOOL card suspend $A && $TOOL card enable $A"
t_ok "the next run finishes it" agent 1 0 0
t_is "  done" "$(job_state "$J4")" done
t_is "  the card locked" "$(state)" locked
t_is "  its taking-up recorded" "$(sql "SELECT count(*) FROM audit WHERE action = 'job.resume' AND detail LIKE 'job $J4:%'")" 1

# ---- a lock due for a card that is not on this machine
chal=$(challenge)
T --json card unlock "$A" --challenge "$chal" --note "test" --as olga > "$WORK/u.json"
t_ok "unlocked" T unblock complete --slot "$slot" --response "$(field response < "$WORK/u.json")" --pin-file "$WORK/pin"
t_ok "a lock at the next run" T --json card lock "$A"
J5=$(num job < "$WORK/last.out")
sql "INSERT INTO devices (name, created) VALUES ('elsewhere.example.org', 'x')"
sql "UPDATE cards SET device_id = (SELECT id FROM devices WHERE name = 'elsewhere.example.org') WHERE id = $A"
t_ok "the agent here leaves another device's lock alone" agent 0 0 0
t_is "  pending" "$(job_state "$J5")" pending
t_ok "a scan now: no lock overdue" T --json scan --dry-run
t_ok "  (none)" grep -q '"locks":{"overdue":0}' "$WORK/last.out"
t_ok "a scan two days on: the lock is overdue" T --json scan --dry-run --at "$(date -u -d '+2 days' '+%Y-%m-%d %H:%M')"
cp "$WORK/last.out" "$WORK/scan.out"
t_ok "  counted" grep -q '"locks":{"overdue":1}' "$WORK/scan.out"
t_ok "  its card, device and job named" \
    grep -q "card $A (jdoe, tpm card, elsewhere.example.org): its PIN lock, job $J5, was due" "$WORK/scan.out"
t_ok "  the PIN logs in" logs_in 123456
sql "UPDATE cards SET device_id = (SELECT device_id FROM jobs WHERE id = $J5) WHERE id = $A"
t_ok "back on this device: locked" agent 1 0 0

t_ok "the TPM and the database agree" consistent
t_ok "the trail is whole" T audit verify
t_done
