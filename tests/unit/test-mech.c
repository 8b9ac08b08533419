/* Unit tests for src/mech.c: the software half of every operation. Tessera
 * pads here and lets the device do only the raw private-key step, so each
 * padding is checked by doing that raw step with an OpenSSL key and letting
 * OpenSSL's own verify/decrypt judge the result. */
#include "config.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>

#include "../../src/mech.h"
#include "../tap.h"

#define K 256 /* bytes of an RSA-2048 modulus */

static const uint8_t p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t p384_oid[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

static EVP_PKEY *rsa_key, *p256_key, *p384_key;
static uint8_t rsa_n[K];

/* The device's job: m^d mod n on exactly K bytes, no padding. */
static int raw_private(const uint8_t *in, uint8_t *out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(rsa_key, NULL);
    size_t outlen = K;
    int good = ctx && EVP_PKEY_decrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) > 0 &&
               EVP_PKEY_decrypt(ctx, out, &outlen, in, K) > 0 && outlen == K;
    EVP_PKEY_CTX_free(ctx);
    return good;
}

static size_t pub_point(EVP_PKEY *pk, uint8_t *out, size_t cap)
{
    size_t len = 0;
    if (!EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, out, cap, &len))
        return 0;
    return len;
}

static const char *hash_name(CK_MECHANISM_TYPE h)
{
    switch (h) {
    case CKM_SHA_1: return "SHA-1";
    case CKM_SHA256: return "SHA-256";
    case CKM_SHA384: return "SHA-384";
    case CKM_SHA512: return "SHA-512";
    default: return "?";
    }
}

static void test_table_and_split(void)
{
    static const struct { CK_MECHANISM_TYPE mech, base, hash; } want[] = {
        { CKM_RSA_PKCS, CKM_RSA_PKCS, 0 },
        { CKM_RSA_X_509, CKM_RSA_X_509, 0 },
        { CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS, CKM_SHA256 },
        { CKM_SHA1_RSA_PKCS, CKM_RSA_PKCS, CKM_SHA_1 },
        { CKM_SHA384_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, CKM_SHA384 },
        { CKM_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, 0 },
        { CKM_ECDSA, CKM_ECDSA, 0 },
        { CKM_ECDSA_SHA1, CKM_ECDSA, CKM_SHA_1 },
        { CKM_ECDSA_SHA512, CKM_ECDSA, CKM_SHA512 },
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CK_MECHANISM_TYPE base = 0xdead, hash = 0xdead;
        bool found = tess_mech_split(want[i].mech, &base, &hash);
        ok(found && base == want[i].base && hash == want[i].hash,
           "split 0x%lx -> base 0x%lx hash 0x%lx (want 0x%lx, 0x%lx)", want[i].mech, base, hash, want[i].base,
           want[i].hash);
    }
    CK_MECHANISM_TYPE base, hash;
    ok(!tess_mech_split(CKM_RSA_PKCS_OAEP, &base, &hash), "OAEP is not a sign mechanism: no split");
    ok(!tess_mech_split(CKM_SHA256, &base, &hash), "a bare digest does not split");

    /* Every sign mechanism the module advertises must be one it can run. */
    size_t n = 0;
    const struct tess_mech_info *t = tess_mech_table(&n);
    int consistent = n > 0;
    for (size_t i = 0; i < n; i++) {
        if (!(t[i].flags & CKF_SIGN))
            continue;
        if (!tess_mech_split(t[i].type, &base, &hash) || !tess_mech_find(base) || (hash && !tess_md_for(hash))) {
            printf("# advertised sign mechanism 0x%lx cannot be split\n", t[i].type);
            consistent = 0;
        }
    }
    ok(consistent, "every advertised CKF_SIGN mechanism splits into an offered base and a known hash");
    ok(tess_mech_find(CKM_ECDSA_SHA256) && (tess_mech_find(CKM_ECDSA_SHA256)->flags & CKF_VERIFY),
       "find ECDSA_SHA256 with CKF_VERIFY");
    ok(tess_mech_find(CKM_MD5) == NULL, "MD5 is not offered");

    ok(tess_md_for(CKM_SHA384) && EVP_MD_get_size(tess_md_for(CKM_SHA384)) == 48, "tess_md_for(SHA384) is 48 bytes");
    ok(tess_md_for(CKM_MD5) == NULL, "no EVP_MD for MD5");
    ok(tess_hash_for_mgf(CKG_MGF1_SHA256) == CKM_SHA256 && tess_hash_for_mgf(CKG_MGF1_SHA1) == CKM_SHA_1,
       "MGF1 types map to their hashes");
    ok(tess_hash_for_mgf(0x999) == 0, "unknown MGF maps to 0");
}

