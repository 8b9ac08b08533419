/* Objects: create, copy, destroy, search, and attribute reads and writes
 * with exact PKCS#11 semantics (sensitivity, sizing, unavailable values). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "../src/log.h"
#include "../src/mech.h"
#include "../src/util.h"
#include "entry.h"
#include "module.h"

/* Attributes that are never revealed for a private or sensitive key. */
static bool is_sensitive(const struct tess_object *o, CK_ATTRIBUTE_TYPE t)
{
    CK_ULONG cls = 0;
    tess_attrs_get_ulong(&o->attrs, CKA_CLASS, &cls);
    if (cls == CKO_PRIVATE_KEY) {
        switch (t) {
        case CKA_PRIVATE_EXPONENT: case CKA_PRIME_1: case CKA_PRIME_2: case CKA_EXPONENT_1:
        case CKA_EXPONENT_2: case CKA_COEFFICIENT: case CKA_VALUE:
            return true;
        default:
            return false;
        }
    }
    if (cls == CKO_SECRET_KEY && t == CKA_VALUE)
        return tess_attrs_get_bool(&o->attrs, CKA_SENSITIVE, false) ||
               !tess_attrs_get_bool(&o->attrs, CKA_EXTRACTABLE, true);
    return false;
}

CK_RV tess_C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    struct tess_session *s;
    struct tess_object *o;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!tmpl && count) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    o = tess_object_get(s, oh);
    if (!o) {
        rv = CKR_OBJECT_HANDLE_INVALID;
        goto out;
    }
    /* Every attribute is answered; the return value reports the last
     * problem met, as the standard allows. */
    for (CK_ULONG i = 0; i < count; i++) {
        CK_ATTRIBUTE *t = &tmpl[i];
        const CK_ATTRIBUTE *have;
        if (is_sensitive(o, t->type)) {
            t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_SENSITIVE;
            continue;
        }
        have = tess_attrs_get(&o->attrs, t->type);
        if (!have) {
            t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_TYPE_INVALID;
            continue;
        }
        if (!t->pValue) {
            t->ulValueLen = have->ulValueLen;
            continue;
        }
        if (t->ulValueLen < have->ulValueLen) {
            t->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_BUFFER_TOO_SMALL;
            continue;
        }
        if (have->ulValueLen)
            memcpy(t->pValue, have->pValue, have->ulValueLen);
        t->ulValueLen = have->ulValueLen;
    }
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ULONG_PTR size)
{
    struct tess_session *s;
    struct tess_object *o;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!size) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    o = tess_object_get(s, oh);
    if (!o) {
        rv = CKR_OBJECT_HANDLE_INVALID;
        goto out;
    }
    *size = 0;
    for (size_t i = 0; i < o->attrs.n; i++)
        *size += o->attrs.v[i].ulValueLen;
out:
    tess_leave();
    return rv;
}

/* Fill CKA_SUBJECT/ISSUER/SERIAL_NUMBER of an X.509 certificate from its
 * value when the caller left them out (NSS and ssh search by them). */
static CK_RV complete_certificate(struct tess_attrs *a)
{
    const CK_ATTRIBUTE *val = tess_attrs_get(a, CKA_VALUE);
    CK_ULONG ctype;
    const unsigned char *p;
    X509 *x = NULL;
    unsigned char *der = NULL;
    int len;
    CK_RV rv = CKR_OK;

    if (!tess_attrs_get_ulong(a, CKA_CERTIFICATE_TYPE, &ctype))
        return CKR_TEMPLATE_INCOMPLETE;
    if (ctype != CKC_X_509)
        return CKR_OK;
    if (!val || !val->ulValueLen)
        return CKR_TEMPLATE_INCOMPLETE;
    p = val->pValue;
    x = d2i_X509(NULL, &p, (long)val->ulValueLen);
    if (!x)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    if (!tess_attrs_get(a, CKA_SUBJECT) && (len = i2d_X509_NAME(X509_get_subject_name(x), &der)) > 0) {
        rv = tess_attrs_set(a, CKA_SUBJECT, der, (CK_ULONG)len);
        OPENSSL_free(der);
        der = NULL;
    }
    if (rv == CKR_OK && !tess_attrs_get(a, CKA_ISSUER) && (len = i2d_X509_NAME(X509_get_issuer_name(x), &der)) > 0) {
        rv = tess_attrs_set(a, CKA_ISSUER, der, (CK_ULONG)len);
        OPENSSL_free(der);
        der = NULL;
    }
    if (rv == CKR_OK && !tess_attrs_get(a, CKA_SERIAL_NUMBER) &&
        (len = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &der)) > 0) {
        rv = tess_attrs_set(a, CKA_SERIAL_NUMBER, der, (CK_ULONG)len);
        OPENSSL_free(der);
    }
    X509_free(x);
    return rv;
}

