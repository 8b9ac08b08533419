/* PIN and PUK: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER
 * (SP 800-73-4 part 2, sections 3.2.1, 3.2.2, 3.2.3).
 *
 * PINs travel padded with FF to 8 bytes. A wrong value costs a try and
 * answers 63Cx (x tries left); at zero the reference is blocked (6983).
 * The counter is saved before the card answers, so killing the card
 * right after a wrong PIN does not give the try back.
 */
#include "card.h"

#include <string.h>

#include <openssl/crypto.h>

int pin_normalize(const uint8_t *in, size_t n, size_t min, uint8_t out[8])
{
    size_t len, i;

    if (n > 8)
        return -1;
    memcpy(out, in, n);
    memset(out + n, 0xFF, 8 - n);
    for (len = 0; len < 8 && out[len] != 0xFF; len++)
        ;
    /* Padding only at the end. */
    for (i = len; i < 8; i++)
        if (out[i] != 0xFF)
            return -1;
    return len < min ? -1 : 0;
}

static uint16_t tries_sw(uint8_t left)
{
    if (left == 0)
        return SW_BLOCKED;
    return (uint16_t)(0x63C0 | (left > 15 ? 15 : left));
}

/* Checks value against a reference (PIN or PUK) and its counter: a miss
 * costs a try, a hit restores the counter. Returns SW_OK or the failure
 * status word (63Cx, 6983, 6581). */
static uint16_t check_reference(struct vpiv_card *c, const uint8_t value[8], const uint8_t ref[8],
                                uint8_t *left, uint8_t max)
{
    uint16_t sw;

    if (*left == 0)
        return SW_BLOCKED;
    if (CRYPTO_memcmp(value, ref, 8) != 0) {
        (*left)--;
        sw = card_save_conf(c);
        /* The miss that spends the last try still says 63C0 (SP 800-73-4
         * 3.2.1: X further retries allowed); 6983 answers the next attempt. */
        return sw != SW_OK ? sw : (uint16_t)(0x63C0 | (*left > 15 ? 15 : *left));
    }
    if (*left != max) {
        *left = max;
        return card_save_conf(c);
    }
    return SW_OK;
}

uint16_t piv_verify(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw;
    uint8_t pin[8];

    if (a->p1 == 0xFF) {
        /* Reset the PIN's security status (SP 800-73-4 3.2.1). */
        if (a->lc || a->p2 != REF_PIN) {
            sw = a->lc ? SW_WRONG_DATA : SW_REF_NOT_FOUND;
            goto out;
        }
        c->pin_verified = 0;
        sw = SW_OK;
        goto out;
    }
    if (a->p1 != 0x00) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    /* Only the PIV application PIN: no global PIN, and the PUK is only
     * good for RESET RETRY COUNTER and CHANGE REFERENCE DATA. */
    if (a->p2 != REF_PIN) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    if (a->lc == 0) {
        /* Status query: verified, or the tries left. */
        if (c->st.pin_left == 0)
            sw = SW_BLOCKED;
        else
            sw = c->pin_verified ? SW_OK : tries_sw(c->st.pin_left);
        goto out;
    }
    if (pin_normalize(a->data, a->lc, 1, pin) < 0) {
        sw = SW_WRONG_DATA;
        goto out;
    }
    sw = check_reference(c, pin, c->st.pin, &c->st.pin_left, c->st.pin_max);
    c->pin_verified = sw == SW_OK;
    c->pin_fresh = sw == SW_OK;
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    return sw;
}

uint16_t piv_change_reference(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw;
    uint8_t old[8], new_value[8], *ref, *left, max;

    if (a->p1 != 0x00) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (a->p2 == REF_PIN) {
        ref = c->st.pin;
        left = &c->st.pin_left;
        max = c->st.pin_max;
    } else if (a->p2 == REF_PUK) {
        ref = c->st.puk;
        left = &c->st.puk_left;
        max = c->st.puk_max;
    } else {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    /* A malformed new value costs no try. */
    if (a->lc != 16 || pin_normalize(a->data, 8, 1, old) < 0 ||
        pin_normalize(a->data + 8, 8, 6, new_value) < 0) {
        sw = SW_WRONG_DATA;
        goto out;
    }
    sw = check_reference(c, old, ref, left, max);
    if (sw != SW_OK)
        goto out;
    memcpy(ref, new_value, 8);
    sw = card_save_conf(c);
out:
    OPENSSL_cleanse(old, sizeof(old));
    OPENSSL_cleanse(new_value, sizeof(new_value));
    return sw;
}

uint16_t piv_reset_retry(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw;
    uint8_t puk[8], pin[8];

    if (a->p1 != 0x00) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (a->p2 != REF_PIN) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    if (a->lc != 16 || pin_normalize(a->data, 8, 1, puk) < 0 ||
        pin_normalize(a->data + 8, 8, 6, pin) < 0) {
        sw = SW_WRONG_DATA;
        goto out;
    }
    sw = check_reference(c, puk, c->st.puk, &c->st.puk_left, c->st.puk_max);
    if (sw != SW_OK)
        goto out;
    /* Unblocked: new PIN, full tries; not verified until VERIFY. */
    memcpy(c->st.pin, pin, 8);
    c->st.pin_left = c->st.pin_max;
    c->pin_verified = 0;
    sw = card_save_conf(c);
out:
    OPENSSL_cleanse(puk, sizeof(puk));
    OPENSSL_cleanse(pin, sizeof(pin));
    return sw;
}
