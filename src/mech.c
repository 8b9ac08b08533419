/* OpenSSL's PKCS#1 padding primitives (RSA_padding_*) are deprecated in 3.0
 * but are the only public way to pad for a private operation done elsewhere
 * (the TPM or the card). This is the one file that uses them. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "config.h"
#include "mech.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "util.h"

#define SIGN_VERIFY (CKF_SIGN | CKF_VERIFY)
#define ENC_DEC (CKF_ENCRYPT | CKF_DECRYPT)
#define EC_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

static const struct tess_mech_info mechs[] = {
    { CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 3072, CKF_HW | CKF_GENERATE_KEY_PAIR },
    { CKM_RSA_PKCS, 2048, 3072, CKF_HW | SIGN_VERIFY | ENC_DEC },
    { CKM_RSA_X_509, 2048, 3072, CKF_HW | SIGN_VERIFY | ENC_DEC },
    { CKM_RSA_PKCS_PSS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_RSA_PKCS_OAEP, 2048, 3072, CKF_HW | ENC_DEC },
    { CKM_SHA1_RSA_PKCS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA256_RSA_PKCS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA384_RSA_PKCS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA512_RSA_PKCS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA1_RSA_PKCS_PSS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA256_RSA_PKCS_PSS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA384_RSA_PKCS_PSS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_SHA512_RSA_PKCS_PSS, 2048, 3072, CKF_HW | SIGN_VERIFY },
    { CKM_EC_KEY_PAIR_GEN, 256, 384, CKF_HW | CKF_GENERATE_KEY_PAIR | EC_FLAGS },
    { CKM_ECDSA, 256, 384, CKF_HW | SIGN_VERIFY | EC_FLAGS },
    { CKM_ECDSA_SHA1, 256, 384, CKF_HW | SIGN_VERIFY | EC_FLAGS },
    { CKM_ECDSA_SHA256, 256, 384, CKF_HW | SIGN_VERIFY | EC_FLAGS },
    { CKM_ECDSA_SHA384, 256, 384, CKF_HW | SIGN_VERIFY | EC_FLAGS },
    { CKM_ECDSA_SHA512, 256, 384, CKF_HW | SIGN_VERIFY | EC_FLAGS },
    { CKM_ECDH1_DERIVE, 256, 384, CKF_HW | CKF_DERIVE | EC_FLAGS },
    { CKM_SHA_1, 0, 0, CKF_DIGEST },
    { CKM_SHA256, 0, 0, CKF_DIGEST },
    { CKM_SHA384, 0, 0, CKF_DIGEST },
    { CKM_SHA512, 0, 0, CKF_DIGEST },
};

const struct tess_mech_info *tess_mech_table(size_t *count)
{
    *count = TESS_ARRAY_SIZE(mechs);
    return mechs;
}

const struct tess_mech_info *tess_mech_find(CK_MECHANISM_TYPE type)
{
    for (size_t i = 0; i < TESS_ARRAY_SIZE(mechs); i++)
        if (mechs[i].type == type)
            return &mechs[i];
    return NULL;
}

bool tess_mech_split(CK_MECHANISM_TYPE mech, CK_MECHANISM_TYPE *base, CK_MECHANISM_TYPE *hash)
{
    static const struct { CK_MECHANISM_TYPE mech, base, hash; } map[] = {
        { CKM_RSA_PKCS, CKM_RSA_PKCS, 0 },
        { CKM_RSA_X_509, CKM_RSA_X_509, 0 },
        { CKM_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, 0 },
        { CKM_SHA1_RSA_PKCS, CKM_RSA_PKCS, CKM_SHA_1 },
        { CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS, CKM_SHA256 },
        { CKM_SHA384_RSA_PKCS, CKM_RSA_PKCS, CKM_SHA384 },
        { CKM_SHA512_RSA_PKCS, CKM_RSA_PKCS, CKM_SHA512 },
        { CKM_SHA1_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, CKM_SHA_1 },
        { CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, CKM_SHA256 },
        { CKM_SHA384_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, CKM_SHA384 },
        { CKM_SHA512_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, CKM_SHA512 },
        { CKM_ECDSA, CKM_ECDSA, 0 },
        { CKM_ECDSA_SHA1, CKM_ECDSA, CKM_SHA_1 },
        { CKM_ECDSA_SHA256, CKM_ECDSA, CKM_SHA256 },
        { CKM_ECDSA_SHA384, CKM_ECDSA, CKM_SHA384 },
        { CKM_ECDSA_SHA512, CKM_ECDSA, CKM_SHA512 },
    };
    for (size_t i = 0; i < TESS_ARRAY_SIZE(map); i++) {
        if (map[i].mech == mech) {
            *base = map[i].base;
            *hash = map[i].hash;
            return true;
        }
    }
    return false;
}

const EVP_MD *tess_md_for(CK_MECHANISM_TYPE hash)
{
    switch (hash) {
    case CKM_SHA_1: return EVP_sha1();
    case CKM_SHA224: return EVP_sha224();
    case CKM_SHA256: return EVP_sha256();
    case CKM_SHA384: return EVP_sha384();
    case CKM_SHA512: return EVP_sha512();
    default: return NULL;
    }
}

CK_MECHANISM_TYPE tess_hash_for_mgf(CK_RSA_PKCS_MGF_TYPE mgf)
{
    switch (mgf) {
    case CKG_MGF1_SHA1: return CKM_SHA_1;
    case CKG_MGF1_SHA224: return CKM_SHA224;
    case CKG_MGF1_SHA256: return CKM_SHA256;
    case CKG_MGF1_SHA384: return CKM_SHA384;
    case CKG_MGF1_SHA512: return CKM_SHA512;
    default: return 0;
    }
}

static const struct {
    CK_MECHANISM_TYPE hash;
    uint8_t prefix[19];
    size_t plen, dlen;
} digestinfos[] = {
    { CKM_SHA_1, { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14 }, 15, 20 },
    { CKM_SHA224, { 0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c }, 19, 28 },
    { CKM_SHA256, { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 }, 19, 32 },
    { CKM_SHA384, { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30 }, 19, 48 },
    { CKM_SHA512, { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40 }, 19, 64 },
};

CK_RV tess_digestinfo_wrap(CK_MECHANISM_TYPE hash, const uint8_t *digest, size_t dlen, uint8_t *out, size_t *outlen)
{
    for (size_t i = 0; i < TESS_ARRAY_SIZE(digestinfos); i++) {
        if (digestinfos[i].hash != hash)
            continue;
        if (dlen != digestinfos[i].dlen)
            return CKR_DATA_LEN_RANGE;
        if (*outlen < digestinfos[i].plen + dlen)
            return CKR_BUFFER_TOO_SMALL;
        memcpy(out, digestinfos[i].prefix, digestinfos[i].plen);
        memcpy(out + digestinfos[i].plen, digest, dlen);
        *outlen = digestinfos[i].plen + dlen;
        return CKR_OK;
    }
    return CKR_MECHANISM_INVALID;
}

CK_MECHANISM_TYPE tess_digestinfo_parse(const uint8_t *in, size_t len, const uint8_t **digest, size_t *dlen)
{
    for (size_t i = 0; i < TESS_ARRAY_SIZE(digestinfos); i++) {
        if (len == digestinfos[i].plen + digestinfos[i].dlen &&
            !memcmp(in, digestinfos[i].prefix, digestinfos[i].plen)) {
            *digest = in + digestinfos[i].plen;
            *dlen = digestinfos[i].dlen;
            return digestinfos[i].hash;
        }
    }
    return 0;
}

CK_RV tess_pad_pkcs1_sign(const uint8_t *in, size_t inlen, uint8_t *em, size_t k)
{
    if (inlen + 11 > k)
        return CKR_DATA_LEN_RANGE;
    return RSA_padding_add_PKCS1_type_1(em, (int)k, in, (int)inlen) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
}

CK_RV tess_pad_pss(const uint8_t *modulus, size_t k, CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash,
                   size_t salt_len, const uint8_t *mhash, uint8_t *em)
{
    const EVP_MD *md = tess_md_for(hash), *mgf = tess_md_for(mgf_hash);
    RSA *rsa = RSA_new();
    BIGNUM *n = BN_bin2bn(modulus, (int)k, NULL), *e = BN_new();
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (!md || !mgf) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if (!rsa || !n || !e || !BN_set_word(e, 65537) || !RSA_set0_key(rsa, n, e, NULL))
        goto out;
    n = e = NULL;   /* owned by rsa */
    if (salt_len > k) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    /* EM is emLen bytes, emLen = ceil((modBits-1)/8); when modBits-1 is a
     * multiple of 8 OpenSSL writes a leading zero byte itself. */
    if (RSA_padding_add_PKCS1_PSS_mgf1(rsa, em, mhash, md, mgf, (int)salt_len) == 1)
        rv = CKR_OK;
    else
        rv = CKR_MECHANISM_PARAM_INVALID;
