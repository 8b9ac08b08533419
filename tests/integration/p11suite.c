/* PKCS#11 behaviour every Tessera token must show, whatever its driver:
 * every mechanism signed/decrypted/derived by the token and checked
 * independently with OpenSSL, attribute semantics, objects, threads. Used by
 * test-pkcs11-tpm.c (TPM virtual cards) and test-pkcs11-piv.c (PIV cards). */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define TAP_EXTERN 1
#include "p11suite.h"

const uint8_t P256[10] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
const uint8_t P384[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

CK_RV get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, uint8_t *buf, CK_ULONG *len)
{
    CK_ATTRIBUTE a = { t, buf, *len };
    CK_RV rv = p11->C_GetAttributeValue(s, o, &a, 1);
    *len = a.ulValueLen;
    return rv;
}

EVP_PKEY *ossl_public(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, bool rsa)
{
    uint8_t a[1024], b[1024];
    CK_ULONG al = sizeof(a), bl = sizeof(b);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    BIGNUM *n = NULL, *e = NULL;

    if (rsa) {
        if (get_attr(s, pub, CKA_MODULUS, a, &al) != CKR_OK || get_attr(s, pub, CKA_PUBLIC_EXPONENT, b, &bl) != CKR_OK)
            goto out;
        n = BN_bin2bn(a, (int)al, NULL);
        e = BN_bin2bn(b, (int)bl, NULL);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else {
        if (get_attr(s, pub, CKA_EC_PARAMS, a, &al) != CKR_OK || get_attr(s, pub, CKA_EC_POINT, b, &bl) != CKR_OK)
            goto out;
        /* CKA_EC_POINT is a DER OCTET STRING around the point. */
        if (b[0] != 0x04 || b[1] + 2u != bl)
            goto out;
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        al == sizeof(P256) ? "prime256v1" : "secp384r1", 0);
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, b + 2, bl - 2);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (ctx && params && EVP_PKEY_fromdata_init(ctx) > 0)
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params);
out:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

CK_RV gen_rsa(CK_SESSION_HANDLE s, CK_ULONG bits, const char *id, struct keypair *kp)
{
    CK_MECHANISM m = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
    CK_ATTRIBUTE pub[] = {
        { CKA_TOKEN, &yes, 1 }, { CKA_MODULUS_BITS, &bits, sizeof(bits) }, { CKA_ID, (void *)id, strlen(id) },
        { CKA_LABEL, "rsa", 3 }, { CKA_VERIFY, &yes, 1 }, { CKA_ENCRYPT, &yes, 1 },
    };
    CK_ATTRIBUTE priv[] = {
        { CKA_TOKEN, &yes, 1 }, { CKA_ID, (void *)id, strlen(id) }, { CKA_LABEL, "rsa", 3 },
        { CKA_SIGN, &yes, 1 }, { CKA_DECRYPT, &yes, 1 }, { CKA_SENSITIVE, &yes, 1 },
    };
    CK_RV rv = p11->C_GenerateKeyPair(s, &m, pub, 6, priv, 6, &kp->pub, &kp->priv);
    if (rv == CKR_OK)
        kp->ossl = ossl_public(s, kp->pub, true);
    return rv;
}

CK_RV gen_ec(CK_SESSION_HANDLE s, const uint8_t *params, size_t plen, const char *id, struct keypair *kp)
{
    CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
    CK_ATTRIBUTE pub[] = { { CKA_TOKEN, &yes, 1 }, { CKA_EC_PARAMS, (void *)params, plen }, { CKA_ID, (void *)id, strlen(id) } };
    CK_ATTRIBUTE priv[] = { { CKA_TOKEN, &yes, 1 }, { CKA_ID, (void *)id, strlen(id) }, { CKA_DERIVE, &yes, 1 } };
    CK_RV rv = p11->C_GenerateKeyPair(s, &m, pub, 3, priv, 3, &kp->pub, &kp->priv);
    if (rv == CKR_OK)
        kp->ossl = ossl_public(s, kp->pub, false);
    return rv;
}

