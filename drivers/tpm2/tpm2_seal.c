/* Seals: small secrets kept by the TPM in KEYEDHASH objects under the storage
 * primary, released only to a caller who proves an authValue. A card's PIN
 * seals hold its card secret; its challenge seals (tpm2_admin.c) hold the
 * card secret and the admin key. The seals are DA-protected, so the TPM
 * itself counts every wrong proof. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "tpm2.h"

CK_RV tpm2_seal_auth(const char *tag, const uint8_t salt[TPM2_SALT_LEN], const uint8_t *proof, size_t len,
                     TPM2B_AUTH *auth)
{
    unsigned int outlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (!md)
        return CKR_HOST_MEMORY;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) && EVP_DigestUpdate(md, tag, strlen(tag)) &&
        EVP_DigestUpdate(md, salt, TPM2_SALT_LEN) && EVP_DigestUpdate(md, proof, len) &&
        EVP_DigestFinal_ex(md, auth->buffer, &outlen)) {
        auth->size = (UINT16)outlen;
        rv = CKR_OK;
    }
    EVP_MD_CTX_free(md);
    return rv;
}

static CK_RV seal_create(const TPM2B_AUTH *auth, const uint8_t *data, size_t len, TPM2B_PUBLIC *pub_out,
                         TPM2B_PRIVATE *priv_out)
{
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    TPM2B_SENSITIVE_CREATE sens = { 0 };
    TPM2B_PUBLIC tmpl = {
        .publicArea = {
            .type = TPM2_ALG_KEYEDHASH,
            .nameAlg = TPM2_ALG_SHA256,
            /* No NODA: every wrong proof also counts in the TPM's lockout. */
            .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH,
            .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
        },
    };
    TPM2B_DATA outside = { 0 };
    TPML_PCR_SELECTION pcrs = { 0 };
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    ESYS_TR enc;
    CK_RV rv;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (len > sizeof(sens.sensitive.data.buffer))
        return CKR_GENERAL_ERROR;
    rv = tpm2_conn_get(&esys);
    if (rv == CKR_OK)
        rv = tpm2_primary(esys, &primary);
    if (rv != CKR_OK)
        return rv;
    sens.sensitive.userAuth = *auth;
    sens.sensitive.data.size = (UINT16)len;
    memcpy(sens.sensitive.data.buffer, data, len);
    /* The authValue and the data go to the TPM encrypted, under a salted
     * session that also authorises the parent: the TPM checks that
     * session's HMAC, so a session key that did not match cannot silently
     * encrypt garbage into the seal. */
    for (int attempt = 0; attempt < TPM2_SESSION_ATTEMPTS; attempt++) {
        rv = tpm2_param_session(esys, primary, ESYS_TR_NONE, TPMA_SESSION_DECRYPT, &enc);
        if (rv != CKR_OK)
            break;
        rc = Esys_Create(esys, primary, enc != ESYS_TR_NONE ? enc : ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         &sens, &tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
        tpm2_session_end(esys, enc);
        /* Create needs an object slot too: one held by our loaded keys or
         * left by a killed process is made free, as loading does. */
        if (tpm2_rc_is(rc, TPM2_RC_OBJECT_MEMORY) && tpm2_conn_evict_one(esys)) {
            attempt--;
            continue;
        }
        if (!tpm2_session_mismatch(enc, rc))
            break;
    }
    tess_wipe(&sens, sizeof(sens));
    if (rv != CKR_OK)
        return rv;
    if (rc != TSS2_RC_SUCCESS)
        return tpm2_rv(rc, "create seal");
    *pub_out = *pub;
    *priv_out = *priv;
    Esys_Free(pub);
    Esys_Free(priv);
    return CKR_OK;
}

