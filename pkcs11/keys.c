/* Key generation and derivation (inside the device), and random numbers. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/obj_mac.h>
#include <openssl/rand.h>

#include "../src/keyimport.h"
#include "../src/log.h"
#include "../src/mech.h"
#include "../src/util.h"
#include "entry.h"
#include "module.h"

/* What a generated key pair always is, whatever the template says; a
 * template that asks otherwise is refused rather than silently changed. */
static CK_RV fixed_private_attrs(struct tess_attrs *a)
{
    if (!tess_attrs_get_bool(a, CKA_SENSITIVE, true) || tess_attrs_get_bool(a, CKA_EXTRACTABLE, false)) {
        TESS_WARN("C_GenerateKeyPair: keys made in the device can never be extracted");
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    CK_RV rv = tess_attrs_set_bool(a, CKA_SENSITIVE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(a, CKA_EXTRACTABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(a, CKA_ALWAYS_SENSITIVE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(a, CKA_NEVER_EXTRACTABLE, true);
    return rv;
}

static CK_RV common_key_attrs(struct tess_attrs *a, CK_OBJECT_CLASS cls, CK_KEY_TYPE kt, CK_MECHANISM_TYPE mech)
{
    CK_RV rv = tess_attrs_set_ulong(a, CKA_CLASS, cls);
    if (rv == CKR_OK)
        rv = tess_attrs_set_ulong(a, CKA_KEY_TYPE, kt);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(a, CKA_LOCAL, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_ulong(a, CKA_KEY_GEN_MECHANISM, mech);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_TOKEN, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_MODIFIABLE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_COPYABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_DESTROYABLE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default(a, CKA_LABEL, "", 0);
    if (rv == CKR_OK)
        rv = tess_attrs_default(a, CKA_ID, "", 0);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_DERIVE, kt == CKK_EC && cls == CKO_PRIVATE_KEY);
    return rv;
}

static CK_RV keygen_spec(CK_MECHANISM_TYPE mech, struct tess_attrs *pub, struct tess_keygen_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    if (mech == CKM_RSA_PKCS_KEY_PAIR_GEN) {
        const CK_ATTRIBUTE *e = tess_attrs_get(pub, CKA_PUBLIC_EXPONENT);
        spec->key_type = CKK_RSA;
        if (!tess_attrs_get_ulong(pub, CKA_MODULUS_BITS, &spec->modulus_bits))
            return CKR_TEMPLATE_INCOMPLETE;
        if (spec->modulus_bits != 2048 && spec->modulus_bits != 3072)
            return CKR_KEY_SIZE_RANGE;
        if (e) {
            /* The TPM makes keys with e = 65537 only. */
            const uint8_t *p = e->pValue;
            size_t n = e->ulValueLen;
            while (n && !*p) {
                p++;
                n--;
            }
            if (n != 3 || p[0] != 1 || p[1] != 0 || p[2] != 1)
                return CKR_TEMPLATE_INCONSISTENT;
        }
        return CKR_OK;
    }
    if (mech == CKM_EC_KEY_PAIR_GEN) {
        const CK_ATTRIBUTE *p = tess_attrs_get(pub, CKA_EC_PARAMS);
        spec->key_type = CKK_EC;
        if (!p)
            return CKR_TEMPLATE_INCOMPLETE;
        spec->curve_nid = tess_ec_params_nid(p->pValue, p->ulValueLen);
        if (spec->curve_nid != NID_X9_62_prime256v1 && spec->curve_nid != NID_secp384r1)
            return CKR_CURVE_NOT_SUPPORTED;
        return CKR_OK;
    }
    return CKR_MECHANISM_INVALID;
}

CK_RV tess_C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n,
                             CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG priv_n, CK_OBJECT_HANDLE_PTR pub_out,
                             CK_OBJECT_HANDLE_PTR priv_out)
{
    struct tess_session *s = NULL;
    struct tess_object *pub = NULL, *priv = NULL;
    struct tess_keygen_spec spec;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!m || !pub_out || !priv_out || (!pub_tmpl && pub_n) || (!priv_tmpl && priv_n)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!tess_user_logged_in(s->tok)) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if (!s->tok->driver->generate_key_pair) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    pub = tess_object_new();
    priv = tess_object_new();
    if (!pub || !priv) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = tess_attrs_merge_template(&pub->attrs, pub_tmpl, pub_n);
    if (rv == CKR_OK)
        rv = tess_attrs_merge_template(&priv->attrs, priv_tmpl, priv_n);
    if (rv == CKR_OK)
        rv = keygen_spec(m->mechanism, &pub->attrs, &spec);
    if (rv != CKR_OK)
        goto out;
    bool rsa = spec.key_type == CKK_RSA;
    rv = common_key_attrs(&pub->attrs, CKO_PUBLIC_KEY, spec.key_type, m->mechanism);
    if (rv == CKR_OK)
        rv = common_key_attrs(&priv->attrs, CKO_PRIVATE_KEY, spec.key_type, m->mechanism);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&pub->attrs, CKA_PRIVATE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&pub->attrs, CKA_VERIFY, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&pub->attrs, CKA_ENCRYPT, rsa);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&pub->attrs, CKA_WRAP, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&pub->attrs, CKA_VERIFY_RECOVER, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&priv->attrs, CKA_PRIVATE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&priv->attrs, CKA_SIGN, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&priv->attrs, CKA_DECRYPT, rsa);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&priv->attrs, CKA_UNWRAP, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&priv->attrs, CKA_SIGN_RECOVER, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&priv->attrs, CKA_ALWAYS_AUTHENTICATE, false);
    if (rv == CKR_OK)
        rv = fixed_private_attrs(&priv->attrs);
    if (rv == CKR_OK && !rsa) {
        const CK_ATTRIBUTE *p = tess_attrs_get(&pub->attrs, CKA_EC_PARAMS);
        rv = tess_attrs_set(&priv->attrs, CKA_EC_PARAMS, p->pValue, p->ulValueLen);
    }
    if (rv != CKR_OK)
        goto out;
    bool pub_token = tess_attrs_get_bool(&pub->attrs, CKA_TOKEN, false);
    spec.token = tess_attrs_get_bool(&priv->attrs, CKA_TOKEN, false);
    if (pub_token != spec.token) {
        /* One transaction stores both halves, or neither: keep them together. */
        rv = tess_attrs_set_bool(&pub->attrs, CKA_TOKEN, spec.token);
        if (rv != CKR_OK)
            goto out;
    }
    if (spec.token && !(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    rv = tess_token_objects(tess_slot_of_token(s->tok), false);
    if (rv == CKR_OK)
        rv = s->tok->driver->generate_key_pair(s->tok, &spec, pub, priv);
    if (rv != CKR_OK)
        goto out;
    pub->token_object = priv->token_object = spec.token;
    if (!spec.token)
        pub->owner = priv->owner = s->handle;
    rv = tess_token_add_object(s->tok, pub);
    if (rv == CKR_OK && (rv = tess_token_add_object(s->tok, priv)) != CKR_OK)
        tess_token_unlink_object(s->tok, pub);
    if (rv != CKR_OK)
        goto out;   /* stored ones come back at the next reload */
    *pub_out = pub->handle;
    *priv_out = priv->handle;
    pub = priv = NULL;
out:
    tess_object_free(s ? s->tok : NULL, pub);
    tess_object_free(s ? s->tok : NULL, priv);
    tess_leave();
    return rv;
}

/* C_CreateObject of a private key: its secret parts leave the template at
 * once (tess_import_take_private) and go into the device (import_key). What
 * the object says of itself follows: sensitive and not extractable from now
 * on, but neither made here (CKA_LOCAL) nor always sensitive. */
CK_RV tess_create_private_key(struct tess_session *s, struct tess_object *o, CK_OBJECT_HANDLE_PTR out)
{
    struct tess_object *pub = NULL;
    EVP_PKEY *pk = NULL;
    CK_ULONG kt = 0;
    bool token;
    CK_RV rv = tess_import_take_private(&o->attrs, &pk);
    if (rv != CKR_OK)
        goto out;
    if (!tess_user_logged_in(s->tok)) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if (!s->tok->driver->import_key) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    tess_attrs_get_ulong(&o->attrs, CKA_KEY_TYPE, &kt);
    bool rsa = kt == CKK_RSA;
    rv = common_key_attrs(&o->attrs, CKO_PRIVATE_KEY, kt, CK_UNAVAILABLE_INFORMATION);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_PRIVATE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_SIGN, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_DECRYPT, rsa);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_UNWRAP, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_SIGN_RECOVER, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_ALWAYS_AUTHENTICATE, false);
    if (rv == CKR_OK)
        rv = fixed_private_attrs(&o->attrs);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_LOCAL, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_ALWAYS_SENSITIVE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_NEVER_EXTRACTABLE, false);
    /* CKA_ID as for a generated pair: SHA-1 of the public key unless given. */
    if (rv == CKR_OK)
        rv = (pub = tess_object_new()) ? tess_pkey_public_attrs(pk, &pub->attrs) : CKR_HOST_MEMORY;
    if (rv == CKR_OK)
        rv = tess_keygen_complete(pub, o);
    /* An EC private key carries its public point, as a generated one does:
     * a tool finds the key for a certificate without a public key object. */
    const CK_ATTRIBUTE *point = pub ? tess_attrs_get(&pub->attrs, CKA_EC_POINT) : NULL;
    if (rv == CKR_OK && point && !tess_attrs_get(&o->attrs, CKA_EC_POINT))
        rv = tess_attrs_set(&o->attrs, CKA_EC_POINT, point->pValue, point->ulValueLen);
    if (rv != CKR_OK)
        goto out;
    token = tess_attrs_get_bool(&o->attrs, CKA_TOKEN, false);
    if (token && !(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    rv = tess_token_objects(tess_slot_of_token(s->tok), false);
    if (rv == CKR_OK)
        rv = s->tok->driver->import_key(s->tok, pk, o, token);
    if (rv != CKR_OK)
        goto out;
    o->token_object = token;
    if (!token)
        o->owner = s->handle;
    rv = tess_token_add_object(s->tok, o);
    if (rv == CKR_OK)
        *out = o->handle;
out:
    EVP_PKEY_free(pk);
    tess_object_free(s->tok, pub);
    return rv;
}

CK_RV tess_C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR tmpl,
                       CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
    struct tess_session *s = NULL;
    struct tess_object *key, *o = NULL;
    uint8_t z[66];
    size_t zlen = sizeof(z);
    const uint8_t *point;
    size_t plen;
    CK_ULONG cls = 0, vlen;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!m || !out || (!tmpl && n)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (m->mechanism != CKM_ECDH1_DERIVE) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    const CK_ECDH1_DERIVE_PARAMS *p = m->pParameter;
    if (!p || m->ulParameterLen != sizeof(*p) || !p->pPublicData) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    /* Only the raw shared secret: a KDF over it is the caller's business. */
    if (p->kdf != CKD_NULL || p->ulSharedDataLen) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if (!tess_user_logged_in(s->tok)) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    key = tess_object_get(s, base);
    if (!key) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto out;
    }
    tess_attrs_get_ulong(&key->attrs, CKA_CLASS, &cls);
    CK_ULONG kt = 0;
    tess_attrs_get_ulong(&key->attrs, CKA_KEY_TYPE, &kt);
    if (cls != CKO_PRIVATE_KEY || kt != CKK_EC) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    if (!tess_attrs_get_bool(&key->attrs, CKA_DERIVE, false)) {
        rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
        goto out;
    }
    size_t flen = tess_key_sig_len(&key->attrs) / 2;
    if (tess_ec_point_raw(p->pPublicData, p->ulPublicDataLen, flen, &point, &plen) != CKR_OK) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    o = tess_object_new();
    if (!o) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = tess_attrs_merge_template(&o->attrs, tmpl, n);
    if (rv != CKR_OK)
        goto out;
    if (tess_attrs_get_bool(&o->attrs, CKA_TOKEN, false)) {
        /* A derived secret stored on the host would be a secret in a file. */
        TESS_WARN("C_DeriveKey: derived keys can only be session objects");
        rv = CKR_TEMPLATE_INCONSISTENT;
        goto out;
    }
    if (!s->tok->driver->ecdh) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    rv = s->tok->driver->ecdh(s->tok, key, point, plen, z, &zlen);
    if (rv != CKR_OK)
        goto out;
    if (tess_attrs_get_ulong(&o->attrs, CKA_VALUE_LEN, &vlen)) {
        if (vlen > zlen || vlen == 0) {
            rv = CKR_TEMPLATE_INCONSISTENT;
            goto out;
        }
        zlen = vlen;
    }
    rv = tess_attrs_set(&o->attrs, CKA_VALUE, z, zlen);
    if (rv == CKR_OK)
        rv = tess_attrs_set_ulong(&o->attrs, CKA_VALUE_LEN, zlen);
    if (rv == CKR_OK)
        rv = tess_attrs_default(&o->attrs, CKA_CLASS, &(CK_ULONG){ CKO_SECRET_KEY }, sizeof(CK_ULONG));
    if (rv == CKR_OK)
        rv = tess_attrs_default(&o->attrs, CKA_KEY_TYPE, &(CK_ULONG){ CKK_GENERIC_SECRET }, sizeof(CK_ULONG));
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_TOKEN, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_PRIVATE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_SENSITIVE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(&o->attrs, CKA_EXTRACTABLE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_LOCAL, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default(&o->attrs, CKA_LABEL, "", 0);
    if (rv == CKR_OK)
        rv = tess_attrs_default(&o->attrs, CKA_ID, "", 0);
    if (rv != CKR_OK)
        goto out;
    o->owner = s->handle;
    rv = tess_token_add_object(s->tok, o);
    if (rv != CKR_OK)
        goto out;
    *out = o->handle;
    o = NULL;
out:
    tess_wipe(z, sizeof(z));
    tess_object_free(s ? s->tok : NULL, o);
    tess_leave();
    return rv;
}

CK_RV tess_C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!out && len) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (s->tok->driver->random)
        rv = s->tok->driver->random(s->tok, out, len);
    else
        rv = RAND_bytes(out, (int)len) == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
    return CKR_RANDOM_SEED_NOT_SUPPORTED;
}