CK_RV sign(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *d, size_t dl, uint8_t *sig,
                  CK_ULONG *sl)
{
    CK_RV rv = p11->C_SignInit(s, m, k);
    if (rv == CKR_OK)
        rv = p11->C_Sign(s, (CK_BYTE_PTR)d, dl, sig, sl);
    return rv;
}

const uint8_t msg[38] = "Tessera signs this message in the TPM";

/* Every RSA signature mechanism: sign in the TPM, verify with C_Verify and
 * independently with OpenSSL. */
void test_rsa_signatures(CK_SESSION_HANDLE s, struct keypair *kp)
{
    static const struct { CK_MECHANISM_TYPE mech; const char *md; } hashed[] = {
        { CKM_SHA1_RSA_PKCS, "SHA1" }, { CKM_SHA256_RSA_PKCS, "SHA256" },
        { CKM_SHA384_RSA_PKCS, "SHA384" }, { CKM_SHA512_RSA_PKCS, "SHA512" },
    };
    uint8_t sig[512];
    CK_ULONG sl;

    for (size_t i = 0; i < sizeof(hashed) / sizeof(hashed[0]); i++) {
        CK_MECHANISM m = { hashed[i].mech, NULL, 0 };
        sl = sizeof(sig);
        is_rv(sign(s, &m, kp->priv, msg, sizeof(msg), sig, &sl), CKR_OK, hashed[i].md);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        int good = EVP_DigestVerifyInit_ex(ctx, NULL, hashed[i].md, NULL, NULL, kp->ossl, NULL) == 1 &&
                   EVP_DigestVerify(ctx, sig, sl, msg, sizeof(msg)) == 1;
        EVP_MD_CTX_free(ctx);
        ok(good, "%s-RSA-PKCS signature verifies with OpenSSL", hashed[i].md);
        is_rv(p11->C_VerifyInit(s, &m, kp->pub), CKR_OK, "C_VerifyInit");
        is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_OK, "C_Verify");
        sig[10] ^= 1;
        p11->C_VerifyInit(s, &m, kp->pub);
        is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_SIGNATURE_INVALID, "tampered signature");
    }

    /* Multi-part equals one-shot for a deterministic scheme. */
    {
        CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
        uint8_t one[512], two[512];
        CK_ULONG l1 = sizeof(one), l2 = sizeof(two);
        sign(s, &m, kp->priv, msg, sizeof(msg), one, &l1);
        p11->C_SignInit(s, &m, kp->priv);
        p11->C_SignUpdate(s, (CK_BYTE_PTR)msg, 10);
        p11->C_SignUpdate(s, (CK_BYTE_PTR)msg + 10, sizeof(msg) - 10);
        is_rv(p11->C_SignFinal(s, two, &l2), CKR_OK, "C_SignFinal");
        ok(l1 == l2 && !memcmp(one, two, l1), "multi-part signature equals one-shot");
    }

    /* CKM_RSA_PKCS over a DigestInfo (the TPM signs natively) and over
     * arbitrary data (padded here, raw RSA in the TPM). */
    {
        CK_MECHANISM m = { CKM_RSA_PKCS, NULL, 0 };
        uint8_t raw[] = "arbitrary data, not a DigestInfo";
        size_t rl = sizeof(raw);
        sl = sizeof(sig);
        is_rv(sign(s, &m, kp->priv, raw, rl, sig, &sl), CKR_OK, "RSA-PKCS on raw data");
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(kp->ossl, NULL);
        uint8_t rec[512];
        size_t recl = sizeof(rec);
        int good = EVP_PKEY_verify_recover_init(c) == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
                   EVP_PKEY_verify_recover(c, rec, &recl, sig, sl) == 1 && recl == rl && !memcmp(rec, raw, rl);
        EVP_PKEY_CTX_free(c);
        ok(good, "RSA-PKCS raw-data signature recovers the data with OpenSSL");
    }

    /* Size query, then too small a buffer: both keep the operation. */
    {
        CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
        CK_ULONG need = 0, tiny = 8;
        p11->C_SignInit(s, &m, kp->priv);
        is_rv(p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), NULL, &need), CKR_OK, "length query");
        ok(need == 256, "signature length is the modulus length (%lu)", need);
        is_rv(p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, &tiny), CKR_BUFFER_TOO_SMALL, "small buffer");
        sl = sizeof(sig);
        is_rv(p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, &sl), CKR_OK, "operation still active");
        is_rv(p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, &sl), CKR_OPERATION_NOT_INITIALIZED,
              "operation ended after the signature");
    }

    /* PSS with SHA-256, salt 32, hashed and pre-hashed. */
    {
        CK_RSA_PKCS_PSS_PARAMS pp = { CKM_SHA256, CKG_MGF1_SHA256, 32 };
        CK_MECHANISM m = { CKM_SHA256_RSA_PKCS_PSS, &pp, sizeof(pp) };
        sl = sizeof(sig);
        is_rv(sign(s, &m, kp->priv, msg, sizeof(msg), sig, &sl), CKR_OK, "SHA256-RSA-PKCS-PSS");
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        int good = EVP_DigestVerifyInit_ex(ctx, &pctx, "SHA256", NULL, NULL, kp->ossl, NULL) == 1 &&
                   EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                   EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1 &&
                   EVP_DigestVerify(ctx, sig, sl, msg, sizeof(msg)) == 1;
        EVP_MD_CTX_free(ctx);
        ok(good, "PSS signature verifies with OpenSSL");
        p11->C_VerifyInit(s, &m, kp->pub);
        is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_OK, "PSS C_Verify");

        uint8_t digest[32];
        unsigned int dl = 0;
        EVP_Digest(msg, sizeof(msg), digest, &dl, EVP_sha256(), NULL);
        CK_MECHANISM raw = { CKM_RSA_PKCS_PSS, &pp, sizeof(pp) };
        sl = sizeof(sig);
        is_rv(sign(s, &raw, kp->priv, digest, dl, sig, &sl), CKR_OK, "RSA-PKCS-PSS on a digest");
        p11->C_VerifyInit(s, &m, kp->pub);
        is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_OK, "pre-hashed PSS verifies");
        CK_RSA_PKCS_PSS_PARAMS bad = { CKM_SHA384, CKG_MGF1_SHA256, 32 };
        CK_MECHANISM mbad = { CKM_SHA256_RSA_PKCS_PSS, &bad, sizeof(bad) };
        is_rv(p11->C_SignInit(s, &mbad, kp->priv), CKR_MECHANISM_PARAM_INVALID, "PSS hash mismatch refused");
    }

    /* Raw RSA (X.509) round trip through C_Verify. */
    {
        CK_MECHANISM m = { CKM_RSA_X_509, NULL, 0 };
        uint8_t block[256] = { 0 };
        memcpy(block + 200, "raw", 3);
        sl = sizeof(sig);
        is_rv(sign(s, &m, kp->priv, block, sizeof(block), sig, &sl), CKR_OK, "RSA-X-509 sign");
        p11->C_VerifyInit(s, &m, kp->pub);
        is_rv(p11->C_Verify(s, block, sizeof(block), sig, sl), CKR_OK, "RSA-X-509 verify");
    }
}