static void test_digestinfo_and_pkcs1_sign(void)
{
    static const CK_MECHANISM_TYPE hashes[] = { CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512 };
    static const char msg[] = "the quick brown fox";

    for (size_t i = 0; i < 4; i++) {
        const EVP_MD *md = tess_md_for(hashes[i]);
        uint8_t digest[EVP_MAX_MD_SIZE], di[128], em[K], sig[K];
        unsigned int dlen = 0;
        size_t dilen = sizeof(di);
        EVP_Digest(msg, strlen(msg), digest, &dlen, md, NULL);

        is_rv(tess_digestinfo_wrap(hashes[i], digest, dlen, di, &dilen), CKR_OK, hash_name(hashes[i]));
        const uint8_t *pd = NULL;
        size_t pdlen = 0;
        ok(tess_digestinfo_parse(di, dilen, &pd, &pdlen) == hashes[i] && pdlen == dlen && pd == di + dilen - dlen &&
               !memcmp(pd, digest, dlen),
           "%s DigestInfo parses back to the same hash and digest", hash_name(hashes[i]));

        size_t small = dilen - 1;
        ok(tess_digestinfo_wrap(hashes[i], digest, dlen, di, &small) == CKR_BUFFER_TOO_SMALL,
           "%s DigestInfo into a buffer one byte short", hash_name(hashes[i]));
        size_t room = sizeof(di);
        ok(tess_digestinfo_wrap(hashes[i], digest, dlen - 1, di, &room) == CKR_DATA_LEN_RANGE &&
               tess_digestinfo_wrap(hashes[i], digest, dlen + 1, di, &room) == CKR_DATA_LEN_RANGE,
           "%s DigestInfo refuses a digest one byte short or long", hash_name(hashes[i]));

        /* Pad, let the "device" sign, and have OpenSSL verify as PKCS#1 v1.5. */
        room = sizeof(di);
        tess_digestinfo_wrap(hashes[i], digest, dlen, di, &room);
        int good = tess_pad_pkcs1_sign(di, room, em, K) == CKR_OK && raw_private(em, sig);
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(rsa_key, NULL);
        good = good && EVP_PKEY_verify_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
               EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 && EVP_PKEY_verify(ctx, sig, K, digest, dlen) == 1;
        EVP_PKEY_CTX_free(ctx);
        ok(good, "%s: DigestInfo + type 1 padding + raw RSA verifies with OpenSSL", hash_name(hashes[i]));
    }

    uint8_t d[32] = { 0 }, out[64];
    size_t outlen = sizeof(out);
    ok(tess_digestinfo_wrap(CKM_MD5, d, 16, out, &outlen) == CKR_MECHANISM_INVALID, "DigestInfo for MD5 refused");
    const uint8_t *pd;
    size_t pdlen;
    outlen = sizeof(out);
    tess_digestinfo_wrap(CKM_SHA256, d, 32, out, &outlen);
    ok(tess_digestinfo_parse(out, outlen - 1, &pd, &pdlen) == 0, "truncated DigestInfo is not recognised");
    out[6] ^= 1; /* flip a bit of the OID */
    ok(tess_digestinfo_parse(out, outlen, &pd, &pdlen) == 0, "DigestInfo with a damaged OID is not recognised");
    ok(tess_digestinfo_parse(d, 32, &pd, &pdlen) == 0, "a bare digest is not a DigestInfo");
}

