/* C_CreateObject of a private key on a TPM virtual card, at the level of
 * attributes: what the module accepts and refuses, what the object says of
 * itself afterwards, that no secret part can be read back, and that the key
 * in the TPM is the key that was given (OpenSSL verifies its signatures with
 * the original public key). Keys are made here with OpenSSL. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "p11util.h"

#define SO_PIN "87654321"
#define USER_PIN "123456"

struct bn_attr {
    CK_ATTRIBUTE_TYPE type;
    const char *param;
    uint8_t buf[512];
    CK_ULONG len;
};

static EVP_PKEY *make_key(const char *alg, const char *opt, const char *val)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    if (!c || EVP_PKEY_keygen_init(c) <= 0 || EVP_PKEY_CTX_ctrl_str(c, opt, val) <= 0 || EVP_PKEY_keygen(c, &pk) <= 0)
        bail_out("OpenSSL keygen");
    EVP_PKEY_CTX_free(c);
    return pk;
}

static void get_bn(EVP_PKEY *pk, struct bn_attr *a)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pk, a->param, &bn))
        bail_out("OpenSSL get param");
    a->len = (CK_ULONG)BN_bn2bin(bn, a->buf);
    BN_free(bn);
}

/* An RSA key as the eight attributes of a CKO_PRIVATE_KEY template. */
static void rsa_parts(EVP_PKEY *pk, struct bn_attr parts[8])
{
    static const struct { CK_ATTRIBUTE_TYPE t; const char *p; } m[8] = {
        { CKA_MODULUS, OSSL_PKEY_PARAM_RSA_N },         { CKA_PUBLIC_EXPONENT, OSSL_PKEY_PARAM_RSA_E },
        { CKA_PRIVATE_EXPONENT, OSSL_PKEY_PARAM_RSA_D }, { CKA_PRIME_1, OSSL_PKEY_PARAM_RSA_FACTOR1 },
        { CKA_PRIME_2, OSSL_PKEY_PARAM_RSA_FACTOR2 },   { CKA_EXPONENT_1, OSSL_PKEY_PARAM_RSA_EXPONENT1 },
        { CKA_EXPONENT_2, OSSL_PKEY_PARAM_RSA_EXPONENT2 }, { CKA_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1 },
    };
    for (int i = 0; i < 8; i++) {
        parts[i].type = m[i].t;
        parts[i].param = m[i].p;
        get_bn(pk, &parts[i]);
    }
}

static CK_RV import_rsa(CK_SESSION_HANDLE s, struct bn_attr parts[8], int nparts, CK_BBOOL token,
                        CK_BBOOL extractable, CK_OBJECT_HANDLE *out)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_ATTRIBUTE t[16] = {
        { CKA_CLASS, &cls, sizeof(cls) },
        { CKA_KEY_TYPE, &kt, sizeof(kt) },
        { CKA_TOKEN, &token, sizeof(token) },
        { CKA_EXTRACTABLE, &extractable, sizeof(extractable) },
    };
    CK_ULONG n = 4;
    for (int i = 0; i < nparts; i++)
        t[n++] = (CK_ATTRIBUTE){ parts[i].type, parts[i].buf, parts[i].len };
    return p11->C_CreateObject(s, t, n, out);
}

static CK_RV import_ec(CK_SESSION_HANDLE s, const uint8_t *scalar, CK_ULONG len, CK_OBJECT_HANDLE *out)
{
    static const uint8_t p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_EC;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        { CKA_CLASS, &cls, sizeof(cls) },   { CKA_KEY_TYPE, &kt, sizeof(kt) }, { CKA_TOKEN, &yes, sizeof(yes) },
        { CKA_EC_PARAMS, (void *)p256, sizeof(p256) }, { CKA_VALUE, (void *)scalar, len },
    };
    return p11->C_CreateObject(s, t, 5, out);
}