void test_rsa_decrypt(CK_SESSION_HANDLE s, struct keypair *kp)
{
    static const uint8_t secret[] = "a session key wrapped to the card";
    uint8_t ct[512], pt[512];
    size_t ctl;
    CK_ULONG ptl;

    /* PKCS#1 v1.5 */
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(kp->ossl, NULL);
    ctl = sizeof(ct);
    EVP_PKEY_encrypt_init(c);
    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING);
    ok(EVP_PKEY_encrypt(c, ct, &ctl, secret, sizeof(secret)) == 1, "OpenSSL encrypts to the card (PKCS#1)");
    EVP_PKEY_CTX_free(c);
    CK_MECHANISM m = { CKM_RSA_PKCS, NULL, 0 };
    is_rv(p11->C_DecryptInit(s, &m, kp->priv), CKR_OK, "C_DecryptInit PKCS#1");
    ptl = 0;
    is_rv(p11->C_Decrypt(s, ct, ctl, NULL, &ptl), CKR_OK, "decrypt length query");
    ok(ptl >= sizeof(secret), "length query gives enough room (%lu)", ptl);
    ptl = sizeof(pt);
    is_rv(p11->C_Decrypt(s, ct, ctl, pt, &ptl), CKR_OK, "C_Decrypt PKCS#1");
    ok(ptl == sizeof(secret) && !memcmp(pt, secret, ptl), "PKCS#1 plaintext matches");

    /* OAEP SHA-256 with a label: tpm2-pkcs11 fails this one. */
    c = EVP_PKEY_CTX_new(kp->ossl, NULL);
    ctl = sizeof(ct);
    EVP_PKEY_encrypt_init(c);
    EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING);
    EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256());
    EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256());
    EVP_PKEY_CTX_set0_rsa_oaep_label(c, OPENSSL_memdup("label", 5), 5);
    ok(EVP_PKEY_encrypt(c, ct, &ctl, secret, sizeof(secret)) == 1, "OpenSSL encrypts (OAEP, label)");
    EVP_PKEY_CTX_free(c);
    CK_RSA_PKCS_OAEP_PARAMS op = { CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, "label", 5 };
    CK_MECHANISM mo = { CKM_RSA_PKCS_OAEP, &op, sizeof(op) };
    p11->C_DecryptInit(s, &mo, kp->priv);
    ptl = sizeof(pt);
    is_rv(p11->C_Decrypt(s, ct, ctl, pt, &ptl), CKR_OK, "C_Decrypt OAEP with label");
    ok(ptl == sizeof(secret) && !memcmp(pt, secret, ptl), "OAEP plaintext matches");
    CK_RSA_PKCS_OAEP_PARAMS wrong = { CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, "lebal", 5 };
    CK_MECHANISM mw = { CKM_RSA_PKCS_OAEP, &wrong, sizeof(wrong) };
    p11->C_DecryptInit(s, &mw, kp->priv);
    ptl = sizeof(pt);
    is_rv(p11->C_Decrypt(s, ct, ctl, pt, &ptl), CKR_ENCRYPTED_DATA_INVALID, "OAEP with the wrong label refused");

    /* Encrypt through the module, decrypt through the module. */
    CK_RSA_PKCS_OAEP_PARAMS o1 = { CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0 };
    CK_MECHANISM m1 = { CKM_RSA_PKCS_OAEP, &o1, sizeof(o1) };
    CK_ULONG cl = sizeof(ct);
    p11->C_EncryptInit(s, &m1, kp->pub);
    is_rv(p11->C_Encrypt(s, (CK_BYTE_PTR)secret, sizeof(secret), ct, &cl), CKR_OK, "C_Encrypt OAEP SHA-1");
    p11->C_DecryptInit(s, &m1, kp->priv);
    ptl = sizeof(pt);
    is_rv(p11->C_Decrypt(s, ct, cl, pt, &ptl), CKR_OK, "C_Decrypt OAEP SHA-1");
    ok(ptl == sizeof(secret) && !memcmp(pt, secret, ptl), "module round trip matches");
}

