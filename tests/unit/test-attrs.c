/* Unit tests for src/attrs.c: the owned attribute set every object is made of,
 * and its flat encoding, which is what the store keeps on disk. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/attrs.h"
#include "../tap.h"

/* Does a hold type with exactly this value? */
static int has(const struct tess_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len)
{
    const CK_ATTRIBUTE *at = tess_attrs_get(a, type);
    if (!at || at->ulValueLen != len)
        return 0;
    return len == 0 || memcmp(at->pValue, val, len) == 0;
}

static void test_set_get_replace_remove(void)
{
    struct tess_attrs a = { 0 };
    char label[] = "hello";

    ok(tess_attrs_get(&a, CKA_LABEL) == NULL, "empty set: get finds nothing");

    is_rv(tess_attrs_set(&a, CKA_LABEL, label, 5), CKR_OK, "set label");
    /* The set owns a copy: changing the caller's buffer must not show through. */
    label[0] = 'J';
    ok(has(&a, CKA_LABEL, "hello", 5), "label holds its own copy of the value");
    ok(tess_attrs_get(&a, CKA_LABEL)->pValue != (void *)label, "value pointer is not the caller's");

    is_rv(tess_attrs_set(&a, CKA_LABEL, "bye", 3), CKR_OK, "replace label");
    ok(a.n == 1, "replacing does not add a second entry (n=%zu)", a.n);
    ok(has(&a, CKA_LABEL, "bye", 3), "replaced value and length are the new ones");

    is_rv(tess_attrs_set(&a, CKA_ID, NULL, 0), CKR_OK, "set zero-length id");
    ok(tess_attrs_get(&a, CKA_ID) != NULL && tess_attrs_get(&a, CKA_ID)->ulValueLen == 0,
       "zero-length attribute is present with length 0");

    is_rv(tess_attrs_set(&a, CKA_SUBJECT, "subj", 4), CKR_OK, "set subject");
    is_rv(tess_attrs_set(&a, CKA_VALUE, "vvvvvv", 6), CKR_OK, "set value");

    /* Remove from the middle: removal moves the last entry into the hole, so
     * every other attribute must still be found with its own value. */
    tess_attrs_remove(&a, CKA_ID);
    ok(tess_attrs_get(&a, CKA_ID) == NULL, "removed attribute is gone");
    ok(a.n == 3, "count drops by one after remove (n=%zu)", a.n);
    ok(has(&a, CKA_LABEL, "bye", 3) && has(&a, CKA_SUBJECT, "subj", 4) && has(&a, CKA_VALUE, "vvvvvv", 6),
       "the other attributes survive a remove from the middle");

    tess_attrs_remove(&a, CKA_ID);
    ok(a.n == 3, "removing an absent attribute changes nothing");
    tess_attrs_remove(&a, CKA_VALUE);
    tess_attrs_remove(&a, CKA_LABEL);
    tess_attrs_remove(&a, CKA_SUBJECT);
    ok(a.n == 0 && tess_attrs_get(&a, CKA_LABEL) == NULL, "removing everything leaves an empty set");

    tess_attrs_free(&a);
    ok(a.v == NULL && a.n == 0 && a.cap == 0, "free resets the set");
}

/* More attributes than the first allocation (16) forces the array to grow. */
static void test_growth(void)
{
    struct tess_attrs a = { 0 };
    int all = 1;
    for (CK_ULONG i = 0; i < 40; i++) {
        CK_ULONG v = i * 7;
        if (tess_attrs_set(&a, CKA_VENDOR_DEFINED + i, &v, sizeof(v)) != CKR_OK)
            all = 0;
    }
    ok(all && a.n == 40, "40 attributes set (n=%zu)", a.n);
    for (CK_ULONG i = 0; i < 40; i++) {
        CK_ULONG v = 0;
        if (!tess_attrs_get_ulong(&a, CKA_VENDOR_DEFINED + i, &v) || v != i * 7)
            all = 0;
    }
    ok(all, "every one of 40 attributes reads back after the array grew");
    tess_attrs_free(&a);
}

