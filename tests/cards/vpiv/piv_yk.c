/* YubiKey PIV extensions that yubico-piv-tool (libykpiv) relies on:
 * GET VERSION (FD), GET SERIAL (F8), SET MANAGEMENT KEY (FF), SET PIN
 * RETRIES (FA) and RESET (FB). IMPORT (FE), GET METADATA (F7) are in
 * piv_keys.c, ATTEST (F9) in piv_attest.c.
 */
#include "card.h"
#include "crypto.h"

#include <string.h>

uint16_t yk_get_version(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    static const uint8_t v[3] = { VPIV_VERSION_MAJOR, VPIV_VERSION_MINOR, VPIV_VERSION_PATCH };

    return vbuf_put(out, v, sizeof(v)) < 0 ? SW_UNKNOWN : SW_OK;
}

uint16_t yk_get_serial(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint8_t s[4] = { (uint8_t)(c->st.serial >> 24), (uint8_t)(c->st.serial >> 16),
                     (uint8_t)(c->st.serial >> 8), (uint8_t)c->st.serial };

    return vbuf_put(out, s, sizeof(s)) < 0 ? SW_UNKNOWN : SW_OK;
}

/* P1 FF, P2 FF (or FE: touch required); data: algorithm, 9B, length, key. */
uint16_t yk_set_mgmt_key(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint8_t alg;

    if (a->p1 != 0xFF || (a->p2 != 0xFF && a->p2 != 0xFE))
        return SW_WRONG_P1P2;
    if (!c->mgmt_authed)
        return SW_SECURITY;
    if (a->lc < 3)
        return SW_WRONG_DATA;
    alg = a->data[0];
    if (alg == ALG_3DES_OLD || !vc_sym_keylen(alg) || a->data[1] != SLOT_MGMT ||
        a->data[2] != vc_sym_keylen(alg) || a->lc != 3u + a->data[2])
        return SW_WRONG_DATA;
    c->st.mgmt_alg = alg;
    OPENSSL_cleanse(c->st.mgmt_key, sizeof(c->st.mgmt_key));
    memcpy(c->st.mgmt_key, a->data + 3, a->data[2]);
    return card_save_conf(c);
}

/* P1 = PIN tries, P2 = PUK tries. Like a YubiKey, this needs both the
 * management key and the PIN, and sets PIN and PUK back to their
 * defaults (123456, 12345678). */
uint16_t yk_set_pin_retries(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    if (a->p1 == 0 || a->p2 == 0)
        return SW_WRONG_P1P2;
    if (!c->mgmt_authed || !c->pin_verified)
        return SW_SECURITY;
    if (pin_normalize((const uint8_t *)"123456", 6, 6, c->st.pin) < 0 ||
        pin_normalize((const uint8_t *)"12345678", 8, 6, c->st.puk) < 0)
        return SW_UNKNOWN;
    c->st.pin_max = c->st.pin_left = a->p1;
    c->st.puk_max = c->st.puk_left = a->p2;
    c->pin_verified = 0;
    return card_save_conf(c);
}

/* Back to a factory-fresh card (keeping its serial number), allowed only
 * when both PIN and PUK are blocked, as on a YubiKey. */
uint16_t yk_reset(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    if (a->p1 || a->p2)
        return SW_WRONG_P1P2;
    if (c->st.pin_left || c->st.puk_left)
        return SW_CONDITIONS;
    if (state_factory(c->dir, &c->st, NULL) < 0) {
        vlog(c, "reset: could not write a fresh card to %s", c->dir);
        return SW_MEMORY;
    }
    c->pin_verified = 0;
    c->mgmt_authed = 0;
    return SW_OK;
}
