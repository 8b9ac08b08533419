/* Sign, verify, encrypt, decrypt and digest: PKCS#11 operation state, the
 * software half (hash, pad, public-key operations), and the call to the
 * driver for the private-key half. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/rsa.h>

#include "../src/log.h"
#include "../src/mech.h"
#include "../src/util.h"
#include "entry.h"
#include "module.h"

#define MAX_ONESHOT_DATA (64 * 1024)
#define MAX_RSA_BYTES 512

static CK_ULONG key_type_of(const struct tess_object *o)
{
    CK_ULONG kt = (CK_ULONG)-1;
    tess_attrs_get_ulong(&o->attrs, CKA_KEY_TYPE, &kt);
    return kt;
}

static CK_RV read_params(struct tess_op *op, const CK_MECHANISM *m)
{
    if (op->base == CKM_RSA_PKCS_PSS) {
        const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
        if (!p || m->ulParameterLen != sizeof(*p))
            return CKR_MECHANISM_PARAM_INVALID;
        op->param_hash = p->hashAlg;
        op->mgf_hash = tess_hash_for_mgf(p->mgf);
        op->salt_len = p->sLen;
        if (!tess_md_for(op->param_hash) || !op->mgf_hash || (op->hash && op->hash != op->param_hash))
            return CKR_MECHANISM_PARAM_INVALID;
        return CKR_OK;
    }
    if (op->base == CKM_RSA_PKCS_OAEP) {
        const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
        if (!p || m->ulParameterLen != sizeof(*p))
            return CKR_MECHANISM_PARAM_INVALID;
        op->param_hash = p->hashAlg;
        op->mgf_hash = tess_hash_for_mgf(p->mgf);
        if (!tess_md_for(op->param_hash) || !op->mgf_hash)
            return CKR_MECHANISM_PARAM_INVALID;
        if (p->source && p->source != CKZ_DATA_SPECIFIED)
            return CKR_MECHANISM_PARAM_INVALID;
        if (p->ulSourceDataLen) {
            if (!p->pSourceData)
                return CKR_MECHANISM_PARAM_INVALID;
            op->label = malloc(p->ulSourceDataLen);
            if (!op->label)
                return CKR_HOST_MEMORY;
            memcpy(op->label, p->pSourceData, p->ulSourceDataLen);
            op->label_len = p->ulSourceDataLen;
        }
        return CKR_OK;
    }
    /* Other mechanisms take no parameter; tolerate an empty one. */
    return m->ulParameterLen && m->pParameter ? CKR_MECHANISM_PARAM_INVALID : CKR_OK;
}

