# Tessera on a PIV card: a private pcscd with vpcd readers, the virtual PIV
# card in the first one, then the PKCS#11 test program against it (which
# pulls the card out and puts it back through the two commands below).
. "$TESSERA_SRCDIR/tests/lib/common.sh"
. "$TESSERA_SRCDIR/tests/lib/cards.sh"

card_up || { echo "Bail out! no virtual PIV card"; exit 1; }
export TESSERA_CARD_PULL="kill \$(cat '$WORK/vpiv.card.pid') && sleep 0.5"
export TESSERA_CARD_PUSH="'$VPIV' --port $VPCD_PORT0 --state '$WORK/vpiv-state' --pid-file '$WORK/vpiv.card.pid' \
    >>'$WORK/vpiv.log' 2>&1 & sleep 0.5"
"$TESSERA_BUILDDIR/tests/integration/test-pkcs11-piv"
