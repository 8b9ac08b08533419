/* Keys inside the TPM: generation, import, loading (kept loaded between operations),
 * and the raw private operations the core asks for. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <tss2/tss2_mu.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "tpm2.h"

#define KEY_BLOB_VERSION 1

void tpm2_key_touch(struct tpm2_key *key);

/* A key's authValue: HMAC-SHA-256(card secret, "tessera-key-v1" | uuid).
 * Only a logged-in session (which holds the card secret) can compute it. */
static CK_RV key_auth(const uint8_t *secret, const struct tpm2_key *k, TPM2B_AUTH *auth)
{
    static const char tag[] = "tessera-key-v1";
    uint8_t msg[sizeof(tag) - 1 + TPM2_UUID_LEN];
    unsigned int len = 0;

    if (!secret)
        return CKR_USER_NOT_LOGGED_IN;
    memcpy(msg, tag, sizeof(tag) - 1);
    memcpy(msg + sizeof(tag) - 1, k->uuid, TPM2_UUID_LEN);
    if (!HMAC(EVP_sha256(), secret, TPM2_SECRET_LEN, msg, sizeof(msg), auth->buffer, &len))
        return CKR_FUNCTION_FAILED;
    auth->size = (UINT16)len;
    return CKR_OK;
}

static TPMI_ECC_CURVE curve_of(int nid)
{
    switch (nid) {
    case NID_X9_62_prime256v1: return TPM2_ECC_NIST_P256;
    case NID_secp384r1: return TPM2_ECC_NIST_P384;
    default: return TPM2_ECC_NONE;
    }
}

/* The public template both made and imported keys share. Sign and decrypt
 * with a NULL scheme: the core chooses the padding per operation (PKCS#1,
 * PSS, OAEP with any label, raw), as PKCS#11 expects. noDA: the authValue is
 * a 256-bit derived secret, not a PIN; the PIN's dictionary-attack
 * protection sits on the seal that yields it. */
static CK_RV key_template(CK_KEY_TYPE type, CK_ULONG modulus_bits, int curve_nid, TPMT_PUBLIC *pa)
{
    pa->nameAlg = TPM2_ALG_SHA256;
    pa->objectAttributes = TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_DECRYPT;
    if (type == CKK_RSA) {
        if (modulus_bits != 2048 && modulus_bits != 3072)
            return CKR_KEY_SIZE_RANGE;
        pa->type = TPM2_ALG_RSA;
        pa->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        pa->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        pa->parameters.rsaDetail.keyBits = (TPMI_RSA_KEY_BITS)modulus_bits;
        pa->parameters.rsaDetail.exponent = 0;
        return CKR_OK;
    }
    if (type == CKK_EC) {
        TPMI_ECC_CURVE curve = curve_of(curve_nid);
        if (curve == TPM2_ECC_NONE)
            return CKR_CURVE_NOT_SUPPORTED;
        pa->type = TPM2_ALG_ECC;
        pa->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        pa->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        pa->parameters.eccDetail.curveID = curve;
        pa->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        return CKR_OK;
    }
    return CKR_MECHANISM_INVALID;
}

static struct tpm2_key *key_new(void)
{
    struct tpm2_key *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->handle = ESYS_TR_NONE;
    if (RAND_bytes(k->uuid, TPM2_UUID_LEN) != 1) {
        free(k);
        return NULL;
    }
    return k;
}

