/* The card's cryptography on OpenSSL 3 (see crypto.h). */
#include "crypto.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

int vc_random(uint8_t *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

size_t vc_sym_keylen(uint8_t alg)
{
    switch (alg) {
    case ALG_3DES_OLD:
    case ALG_3DES: return 24;
    case ALG_AES128: return 16;
    case ALG_AES192: return 24;
    case ALG_AES256: return 32;
    default: return 0;
    }
}

size_t vc_sym_block(uint8_t alg)
{
    switch (alg) {
    case ALG_3DES_OLD:
    case ALG_3DES: return 8;
    case ALG_AES128:
    case ALG_AES192:
    case ALG_AES256: return 16;
    default: return 0;
    }
}

static const EVP_CIPHER *sym_cipher(uint8_t alg)
{
    switch (alg) {
    case ALG_3DES_OLD:
    case ALG_3DES: return EVP_des_ede3_ecb();
    case ALG_AES128: return EVP_aes_128_ecb();
    case ALG_AES192: return EVP_aes_192_ecb();
    case ALG_AES256: return EVP_aes_256_ecb();
    default: return NULL;
    }
}

int vc_sym_crypt(uint8_t alg, const uint8_t *key, const uint8_t *in, uint8_t *out,
                 size_t n, int encrypt)
{
    int rc = -1, l1 = 0, l2 = 0;
    const EVP_CIPHER *c = sym_cipher(alg);
    EVP_CIPHER_CTX *ctx = NULL;

    if (!c || n == 0 || n % vc_sym_block(alg) || n > 1024)
        goto out;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || !EVP_CipherInit_ex2(ctx, c, key, NULL, encrypt, NULL))
        goto out;
    EVP_CIPHER_CTX_set_padding(ctx, 0);
    if (!EVP_CipherUpdate(ctx, out, &l1, in, (int)n) || !EVP_CipherFinal_ex(ctx, out + l1, &l2))
        goto out;
    rc = (size_t)(l1 + l2) == n ? 0 : -1;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int vc_is_rsa(uint8_t alg)
{
    return alg == ALG_RSA1024 || alg == ALG_RSA2048;
}

int vc_is_ec(uint8_t alg)
{
    return alg == ALG_ECCP256 || alg == ALG_ECCP384;
}

size_t vc_key_bytes(uint8_t alg)
{
    switch (alg) {
    case ALG_RSA1024: return 128;
    case ALG_RSA2048: return 256;
    case ALG_ECCP256: return 32;
    case ALG_ECCP384: return 48;
    default: return 0;
    }
}

static const char *ec_group(uint8_t alg)
{
    return alg == ALG_ECCP256 ? "P-256" : alg == ALG_ECCP384 ? "P-384" : NULL;
}

EVP_PKEY *vc_generate(uint8_t alg)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = NULL;

    if (vc_is_ec(alg)) {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", ec_group(alg));
        goto out;
    }
    if (!vc_is_rsa(alg))
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, (int)vc_key_bytes(alg) * 8) <= 0 ||
        EVP_PKEY_generate(ctx, &k) <= 0)
        k = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    return k;
}

int vc_key_alg(EVP_PKEY *k)
{
    char group[64];

    if (EVP_PKEY_is_a(k, "RSA")) {
        switch (EVP_PKEY_get_bits(k)) {
        case 1024: return ALG_RSA1024;
        case 2048: return ALG_RSA2048;
        default: return -1;
        }
    }
    if (EVP_PKEY_is_a(k, "EC") &&
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL)) {
        if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256"))
            return ALG_ECCP256;
        if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384"))
            return ALG_ECCP384;
    }
    return -1;
}

int vc_rsa_raw(EVP_PKEY *k, const uint8_t *in, size_t n, struct vbuf *out)
{
    int rc = -1;
    size_t olen = 0;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t res[512];

    if (n != (size_t)EVP_PKEY_get_size(k) || n > sizeof(res))
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    /* Decrypt without padding is m^d mod n: what a PIV card computes for
     * both signing (host-padded block) and key transport. */
    if (!ctx || EVP_PKEY_decrypt_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) <= 0)
        goto out;
    olen = sizeof(res);
    if (EVP_PKEY_decrypt(ctx, res, &olen, in, n) <= 0 || olen > n)
        goto out;
    /* Left-pad to the modulus size: the host expects a full block. */
    if (vbuf_put(out, (const uint8_t[512]){0}, n - olen) < 0 || vbuf_put(out, res, olen) < 0)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(res, sizeof(res));
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int vc_ecdsa(EVP_PKEY *k, const uint8_t *dgst, size_t n, struct vbuf *out)
{
    int rc = -1;
    size_t slen = 0;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    uint8_t sig[160];

    /* No digest set: the input is taken as the digest (truncated to the
     * group order by ECDSA itself when longer). */
    if (!ctx || EVP_PKEY_sign_init(ctx) <= 0)
        goto out;
    slen = sizeof(sig);
    if (EVP_PKEY_sign(ctx, sig, &slen, dgst, n) <= 0)
        goto out;
    rc = vbuf_put(out, sig, slen);
out:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int vc_ecdh(EVP_PKEY *k, const uint8_t *point, size_t n, struct vbuf *out)
{
    int rc = -1;
    char group[64];
    size_t slen = 0;
    uint8_t secret[66];
    OSSL_PARAM params[3];
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *pctx = NULL, *dctx = NULL;

    if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, n);
    params[2] = OSSL_PARAM_construct_end();
    /* Importing the peer's point checks that it lies on the curve. */
    pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &peer, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    dctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    if (!dctx || EVP_PKEY_derive_init(dctx) <= 0 || EVP_PKEY_derive_set_peer_ex(dctx, peer, 1) <= 0)
        goto out;
    slen = sizeof(secret);
    if (EVP_PKEY_derive(dctx, secret, &slen) <= 0)
        goto out;
    rc = vbuf_put(out, secret, slen);
out:
    OPENSSL_cleanse(secret, sizeof(secret));
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    return rc;
}