static CK_RV op_init(CK_SESSION_HANDLE h, struct tess_op *(*pick)(struct tess_session *), enum tess_op_kind kind,
                     CK_MECHANISM_PTR m, CK_OBJECT_HANDLE kh)
{
    static const struct { enum tess_op_kind kind; CK_FLAGS mech_flag; CK_ATTRIBUTE_TYPE usage; bool priv; } rules[] = {
        { OP_SIGN, CKF_SIGN, CKA_SIGN, true },
        { OP_VERIFY, CKF_VERIFY, CKA_VERIFY, false },
        { OP_ENCRYPT, CKF_ENCRYPT, CKA_ENCRYPT, false },
        { OP_DECRYPT, CKF_DECRYPT, CKA_DECRYPT, true },
    };
    struct tess_session *s;
    struct tess_object *key;
    struct tess_op *op = NULL;
    CK_ULONG cls = 0, kt;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    op = pick(s);
    if (op->kind != OP_NONE) {
        op = NULL;
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (!m) {
        op = NULL;
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    size_t r = 0;
    while (rules[r].kind != kind)
        r++;
    const struct tess_mech_info *mi = tess_mech_find(m->mechanism);
    if (!mi || !(mi->flags & rules[r].mech_flag)) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    key = tess_object_get(s, kh);
    if (!key) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto out;
    }
    tess_attrs_get_ulong(&key->attrs, CKA_CLASS, &cls);
    if (rules[r].priv ? cls != CKO_PRIVATE_KEY : (cls != CKO_PUBLIC_KEY && cls != CKO_PRIVATE_KEY)) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    if (!tess_attrs_get_bool(&key->attrs, rules[r].usage, false)) {
        rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
        goto out;
    }
    if (rules[r].priv && !tess_user_logged_in(s->tok)) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    op->mech = m->mechanism;
    if (!tess_mech_split(m->mechanism, &op->base, &op->hash)) {
        op->base = m->mechanism;   /* OAEP: no built-in hash */
        op->hash = 0;
    }
    kt = key_type_of(key);
    if ((op->base == CKM_ECDSA) != (kt == CKK_EC) || (kt != CKK_EC && kt != CKK_RSA)) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    rv = read_params(op, m);
    if (rv != CKR_OK)
        goto out;
    if (op->hash) {
        op->md = EVP_MD_CTX_new();
        if (!op->md || !EVP_DigestInit_ex(op->md, tess_md_for(op->hash), NULL)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    op->key = kh;
    op->kind = kind;
    op->needs_context_login = rules[r].priv && tess_attrs_get_bool(&key->attrs, CKA_ALWAYS_AUTHENTICATE, false);
out:
    if (rv != CKR_OK && op)
        tess_op_reset(op);
    tess_leave();
    return rv;
}

static struct tess_op *pick_sign(struct tess_session *s) { return &s->sign; }
static struct tess_op *pick_verify(struct tess_session *s) { return &s->verify; }
static struct tess_op *pick_encrypt(struct tess_session *s) { return &s->encrypt; }
static struct tess_op *pick_decrypt(struct tess_session *s) { return &s->decrypt; }

/* Collect data for mechanisms without a built-in hash. */
static CK_RV op_update(struct tess_op *op, const uint8_t *data, size_t len)
{
    op->updated = true;
    if (op->md)
        return EVP_DigestUpdate(op->md, data, len) ? CKR_OK : CKR_FUNCTION_FAILED;
    if (op->len + len > MAX_ONESHOT_DATA)
        return CKR_DATA_LEN_RANGE;
    uint8_t *nb = realloc(op->buf, op->len + len ? op->len + len : 1);
    if (!nb)
        return CKR_HOST_MEMORY;
    op->buf = nb;
    if (len)
        memcpy(op->buf + op->len, data, len);
    op->len += len;
    return CKR_OK;
}

/* The message (or digest) the base mechanism works on. */
static CK_RV op_message(struct tess_op *op, uint8_t *digest, const uint8_t **msg, size_t *msglen)
{
    if (op->md) {
        unsigned int dl = 0;
        if (!EVP_DigestFinal_ex(op->md, digest, &dl))
            return CKR_FUNCTION_FAILED;
        *msg = digest;
        *msglen = dl;
    } else {
        *msg = op->buf;
        *msglen = op->len;
    }
    return CKR_OK;
}

static CK_RV rsa_modulus(const struct tess_object *key, const uint8_t **n, size_t *k)
{
    const CK_ATTRIBUTE *m = tess_attrs_get(&key->attrs, CKA_MODULUS);
    if (!m || !m->ulValueLen)
        return CKR_KEY_TYPE_INCONSISTENT;
    *n = m->pValue;
    *k = m->ulValueLen;
    while (*k && !**n) {
        (*n)++;
        (*k)--;
    }
    return *k && *k <= MAX_RSA_BYTES ? CKR_OK : CKR_KEY_SIZE_RANGE;
}

static CK_RV sign_with_key(struct tess_token *tok, struct tess_object *key, struct tess_op *op, const uint8_t *msg,
                           size_t len, uint8_t *sig, size_t *siglen)
{
    const struct tess_driver *drv = tok->driver;
    uint8_t em[MAX_RSA_BYTES], di[128];
    const uint8_t *n, *dg;
    size_t k, dilen = sizeof(di), dlen;
    CK_RV rv;

    if (op->base == CKM_ECDSA) {
        /* ECDSA uses the leftmost field-size bytes of the hash; a shorter
         * hash is the same integer left-padded with zeros. Drivers get
         * exactly field-size input, whatever hash the caller used. */
        size_t flen = tess_key_sig_len(&key->attrs) / 2;
        uint8_t norm[66];
        if (!drv->ecdsa_sign)
            return CKR_FUNCTION_NOT_SUPPORTED;
        if (!len || !flen || flen > sizeof(norm))
            return CKR_DATA_LEN_RANGE;
        if (len >= flen) {
            memcpy(norm, msg, flen);
        } else {
            memset(norm, 0, flen - len);
            memcpy(norm + flen - len, msg, len);
        }
        return drv->ecdsa_sign(tok, key, norm, flen, sig, siglen);
    }
    rv = rsa_modulus(key, &n, &k);
    if (rv != CKR_OK)
        return rv;
    if (!drv->rsa_raw)
        return CKR_FUNCTION_NOT_SUPPORTED;
    switch (op->base) {
    case CKM_RSA_PKCS:
        /* A hash the device signs natively (TPM2_Sign) goes there; anything
         * else is padded here and takes the raw private operation. */
        if (op->hash) {
            dg = msg;
            dlen = len;
            rv = tess_digestinfo_wrap(op->hash, msg, len, di, &dilen);
            if (rv != CKR_OK)
                return rv;
            msg = di;
            len = dilen;
        } else {
            CK_MECHANISM_TYPE h = tess_digestinfo_parse(msg, len, &dg, &dlen);
            op->hash = h;
        }
        if (op->hash && drv->rsa_sign_pkcs1) {
            rv = drv->rsa_sign_pkcs1(tok, key, op->hash, dg, dlen, sig, siglen);
            if (rv != CKR_MECHANISM_INVALID)
                return rv;
        }
        rv = tess_pad_pkcs1_sign(msg, len, em, k);
        break;
    case CKM_RSA_X_509:
        if (len > k)
            return CKR_DATA_LEN_RANGE;
        memset(em, 0, k - len);
        memcpy(em + k - len, msg, len);
        rv = CKR_OK;
        break;
    case CKM_RSA_PKCS_PSS:
        if (len != (size_t)EVP_MD_get_size(tess_md_for(op->param_hash)))
            return CKR_DATA_LEN_RANGE;
        rv = tess_pad_pss(n, k, op->param_hash, op->mgf_hash, op->salt_len, msg, em);
        break;
    default:
        return CKR_MECHANISM_INVALID;
    }
    if (rv == CKR_OK)
        rv = drv->rsa_raw(tok, key, em, k, sig, siglen);
    tess_wipe(em, sizeof(em));
    return rv;
}

/* C_Sign and C_SignFinal: size query, buffer check, then the operation;
 * the operation ends unless the caller only asked for the size. */
static CK_RV sign_finish(CK_SESSION_HANDLE h, const uint8_t *data, size_t len, bool oneshot, CK_BYTE_PTR sig,
                         CK_ULONG_PTR siglen)
{
    struct tess_session *s;
    struct tess_object *key;
    uint8_t digest[EVP_MAX_MD_SIZE];
    const uint8_t *msg;
    size_t msglen, need, got;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (s->sign.kind != OP_SIGN) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto unlock;
    }
    if (!siglen || (oneshot && !data && len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto done;
    }
    key = tess_object_get(s, s->sign.key);
    if (!key) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto done;
    }
    need = tess_key_sig_len(&key->attrs);
    if (!sig) {
        *siglen = need;
        goto unlock;
    }
    if (*siglen < need) {
        *siglen = need;
        rv = CKR_BUFFER_TOO_SMALL;
        goto unlock;
    }
    if (s->sign.needs_context_login && !s->sign.context_login_done) {
        rv = CKR_USER_NOT_LOGGED_IN;   /* this key wants its PIN for this operation */
        goto done;
    }
    if (oneshot) {
        if (s->sign.updated) {
            rv = CKR_OPERATION_ACTIVE;
            goto done;
        }
        rv = op_update(&s->sign, data, len);
        if (rv != CKR_OK)
            goto done;
    }
    rv = op_message(&s->sign, digest, &msg, &msglen);
    if (rv != CKR_OK)
        goto done;
    got = *siglen;
    rv = sign_with_key(s->tok, key, &s->sign, msg, msglen, sig, &got);
    if (rv == CKR_OK)
        *siglen = got;
done:
    tess_op_reset(&s->sign);
unlock:
    tess_leave();
    return rv;
}

CK_RV tess_C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init(h, pick_sign, OP_SIGN, m, k);
}

CK_RV tess_C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
    return sign_finish(h, data, len, true, sig, siglen);
}

