#!/bin/bash
# Install the Debian 12 packages Tessera needs to build, test, demo or bench.
#   scripts/deps.sh [build|test|demo|bench]...   (as root; skips what is there)
set -euo pipefail

build=(build-essential autoconf automake libtool pkg-config
       libssl-dev libtss2-dev libsqlite3-dev libp11-kit-dev libpcsclite-dev zlib1g-dev
       libcurl4-openssl-dev libjson-c-dev)
runtime=(swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon pcsc-tools python3-pykcs11
         pcscd vsmartcard-vpcd yubico-piv-tool util-linux clang libclang-rt-14-dev
         opensc p11-kit libengine-pkcs11-openssl openssl python3 xxd softhsm2
         libnss3-tools openssh-client openssh-server gnutls-bin libpam-pkcs11 pamtester
         chromium xvfb xdotool tzdata msmtp python3-aiosmtpd golang-cfssl python3-cryptography)
bench=(libtpm2-pkcs11-1 libtpm2-pkcs11-tools)

want=()
for what in "${@:-test}"; do
    case $what in
        build) want+=("${build[@]}") ;;
        test|demo) want+=("${build[@]}" "${runtime[@]}") ;;
        bench) want+=("${build[@]}" "${runtime[@]}" "${bench[@]}") ;;
        *) echo "deps.sh: unknown set '$what'" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing packages: ${missing[*]}; run me as root (or install them)" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
