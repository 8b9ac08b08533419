# card init and card erase on TPM virtual cards, through T_InitCard and
# T_EraseCard: a new card issued in one go (label, PIN policy, tries, SO and
# user PIN, admin key diversified from the master key); a card made new
# again (same serial, keys and admin key gone, new PINs), only with its SO
# PIN and a confirmation; erasing with the SO PIN, with the helpdesk's
# response, or with nothing once nothing could authorise it any more.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

helpdesk() { env TESSERA_HOME="$WORK/helpdesk" TESSERA_TCTI="swtpm:host=127.0.0.1,port=1" "$TOOL" "$@"; }
master="$WORK/master.key"
( umask 077; openssl rand -hex 32 > "$master"
  printf '87654321\n' > "$WORK/so"; printf '11223344\n' > "$WORK/so2"; printf '99999999\n' > "$WORK/wrong"
  printf 'abc12345\n' > "$WORK/pin"; printf 'xyz67890\n' > "$WORK/pin2" )

# ---- a new card, issued in one go ----
t_ok "card init --new issues a virtual card" $TOOL --json card init --new --label Issued \
    --so-pin-file "$WORK/so" --pin-file "$WORK/pin" --pin-min 8 --pin-digits mandatory --pin-lowercase mandatory \
    --pin-tries 4 --so-pin-tries 2 --master-file "$master"
serial=$(field serial < "$WORK/last.out")
slot=$(num slot < "$WORK/last.out")
t_ok "  with a serial and a slot" test -n "$serial" -a -n "$slot"
$TOOL --json vsc list > "$WORK/list.json"
t_ok "  its PIN policy" grep -q '"label":"Issued".*"policy":"min=8 max=[0-9]* digits=mandatory uppercase=optional lowercase=mandatory' "$WORK/list.json"
t_ok "  its tries: 4 user, 2 SO" grep -q '"user_tries_max":4,"so_tries_left":2,"so_tries_max":2' "$WORK/list.json"
key=$(helpdesk admin-key derive --master-file "$master" --serial "$serial")
t_ok "  its admin key, diversified from the master key" \
    sh -c "$TOOL --json card info --slot $slot | grep -q '\"kcv\":\"$(kcv_of "$key")\",\"default\":false'"
t_ok "  the user's PIN logs in" p11tool --slot "$slot" -l -p abc12345 -I
t_fail "a PIN against the policy issues nothing" $TOOL card init --new --so-pin-file "$WORK/so" --pin 123
t_ok "  (one card still)" test "$($TOOL --json vsc list | grep -o '"serial"' | wc -l)" = 1
t_fail "card init needs to be told which card" $TOOL card init --so-pin-file "$WORK/so"
t_is "  (exit 2)" "$t_rc" 2

printf data > "$WORK/d"
t_ok "a key on the card" p11tool --slot "$slot" -l -p abc12345 --keypairgen --key-type EC:prime256v1 --id 01 --label k1
t_ok "a data object" p11tool --slot "$slot" -l -p abc12345 --write-object "$WORK/d" --type data --label d1
objects() { p11tool --slot "$slot" -l -p "$1" -O 2>/dev/null | grep -c 'label:'; }
t_ok "  listed" test "$(objects abc12345)" -ge 3

# ---- the card made new again ----
t_fail "init of an existing card wants a confirmation" \
    sh -c "$TOOL card init --serial $serial --so-pin-file '$WORK/so' --pin-file '$WORK/pin2' < /dev/null"
t_is "  (exit 2)" "$t_rc" 2
t_ok "  and says what it erases" grep -q "erases card $serial" "$WORK/last.out"
t_fail "a wrong SO PIN initialises nothing" \
    $TOOL card init --serial "$serial" --so-pin-file "$WORK/wrong" --pin-file "$WORK/pin2" --yes
t_is "  (exit 4)" "$t_rc" 4
t_ok "  the keys are still there" test "$(objects abc12345)" -ge 3
t_ok "the card initialised again, with its SO PIN" $TOOL --json card init --serial "$serial" --so-pin-file "$WORK/so" \
    --new-so-pin-file "$WORK/so2" --pin-file "$WORK/pin2" --label Again --yes
