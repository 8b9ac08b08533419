/* Data objects: GET DATA and PUT DATA (SP 800-73-4 part 2, 3.1.2 and
 * 3.3.1), and the objects of a factory-fresh card (part 1, section 3).
 *
 * Objects are stored as the value of their 53 template; the discovery
 * object (7E) and the biometric information templates group (7F61) carry
 * their own tag instead. Reading biometrics and the printed information
 * needs the PIN; writing anything needs the management key.
 */
#include "card.h"
#include "crypto.h"

#include <string.h>

#define OBJ_DISCOVERY 0x7E
#define OBJ_BIT_GROUP 0x7F61
#define OBJ_CHUID 0x5FC102
#define OBJ_CCC 0x5FC107
#define OBJ_KEY_HISTORY 0x5FC10C
#define OBJ_RETIRED1 0x5FC10D
#define OBJ_RETIRED20 0x5FC120

static int needs_pin(uint32_t tag)
{
    switch (tag) {
    case 0x5FC103: /* fingerprints */
    case 0x5FC108: /* facial image */
    case 0x5FC109: /* printed information */
    case 0x5FC121: /* iris images */
    case 0x5FC123: /* pairing code reference data */
        return 1;
    default:
        return 0;
    }
}

/* The tag list of GET DATA: 5C, 1 to 3 bytes. */
static int parse_tag_list(const uint8_t *p, size_t n, uint32_t *tag, const uint8_t **rest)
{
    struct tlv t;
    size_t i;

    if (tlv_next(&p, p + n, &t) != 1 || t.tag != 0x5C || t.len < 1 || t.len > 3)
        return -1;
    for (*tag = 0, i = 0; i < t.len; i++)
        *tag = *tag << 8 | t.val[i];
    *rest = p;
    return 0;
}

/* The card does not keep a key history object unless one is written; as
 * long as none is, it offers one counting the retired certificates on
 * the card (keysWithOnCardCerts: up to the highest one present), so that
 * middleware (OpenSC) finds the retired keys; not with --no-key-history,
 * where, as on a YubiKey, whoever writes a retired certificate must write
 * the key history too. */
static int synth_key_history(struct vpiv_card *c, struct vbuf *v)
{
    uint8_t n = 0, i;
    uint8_t body[9] = { 0xC1, 0x01, 0, 0xC2, 0x01, 0x00, 0xFE, 0x00 };

    if (c->no_history)
        return 0;

    for (i = 0; i <= OBJ_RETIRED20 - OBJ_RETIRED1; i++)
        if (state_obj(&c->st, OBJ_RETIRED1 + i))
            n = (uint8_t)(i + 1);
    if (!n)
        return 0;
    body[2] = n;
    return vbuf_put(v, body, 8) < 0 ? -1 : 1;
}

uint16_t piv_get_data(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw = SW_UNKNOWN;
    uint32_t tag;
    const uint8_t *rest;
    struct vpiv_obj *o;
    struct vbuf v = { 0 };
    int r;

    if (a->p1 != 0x3F || a->p2 != 0xFF) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (parse_tag_list(a->data, a->lc, &tag, &rest) < 0 || rest != a->data + a->lc) {
        sw = SW_WRONG_DATA;
        goto out;
    }
    if (needs_pin(tag) && !c->pin_verified) {
        sw = SW_SECURITY;
        goto out;
    }
    o = state_obj(&c->st, tag);
    if (o) {
        if (vbuf_put(&v, o->data, o->len) < 0)
            goto out;
    } else if (tag == OBJ_KEY_HISTORY) {
        r = synth_key_history(c, &v);
        if (r < 0)
            goto out;
        if (r == 0) {
            sw = SW_NOT_FOUND;
            goto out;
        }
    } else {
        sw = SW_NOT_FOUND;
        goto out;
    }
    if (vbuf_put_tlv(out, tag == OBJ_DISCOVERY || tag == OBJ_BIT_GROUP ? tag : 0x53, v.data,
                     v.len) < 0)
        goto out;
    sw = SW_OK;
out:
    vbuf_free(&v);
    return sw;
}

uint16_t piv_put_data(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw = SW_WRONG_DATA;
    uint32_t tag;
    const uint8_t *p = a->data, *end = a->data + a->lc;
    struct tlv t;

    if (a->p1 != 0x3F || a->p2 != 0xFF) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (!c->mgmt_authed) {
        sw = SW_SECURITY;
        goto out;
    }
    if (a->lc >= 1 && (a->data[0] == 0x7E || a->data[0] == 0x7F)) {
        /* Discovery object or BIT group: the template is the data. */
        if (tlv_next(&p, end, &t) != 1 || p != end ||
            (t.tag != OBJ_DISCOVERY && t.tag != OBJ_BIT_GROUP))
            goto out;
        tag = t.tag;
    } else {
        /* 5C tag, then 53 value. */
        if (parse_tag_list(a->data, a->lc, &tag, &p) < 0 || !object_tag_valid(tag) ||
            tlv_next(&p, end, &t) != 1 || t.tag != 0x53 || p != end)
            goto out;
    }
    if (t.len > VPIV_MAX_OBJECT) {
        sw = SW_NO_SPACE;
        goto out;
    }
    /* Writing an empty value deletes the object (as yubico-piv-tool's
     * delete-certificate does). */
    if (state_obj_set(&c->st, tag, t.val, t.len) < 0) {
        sw = SW_MEMORY;
        goto out;
    }
    sw = card_save_obj(c, tag);
out:
    return sw;
}

/* ---- a fresh card ---- */