void test_ec(CK_SESSION_HANDLE s, struct keypair *kp, const char *md, size_t field)
{
    uint8_t sig[128], digest[64];
    CK_ULONG sl = sizeof(sig);
    unsigned int dl = 0;
    CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };

    EVP_Digest(msg, sizeof(msg), digest, &dl, EVP_get_digestbyname(md), NULL);
    is_rv(sign(s, &m, kp->priv, digest, dl, sig, &sl), CKR_OK, "ECDSA sign");
    ok(sl == 2 * field, "ECDSA signature is r|s (%lu bytes)", sl);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)(sl / 2), NULL), BN_bin2bn(sig + sl / 2, (int)(sl / 2), NULL));
    unsigned char *der = NULL;
    int derlen = i2d_ECDSA_SIG(es, &der);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(kp->ossl, NULL);
    ok(EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_verify(c, der, (size_t)derlen, digest, dl) == 1,
       "ECDSA (%s) verifies with OpenSSL", md);
    EVP_PKEY_CTX_free(c);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);

    CK_MECHANISM mh = { field == 32 ? CKM_ECDSA_SHA256 : CKM_ECDSA_SHA384, NULL, 0 };
    sl = sizeof(sig);
    is_rv(sign(s, &mh, kp->priv, msg, sizeof(msg), sig, &sl), CKR_OK, "ECDSA with hashing");
    p11->C_VerifyInit(s, &mh, kp->pub);
    is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_OK, "ECDSA C_Verify");

    /* A SHA-1 sized input on P-256 and a SHA-512 sized one: ECDSA truncates. */
    CK_MECHANISM m1 = { CKM_ECDSA_SHA1, NULL, 0 };
    sl = sizeof(sig);
    is_rv(sign(s, &m1, kp->priv, msg, sizeof(msg), sig, &sl), CKR_OK, "ECDSA-SHA1");
    p11->C_VerifyInit(s, &m1, kp->pub);
    is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_OK, "ECDSA-SHA1 verifies");
    CK_MECHANISM m5 = { CKM_ECDSA_SHA512, NULL, 0 };
    sl = sizeof(sig);
    is_rv(sign(s, &m5, kp->priv, msg, sizeof(msg), sig, &sl), CKR_OK, "ECDSA-SHA512");
    p11->C_VerifyInit(s, &m5, kp->pub);
    is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), sig, sl), CKR_OK, "ECDSA-SHA512 verifies");
}

