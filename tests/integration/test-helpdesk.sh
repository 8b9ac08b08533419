# An offline unblock over the phone, in two processes that share nothing:
# the user's side (the card, its TPM and store) and the helpdesk's (the
# master key only: no TPM, another TESSERA_HOME). Admin keys diversified
# from the master key per card (SP 800-108); the Windows-compatible response
# to a card's challenge (3DES-ECB under the admin key), checked with openssl;
# rotation from the default key; replayed, mistyped and wrong responses.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

master="$WORK/master.key"
( umask 077; printf '%s\n' 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f > "$master" )
k1=$($TOOL admin-key derive --master-file "$master" --serial 35b72913ecbc0469)
k1b=$($TOOL admin-key derive --master-file "$master" --serial 35b72913ecbc0469)
k2=$($TOOL admin-key derive --master-file "$master" --serial 0000000000000001)
t_is "a 3DES admin key: 24 bytes" "${#k1}" 48
t_is "the same card, the same key" "$k1" "$k1b"
t_ok "another card, another key" test "$k1" != "$k2"
k3=$($TOOL admin-key derive --master-file "$master" --serial 35b72913ecbc0469 --prf hmac-sha256 --alg aes128)
t_is "an AES-128 admin key with the HMAC PRF: 16 bytes" "${#k3}" 32
chmod 644 "$master"
t_fail "a master key file others can read is refused" $TOOL admin-key derive --master-file "$master" --serial x
t_ok "  and says why" grep -q "must be 0600" "$WORK/last.out"
chmod 600 "$master"

# A card's challenge, as Windows shows it (hex) and as a phone code.
chal=0123456789abcdef
factory=010203040506070801020304050607080102030405060708
expect=$(printf '%s' "$chal" | xxd -r -p | openssl enc -des-ede3 -K "$factory" -nopad 2>/dev/null | xxd -p)
got=$($TOOL --json unblock response --challenge "$chal" --admin-key "$factory" | sed 's/.*"response_hex":"\([0-9a-f]*\)".*/\1/')
t_is "the response is 3DES-ECB of the challenge (as openssl computes it)" "$got" "$expect"
code=$($TOOL --json unblock response --challenge "$chal" --admin-key "$factory" | sed 's/.*"response":"\([^"]*\)".*/\1/')
t_ok "  given as a code to read aloud ($code)" test "${#code}" = 17
# Read the challenge as a code (the same bytes, formatted by the tool's own code rules).
chal_code=$($TOOL --json unblock response --challenge "$expect" --admin-key "$factory" | sed 's/.*"response":"\([^"]*\)".*/\1/')
t_ok "codes are accepted in lower case and without dashes" \
    $TOOL unblock response --challenge "$(printf '%s' "$chal_code" | tr -d - | tr A-Z a-z)" --admin-key "$factory"
first=${chal_code:0:1}
if [ "$first" = A ]; then typo="B${chal_code:1}"; else typo="A${chal_code:1}"; fi
t_fail "a mistyped challenge is told apart" $TOOL unblock response --challenge "$typo" --admin-key "$factory"
t_ok "  as mistyped" grep -q "mistyped" "$WORK/last.out"
div=$($TOOL admin-key derive --master-file "$master" --serial 35b72913ecbc0469)
a=$($TOOL unblock response --challenge "$chal" --master-file "$master" --serial 35b72913ecbc0469)
b=$($TOOL unblock response --challenge "$chal" --admin-key "$div")
t_is "with the master key the response uses the card's diversified key" "$a" "$b"

# ---- the whole flow on a TPM card ----
# The helpdesk: its own home, and no TPM at all.
helpdesk() { env TESSERA_HOME="$WORK/helpdesk" TESSERA_TCTI="swtpm:host=127.0.0.1,port=1" "$TOOL" "$@"; }
printf '87654321\n' > "$WORK/so"; printf '123456\n' > "$WORK/pin"; printf '246810\n' > "$WORK/newpin"

t_ok "the issuer makes a card whose admin key is diversified from the master key" \
    $TOOL --json vsc create --label Alice --so-pin-file "$WORK/so" --pin-file "$WORK/pin" --master-file "$master"
serial=$(field serial < "$WORK/last.out")
slot=$($TOOL --json card info --serial "$serial" | sed -n 's/.*"slot":\([0-9]*\).*/\1/p')
key=$(helpdesk admin-key derive --master-file "$master" --serial "$serial")
kcv=$(printf '0000000000000000' | xxd -r -p | openssl enc -des-ede3 -K "$key" -nopad 2>/dev/null | xxd -p | cut -c1-6)
t_ok "card info shows the diversified key's check value" sh -c "$TOOL --json card info --slot $slot | grep -q '\"kcv\":\"$kcv\",\"default\":false'"

lock() { for i in 1 2 3 4 5 6; do p11tool --slot "$slot" -l -p 000000 -I >/dev/null 2>&1; done; }
lock
t_fail "the user has locked the PIN" p11tool --slot "$slot" -l -p 123456 -I
t_ok "the user's side gives a challenge" $TOOL --json unblock challenge --slot "$slot"
chal=$(field challenge < "$WORK/last.out")
t_is "  with the card's serial to read out" "$(field serial < "$WORK/last.out")" "$serial"
t_ok "the helpdesk answers from the master key alone" \
    helpdesk unblock response --challenge "$chal" --master-file "$master" --serial "$serial"
