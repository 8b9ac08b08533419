/* Asymmetric keys: GENERATE ASYMMETRIC KEY PAIR (SP 800-73-4 part 2,
 * 3.3.2), the YubiKey IMPORT ASYMMETRIC KEY (FE) and GET METADATA (F7),
 * and the PIN policy that guards every private-key operation.
 */
#include "card.h"
#include "crypto.h"

#include <string.h>

uint16_t key_use_allowed(struct vpiv_card *c, const struct vpiv_key *k, uint8_t slot)
{
    uint8_t policy = k->pin_policy ? k->pin_policy : slot_default_pin_policy(slot);

    switch (policy) {
    case PIN_POLICY_NEVER: return SW_OK;
    case PIN_POLICY_ALWAYS: return c->pin_verified && c->pin_always_ok ? SW_OK : SW_SECURITY;
    default: return c->pin_verified ? SW_OK : SW_SECURITY;
    }
}

/* Policy tags AA (PIN) and AB (touch), optional in GENERATE and IMPORT. */
static int parse_policies(const uint8_t *p, size_t n, uint8_t *pin, uint8_t *touch)
{
    struct tlv t;
    int r;

    *pin = 0;
    *touch = 0;
    r = tlv_find(p, n, 0xAA, &t);
    if (r < 0 || (r == 1 && (t.len != 1 || t.val[0] > PIN_POLICY_ALWAYS)))
        return -1;
    if (r == 1)
        *pin = t.val[0];
    r = tlv_find(p, n, 0xAB, &t);
    if (r < 0 || (r == 1 && (t.len != 1 || t.val[0] > 3)))
        return -1;
    if (r == 1)
        *touch = t.val[0];
    return 0;
}

/* Puts a new key in a slot and saves it; takes ownership of pkey. */
static uint16_t install_key(struct vpiv_card *c, uint8_t slot, EVP_PKEY *pkey, uint8_t alg,
                            uint8_t origin, uint8_t pin, uint8_t touch)
{
    struct vpiv_key *k = state_key(&c->st, slot);

    EVP_PKEY_free(k->pkey);
    k->pkey = pkey;
    k->alg = alg;
    k->origin = origin;
    k->pin_policy = pin ? pin : slot_default_pin_policy(slot);
    /* No one touches a virtual card: every touch policy is "never". */
    k->touch_policy = touch ? touch : TOUCH_POLICY_NEVER;
    return card_save_key(c, slot);
}

uint16_t piv_generate(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw = SW_WRONG_DATA;
    struct tlv ac, alg;
    struct vbuf pub = { 0 };
    uint8_t pin, touch;
    EVP_PKEY *k = NULL;
    const uint8_t *p = a->data, *end = a->data + a->lc;

    if (a->p1 != 0x00) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (slot_index(a->p2) < 0 || a->p2 == SLOT_ATTEST) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    if (!c->mgmt_authed) {
        sw = SW_SECURITY;
        goto out;
    }
    /* AC{80 alg [AA pin-policy] [AB touch-policy]} */
    if (tlv_next(&p, end, &ac) != 1 || ac.tag != 0xAC ||
        tlv_find(ac.val, ac.len, 0x80, &alg) != 1 || alg.len != 1 ||
        parse_policies(ac.val, ac.len, &pin, &touch) < 0)
        goto out;
    if (!vc_is_rsa(alg.val[0]) && !vc_is_ec(alg.val[0]))
        goto out;
    k = vc_generate(alg.val[0]);
    if (!k || vc_pubkey_tlvs(k, &pub) < 0 || vbuf_put_tlv(out, 0x7F49, pub.data, pub.len) < 0) {
        sw = SW_UNKNOWN;
        goto out;
    }
    sw = install_key(c, a->p2, k, alg.val[0], ORIGIN_GENERATED, pin, touch);
    k = NULL;
    if (sw != SW_OK)
        vbuf_reset(out);
out:
    EVP_PKEY_free(k);
    vbuf_free(&pub);
    return sw;
}