void test_ecdh(CK_SESSION_HANDLE s, struct keypair *kp)
{
    EVP_PKEY *peer = EVP_EC_gen("prime256v1");
    uint8_t point[133], expect[66], got[66];
    size_t plen = 0, el = sizeof(expect);
    CK_OBJECT_HANDLE derived = 0;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;

    EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &plen);
    CK_ECDH1_DERIVE_PARAMS dp = { CKD_NULL, 0, NULL, plen, point };
    CK_MECHANISM m = { CKM_ECDH1_DERIVE, &dp, sizeof(dp) };
    CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_KEY_TYPE, &kt, sizeof(kt) },
                         { CKA_SENSITIVE, &no, 1 }, { CKA_EXTRACTABLE, &yes, 1 }, { CKA_TOKEN, &no, 1 } };
    is_rv(p11->C_DeriveKey(s, &m, kp->priv, t, 5, &derived), CKR_OK, "ECDH1 derive in the TPM");
    CK_ULONG gl = sizeof(got);
    is_rv(get_attr(s, derived, CKA_VALUE, got, &gl), CKR_OK, "read the shared secret");

    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(peer, NULL);
    EVP_PKEY_derive_init(c);
    EVP_PKEY_derive_set_peer(c, kp->ossl);
    EVP_PKEY_derive(c, expect, &el);
    EVP_PKEY_CTX_free(c);
    ok(gl == el && !memcmp(got, expect, el), "shared secret equals OpenSSL's (%lu bytes)", gl);

    /* The same with the peer point wrapped in a DER OCTET STRING. */
    uint8_t wrapped[140] = { 0x04, (uint8_t)plen };
    memcpy(wrapped + 2, point, plen);
    dp.pPublicData = wrapped;
    dp.ulPublicDataLen = plen + 2;
    CK_OBJECT_HANDLE d2 = 0;
    is_rv(p11->C_DeriveKey(s, &m, kp->priv, t, 5, &d2), CKR_OK, "ECDH1 with a DER-wrapped point");
    CK_ATTRIBUTE tok[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_TOKEN, &yes, 1 } };
    CK_OBJECT_HANDLE d3 = 0;
    is_rv(p11->C_DeriveKey(s, &m, kp->priv, tok, 2, &d3), CKR_TEMPLATE_INCONSISTENT,
          "a derived secret is never stored on the host");
    EVP_PKEY_free(peer);
}

