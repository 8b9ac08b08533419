# Several processes using the cards at once, sharing one TPM through the
# tpm2-abrmd resource manager (the way a desktop runs: browser, mail, ssh).
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/swtpm.sh"

t_ok "start tpm2-abrmd on a private bus" abrmd_start "$WORK"
t_is "module and tool use it" "$TESSERA_TCTI" "tabrmd:bus_type=session"
t_ok "create a card through the resource manager" $TOOL vsc create --label Shared --so-pin 12345678 --pin 123456
t_ok "an EC key" p11tool --token-label Shared -l -p 123456 --keypairgen --key-type EC:prime256v1 --id 01 --label ec
t_ok "an RSA key" p11tool --token-label Shared -l -p 123456 --keypairgen --key-type rsa:2048 --id 02 --label rsa
printf 'shared' > "$WORK/data"

signer() {   # signer N: sign ten times, alternating keys, in one process each time
    local i
    for i in $(seq 10); do
        p11tool --token-label Shared -l -p 123456 --sign -m ECDSA-SHA256 --id 01 -i "$WORK/data" -o "$WORK/s$1" || return 1
        p11tool --token-label Shared -l -p 123456 --sign -m SHA256-RSA-PKCS --id 02 -i "$WORK/data" -o "$WORK/r$1" || return 1
    done
}
concurrent() {
    local pids=() p bad=0
    for n in 1 2 3 4; do signer "$n" >"$WORK/signer$n.out" 2>&1 & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || bad=1; done
    return $bad
}
t_ok "four processes sign at once, 80 signatures" concurrent
t_done
