# The tessera tool: virtual cards from the command line, PIN policy, the
# TPM's status and dictionary-attack settings.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

t_ok "tpm status on a reachable TPM" $TOOL tpm status
t_ok "status says present" grep -q "present: *yes" "$WORK/last.out"
$TOOL --json tpm status > "$WORK/status.json"
t_ok "json status: 32 tries (set by the harness)" grep -q '"max_tries":32' "$WORK/status.json"

t_fail "create refuses a user PIN against the policy" \
    $TOOL vsc create --label Policy --so-pin 12345678 --pin abcdefgh --pin-digits mandatory
t_ok "and says which rule" grep -q "requires digits" "$WORK/last.out"
t_fail "too short" $TOOL vsc create --so-pin 12345678 --pin 12 --pin-min 8
t_ok "says the bound" grep -q "at least 8" "$WORK/last.out"
t_fail "forbidden class" $TOOL vsc create --so-pin 12345678 --pin 'abc12345' --pin-lowercase forbidden
t_ok "says which" grep -q "forbids lowercase" "$WORK/last.out"
t_fail "too-short SO PIN" $TOOL vsc create --so-pin 12 --pin 123456

t_ok "create a card" $TOOL vsc create --label "Alice Smith" --so-pin 12345678 --pin 'Secret-123' \
    --pin-min 8 --pin-max 24 --pin-digits mandatory --pin-special mandatory
create_from_files() {
    echo 87654321 > "$WORK/so" && echo 246810 > "$WORK/pin" &&
        $TOOL vsc create --label Bob --so-pin-file "$WORK/so" --pin-file "$WORK/pin"
}
t_ok "create a second card (PINs from files)" create_from_files
$TOOL --json vsc list > "$WORK/list.json"
t_ok "list shows both" sh -c "grep -q 'Alice Smith' '$WORK/list.json' && grep -q '\"label\":\"Bob\"' '$WORK/list.json'"
t_ok "policy stored with the card" grep -q "min=8 max=24 digits=mandatory" "$WORK/list.json"
t_is "store file is private" "$(stat -c %a "$TESSERA_HOME/tessera.db")" 600
t_ok "the PIN is not in the store" sh -c "! grep -a -q 'Secret-123' '$TESSERA_HOME'/tessera.db*"

# The module sees what the tool made, and the policy holds through C_SetPIN.
t_ok "pkcs11-tool lists the cards" p11tool -L
t_ok "both labels" sh -c "grep -q 'Alice Smith' '$WORK/last.out' && grep -q 'Bob' '$WORK/last.out'"
t_fail "C_SetPIN against the policy" p11tool --token-label "Alice Smith" -l -p 'Secret-123' --change-pin --new-pin 'nospecial1'
t_ok "C_SetPIN within the policy" p11tool --token-label "Alice Smith" -l -p 'Secret-123' --change-pin --new-pin 'Other#4567'
t_ok "login with the new PIN" p11tool --token-label "Alice Smith" -l -p 'Other#4567' -O

# A private data object is stored encrypted under the card secret.
printf 'top-secret-payload-4711' > "$WORK/secret.bin"
t_ok "store a private data object" p11tool --token-label "Alice Smith" -l -p 'Other#4567' \
    --write-object "$WORK/secret.bin" --type data --label vault --private
t_ok "its contents are not in the store" sh -c "! grep -a -q 'top-secret-payload' '$TESSERA_HOME'/tessera.db*"
t_ok "read back after login" p11tool --token-label "Alice Smith" -l -p 'Other#4567' \
    --read-object --type data --label vault -o "$WORK/back.bin"
t_ok "  unchanged" cmp "$WORK/secret.bin" "$WORK/back.bin"
t_fail "invisible without login" p11tool --token-label "Alice Smith" --read-object --type data --label vault \
    -o "$WORK/back2.bin"

t_ok "delete needs --yes" sh -c "! $TOOL vsc delete --serial x"
serial=$(sed -n 's/.*"serial":"\([0-9a-f]*\)","label":"Bob".*/\1/p' "$WORK/list.json")
t_fail "delete needs Bob's SO PIN" $TOOL vsc delete --serial "$serial" --yes
t_ok "and says so" grep -q "needs its SO PIN" "$WORK/last.out"
echo 11111111 > "$WORK/wrong-so"
t_fail "a wrong SO PIN erases nothing" $TOOL vsc delete --serial "$serial" --so-pin-file "$WORK/wrong-so" --yes
t_ok "Bob is still there" sh -c "$TOOL vsc list | grep -q Bob"
t_ok "delete Bob's card" $TOOL vsc delete --serial "$serial" --so-pin-file "$WORK/so" --yes
t_ok "Bob is gone" sh -c "! $TOOL vsc list | grep -q Bob"
t_fail "deleting again says not found" $TOOL vsc delete --serial "$serial" --so-pin-file "$WORK/so" --yes

t_ok "TPM dictionary-attack settings, Windows-like" $TOOL tpm da --windows
t_ok "custom settings" $TOOL tpm da --max-tries 20 --recovery 300 --lockout-recovery 900
t_ok "read back" sh -c "$TOOL --json tpm status | grep -q '\"max_tries\":20'"
t_fail "recovery 0 (DA off) is refused" $TOOL tpm da --max-tries 20 --recovery 0 --lockout-recovery 0
t_ok "creating a card warns when the TPM locks out first" sh -c \
    "$TOOL tpm da --max-tries 3 --recovery 1000 --lockout-recovery 1000 && $TOOL vsc create --so-pin 12345678 --pin 123456 2>&1 | grep -q 'locks out after 3'"
t_ok "clear a lockout" $TOOL tpm da --clear

TESSERA_TCTI="swtpm:path=$WORK/nothing.sock" $TOOL tpm status > "$WORK/none.out" 2>&1
t_is "no TPM: exit code 3" "$?" 3
t_ok "no TPM: says so" grep -q "present: *no" "$WORK/none.out"
TESSERA_TCTI="swtpm:path=$WORK/nothing.sock" client pkcs11-tool --module "$MOD" -L > "$WORK/none2.out" 2>&1
t_is "no TPM: the module still loads and lists the existing cards" "$(grep -c 'token label' "$WORK/none2.out")" 2
t_done