void test_attributes(CK_SESSION_HANDLE s, struct keypair *kp)
{
    uint8_t buf[16];
    CK_ATTRIBUTE a[3] = {
        { CKA_PRIVATE_EXPONENT, buf, sizeof(buf) },
        { CKA_MODULUS, buf, sizeof(buf) },          /* too small */
        { 0x7fff0000UL, buf, sizeof(buf) },          /* no such attribute */
    };
    CK_RV rv = p11->C_GetAttributeValue(s, kp->priv, a, 3);
    ok(rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_BUFFER_TOO_SMALL || rv == CKR_ATTRIBUTE_TYPE_INVALID,
       "mixed template reports a problem (0x%lx)", rv);
    ok(a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION, "private exponent is unavailable");
    ok(a[1].ulValueLen == CK_UNAVAILABLE_INFORMATION, "too small buffer: unavailable");
    ok(a[2].ulValueLen == CK_UNAVAILABLE_INFORMATION, "unknown attribute: unavailable");
    CK_ATTRIBUTE one = { CKA_PRIVATE_EXPONENT, NULL, 0 };
    is_rv(p11->C_GetAttributeValue(s, kp->priv, &one, 1), CKR_ATTRIBUTE_SENSITIVE, "sensitive attribute");
    CK_ATTRIBUTE q = { CKA_MODULUS, NULL, 0 };
    is_rv(p11->C_GetAttributeValue(s, kp->priv, &q, 1), CKR_OK, "size query");
    ok(q.ulValueLen == 256, "modulus length 256 (%lu)", q.ulValueLen);
    CK_BBOOL v = CK_TRUE;
    CK_ATTRIBUTE ex = { CKA_EXTRACTABLE, &v, 1 };
    is_rv(p11->C_GetAttributeValue(s, kp->priv, &ex, 1), CKR_OK, "read CKA_EXTRACTABLE");
    ok(v == CK_FALSE, "TPM key is not extractable");
    CK_BBOOL modifiable = CK_FALSE;
    CK_ATTRIBUTE mq = { CKA_MODIFIABLE, &modifiable, 1 };
    p11->C_GetAttributeValue(s, kp->pub, &mq, 1);
    CK_ATTRIBUTE lab = { CKA_LABEL, "renamed", 7 };
    is_rv(p11->C_SetAttributeValue(s, kp->pub, &lab, 1), modifiable ? CKR_OK : CKR_ACTION_PROHIBITED,
          modifiable ? "relabel a public key" : "a card's own public key cannot be relabelled");
    CK_ATTRIBUTE mod = { CKA_MODULUS, "x", 1 };
    is_rv(p11->C_SetAttributeValue(s, kp->pub, &mod, 1), modifiable ? CKR_ATTRIBUTE_READ_ONLY : CKR_ACTION_PROHIBITED,
          "modulus is read-only");
}

