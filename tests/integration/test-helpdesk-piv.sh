# The offline unblock over the phone on a PIV card, in two processes that
# share nothing: the user's side with the card (virtual PIV card, pcscd) and
# the helpdesk's with the master key inside an HSM (SoftHSM2; no card, no
# reader, another TESSERA_HOME). The issuer hands the card to Tessera with
# its PUK; its 9B key becomes the diversified admin key (checked with
# yubico-piv-tool), its PUK a secret nobody is told; wrong responses are
# counted by the card's PUK counter; a response answers once; rotation to
# another master; and a card pulled out at every step of an unblock or a
# rotation leaves a card the next right response unblocks.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"
. "$TESSERA_SRCDIR/tests/lib/hsm.sh"

helpdesk() { env -u PCSCLITE_CSOCK_NAME TESSERA_HOME="$WORK/helpdesk" "$TOOL" "$@"; }
Y() { client yubico-piv-tool -r "Virtual PCD 00 00" "$@"; }
pp() { p11tool --slot 0x100 "$@"; }
tries() { $TOOL --json card info --slot 256 | num unblock_tries_left; }
factory=010203040506070801020304050607080102030405060708

master_hex=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
( umask 077; printf '%s' "$master_hex" | xxd -r -p > "$WORK/master.bin"; openssl rand -hex 32 > "$WORK/master2.key"
  printf '12345678\n' > "$WORK/puk"; printf '123456\n' > "$WORK/pin"; printf '246810\n' > "$WORK/newpin" )
hsm_up() { hsm_init && hsm_put_master "$WORK/master.bin"; }
t_ok "the helpdesk's HSM holds the master key" hsm_up
rm -f "$WORK/master.bin"

card_up || { echo "Bail out! no virtual PIV card"; exit 1; }
t_ok "a factory PIV card" $TOOL --json card info --slot 256
serial=$(field serial < "$WORK/last.out")
t_ok "  its admin key is the factory 9B key" grep -q "\"kcv\":\"$(kcv_of $factory)\",\"default\":true" "$WORK/last.out"
t_fail "  no challenge before Tessera administers it" $TOOL unblock challenge --slot 256
t_is "  (exit 6)" "$t_rc" 6

# ---- the issuer: PUK and factory 9B key in, diversified key out ----
t_fail "a wrong PUK sets no admin key" sh -c "printf '87654321\n' | $TOOL admin-key set --slot 256 --so-pin-file - \
    --master-uri '$HSM_URI' $HSM_OPTS"
t_is "  (exit 4)" "$t_rc" 4
t_ok "the issuer sets the admin key, diversified inside the HSM" $TOOL admin-key set --slot 256 \
    --so-pin-file "$WORK/puk" --master-uri "$HSM_URI" $HSM_OPTS
key=$(helpdesk admin-key derive --master-uri "$HSM_URI" $HSM_OPTS --serial "$serial")
t_ok "  card info shows its check value" sh -c "$TOOL --json card info --slot 256 | grep -q '\"kcv\":\"$(kcv_of "$key")\",\"default\":false'"
t_ok "  and the card's PUK counter as the unblock counter" test "$(tries)" = 3
t_ok "the card's 9B key is now the diversified key (yubico-piv-tool)" Y -k"$key" -a set-ccc
t_fail "  not the factory key" Y -k"$factory" -a set-ccc
t_ok "a logged-in user still generates keys (the card keeps the key for its PIN holder)" \
    pp -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 01
t_fail "  but nobody without the PIN" pp --keypairgen --key-type EC:prime256v1 --id 02

# ---- the helpdesk flow ----
lock() { for i in 1 2 3 4; do pp -l -p 000000 -I >/dev/null 2>&1; done; }
lock
t_fail "the user has locked the PIN" pp -l -p 123456 -I
t_ok "the user's side gives a challenge" $TOOL --json unblock challenge --slot 256
chal=$(field challenge < "$WORK/last.out")
t_is "  with the card's serial to read out" "$(field serial < "$WORK/last.out")" "$serial"
t_is "  the same one when asked again" "$($TOOL --json unblock challenge --slot 256 | field challenge)" "$chal"
t_fail "  a new one before it is answered: not on a PIV card" $TOOL unblock challenge --slot 256 --new
t_ok "the helpdesk answers from the HSM alone" \
    helpdesk unblock response --challenge "$chal" --master-uri "$HSM_URI" $HSM_OPTS --serial "$serial"