static void test_typed_getters(void)
{
    struct tess_attrs a = { 0 };
    CK_ULONG ul = 12345;
    uint16_t two = 1;
    uint32_t four = 3;
    CK_BBOOL odd = 0x02;

    ok(tess_attrs_get_bool(&a, CKA_TOKEN, true) == true, "absent bool: default true");
    ok(tess_attrs_get_bool(&a, CKA_TOKEN, false) == false, "absent bool: default false");
    ok(!tess_attrs_get_ulong(&a, CKA_CLASS, &ul) && ul == 12345, "absent ulong: false, output untouched");

    tess_attrs_set_bool(&a, CKA_TOKEN, true);
    tess_attrs_set_bool(&a, CKA_PRIVATE, false);
    ok(tess_attrs_get_bool(&a, CKA_TOKEN, false) == true, "set_bool true reads true over default false");
    ok(tess_attrs_get_bool(&a, CKA_PRIVATE, true) == false, "set_bool false reads false over default true");
    ok(tess_attrs_get(&a, CKA_TOKEN)->ulValueLen == sizeof(CK_BBOOL), "set_bool stores one CK_BBOOL");

    /* Any nonzero CK_BBOOL is true, as PKCS#11 callers do not all use 1. */
    tess_attrs_set(&a, CKA_SIGN, &odd, sizeof(odd));
    ok(tess_attrs_get_bool(&a, CKA_SIGN, false) == true, "bool value 0x02 reads as true");

    /* Wrong sizes fall back to the default rather than reading garbage. */
    tess_attrs_set(&a, CKA_DECRYPT, &two, sizeof(two));
    ok(tess_attrs_get_bool(&a, CKA_DECRYPT, false) == false && tess_attrs_get_bool(&a, CKA_DECRYPT, true) == true,
       "2-byte bool is ignored: default returned either way");
    tess_attrs_set(&a, CKA_ENCRYPT, NULL, 0);
    ok(tess_attrs_get_bool(&a, CKA_ENCRYPT, true) == true, "0-byte bool is ignored: default returned");

    tess_attrs_set_ulong(&a, CKA_CLASS, CKO_PRIVATE_KEY);
    ul = 0;
    ok(tess_attrs_get_ulong(&a, CKA_CLASS, &ul) && ul == CKO_PRIVATE_KEY, "set_ulong reads back");

    tess_attrs_set(&a, CKA_KEY_TYPE, &four, sizeof(four));
    ul = 999;
    if (sizeof(CK_ULONG) != sizeof(four))
        ok(!tess_attrs_get_ulong(&a, CKA_KEY_TYPE, &ul) && ul == 999,
           "4-byte ulong on an LP64 build is refused, output untouched");
    tess_attrs_set(&a, CKA_MODULUS_BITS, "x", 1);
    ok(!tess_attrs_get_ulong(&a, CKA_MODULUS_BITS, &ul) && ul == 999, "1-byte ulong is refused, output untouched");

    /* default_* fills only gaps. */
    tess_attrs_default_bool(&a, CKA_TOKEN, false);
    ok(tess_attrs_get_bool(&a, CKA_TOKEN, false) == true, "default_bool keeps an existing value");
    tess_attrs_default_bool(&a, CKA_MODIFIABLE, false);
    ok(tess_attrs_get(&a, CKA_MODIFIABLE) && tess_attrs_get_bool(&a, CKA_MODIFIABLE, true) == false,
       "default_bool sets an absent value");
    tess_attrs_set(&a, CKA_LABEL, "mine", 4);
    tess_attrs_default(&a, CKA_LABEL, "dflt", 4);
    ok(has(&a, CKA_LABEL, "mine", 4), "default keeps an existing label");
    tess_attrs_default(&a, CKA_ID, "\x01\x02", 2);
    ok(has(&a, CKA_ID, "\x01\x02", 2), "default sets an absent id");

    tess_attrs_free(&a);
}