out:
    RSA_free(rsa);
    BN_free(n);
    BN_free(e);
    return rv;
}

CK_RV tess_unpad_pkcs1_decrypt(const uint8_t *em, size_t k, uint8_t *out, size_t *outlen)
{
    /* The whole block: OpenSSL checks the leading zero byte in constant time. */
    int n = RSA_padding_check_PKCS1_type_2(out, (int)*outlen, em, (int)k, (int)k);
    if (n < 0)
        return CKR_ENCRYPTED_DATA_INVALID;
    *outlen = (size_t)n;
    return CKR_OK;
}

CK_RV tess_unpad_oaep(const uint8_t *em, size_t k, CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash,
                      const uint8_t *label, size_t label_len, uint8_t *out, size_t *outlen)
{
    const EVP_MD *md = tess_md_for(hash), *mgf = tess_md_for(mgf_hash);
    if (!md || !mgf)
        return CKR_MECHANISM_PARAM_INVALID;
    int n = RSA_padding_check_PKCS1_OAEP_mgf1(out, (int)*outlen, em, (int)k, (int)k, label,
                                              (int)label_len, md, mgf);
    if (n < 0)
        return CKR_ENCRYPTED_DATA_INVALID;
    *outlen = (size_t)n;
    return CKR_OK;
}