t_is "  the same serial" "$(field serial < "$WORK/last.out")" "$serial"
t_is "  the same slot" "$(num slot < "$WORK/last.out")" "$slot"
p11tool -L > "$WORK/slots.out" 2>&1
t_ok "  the new label" grep -q 'token label *: Again' "$WORK/slots.out"
t_is "  no objects left" "$(objects xyz67890)" 0
t_fail "  the old PIN is gone" p11tool --slot "$slot" -l -p abc12345 -I
t_ok "  the new PIN logs in" p11tool --slot "$slot" -l -p xyz67890 -I
# (SO login on an R/W session: C_InitPIN sets the user PIN to what it is)
so_login() { p11tool --slot "$slot" -l --login-type so --so-pin "$1" --init-pin --new-pin xyz67890; }
t_ok "  the new SO PIN too" so_login 11223344
t_fail "  not the old one" so_login 87654321
$TOOL --json vsc list > "$WORK/list.json"
t_fail "  the PIN policy is tessera.conf's when none is given" grep -q 'digits=mandatory' "$WORK/list.json"
t_ok "  no admin key until one is set" sh -c "$TOOL --json card info --slot $slot | grep -q '\"admin_key\":null'"

# ---- erase ----
t_fail "erase needs the SO PIN or a response" $TOOL card erase --serial "$serial" --yes
t_is "  (exit 2)" "$t_rc" 2
t_fail "erase wants a confirmation" sh -c "$TOOL card erase --serial $serial --so-pin-file '$WORK/so2' < /dev/null"
t_ok "erase with the SO PIN" $TOOL card erase --serial "$serial" --so-pin-file "$WORK/so2" --yes
t_ok "  the card is gone from the store" sh -c "! $TOOL vsc list | grep -q $serial"
p11tool -L > "$WORK/slots.out" 2>&1
t_fail "  and from the module" grep -q "serial num *: $serial" "$WORK/slots.out"
t_fail "  erasing it again: not found" $TOOL card erase --serial "$serial" --so-pin-file "$WORK/so2" --yes
t_is "  (exit 5)" "$t_rc" 5

# Erase on the helpdesk's word: a response to the card's challenge.
t_ok "a card with a diversified admin key" $TOOL --json card init --new --so-pin-file "$WORK/so" \
    --pin-file "$WORK/pin" --master-file "$master"
serial=$(field serial < "$WORK/last.out")
chal=$($TOOL --json unblock challenge --serial "$serial" | field challenge)
other=$($TOOL admin-key derive --master-file "$master" --serial 0000000000000001)
wrong=$(helpdesk unblock response --challenge "$chal" --admin-key "$other")
t_fail "a wrong response erases nothing" $TOOL card erase --serial "$serial" --response "$wrong" --yes
t_is "  (exit 4)" "$t_rc" 4
t_ok "  the card is still there" sh -c "$TOOL vsc list | grep -q $serial"
chal=$($TOOL --json unblock challenge --serial "$serial" | field challenge)
resp=$(helpdesk unblock response --challenge "$chal" --master-file "$master" --serial "$serial")
t_ok "the helpdesk's response erases it" $TOOL card erase --serial "$serial" --response "$resp" --yes
t_ok "  gone" sh -c "! $TOOL vsc list | grep -q $serial"

# A card nothing can authorise any more: SO PIN locked, no admin key.
t_ok "a card with one SO try and no admin key" $TOOL --json card init --new --so-pin-file "$WORK/so" --so-pin-tries 1
serial=$(field serial < "$WORK/last.out")
slot=$(num slot < "$WORK/last.out")
t_fail "  its SO PIN mistyped once" so_login 00000000
t_fail "  locked" so_login 87654321
t_ok "  says so" grep -q CKR_PIN_LOCKED "$WORK/last.out"
t_ok "is erased with no authority" $TOOL card erase --serial "$serial" --yes
t_ok "  gone" sh -c "! $TOOL vsc list | grep -q $serial"

# vsc create --slot puts a card in the slot asked for.
t_ok "vsc create --slot 3" $TOOL --json vsc create --slot 3 --so-pin-file "$WORK/so" --pin-file "$WORK/pin"
t_is "  in slot 3" "$(num slot < "$WORK/last.out")" 3
t_fail "  not twice" $TOOL vsc create --slot 3 --so-pin-file "$WORK/so" --pin-file "$WORK/pin"
t_is "  (exit 1)" "$t_rc" 1

# C_InitToken says nothing of policy and tries: a card keeps its own.
t_ok "a card with 7 tries and digits required" $TOOL --json card init --new --label Keep --so-pin-file "$WORK/so" \
    --pin-tries 7 --pin-digits mandatory
slot=$(num slot < "$WORK/last.out")
t_ok "  re-initialised by pkcs11-tool (C_InitToken)" p11tool --slot "$slot" --init-token --label Kept --so-pin 87654321
$TOOL --json vsc list > "$WORK/list.json"
t_ok "  keeps its tries and its policy" grep -q '"label":"Kept","user_pin_set":false,"user_tries_left":7,"user_tries_max":7,.*digits=mandatory' "$WORK/list.json"
t_done
