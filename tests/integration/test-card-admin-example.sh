# doc/examples/card-admin.c, the vendor interface's example program, built
# against the installed header alone and run against a real card.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
EX="$TESSERA_BUILDDIR/doc/examples/card-admin"

t_ok "a card with the default admin key" $TOOL vsc create --label Ex --so-pin 87654321 --pin 123456 \
    --admin-key default
t_ok "the example lists it" client "$EX" "$MOD"
cp "$WORK/last.out" "$WORK/list"
t_ok "  with its default key's check value" grep -q "3DES-192, KCV B073DC (default key!)" "$WORK/list"
t_ok "  and its unblock counter" grep -q "5 of 5 tries left" "$WORK/list"
for i in 1 2 3 4 5 6; do p11tool --slot 0 -l -p 000000 -I >/dev/null 2>&1; done
t_ok "the example gives a challenge" client "$EX" "$MOD" challenge 0
chal=$(cat "$WORK/last.out")
resp=$($TOOL --json unblock response --challenge "$chal" --admin-key default |
    sed 's/.*"response_hex":"\([0-9a-f]*\)".*/\1/')
t_fail "a wrong response is refused" client "$EX" "$MOD" unblock 0 0011223344556677 654321
t_ok "  as wrong" grep -q "wrong response" "$WORK/last.out"
chal=$(client "$EX" "$MOD" challenge 0)
resp=$($TOOL --json unblock response --challenge "$chal" --admin-key default |
    sed 's/.*"response_hex":"\([0-9a-f]*\)".*/\1/')
t_ok "the example unblocks with the right one" client "$EX" "$MOD" unblock 0 "$resp" 654321
t_ok "the new PIN logs in" p11tool --slot 0 -l -p 654321 -I
t_done
