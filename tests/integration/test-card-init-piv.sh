# card init and card erase on a PIV card (the virtual card through pcscd):
# erasing resets it to its factory state (the YubiKey way: PIN and PUK
# blocked, then RESET), with the PUK, the helpdesk's response, or nothing
# once its PUK is blocked; init erases it and gives it PINs, tries, a CHUID
# (a serial of its own) and tessera.conf's or a diversified 9B key; a card
# pulled at any step of an init is finished by the next. A card without the
# YubiKey commands is refused before anything is spent.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"

helpdesk() { env -u PCSCLITE_CSOCK_NAME TESSERA_HOME="$WORK/helpdesk" "$TOOL" "$@"; }
Y() { client yubico-piv-tool -r "Virtual PCD 00 00" "$@"; }
pp() { p11tool --slot 0x100 "$@"; }
info() { $TOOL --json card info --slot 256; }
factory=010203040506070801020304050607080102030405060708
master="$WORK/master.key"
( umask 077; openssl rand -hex 32 > "$master"
  printf '12345678\n' > "$WORK/puk"; printf '87654321\n' > "$WORK/puk2"; printf '11111111\n' > "$WORK/wrong"
  printf '654321\n' > "$WORK/pin" )

card_up || { echo "Bail out! no virtual PIV card"; exit 1; }
serial0=$(info | field serial)
t_ok "a key on the factory card" pp -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 01
objects() { pp -O 2>/dev/null | grep -c 'Public Key Object'; }
t_is "  listed" "$(objects)" 1

# ---- init ----
t_fail "init wants a confirmation" sh -c "$TOOL card init --slot 256 --puk-file '$WORK/puk' --pin-file '$WORK/pin' < /dev/null"
t_is "  (exit 2)" "$t_rc" 2
t_fail "a PIV card takes no label" $TOOL card init --slot 256 --puk-file "$WORK/puk" --pin-file "$WORK/pin" \
    --label X --yes
t_fail "  nor a PIN policy" $TOOL card init --slot 256 --puk-file "$WORK/puk" --pin-file "$WORK/pin" \
    --pin-min 8 --yes
t_fail "a wrong PUK initialises nothing" $TOOL card init --slot 256 --puk-file "$WORK/wrong" --pin-file "$WORK/pin" --yes
t_is "  (exit 4)" "$t_rc" 4
t_is "  the key is still there" "$(objects)" 1
t_ok "  the PIN too" pp -l -p 123456 -I
t_ok "init with the PUK: new PIN, PUK and tries" $TOOL --json card init --slot 256 --puk-file "$WORK/puk" \
    --new-so-pin-file "$WORK/puk2" --pin-file "$WORK/pin" --pin-tries 5 --so-pin-tries 4 --yes
serial1=$(field serial < "$WORK/last.out")
t_ok "  a serial of its own (a new CHUID)" test -n "$serial1" -a "$serial1" != "$serial0"
t_is "  no keys left" "$(objects)" 0
t_ok "  the new PIN logs in" pp -l -p 654321 -I
t_fail "  not the factory one" pp -l -p 123456 -I
t_ok "  the PUK's tries are 4" sh -c "$TOOL --json card info --slot 256 | grep -q '\"unblock_tries_left\":4,\"unblock_tries_max\":4'"
t_fail "  a wrong PIN (yubico-piv-tool)" Y -a verify-pin -P 000000
t_ok "  leaves 3 of 5 tries (one spent above)" grep -q '3 tries left' "$WORK/last.out"
t_ok "  the new PUK is the SO PIN" pp -l --login-type so --so-pin 87654321 --init-pin --new-pin 654321
t_ok "  the 9B key is tessera.conf's (the factory one)" Y -k"$factory" -a set-ccc

t_ok "init with a diversified admin key" $TOOL --json card init --slot 256 --puk-file "$WORK/puk2" \
    --pin-file "$WORK/pin" --master-file "$master" --yes
serial2=$(field serial < "$WORK/last.out")
key=$(helpdesk admin-key derive --master-file "$master" --serial "$serial2")
t_ok "  its check value" sh -c "$TOOL --json card info --slot 256 | grep -q '\"kcv\":\"$(kcv_of "$key")\",\"default\":false'"
t_ok "  the card has the key (yubico-piv-tool)" Y -k"$key" -a set-ccc
t_ok "  a key generated with the PIN" pp -l -p 654321 --keypairgen --key-type EC:prime256v1 --id 02

