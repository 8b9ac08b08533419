/* An owned, growable set of PKCS#11 attributes: the core's representation of
 * every object, and the unit the store serialises. Values are wiped on free. */
#ifndef TESSERA_ATTRS_H
#define TESSERA_ATTRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../pkcs11/pk11.h"

struct tess_attrs {
    CK_ATTRIBUTE *v;
    size_t n, cap;
};

void tess_attrs_free(struct tess_attrs *a);
CK_RV tess_attrs_set(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len);
CK_RV tess_attrs_set_bool(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, bool v);
CK_RV tess_attrs_set_ulong(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG v);
/* Set only when absent: for defaults under a caller's template. */
CK_RV tess_attrs_default_bool(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, bool v);
CK_RV tess_attrs_default(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len);
void tess_attrs_remove(struct tess_attrs *a, CK_ATTRIBUTE_TYPE type);

const CK_ATTRIBUTE *tess_attrs_get(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type);
bool tess_attrs_get_bool(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, bool dflt);
/* Returns false if absent or of the wrong size. */
bool tess_attrs_get_ulong(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG *out);

/* Merge a caller's template in (validating CK_BBOOL/CK_ULONG sizes). */
CK_RV tess_attrs_merge_template(struct tess_attrs *a, const CK_ATTRIBUTE *tmpl, CK_ULONG count);
/* Does every attribute of tmpl appear in a with an equal value? */
bool tess_attrs_match(const struct tess_attrs *a, const CK_ATTRIBUTE *tmpl, CK_ULONG count);
CK_RV tess_attrs_copy(struct tess_attrs *dst, const struct tess_attrs *src);

/* Flat encoding for the store: repeated (type u64 BE, len u32 BE, value). */
CK_RV tess_attrs_encode(const struct tess_attrs *a, uint8_t **out, size_t *outlen);
CK_RV tess_attrs_decode(struct tess_attrs *a, const uint8_t *in, size_t inlen);

/* Is this attribute type's value a CK_BBOOL / CK_ULONG by the standard? */
bool tess_attr_is_bool(CK_ATTRIBUTE_TYPE t);
bool tess_attr_is_ulong(CK_ATTRIBUTE_TYPE t);

#endif
