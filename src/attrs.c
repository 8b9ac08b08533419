#include "config.h"
#include "attrs.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

bool tess_attr_is_bool(CK_ATTRIBUTE_TYPE t)
{
    switch (t) {
    case CKA_TOKEN: case CKA_PRIVATE: case CKA_TRUSTED: case CKA_SENSITIVE: case CKA_ENCRYPT:
    case CKA_DECRYPT: case CKA_WRAP: case CKA_UNWRAP: case CKA_SIGN: case CKA_SIGN_RECOVER:
    case CKA_VERIFY: case CKA_VERIFY_RECOVER: case CKA_DERIVE: case CKA_EXTRACTABLE: case CKA_LOCAL:
    case CKA_NEVER_EXTRACTABLE: case CKA_ALWAYS_SENSITIVE: case CKA_MODIFIABLE: case CKA_COPYABLE:
    case CKA_DESTROYABLE: case CKA_ALWAYS_AUTHENTICATE: case CKA_WRAP_WITH_TRUSTED:
        return true;
    default:
        return false;
    }
}

bool tess_attr_is_ulong(CK_ATTRIBUTE_TYPE t)
{
    switch (t) {
    case CKA_CLASS: case CKA_KEY_TYPE: case CKA_CERTIFICATE_TYPE: case CKA_CERTIFICATE_CATEGORY:
    case CKA_MODULUS_BITS: case CKA_VALUE_LEN: case CKA_KEY_GEN_MECHANISM:
    case CKA_JAVA_MIDP_SECURITY_DOMAIN: case CKA_NAME_HASH_ALGORITHM: case CKA_PROFILE_ID:
        return true;
    default:
        return false;
    }
}

static CK_ATTRIBUTE *find(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].type == type)
            return &a->v[i];
    return NULL;
}

void tess_attrs_free(struct tess_attrs *a)
{
    for (size_t i = 0; i < a->n; i++)
        tess_free_secret(a->v[i].pValue, a->v[i].ulValueLen);
    free(a->v);
    memset(a, 0, sizeof(*a));
}

CK_RV tess_attrs_set(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len)
{
    void *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return CKR_HOST_MEMORY;
        memcpy(copy, val, len);
    }
    CK_ATTRIBUTE *at = find(a, type);
    if (at) {
        tess_free_secret(at->pValue, at->ulValueLen);
        at->pValue = copy;
        at->ulValueLen = len;
        return CKR_OK;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        CK_ATTRIBUTE *nv = realloc(a->v, cap * sizeof(*nv));
        if (!nv) {
            free(copy);
            return CKR_HOST_MEMORY;
        }
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n].type = type;
    a->v[a->n].pValue = copy;
    a->v[a->n].ulValueLen = len;
    a->n++;
    return CKR_OK;
}

CK_RV tess_attrs_set_bool(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, bool v)
{
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
    return tess_attrs_set(a, type, &b, sizeof(b));
}

CK_RV tess_attrs_set_ulong(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG v)
{
    return tess_attrs_set(a, type, &v, sizeof(v));
}

CK_RV tess_attrs_default_bool(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, bool v)
{
    return find(a, type) ? CKR_OK : tess_attrs_set_bool(a, type, v);
}

CK_RV tess_attrs_default(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len)
{
    return find(a, type) ? CKR_OK : tess_attrs_set(a, type, val, len);
}

void tess_attrs_remove(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type)
{
    CK_ATTRIBUTE *at = find(a, type);
    if (!at)
        return;
    tess_free_secret(at->pValue, at->ulValueLen);
    *at = a->v[--a->n];
}

const CK_ATTRIBUTE *tess_attrs_get(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type)
{
    return find(a, type);
}

bool tess_attrs_get_bool(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, bool dflt)
{
    const CK_ATTRIBUTE *at = find(a, type);
    if (!at || at->ulValueLen != sizeof(CK_BBOOL))
        return dflt;
    return *(CK_BBOOL *)at->pValue != CK_FALSE;
}

bool tess_attrs_get_ulong(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
    const CK_ATTRIBUTE *at = find(a, type);
    if (!at || at->ulValueLen != sizeof(CK_ULONG))
        return false;
    memcpy(out, at->pValue, sizeof(CK_ULONG));
    return true;
}

CK_RV tess_attrs_merge_template(struct tess_attrs *a, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    if (count && !tmpl)
        return CKR_ARGUMENTS_BAD;
    for (CK_ULONG i = 0; i < count; i++) {
        const CK_ATTRIBUTE *t = &tmpl[i];
        if (t->ulValueLen && !t->pValue)
            return CKR_ATTRIBUTE_VALUE_INVALID;
        if (tess_attr_is_bool(t->type) && t->ulValueLen != sizeof(CK_BBOOL))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        if (tess_attr_is_ulong(t->type) && t->ulValueLen != sizeof(CK_ULONG))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        CK_RV rv = tess_attrs_set(a, t->type, t->pValue, t->ulValueLen);
        if (rv != CKR_OK)
            return rv;
    }
    return CKR_OK;
}

bool tess_attrs_match(const struct tess_attrs *a, const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    for (CK_ULONG i = 0; i < count; i++) {
        const CK_ATTRIBUTE *have = find(a, tmpl[i].type);
        if (tmpl[i].ulValueLen && !tmpl[i].pValue)
            return false;
        if (!have || have->ulValueLen != tmpl[i].ulValueLen)
            return false;
        if (have->ulValueLen && memcmp(have->pValue, tmpl[i].pValue, have->ulValueLen))
            return false;
    }
    return true;
}

CK_RV tess_attrs_copy(struct tess_attrs *dst, const struct tess_attrs *src)
{
    for (size_t i = 0; i < src->n; i++) {
        CK_RV rv = tess_attrs_set(dst, src->v[i].type, src->v[i].pValue, src->v[i].ulValueLen);
        if (rv != CKR_OK)
            return rv;
    }
    return CKR_OK;
}

CK_RV tess_attrs_encode(const struct tess_attrs *a, uint8_t **out, size_t *outlen)
{
    size_t len = 0;
    for (size_t i = 0; i < a->n; i++)
        len += 12 + a->v[i].ulValueLen;
    uint8_t *buf = malloc(len ? len : 1), *p = buf;
    if (!buf)
        return CKR_HOST_MEMORY;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t t = a->v[i].type;
        uint32_t l = (uint32_t)a->v[i].ulValueLen;
        for (int b = 7; b >= 0; b--)
            *p++ = (uint8_t)(t >> (8 * b));
        for (int b = 3; b >= 0; b--)
            *p++ = (uint8_t)(l >> (8 * b));
        if (l)
            memcpy(p, a->v[i].pValue, l);
        p += l;
    }
    *out = buf;
    *outlen = len;
    return CKR_OK;
}

CK_RV tess_attrs_decode(struct tess_attrs *a, const uint8_t *in, size_t inlen)
{
    size_t off = 0;
    while (off < inlen) {
        if (inlen - off < 12)
            return CKR_DEVICE_ERROR;
        uint64_t t = 0;
        uint32_t l = 0;
        for (int b = 0; b < 8; b++)
            t = (t << 8) | in[off + b];
        for (int b = 0; b < 4; b++)
            l = (l << 8) | in[off + 8 + b];
        off += 12;
        if (inlen - off < l)
            return CKR_DEVICE_ERROR;
        CK_RV rv = tess_attrs_set(a, (CK_ATTRIBUTE_TYPE)t, in + off, l);
        if (rv != CKR_OK)
            return rv;
        off += l;
    }
    return CKR_OK;
}