void test_objects(CK_SESSION_HANDLE s, struct keypair *kp, const char *cert_id)
{
    /* A certificate for the card's RSA key, made by OpenSSL. */
    X509 *x = X509_new();
    EVP_PKEY *signer = EVP_RSA_gen(2048);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"Test User", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, kp->ossl);
    X509_sign(x, signer, EVP_sha256());
    unsigned char *der = NULL;
    int derlen = i2d_X509(x, &der);

    CK_OBJECT_CLASS cc = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    CK_ATTRIBUTE t[] = { { CKA_CLASS, &cc, sizeof(cc) }, { CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
                         { CKA_TOKEN, &yes, 1 }, { CKA_ID, (void *)cert_id, strlen(cert_id) }, { CKA_LABEL, "cert", 4 },
                         { CKA_VALUE, der, (CK_ULONG)derlen } };
    CK_OBJECT_HANDLE cert = 0, found[4];
    is_rv(p11->C_CreateObject(s, t, 6, &cert), CKR_OK, "store a certificate on the card");
    ok(p11_find(s, CKO_CERTIFICATE, cert_id, strlen(cert_id), found, 4) == 1 && found[0] == cert,
       "find it by class and id");
    uint8_t back[4096];
    CK_ULONG bl = sizeof(back);
    is_rv(get_attr(s, cert, CKA_VALUE, back, &bl), CKR_OK, "read it back");
    ok(bl == (CK_ULONG)derlen && !memcmp(back, der, bl), "certificate value unchanged");
    bl = sizeof(back);
    ok(get_attr(s, cert, CKA_SUBJECT, back, &bl) == CKR_OK && bl > 10, "subject filled from the certificate");
    is_rv(p11->C_DestroyObject(s, cert), CKR_OK, "destroy the certificate");
    ok(p11_find(s, CKO_CERTIFICATE, cert_id, strlen(cert_id), found, 4) == 0, "it is gone");

    /* The token says its certificates are public (PKCS#11 3.0 profile), and
     * that statement is the token's, not the application's to change. */
    CK_OBJECT_HANDLE prof[2];
    CK_ULONG profile_id = 0;
    ok(p11_find(s, CKO_PROFILE, NULL, 0, prof, 2) == 1, "one profile object");
    bl = sizeof(profile_id);
    ok(get_attr(s, prof[0], CKA_PROFILE_ID, (uint8_t *)&profile_id, &bl) == CKR_OK &&
       profile_id == CKP_PUBLIC_CERTIFICATES_TOKEN, "  CKP_PUBLIC_CERTIFICATES_TOKEN");
    is_rv(p11->C_DestroyObject(s, prof[0]), CKR_ACTION_PROHIBITED, "  cannot be destroyed");
    CK_ATTRIBUTE relabel = { CKA_LABEL, "x", 1 };
    is_rv(p11->C_SetAttributeValue(s, prof[0], &relabel, 1), CKR_ACTION_PROHIBITED, "  nor changed");

    CK_OBJECT_CLASS dc = CKO_DATA;
    CK_ATTRIBUTE d[] = { { CKA_CLASS, &dc, sizeof(dc) }, { CKA_TOKEN, &no, 1 }, { CKA_APPLICATION, "app", 3 },
                         { CKA_VALUE, "payload", 7 } };
    CK_OBJECT_HANDLE data = 0;
    is_rv(p11->C_CreateObject(s, d, 4, &data), CKR_OK, "session data object");
    bl = sizeof(back);
    ok(get_attr(s, data, CKA_VALUE, back, &bl) == CKR_OK && bl == 7 && !memcmp(back, "payload", 7), "data value");
    CK_OBJECT_CLASS pk = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE imp[] = { { CKA_CLASS, &pk, sizeof(pk) }, { CKA_TOKEN, &yes, 1 } };
    CK_OBJECT_HANDLE h;
    is_rv(p11->C_CreateObject(s, imp, 2, &h), CKR_TEMPLATE_INCOMPLETE,
          "a private key without its parts is refused (import: test-pkcs11-import, test-key-import.sh)");
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(signer);
}

struct thread_arg {
    CK_SLOT_ID slot;
    CK_OBJECT_HANDLE rsa, ec;
    int failures;
};

static void *signer_thread(void *p)
{
    struct thread_arg *a = p;
    CK_SESSION_HANDLE s;
    if (p11->C_OpenSession(a->slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        a->failures++;
        return NULL;
    }
    for (int i = 0; i < 15; i++) {
        uint8_t sig[512];
        CK_ULONG sl = sizeof(sig);
        CK_MECHANISM m = { i % 2 ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0 };
        if (sign(s, &m, i % 2 ? a->rsa : a->ec, msg, sizeof(msg), sig, &sl) != CKR_OK)
            a->failures++;
    }
    p11->C_CloseSession(s);
    return NULL;
}

void test_threads(CK_SLOT_ID slot, struct keypair *rsa, struct keypair *ec)
{
    pthread_t th[8];
    struct thread_arg args[8];
    int failures = 0;
    for (int i = 0; i < 8; i++) {
        args[i] = (struct thread_arg){ slot, rsa->priv, ec->priv, 0 };
        pthread_create(&th[i], NULL, signer_thread, &args[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
    }
    ok(failures == 0, "8 threads x 15 signatures at once: %d failures", failures);
}