static CK_RV apply_defaults(struct tess_attrs *a)
{
    CK_ULONG cls;
    CK_RV rv;
    if (!tess_attrs_get_ulong(a, CKA_CLASS, &cls))
        return CKR_TEMPLATE_INCOMPLETE;
    rv = tess_attrs_default_bool(a, CKA_TOKEN, false);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_MODIFIABLE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_COPYABLE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default_bool(a, CKA_DESTROYABLE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_default(a, CKA_LABEL, "", 0);
    if (rv != CKR_OK)
        return rv;
    switch (cls) {
    case CKO_DATA:
        rv = tess_attrs_default_bool(a, CKA_PRIVATE, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default(a, CKA_APPLICATION, "", 0);
        if (rv == CKR_OK)
            rv = tess_attrs_default(a, CKA_VALUE, "", 0);
        if (rv == CKR_OK)
            rv = tess_attrs_default(a, CKA_OBJECT_ID, "", 0);
        return rv;
    case CKO_CERTIFICATE:
        rv = tess_attrs_default_bool(a, CKA_PRIVATE, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_TRUSTED, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default(a, CKA_ID, "", 0);
        if (rv == CKR_OK)
            rv = complete_certificate(a);
        return rv;
    case CKO_PUBLIC_KEY: {
        EVP_PKEY *pk = NULL;
        CK_ULONG kt;
        if (!tess_attrs_get_ulong(a, CKA_KEY_TYPE, &kt))
            return CKR_TEMPLATE_INCOMPLETE;
        /* Refuse a public key that OpenSSL cannot use for verify/encrypt. */
        rv = tess_pkey_from_attrs(a, &pk);
        EVP_PKEY_free(pk);
        if (rv != CKR_OK)
            return CKR_TEMPLATE_INCOMPLETE;
        rv = tess_attrs_default_bool(a, CKA_PRIVATE, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_VERIFY, true);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_ENCRYPT, kt == CKK_RSA);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_DERIVE, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_WRAP, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_VERIFY_RECOVER, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default_bool(a, CKA_LOCAL, false);
        if (rv == CKR_OK)
            rv = tess_attrs_default(a, CKA_ID, "", 0);
        if (rv == CKR_OK && kt == CKK_RSA && !tess_attrs_get(a, CKA_MODULUS_BITS)) {
            const CK_ATTRIBUTE *m = tess_attrs_get(a, CKA_MODULUS);
            rv = tess_attrs_set_ulong(a, CKA_MODULUS_BITS, m ? m->ulValueLen * 8 : 0);
        }
        return rv;
    }
    case CKO_SECRET_KEY:
        /* Secret keys are derived inside the device (C_DeriveKey); private
         * keys take their own path (tess_create_private_key). */
        TESS_WARN("C_CreateObject: importing secret keys is not supported");
        return CKR_TEMPLATE_INCONSISTENT;
    default:
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
}

static CK_RV check_write(struct tess_session *s, bool token, bool priv)
{
    if (token && !(s->flags & CKF_RW_SESSION))
        return CKR_SESSION_READ_ONLY;
    /* Writing to the card needs a login, as on a physical card. */
    if (token && s->tok->login == TESS_NOT_LOGGED_IN)
        return CKR_USER_NOT_LOGGED_IN;
    if (priv && !tess_user_logged_in(s->tok))
        return CKR_USER_NOT_LOGGED_IN;
    return CKR_OK;
}

static CK_RV add_object(struct tess_session *s, struct tess_object *o, CK_OBJECT_HANDLE_PTR out)
{
    CK_RV rv;
    struct tess_slot *slot = tess_slot_of_token(s->tok);
    o->token_object = tess_attrs_get_bool(&o->attrs, CKA_TOKEN, false);
    if (o->token_object) {
        if (!s->tok->driver->store_object)
            return CKR_TOKEN_WRITE_PROTECTED;
        rv = tess_token_objects(slot, false);
        if (rv == CKR_OK)
            rv = s->tok->driver->store_object(s->tok, o);
        if (rv != CKR_OK)
            return rv;
    } else {
        o->owner = s->handle;
    }
    rv = tess_token_add_object(s->tok, o);
    if (rv == CKR_OK)
        *out = o->handle;
    return rv;
}

CK_RV tess_C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count, CK_OBJECT_HANDLE_PTR out)
{
    struct tess_session *s;
    struct tess_object *o = NULL;
    CK_ULONG cls = 0;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!out || (!tmpl && count)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    o = tess_object_new();
    if (!o) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = tess_attrs_merge_template(&o->attrs, tmpl, count);
    if (rv == CKR_OK && tess_attrs_get_ulong(&o->attrs, CKA_CLASS, &cls) && cls == CKO_PRIVATE_KEY) {
        rv = tess_create_private_key(s, o, out);
        if (rv != CKR_OK)
            tess_object_free(s->tok, o);   /* the driver may have attached its key */
        o = NULL;
        goto out;
    }
    if (rv == CKR_OK)
        rv = apply_defaults(&o->attrs);
    if (rv == CKR_OK)
        rv = check_write(s, tess_attrs_get_bool(&o->attrs, CKA_TOKEN, false),
                         tess_attrs_get_bool(&o->attrs, CKA_PRIVATE, false));
    if (rv == CKR_OK)
        rv = add_object(s, o, out);
    if (rv == CKR_OK)
        o = NULL;
out:
    tess_object_free(NULL, o);
    tess_leave();
    return rv;
}

CK_RV tess_C_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count,
                        CK_OBJECT_HANDLE_PTR out)
{
    struct tess_session *s;
    struct tess_object *src, *o = NULL;
    CK_ULONG cls = 0;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!out || (!tmpl && count)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    src = tess_object_get(s, oh);
    if (!src) {
        rv = CKR_OBJECT_HANDLE_INVALID;
        goto out;
    }
    tess_attrs_get_ulong(&src->attrs, CKA_CLASS, &cls);
    /* A copy of a device key would need the device to duplicate it. */
    if (src->drv || cls == CKO_PRIVATE_KEY || !tess_attrs_get_bool(&src->attrs, CKA_COPYABLE, true)) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    o = tess_object_new();
    if (!o) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = tess_attrs_copy(&o->attrs, &src->attrs);
    if (rv == CKR_OK)
        rv = tess_attrs_merge_template(&o->attrs, tmpl, count);
    if (rv == CKR_OK)
        rv = check_write(s, tess_attrs_get_bool(&o->attrs, CKA_TOKEN, false),
                         tess_attrs_get_bool(&o->attrs, CKA_PRIVATE, false));
    if (rv == CKR_OK)
        rv = add_object(s, o, out);
    if (rv == CKR_OK)
        o = NULL;
out:
    tess_object_free(NULL, o);
    tess_leave();
    return rv;
}

CK_RV tess_C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh)
{
    struct tess_session *s;
    struct tess_object *o;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    o = tess_object_get(s, oh);
    if (!o) {
        rv = CKR_OBJECT_HANDLE_INVALID;
        goto out;
    }
    if (!tess_attrs_get_bool(&o->attrs, CKA_DESTROYABLE, true)) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    rv = check_write(s, o->token_object, false);
    if (rv != CKR_OK)
        goto out;
    if (o->token_object) {
        rv = s->tok->driver->destroy_object ? s->tok->driver->destroy_object(s->tok, o)
                                            : CKR_TOKEN_WRITE_PROTECTED;
        if (rv != CKR_OK)
            goto out;
    }
    tess_token_unlink_object(s->tok, o);
    tess_object_free(s->tok, o);
out:
    tess_leave();
    return rv;
}