static int put_bn_param(EVP_PKEY *k, const char *name, unsigned tag, struct vbuf *out)
{
    int rc = -1, n;
    BIGNUM *bn = NULL;
    uint8_t bin[512];

    if (!EVP_PKEY_get_bn_param(k, name, &bn) || BN_num_bytes(bn) > (int)sizeof(bin))
        goto out;
    n = BN_bn2bin(bn, bin);
    rc = vbuf_put_tlv(out, tag, bin, (size_t)n);
out:
    BN_free(bn);
    return rc;
}

int vc_pubkey_tlvs(EVP_PKEY *k, struct vbuf *out)
{
    int rc = -1;
    size_t n = 0;
    uint8_t pt[133];

    if (EVP_PKEY_is_a(k, "RSA")) {
        rc = put_bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0x81, out);
        if (rc == 0)
            rc = put_bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0x82, out);
        goto out;
    }
    if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &n))
        goto out;
    rc = vbuf_put_tlv(out, 0x86, pt, n);
out:
    return rc;
}

/* Builds a key from parameters. Values pushed from secure BIGNUMs live in
 * the secure part of the array, which OSSL_PARAM_free() clears. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);

    if (!params)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_KEYPAIR, params) <= 0)
        k = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return k;
}

EVP_PKEY *vc_import_rsa(const uint8_t *pb, size_t plen, const uint8_t *qb, size_t qlen)
{
    EVP_PKEY *k = NULL;
    BN_CTX *bc = BN_CTX_secure_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *p = NULL, *q = NULL, *n, *e, *d, *dp, *dq, *qi, *p1, *q1, *phi;

    if (!bc || !bld)
        goto out;
    BN_CTX_start(bc);
    n = BN_CTX_get(bc);
    e = BN_CTX_get(bc);
    d = BN_CTX_get(bc);
    dp = BN_CTX_get(bc);
    dq = BN_CTX_get(bc);
    qi = BN_CTX_get(bc);
    p1 = BN_CTX_get(bc);
    q1 = BN_CTX_get(bc);
    phi = BN_CTX_get(bc);
    p = BN_secure_new();
    q = BN_secure_new();
    if (!phi || !p || !q || !BN_bin2bn(pb, (int)plen, p) || !BN_bin2bn(qb, (int)qlen, q) ||
        BN_is_zero(p) || BN_is_zero(q))
        goto out;
    /* The YubiKey import format carries only the CRT parts and implies
     * e = 65537; the rest of the key follows from p and q. */
    if (!BN_set_word(e, 65537) || !BN_mul(n, p, q, bc) || !BN_sub(p1, p, BN_value_one()) ||
        !BN_sub(q1, q, BN_value_one()) || !BN_mul(phi, p1, q1, bc) ||
        !BN_mod_inverse(d, e, phi, bc) || !BN_mod(dp, d, p1, bc) || !BN_mod(dq, d, q1, bc) ||
        !BN_mod_inverse(qi, q, p, bc))
        goto out;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi))
        goto out;
    k = from_params("RSA", bld);
out:
    BN_clear_free(p);
    BN_clear_free(q);
    if (bc)
        BN_CTX_end(bc); /* a secure BN_CTX clears what it hands out */
    BN_CTX_free(bc);
    OSSL_PARAM_BLD_free(bld);
    return k;
}

EVP_PKEY *vc_import_ec(uint8_t alg, const uint8_t *db, size_t dlen)
{
    EVP_PKEY *k = NULL;
    int nid = alg == ALG_ECCP256 ? NID_X9_62_prime256v1 : NID_secp384r1;
    size_t plen;
    uint8_t pt[133];
    BIGNUM *d = NULL;
    BN_CTX *bc = NULL;
    EC_GROUP *g = NULL;
    EC_POINT *pub = NULL;
    OSSL_PARAM_BLD *bld = NULL;

    if (!vc_is_ec(alg) || dlen != vc_key_bytes(alg))
        goto out;
    bc = BN_CTX_new();
    g = EC_GROUP_new_by_curve_name(nid);
    d = BN_secure_new();
    bld = OSSL_PARAM_BLD_new();
    if (!bc || !g || !d || !bld || !BN_bin2bn(db, (int)dlen, d) || BN_is_zero(d) ||
        BN_cmp(d, EC_GROUP_get0_order(g)) >= 0)
        goto out;
    /* OpenSSL does not derive the public point on import: Q = dG. */
    pub = EC_POINT_new(g);
    if (!pub || !EC_POINT_mul(g, pub, d, NULL, NULL, bc))
        goto out;
    plen = EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), bc);
    if (plen == 0 ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ec_group(alg), 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, plen))
        goto out;
    k = from_params("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(pub);
    EC_GROUP_free(g);
    BN_clear_free(d);
    BN_CTX_free(bc);
    return k;
}
