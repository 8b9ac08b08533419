/* GENERAL AUTHENTICATE (SP 800-73-4 part 2, section 3.2.4 and appendix A).
 *
 * Data is a dynamic authentication template 7C holding
 *   80 witness, 81 challenge, 82 response, 85 exponentiation (ECDH input);
 * an empty element asks the card to produce it.
 *
 * Key reference 9B, the card application administration ("management")
 * key, authenticates the host in one of three ways:
 *   mutual:     7C{80 00} -> 7C{80 E(W)};  7C{80 W, 81 C} -> 7C{82 E(C)}
 *   witness:    7C{80 00} -> 7C{80 E(W)};  7C{80 W} -> 9000
 *   challenge:  7C{81 00} -> 7C{81 C};     7C{82 E(C)} -> 9000
 * (yubico-piv-tool and piv-tool -A M: use the first, piv-tool -A A: the
 * last). Asymmetric slots sign, decrypt or agree on a key:
 *   7C{82 00, 81 block}  RSA private-key operation / ECDSA over a digest
 *   7C{82 00, 85 point}  ECDH
 * and answer 7C{82 result}.
 */
#include "card.h"
#include "crypto.h"

#include <string.h>

#include <openssl/crypto.h>

struct auth_tlvs {
    struct tlv t[4]; /* 80 81 82 85 */
    int has[4];
};

static int tlv_slot(unsigned tag)
{
    switch (tag) {
    case 0x80: return 0;
    case 0x81: return 1;
    case 0x82: return 2;
    case 0x85: return 3;
    default: return -1;
    }
}

/* Indexes in struct auth_tlvs: witness, challenge, response, exponentiation. */
enum { W, C, R, E };

static int parse_template(const struct apdu *a, struct auth_tlvs *d)
{
    const uint8_t *p = a->data, *end = a->data + a->lc;
    struct tlv outer, t;
    int i;

    memset(d, 0, sizeof(*d));
    if (tlv_next(&p, end, &outer) != 1 || outer.tag != 0x7C || p != end)
        return -1;
    p = outer.val;
    end = outer.val + outer.len;
    while (p < end) {
        if (tlv_next(&p, end, &t) != 1)
            return -1;
        i = tlv_slot(t.tag);
        if (i < 0 || d->has[i])
            return -1;
        d->t[i] = t;
        d->has[i] = 1;
    }
    return 0;
}

/* 7C{tag value} */
static int put_template(struct vbuf *out, unsigned tag, const uint8_t *v, size_t n)
{
    size_t inner = 1 + tlv_len_size(n) + n;

    if (vbuf_put_tag(out, 0x7C) < 0 || vbuf_put_len(out, inner) < 0 ||
        vbuf_put_tlv(out, tag, v, n) < 0)
        return -1;
    return 0;
}

static int is_empty(const struct auth_tlvs *d, int i)
{
    return d->has[i] && d->t[i].len == 0;
}

static uint16_t mgmt_auth(struct vpiv_card *c, uint8_t alg, const struct auth_tlvs *d,
                          struct vbuf *out)
{
    uint16_t sw = SW_WRONG_DATA;
    size_t bs = vc_sym_block(c->st.mgmt_alg);
    uint8_t buf[16], enc[16];
    int pending = c->auth_kind;