int tess_ec_params_nid(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    ASN1_OBJECT *obj = d2i_ASN1_OBJECT(NULL, &p, (long)len);
    int nid = NID_undef;
    if (obj && p == der + len)
        nid = OBJ_obj2nid(obj);
    ASN1_OBJECT_free(obj);
    return nid;
}

size_t tess_ec_field_len(int nid)
{
    switch (nid) {
    case NID_X9_62_prime256v1: return 32;
    case NID_secp384r1: return 48;
    case NID_secp521r1: return 66;
    default: return 0;
    }
}

CK_RV tess_ec_point_raw(const uint8_t *in, size_t len, size_t field_len, const uint8_t **point, size_t *plen)
{
    /* Raw 04|X|Y of the expected size first: a DER wrapper is never that long. */
    if (field_len && len == 1 + 2 * field_len && in[0] == 0x04) {
        *point = in;
        *plen = len;
        return CKR_OK;
    }
    if (len >= 2 && in[0] == 0x04) {
        size_t hdr = 2, body;
        if (in[1] < 0x80) {
            body = in[1];
        } else if (in[1] == 0x81 && len >= 3) {
            body = in[2];
            hdr = 3;
        } else {
            body = 0;   /* not a DER length we take: maybe a raw point */
        }
        if (body && hdr + body == len && body >= 3 && (body & 1) && in[hdr] == 0x04 &&
            (!field_len || body == 1 + 2 * field_len)) {
            *point = in + hdr;
            *plen = body;
            return CKR_OK;
        }
    }
    if (!field_len && len >= 3 && (len & 1) && in[0] == 0x04) {
        *point = in;
        *plen = len;
        return CKR_OK;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

CK_RV tess_ec_point_attr(struct tess_attrs *a, const uint8_t *point, size_t len)
{
    uint8_t der[3 + 1 + 2 * 66];
    size_t hn = 0;
    if (len > sizeof(der) - 3)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    der[hn++] = 0x04;
    if (len > 127)
        der[hn++] = 0x81;
    der[hn++] = (uint8_t)len;
    memcpy(der + hn, point, len);
    return tess_attrs_set(a, CKA_EC_POINT, der, (CK_ULONG)(hn + len));
}

CK_RV tess_ecdsa_rs_to_der(const uint8_t *rs, size_t len, uint8_t **der, size_t *derlen)
{
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    unsigned char *out = NULL;
    int n;
    CK_RV rv = CKR_HOST_MEMORY;

    if (!len || (len & 1))
        return CKR_SIGNATURE_LEN_RANGE;
    sig = ECDSA_SIG_new();
    r = BN_bin2bn(rs, (int)(len / 2), NULL);
    s = BN_bin2bn(rs + len / 2, (int)(len / 2), NULL);
    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s))
        goto out;
    r = s = NULL;
    n = i2d_ECDSA_SIG(sig, &out);
    if (n <= 0)
        goto out;
    *der = out;
    *derlen = (size_t)n;
    rv = CKR_OK;
out:
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return rv;
}