resp=$(cat "$WORK/last.out")
typo=$(printf '%s' "$resp" | sed 's/^./Z/'); [ "$typo" = "$resp" ] && typo=$(printf '%s' "$resp" | sed 's/^./Y/')
t_fail "a mistyped response is caught before the card sees it" \
    $TOOL unblock complete --slot 256 --response "$typo" --pin-file "$WORK/newpin"
t_is "  (exit 2) and cost no try" "$t_rc/$(tries)" 2/3
other=$(helpdesk unblock response --challenge "$chal" --master-uri "$HSM_URI" $HSM_OPTS --serial 0000000000000001)
t_fail "another card's response is refused" \
    $TOOL unblock complete --slot 256 --response "$other" --pin-file "$WORK/newpin"
t_is "  (exit 4) and counted by the card" "$t_rc/$(tries)" 4/2
t_ok "the user types the right response and a new PIN" \
    $TOOL unblock complete --slot 256 --response "$resp" --pin-file "$WORK/newpin"
t_ok "  the new PIN logs in" pp -l -p 246810 -I
t_is "  the unblock counter is full again" "$(tries)" 3
t_ok "  the challenge has changed" test "$($TOOL --json unblock challenge --slot 256 | field challenge)" != "$chal"
t_fail "the same response again is refused" \
    $TOOL unblock complete --slot 256 --response "$resp" --pin-file "$WORK/pin"
t_is "  (exit 4) and counted" "$t_rc/$(tries)" 4/2
t_fail "the factory PUK does not unblock it either (Y)" Y -a unblock-pin -P 12345678 -N 111111
t_is "  (a PUK try spent)" "$(tries)" 1

# ---- rotation to another master, answering a challenge with the old key ----
t_ok "rotation from the HSM master to a file master" $TOOL admin-key rotate --slot 256 \
    --old-master-uri "$HSM_URI" $HSM_OPTS --master-file "$WORK/master2.key"
key2=$($TOOL admin-key derive --master-file "$WORK/master2.key" --serial "$serial")
t_ok "  the 9B key is the new one" Y -k"$key2" -a set-ccc
t_fail "  not the old one" Y -k"$key" -a set-ccc
t_ok "  the PUK counter is full again" test "$(tries)" = 3
t_ok "  the logged-in user still generates keys" pp -l -p 246810 --keypairgen --key-type EC:prime256v1 --id 01
chal=$($TOOL --json unblock challenge --slot 256 | field challenge)
old=$(helpdesk unblock response --challenge "$chal" --master-uri "$HSM_URI" $HSM_OPTS --serial "$serial")
t_fail "  the old master's responses no longer work" \
    $TOOL unblock complete --slot 256 --response "$old" --pin-file "$WORK/pin"
good=$($TOOL unblock response --challenge "$chal" --master-file "$WORK/master2.key" --serial "$serial")
t_ok "  the new master's do" $TOOL unblock complete --slot 256 --response "$good" --pin-file "$WORK/pin"
t_ok "  and the PIN they set logs in" pp -l -p 123456 -I

# ---- a card pulled out at every step of an unblock ----
# Pull the card after 1, 2, 3 ... commands of the whole flow (challenge,
# then complete), put it back, and the next right response must unblock it;
# until the flow gets through without being pulled.
unblock_now() {   # unblock_now PINFILE: the whole flow, helpdesk included
    local c r
    c=$($TOOL --json unblock challenge --slot 256 | field challenge) || return 1
    r=$($TOOL unblock response --challenge "$c" --master-file "$WORK/master2.key" --serial "$serial") || return 1
    $TOOL unblock complete --slot 256 --response "$r" --pin-file "$1"
}
pulled_n=0
pulled_ok=0
for n in $(seq 1 60); do
    card_stop && card_start vpiv "$VPCD_PORT0" --pull-after "$n" || break
    unblock_now "$WORK/newpin" >/dev/null 2>&1 && break   # not pulled before the end
    card_gone && card_start vpiv "$VPCD_PORT0" || break
    pulled_n=$((pulled_n + 1))
    if unblock_now "$WORK/pin" > "$WORK/pull.out" 2>&1 && pp -l -p 123456 -I >/dev/null 2>&1; then
        pulled_ok=$((pulled_ok + 1))
    else
        echo "# pulled after $n commands: $(cat "$WORK/pull.out")"
    fi