static CK_RV check_settable(const struct tess_object *o, const CK_ATTRIBUTE *t)
{
    switch (t->type) {
    case CKA_LABEL: case CKA_ID: case CKA_SUBJECT: case CKA_START_DATE: case CKA_END_DATE:
    case CKA_APPLICATION:
        return CKR_OK;
    case CKA_SENSITIVE:     /* may only be switched on */
        return t->ulValueLen == sizeof(CK_BBOOL) && *(CK_BBOOL *)t->pValue ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
    case CKA_EXTRACTABLE:   /* may only be switched off */
        return t->ulValueLen == sizeof(CK_BBOOL) && !*(CK_BBOOL *)t->pValue ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
    case CKA_VALUE: {
        CK_ULONG cls = 0;
        tess_attrs_get_ulong(&o->attrs, CKA_CLASS, &cls);
        return cls == CKO_DATA ? CKR_OK : CKR_ATTRIBUTE_READ_ONLY;
    }
    default:
        return tess_attrs_get(&o->attrs, t->type) ? CKR_ATTRIBUTE_READ_ONLY : CKR_ATTRIBUTE_TYPE_INVALID;
    }
}

CK_RV tess_C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    struct tess_session *s;
    struct tess_object *o;
    struct tess_attrs saved = { 0 };
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!tmpl && count) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    o = tess_object_get(s, oh);
    if (!o) {
        rv = CKR_OBJECT_HANDLE_INVALID;
        goto out;
    }
    if (!tess_attrs_get_bool(&o->attrs, CKA_MODIFIABLE, true)) {
        rv = CKR_ACTION_PROHIBITED;
        goto out;
    }
    rv = check_write(s, o->token_object, false);
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++)
        rv = check_settable(o, &tmpl[i]);
    if (rv != CKR_OK)
        goto out;
    /* All or nothing: keep the old set until the store has the new one. */
    rv = tess_attrs_copy(&saved, &o->attrs);
    if (rv == CKR_OK)
        rv = tess_attrs_merge_template(&o->attrs, tmpl, count);
    if (rv == CKR_OK && o->token_object)
        rv = s->tok->driver->update_object ? s->tok->driver->update_object(s->tok, o) : CKR_TOKEN_WRITE_PROTECTED;
    if (rv != CKR_OK) {
        tess_attrs_free(&o->attrs);
        o->attrs = saved;
        saved = (struct tess_attrs){ 0 };
    }
