# The helpdesk side of an offline unblock: admin keys diversified from a
# master key per card (SP 800-108), and the Windows-compatible response to a
# card's challenge (3DES-ECB under the admin key), checked with openssl.
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
t_ok "  given as a code to read aloud ($code)" test "${#code}" = 18
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
t_done