static void test_pkcs1_layout(void)
{
    uint8_t em[64], in[64];
    memset(in, 0xab, sizeof(in));
    memset(em, 0x55, sizeof(em));

    is_rv(tess_pad_pkcs1_sign((const uint8_t *)"abc", 3, em, 64), CKR_OK, "type 1 pad of 3 bytes into 64");
    int ff = 1;
    for (size_t i = 2; i < 64 - 3 - 1; i++)
        ff &= em[i] == 0xff;
    ok(em[0] == 0x00 && em[1] == 0x01 && ff && em[60] == 0x00 && !memcmp(em + 61, "abc", 3),
       "layout is 00 01 FF..FF 00 data");

    is_rv(tess_pad_pkcs1_sign(in, 64 - 11, em, 64), CKR_OK, "k-11 bytes (8 bytes of FF) fits");
    ok(em[0] == 0 && em[1] == 1 && !memcmp(em + 2, "\xff\xff\xff\xff\xff\xff\xff\xff", 8) && em[10] == 0 &&
           em[11] == 0xab,
       "minimum padding is eight FF bytes");
    is_rv(tess_pad_pkcs1_sign(in, 64 - 10, em, 64), CKR_DATA_LEN_RANGE, "k-10 bytes is too long");
    is_rv(tess_pad_pkcs1_sign(in, 64, em, 64), CKR_DATA_LEN_RANGE, "k bytes is too long");
}

static int pss_verify(const uint8_t *sig, const uint8_t *mhash, size_t hlen, CK_MECHANISM_TYPE hash,
                      CK_MECHANISM_TYPE mgf, int salt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(rsa_key, NULL);
    int good = ctx && EVP_PKEY_verify_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
               EVP_PKEY_CTX_set_signature_md(ctx, tess_md_for(hash)) > 0 &&
               EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, tess_md_for(mgf)) > 0 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, salt) > 0 && EVP_PKEY_verify(ctx, sig, K, mhash, hlen) == 1;
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return good;
}

static void test_pss(void)
{
    static const struct { CK_MECHANISM_TYPE hash, mgf; int salt; } cases[] = {
        { CKM_SHA256, CKM_SHA256, 32 },
        { CKM_SHA_1, CKM_SHA_1, 20 },
        { CKM_SHA384, CKM_SHA_1, 0 },  /* MGF hash differs from the message hash */
        { CKM_SHA512, CKM_SHA512, 64 },
        { CKM_SHA256, CKM_SHA256, 222 }, /* largest salt: emLen - hLen - 2 */
    };
    uint8_t mhash[64], em[K], em2[K], sig[K];

    for (size_t i = 0; i < sizeof(mhash); i++)
        mhash[i] = (uint8_t)(0x30 + i);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t hlen = (size_t)EVP_MD_get_size(tess_md_for(cases[i].hash));
        CK_RV rv = tess_pad_pss(rsa_n, K, cases[i].hash, cases[i].mgf, (size_t)cases[i].salt, mhash, em);
        int good = rv == CKR_OK && raw_private(em, sig);
        ok(good && pss_verify(sig, mhash, hlen, cases[i].hash, cases[i].mgf, cases[i].salt),
           "PSS %s/MGF1-%s salt %d: OpenSSL verifies the signature", hash_name(cases[i].hash),
           hash_name(cases[i].mgf), cases[i].salt);
        /* A verifier that expects another salt length must refuse: the salt really is that long. */
        ok(good && !pss_verify(sig, mhash, hlen, cases[i].hash, cases[i].mgf, cases[i].salt + 1),
           "PSS %s salt %d: verifying with salt %d fails", hash_name(cases[i].hash), cases[i].salt,
           cases[i].salt + 1);
    }

    /* The salt is random: two paddings differ, unless the salt is empty. */
    tess_pad_pss(rsa_n, K, CKM_SHA256, CKM_SHA256, 32, mhash, em);
    tess_pad_pss(rsa_n, K, CKM_SHA256, CKM_SHA256, 32, mhash, em2);
    ok(memcmp(em, em2, K) != 0, "two PSS paddings with a 32-byte salt differ");
    tess_pad_pss(rsa_n, K, CKM_SHA256, CKM_SHA256, 0, mhash, em);
    tess_pad_pss(rsa_n, K, CKM_SHA256, CKM_SHA256, 0, mhash, em2);
    ok(memcmp(em, em2, K) == 0, "two PSS paddings with no salt are identical");
    ok(em[K - 1] == 0xbc && (em[0] & 0x80) == 0, "PSS EM ends in 0xbc and its top bit is clear");

    is_rv(tess_pad_pss(rsa_n, K, CKM_SHA256, CKM_SHA256, 223, mhash, em), CKR_MECHANISM_PARAM_INVALID,
          "PSS salt one byte over the maximum");
    is_rv(tess_pad_pss(rsa_n, K, CKM_SHA256, CKM_SHA256, K + 1, mhash, em), CKR_MECHANISM_PARAM_INVALID,
          "PSS salt longer than the modulus");
    is_rv(tess_pad_pss(rsa_n, K, CKM_MD5, CKM_SHA256, 16, mhash, em), CKR_MECHANISM_PARAM_INVALID,
          "PSS with an unknown hash");
    is_rv(tess_pad_pss(rsa_n, K, CKM_SHA256, 0, 32, mhash, em), CKR_MECHANISM_PARAM_INVALID,
          "PSS with an unknown MGF hash");
    ERR_clear_error();
}