out:
    tess_attrs_free(&saved);
    tess_leave();
    return rv;
}

CK_RV tess_C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG count)
{
    struct tess_session *s;
    size_t n = 0, cap = 0;
    CK_OBJECT_HANDLE *found = NULL;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!tmpl && count) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (s->find.active) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    /* A search is where another process's changes become visible. */
    rv = tess_token_objects(tess_slot_of_token(s->tok), true);
    if (rv != CKR_OK)
        goto out;
    for (struct tess_object *o = s->tok->objects; o; o = o->next) {
        if (!tess_object_visible(s->tok, o) || !tess_attrs_match(&o->attrs, tmpl, count))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            CK_OBJECT_HANDLE *nf = realloc(found, cap * sizeof(*nf));
            if (!nf) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
            found = nf;
        }
        found[n++] = o->handle;
    }
    s->find.active = true;
    s->find.handles = found;
    s->find.n = n;
    s->find.pos = 0;
    found = NULL;
out:
    free(found);
    tess_leave();
    return rv;
}

CK_RV tess_C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max, CK_ULONG_PTR count)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!count || (!out && max)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!s->find.active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    *count = 0;
    while (*count < max && s->find.pos < s->find.n)
        out[(*count)++] = s->find.handles[s->find.pos++];
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_FindObjectsFinal(CK_SESSION_HANDLE h)
{
    struct tess_session *s;
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    rv = tess_session_get(h, &s);
    if (rv == CKR_OK && !s->find.active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    if (rv == CKR_OK) {
        free(s->find.handles);
        memset(&s->find, 0, sizeof(s->find));
    }
    tess_leave();
    return rv;
}