CK_RV tpm2_key_generate(struct tpm2_vsc *v, const struct tess_keygen_spec *spec, struct tpm2_key **out)
{
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    TPM2B_SENSITIVE_CREATE sens = { 0 };
    TPM2B_PUBLIC tmpl = { 0 };
    TPM2B_DATA outside = { 0 };
    TPML_PCR_SELECTION pcrs = { 0 };
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    struct tpm2_key *k = NULL;
    ESYS_TR enc;
    CK_RV rv;
    TSS2_RC rc;

    rv = key_template(spec->key_type, spec->modulus_bits, spec->curve_nid, &tmpl.publicArea);
    if (rv != CKR_OK)
        return rv;
    /* Made here, never outside: this TPM only. */
    tmpl.publicArea.objectAttributes |=
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;
    k = key_new();
    if (!k)
        return CKR_HOST_MEMORY;
    rv = key_auth(v->secret, k, &sens.sensitive.userAuth);
    if (rv == CKR_OK)
        rv = tpm2_conn_get(&esys);
    if (rv == CKR_OK)
        rv = tpm2_primary(esys, &primary);
    if (rv != CKR_OK)
        goto out;
    /* The key's authValue goes to the TPM encrypted, under a salted session
     * that authorises the parent too (see seal_create in tpm2_vsc.c). */
    for (int attempt = 0; attempt < TPM2_SESSION_ATTEMPTS; attempt++) {
        rv = tpm2_param_session(esys, primary, ESYS_TR_NONE, TPMA_SESSION_DECRYPT, &enc);
        if (rv != CKR_OK)
            goto out;
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
    if (rc != TSS2_RC_SUCCESS) {
        rv = tpm2_rv(rc, "create key");
        goto out;
    }
    k->pub = *pub;
    k->priv = *priv;
    *out = k;
    k = NULL;
out:
    tess_wipe(&sens, sizeof(sens));
    Esys_Free(pub);
    Esys_Free(priv);
    free(k);
    return rv;
}

static bool bn_param(EVP_PKEY *pk, const char *name, uint8_t *out, size_t len)
{
    BIGNUM *bn = NULL;
    bool ok = EVP_PKEY_get_bn_param(pk, name, &bn) && BN_bn2binpad(bn, out, (int)len) == (int)len;
    BN_clear_free(bn);
    return ok;
}

/* The TPM's two halves of an outside key: public area and sensitive area. */
static CK_RV import_areas(EVP_PKEY *pk, TPMT_PUBLIC *pa, TPMT_SENSITIVE *sa)
{
    CK_RV rv;
    if (EVP_PKEY_is_a(pk, "RSA")) {
        BIGNUM *e = NULL;
        size_t nlen = (size_t)EVP_PKEY_get_bits(pk) / 8;
        rv = key_template(CKK_RSA, (CK_ULONG)EVP_PKEY_get_bits(pk), 0, pa);
        if (rv != CKR_OK)
            return rv;
        if (!EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) || BN_num_bits(e) > 32) {
            BN_free(e);
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        uint32_t ev = (uint32_t)BN_get_word(e);
        BN_free(e);
        pa->parameters.rsaDetail.exponent = ev == 65537 ? 0 : ev;
        pa->unique.rsa.size = (UINT16)nlen;
        sa->sensitiveType = TPM2_ALG_RSA;
        sa->sensitive.rsa.size = (UINT16)(nlen / 2);   /* one prime: the TPM finds the rest */
        if (!bn_param(pk, OSSL_PKEY_PARAM_RSA_N, pa->unique.rsa.buffer, nlen) ||
            !bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR1, sa->sensitive.rsa.buffer, nlen / 2))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        return CKR_OK;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        int nid;
        size_t flen;
        if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        nid = OBJ_sn2nid(group);
        rv = key_template(CKK_EC, 0, nid, pa);
        if (rv != CKR_OK)
            return rv;
        flen = nid == NID_secp384r1 ? 48 : 32;
        pa->unique.ecc.x.size = pa->unique.ecc.y.size = (UINT16)flen;
        sa->sensitiveType = TPM2_ALG_ECC;
        sa->sensitive.ecc.size = (UINT16)flen;
        if (!bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, pa->unique.ecc.x.buffer, flen) ||
            !bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, pa->unique.ecc.y.buffer, flen) ||
            !bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, sa->sensitive.ecc.buffer, flen))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        return CKR_OK;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

/* TPM 2.0 Part 1, 23.3.2.3, the inner duplication wrapper:
 * dup = AES-CFB(key, IV 0, TPM2B_DIGEST(H(sens | name)) | sens), where sens
 * is the marshalled TPM2B_SENSITIVE and name = nameAlg | H(public area). */