/* Encrypt with OpenSSL, then do what a token does: raw private op, unpad here. */
static int encrypt_then_raw(int padding, const EVP_MD *oaep_md, const char *label, const char *msg, uint8_t *em)
{
    uint8_t ct[K];
    size_t ctlen = sizeof(ct);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(rsa_key, NULL);
    int good = ctx && EVP_PKEY_encrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, padding) > 0;
    if (good && oaep_md)
        good = EVP_PKEY_CTX_set_rsa_oaep_md(ctx, oaep_md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, oaep_md) > 0;
    if (good && label) /* set0: OpenSSL takes ownership of the copy */
        good = EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, OPENSSL_memdup(label, strlen(label)), (int)strlen(label)) > 0;
    good = good && EVP_PKEY_encrypt(ctx, ct, &ctlen, (const uint8_t *)msg, strlen(msg)) > 0 && ctlen == K;
    EVP_PKEY_CTX_free(ctx);
    return good && raw_private(ct, em);
}

static void test_oaep(void)
{
    static const char msg[] = "attack at dawn";
    uint8_t em[K], out[K];
    size_t outlen = sizeof(out);

    ok(encrypt_then_raw(RSA_PKCS1_OAEP_PADDING, EVP_sha256(), "abc", msg, em), "OpenSSL OAEP-SHA256 encrypt, label abc");
    ok(em[0] == 0, "raw RSA output starts with the 00 byte");
    is_rv(tess_unpad_oaep(em, K, CKM_SHA256, CKM_SHA256, (const uint8_t *)"abc", 3, out, &outlen), CKR_OK,
          "OAEP unpad with the right label");
    ok(outlen == strlen(msg) && !memcmp(out, msg, outlen), "OAEP unpad gives back the plaintext");

    outlen = sizeof(out);
    is_rv(tess_unpad_oaep(em, K, CKM_SHA256, CKM_SHA256, (const uint8_t *)"abd", 3, out, &outlen),
          CKR_ENCRYPTED_DATA_INVALID, "OAEP unpad with a wrong label");
    outlen = sizeof(out);
    is_rv(tess_unpad_oaep(em, K, CKM_SHA256, CKM_SHA256, NULL, 0, out, &outlen), CKR_ENCRYPTED_DATA_INVALID,
          "OAEP unpad with no label");
    outlen = sizeof(out);
    is_rv(tess_unpad_oaep(em, K, CKM_SHA_1, CKM_SHA_1, (const uint8_t *)"abc", 3, out, &outlen),
          CKR_ENCRYPTED_DATA_INVALID, "OAEP unpad with the wrong hash");
    outlen = sizeof(out);
    is_rv(tess_unpad_oaep(em, K, CKM_MD5, CKM_SHA256, NULL, 0, out, &outlen), CKR_MECHANISM_PARAM_INVALID,
          "OAEP unpad with an unknown hash");
    uint8_t bad[K];
    memcpy(bad, em, K);
    bad[K / 2] ^= 0x01;
    outlen = sizeof(out);
    is_rv(tess_unpad_oaep(bad, K, CKM_SHA256, CKM_SHA256, (const uint8_t *)"abc", 3, out, &outlen),
          CKR_ENCRYPTED_DATA_INVALID, "OAEP unpad of a damaged block");

    /* OpenSSL's defaults: SHA-1 for both, empty label. */
    ok(encrypt_then_raw(RSA_PKCS1_OAEP_PADDING, NULL, NULL, msg, em), "OpenSSL OAEP-SHA1 encrypt, no label");
    outlen = sizeof(out);
    ok(tess_unpad_oaep(em, K, CKM_SHA_1, CKM_SHA_1, NULL, 0, out, &outlen) == CKR_OK && outlen == strlen(msg) &&
           !memcmp(out, msg, outlen),
       "OAEP-SHA1 unpad with an empty label gives back the plaintext");
    ERR_clear_error();
}