resp=$(cat "$WORK/last.out")
typo=$(printf '%s' "$resp" | sed 's/^./Z/'); [ "$typo" = "$resp" ] && typo=$(printf '%s' "$resp" | sed 's/^./Y/')
t_fail "a mistyped response is caught before the card sees it" \
    $TOOL unblock complete --slot "$slot" --response "$typo" --pin-file "$WORK/newpin"
t_is "  (exit 2: nothing tried)" "$t_rc" 2
t_ok "  and cost no try" sh -c "$TOOL --json card info --slot $slot | grep -q '\"unblock_tries_left\":5'"
t_ok "the user types the response and a new PIN" \
    $TOOL unblock complete --slot "$slot" --response "$resp" --pin-file "$WORK/newpin"
t_ok "the new PIN logs in" p11tool --slot "$slot" -l -p 246810 -I
t_fail "the same response again is refused" \
    $TOOL unblock complete --slot "$slot" --response "$resp" --pin-file "$WORK/pin"
t_is "  (exit 4)" "$t_rc" 4
t_ok "  saying a challenge answers once" grep -q "answers once" "$WORK/last.out"

# Another card: its own key, so Alice's response cannot serve it.
t_ok "a second card" $TOOL --json vsc create --label Bob --so-pin-file "$WORK/so" --pin-file "$WORK/pin" \
    --master-file "$master"
serial2=$(field serial < "$WORK/last.out")
slot2=$($TOOL --json card info --serial "$serial2" | sed -n 's/.*"slot":\([0-9]*\).*/\1/p')
chal2=$($TOOL --json unblock challenge --slot "$slot2" | field challenge)
wrong=$(helpdesk unblock response --challenge "$chal2" --master-file "$master" --serial "$serial")
t_fail "a response made for another card's serial is refused" \
    $TOOL unblock complete --slot "$slot2" --response "$wrong" --pin-file "$WORK/newpin"
t_ok "  as wrong for this card" grep -q "wrong for this challenge and card" "$WORK/last.out"
t_ok "  and counted" sh -c "$TOOL --json card info --slot $slot2 | grep -q '\"unblock_tries_left\":4'"

# Rotation: from the well-known default key to a diversified one, without
# the SO PIN, answering a challenge with the old key.
t_ok "a card made with the default admin key" $TOOL --json vsc create --label Carol --so-pin-file "$WORK/so" \
    --pin-file "$WORK/pin" --admin-key default
serial3=$(field serial < "$WORK/last.out")
t_ok "  is shown as such" sh -c "$TOOL card info --serial $serial3 | grep -q DEFAULT"
t_fail "rotation with a wrong old key is refused" $TOOL admin-key rotate --serial "$serial3" \
    --old-admin-key 0123456789abcdeffedcba98765432100123456789abcdef --master-file "$master"
t_ok "  before touching the card" sh -c "$TOOL --json card info --serial $serial3 | grep -q '\"unblock_tries_left\":5'"
t_ok "rotation from the default key to the diversified one" \
    $TOOL admin-key rotate --serial "$serial3" --old-admin-key default --master-file "$master"
key3=$(helpdesk admin-key derive --master-file "$master" --serial "$serial3")
kcv3=$(printf '0000000000000000' | xxd -r -p | openssl enc -des-ede3 -K "$key3" -nopad 2>/dev/null | xxd -p | cut -c1-6)
t_ok "  the card now has the diversified key" sh -c "$TOOL --json card info --serial $serial3 | grep -q '\"kcv\":\"$kcv3\",\"default\":false'"
chal3=$($TOOL --json unblock challenge --serial "$serial3" | field challenge)
old=$(helpdesk unblock response --challenge "$chal3" --admin-key default)
t_fail "  the default key's responses no longer work" \
    $TOOL unblock complete --serial "$serial3" --response "$old" --pin-file "$WORK/newpin"
chal3=$($TOOL --json unblock challenge --serial "$serial3" | field challenge)
good=$(helpdesk unblock response --challenge "$chal3" --master-file "$master" --serial "$serial3")
t_ok "  the master key's do" $TOOL unblock complete --serial "$serial3" --response "$good" --pin-file "$WORK/newpin"

# The SO path: a new master key, set with the SO PIN.
master2="$WORK/master2.key"
( umask 077; openssl rand -hex 32 > "$master2" )
t_ok "the SO sets a key from another master" $TOOL admin-key set --serial "$serial3" --so-pin-file "$WORK/so" \
    --master-file "$master2"
t_fail "  a wrong SO PIN sets nothing" $TOOL admin-key set --serial "$serial3" --so-pin-file "$WORK/pin" \
    --master-file "$master"
t_is "  (exit 4)" "$t_rc" 4
chal3=$($TOOL --json unblock challenge --serial "$serial3" | field challenge)
good=$(helpdesk unblock response --challenge "$chal3" --master-file "$master2" --serial "$serial3")
t_ok "  and the new master's responses unblock" \
    $TOOL unblock complete --serial "$serial3" --response "$good" --pin-file "$WORK/pin"
t_done