# ---- erase ----
t_fail "erase needs an authority" $TOOL card erase --slot 256 --yes
t_is "  (exit 2)" "$t_rc" 2
t_is "  the key is still there" "$(objects)" 1
chal=$($TOOL --json unblock challenge --slot 256 | field challenge)
other=$($TOOL admin-key derive --master-file "$master" --serial 0000000000000001)
wrong=$(helpdesk unblock response --challenge "$chal" --admin-key "$other")
t_fail "a wrong response erases nothing" $TOOL card erase --slot 256 --response "$wrong" --yes
t_is "  (exit 4)" "$t_rc" 4
t_is "  and costs a PUK try" "$(info | num unblock_tries_left)" 2
resp=$(helpdesk unblock response --challenge "$chal" --master-file "$master" --serial "$serial2")
t_ok "the helpdesk's response erases it" $TOOL card erase --slot 256 --response "$resp" --yes
t_is "  no keys left" "$(objects)" 0
t_ok "  the factory PIN" pp -l -p 123456 -I
t_ok "  the factory 9B key" sh -c "$TOOL --json card info --slot 256 | grep -q '\"kcv\":\"$(kcv_of $factory)\",\"default\":true'"
t_ok "  the factory PUK" pp -l --login-type so --so-pin 12345678 --init-pin --new-pin 123456

t_ok "erase with the PUK (SO login)" $TOOL card erase --slot 256 --puk-file "$WORK/puk" --yes
t_ok "  the factory PIN" pp -l -p 123456 -I
block_puk() { for i in 1 2 3; do Y -a unblock-pin -P 00000000 -N 123456 >/dev/null 2>&1; done; }
block_puk
t_ok "a card whose PUK is blocked" sh -c "$TOOL --json card info --slot 256 | grep -q '\"unblock_tries_left\":0'"
t_ok "  is erased with no authority" $TOOL card erase --slot 256 --yes
t_ok "  and has its PUK back" sh -c "$TOOL --json card info --slot 256 | grep -q '\"unblock_tries_left\":3'"

# ---- a card pulled out at every step of card init ----
# Pull the card after 1, 2, 3 ... commands of a card init (a key on it, PUK
# 87654321 kept); put back, a card init with the PUK it was given or with
# the factory one (tried in that order) finishes it: PIN and PUK as asked,
# no key left. Until an init gets through without being pulled.
init_with() { $TOOL card init --slot 256 --puk-file "$1" --new-so-pin-file "$WORK/puk2" --pin-file "$WORK/pin" --yes; }
finished() { [ "$(objects)" = 0 ] && pp -l -p 654321 -I >/dev/null 2>&1 &&
    pp -l --login-type so --so-pin 87654321 --init-pin --new-pin 654321 >/dev/null 2>&1; }
t_ok "a card initialised with PUK 87654321" init_with "$WORK/puk"
pulled_n=0; pulled_ok=0
for n in $(seq 1 80); do
    pp -l -p 654321 --keypairgen --key-type EC:prime256v1 --id 03 >/dev/null 2>&1
    card_stop && card_start vpiv "$VPCD_PORT0" --pull-after "$n" || break
    init_with "$WORK/puk2" >/dev/null 2>&1 && break   # not pulled before the end
    card_gone && card_start vpiv "$VPCD_PORT0" || break
    pulled_n=$((pulled_n + 1))
    if { init_with "$WORK/puk2" || init_with "$WORK/puk"; } > "$WORK/pull.out" 2>&1 && finished; then
        pulled_ok=$((pulled_ok + 1))
    else
        echo "# pulled after $n commands: $(tr '\n' ' ' < "$WORK/pull.out")"
    fi
done
card_stop; card_start vpiv "$VPCD_PORT0"
t_ok "card init was pulled at each of its steps ($pulled_n)" test "$pulled_n" -ge 15 -a "$pulled_n" -lt 80
t_is "  and each time a new card init finished it" "$pulled_ok" "$pulled_n"
t_ok "  the card as asked" finished

# A PIV card without the YubiKey commands cannot be reset: refused before
# any PIN or PUK try is spent.
card_stop vpiv
t_ok "a PIV card of another make" card_start plain "$VPCD_PORT0" --plain
t_fail "  is not erased" $TOOL card erase --slot 256 --puk-file "$WORK/puk" --yes
t_ok "  says why" grep -q "does not support" "$WORK/last.out"
t_fail "  nor initialised" $TOOL card init --slot 256 --puk-file "$WORK/puk" --pin-file "$WORK/pin" --yes
t_ok "  its PIN untouched" pp -l -p 123456 -I
t_ok "  its PUK untouched" pp -l --login-type so --so-pin 12345678 --init-pin --new-pin 123456
t_done