static void test_pkcs1_decrypt(void)
{
    static const char msg[] = "hello, v1.5";
    uint8_t em[K], out[K], bad[K];
    size_t outlen = sizeof(out);

    ok(encrypt_then_raw(RSA_PKCS1_PADDING, NULL, NULL, msg, em), "OpenSSL PKCS#1 v1.5 encrypt");
    ok(em[0] == 0x00 && em[1] == 0x02, "raw RSA output starts 00 02");
    ok(tess_unpad_pkcs1_decrypt(em, K, out, &outlen) == CKR_OK && outlen == strlen(msg) && !memcmp(out, msg, outlen),
       "type 2 unpad gives back the plaintext");

    memcpy(bad, em, K);
    bad[1] = 0x01;
    outlen = sizeof(out);
    is_rv(tess_unpad_pkcs1_decrypt(bad, K, out, &outlen), CKR_ENCRYPTED_DATA_INVALID, "block type 01 refused");

    /* 00 02, then nonzero bytes to the end: no separator. */
    memset(bad, 0x11, K);
    bad[0] = 0x00;
    bad[1] = 0x02;
    outlen = sizeof(out);
    is_rv(tess_unpad_pkcs1_decrypt(bad, K, out, &outlen), CKR_ENCRYPTED_DATA_INVALID, "no 00 separator refused");

    /* Separator after only 7 bytes of padding (the minimum is 8). */
    bad[2 + 7] = 0x00;
    outlen = sizeof(out);
    is_rv(tess_unpad_pkcs1_decrypt(bad, K, out, &outlen), CKR_ENCRYPTED_DATA_INVALID, "7-byte padding refused");
    bad[2 + 7] = 0x11;
    bad[2 + 8] = 0x00;
    outlen = sizeof(out);
    CK_RV rv = tess_unpad_pkcs1_decrypt(bad, K, out, &outlen);
    ok(rv == CKR_OK && outlen == K - 11,
       "8-byte padding accepted: %zu bytes of message", outlen);
    ERR_clear_error();
}