static CK_RV inner_wrap(const TPM2B_PUBLIC *pub, const TPM2B_SENSITIVE *sens, TPM2B_DATA *key, TPM2B_PRIVATE *dup)
{
    uint8_t pub_bytes[sizeof(TPMT_PUBLIC)], name[2 + SHA256_DIGEST_LENGTH];
    uint8_t plain[2 + SHA256_DIGEST_LENGTH + sizeof(TPM2B_SENSITIVE)];
    size_t pub_len = 0, sens_len = 0;
    unsigned int dlen = 0;
    EVP_CIPHER_CTX *c = NULL;
    EVP_MD_CTX *md = NULL;
    int n1 = 0, n2 = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;

    if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, pub_bytes, sizeof(pub_bytes), &pub_len) ||
        Tss2_MU_TPM2B_SENSITIVE_Marshal(sens, plain + 2 + SHA256_DIGEST_LENGTH, sizeof(TPM2B_SENSITIVE), &sens_len))
        goto out;
    name[0] = TPM2_ALG_SHA256 >> 8;
    name[1] = TPM2_ALG_SHA256 & 0xff;
    if (!EVP_Digest(pub_bytes, pub_len, name + 2, NULL, EVP_sha256(), NULL))
        goto out;
    plain[0] = 0;
    plain[1] = SHA256_DIGEST_LENGTH;
    md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(md, plain + 2 + SHA256_DIGEST_LENGTH, sens_len) ||
        !EVP_DigestUpdate(md, name, sizeof(name)) || !EVP_DigestFinal_ex(md, plain + 2, &dlen))
        goto out;
    key->size = 16;
    if (RAND_bytes(key->buffer, key->size) != 1)
        goto out;
    static const uint8_t iv[16];
    size_t total = 2 + SHA256_DIGEST_LENGTH + sens_len;
    c = EVP_CIPHER_CTX_new();
    if (!c || total > sizeof(dup->buffer) || !EVP_EncryptInit_ex(c, EVP_aes_128_cfb128(), NULL, key->buffer, iv) ||
        !EVP_EncryptUpdate(c, dup->buffer, &n1, plain, (int)total) || !EVP_EncryptFinal_ex(c, dup->buffer + n1, &n2))
        goto out;
    dup->size = (UINT16)(n1 + n2);
    rv = CKR_OK;
out:
    OPENSSL_cleanse(plain, sizeof(plain));
    EVP_CIPHER_CTX_free(c);
    EVP_MD_CTX_free(md);
    return rv;
}

/* A key from outside (C_CreateObject, a PKCS#12). The TPM takes one only as
 * a duplicate (TPM2_Import), which must have fixedTPM and fixedParent clear;
 * but duplicating it again needs the DUP role, which always needs a policy,
 * and an empty authPolicy is one no session can meet: the key cannot leave
 * this TPM. The private part travels under the inner wrapper, whose key is
 * the command's first parameter and so encrypted by the salted session: an
 * eavesdropper on the TPM bus sees neither. */
CK_RV tpm2_key_import(struct tpm2_vsc *v, EVP_PKEY *pk, struct tpm2_key **out)
{
    ESYS_CONTEXT *esys;
    ESYS_TR primary, enc;
    TPM2B_PUBLIC pub = { 0 };
    TPM2B_SENSITIVE sens = { 0 };
    TPM2B_DATA wrap_key = { 0 };
    TPM2B_PRIVATE dup = { 0 };
    TPM2B_ENCRYPTED_SECRET no_seed = { 0 };
    TPMT_SYM_DEF_OBJECT sym = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
    TPM2B_PRIVATE *priv = NULL;
    struct tpm2_key *k = key_new();
    TSS2_RC rc = TSS2_RC_SUCCESS;
    CK_RV rv;

    if (!k)
        return CKR_HOST_MEMORY;
    rv = import_areas(pk, &pub.publicArea, &sens.sensitiveArea);
    if (rv == CKR_KEY_SIZE_RANGE || rv == CKR_CURVE_NOT_SUPPORTED) {
        TESS_ERR("tpm: a virtual card keeps RSA 2048/3072 and EC P-256/P-384 keys only");
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if (rv == CKR_OK)
        rv = key_auth(v->secret, k, &sens.sensitiveArea.authValue);
    sens.sensitiveArea.seedValue.size = SHA256_DIGEST_LENGTH;   /* obfuscation value */
    if (rv == CKR_OK && RAND_bytes(sens.sensitiveArea.seedValue.buffer, SHA256_DIGEST_LENGTH) != 1)
        rv = CKR_FUNCTION_FAILED;
    if (rv == CKR_OK)
        rv = inner_wrap(&pub, &sens, &wrap_key, &dup);
    if (rv == CKR_OK)
        rv = tpm2_conn_get(&esys);
    if (rv == CKR_OK)
        rv = tpm2_primary(esys, &primary);
    if (rv != CKR_OK)
        goto out;
    for (int attempt = 0; attempt < TPM2_SESSION_ATTEMPTS; attempt++) {
        rv = tpm2_param_session(esys, primary, ESYS_TR_NONE, TPMA_SESSION_DECRYPT, &enc);
        if (rv != CKR_OK)
            goto out;
        rc = Esys_Import(esys, primary, enc != ESYS_TR_NONE ? enc : ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                         &wrap_key, &pub, &dup, &no_seed, &sym, &priv);
        tpm2_session_end(esys, enc);
        if (!tpm2_session_mismatch(enc, rc))
            break;
    }
    if (rc != TSS2_RC_SUCCESS) {
        rv = tpm2_rv(rc, "import key");
        goto out;
    }
    k->pub = pub;
    k->priv = *priv;
    *out = k;
    k = NULL;
out:
    tess_wipe(&sens, sizeof(sens));
    tess_wipe(&wrap_key, sizeof(wrap_key));
    tess_wipe(&dup, sizeof(dup));
    Esys_Free(priv);
    free(k);
    return rv;
}

CK_RV tpm2_key_encode(const struct tpm2_key *k, uint8_t **out, size_t *outlen)
{
    size_t cap = 1 + TPM2_UUID_LEN + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE), off = 0;
    uint8_t *buf = malloc(cap);
    TSS2_RC rc;
    if (!buf)
        return CKR_HOST_MEMORY;
    buf[off++] = KEY_BLOB_VERSION;
    memcpy(buf + off, k->uuid, TPM2_UUID_LEN);
    off += TPM2_UUID_LEN;
    rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&k->pub, buf, cap, &off);
    if (!rc)
        rc = Tss2_MU_TPM2B_PRIVATE_Marshal(&k->priv, buf, cap, &off);
    if (rc) {
        free(buf);
        return tpm2_rv(rc, "encode key");
    }
    *out = buf;
    *outlen = off;
    return CKR_OK;
}