static CK_BBOOL attr_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 2;
    CK_ATTRIBUTE a = { type, &v, sizeof(v) };
    p11->C_GetAttributeValue(s, o, &a, 1);
    return v;
}

/* Sign with the card, verify with OpenSSL and the original key. */
static bool signs_as(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, EVP_PKEY *orig)
{
    static const uint8_t data[] = "imported";
    CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
    uint8_t sig[512];
    CK_ULONG slen = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool good = p11->C_SignInit(s, &m, key) == CKR_OK &&
                p11->C_Sign(s, (CK_BYTE_PTR)data, sizeof(data), sig, &slen) == CKR_OK && md &&
                EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, orig, NULL) == 1 &&
                EVP_DigestVerify(md, sig, slen, data, sizeof(data)) == 1;
    EVP_MD_CTX_free(md);
    return good;
}

int main(void)
{
    CK_SLOT_ID slot;
    CK_UTF8CHAR label[32];
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key = 0, sess_key = 0, other = 0;
    struct bn_attr a[8], b[8];
    uint8_t secret[512], id[20], sha[SHA_DIGEST_LENGTH];

    plan_lazy();
    p11_load();
    is_rv(p11_init(), CKR_OK, "C_Initialize");
    if (p11_find_slot(false, &slot))
        bail_out("no spare slot");
    pad32(label, "Import");
    is_rv(p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)SO_PIN, 8, label), CKR_OK, "C_InitToken");
    p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    p11_login(s, CKU_SO, SO_PIN);
    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, 6);
    p11->C_Logout(s);

    EVP_PKEY *rsa = make_key("RSA", "rsa_keygen_bits", "2048");
    EVP_PKEY *rsa2 = make_key("RSA", "rsa_keygen_bits", "2048");
    EVP_PKEY *small = make_key("RSA", "rsa_keygen_bits", "1024");
    rsa_parts(rsa, a);

    is_rv(import_rsa(s, a, 8, CK_TRUE, CK_FALSE, &key), CKR_USER_NOT_LOGGED_IN, "no import without a login");
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_OK, "user login");
    is_rv(import_rsa(s, a, 3, CK_TRUE, CK_FALSE, &key), CKR_TEMPLATE_INCOMPLETE,
          "an RSA key as (n, e, d) only is refused: the device needs the primes");
    is_rv(import_rsa(s, a, 8, CK_TRUE, CK_TRUE, &key), CKR_ATTRIBUTE_VALUE_INVALID,
          "an extractable key is refused: the card cannot give it back");
    rsa_parts(rsa2, b);
    memcpy(&b[0], &a[0], sizeof(a[0]));   /* the modulus of one key, the rest of another */
    is_rv(import_rsa(s, b, 8, CK_TRUE, CK_FALSE, &other), CKR_ATTRIBUTE_VALUE_INVALID,
          "parts of two different keys are refused");
    rsa_parts(small, b);
    is_rv(import_rsa(s, b, 8, CK_TRUE, CK_FALSE, &other), CKR_ATTRIBUTE_VALUE_INVALID, "RSA-1024 is refused");
    is_rv(import_rsa(s, a, 5, CK_TRUE, CK_FALSE, &key), CKR_OK,
          "RSA-2048 with n, e, d, p, q (the CRT parts computed)");
    ok(signs_as(s, key, rsa), "it signs as the original key (OpenSSL verifies)");
    is_rv(import_rsa(s, a, 8, CK_FALSE, CK_FALSE, &sess_key), CKR_OK, "a session key, with all eight parts");
    ok(signs_as(s, sess_key, rsa), "  it signs as the original key too");

    ok(attr_bool(s, key, CKA_SENSITIVE) == CK_TRUE, "CKA_SENSITIVE is true");
    ok(attr_bool(s, key, CKA_EXTRACTABLE) == CK_FALSE, "CKA_EXTRACTABLE is false");
    ok(attr_bool(s, key, CKA_LOCAL) == CK_FALSE, "CKA_LOCAL is false: not made on the card");
    ok(attr_bool(s, key, CKA_ALWAYS_SENSITIVE) == CK_FALSE, "CKA_ALWAYS_SENSITIVE is false");
    ok(attr_bool(s, key, CKA_NEVER_EXTRACTABLE) == CK_FALSE, "CKA_NEVER_EXTRACTABLE is false");
    ok(attr_bool(s, key, CKA_PRIVATE) == CK_TRUE, "CKA_PRIVATE is true");
    static const CK_ATTRIBUTE_TYPE secret_types[] = { CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2,
                                                      CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT };
    for (size_t i = 0; i < sizeof(secret_types) / sizeof(secret_types[0]); i++) {
        CK_ATTRIBUTE q = { secret_types[i], secret, sizeof(secret) };
        CK_RV rv = p11->C_GetAttributeValue(s, key, &q, 1);
        ok(rv != CKR_OK && q.ulValueLen == CK_UNAVAILABLE_INFORMATION, "secret part 0x%lx cannot be read (rv 0x%lx)",
           (unsigned long)secret_types[i], (unsigned long)rv);
    }
    CK_KEY_TYPE kt = 0;
    CK_MECHANISM_TYPE gen = 0;
    CK_ATTRIBUTE q[] = { { CKA_ID, id, sizeof(id) }, { CKA_KEY_TYPE, &kt, sizeof(kt) },
                         { CKA_KEY_GEN_MECHANISM, &gen, sizeof(gen) } };
    is_rv(p11->C_GetAttributeValue(s, key, q, 3), CKR_OK, "public attributes read");
    SHA1(a[0].buf, a[0].len, sha);
    ok(q[0].ulValueLen == 20 && !memcmp(id, sha, 20), "CKA_ID is SHA-1 of the modulus, as for generated keys");
    ok(kt == CKK_RSA && gen == CK_UNAVAILABLE_INFORMATION, "CKA_KEY_GEN_MECHANISM is unavailable");

    /* A new session of a new process would reload: here, log out and in. */
    p11->C_Logout(s);
    p11_login(s, CKU_USER, USER_PIN);
    ok(signs_as(s, key, rsa), "the stored key signs after a new login");
    CK_OBJECT_HANDLE found[4];
    ok(p11_find(s, CKO_PRIVATE_KEY, id, 20, found, 4) == 2, "both imports are found by their CKA_ID");

    /* EC: the scalar alone; the module computes the public point. */
    uint8_t d[32];
    memset(d, 0, sizeof(d));
    is_rv(import_ec(s, d, sizeof(d), &other), CKR_ATTRIBUTE_VALUE_INVALID, "an EC key of 0 is refused");
    memset(d, 0xff, sizeof(d));
    is_rv(import_ec(s, d, sizeof(d), &other), CKR_ATTRIBUTE_VALUE_INVALID, "an EC key above the order is refused");
    EVP_PKEY *ec = make_key("EC", "ec_paramgen_curve", "P-256");
    struct bn_attr ed = { .param = OSSL_PKEY_PARAM_PRIV_KEY };
    get_bn(ec, &ed);
    is_rv(import_ec(s, ed.buf, ed.len, &key), CKR_OK, "an EC P-256 key");
    CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
    uint8_t sig[64], der[80], *dp = der;
    CK_ULONG slen = sizeof(sig);
    static const uint8_t data[] = "imported";
    is_rv(p11->C_SignInit(s, &m, key), CKR_OK, "ECDSA with it");
    is_rv(p11->C_Sign(s, (CK_BYTE_PTR)data, sizeof(data), sig, &slen), CKR_OK, "  signed");
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    int dl = i2d_ECDSA_SIG(es, &dp);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ok(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, ec, NULL) == 1 &&
           EVP_DigestVerify(md, der, (size_t)dl, data, sizeof(data)) == 1,
       "  OpenSSL verifies it with the original key");
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(es);

    p11->C_CloseSession(s);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
    p11->C_Finalize(NULL);
    return done_testing();
}
