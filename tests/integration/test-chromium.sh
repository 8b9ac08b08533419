# Chromium with Tessera: the module in the user's NSS database
# (~/.pki/nssdb), a client certificate chosen by the AutoSelectCertificateForUrls
# policy, a TLS handshake with a server that demands one, signed by the key
# on the card; Chromium asks for the PIN with its own dialog, typed into it
# by tests/lib/chromium-client-auth.py. Chromium runs with a window, on an X
# server of the test's own (Xvfb): headless mode cannot show that dialog.
# A TPM virtual card and the virtual PIV card.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

if [ -n "${TESSERA_PRELOAD:-}" ]; then
    # A browser with its own allocator and sandbox does not run under a
    # preloaded ASan runtime; the module's code is checked there by every
    # other client, and Chromium runs in the default build.
    t_skip "Chromium" "not run in the sanitizer build"
    t_done
    exit
fi

export HOME="$WORK/home"
db="sql:$HOME/.pki/nssdb"
nss_db() {
    mkdir -p "$HOME/.pki/nssdb" &&
        certutil -N -d "$db" --empty-password &&
        certutil -A -d "$db" -n "Tessera Test CA" -t "CT,C,C" -i "$WORK/ca.pem" &&
        modutil -dbdir "$db" -add Tessera -libfile "$MOD" -force < /dev/null
}

# chromium_login SUBJECT-CN PIN-FILE: a fresh Chromium profile whose policy
# picks the certificate with that subject for the test server; succeeds when
# the page the server sends back names that certificate's subject.
chromium_login() {
    local policy="$WORK/etc-chromium/policies/managed"
    mkdir -p "$policy" && cp -a /etc/chromium/. "$WORK/etc-chromium/" || return 1
    printf '{ "AutoSelectCertificateForUrls": [ "%s" ] }\n' \
        "{\\\"pattern\\\":\\\"https://127.0.0.1:$port\\\",\\\"filter\\\":{\\\"ISSUER\\\":{\\\"CN\\\":\\\"Tessera Test CA\\\"},\\\"SUBJECT\\\":{\\\"CN\\\":\\\"$1\\\"}}}" \
        > "$policy/tessera-test.json"
    rm -rf "$WORK/chromium-profile"
    with_folder_over "$WORK/etc-chromium" /etc/chromium \
        /usr/bin/python3 "$TESSERA_SRCDIR/tests/lib/chromium-client-auth.py" \
        "https://127.0.0.1:$port/" "$2" --no-sandbox --user-data-dir="$WORK/chromium-profile" \
        > "$WORK/chromium.out" 2> "$WORK/chromium.err"
    local rc=$?
    grep -q "Subject: CN=$1, O=Example" "$WORK/chromium.out" && [ $rc = 0 ] && return 0
    cat "$WORK/chromium.out"; grep -v 'dbus\|zygote\|^$' "$WORK/chromium.err" | tail -20
    return 1
}

t_ok "the test PKI" prog_pki
port=$(free_port)
t_ok "a TLS server that demands a client certificate" tls_server_start tls "$port"
t_ok "a TPM card with keys and certificates" prog_tpm_card
t_ok "~/.pki/nssdb with the test CA and Tessera" nss_db
t_ok "an X server for Chromium" xvfb_start
t_ok "Chromium: TLS client authentication with the TPM card's RSA key" chromium_login "Jane Doe" "$WORK/pin"
t_ok "  and with its EC key" chromium_login "Jane Doe EC" "$WORK/pin"
printf '000000\n' > "$WORK/wrong-pin"
t_fail "  not with a wrong PIN" chromium_login "Jane Doe" "$WORK/wrong-pin"

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    t_ok "Chromium: TLS client authentication with the PIV card's 9A key" chromium_login "Jane PIV" "$WORK/pin"
fi
t_done
