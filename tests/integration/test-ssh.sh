# OpenSSH with Tessera: ssh-keygen -D lists a card's keys, ssh logs in to a
# local sshd (its own configuration and port, started here) with a key on
# the card, the PIN given through SSH_ASKPASS; ssh-add -s loads the module
# into an ssh-agent, and ssh logs in through the agent. A TPM virtual card
# and the virtual PIV card.
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/programs.sh"
prog_have_piv && . "$TESSERA_SRCDIR/tests/lib/cards.sh"

me=$(id -un)
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
port=$(free_port)

# The PIN as ssh asks for it: a program named by SSH_ASKPASS, used even
# without a display (SSH_ASKPASS_REQUIRE=force).
printf '#!/bin/sh\ncat "%s"\n' "$WORK/askpass-pin" > "$WORK/askpass"
chmod 700 "$WORK/askpass"
export SSH_ASKPASS="$WORK/askpass" SSH_ASKPASS_REQUIRE=force
askpass_gives() { printf '%s\n' "$1" > "$WORK/askpass-pin"; }
askpass_gives "$PIN"

# A private sshd: host key, authorized keys and settings in $WORK only.
sshd_start() {
    ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh_host_ed25519_key" || return 1
    cat > "$WORK/sshd_config" <<CONF
ListenAddress 127.0.0.1:$port
HostKey $WORK/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $WORK/authorized_keys
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers $me
StrictModes no
UsePAM no
LogLevel VERBOSE
CONF
    : > "$WORK/authorized_keys"
    # sshd wants its privilege-separation folder (made by the package's service)
    [ -d /run/sshd ] || mkdir -p -m 755 /run/sshd
    "$SSHD" -t -f "$WORK/sshd_config" || return 1
    "$SSHD" -D -e -f "$WORK/sshd_config" > "$WORK/sshd.log" 2>&1 </dev/null &
    echo $! > "$WORK/sshd.proc.pid"
    # ssh-keyscan writes known_hosts lines, "[127.0.0.1]:PORT" for a port not 22
    port_wait "$port" && ssh-keyscan -p "$port" 127.0.0.1 2>/dev/null > "$WORK/known_hosts" &&
        [ -s "$WORK/known_hosts" ]
}
ssh_opts=(-F /dev/null -p "$port" -o UserKnownHostsFile="$WORK/known_hosts" -o StrictHostKeyChecking=yes
          -o PreferredAuthentications=publickey -o PasswordAuthentication=no -o ConnectTimeout=10)
# (Not IdentitiesOnly=yes: OpenSSH 9.2 then offers no PKCS11Provider key.)
ssh_card() {   # ssh_card: log in with the card's keys (PKCS11Provider) and run a command
    client ssh "${ssh_opts[@]}" -o IdentityAgent=none -o IdentityFile=none -o PKCS11Provider="$MOD" \
        "$me@127.0.0.1" echo "logged in as \$(id -un)"
}
ssh_agent() {  # ssh_agent: log in with the keys the agent holds
    ssh "${ssh_opts[@]}" -o IdentityAgent="$WORK/agent.sock" "$me@127.0.0.1" echo "logged in as \$(id -un)"
}
card_keys() {  # card_keys: the card's public keys as ssh-keygen -D reads them
    client ssh-keygen -D "$MOD" > "$WORK/card-keys.pub"
}
cert_key() {   # cert_key PEM: the OpenSSH form of a certificate's public key
    openssl x509 -in "$1" -pubkey -noout > "$WORK/pub.pem" &&
        ssh-keygen -i -m PKCS8 -f "$WORK/pub.pem" | cut -d' ' -f1,2
}
listed() { grep -qF "$(cert_key "$1")" "$WORK/card-keys.pub"; }
authorize() { cert_key "$1" >> "$WORK/authorized_keys"; }

# pcscd first, so that the agent (started before the PIV card is used) sees it
prog_have_piv && { pcscd_start "$WORK" || echo "Bail out! no pcscd"; }
t_ok "the test PKI" prog_pki
t_ok "a TPM card with keys and certificates" prog_tpm_card
t_ok "a private sshd" sshd_start
t_ok "ssh-keygen -D lists the card's keys" card_keys
t_is "  two (RSA and EC)" "$(grep -c . "$WORK/card-keys.pub")" 2
t_ok "  the RSA key is the one in Jane's certificate" listed "$WORK/jane-rsa.pem"
t_ok "  and the EC key" listed "$WORK/jane-ec.pem"
t_fail "ssh with the card before its key is authorised" ssh_card
authorize "$WORK/jane-ec.pem"
t_ok "ssh logs in with the card's EC key" ssh_card
t_ok "  and runs the command" grep -q "logged in as $me" "$WORK/last.out"
t_ok "  sshd accepted the card's key" grep -q "Accepted publickey for $me .* ECDSA" "$WORK/sshd.log"
askpass_gives 000000
t_fail "a wrong PIN does not log in" ssh_card
askpass_gives "$PIN"
cp /dev/null "$WORK/authorized_keys"
authorize "$WORK/jane-rsa.pem"
t_ok "ssh logs in with the card's RSA key" ssh_card
t_ok "  sshd accepted it" grep -q "Accepted publickey for $me .* RSA" "$WORK/sshd.log"

# ssh-agent with the module (it allows providers by path; this build's is not
# under /usr/lib), loaded with ssh-add -s.
t_ok "an ssh-agent that may load this build's module" \
    client_bg agent ssh-agent -D -a "$WORK/agent.sock" -P "$(dirname "$(readlink -f "$MOD")")/*"
for i in $(seq 100); do [ -S "$WORK/agent.sock" ] && break; sleep 0.05; done
export SSH_AUTH_SOCK="$WORK/agent.sock"
askpass_gives 000000
t_fail "ssh-add -s with a wrong PIN" ssh-add -s "$MOD"
askpass_gives "$PIN"
t_ok "ssh-add -s loads the card's keys" ssh-add -s "$MOD"
t_ok "ssh-add -l" ssh-add -l
cp "$WORK/last.out" "$WORK/agent-keys"
t_ok "  lists Jane's EC key" grep -q "Jane EC (ECDSA)" "$WORK/agent-keys"
t_ok "  and her RSA key" grep -q "Jane RSA (RSA)" "$WORK/agent-keys"
t_ok "ssh logs in through the agent" ssh_agent
t_ok "  as $me" grep -q "logged in as $me" "$WORK/last.out"
t_ok "ssh-add -e removes the card's keys" ssh-add -e "$MOD"
t_fail "  and then ssh cannot log in through the agent" ssh_agent

if prog_have_piv; then
    t_ok "the virtual PIV card with keys and certificates" prog_piv_card
    t_ok "ssh-keygen -D lists the card's keys" card_keys
    t_ok "  9A's" listed "$WORK/piv-auth.pem"
    t_ok "  and 9D's" listed "$WORK/piv-enc.pem"
    cp /dev/null "$WORK/authorized_keys"
    authorize "$WORK/piv-auth.pem"
    t_ok "ssh logs in with 9A" ssh_card
    t_ok "  and runs the command" grep -q "logged in as $me" "$WORK/last.out"
    t_ok "ssh-add -s loads the cards' keys" ssh-add -s "$MOD"
    t_ok "ssh-add -L" ssh-add -L
    t_ok "  holds 9A's key" grep -qF "$(cert_key "$WORK/piv-auth.pem")" "$WORK/last.out"
    t_ok "ssh logs in through the agent with 9A" ssh_agent
    t_ok "ssh-add -e" ssh-add -e "$MOD"
fi
t_ok "the agent's module left no sanitizer report" client_bg_clean agent
t_done