CK_RV tess_pkey_from_attrs(const struct tess_attrs *a, EVP_PKEY **out)
{
    CK_ULONG kt;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *n = NULL, *e = NULL;
    CK_RV rv = CKR_KEY_TYPE_INCONSISTENT;

    if (!bld)
        return CKR_HOST_MEMORY;
    if (!tess_attrs_get_ulong(a, CKA_KEY_TYPE, &kt))
        goto out;
    if (kt == CKK_RSA) {
        const CK_ATTRIBUTE *m = tess_attrs_get(a, CKA_MODULUS), *x = tess_attrs_get(a, CKA_PUBLIC_EXPONENT);
        if (!m || !x || !m->ulValueLen || !x->ulValueLen)
            goto out;
        n = BN_bin2bn(m->pValue, (int)m->ulValueLen, NULL);
        e = BN_bin2bn(x->pValue, (int)x->ulValueLen, NULL);
        if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else if (kt == CKK_EC) {
        const CK_ATTRIBUTE *p = tess_attrs_get(a, CKA_EC_PARAMS), *q = tess_attrs_get(a, CKA_EC_POINT);
        const uint8_t *pt;
        size_t ptlen;
        if (!p || !q)
            goto out;
        int nid = tess_ec_params_nid(p->pValue, p->ulValueLen);
        if (nid == NID_undef ||
            tess_ec_point_raw(q->pValue, q->ulValueLen, tess_ec_field_len(nid), &pt, &ptlen) != CKR_OK)
            goto out;
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(nid), 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    } else {
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!ctx || !params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    rv = CKR_OK;
out:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return rv;
}

size_t tess_key_sig_len(const struct tess_attrs *a)
{
    CK_ULONG kt;
    if (!tess_attrs_get_ulong(a, CKA_KEY_TYPE, &kt))
        return 0;
    if (kt == CKK_RSA) {
        const CK_ATTRIBUTE *m = tess_attrs_get(a, CKA_MODULUS);
        if (!m)
            return 0;
        size_t len = m->ulValueLen;
        const uint8_t *p = m->pValue;
        while (len && !*p) {
            p++;
            len--;
        }
        return len;
    }
    if (kt == CKK_EC) {
        const CK_ATTRIBUTE *p = tess_attrs_get(a, CKA_EC_PARAMS);
        return p ? 2 * tess_ec_field_len(tess_ec_params_nid(p->pValue, p->ulValueLen)) : 0;
    }
    return 0;
}