/* FASC-N (TIG SCEPACS): 40 characters of 4-bit BCD (least significant
 * bit first) plus an odd parity bit, 200 bits. */
#define FASCN_SS 0xB /* start sentinel */
#define FASCN_FS 0xD /* field separator */
#define FASCN_ES 0xF /* end sentinel */

static void fascn_put(uint8_t *out, size_t *bit, uint8_t v)
{
    int i, ones = 0, b;

    for (i = 0; i < 5; i++) {
        if (i < 4) {
            b = (v >> i) & 1;
            ones += b;
        } else {
            b = !(ones & 1); /* odd parity over the five bits */
        }
        if (b)
            out[*bit / 8] |= (uint8_t)(0x80 >> (*bit % 8));
        (*bit)++;
    }
}

static int make_fascn(uint8_t out[25])
{
    uint8_t rnd[20], chars[40], lrc = 0;
    size_t n = 0, bit = 0, i;
    const char *agency = "9999"; /* PIV-I / non-federal issuer */

    if (vc_random(rnd, sizeof(rnd)) < 0)
        return -1;
    chars[n++] = FASCN_SS;
    for (i = 0; i < 4; i++)
        chars[n++] = (uint8_t)(agency[i] - '0');
    chars[n++] = FASCN_FS;
    for (i = 0; i < 4; i++) /* system code */
        chars[n++] = rnd[i] % 10;
    chars[n++] = FASCN_FS;
    for (i = 0; i < 6; i++) /* credential number */
        chars[n++] = rnd[4 + i] % 10;
    chars[n++] = FASCN_FS;
    chars[n++] = 1; /* credential series */
    chars[n++] = FASCN_FS;
    chars[n++] = 1; /* individual credential issue */
    chars[n++] = FASCN_FS;
    for (i = 0; i < 10; i++) /* person identifier */
        chars[n++] = rnd[10 + i] % 10;
    chars[n++] = 1; /* organizational category: federal government agency */
    for (i = 0; i < 4; i++) /* organization identifier */
        chars[n++] = (uint8_t)(agency[i] - '0');
    chars[n++] = 1; /* person/organization association: employee */
    chars[n++] = FASCN_ES;
    memset(out, 0, 25);
    for (i = 0; i < n; i++) {
        lrc ^= chars[i];
        fascn_put(out, &bit, chars[i]);
    }
    fascn_put(out, &bit, lrc); /* longitudinal redundancy check: the 40th */
    return bit == 200 ? 0 : -1;
}

int piv_factory_objects(struct vpiv_state *st)
{
    int rc = -1;
    struct vbuf v = { 0 };
    uint8_t fascn[25], guid[16], cardid[21];
    static const uint8_t expiry[8] = { '2', '0', '4', '9', '1', '2', '3', '1' };
    static const uint8_t piv_aid[11] = { 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00,
                                         0x00, 0x10, 0x00, 0x01, 0x00 };
    /* CCC: version 21, grammar 21, no extended application, PKCS#15 00,
     * data model 10 (PIV). */
    static const uint8_t ccc_tail[] = { 0xF1, 0x01, 0x21, 0xF2, 0x01, 0x21, 0xF3, 0x00, 0xF4,
                                        0x01, 0x00, 0xF5, 0x01, 0x10, 0xF6, 0x00, 0xF7, 0x00,
                                        0xFA, 0x00, 0xFB, 0x00, 0xFC, 0x00, 0xFD, 0x00, 0xFE,
                                        0x00 };
    /* PIN usage policy: the application PIN satisfies the PIV access
     * rules; no global PIN. */
    static const uint8_t pin_policy[2] = { 0x40, 0x00 };

    if (make_fascn(fascn) < 0 || vc_random(guid, sizeof(guid)) < 0)
        goto out;
    guid[6] = (guid[6] & 0x0F) | 0x40; /* RFC 4122 version 4 (random) */
    guid[8] = (guid[8] & 0x3F) | 0x80; /* RFC 4122 variant */
    /* CHUID: FASC-N, GUID, expiration date, empty issuer signature, LRC. */
    if (vbuf_put_tlv(&v, 0x30, fascn, sizeof(fascn)) < 0 ||
        vbuf_put_tlv(&v, 0x34, guid, sizeof(guid)) < 0 ||
        vbuf_put_tlv(&v, 0x35, expiry, sizeof(expiry)) < 0 || vbuf_put_tlv(&v, 0x3E, NULL, 0) < 0 ||
        vbuf_put_tlv(&v, 0xFE, NULL, 0) < 0 || state_obj_set(st, OBJ_CHUID, v.data, v.len) < 0)
        goto out;
    vbuf_reset(&v);
    /* Card identifier: GSC-RID, manufacturer FF, card type 02 (Java
     * card), 14 random bytes. */
    memcpy(cardid, (const uint8_t[]){ 0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02 }, 7);
    if (vc_random(cardid + 7, 14) < 0 || vbuf_put_tlv(&v, 0xF0, cardid, sizeof(cardid)) < 0 ||
        vbuf_put(&v, ccc_tail, sizeof(ccc_tail)) < 0 ||
        state_obj_set(st, OBJ_CCC, v.data, v.len) < 0)
        goto out;
    vbuf_reset(&v);
    if (vbuf_put_tlv(&v, 0x4F, piv_aid, sizeof(piv_aid)) < 0 ||
        vbuf_put_tlv(&v, 0x5F2F, pin_policy, sizeof(pin_policy)) < 0 ||
        state_obj_set(st, OBJ_DISCOVERY, v.data, v.len) < 0)
        goto out;
    rc = 0;
out:
    vbuf_free(&v);
    return rc;
}
