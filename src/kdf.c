#include "config.h"
#include "kdf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "log.h"
#include "util.h"

static const char admin_label[] = "Tessera card admin key v1";

CK_RV tess_kbkdf(enum tess_prf prf, const uint8_t *key, size_t key_len, const uint8_t *label, size_t label_len,
                 const uint8_t *fixed, size_t fixed_len, uint8_t *out, size_t out_len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[10], *p = params;
    int structured = label != NULL, r = 32;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (!ctx)
        goto out;
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, "counter", 0);
    if (prf == TESS_PRF_HMAC_SHA256) {
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, "HMAC", 0);
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0);
    } else {
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, "CMAC", 0);
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_CIPHER,
                                                prf == TESS_PRF_CMAC_AES128 ? "AES-128-CBC" : "AES-256-CBC", 0);
    }
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
    /* OpenSSL calls the label "salt" and the context "info"; the 0x00
     * separator and [L]32 are its use-separator and use-l switches. */
    if (structured)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, label_len);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)fixed, fixed_len);
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_L, &structured);
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_USE_SEPARATOR, &structured);
#ifdef OSSL_KDF_PARAM_KBKDF_R
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_KBKDF_R, &r);   /* OpenSSL 3.1+; 3.0 always uses 32 */
#else
    (void)r;
#endif
    *p = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx, out, out_len, params) == 1)
        rv = CKR_OK;
    else
        TESS_ERR("kdf: SP 800-108 derivation failed");
out:
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rv;
}

size_t tess_key_alg_len(enum tess_key_alg alg)
{
    switch (alg) {
    case TESS_KEY_3DES: return 24;
    case TESS_KEY_AES128: return 16;
    case TESS_KEY_AES192: return 24;
    case TESS_KEY_AES256: return 32;
    }
    return 0;
}

int tess_key_alg_parse(const char *name, enum tess_key_alg *alg)
{
    static const struct { const char *name; enum tess_key_alg alg; } names[] = {
        { "3des", TESS_KEY_3DES }, { "aes128", TESS_KEY_AES128 }, { "aes192", TESS_KEY_AES192 },
        { "aes256", TESS_KEY_AES256 },
    };
    for (size_t i = 0; i < TESS_ARRAY_SIZE(names); i++) {
        if (!strcasecmp(name, names[i].name)) {
            *alg = names[i].alg;
            return 0;
        }
    }
    return -1;
}

const char *tess_prf_name(enum tess_prf prf)
{
    switch (prf) {
    case TESS_PRF_CMAC_AES128: return "cmac-aes128";
    case TESS_PRF_CMAC_AES256: return "cmac-aes256";
    case TESS_PRF_HMAC_SHA256: return "hmac-sha256";
    }
    return "?";
}

const char *tess_key_alg_name(enum tess_key_alg alg)
{
    switch (alg) {
    case TESS_KEY_3DES: return "3des";
    case TESS_KEY_AES128: return "aes128";
    case TESS_KEY_AES192: return "aes192";
    case TESS_KEY_AES256: return "aes256";
    }
    return "?";
}

int tess_prf_parse(const char *name, enum tess_prf *prf)
{
    if (!strcasecmp(name, "cmac-aes128"))
        *prf = TESS_PRF_CMAC_AES128;
    else if (!strcasecmp(name, "cmac-aes256"))
        *prf = TESS_PRF_CMAC_AES256;
    else if (!strcasecmp(name, "hmac-sha256"))
        *prf = TESS_PRF_HMAC_SHA256;
    else
        return -1;
    return 0;
}

CK_RV tess_kbkdf_external(tess_prf_fn prf, void *ctx, size_t block_len, const uint8_t *label, size_t label_len,
                          const uint8_t *context, size_t context_len, uint8_t *out, size_t out_len)
{
    size_t in_len = 4 + label_len + 1 + context_len + 4, done = 0;
    uint8_t *in = malloc(in_len), block[64];
    uint32_t bits = (uint32_t)(out_len * 8);
    CK_RV rv = CKR_OK;

    if (!in)
        return CKR_HOST_MEMORY;
    if (block_len == 0 || block_len > sizeof(block)) {
        free(in);
        return CKR_ARGUMENTS_BAD;
    }
    memcpy(in + 4, label, label_len);
    in[4 + label_len] = 0x00;
    memcpy(in + 5 + label_len, context, context_len);
    for (int b = 0; b < 4; b++)
        in[in_len - 4 + b] = (uint8_t)(bits >> (24 - 8 * b));
    for (uint32_t i = 1; done < out_len && rv == CKR_OK; i++) {
        for (int b = 0; b < 4; b++)
            in[b] = (uint8_t)(i >> (24 - 8 * b));
        rv = prf(ctx, in, in_len, block);
        if (rv == CKR_OK) {
            size_t n = out_len - done < block_len ? out_len - done : block_len;
            memcpy(out + done, block, n);
            done += n;
        }
    }
    tess_wipe(block, sizeof(block));
    free(in);
    if (rv != CKR_OK)
        tess_wipe(out, out_len);
    return rv;
}

