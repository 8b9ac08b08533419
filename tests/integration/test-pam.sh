# Smart-card logon: pam_pkcs11 with Tessera's module, checked with pamtester.
# The card's certificate (issued by the test CA) maps by its common name to
# the local user running the test; pam_pkcs11 checks the chain, has the card
# sign a challenge with the key and consults the CA's CRL. The right PIN logs
# in; a wrong PIN, a locked card and a revoked certificate do not. A TPM
# virtual card and the virtual PIV card.
#
# The PAM service lives in $WORK/pam.d, bound over /etc/pam.d in a private
# mount namespace for each pamtester run: the host's PAM setup is not touched.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

me=$(id -un)
mkdir -p "$WORK/pam.d" "$WORK/cacerts" "$WORK/crls"

# The CA as pam_pkcs11 reads it: certificates and CRLs in hashed folders.
ca_setup() {
    cp "$WORK/ca.pem" "$WORK/cacerts/" && openssl rehash "$WORK/cacerts" || return 1
    mkdir -p "$WORK/ca-db" && : > "$WORK/ca-db/index.txt" && echo 01 > "$WORK/ca-db/crlnumber"
    cat > "$WORK/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
database = $WORK/ca-db/index.txt
crlnumber = $WORK/ca-db/crlnumber
certificate = $WORK/ca.pem
private_key = $WORK/ca.key
default_md = sha256
default_crl_days = 7
CNF
    publish_crl
}
publish_crl() {   # the CA's current CRL into the CRL folder
    openssl ca -config "$WORK/ca.cnf" -gencrl -out "$WORK/crls/ca.crl" 2>/dev/null &&
        rm -f "$WORK"/crls/*.r0 && openssl rehash "$WORK/crls"
}
revoke() {   # revoke CERT: the CA revokes it and publishes a CRL that lists it
    openssl ca -config "$WORK/ca.cnf" -revoke "$1" 2>/dev/null && publish_crl &&
        openssl crl -in "$WORK/crls/ca.crl" -noout -text |
            grep -qi "Serial Number: $(openssl x509 -in "$1" -noout -serial | cut -d= -f2)"
}

# pam_pkcs11.conf for one slot of Tessera's module, and the PAM service.
pam_setup() {   # pam_setup SLOT-DESCRIPTION CN
    cat > "$WORK/pam_pkcs11.conf" <<CONF
pam_pkcs11 {
  nullok = false;
  debug = false;
  use_first_pass = false;
  try_first_pass = false;
  use_authtok = false;
  card_only = true;
  wait_for_card = false;
  use_pkcs11_module = tessera;
  pkcs11_module tessera {
    module = $MOD;
    description = "Tessera";
    slot_description = "$1";
    ca_dir = $WORK/cacerts;
    crl_dir = $WORK/crls;
    support_threads = true;
    cert_policy = ca, signature, crl_offline;
    token_type = "Smart card";
  }
  use_mappers = cn;
  mapper cn {
    debug = false;
    module = internal;
    ignorecase = false;
    mapfile = file://$WORK/cn_map;
  }
}
CONF
    printf '%s -> %s\n' "$2" "$me" > "$WORK/cn_map"
    printf 'auth required pam_pkcs11.so config_file=%s\naccount required pam_permit.so\n' \
        "$WORK/pam_pkcs11.conf" > "$WORK/pam.d/tessera-test"
}
login_with() {   # login_with PIN: pamtester authenticates the user with the card
    printf '%s\n' "$1" | client with_folder_over "$WORK/pam.d" /etc/pam.d pamtester -v tessera-test "$me" authenticate
}

t_ok "the test PKI" prog_pki
t_ok "the CA's folders and CRL for pam_pkcs11" ca_setup
t_ok "a TPM card with keys and certificates" prog_tpm_card
# pam_pkcs11 takes the first certificate it can map: only the RSA one is mapped
pam_setup "Tessera TPM virtual card reader 0" "Jane Doe"
t_ok "the right PIN logs in" login_with "$PIN"
t_ok "  pamtester says so" grep -q "successfully authenticated" "$WORK/last.out"
t_fail "a wrong PIN does not" login_with 000000
t_ok "  pam_pkcs11 says why" grep -q "Wrong smartcard PIN" "$WORK/last.out"
t_ok "the right PIN again" login_with "$PIN"
printf 'Someone Else -> %s\n' "$me" > "$WORK/cn_map"
t_fail "a certificate mapped to nobody does not log in" login_with "$PIN"
t_ok "  no matching certificate" grep -q "No matching certificate found" "$WORK/last.out"
printf '%s -> %s\n' "Jane Doe" "$me" > "$WORK/cn_map"
t_ok "the card's PIN locked by wrong tries" lock_pin --token-label "Jane TPM"
t_fail "a locked card does not log in, even with the right PIN" login_with "$PIN"
t_ok "the SO unblocks it (C_InitPIN)" p11tool --token-label "Jane TPM" --login --login-type so --so-pin "$SO_PIN" \
    --init-pin --new-pin "$PIN"
t_ok "then the right PIN logs in" login_with "$PIN"
t_ok "the CA revokes Jane's certificate and publishes its CRL" revoke "$WORK/jane-rsa.pem"
# (the same card, PIN and settings logged in just before the CRL changed)
t_fail "a revoked certificate does not log in" login_with "$PIN"
t_ok "  it is not taken" grep -q "No matching certificate found" "$WORK/last.out"

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    pam_setup "Virtual PCD 00 00" "Jane PIV"
    t_ok "PIV: the right PIN logs in" login_with "$PIN"
    t_fail "PIV: a wrong PIN does not" login_with 000000
    t_ok "PIV: the card's PIN locked by wrong tries" lock_pin --slot 0x100
    t_fail "PIV: a locked card does not log in" login_with "$PIN"
    t_ok "PIV: the PUK unblocks it" p11tool --slot 0x100 --login --login-type so --so-pin "$SO_PIN" \
        --init-pin --new-pin "$PIN"
    t_ok "PIV: then the right PIN logs in" login_with "$PIN"
    t_ok "PIV: the CA revokes the card's 9A certificate" revoke "$WORK/piv-auth.pem"
    t_fail "PIV: a revoked certificate does not log in" login_with "$PIN"
fi
t_done