static CK_RV update(CK_SESSION_HANDLE h, struct tess_op *(*pick)(struct tess_session *), enum tess_op_kind kind,
                    const uint8_t *data, size_t len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    struct tess_op *op = pick(s);
    if (op->kind != kind) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (!data && len)
        rv = CKR_ARGUMENTS_BAD;
    else
        rv = op_update(op, data, len);
    if (rv != CKR_OK)
        tess_op_reset(op);
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
    return update(h, pick_sign, OP_SIGN, data, len);
}

CK_RV tess_C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR siglen)
{
    return sign_finish(h, NULL, 0, false, sig, siglen);
}

/* ---- verify (public key, in software) ---- */

static CK_RV verify_with_key(struct tess_object *key, struct tess_op *op, const uint8_t *msg, size_t len,
                             const uint8_t *sig, size_t siglen)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t *der = NULL, rec[MAX_RSA_BYTES];
    size_t derlen = 0, need = tess_key_sig_len(&key->attrs);
    CK_RV rv;

    if (siglen != need)
        return CKR_SIGNATURE_LEN_RANGE;
    rv = tess_pkey_from_attrs(&key->attrs, &pk);
    if (rv != CKR_OK)
        return rv;
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    rv = CKR_FUNCTION_FAILED;
    if (!ctx || EVP_PKEY_verify_init(ctx) <= 0)
        goto out;
    switch (op->base) {
    case CKM_ECDSA:
        rv = tess_ecdsa_rs_to_der(sig, siglen, &der, &derlen);
        if (rv != CKR_OK)
            goto out;
        sig = der;
        siglen = derlen;
        break;
    case CKM_RSA_PKCS:
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0 ||
            (op->hash && EVP_PKEY_CTX_set_signature_md(ctx, tess_md_for(op->hash)) <= 0))
            goto out;
        break;
    case CKM_RSA_PKCS_PSS:
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_signature_md(ctx, tess_md_for(op->param_hash)) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, tess_md_for(op->mgf_hash)) <= 0 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)op->salt_len) <= 0)
            goto out;
        break;
    case CKM_RSA_X_509: {
        size_t reclen = sizeof(rec);
        EVP_PKEY_CTX_free(ctx);
        ctx = EVP_PKEY_CTX_new(pk, NULL);
        if (!ctx || EVP_PKEY_verify_recover_init(ctx) <= 0 ||
            EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) <= 0)
            goto out;
        if (len > need) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        rv = CKR_SIGNATURE_INVALID;
        if (EVP_PKEY_verify_recover(ctx, rec, &reclen, sig, siglen) <= 0 || reclen != need)
            goto out;
        for (size_t i = 0; i < need - len; i++)
            if (rec[i])
                goto out;
        rv = memcmp(rec + need - len, msg, len) ? CKR_SIGNATURE_INVALID : CKR_OK;
        goto out;
    }
    default:
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    rv = EVP_PKEY_verify(ctx, sig, siglen, msg, len) == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
out:
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rv;
}

