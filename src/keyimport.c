/* A private key handed in as PKCS#11 attributes (C_CreateObject of a
 * CKO_PRIVATE_KEY; the tool's PKCS#12 import sends one that way): turned into
 * an OpenSSL key, checked that its halves agree, and wiped from the template,
 * so that from here on only the device holds it. */
#include "config.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include "keyimport.h"
#include "log.h"
#include "mech.h"

static const CK_ATTRIBUTE_TYPE secret_types[] = {
    CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT, CKA_VALUE,
};

static BIGNUM *attr_bn(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type)
{
    const CK_ATTRIBUTE *at = tess_attrs_get(a, type);
    BIGNUM *bn;
    if (!at || !at->ulValueLen)
        return NULL;
    bn = BN_secure_new();
    if (bn && !BN_bin2bn(at->pValue, (int)at->ulValueLen, bn)) {
        BN_free(bn);
        bn = NULL;
    }
    return bn;
}

/* dp, dq and qinv: d mod (p-1), d mod (q-1), q^-1 mod p. */
static bool crt_fill(const BIGNUM *d, const BIGNUM *p, const BIGNUM *q, BIGNUM **dp, BIGNUM **dq, BIGNUM **qinv)
{
    BN_CTX *ctx = BN_CTX_secure_new();
    BIGNUM *p1 = BN_new(), *q1 = BN_new();
    bool ok = ctx && p1 && q1 && BN_sub(p1, p, BN_value_one()) && BN_sub(q1, q, BN_value_one());
    if (ok && !*dp)
        ok = (*dp = BN_secure_new()) && BN_mod(*dp, d, p1, ctx);
    if (ok && !*dq)
        ok = (*dq = BN_secure_new()) && BN_mod(*dq, d, q1, ctx);
    if (ok && !*qinv)
        ok = (*qinv = BN_secure_new()) && BN_mod_inverse(*qinv, q, p, ctx);
    BN_free(p1);
    BN_free(q1);
    BN_CTX_free(ctx);
    return ok;
}

static CK_RV rsa_params(const struct tess_attrs *a, OSSL_PARAM_BLD *bld, BIGNUM *bn[8])
{
    static const CK_ATTRIBUTE_TYPE types[8] = {
        CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
        CKA_PRIME_2, CKA_EXPONENT_1,      CKA_EXPONENT_2,       CKA_COEFFICIENT,
    };
    static const char *const names[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,         OSSL_PKEY_PARAM_RSA_D,
        OSSL_PKEY_PARAM_RSA_FACTOR1,   OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    /* The CRT parts are computed here, not taken: a card that uses them
     * (PIV) must get ones that agree with the primes. */
    for (int i = 0; i < 5; i++)
        bn[i] = attr_bn(a, types[i]);
    /* The device needs the primes (a TPM keeps one, a PIV card all five CRT
     * parts); a key given as (n, d) only cannot go to either. */
    if (!bn[0] || !bn[1] || !bn[2] || !bn[3] || !bn[4]) {
        TESS_ERR("C_CreateObject: an RSA private key needs CKA_MODULUS, CKA_PUBLIC_EXPONENT, "
                 "CKA_PRIVATE_EXPONENT, CKA_PRIME_1 and CKA_PRIME_2");
        return CKR_TEMPLATE_INCOMPLETE;
    }
    if (!crt_fill(bn[2], bn[3], bn[4], &bn[5], &bn[6], &bn[7]))
        return CKR_ATTRIBUTE_VALUE_INVALID;
    for (int i = 0; i < 8; i++)
        if (!OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]))
            return CKR_HOST_MEMORY;
    return CKR_OK;
}

static CK_RV ec_params(const struct tess_attrs *a, OSSL_PARAM_BLD *bld, BIGNUM **d, uint8_t *point, size_t cap)
{
    const CK_ATTRIBUTE *p = tess_attrs_get(a, CKA_EC_PARAMS);
    int nid = p ? tess_ec_params_nid(p->pValue, p->ulValueLen) : NID_undef;
    EC_GROUP *group = NULL;
    EC_POINT *pub = NULL;
    size_t plen;
    CK_RV rv = CKR_ATTRIBUTE_VALUE_INVALID;

    *d = attr_bn(a, CKA_VALUE);
    if (!p || !*d)
        return CKR_TEMPLATE_INCOMPLETE;
    if (nid == NID_undef || !tess_ec_field_len(nid))
        return CKR_CURVE_NOT_SUPPORTED;
    /* The public point is not in a private key's template: compute it. */
    group = EC_GROUP_new_by_curve_name(nid);
    pub = group ? EC_POINT_new(group) : NULL;
    if (!pub || BN_is_zero(*d) || BN_cmp(*d, EC_GROUP_get0_order(group)) >= 0 ||
        !EC_POINT_mul(group, pub, *d, NULL, NULL, NULL))
        goto out;
    plen = EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, point, cap, NULL);
    if (!plen || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(nid), 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, *d) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, plen))
        goto out;
    rv = CKR_OK;