done
card_stop; card_start vpiv "$VPCD_PORT0"
t_ok "the flow was pulled at each of its steps ($pulled_n)" test "$pulled_n" -ge 15 -a "$pulled_n" -lt 60
t_is "  and each time the next right response unblocked the card" "$pulled_ok" "$pulled_n"
t_ok "  the PUK counter is full" test "$(tries)" = 3
t_ok "  and the 9B key is still the new master's" Y -k"$key2" -a set-ccc

# ---- a card pulled out at every step of an admin-key rotation ----
# Rotate between two masters, pulling the card after 1, 2, 3 ... commands.
# Put back, the card's check value names one of the two keys; that key's
# 9B authentication works and its master's response unblocks (finishing the
# change); the next round rotates from there.
( umask 077; openssl rand -hex 32 > "$WORK/master3.key" )
key3=$($TOOL admin-key derive --master-file "$WORK/master3.key" --serial "$serial")
cur=master2; rot_n=0; rot_ok=0
for n in $(seq 1 60); do
    if [ $cur = master2 ]; then to=master3; else to=master2; fi
    card_stop && card_start vpiv "$VPCD_PORT0" --pull-after "$n" || break
    if $TOOL admin-key rotate --slot 256 --old-master-file "$WORK/$cur.key" --master-file "$WORK/$to.key" \
        >/dev/null 2>&1; then
        cur=$to
        break   # not pulled before the end
    fi
    card_gone && card_start vpiv "$VPCD_PORT0" || break
    rot_n=$((rot_n + 1))
    kcv=$($TOOL --json card info --slot 256 | field kcv)
    if [ "$kcv" = "$(kcv_of "$key2")" ]; then now=master2; k=$key2; else now=master3; k=$key3; fi
    c=$($TOOL --json unblock challenge --slot 256 | field challenge)
    r=$($TOOL unblock response --challenge "$c" --master-file "$WORK/$now.key" --serial "$serial")
    if [ "$kcv" = "$(kcv_of "$k")" ] && $TOOL unblock complete --slot 256 --response "$r" --pin-file "$WORK/pin" \
        > "$WORK/pull.out" 2>&1 && Y -k"$k" -a set-ccc >/dev/null 2>&1; then
        rot_ok=$((rot_ok + 1))
    else
        echo "# rotation pulled after $n commands: card says $kcv; $(cat "$WORK/pull.out")"
    fi
    cur=$now
done
card_stop; card_start vpiv "$VPCD_PORT0"
t_ok "a rotation was pulled at each of its steps ($rot_n)" test "$rot_n" -ge 15 -a "$rot_n" -lt 60
t_is "  each time the card had one of the two keys, and its master's response unblocked it" "$rot_ok" "$rot_n"
if [ $cur = master3 ]; then key2=$key3; cp "$WORK/master3.key" "$WORK/master2.key"; fi
t_ok "  the PIN logs in" pp -l -p 123456 -I

# ---- wrong responses lock unblock ----
chal=$($TOOL --json unblock challenge --slot 256 | field challenge)
bad=$(helpdesk unblock response --challenge "$chal" --master-uri "$HSM_URI" $HSM_OPTS --serial "$serial")
for i in 1 2 3; do $TOOL unblock complete --slot 256 --response "$bad" --pin-file "$WORK/pin" >/dev/null 2>&1; done
t_fail "after three wrong responses" $TOOL unblock complete --slot 256 --response "$bad" --pin-file "$WORK/pin"
t_is "  unblock is locked (exit 6)" "$t_rc" 6
good=$($TOOL unblock response --challenge "$chal" --master-file "$WORK/master2.key" --serial "$serial")
t_fail "  even for the right response" $TOOL unblock complete --slot 256 --response "$good" --pin-file "$WORK/pin"
t_ok "  card info says so" sh -c "$TOOL --json card info --slot 256 | grep -q '\"unblock_locked\":true'"
t_done