    /* 00 is SP 800-78's old name of 3-key TDEA (03). */
    if (alg != c->st.mgmt_alg && !(alg == ALG_3DES_OLD && c->st.mgmt_alg == ALG_3DES)) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    /* Each request or answer ends whatever step was pending. */
    c->auth_kind = AUTH_NONE;
    if (is_empty(d, W) && !d->has[C] && !d->has[R] && !d->has[E]) {
        /* Witness request: a random block, sent encrypted. */
        c->mgmt_authed = 0;
        if (vc_random(c->auth_data, bs) < 0 ||
            vc_sym_crypt(c->st.mgmt_alg, c->st.mgmt_key, c->auth_data, enc, bs, 1) < 0 ||
            put_template(out, 0x80, enc, bs) < 0) {
            sw = SW_UNKNOWN;
            goto out;
        }
        c->auth_kind = AUTH_WITNESS;
        sw = SW_OK;
        goto out;
    }
    if (is_empty(d, C) && !d->has[W] && !d->has[R] && !d->has[E]) {
        /* Challenge request: the host answers with it encrypted. */
        c->mgmt_authed = 0;
        if (vc_random(c->auth_data, bs) < 0 || put_template(out, 0x81, c->auth_data, bs) < 0) {
            sw = SW_UNKNOWN;
            goto out;
        }
        c->auth_kind = AUTH_CHALLENGE;
        sw = SW_OK;
        goto out;
    }
    if (d->has[W] && !d->has[R] && !d->has[E]) {
        /* The decrypted witness, and for mutual authentication the host's
         * challenge to encrypt. */
        if (d->t[W].len != bs || (d->has[C] && d->t[C].len != bs))
            goto out;
        if (pending != AUTH_WITNESS || CRYPTO_memcmp(d->t[W].val, c->auth_data, bs) != 0) {
            c->mgmt_authed = 0;
            sw = SW_SECURITY;
            goto out;
        }
        if (d->has[C]) {
            memcpy(buf, d->t[C].val, bs);
            if (vc_sym_crypt(c->st.mgmt_alg, c->st.mgmt_key, buf, enc, bs, 1) < 0 ||
                put_template(out, 0x82, enc, bs) < 0) {
                sw = SW_UNKNOWN;
                goto out;
            }
        }
        c->mgmt_authed = 1;
        sw = SW_OK;
        goto out;
    }
    if (d->has[R] && !d->has[W] && !d->has[C] && !d->has[E]) {
        if (d->t[R].len != bs)
            goto out;
        if (pending != AUTH_CHALLENGE ||
            vc_sym_crypt(c->st.mgmt_alg, c->st.mgmt_key, c->auth_data, enc, bs, 1) < 0 ||
            CRYPTO_memcmp(d->t[R].val, enc, bs) != 0) {
            c->mgmt_authed = 0;
            sw = SW_SECURITY;
            goto out;
        }
        c->mgmt_authed = 1;
        sw = SW_OK;
        goto out;
    }
out:
    if (c->auth_kind == AUTH_NONE)
        OPENSSL_cleanse(c->auth_data, sizeof(c->auth_data));
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(enc, sizeof(enc));
    return sw;
}

static uint16_t key_operation(struct vpiv_card *c, uint8_t alg, uint8_t slot,
                              const struct auth_tlvs *d, struct vbuf *out)
{
    uint16_t sw = SW_WRONG_DATA;
    struct vpiv_key *k = state_key(&c->st, slot);
    struct vbuf res = { 0 };
    size_t kb;
    int r;

    /* The attestation key only signs attestations (F9 instruction). */
    if (!k || slot == SLOT_ATTEST || !k->pkey) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    if (alg != k->alg) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (!is_empty(d, R) || d->has[W] || d->has[C] == d->has[E])
        goto out;
    sw = key_use_allowed(c, k, slot);
    if (sw != SW_OK)
        goto out;
    sw = SW_WRONG_DATA;
    kb = vc_key_bytes(k->alg);
    if (d->has[C] && vc_is_rsa(k->alg)) {
        if (d->t[C].len != kb)
            goto out;
        r = vc_rsa_raw(k->pkey, d->t[C].val, kb, &res);
    } else if (d->has[C]) {
        if (d->t[C].len == 0 || d->t[C].len > kb)
            goto out;
        r = vc_ecdsa(k->pkey, d->t[C].val, d->t[C].len, &res);
    } else {
        if (!vc_is_ec(k->alg) || d->t[E].len != 1 + 2 * kb || d->t[E].val[0] != 0x04)
            goto out;
        r = vc_ecdh(k->pkey, d->t[E].val, d->t[E].len, &res);
    }
    /* A block at or above the modulus, or a point off the curve. */
    if (r < 0)
        goto out;
    sw = put_template(out, 0x82, res.data, res.len) < 0 ? SW_UNKNOWN : SW_OK;
out:
    vbuf_free(&res);
    return sw;
}

uint16_t piv_general_authenticate(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    struct auth_tlvs d;

    if (parse_template(a, &d) < 0)
        return SW_WRONG_DATA;
    if (a->p2 == SLOT_MGMT)
        return mgmt_auth(c, a->p1, &d, out);
    return key_operation(c, a->p1, a->p2, &d, out);
}
