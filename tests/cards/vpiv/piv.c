/* PIV command dispatch and SELECT (SP 800-73-4 part 2, section 3.1.1).
 *
 * The card holds one application, PIV, selected from power-on: a SELECT
 * of anything else answers 6A82 and leaves PIV selected, as ISO 7816-4
 * has it for a failed selection.
 */
#include "card.h"
#include "crypto.h"

#include <string.h>

static const uint8_t piv_aid[11] = { 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00,
                                     0x00, 0x10, 0x00, 0x01, 0x00 };

/* Shortest AID prefix accepted: the RID and the PIV PIX's first byte, as
 * yubico-piv-tool selects "A0 00 00 03 08". */
#define MIN_PARTIAL_AID 5

static uint16_t piv_select(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    /* Algorithms in the application property template (tag AC). */
    static const uint8_t algs[] = { ALG_3DES, ALG_AES128, ALG_AES192, ALG_AES256,
                                    ALG_RSA1024, ALG_RSA2048, ALG_ECCP256, ALG_ECCP384 };
    static const char label[] = "Tessera virtual PIV";
    struct vbuf apt = { 0 }, ac = { 0 };
    uint16_t sw = SW_UNKNOWN;
    size_t i;

    if (a->p1 != 0x04) {
        sw = SW_NOT_FOUND; /* no files to select by identifier or path */
        goto out;
    }
    if ((a->p2 & ~0x0C) != 0) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (a->lc < MIN_PARTIAL_AID || a->lc > sizeof(piv_aid) || memcmp(a->data, piv_aid, a->lc)) {
        sw = SW_NOT_FOUND;
        goto out;
    }
    if ((a->p2 & 0x0C) == 0x0C) { /* no response data wanted */
        sw = SW_OK;
        goto out;
    }
    for (i = 0; i < sizeof(algs); i++)
        if (vbuf_put_tlv(&ac, 0x80, &algs[i], 1) < 0)
            goto out;
    /* Object identifier 06 00: none, per SP 800-73-4 table 3. */
    if (vbuf_put_tlv(&ac, 0x06, NULL, 0) < 0)
        goto out;
    /* Application property template: PIX, tag allocation authority (the
     * NIST RID), label, algorithms. */
    if (vbuf_put_tlv(&apt, 0x4F, piv_aid + 5, 6) < 0 ||
        vbuf_put_tag(&apt, 0x79) < 0 || vbuf_put_len(&apt, 7) < 0 ||
        vbuf_put_tlv(&apt, 0x4F, piv_aid, 5) < 0 ||
        vbuf_put_tlv(&apt, 0x50, label, sizeof(label) - 1) < 0 ||
        vbuf_put_tlv(&apt, 0xAC, ac.data, ac.len) < 0 ||
        vbuf_put_tlv(out, 0x61, apt.data, apt.len) < 0)
        goto out;
    sw = SW_OK;
out:
    vbuf_free(&ac);
    vbuf_free(&apt);
    return sw;
}

uint16_t piv_command(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    /* A "PIN always" key needs VERIFY in the command just before its use:
     * the window closes with whatever command comes next. */
    c->pin_always_ok = c->pin_fresh;
    c->pin_fresh = 0;
    /* --plain: a PIV card of another make, without the YubiKey commands. */
    if (c->plain && a->ins >= 0xF7)
        return SW_INS;

    switch (a->ins) {
    case 0xA4: return piv_select(c, a, out);
    case 0xCB: return piv_get_data(c, a, out);
    case 0xDB: return piv_put_data(c, a, out);
    case 0x20: return piv_verify(c, a, out);
    case 0x24: return piv_change_reference(c, a, out);
    case 0x2C: return piv_reset_retry(c, a, out);
    case 0x87: return piv_general_authenticate(c, a, out);
    case 0x47: return piv_generate(c, a, out);
    /* YubiKey extensions, as yubico-piv-tool uses them. */
    case 0xFD: return yk_get_version(c, a, out);
    case 0xF8: return yk_get_serial(c, a, out);
    case 0xFF: return yk_set_mgmt_key(c, a, out);
    case 0xFE: return yk_import_key(c, a, out);
    case 0xFA: return yk_set_pin_retries(c, a, out);
    case 0xFB: return yk_reset(c, a, out);
    case 0xF7: return yk_get_metadata(c, a, out);
    case 0xF9: return yk_attest(c, a, out);
    default: return SW_INS;
    }
}

uint16_t card_save_conf(struct vpiv_card *c)
{
    if (state_save_conf(c->dir, &c->st) < 0) {
        vlog(c, "could not save %s/card.conf", c->dir);
        return SW_MEMORY;
    }
    return SW_OK;
}

uint16_t card_save_key(struct vpiv_card *c, uint8_t slot)
{
    if (state_save_key(c->dir, &c->st, slot) < 0) {
        vlog(c, "could not save key %02X in %s", slot, c->dir);
        return SW_MEMORY;
    }
    return SW_OK;
}

uint16_t card_save_obj(struct vpiv_card *c, uint32_t tag)
{
    if (state_save_obj(c->dir, &c->st, tag) < 0) {
        vlog(c, "could not save object %X in %s", (unsigned)tag, c->dir);
        return SW_MEMORY;
    }
    return SW_OK;
}