static void test_merge_template(void)
{
    struct tess_attrs a = { 0 };
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG cls = CKO_DATA, wide = 1;
    uint32_t narrow = 1;

    tess_attrs_set(&a, CKA_LABEL, "old", 3);
    CK_ATTRIBUTE good[] = {
        { CKA_TOKEN, &yes, sizeof(yes) },
        { CKA_CLASS, &cls, sizeof(cls) },
        { CKA_LABEL, "new label", 9 },
        { CKA_ID, NULL, 0 },
    };
    is_rv(tess_attrs_merge_template(&a, good, 4), CKR_OK, "merge a well-formed template");
    ok(tess_attrs_get_bool(&a, CKA_TOKEN, false), "merged bool present");
    CK_ULONG got = 0;
    ok(tess_attrs_get_ulong(&a, CKA_CLASS, &got) && got == CKO_DATA, "merged ulong present");
    ok(has(&a, CKA_LABEL, "new label", 9), "template value overrides the existing label");
    ok(has(&a, CKA_ID, NULL, 0), "NULL pValue with zero length merges as an empty value");

    CK_ATTRIBUTE bad_bool[] = { { CKA_SIGN, &wide, sizeof(wide) } };
    is_rv(tess_attrs_merge_template(&a, bad_bool, 1), CKR_ATTRIBUTE_VALUE_INVALID, "CK_BBOOL of CK_ULONG size");
    ok(tess_attrs_get(&a, CKA_SIGN) == NULL, "refused bool was not stored");
    CK_ATTRIBUTE empty_bool[] = { { CKA_SIGN, NULL, 0 } };
    is_rv(tess_attrs_merge_template(&a, empty_bool, 1), CKR_ATTRIBUTE_VALUE_INVALID, "CK_BBOOL of length 0");

    CK_ATTRIBUTE bad_ulong[] = { { CKA_KEY_TYPE, &yes, sizeof(yes) } };
    is_rv(tess_attrs_merge_template(&a, bad_ulong, 1), CKR_ATTRIBUTE_VALUE_INVALID, "CK_ULONG of length 1");
    if (sizeof(narrow) != sizeof(CK_ULONG)) {
        CK_ATTRIBUTE bad_ulong4[] = { { CKA_CLASS, &narrow, sizeof(narrow) } };
        is_rv(tess_attrs_merge_template(&a, bad_ulong4, 1), CKR_ATTRIBUTE_VALUE_INVALID,
              "CK_ULONG of 4 bytes on LP64");
    }

    CK_ATTRIBUTE null_val[] = { { CKA_VALUE, NULL, 16 } };
    is_rv(tess_attrs_merge_template(&a, null_val, 1), CKR_ATTRIBUTE_VALUE_INVALID, "NULL pValue with length 16");
    ok(tess_attrs_get(&a, CKA_VALUE) == NULL, "refused NULL value was not stored");

    is_rv(tess_attrs_merge_template(&a, NULL, 2), CKR_ARGUMENTS_BAD, "NULL template with a count");
    is_rv(tess_attrs_merge_template(&a, NULL, 0), CKR_OK, "NULL template with count 0 is empty");

    tess_attrs_free(&a);
}

