# The master key inside an HSM (SoftHSM2), named by a PKCS#11 URI: the HSM
# computes the SP 800-108 PRF and the key never leaves it; the per-card keys
# are the same as from the same master key in a file. The issuer makes a
# card with it, the helpdesk answers with it, and a card moves from a file
# master to an HSM master by rotation.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/hsm.sh"

master_hex=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
( umask 077; printf '%s\n' "$master_hex" > "$WORK/master.key"; printf '%s' "$master_hex" | xxd -r -p > "$WORK/master.bin"
  openssl rand 32 > "$WORK/hmac.bin" )
t_ok "an HSM token for the helpdesk" hsm_init
t_ok "the master key written into it (AES-256, sensitive)" hsm_put_master "$WORK/master.bin"
# pkcs11-tool 0.23 cannot write a generic secret; PyKCS11 can.
put_hmac_key() {
    /usr/bin/python3 - "$SOFTHSM" "$WORK/hmac.bin" <<'PY'
import sys, PyKCS11
from PyKCS11.LowLevel import CKA_CLASS, CKO_SECRET_KEY, CKA_KEY_TYPE, CKK_GENERIC_SECRET, CKA_VALUE, CKA_LABEL, \
    CKA_TOKEN, CKA_SIGN, CKA_SENSITIVE, CKA_EXTRACTABLE
lib = PyKCS11.PyKCS11Lib(); lib.load(sys.argv[1])
slot = [s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == "helpdesk"][0]
s = lib.openSession(slot, PyKCS11.CKF_RW_SESSION); s.login("1234")
s.createObject([(CKA_CLASS, CKO_SECRET_KEY), (CKA_KEY_TYPE, CKK_GENERIC_SECRET), (CKA_TOKEN, True),
                (CKA_LABEL, "hmac-master"), (CKA_SIGN, True), (CKA_SENSITIVE, True), (CKA_EXTRACTABLE, False),
                (CKA_VALUE, open(sys.argv[2], "rb").read())])
PY
}
t_ok "an HMAC master key too (generic secret, not extractable)" put_hmac_key
t_fail "the HSM will not give the key's value out" hsm -l -p 1234 --read-object --type secrkey --label master \
    -o "$WORK/leak.bin"
rm -f "$WORK/master.bin"

uri=$HSM_URI
H=$HSM_OPTS
from_file=$($TOOL admin-key derive --master-file "$WORK/master.key" --serial 0123456789abcdef)
t_ok "a card's key derived inside the HSM" $TOOL admin-key derive --master-uri "$uri" $H --serial 0123456789abcdef
t_is "  is the key derived from the same master in a file (CMAC-AES256)" "$(cat "$WORK/last.out")" "$from_file"
t_ok "the module and PIN may come in the URI" $TOOL admin-key derive --serial 0123456789abcdef \
    --master-uri "$uri?module-path=$SOFTHSM&pin-source=file:$WORK/hsm.pin"
t_is "  the same key" "$(cat "$WORK/last.out")" "$from_file"
( umask 077; xxd -p -c 64 "$WORK/hmac.bin" > "$WORK/hmac.key" )
a=$($TOOL admin-key derive --master-file "$WORK/hmac.key" --prf hmac-sha256 --alg aes256 --serial card-7)
b=$($TOOL admin-key derive --master-uri "pkcs11:token=helpdesk;object=hmac-master" $H --prf hmac-sha256 --alg aes256 \
    --serial card-7)
t_is "HMAC-SHA-256 in the HSM = in a file (AES-256 key, two PRF blocks)" "$b" "$a"
t_fail "an AES master key refused for the HMAC PRF" $TOOL admin-key derive --master-uri "$uri" $H \
    --prf hmac-sha256 --serial x
t_ok "  saying why" grep -q "does not fit --prf hmac-sha256" "$WORK/last.out"
echo 9999 > "$WORK/bad.pin"
t_fail "a wrong HSM PIN" $TOOL admin-key derive --master-uri "$uri" --hsm-module "$SOFTHSM" \
    --hsm-pin-file "$WORK/bad.pin" --serial x
t_is "  exits 4" "$t_rc" 4
t_fail "a URI naming no key" $TOOL admin-key derive --master-uri "pkcs11:token=helpdesk;object=nothing" $H --serial x
t_fail "no HSM module given" env -u TESSERA_HSM_MODULE $TOOL admin-key derive --master-uri "$uri" --serial x
t_is "  exits 2" "$t_rc" 2

# The issuer makes a card with the HSM's master; the helpdesk answers with it.
printf '87654321\n' > "$WORK/so"; printf '123456\n' > "$WORK/pin"; printf '246810\n' > "$WORK/newpin"
t_ok "a card made with a key diversified inside the HSM" $TOOL --json vsc create --label Hsm --so-pin-file "$WORK/so" \
    --pin-file "$WORK/pin" --master-uri "$uri" $H
serial=$(field serial < "$WORK/last.out")
chal=$($TOOL --json unblock challenge --serial "$serial" | field challenge)
t_ok "the helpdesk answers from the HSM" $TOOL unblock response --challenge "$chal" --master-uri "$uri" $H \
    --serial "$serial"
resp=$(cat "$WORK/last.out")
t_ok "the answer unblocks the card" $TOOL unblock complete --serial "$serial" --response "$resp" \
    --pin-file "$WORK/newpin"

# A card on the file master moves to the HSM's HMAC master, card by card.
t_ok "a card on the file master" $TOOL --json vsc create --label File --so-pin-file "$WORK/so" \
    --pin-file "$WORK/pin" --master-file "$WORK/master.key"
serial2=$(field serial < "$WORK/last.out")
t_ok "rotated to the HSM's HMAC master" $TOOL admin-key rotate --serial "$serial2" \
    --old-master-file "$WORK/master.key" --master-uri "pkcs11:token=helpdesk;object=hmac-master" $H --prf hmac-sha256
chal=$($TOOL --json unblock challenge --serial "$serial2" | field challenge)
resp=$($TOOL unblock response --challenge "$chal" --master-uri "pkcs11:token=helpdesk;object=hmac-master" $H \
    --prf hmac-sha256 --serial "$serial2")
t_ok "  and answers the new master" $TOOL unblock complete --serial "$serial2" --response "$resp" \
    --pin-file "$WORK/newpin"
t_done