static CK_RV verify_finish(CK_SESSION_HANDLE h, const uint8_t *data, size_t len, bool oneshot, const uint8_t *sig,
                           size_t siglen)
{
    struct tess_session *s;
    struct tess_object *key;
    uint8_t digest[EVP_MAX_MD_SIZE];
    const uint8_t *msg;
    size_t msglen;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (s->verify.kind != OP_VERIFY) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto unlock;
    }
    if (!sig || (oneshot && !data && len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto done;
    }
    key = tess_object_get(s, s->verify.key);
    if (!key) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto done;
    }
    if (oneshot) {
        rv = op_update(&s->verify, data, len);
        if (rv != CKR_OK)
            goto done;
    }
    rv = op_message(&s->verify, digest, &msg, &msglen);
    if (rv == CKR_OK)
        rv = verify_with_key(key, &s->verify, msg, msglen, sig, siglen);
done:
    tess_op_reset(&s->verify);
unlock:
    tess_leave();
    return rv;
}

CK_RV tess_C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init(h, pick_verify, OP_VERIFY, m, k);
}

CK_RV tess_C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG siglen)
{
    return verify_finish(h, data, len, true, sig, siglen);
}

CK_RV tess_C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
    return update(h, pick_verify, OP_VERIFY, data, len);
}

CK_RV tess_C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG siglen)
{
    return verify_finish(h, NULL, 0, false, sig, siglen);
}

