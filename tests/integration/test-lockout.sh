# PIN retry counters against the TPM's dictionary-attack lockout: a card's own
# counter locks that card long before the TPM locks out every card; when the
# TPM is in lockout, PIN attempts are refused without spending the card's tries.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

tries_left() {   # tries_left LABEL -> user_tries_left from vsc list --json
    $TOOL --json vsc list | tr '{' '\n' | grep "\"label\":\"$1\"" | sed 's/.*"user_tries_left":\([0-9]*\).*/\1/'
}
login() { p11tool --token-label "$1" -l -p "$2" -O; }
da_counter() { $TOOL --json tpm status | sed 's/.*"lockout_counter":\([0-9]*\).*/\1/'; }
in_lockout() { $TOOL --json tpm status | grep -q '"in_lockout":true'; }

t_ok "card A" $TOOL vsc create --label A --so-pin 12345678 --pin 111111
t_ok "card B" $TOOL vsc create --label B --so-pin 12345678 --pin 222222

for i in 1 2 3 4 5; do login A 999999 >/dev/null 2>&1; done
t_is "A spent its five tries" "$(tries_left A)" 0
t_fail "A is locked: the right PIN is refused" login A 111111
t_ok "  with CKR_PIN_LOCKED" grep -q "CKR_PIN_LOCKED" "$WORK/last.out"
t_is "the TPM counted five failures, of 32" "$(da_counter)" 5
t_fail "the TPM is not in lockout" in_lockout
t_ok "card B is untouched" login B 222222
t_is "B's counter is full" "$(tries_left B)" 5

# A TPM left at the reference defaults (3 tries) locks out before any card.
t_ok "TPM set to 3 tries" $TOOL tpm da --max-tries 3 --recovery 1000 --lockout-recovery 1000
t_ok "  and Tessera warns about it" sh -c "$TOOL tpm status | grep -q 'locks out before a card'"
t_ok "clear the failures so far" $TOOL tpm da --clear
for i in 1 2 3; do login B 999999 >/dev/null 2>&1; done
t_ok "three wrong PINs put the TPM in lockout" in_lockout
t_is "B spent three tries" "$(tries_left B)" 2
t_fail "in lockout the right PIN is refused" login B 222222
t_ok "  with CKR_PIN_LOCKED" grep -q "CKR_PIN_LOCKED" "$WORK/last.out"
t_is "and the refusal did not spend B's tries" "$(tries_left B)" 2
t_ok "the administrator clears the TPM lockout" $TOOL tpm da --clear
t_ok "B opens again" login B 222222
t_is "B's counter is full again" "$(tries_left B)" 5

# The SO unblocks A; the SO PIN has its own counter.
t_ok "SO unblocks A with a new user PIN" p11tool --token-label A --login --login-type so --so-pin 12345678 \
    --init-pin --new-pin 333333
t_ok "A opens with the new PIN" login A 333333
t_done