CK_RV tpm2_seal_open(const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth, uint8_t *out,
                     size_t want)
{
    ESYS_CONTEXT *esys;
    ESYS_TR primary, obj = ESYS_TR_NONE, sess;
    TPM2B_SENSITIVE_DATA *data = NULL;
    CK_RV rv;
    TSS2_RC rc;

    rv = tpm2_conn_get(&esys);
    if (rv == CKR_OK)
        rv = tpm2_primary(esys, &primary);
    if (rv != CKR_OK)
        return rv;
    /* A salted session (a recorded exchange reveals nothing, even with the
     * store's salts in hand), proved good on the noDA primary by the Load it
     * authorises before it carries the proof to the DA-protected seal: a
     * session-key mismatch must never count as a wrong PIN. */
    for (int attempt = 0; attempt < TPM2_SESSION_ATTEMPTS; attempt++) {
        rv = tpm2_param_session(esys, primary, ESYS_TR_NONE, TPMA_SESSION_ENCRYPT, &sess);
        if (rv != CKR_OK)
            return rv;
        ESYS_TR parent_auth = sess != ESYS_TR_NONE ? sess : ESYS_TR_PASSWORD;
        rc = Esys_Load(esys, primary, parent_auth, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &obj);
        while (tpm2_rc_is(rc, TPM2_RC_OBJECT_MEMORY) && tpm2_conn_evict_one(esys))
            rc = Esys_Load(esys, primary, parent_auth, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &obj);
        if (rc == TSS2_RC_SUCCESS || !tpm2_session_mismatch(sess, rc))
            break;
        tpm2_session_end(esys, sess);
        sess = ESYS_TR_NONE;
    }
    if (rc != TSS2_RC_SUCCESS) {
        tpm2_session_end(esys, sess);
        return tpm2_rv(rc, "load seal");
    }
    /* The session proves the authValue by HMAC without sending it, and
     * encrypts the data on its way back. */
    Esys_TR_SetAuth(esys, obj, auth);
    if (sess == ESYS_TR_NONE) {
        /* No salting in this process (see tpm2_param_session): a session
         * bound to the seal still keeps the proof off the bus. */
        rv = tpm2_param_session(esys, ESYS_TR_NONE, obj, TPMA_SESSION_ENCRYPT, &sess);
        if (rv != CKR_OK) {
            Esys_FlushContext(esys, obj);
            return rv;
        }
    }
    rc = Esys_Unseal(esys, obj, sess, ESYS_TR_NONE, ESYS_TR_NONE, &data);
    tpm2_session_end(esys, sess);
    Esys_FlushContext(esys, obj);
    if (rc != TSS2_RC_SUCCESS) {
        if (tpm2_rc_is(rc, TPM2_RC_AUTH_FAIL) || tpm2_rc_is(rc, TPM2_RC_BAD_AUTH))
            return CKR_PIN_INCORRECT;   /* expected: not logged as a failure of ours */
        if (tpm2_rc_is(rc, TPM2_RC_LOCKOUT)) {
            TESS_ERR("tpm: the TPM is in dictionary-attack lockout; no PIN can be checked until it "
                     "recovers (see 'tessera tpm status')");
            return CKR_PIN_LOCKED;
        }
        return tpm2_rv(rc, "unseal");
    }
    if (data->size != want) {
        tess_wipe(data, sizeof(*data));
        Esys_Free(data);
        TESS_ERR("tpm: a sealed secret has the wrong size");
        return CKR_DEVICE_ERROR;
    }
    memcpy(out, data->buffer, want);
    tess_wipe(data, sizeof(*data));
    Esys_Free(data);
    return CKR_OK;
}

/* Proved by opening it before anything stores it: a seal that does not give
 * back its data under its own proof (a session whose encryption went wrong:
 * seen once in CI, never reproduced) would lock the user out for good. */
CK_RV tpm2_seal_make(const char *tag, uint8_t salt[TPM2_SALT_LEN], const uint8_t *data, size_t len,
                     const uint8_t *proof, size_t proof_len, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv)
{
    TPM2B_AUTH auth;
    uint8_t check[TPM2_SEAL_MAX];
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (len > sizeof(check))
        return CKR_GENERAL_ERROR;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (RAND_bytes(salt, TPM2_SALT_LEN) != 1)
            return CKR_FUNCTION_FAILED;
        rv = tpm2_seal_auth(tag, salt, proof, proof_len, &auth);
        if (rv == CKR_OK)
            rv = seal_create(&auth, data, len, pub, priv);
        if (rv == CKR_OK)
            rv = tpm2_seal_open(pub, priv, &auth, check, len);
        tess_wipe(&auth, sizeof(auth));
        if (rv == CKR_OK && tess_ct_equal(check, data, len))
            break;
        if (rv == CKR_OK || rv == CKR_PIN_INCORRECT) {
            TESS_WARN("tpm: a new seal did not open with its own proof; making it again");
            rv = CKR_DEVICE_ERROR;
            continue;
        }
        break;   /* the TPM failed: say so */
    }
    tess_wipe(check, sizeof(check));
    return rv;
}

uint8_t *tpm2_secret_alloc(size_t len)
{
    uint8_t *p = calloc(1, len);
    if (p)
        mlock(p, len);   /* best effort: keep it out of swap */
    return p;
}

void tpm2_secret_free(uint8_t *p, size_t len)
{
    if (!p)
        return;
    tess_wipe(p, len);
    munlock(p, len);
    free(p);
}