void tess_des_fix_parity(uint8_t *key, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = key[i] & 0xfe, ones = 0;
        for (int bit = 1; bit < 8; bit++)
            ones += (b >> bit) & 1;
        key[i] = (uint8_t)(b | ((ones & 1) ? 0 : 1));
    }
}

/* Either form of diversification: the KDF's len bytes become the key. */
static CK_RV admin_key_done(CK_RV rv, enum tess_key_alg alg, uint8_t *out, size_t len, size_t *out_len)
{
    if (rv != CKR_OK)
        return rv;
    if (alg == TESS_KEY_3DES)
        tess_des_fix_parity(out, len);
    *out_len = len;
    return CKR_OK;
}

CK_RV tess_admin_key_diversify(enum tess_prf prf, const uint8_t *master, size_t master_len, const char *serial,
                               enum tess_key_alg alg, uint8_t *out, size_t *out_len)
{
    size_t len = tess_key_alg_len(alg);
    CK_RV rv;
    if (!len || *out_len < len || !serial || !*serial)
        return CKR_ARGUMENTS_BAD;
    /* The CMAC PRFs take AES keys; HMAC takes any length (32+ bytes advised). */
    if ((prf == TESS_PRF_CMAC_AES128 && master_len != 16) || (prf == TESS_PRF_CMAC_AES256 && master_len != 32))
        return CKR_KEY_SIZE_RANGE;
    rv = tess_kbkdf(prf, master, master_len, (const uint8_t *)admin_label, sizeof(admin_label) - 1,
                    (const uint8_t *)serial, strlen(serial), out, len);
    return admin_key_done(rv, alg, out, len, out_len);
}

CK_RV tess_admin_key_diversify_external(tess_prf_fn prf, void *ctx, size_t block_len, const char *serial,
                                        enum tess_key_alg alg, uint8_t *out, size_t *out_len)
{
    size_t len = tess_key_alg_len(alg);
    CK_RV rv;
    if (!len || *out_len < len || !serial || !*serial)
        return CKR_ARGUMENTS_BAD;
    rv = tess_kbkdf_external(prf, ctx, block_len, (const uint8_t *)admin_label, sizeof(admin_label) - 1,
                             (const uint8_t *)serial, strlen(serial), out, len);
    return admin_key_done(rv, alg, out, len, out_len);
}

const uint8_t tess_admin_default_key[24] = {
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
};

size_t tess_admin_block_len(enum tess_key_alg alg)
{
    return alg == TESS_KEY_3DES ? 8 : 16;
}

static const EVP_CIPHER *admin_cipher(enum tess_key_alg alg)
{
    switch (alg) {
    case TESS_KEY_3DES: return EVP_des_ede3_ecb();
    case TESS_KEY_AES128: return EVP_aes_128_ecb();
    case TESS_KEY_AES192: return EVP_aes_192_ecb();
    case TESS_KEY_AES256: return EVP_aes_256_ecb();
    }
    return NULL;
}

CK_RV tess_admin_response(enum tess_key_alg alg, const uint8_t *key, size_t key_len, const uint8_t *challenge,
                          size_t len, uint8_t *response)
{
    const EVP_CIPHER *cipher = admin_cipher(alg);
    EVP_CIPHER_CTX *ctx = NULL;
    CK_RV rv = CKR_FUNCTION_FAILED;
    int n = 0;

    if (!cipher || key_len != tess_key_alg_len(alg) || len != tess_admin_block_len(alg))
        return CKR_ARGUMENTS_BAD;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return CKR_HOST_MEMORY;
    if (EVP_EncryptInit_ex(ctx, cipher, NULL, key, NULL) && EVP_CIPHER_CTX_set_padding(ctx, 0) &&
        EVP_EncryptUpdate(ctx, response, &n, challenge, (int)len) && (size_t)n == len)
        rv = CKR_OK;
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

CK_RV tess_admin_kcv(enum tess_key_alg alg, const uint8_t *key, size_t key_len, uint8_t kcv[3])
{
    uint8_t zero[16] = { 0 }, out[16];
    CK_RV rv = tess_admin_response(alg, key, key_len, zero, tess_admin_block_len(alg), out);
    if (rv == CKR_OK)
        memcpy(kcv, out, 3);
    return rv;
}