static void test_match(void)
{
    struct tess_attrs a = { 0 };
    CK_ULONG cls = CKO_CERTIFICATE, other = CKO_DATA;

    tess_attrs_set_ulong(&a, CKA_CLASS, cls);
    tess_attrs_set(&a, CKA_LABEL, "abc", 3);
    tess_attrs_set(&a, CKA_ID, NULL, 0);

    ok(tess_attrs_match(&a, NULL, 0), "empty template matches anything");
    struct tess_attrs none = { 0 };
    ok(tess_attrs_match(&none, NULL, 0), "empty template matches an empty set");

    CK_ATTRIBUTE t1[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, "abc", 3 } };
    ok(tess_attrs_match(&a, t1, 2), "equal values and lengths match");
    CK_ATTRIBUTE t2[] = { { CKA_CLASS, &other, sizeof(other) } };
    ok(!tess_attrs_match(&a, t2, 1), "different value of the same length does not match");
    /* A prefix of the stored value has the same leading bytes: length must decide. */
    CK_ATTRIBUTE t3[] = { { CKA_LABEL, "ab", 2 } };
    ok(!tess_attrs_match(&a, t3, 1), "shorter value with the same prefix does not match");
    CK_ATTRIBUTE t4[] = { { CKA_LABEL, "abcd", 4 } };
    ok(!tess_attrs_match(&a, t4, 1), "longer value with the same prefix does not match");
    CK_ATTRIBUTE t5[] = { { CKA_SUBJECT, "abc", 3 } };
    ok(!tess_attrs_match(&a, t5, 1), "attribute the set lacks does not match");
    CK_ATTRIBUTE t6[] = { { CKA_ID, NULL, 0 } };
    ok(tess_attrs_match(&a, t6, 1), "zero-length value matches a zero-length attribute");
    CK_ATTRIBUTE t7[] = { { CKA_LABEL, NULL, 0 } };
    ok(!tess_attrs_match(&a, t7, 1), "zero-length value does not match a non-empty attribute");
    CK_ATTRIBUTE t8[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, "abX", 3 } };
    ok(!tess_attrs_match(&a, t8, 2), "one mismatching attribute fails the whole template");

    tess_attrs_free(&a);
}

static void test_encode_decode(void)
{
    struct tess_attrs a = { 0 }, b = { 0 };
    uint8_t *buf = NULL;
    size_t len = 0;
    uint8_t big[300];

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31 + 7);
    tess_attrs_set_ulong(&a, CKA_CLASS, CKO_PUBLIC_KEY);
    tess_attrs_set_bool(&a, CKA_TOKEN, true);
    tess_attrs_set(&a, CKA_ID, NULL, 0);
    tess_attrs_set(&a, CKA_MODULUS, big, sizeof(big));
    tess_attrs_set(&a, CKA_VENDOR_DEFINED | 0x1234, "v", 1);

    is_rv(tess_attrs_encode(&a, &buf, &len), CKR_OK, "encode");
    size_t want = 5 * 12 + sizeof(CK_ULONG) + 1 + 0 + sizeof(big) + 1;
    ok(len == want, "encoded length is 12 bytes of header per attribute plus values (%zu, want %zu)", len, want);
    /* The first record is CKA_CLASS (type 0) as big-endian u64 then u32 length. */
    ok(len >= 12 && !memcmp(buf, "\0\0\0\0\0\0\0\0", 8) && buf[8] == 0 && buf[9] == 0 && buf[10] == 0 &&
       buf[11] == sizeof(CK_ULONG), "first header is type 0, length sizeof(CK_ULONG), big-endian");

    is_rv(tess_attrs_decode(&b, buf, len), CKR_OK, "decode");
    ok(b.n == a.n, "decoded count equals the original (%zu vs %zu)", b.n, a.n);
    int same = 1;
    for (size_t i = 0; i < a.n; i++)
        if (!has(&b, a.v[i].type, a.v[i].pValue, a.v[i].ulValueLen))
            same = 0;
    ok(same, "every attribute round-trips with its value and length");
    ok(tess_attrs_get(&b, CKA_ID) && tess_attrs_get(&b, CKA_ID)->ulValueLen == 0,
       "zero-length value survives the round trip");
    ok(tess_attrs_get(&b, CKA_VENDOR_DEFINED | 0x1234) != NULL, "vendor type (high bit set) survives");

    /* Every proper prefix that cuts a record short must be refused. Prefixes
     * that end exactly on a record boundary are valid shorter sets. */
    int refused = 1;
    size_t boundaries[6], nb = 0, off = 0;
    boundaries[nb++] = 0;
    for (size_t i = 0; i < a.n; i++) {
        off += 12 + a.v[i].ulValueLen;
        boundaries[nb++] = off;
    }
    for (size_t cut = 1; cut < len; cut++) {
        struct tess_attrs t = { 0 };
        int boundary = 0;
        for (size_t k = 0; k < nb; k++)
            boundary |= boundaries[k] == cut;
        /* Copy into an exact-size heap buffer so a read past the end is caught by ASan/valgrind. */
        uint8_t *part = malloc(cut);
        memcpy(part, buf, cut);
        CK_RV rv = tess_attrs_decode(&t, part, cut);
        if (boundary ? rv != CKR_OK : rv == CKR_OK)
            refused = 0;
        free(part);
        tess_attrs_free(&t);
    }
    ok(refused, "every truncation mid-record is an error; record boundaries decode");

    /* A header claiming more value than is left. */
    uint8_t lying[12 + 3] = { 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c' };
    struct tess_attrs t = { 0 };
    ok(tess_attrs_decode(&t, lying, sizeof(lying)) != CKR_OK, "length 0xffffffff with 3 bytes left is refused");
    tess_attrs_free(&t);

    is_rv(tess_attrs_decode(&t, NULL, 0), CKR_OK, "empty input decodes to an empty set");
    ok(t.n == 0, "empty input gives no attributes");

    struct tess_attrs empty = { 0 };
    uint8_t *ebuf = NULL;
    size_t elen = 99;
    is_rv(tess_attrs_encode(&empty, &ebuf, &elen), CKR_OK, "encode an empty set");
    ok(ebuf != NULL && elen == 0, "empty set encodes to zero bytes");
    free(ebuf);

    free(buf);
    tess_attrs_free(&a);
    tess_attrs_free(&b);
}

