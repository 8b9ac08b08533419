# Processes killed (SIGKILL) in the middle of writing to a card must leave a
# usable store: no half-made card, no private key without its public half,
# every key that exists works, and a TPM that still has room (objects leaked
# by the dead process are reclaimed).
. "$TESSERA_SRCDIR/tests/lib/common.sh"

p() { p11tool --token-label Crash "$@"; }

kill_after() {   # kill_after SECONDS command...: start, wait, SIGKILL
    local delay=$1; shift
    "$@" >/dev/null 2>&1 &
    local pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

integrity() {
    python3 - "$TESSERA_HOME/tessera.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
assert db.execute("PRAGMA foreign_key_check").fetchall() == []
PY
}

pairs_complete() {
    local pub priv
    p -l -p 123456 -O > "$WORK/objs" 2>&1 || return 1
    pub=$(grep -c '^Public Key Object' "$WORK/objs")
    priv=$(grep -c '^Private Key Object' "$WORK/objs")
    echo "public $pub private $priv"
    [ "$pub" = "$priv" ]
}

all_keys_sign() {
    local id n=0
    printf 'data' > "$WORK/data"
    for id in $(p -l -p 123456 -O --type privkey 2>/dev/null | sed -n 's/^ *ID: *//p'); do
        p -l -p 123456 --sign -m ECDSA --id "$id" -i "$WORK/data" -o "$WORK/sig" || return 1
        n=$((n + 1))
    done
    echo "$n keys signed"
    [ "$n" -gt 0 ]
}

all_cards_open() {
    local label
    $TOOL --json vsc list | tr '{' '\n' | sed -n 's/.*"label":"\([^"]*\)".*/\1/p' > "$WORK/labels"
    while read -r label; do
        p11tool --token-label "$label" -l -p 123456 -O >/dev/null 2>&1 || { echo "card '$label' unusable"; return 1; }
    done < "$WORK/labels"
    wc -l < "$WORK/labels"
}

t_ok "create a card" $TOOL vsc create --label Crash --so-pin 12345678 --pin 123456
t_ok "one complete key first" p -l -p 123456 --keypairgen --key-type EC:prime256v1 --label first

for delay in 0.005 0.01 0.02 0.03 0.05 0.08 0.12 0.2; do
    kill_after "$delay" p -l -p 123456 --keypairgen --key-type EC:prime256v1 --label "k$delay"
done
t_ok "store intact after killed key generations" integrity
t_ok "every private key has its public key" pairs_complete
t_ok "every key on the card signs" all_keys_sign

for delay in 0.005 0.01 0.02 0.04 0.08; do
    kill_after "$delay" $TOOL vsc create --label "half$delay" --so-pin 12345678 --pin 123456
done
t_ok "store intact after killed card creations" integrity
t_ok "every card that exists opens with its PIN" all_cards_open

for delay in 0.005 0.01 0.02; do
    kill_after "$delay" p -l -p 123456 --change-pin --new-pin 123456
done
t_ok "store intact after killed PIN changes" integrity
t_ok "the PIN still works" p -l -p 123456 -O
t_ok "a fresh key still fits in the TPM" p -l -p 123456 --keypairgen --key-type EC:prime256v1 --label last

# Unblock and admin-key rotation killed midway: the card ends with the old
# PIN or the new one, the old admin key or the new one, never without. A
# process killed after the card checked a response and before it sealed new
# challenges leaves one challenge fewer; when none are left the SO refills
# them (the key itself is never lost).
printf '123456\n' > "$WORK/pin"; printf '12345678\n' > "$WORK/so"
info() { $TOOL --json card info --serial "$serial"; }
challenge() { $TOOL --json unblock challenge --serial "$serial" | sed -n 's/.*"challenge":"\([^"]*\)".*/\1/p'; }
refill() {   # refill KEY: as the SO, when the card has no challenges left
    info | grep -q '"challenges_left":0' || return 0
    echo "no challenges left: the SO refills them"
    $TOOL admin-key set --serial "$serial" --so-pin-file "$WORK/so" --admin-key "$1"
}
t_ok "a card with an admin key" $TOOL --json vsc create --label Admin --so-pin 12345678 --pin 123456 \
    --admin-key default
serial=$(sed -n 's/.*"serial":"\([^"]*\)".*/\1/p' "$WORK/last.out")
for delay in 0.005 0.01 0.02 0.04 0.08; do
    resp=$($TOOL unblock response --challenge "$(challenge)" --admin-key default)
    kill_after "$delay" $TOOL unblock complete --serial "$serial" --response "$resp" --pin-file "$WORK/pin"
done
t_ok "store intact after killed unblocks" integrity
t_ok "the PIN works" p11tool --token-label Admin -l -p 123456 -O
t_ok "the card keeps its admin key" sh -c "$TOOL --json card info --serial $serial | grep -q '\"kcv\":\"b073dc\"'"
t_ok "challenges left, or refilled by the SO" refill default
resp=$($TOOL unblock response --challenge "$(challenge)" --admin-key default)
t_ok "and a new challenge's response unblocks" \
    $TOOL unblock complete --serial "$serial" --response "$resp" --pin-file "$WORK/pin"
new=00112233445566778899aabbccddeeff0011223344556677
for delay in 0.005 0.01 0.02 0.04 0.08; do
    kill_after "$delay" $TOOL admin-key rotate --serial "$serial" --old-admin-key default --admin-key "$new"
    kill_after "$delay" $TOOL admin-key rotate --serial "$serial" --old-admin-key "$new" --admin-key default
done
t_ok "store intact after killed rotations" integrity
kcv=$(info | sed -n 's/.*"kcv":"\([0-9a-f]*\)".*/\1/p')
case $kcv in
    "$(kcv_of 010203040506070801020304050607080102030405060708)") key=default ;;
    "$(kcv_of "$new")") key=$new ;;
    *) key= ;;
esac
t_ok "the card has the old key or the new one (check value $kcv)" test -n "$key"
t_ok "challenges left, or refilled by the SO" refill "${key:-default}"
resp=$($TOOL unblock response --challenge "$(challenge)" --admin-key "${key:-default}")
t_ok "and that key's response unblocks" \
    $TOOL unblock complete --serial "$serial" --response "$resp" --pin-file "$WORK/pin"
t_done