/* ---- encrypt (public key, in software) ---- */

static CK_RV encrypt_with_key(struct tess_object *key, struct tess_op *op, const uint8_t *msg, size_t len,
                              uint8_t *out, size_t *outlen)
{
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t block[MAX_RSA_BYTES];
    size_t k = tess_key_sig_len(&key->attrs);
    CK_RV rv = tess_pkey_from_attrs(&key->attrs, &pk);
    if (rv != CKR_OK)
        return rv;
    rv = CKR_FUNCTION_FAILED;
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    if (!ctx || EVP_PKEY_encrypt_init(ctx) <= 0)
        goto out;
    switch (op->base) {
    case CKM_RSA_PKCS:
        if (len + 11 > k) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0)
            goto out;
        break;
    case CKM_RSA_X_509:
        if (len > k) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        memset(block, 0, k - len);
        memcpy(block + k - len, msg, len);
        msg = block;
        len = k;
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) <= 0)
            goto out;
        break;
    case CKM_RSA_PKCS_OAEP: {
        size_t hl = (size_t)EVP_MD_get_size(tess_md_for(op->param_hash));
        if (len + 2 * hl + 2 > k) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, tess_md_for(op->param_hash)) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, tess_md_for(op->mgf_hash)) <= 0)
            goto out;
        if (op->label_len) {
            void *l = OPENSSL_memdup(op->label, op->label_len);
            if (!l || EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, l, (int)op->label_len) <= 0) {
                OPENSSL_free(l);
                goto out;
            }
        }
        break;
    }
    default:
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    rv = EVP_PKEY_encrypt(ctx, out, outlen, msg, len) > 0 ? CKR_OK : CKR_FUNCTION_FAILED;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rv;
}

/* ---- decrypt (raw private operation in the device, unpadding here) ---- */

static CK_RV decrypt_with_key(struct tess_token *tok, struct tess_object *key, struct tess_op *op,
                              const uint8_t *in, size_t len, uint8_t *out, size_t *outlen)
{
    uint8_t em[MAX_RSA_BYTES];
    const uint8_t *n;
    size_t k, emlen = sizeof(em);
    CK_RV rv = rsa_modulus(key, &n, &k);
    if (rv != CKR_OK)
        return rv;
    if (len != k)
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    if (!tok->driver->rsa_raw)
        return CKR_FUNCTION_NOT_SUPPORTED;
    rv = tok->driver->rsa_raw(tok, key, in, len, em, &emlen);
    if (rv == CKR_DATA_INVALID)
        rv = CKR_ENCRYPTED_DATA_INVALID;
    if (rv != CKR_OK)
        goto out;
    switch (op->base) {
    case CKM_RSA_X_509:
        memcpy(out, em, k);
        *outlen = k;
        break;
    case CKM_RSA_PKCS:
        rv = tess_unpad_pkcs1_decrypt(em, k, out, outlen);
        break;
    case CKM_RSA_PKCS_OAEP:
        rv = tess_unpad_oaep(em, k, op->param_hash, op->mgf_hash, op->label, op->label_len, out, outlen);
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
    }
out:
    tess_wipe(em, sizeof(em));
    return rv;
}

/* Encrypt and decrypt share one shape: the result's size is known only
 * after the work, so the work goes into a scratch buffer first. */
static CK_RV crypt_finish(CK_SESSION_HANDLE h, enum tess_op_kind kind, const uint8_t *data, size_t len,
                          bool oneshot, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    struct tess_session *s;
    struct tess_object *key;
    struct tess_op *op;
    uint8_t result[MAX_RSA_BYTES];
    size_t rlen = sizeof(result), k;
    const uint8_t *msg;
    size_t msglen;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    op = kind == OP_ENCRYPT ? &s->encrypt : &s->decrypt;
    if (op->kind != kind) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto unlock;
    }
    if (!outlen || (oneshot && !data && len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto done;
    }
    key = tess_object_get(s, op->key);
    if (!key) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto done;
    }
    k = tess_key_sig_len(&key->attrs);
    if (!out) {
        *outlen = k;   /* an upper bound, as the standard allows */
        goto unlock;
    }
    if (op->needs_context_login && !op->context_login_done) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto done;
    }
    msg = oneshot ? data : op->buf;
    msglen = oneshot ? len : op->len;
    rv = kind == OP_ENCRYPT ? encrypt_with_key(key, op, msg, msglen, result, &rlen)
                            : decrypt_with_key(s->tok, key, op, msg, msglen, result, &rlen);
    if (rv != CKR_OK)
        goto done;
    if (*outlen < rlen) {
        *outlen = rlen;
        rv = CKR_BUFFER_TOO_SMALL;
        tess_wipe(result, sizeof(result));
        goto unlock;
    }
    memcpy(out, result, rlen);
    *outlen = rlen;
    tess_wipe(result, sizeof(result));