CK_RV tpm2_key_decode(const uint8_t *in, size_t len, struct tpm2_key **out)
{
    struct tpm2_key *k;
    size_t off = 1 + TPM2_UUID_LEN;
    TSS2_RC rc;
    if (len < off || in[0] != KEY_BLOB_VERSION)
        return CKR_DEVICE_ERROR;
    k = calloc(1, sizeof(*k));
    if (!k)
        return CKR_HOST_MEMORY;
    k->handle = ESYS_TR_NONE;
    memcpy(k->uuid, in + 1, TPM2_UUID_LEN);
    rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(in, len, &off, &k->pub);
    if (!rc)
        rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(in, len, &off, &k->priv);
    if (rc) {
        free(k);
        return tpm2_rv(rc, "decode key");
    }
    *out = k;
    return CKR_OK;
}

void tpm2_key_unload(struct tpm2_key *k)
{
    ESYS_CONTEXT *esys;
    if (k->handle == ESYS_TR_NONE)
        return;
    tpm2_conn_untrack(k);
    if (tpm2_conn_get(&esys) == CKR_OK)
        Esys_FlushContext(esys, k->handle);
    k->handle = ESYS_TR_NONE;
}

void tpm2_key_free(struct tpm2_key *k)
{
    if (!k)
        return;
    tpm2_key_unload(k);
    free(k);
}

/* Make sure the key is in the TPM with its authValue set; the common case
 * (already loaded) costs nothing. */
static CK_RV ensure_loaded(struct tpm2_vsc *v, struct tpm2_key *k, ESYS_CONTEXT **esys_out)
{
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    TPM2B_AUTH auth;
    CK_RV rv;
    TSS2_RC rc;

    rv = tpm2_conn_get(&esys);
    if (rv != CKR_OK)
        return rv;
    *esys_out = esys;
    if (k->handle != ESYS_TR_NONE) {
        tpm2_key_touch(k);
        return CKR_OK;
    }
    rv = key_auth(v->secret, k, &auth);
    if (rv == CKR_OK)
        rv = tpm2_primary(esys, &primary);
    if (rv != CKR_OK)
        goto out;
    rc = Esys_Load(esys, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &k->priv, &k->pub, &k->handle);
    while (tpm2_rc_is(rc, TPM2_RC_OBJECT_MEMORY) && tpm2_conn_evict_one(esys))
        rc = Esys_Load(esys, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &k->priv, &k->pub, &k->handle);
    if (rc != TSS2_RC_SUCCESS) {
        k->handle = ESYS_TR_NONE;
        rv = tpm2_rv(rc, "load key");
        goto out;
    }
    Esys_TR_SetAuth(esys, k->handle, &auth);
    tpm2_conn_track(k);
out:
    tess_wipe(&auth, sizeof(auth));
    return rv;
}

