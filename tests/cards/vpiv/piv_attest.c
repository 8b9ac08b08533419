/* YubiKey-style attestation: slot F9 holds an attestation key whose
 * self-signed certificate is object 5FFF01; ATTEST (F9, P1 = slot)
 * answers an X.509 certificate for a key generated on the card, signed by
 * that key, with Yubico's extensions (firmware version, serial number,
 * PIN and touch policy). Keys imported from outside cannot be attested.
 */
#include "card.h"
#include "crypto.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define OBJ_ATTESTATION 0x5FFF01
#define ATTEST_DAYS (20L * 365)

/* A certificate for key, named subject_cn, issued by issuer (or itself),
 * not yet signed. */
static X509 *new_cert(const char *subject_cn, const X509_NAME *issuer, EVP_PKEY *key)
{
    X509 *x = X509_new(), *ret = NULL;
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn = NULL;
    uint8_t serial[16];

    if (!x || !name || vc_random(serial, sizeof(serial)) < 0)
        goto out;
    serial[0] &= 0x7F; /* a positive INTEGER */
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !X509_set_version(x, 2) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)subject_cn,
                                    -1, -1, 0) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, issuer ? issuer : name) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), ATTEST_DAYS, 0, NULL) || !X509_set_pubkey(x, key))
        goto out;
    ret = x;
    x = NULL;
out:
    BN_free(bn);
    X509_NAME_free(name);
    X509_free(x);
    return ret;
}

/* Adds a non-critical extension whose value is the raw bytes v. */
static int add_raw_ext(X509 *x, const char *oid, const uint8_t *v, size_t n)
{
    int rc = -1;
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;

    if (!obj || !os || !ASN1_OCTET_STRING_set(os, v, (int)n))
        goto out;
    ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
    if (!ext || !X509_add_ext(x, ext, -1))
        goto out;
    rc = 0;
out:
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return rc;
}

/* A certificate as PIV stores it: 70 cert, 71 CertInfo (00: plain), FE LRC. */
static int put_cert_object(struct vbuf *b, X509 *x)
{
    int rc = -1, n = i2d_X509(x, NULL);
    uint8_t *der = NULL, *p;
    static const uint8_t tail[] = { 0x71, 0x01, 0x00, 0xFE, 0x00 };

    if (n <= 0)
        goto out;
    der = OPENSSL_malloc((size_t)n);
    p = der;
    if (!der || i2d_X509(x, &p) != n || vbuf_put_tlv(b, 0x70, der, (size_t)n) < 0 ||
        vbuf_put(b, tail, sizeof(tail)) < 0)
        goto out;
    rc = 0;
out:
    OPENSSL_free(der);
    return rc;
}

int piv_factory_attestation(struct vpiv_state *st)
{
    int rc = -1;
    EVP_PKEY *k = vc_generate(ALG_ECCP256);
    X509 *x = NULL;
    X509V3_CTX ctx;
    X509_EXTENSION *bc = NULL;
    struct vbuf obj = { 0 };
    struct vpiv_key *slot = state_key(st, SLOT_ATTEST);

    if (!k)
        goto out;
    x = new_cert("Tessera vPIV Attestation", NULL, k);
    if (!x)
        goto out;
    /* It issues the attestation certificates: a CA. */
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    bc = X509V3_EXT_nconf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
    if (!bc || !X509_add_ext(x, bc, -1) || !X509_sign(x, k, EVP_sha256()) ||
        put_cert_object(&obj, x) < 0 || state_obj_set(st, OBJ_ATTESTATION, obj.data, obj.len) < 0)
        goto out;
    EVP_PKEY_free(slot->pkey);
    slot->pkey = k;
    k = NULL;
    slot->alg = ALG_ECCP256;
    slot->origin = ORIGIN_GENERATED;
    slot->pin_policy = PIN_POLICY_NEVER;
    slot->touch_policy = TOUCH_POLICY_NEVER;
    rc = 0;
out:
    vbuf_free(&obj);
    X509_EXTENSION_free(bc);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

/* DER INTEGER of an unsigned value, minimal encoding (at most 7 bytes). */
static size_t der_uint(uint32_t u, uint8_t v[8])
{
    uint8_t b[5] = { 0, (uint8_t)(u >> 24), (uint8_t)(u >> 16), (uint8_t)(u >> 8), (uint8_t)u };
    size_t i = 0;

    /* Drop leading zeros, keeping one if the next byte has bit 8 set. */
    while (i < 4 && b[i] == 0 && !(b[i + 1] & 0x80))
        i++;
    v[0] = 0x02;
    v[1] = (uint8_t)(5 - i);
    memcpy(v + 2, b + i, 5 - i);
    return 2 + 5 - i;
}

/* The issuer name: the subject of the attestation certificate. */
static X509 *attestation_cert(struct vpiv_state *st)
{
    struct vpiv_obj *o = state_obj(st, OBJ_ATTESTATION);
    struct tlv t;
    const uint8_t *p;

    if (!o || tlv_find(o->data, o->len, 0x70, &t) != 1)
        return NULL;
    p = t.val;
    return d2i_X509(NULL, &p, (long)t.len);
}

uint16_t yk_attest(struct vpiv_card *c, const struct apdu *a, struct vbuf *out)
{
    uint16_t sw = SW_UNKNOWN;
    struct vpiv_key *k = state_key(&c->st, a->p1);
    struct vpiv_key *ak = state_key(&c->st, SLOT_ATTEST);
    X509 *ca = NULL, *x = NULL;
    char cn[64];
    uint8_t v[8], *der = NULL, *p;
    int n;

    if (a->p2 != 0x00 || !k || a->p1 == SLOT_ATTEST) {
        sw = SW_WRONG_P1P2;
        goto out;
    }
    if (!k->pkey || !ak->pkey) {
        sw = SW_REF_NOT_FOUND;
        goto out;
    }
    if (k->origin != ORIGIN_GENERATED) {
        sw = SW_WRONG_DATA;
        goto out;
    }
    ca = attestation_cert(&c->st);
    snprintf(cn, sizeof(cn), "YubiKey PIV Attestation %02x", a->p1);
    x = new_cert(cn, ca ? X509_get_subject_name(ca) : NULL, k->pkey);
    if (!x)
        goto out;
    /* Yubico's OIDs under 1.3.6.1.4.1.41482.3: .3 firmware version,
     * .7 serial (DER INTEGER), .8 PIN and touch policy. */
    v[0] = VPIV_VERSION_MAJOR;
    v[1] = VPIV_VERSION_MINOR;
    v[2] = VPIV_VERSION_PATCH;
    if (add_raw_ext(x, "1.3.6.1.4.1.41482.3.3", v, 3) < 0)
        goto out;
    if (add_raw_ext(x, "1.3.6.1.4.1.41482.3.7", v, der_uint(c->st.serial, v)) < 0)
        goto out;
    v[0] = k->pin_policy;
    v[1] = k->touch_policy;
    if (add_raw_ext(x, "1.3.6.1.4.1.41482.3.8", v, 2) < 0 || !X509_sign(x, ak->pkey, EVP_sha256()))
        goto out;
    n = i2d_X509(x, NULL);
    if (n <= 0)
        goto out;
    der = OPENSSL_malloc((size_t)n);
    p = der;
    if (!der || i2d_X509(x, &p) != n || vbuf_put(out, der, (size_t)n) < 0)
        goto out;
    sw = SW_OK;
out:
    OPENSSL_free(der);
    X509_free(x);
    X509_free(ca);
    return sw;
}
