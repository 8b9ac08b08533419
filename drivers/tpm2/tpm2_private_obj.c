/* Private objects of a virtual card that are not TPM keys (CKO_DATA or
 * certificates with CKA_PRIVATE): their attributes are stored encrypted
 * (AES-256-GCM) under a key derived from the card secret, which only a PIN
 * checked by the TPM releases. The store keeps a public header (class, token,
 * private) so the object is counted but its contents stay closed. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "../../src/util.h"
#include "tpm2.h"

#define NONCE_LEN 12
#define TAG_LEN 16

static CK_RV object_key(const uint8_t *secret, uint8_t key[32])
{
    static const char tag[] = "tessera-object-key-v1";
    unsigned int len = 0;
    if (!secret)
        return CKR_USER_NOT_LOGGED_IN;
    return HMAC(EVP_sha256(), secret, TPM2_SECRET_LEN, (const uint8_t *)tag, sizeof(tag) - 1, key, &len) ? CKR_OK
                                                                                                           : CKR_FUNCTION_FAILED;
}

CK_RV tpm2_private_seal(const struct tpm2_vsc *v, const uint8_t *plain, size_t len, uint8_t **out, size_t *outlen)
{
    uint8_t key[32], *buf = malloc(1 + NONCE_LEN + len + TAG_LEN);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (!buf || !c) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = object_key(v->secret, key);
    if (rv != CKR_OK)
        goto out;
    rv = CKR_FUNCTION_FAILED;
    buf[0] = TPM2_PRIVATE_OBJ_VERSION;
    /* The card's serial is authenticated too: a blob moved to another card does not open. */
    if (RAND_bytes(buf + 1, NONCE_LEN) != 1 || !EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, buf + 1) ||
        !EVP_EncryptUpdate(c, NULL, &n, (const uint8_t *)v->rec.serial, (int)strlen(v->rec.serial)) ||
        !EVP_EncryptUpdate(c, buf + 1 + NONCE_LEN, &n, plain, (int)len) ||
        !EVP_EncryptFinal_ex(c, buf + 1 + NONCE_LEN + n, &m) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + 1 + NONCE_LEN + len))
        goto out;
    *out = buf;
    *outlen = 1 + NONCE_LEN + len + TAG_LEN;
    buf = NULL;
    rv = CKR_OK;
out:
    tess_wipe(key, sizeof(key));
    EVP_CIPHER_CTX_free(c);
    free(buf);
    return rv;
}

CK_RV tpm2_private_open(const struct tpm2_vsc *v, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
    uint8_t key[32], *plain = NULL;
    EVP_CIPHER_CTX *c = NULL;
    size_t body;
    int n = 0, m = 0;
    CK_RV rv;

    if (len < 1 + NONCE_LEN + TAG_LEN || in[0] != TPM2_PRIVATE_OBJ_VERSION)
        return CKR_DEVICE_ERROR;
    rv = object_key(v->secret, key);
    if (rv != CKR_OK)
        return rv;
    body = len - 1 - NONCE_LEN - TAG_LEN;
    plain = malloc(body ? body : 1);
    c = EVP_CIPHER_CTX_new();
    rv = CKR_DEVICE_ERROR;
    if (!plain || !c)
        goto out;
    if (!EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in + 1) ||
        !EVP_DecryptUpdate(c, NULL, &n, (const uint8_t *)v->rec.serial, (int)strlen(v->rec.serial)) ||
        !EVP_DecryptUpdate(c, plain, &n, in + 1 + NONCE_LEN, (int)body) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(in + len - TAG_LEN)) ||
        EVP_DecryptFinal_ex(c, plain + n, &m) != 1)
        goto out;   /* tampered with, or another card's */
    *out = plain;
    *outlen = body;
    plain = NULL;
    rv = CKR_OK;
out:
    tess_wipe(key, sizeof(key));
    EVP_CIPHER_CTX_free(c);
    tess_free_secret(plain, body);
    return rv;
}