/* A loaded handle can go stale if the TPM restarted (TPM2_Startup(CLEAR));
 * retry such an operation once after reloading. */
static bool stale_handle(TSS2_RC rc)
{
    return tpm2_rc_is(rc, TPM2_RC_HANDLE) || tpm2_rc_is(rc, TPM2_RC_REFERENCE_H0) ||
           (rc & 0xfff) == (TPM2_RC_HANDLE | TPM2_RC_1 | TPM2_RC_H);
}

static TPMI_ALG_HASH tpm_hash(CK_MECHANISM_TYPE hash)
{
    switch (hash) {
    case CKM_SHA_1: return TPM2_ALG_SHA1;
    case CKM_SHA256: return TPM2_ALG_SHA256;
    case CKM_SHA384: return TPM2_ALG_SHA384;
    case CKM_SHA512: return TPM2_ALG_SHA512;
    default: return TPM2_ALG_NULL;
    }
}

static void copy_padded(uint8_t *out, size_t width, const uint8_t *in, size_t len)
{
    memset(out, 0, width);
    if (len > width) {
        in += len - width;
        len = width;
    }
    memcpy(out + width - len, in, len);
}

static CK_RV do_sign(struct tpm2_vsc *v, struct tpm2_key *k, const TPMT_SIG_SCHEME *scheme, const uint8_t *digest,
                     size_t dlen, TPMT_SIGNATURE **sig)
{
    TPM2B_DIGEST d = { 0 };
    TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
    ESYS_CONTEXT *esys;
    CK_RV rv;
    TSS2_RC rc;

    if (dlen > sizeof(d.buffer))
        return CKR_DATA_LEN_RANGE;
    d.size = (UINT16)dlen;
    memcpy(d.buffer, digest, dlen);
    for (int attempt = 0; attempt < 2; attempt++) {
        rv = ensure_loaded(v, k, &esys);
        if (rv != CKR_OK)
            return rv;
        rc = Esys_Sign(esys, k->handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, scheme, &ticket, sig);
        if (rc == TSS2_RC_SUCCESS)
            return CKR_OK;
        if (!stale_handle(rc) || attempt)
            break;
        tpm2_key_unload(k);
    }
    /* A hash or scheme this TPM lacks: the core pads in software instead. */
    if (tpm2_rc_is(rc, TPM2_RC_HASH) || tpm2_rc_is(rc, TPM2_RC_SCHEME))
        return CKR_MECHANISM_INVALID;
    return tpm2_rv(rc, "sign");
}

CK_RV tpm2_key_rsa_sign(struct tpm2_vsc *v, struct tpm2_key *k, CK_MECHANISM_TYPE hash, const uint8_t *digest,
                        size_t dlen, uint8_t *sig, size_t *siglen)
{
    TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_RSASSA };
    TPMT_SIGNATURE *s = NULL;
    size_t modlen = k->pub.publicArea.unique.rsa.size;
    CK_RV rv;

    scheme.details.rsassa.hashAlg = tpm_hash(hash);
    if (scheme.details.rsassa.hashAlg == TPM2_ALG_NULL)
        return CKR_MECHANISM_INVALID;
    if (*siglen < modlen)
        return CKR_BUFFER_TOO_SMALL;
    rv = do_sign(v, k, &scheme, digest, dlen, &s);
    if (rv != CKR_OK)
        return rv;
    copy_padded(sig, modlen, s->signature.rsassa.sig.buffer, s->signature.rsassa.sig.size);
    *siglen = modlen;
    Esys_Free(s);
    return CKR_OK;
}