out:
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    return rv;
}

CK_RV tess_import_take_private(struct tess_attrs *a, EVP_PKEY **out)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    BIGNUM *bn[8] = { 0 };
    uint8_t point[1 + 2 * 66];
    CK_ULONG kt = 0;
    CK_RV rv;

    *out = NULL;
    if (!bld) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (!tess_attrs_get_ulong(a, CKA_KEY_TYPE, &kt)) {
        rv = CKR_TEMPLATE_INCOMPLETE;
        goto out;
    }
    if (kt == CKK_RSA)
        rv = rsa_params(a, bld, bn);
    else if (kt == CKK_EC)
        rv = ec_params(a, bld, &bn[0], point, sizeof(point));
    else
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
    if (rv != CKR_OK)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, kt == CKK_RSA ? "RSA" : "EC", NULL);
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 || EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) <= 0) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    /* Halves that disagree (a modulus from one key, primes from another)
     * would make a card key that signs garbage: refuse them here. */
    check = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    if (!check || EVP_PKEY_pairwise_check(check) != 1) {
        TESS_ERR("C_CreateObject: the private key's parts do not belong together");
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    rv = CKR_OK;
out:
    if (rv != CKR_OK) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    for (size_t i = 0; i < sizeof(secret_types) / sizeof(secret_types[0]); i++)
        tess_attrs_remove(a, secret_types[i]);
    for (int i = 0; i < 8; i++)
        BN_clear_free(bn[i]);
    /* The secret numbers are secure BIGNUMs: OSSL_PARAM_BLD put them in a
     * secure block, which OSSL_PARAM_free clears (OpenSSL 3.0 has no
     * OSSL_PARAM_clear_free). */
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_CTX_free(check);
    return rv;
}

CK_RV tess_pkey_public_attrs(EVP_PKEY *pk, struct tess_attrs *out)
{
    CK_RV rv = CKR_KEY_TYPE_INCONSISTENT;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        uint8_t nb[512], eb[16];
        if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) && EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) &&
            BN_num_bytes(n) <= (int)sizeof(nb) && BN_num_bytes(e) <= (int)sizeof(eb)) {
            int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
            rv = tess_attrs_set_ulong(out, CKA_KEY_TYPE, CKK_RSA);
            if (rv == CKR_OK)
                rv = tess_attrs_set(out, CKA_MODULUS, nb, (CK_ULONG)nl);
            if (rv == CKR_OK)
                rv = tess_attrs_set(out, CKA_PUBLIC_EXPONENT, eb, (CK_ULONG)el);
            if (rv == CKR_OK)
                rv = tess_attrs_set_ulong(out, CKA_MODULUS_BITS, (CK_ULONG)BN_num_bits(n));
        }
        BN_free(n);
        BN_free(e);
        return rv;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        uint8_t pt[1 + 2 * 66], params[16];
        size_t ptlen = 0;
        int nid;
        ASN1_OBJECT *oid;
        unsigned char *pp = params;
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) ||
            !EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen))
            return rv;
        nid = OBJ_sn2nid(group);
        if (nid == NID_undef)
            nid = EC_curve_nist2nid(group);
        oid = OBJ_nid2obj(nid);
        if (!oid || i2d_ASN1_OBJECT(oid, NULL) > (int)sizeof(params))
            return CKR_CURVE_NOT_SUPPORTED;
        int plen = i2d_ASN1_OBJECT(oid, &pp);
        rv = tess_attrs_set_ulong(out, CKA_KEY_TYPE, CKK_EC);
        if (rv == CKR_OK)
            rv = tess_attrs_set(out, CKA_EC_PARAMS, params, (CK_ULONG)plen);
        if (rv == CKR_OK)
            rv = tess_ec_point_attr(out, pt, ptlen);
    }
    return rv;
}
