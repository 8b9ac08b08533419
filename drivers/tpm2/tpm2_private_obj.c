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

#include "../../src/aead.h"
#include "../../src/util.h"
#include "tpm2.h"

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
    uint8_t key[32], *buf = malloc(1 + TESS_AEAD_OVERHEAD + len);
    CK_RV rv = CKR_HOST_MEMORY;

    if (!buf)
        goto out;
    rv = object_key(v->secret, key);
    if (rv != CKR_OK)
        goto out;
    buf[0] = TPM2_PRIVATE_OBJ_VERSION;
    /* The card's serial is authenticated too: a blob moved to another card does not open. */
    if (tess_aead_seal(key, (const uint8_t *)v->rec.serial, strlen(v->rec.serial), plain, len, buf + 1)) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    *out = buf;
    *outlen = 1 + TESS_AEAD_OVERHEAD + len;
    buf = NULL;
out:
    tess_wipe(key, sizeof(key));
    free(buf);
    return rv;
}

CK_RV tpm2_private_open(const struct tpm2_vsc *v, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
    uint8_t key[32], *plain = NULL;
    size_t body;
    CK_RV rv;

    if (len < 1 + TESS_AEAD_OVERHEAD || in[0] != TPM2_PRIVATE_OBJ_VERSION)
        return CKR_DEVICE_ERROR;
    rv = object_key(v->secret, key);
    if (rv != CKR_OK)
        return rv;
    body = len - 1 - TESS_AEAD_OVERHEAD;
    plain = malloc(body ? body : 1);
    if (!plain)
        rv = CKR_HOST_MEMORY;
    else if (tess_aead_open(key, (const uint8_t *)v->rec.serial, strlen(v->rec.serial), in + 1, len - 1, plain))
        rv = CKR_DEVICE_ERROR;   /* tampered with, or another card's */
    if (rv == CKR_OK) {
        *out = plain;
        *outlen = body;
        plain = NULL;
    }
    tess_wipe(key, sizeof(key));
    tess_free_secret(plain, body);
    return rv;
}