CK_RV tpm2_key_rsa_raw(struct tpm2_vsc *v, struct tpm2_key *k, const uint8_t *in, size_t inlen, uint8_t *out,
                       size_t *outlen)
{
    TPM2B_PUBLIC_KEY_RSA c = { 0 };
    TPMT_RSA_DECRYPT scheme = { .scheme = TPM2_ALG_NULL };
    TPM2B_DATA label = { 0 };
    TPM2B_PUBLIC_KEY_RSA *m = NULL;
    size_t modlen = k->pub.publicArea.unique.rsa.size;
    ESYS_CONTEXT *esys;
    CK_RV rv = CKR_OK;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (inlen != modlen)
        return CKR_DATA_LEN_RANGE;
    if (*outlen < modlen)
        return CKR_BUFFER_TOO_SMALL;
    c.size = (UINT16)inlen;
    memcpy(c.buffer, in, inlen);
    for (int attempt = 0; attempt < 2; attempt++) {
        rv = ensure_loaded(v, k, &esys);
        if (rv != CKR_OK)
            return rv;
        rc = Esys_RSA_Decrypt(esys, k->handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &c, &scheme, &label,
                              &m);
        if (rc == TSS2_RC_SUCCESS || !stale_handle(rc) || attempt)
            break;
        tpm2_key_unload(k);
    }
    if (rc != TSS2_RC_SUCCESS) {
        if (tpm2_rc_is(rc, TPM2_RC_VALUE) || tpm2_rc_is(rc, TPM2_RC_SIZE))
            return CKR_DATA_INVALID;   /* input not below the modulus */
        return tpm2_rv(rc, "RSA private operation");
    }
    copy_padded(out, modlen, m->buffer, m->size);
    *outlen = modlen;
    tess_wipe(m, sizeof(*m));
    Esys_Free(m);
    return CKR_OK;
}

static size_t ec_field_len(const struct tpm2_key *k)
{
    return k->pub.publicArea.parameters.eccDetail.curveID == TPM2_ECC_NIST_P384 ? 48 : 32;
}

CK_RV tpm2_key_ecdsa(struct tpm2_vsc *v, struct tpm2_key *k, const uint8_t *digest, size_t dlen, uint8_t *rs,
                     size_t *rslen)
{
    TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_ECDSA };
    TPMT_SIGNATURE *s = NULL;
    size_t flen = ec_field_len(k);
    CK_RV rv;

    if (*rslen < 2 * flen)
        return CKR_BUFFER_TOO_SMALL;
    if (dlen != flen)
        return CKR_DATA_LEN_RANGE;   /* the core hands over field-size input */
    /* The hash of the curve's size: the TPM takes the digest as it is. */
    scheme.details.ecdsa.hashAlg = flen == 48 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
    rv = do_sign(v, k, &scheme, digest, flen, &s);
    if (rv != CKR_OK)
        return rv;
    copy_padded(rs, flen, s->signature.ecdsa.signatureR.buffer, s->signature.ecdsa.signatureR.size);
    copy_padded(rs + flen, flen, s->signature.ecdsa.signatureS.buffer, s->signature.ecdsa.signatureS.size);
    *rslen = 2 * flen;
    Esys_Free(s);
    return CKR_OK;
}

CK_RV tpm2_key_ecdh(struct tpm2_vsc *v, struct tpm2_key *k, const uint8_t *point, size_t plen, uint8_t *z,
                    size_t *zlen)
{
    TPM2B_ECC_POINT in = { 0 };
    TPM2B_ECC_POINT *outp = NULL;
    size_t flen = ec_field_len(k);
    ESYS_CONTEXT *esys;
    CK_RV rv = CKR_OK;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (plen != 1 + 2 * flen || point[0] != 0x04)
        return CKR_MECHANISM_PARAM_INVALID;
    if (*zlen < flen)
        return CKR_BUFFER_TOO_SMALL;
    in.point.x.size = in.point.y.size = (UINT16)flen;
    memcpy(in.point.x.buffer, point + 1, flen);
    memcpy(in.point.y.buffer, point + 1 + flen, flen);
    for (int attempt = 0; attempt < 2; attempt++) {
        rv = ensure_loaded(v, k, &esys);
        if (rv != CKR_OK)
            return rv;
        rc = Esys_ECDH_ZGen(esys, k->handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &in, &outp);
        if (rc == TSS2_RC_SUCCESS || !stale_handle(rc) || attempt)
            break;
        tpm2_key_unload(k);
    }
    if (rc != TSS2_RC_SUCCESS) {
        if (tpm2_rc_is(rc, TPM2_RC_ECC_POINT) || tpm2_rc_is(rc, TPM2_RC_NO_RESULT))
            return CKR_MECHANISM_PARAM_INVALID;   /* peer point not on the curve */
        return tpm2_rv(rc, "ECDH");
    }
    copy_padded(z, flen, outp->point.x.buffer, outp->point.x.size);
    *zlen = flen;
    tess_wipe(outp, sizeof(*outp));
    Esys_Free(outp);
    return CKR_OK;
}