done:
    tess_op_reset(op);
unlock:
    tess_leave();
    return rv;
}

CK_RV tess_C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init(h, pick_encrypt, OP_ENCRYPT, m, k);
}

CK_RV tess_C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    return crypt_finish(h, OP_ENCRYPT, data, len, true, out, outlen);
}

CK_RV tess_C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
                           CK_ULONG_PTR outlen)
{
    CK_RV rv = update(h, pick_encrypt, OP_ENCRYPT, data, len);
    if (rv == CKR_OK && outlen)
        *outlen = 0;   /* RSA yields everything at the end */
    return rv;
}

CK_RV tess_C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    return crypt_finish(h, OP_ENCRYPT, NULL, 0, false, out, outlen);
}

CK_RV tess_C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init(h, pick_decrypt, OP_DECRYPT, m, k);
}

CK_RV tess_C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    return crypt_finish(h, OP_DECRYPT, data, len, true, out, outlen);
}

CK_RV tess_C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out,
                           CK_ULONG_PTR outlen)
{
    CK_RV rv = update(h, pick_decrypt, OP_DECRYPT, data, len);
    if (rv == CKR_OK && outlen)
        *outlen = 0;
    return rv;
}

CK_RV tess_C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    return crypt_finish(h, OP_DECRYPT, NULL, 0, false, out, outlen);
}

/* ---- digest ---- */

CK_RV tess_C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m)
{
    struct tess_session *s;
    const struct tess_mech_info *mi;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!m) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (s->digest.kind != OP_NONE) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    mi = tess_mech_find(m->mechanism);
    if (!mi || !(mi->flags & CKF_DIGEST)) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    s->digest.md = EVP_MD_CTX_new();
    if (!s->digest.md || !EVP_DigestInit_ex(s->digest.md, tess_md_for(m->mechanism), NULL)) {
        tess_op_reset(&s->digest);
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    s->digest.kind = OP_DIGEST;
    s->digest.mech = m->mechanism;
out:
    tess_leave();
    return rv;
}

static CK_RV digest_finish(CK_SESSION_HANDLE h, const uint8_t *data, size_t len, bool oneshot, CK_BYTE_PTR out,
                           CK_ULONG_PTR outlen)
{
    struct tess_session *s;
    unsigned int dl = 0;
    size_t need;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (s->digest.kind != OP_DIGEST) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto unlock;
    }
    if (!outlen || (oneshot && !data && len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto done;
    }
    need = (size_t)EVP_MD_CTX_get_size(s->digest.md);
    if (!out) {
        *outlen = need;
        goto unlock;
    }
    if (*outlen < need) {
        *outlen = need;
        rv = CKR_BUFFER_TOO_SMALL;
        goto unlock;
    }
    if (oneshot && !EVP_DigestUpdate(s->digest.md, data, len)) {
        rv = CKR_FUNCTION_FAILED;
        goto done;
    }
    if (!EVP_DigestFinal_ex(s->digest.md, out, &dl))
        rv = CKR_FUNCTION_FAILED;
    else
        *outlen = dl;
done:
    tess_op_reset(&s->digest);
unlock:
    tess_leave();
    return rv;
}

CK_RV tess_C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    return digest_finish(h, data, len, true, out, outlen);
}

static struct tess_op *pick_digest(struct tess_session *s) { return &s->digest; }

CK_RV tess_C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len)
{
    return update(h, pick_digest, OP_DIGEST, data, len);
}

CK_RV tess_C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k)
{
    /* Keys live in the device; none can be fed to a host-side hash. */
    return CKR_KEY_INDIGESTIBLE;
}

CK_RV tess_C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR outlen)
{
    return digest_finish(h, NULL, 0, false, out, outlen);
}
