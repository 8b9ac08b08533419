# Test harness: SoftHSM2 as the helpdesk's HSM, its tokens under $WORK/hsm.
# Needs common.sh. hsm_init makes the token "helpdesk" (user PIN in
# $WORK/hsm.pin); hsm_put_master FILE writes the AES key in FILE (raw bytes)
# into it as "master", sensitive, usable only to sign (CMAC). Then
# HSM_URI and HSM_OPTS are what the tool needs to derive card keys in it.
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
[ -e "$SOFTHSM" ] || SOFTHSM=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
mkdir -p "$WORK/hsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/hsm/tokens" \
    > "$WORK/hsm/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/hsm/softhsm2.conf"
HSM_URI="pkcs11:token=helpdesk;object=master"
HSM_OPTS="--hsm-module $SOFTHSM --hsm-pin-file $WORK/hsm.pin"

hsm() { client pkcs11-tool --module "$SOFTHSM" --token-label helpdesk "$@"; }

hsm_init() {
    ( umask 077; echo 1234 > "$WORK/hsm.pin" )
    softhsm2-util --init-token --free --label helpdesk --so-pin 12345678 --pin 1234
}

hsm_put_master() {
    hsm -l -p 1234 --write-object "$1" --type secrkey --key-type AES:32 --label master --id 01 --usage-sign \
        --sensitive
}
