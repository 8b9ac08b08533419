# p11-kit: the module file Tessera installs (conf/tessera.module.in) makes
# `p11-kit list-modules` show Tessera's cards, and the p11-kit proxy module
# (what most programs load) forwards to it: pkcs11-tool signs through the
# proxy and OpenSSL verifies. A TPM virtual card and the virtual PIV card.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

PROXY=$(find /usr/lib/*-linux-gnu /usr/lib64 /usr/lib -maxdepth 1 -name p11-kit-proxy.so 2>/dev/null | head -1)

# p11-kit reads no user configuration in a process running as root, so each
# command runs in its own mount namespace where p11-kit's module folder
# holds only Tessera's module file, as installed but naming this build.
mkdir -p "$WORK/p11-modules"
sed "s|@pkcs11dir@|$(dirname "$MOD")|" "$TESSERA_SRCDIR/conf/tessera.module.in" > "$WORK/p11-modules/tessera.module"
in_module_folder() { with_folder_over "$WORK/p11-modules" /usr/share/p11-kit/modules "$@"; }
p11kit_list() { client_p11kit in_module_folder p11-kit list-modules; }
proxy_tool() { client in_module_folder pkcs11-tool --module "$PROXY" "$@"; }
proxy_signs() {   # proxy_signs TOKEN-LABEL ID CERT
    proxy_tool --token-label "$1" -l --pin "$PIN" --sign -m SHA256-RSA-PKCS --id "$2" -i "$WORK/data" \
        -o "$WORK/sig" &&
        openssl x509 -in "$3" -pubkey -noout > "$WORK/pub.pem" &&
        openssl dgst -sha256 -verify "$WORK/pub.pem" -signature "$WORK/sig" "$WORK/data"
}
printf 'signed through p11-kit\n' > "$WORK/data"

t_ok "the test PKI" prog_pki
t_ok "a TPM card with keys and certificates" prog_tpm_card
t_ok "p11-kit-proxy.so is installed" test -n "$PROXY"
t_ok "p11-kit list-modules with the module file" p11kit_list
cp "$WORK/last.out" "$WORK/modules"
t_ok "  shows the Tessera module" grep -q "^tessera: .*tessera-pkcs11.so" "$WORK/modules"
t_ok "  described as Tessera" grep -q "library-manufacturer: Tessera" "$WORK/modules"
t_ok "  with the TPM card as a token" grep -q "token: Jane TPM" "$WORK/modules"
t_ok "the proxy lists the card" proxy_tool -L
cp "$WORK/last.out" "$WORK/slots"
t_ok "  by its label" grep -q "token label *: Jane TPM" "$WORK/slots"
t_ok "  and serial" grep -q "serial num *: $TPM_SERIAL" "$WORK/slots"
t_ok "the proxy lists the card's certificates" proxy_tool --token-label "Jane TPM" -O --type cert
t_ok "  Jane's" grep -q "Jane RSA" "$WORK/last.out"
t_ok "pkcs11-tool signs through the proxy, OpenSSL verifies" proxy_signs "Jane TPM" "$TPM_RSA_ID" \
    "$WORK/jane-rsa.pem"
t_fail "a wrong PIN through the proxy is refused" proxy_tool --token-label "Jane TPM" -l --pin 000000 -O
t_ok "  as CKR_PIN_INCORRECT" grep -q "CKR_PIN_INCORRECT" "$WORK/last.out"

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    t_ok "p11-kit list-modules" p11kit_list
    sed -n '/^tessera:/,/^[a-z]/p' "$WORK/last.out" > "$WORK/tessera-module"
    t_ok "  shows the PIV card as a token of the Tessera module" grep -q "serial-number: $PIV_SERIAL" \
        "$WORK/tessera-module"
    t_ok "pkcs11-tool signs with 9A through the proxy, OpenSSL verifies" proxy_signs "$(token_label_of "$PIV_SERIAL")" 01 \
        "$WORK/piv-auth.pem"
fi
t_done
