/* AES-256-GCM seal and open (see aead.h). */
#include "config.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "aead.h"
#include "util.h"

int tess_aead_seal(const uint8_t key[TESS_AEAD_KEY_LEN], const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t *nonce = out, *body = out + TESS_AEAD_NONCE_LEN;
    int n = 0, m = 0, rc = -1;

    if (!c || len > INT32_MAX || aad_len > INT32_MAX)
        goto out;
    if (RAND_bytes(nonce, TESS_AEAD_NONCE_LEN) != 1 || !EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) ||
        (aad_len && !EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len)) ||
        !EVP_EncryptUpdate(c, body, &n, in, (int)len) || !EVP_EncryptFinal_ex(c, body + n, &m) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TESS_AEAD_TAG_LEN, body + len))
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int tess_aead_open(const uint8_t key[TESS_AEAD_KEY_LEN], const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *c = NULL;
    size_t body;
    int n = 0, m = 0, rc = -1;

    if (len < TESS_AEAD_OVERHEAD || len > INT32_MAX || aad_len > INT32_MAX)
        return -1;
    body = len - TESS_AEAD_OVERHEAD;
    c = EVP_CIPHER_CTX_new();
    if (!c)
        return -1;
    if (!EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) ||
        (aad_len && !EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len)) ||
        !EVP_DecryptUpdate(c, out, &n, in + TESS_AEAD_NONCE_LEN, (int)body) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TESS_AEAD_TAG_LEN, (void *)(in + len - TESS_AEAD_TAG_LEN)) ||
        EVP_DecryptFinal_ex(c, out + n, &m) != 1) {
        tess_wipe(out, body);
        goto out;
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}