static void test_ec_params_and_points(void)
{
    static const uint8_t garbage[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
    static const uint8_t rsa_oid[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01 };
    uint8_t trailing[sizeof(p256_oid) + 1];

    ok(tess_ec_params_nid(p256_oid, sizeof(p256_oid)) == NID_X9_62_prime256v1, "P-256 OID -> prime256v1");
    ok(tess_ec_params_nid(p384_oid, sizeof(p384_oid)) == NID_secp384r1, "P-384 OID -> secp384r1");
    ok(tess_ec_params_nid(garbage, sizeof(garbage)) == NID_undef, "a SEQUENCE (explicit parameters) -> undef");
    ok(tess_ec_params_nid(p256_oid, 5) == NID_undef, "truncated OID -> undef");
    memcpy(trailing, p256_oid, sizeof(p256_oid));
    trailing[sizeof(p256_oid)] = 0;
    ok(tess_ec_params_nid(trailing, sizeof(trailing)) == NID_undef, "OID followed by a stray byte -> undef");
    ok(tess_ec_params_nid(p256_oid, 0) == NID_undef, "empty params -> undef");
    ok(tess_ec_field_len(tess_ec_params_nid(rsa_oid, sizeof(rsa_oid))) == 0, "a non-curve OID has no field length");
    ok(tess_ec_field_len(NID_X9_62_prime256v1) == 32 && tess_ec_field_len(NID_secp384r1) == 48,
       "field lengths 32 and 48");
    ERR_clear_error();

    uint8_t raw[65], der[67];
    const uint8_t *pt = NULL;
    size_t plen = 0;
    ok(pub_point(p256_key, raw, sizeof(raw)) == 65 && raw[0] == 0x04, "OpenSSL P-256 public point is 65 bytes 04|X|Y");
    ok(tess_ec_point_raw(raw, 65, 32, &pt, &plen) == CKR_OK && pt == raw && plen == 65, "raw point accepted as is");
    der[0] = 0x04;
    der[1] = 0x41;
    memcpy(der + 2, raw, 65);
    pt = NULL;
    ok(tess_ec_point_raw(der, 67, 32, &pt, &plen) == CKR_OK && pt == der + 2 && plen == 65,
       "DER OCTET STRING 04 41 04.. unwrapped to the 65-byte point");
    ok(tess_ec_point_raw(der, 67, 0, &pt, &plen) == CKR_OK && pt == der + 2 && plen == 65,
       "DER point unwrapped with the field length unknown");
    /* X chosen below 0x80 so the raw point cannot be read as a DER header. */
    uint8_t raw_low[65];
    memset(raw_low, 0x11, sizeof(raw_low));
    raw_low[0] = 0x04;
    ok(tess_ec_point_raw(raw_low, 65, 0, &pt, &plen) == CKR_OK && pt == raw_low && plen == 65,
       "raw point accepted with the field length unknown");

    /* P-521 points need the long DER length form: 04 81 85 04 X Y. */
    static uint8_t p521[3 + 133];
    memset(p521, 0x5a, sizeof(p521));
    p521[0] = 0x04, p521[1] = 0x81, p521[2] = 0x85, p521[3] = 0x04;
    ok(tess_ec_point_raw(p521, sizeof(p521), 66, &pt, &plen) == CKR_OK && pt == p521 + 3 && plen == 133,
       "DER long form 04 81 85 unwrapped to a 133-byte P-521 point");

    uint8_t bad[70];
    memcpy(bad, der, 67);
    bad[1] = 0x40;
    ok(tess_ec_point_raw(bad, 67, 32, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "DER length byte off by one");
    bad[1] = 0x41;
    bad[67] = 0x00;
    ok(tess_ec_point_raw(bad, 68, 32, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "DER point with a trailing byte");
    ok(tess_ec_point_raw(raw, 64, 32, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "raw point one byte short");
    ok(tess_ec_point_raw(der, 67, 48, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "P-256 point for a P-384 key");
    memcpy(bad, raw, 33);
    bad[0] = 0x02;
    ok(tess_ec_point_raw(bad, 33, 32, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "compressed point refused");
    memcpy(bad, raw, 65);
    bad[0] = 0x05;
    ok(tess_ec_point_raw(bad, 65, 32, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "65 bytes not starting 04");
    ok(tess_ec_point_raw(raw, 0, 32, &pt, &plen) == CKR_ATTRIBUTE_VALUE_INVALID, "empty point");
}

static void test_ecdsa_der(void)
{
    uint8_t digest[32], sigder[80], rs[64];
    size_t siglen = sizeof(sigder);
    unsigned int dlen;
    EVP_Digest("ecdsa", 5, digest, &dlen, EVP_sha256(), NULL);

    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(p256_key, NULL);
    int good = ctx && EVP_PKEY_sign_init(ctx) > 0 && EVP_PKEY_sign(ctx, sigder, &siglen, digest, 32) > 0;
    EVP_PKEY_CTX_free(ctx);
    const uint8_t *p = sigder;
    ECDSA_SIG *ref = good ? d2i_ECDSA_SIG(NULL, &p, (long)siglen) : NULL;
    ok(ref != NULL, "OpenSSL ECDSA P-256 signature made and parsed");
    if (!ref)
        return;
    BN_bn2binpad(ECDSA_SIG_get0_r(ref), rs, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(ref), rs + 32, 32);

    uint8_t *der = NULL;
    size_t derlen = 0;
    is_rv(tess_ecdsa_rs_to_der(rs, 64, &der, &derlen), CKR_OK, "r|s to DER");
    p = der;
    ECDSA_SIG *back = der ? d2i_ECDSA_SIG(NULL, &p, (long)derlen) : NULL;
    ok(back && p == der + derlen && !BN_cmp(ECDSA_SIG_get0_r(back), ECDSA_SIG_get0_r(ref)) &&
           !BN_cmp(ECDSA_SIG_get0_s(back), ECDSA_SIG_get0_s(ref)),
       "d2i_ECDSA_SIG reads back the same r and s, using every byte");
    ok(derlen == siglen && !memcmp(der, sigder, siglen), "DER is byte-identical to OpenSSL's (DER is canonical)");
    ECDSA_SIG_free(back);
    ECDSA_SIG_free(ref);
    OPENSSL_free(der);

    /* r with leading zero bytes must shrink; s with its top bit set needs a 00 pad. */
    memset(rs, 0, 32);
    rs[31] = 0x01;
    memset(rs + 32, 0xff, 32);
    static const uint8_t head[] = { 0x30, 0x26, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00 };
    der = NULL;
    ok(tess_ecdsa_rs_to_der(rs, 64, &der, &derlen) == CKR_OK && derlen == 40 && !memcmp(der, head, sizeof(head)) &&
           der[8] == 0xff && der[39] == 0xff,
       "r=1, s=FF..FF encodes as 30 26 02 01 01 02 21 00 FF..FF");
    OPENSSL_free(der);
}

static CK_RV pkey_of(CK_ULONG kt, CK_ATTRIBUTE_TYPE t1, const void *v1, size_t l1, CK_ATTRIBUTE_TYPE t2,
                     const void *v2, size_t l2, EVP_PKEY **out, size_t *siglen)
{
    struct tess_attrs a = { 0 };
    if (kt != (CK_ULONG)-1)
        tess_attrs_set_ulong(&a, CKA_KEY_TYPE, kt);
    if (v1)
        tess_attrs_set(&a, t1, v1, l1);
    if (v2)
        tess_attrs_set(&a, t2, v2, l2);
    *out = NULL;
    CK_RV rv = tess_pkey_from_attrs(&a, out);
    if (siglen)
        *siglen = tess_key_sig_len(&a);
    tess_attrs_free(&a);
    ERR_clear_error();
    return rv;
}

static void test_pkey_from_attrs(void)
{
    static const uint8_t e[] = { 0x01, 0x00, 0x01 };
    EVP_PKEY *pk = NULL;
    size_t siglen = 0;

    ok(pkey_of(CKK_RSA, CKA_MODULUS, rsa_n, K, CKA_PUBLIC_EXPONENT, e, 3, &pk, &siglen) == CKR_OK && pk,
       "RSA key from modulus and exponent");
    ok(pk && EVP_PKEY_eq(pk, rsa_key) == 1 && EVP_PKEY_get_bits(pk) == 2048,
       "it is the same 2048-bit public key as OpenSSL's");
    ok(siglen == 256, "tess_key_sig_len of RSA-2048 is 256 (%zu)", siglen);
    EVP_PKEY_free(pk);

    /* A modulus attribute with a leading zero byte is still a 256-byte key. */
    uint8_t n0[K + 1] = { 0 };
    memcpy(n0 + 1, rsa_n, K);
    CK_RV rv = pkey_of(CKK_RSA, CKA_MODULUS, n0, sizeof(n0), CKA_PUBLIC_EXPONENT, e, 3, &pk, &siglen);
    ok(rv == CKR_OK && EVP_PKEY_eq(pk, rsa_key) == 1 && siglen == 256,
       "a leading 00 on the modulus changes neither the key nor the length (%zu)", siglen);
    EVP_PKEY_free(pk);

    ok(pkey_of(CKK_RSA, CKA_MODULUS, rsa_n, K, 0, NULL, 0, &pk, NULL) == CKR_KEY_TYPE_INCONSISTENT,
       "RSA without an exponent refused");
    EVP_PKEY_free(pk);
    ok(pkey_of((CK_ULONG)-1, CKA_MODULUS, rsa_n, K, CKA_PUBLIC_EXPONENT, e, 3, &pk, &siglen) ==
               CKR_KEY_TYPE_INCONSISTENT && siglen == 0,
       "no CKA_KEY_TYPE: refused, length 0");
    EVP_PKEY_free(pk);
    ok(pkey_of(CKK_AES, CKA_VALUE, e, 3, 0, NULL, 0, &pk, &siglen) == CKR_KEY_TYPE_INCONSISTENT && siglen == 0,
       "AES key type refused, length 0");
    EVP_PKEY_free(pk);

    uint8_t raw[97], der[99];
    size_t plen = pub_point(p256_key, raw, sizeof(raw));
    der[0] = 0x04;
    der[1] = (uint8_t)plen;
    memcpy(der + 2, raw, plen);
    ok(pkey_of(CKK_EC, CKA_EC_PARAMS, p256_oid, sizeof(p256_oid), CKA_EC_POINT, der, plen + 2, &pk, &siglen) ==
               CKR_OK &&
           pk && EVP_PKEY_eq(pk, p256_key) == 1,
       "P-256 key from params and DER point equals OpenSSL's");
    ok(siglen == 64, "tess_key_sig_len of P-256 is 64 (%zu)", siglen);
    EVP_PKEY_free(pk);
    ok(pkey_of(CKK_EC, CKA_EC_PARAMS, p256_oid, sizeof(p256_oid), CKA_EC_POINT, raw, plen, &pk, NULL) == CKR_OK &&
           pk && EVP_PKEY_eq(pk, p256_key) == 1,
       "P-256 key from params and raw point equals OpenSSL's");
    EVP_PKEY_free(pk);

    plen = pub_point(p384_key, raw, sizeof(raw));
    der[1] = (uint8_t)plen;
    memcpy(der + 2, raw, plen);
    siglen = 0;
    rv = pkey_of(CKK_EC, CKA_EC_PARAMS, p384_oid, sizeof(p384_oid), CKA_EC_POINT, der, plen + 2, &pk, &siglen);
    ok(plen == 97 && der[1] == 0x61 && rv == CKR_OK && EVP_PKEY_eq(pk, p384_key) == 1 && siglen == 96,
       "P-384 key from params and DER point 04 61 04..; signature length 96 (%zu)", siglen);
    EVP_PKEY_free(pk);

    /* 04 followed by 64 bytes that are not a point on the curve. */
    memset(raw, 0x01, 65);
    raw[0] = 0x04;
    ok(pkey_of(CKK_EC, CKA_EC_PARAMS, p256_oid, sizeof(p256_oid), CKA_EC_POINT, raw, 65, &pk, NULL) ==
           CKR_KEY_TYPE_INCONSISTENT,
       "EC point off the curve refused");
    EVP_PKEY_free(pk);
    plen = pub_point(p256_key, raw, sizeof(raw));
    ok(pkey_of(CKK_EC, CKA_EC_PARAMS, p384_oid, sizeof(p384_oid), CKA_EC_POINT, raw, plen, &pk, NULL) ==
           CKR_KEY_TYPE_INCONSISTENT,
       "P-256 point with P-384 params refused");
    EVP_PKEY_free(pk);
    ok(pkey_of(CKK_EC, CKA_EC_PARAMS, "\x05\x00", 2, CKA_EC_POINT, raw, plen, &pk, &siglen) ==
               CKR_KEY_TYPE_INCONSISTENT && siglen == 0,
       "EC with NULL params refused, length 0");
    EVP_PKEY_free(pk);

    /* End to end: a signature from the OpenSSL key verifies under the rebuilt one. */
    uint8_t digest[32], sig[80];
    size_t slen = sizeof(sig);
    unsigned int dlen;
    EVP_Digest("end to end", 10, digest, &dlen, EVP_sha256(), NULL);
    der[1] = 65;
    memcpy(der + 2, raw, 65);
    pkey_of(CKK_EC, CKA_EC_PARAMS, p256_oid, sizeof(p256_oid), CKA_EC_POINT, der, 67, &pk, NULL);
    EVP_PKEY_CTX *sc = EVP_PKEY_CTX_new(p256_key, NULL), *vc = pk ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
    ok(sc && vc && EVP_PKEY_sign_init(sc) > 0 && EVP_PKEY_sign(sc, sig, &slen, digest, 32) > 0 &&
           EVP_PKEY_verify_init(vc) > 0 && EVP_PKEY_verify(vc, sig, slen, digest, 32) == 1,
       "ECDSA signature verifies under the key rebuilt from attributes");
    EVP_PKEY_CTX_free(sc);
    EVP_PKEY_CTX_free(vc);
    EVP_PKEY_free(pk);
}

int main(void)
{
    plan_lazy();

    rsa_key = EVP_RSA_gen(2048);
    p256_key = EVP_EC_gen("P-256");
    p384_key = EVP_EC_gen("P-384");
    BIGNUM *n = NULL;
    if (!rsa_key || !p256_key || !p384_key || !EVP_PKEY_get_bn_param(rsa_key, OSSL_PKEY_PARAM_RSA_N, &n) ||
        BN_bn2binpad(n, rsa_n, K) != K)
        bail_out("cannot generate the test keys with OpenSSL");
    BN_free(n);

    test_table_and_split();
    test_digestinfo_and_pkcs1_sign();
    test_pkcs1_layout();
    test_pss();
    test_oaep();
    test_pkcs1_decrypt();
    test_ec_params_and_points();
    test_ecdsa_der();
    test_pkey_from_attrs();

    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(p256_key);
    EVP_PKEY_free(p384_key);
    return done_testing();
}