uint16_t yk_import_key(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw = SW_WRONG_DATA;
    struct tlv p, q, d;
    uint8_t pin, touch, alg = a->p1, scalar[48];
    size_t kb = vc_key_bytes(alg);
    EVP_PKEY *k = NULL;

    if (slot_index(a->p2) < 0) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    if (!vc_is_rsa(alg) && !vc_is_ec(alg)) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (!c->mgmt_authed) {
        sw = SW_SECURITY;
        goto out;
    }
    if (parse_policies(a->data, a->lc, &pin, &touch) < 0)
        goto out;
    if (vc_is_rsa(alg)) {
        /* 01 p, 02 q, 03 dp, 04 dq, 05 qinv: the rest follows from p, q. */
        if (tlv_find(a->data, a->lc, 0x01, &p) != 1 || tlv_find(a->data, a->lc, 0x02, &q) != 1 ||
            p.len > kb / 2 || q.len > kb / 2)
            goto out;
        k = vc_import_rsa(p.val, p.len, q.val, q.len);
    } else {
        /* 06 private scalar, left-padded to the field size. */
        if (tlv_find(a->data, a->lc, 0x06, &d) != 1 || d.len == 0 || d.len > kb)
            goto out;
        memset(scalar, 0, sizeof(scalar));
        memcpy(scalar + kb - d.len, d.val, d.len);
        k = vc_import_ec(alg, scalar, kb);
        OPENSSL_cleanse(scalar, sizeof(scalar));
    }
    if (!k || vc_key_alg(k) != alg)
        goto out;
    sw = install_key(c, a->p2, k, alg, ORIGIN_IMPORTED, pin, touch);
    k = NULL;
out:
    EVP_PKEY_free(k);
    return sw;
}

static int is_default(const uint8_t v[8], const char *def)
{
    uint8_t d[8];

    return pin_normalize((const uint8_t *)def, strlen(def), 1, d) == 0 && !memcmp(v, d, 8);
}

/* GET METADATA, P2 = key reference. Tags: 01 algorithm, 02 PIN and touch
 * policy, 03 origin, 04 public key, 05 default value, 06 tries. */
uint16_t yk_get_metadata(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw = SW_UNKNOWN;
    struct vpiv_key *k;
    struct vbuf pub = { 0 };
    uint8_t v[2];

    if (a->p1 != 0x00) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (a->p2 == REF_PIN || a->p2 == REF_PUK) {
        int pin = a->p2 == REF_PIN;
        v[0] = 0xFF; /* "PIN" algorithm */
        if (vbuf_put_tlv(out, 0x01, v, 1) < 0)
            goto out;
        v[0] = is_default(pin ? c->st.pin : c->st.puk, pin ? "123456" : "12345678");
        if (vbuf_put_tlv(out, 0x05, v, 1) < 0)
            goto out;
        v[0] = pin ? c->st.pin_max : c->st.puk_max;
        v[1] = pin ? c->st.pin_left : c->st.puk_left;
        if (vbuf_put_tlv(out, 0x06, v, 2) < 0)
            goto out;
        sw = SW_OK;
        goto out;
    }
    if (a->p2 == SLOT_MGMT) {
        v[0] = c->st.mgmt_alg;
        if (vbuf_put_tlv(out, 0x01, v, 1) < 0)
            goto out;
        v[0] = 0x00; /* no PIN policy */
        v[1] = TOUCH_POLICY_NEVER;
        if (vbuf_put_tlv(out, 0x02, v, 2) < 0)
            goto out;
        v[0] = c->st.mgmt_alg == ALG_3DES && !memcmp(c->st.mgmt_key, vpiv_default_mgmt_key, 24);
        if (vbuf_put_tlv(out, 0x05, v, 1) < 0)
            goto out;
        sw = SW_OK;
        goto out;
    }
    k = state_key(&c->st, a->p2);
    if (!k || !k->pkey) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    v[0] = k->alg;
    if (vbuf_put_tlv(out, 0x01, v, 1) < 0)
        goto out;
    v[0] = k->pin_policy;
    v[1] = k->touch_policy;
    if (vbuf_put_tlv(out, 0x02, v, 2) < 0)
        goto out;
    v[0] = k->origin;
    if (vbuf_put_tlv(out, 0x03, v, 1) < 0 || vc_pubkey_tlvs(k->pkey, &pub) < 0 ||
        vbuf_put_tlv(out, 0x04, pub.data, pub.len) < 0)
        goto out;
    sw = SW_OK;
out:
    vbuf_free(&pub);
    if (sw != SW_OK)
        vbuf_reset(out);
    return sw;
}