static void test_copy(void)
{
    struct tess_attrs src = { 0 }, dst = { 0 };
    tess_attrs_set(&src, CKA_LABEL, "src", 3);
    tess_attrs_set_bool(&src, CKA_PRIVATE, true);
    tess_attrs_set(&src, CKA_ID, NULL, 0);
    tess_attrs_set(&dst, CKA_LABEL, "dst", 3);
    tess_attrs_set(&dst, CKA_SUBJECT, "keep", 4);

    is_rv(tess_attrs_copy(&dst, &src), CKR_OK, "copy");
    ok(has(&dst, CKA_LABEL, "src", 3), "copy overrides a shared attribute");
    ok(has(&dst, CKA_SUBJECT, "keep", 4), "copy keeps attributes only dst had");
    ok(tess_attrs_get_bool(&dst, CKA_PRIVATE, false) && has(&dst, CKA_ID, NULL, 0), "copy adds src's others");
    ok(dst.n == 4, "dst has the union (n=%zu)", dst.n);
    ok(tess_attrs_get(&dst, CKA_LABEL)->pValue != tess_attrs_get(&src, CKA_LABEL)->pValue,
       "copy is deep: values are not shared");
    tess_attrs_free(&src);
    ok(has(&dst, CKA_LABEL, "src", 3), "dst still readable after src is freed");
    tess_attrs_free(&dst);
}

static void test_type_tables(void)
{
    ok(tess_attr_is_bool(CKA_SENSITIVE) && tess_attr_is_bool(CKA_ALWAYS_AUTHENTICATE), "bool table");
    ok(!tess_attr_is_bool(CKA_LABEL) && !tess_attr_is_bool(CKA_CLASS), "non-bools are not in the bool table");
    ok(tess_attr_is_ulong(CKA_CLASS) && tess_attr_is_ulong(CKA_MODULUS_BITS), "ulong table");
    ok(!tess_attr_is_ulong(CKA_TOKEN) && !tess_attr_is_ulong(CKA_MODULUS), "non-ulongs are not in the ulong table");
}

int main(void)
{
    plan_lazy();
    test_set_get_replace_remove();
    test_growth();
    test_typed_getters();
    test_merge_template();
    test_match();
    test_encode_decode();
    test_copy();
    test_type_tables();
    return done_testing();
}
