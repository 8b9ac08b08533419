#include "config.h"
#include "piv_parse.h"

#include <string.h>

#include <zlib.h>

#include "../../src/log.h"
#include "../../src/mech.h"
#include "../../src/util.h"
#include "piv.h"

CK_RV piv_parse_data_object(const uint8_t *resp, size_t len, uint32_t tag, struct tlv *content)
{
    const uint8_t *p = resp;
    /* The object comes wrapped in 53 (or, for the discovery object, 7E). */
    if (tlv_next(&p, resp + len, content) != 0 || (content->tag != 0x53 && content->tag != tag)) {
        TESS_WARN("piv: data object %06X is malformed", tag);
        return CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

static CK_RV gunzip(const uint8_t *in, size_t len, struct buf *out)
{
    z_stream z = { 0 };
    uint8_t chunk[4096];
    CK_RV rv = CKR_OK;
    int zr;

    /* 16 + MAX_WBITS: a gzip wrapper, as CertInfo=01 means. */
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return CKR_HOST_MEMORY;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof(chunk);
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rv = CKR_DEVICE_ERROR;
            break;
        }
        if (buf_append(out, chunk, sizeof(chunk) - z.avail_out)) {
            rv = CKR_HOST_MEMORY;
            break;
        }
    } while (zr != Z_STREAM_END);
    inflateEnd(&z);
    return rv;
}

CK_RV piv_parse_cert(const uint8_t *obj, size_t len, struct buf *der)
{
    struct tlv cert, info;
    if (!tlv_find(obj, len, 0x70, &cert) || !cert.len)
        return CKR_OBJECT_HANDLE_INVALID;   /* an empty certificate object */
    /* 71 CertInfo: bit 0 set means the certificate is gzip-compressed. */
    if (tlv_find(obj, len, 0x71, &info) && info.len == 1 && (info.value[0] & 0x01))
        return gunzip(cert.value, cert.len, der);
    return buf_append(der, cert.value, cert.len) ? CKR_HOST_MEMORY : CKR_OK;
}

CK_RV piv_parse_auth_response(const uint8_t *resp, size_t len, uint32_t tag, struct tlv *el)
{
    struct tlv tmpl;
    const uint8_t *p = resp;
    if (tlv_next(&p, resp + len, &tmpl) != 0 || tmpl.tag != 0x7c || !tlv_find(tmpl.value, tmpl.len, tag, el)) {
        TESS_WARN("piv: malformed GENERAL AUTHENTICATE response");
        return CKR_DEVICE_ERROR;
    }
    return CKR_OK;
}

size_t piv_parse_retired_count(const uint8_t *obj, size_t len)
{
    struct tlv on_card;
    if (!tlv_find(obj, len, 0xc1, &on_card) || on_card.len != 1)
        return 0;
    return on_card.value[0] > 20 ? 20 : on_card.value[0];
}

bool piv_parse_atr_ext_len(const uint8_t *atr, size_t len)
{
    size_t i = 1, hist, end;
    uint8_t y;
    if (len < 2)
        return false;
    /* Skip the interface bytes: T0 and each TDi say which of TA..TD follow. */
    y = atr[1];
    hist = atr[1] & 0x0f;
    i = 2;
    for (;;) {
        bool td = y & 0x80;
        i += !!(y & 0x10) + !!(y & 0x20) + !!(y & 0x40);
        if (!td)
            break;
        if (i >= len)
            return false;
        y = atr[i++];
    }
    if (i + hist > len || hist < 1)
        return false;
    end = i + hist;
    /* Category 00: compact-TLV, the last 3 bytes a status; 80: compact-TLV. */
    if (atr[i] == 0x00)
        end -= 3;
    else if (atr[i] != 0x80)
        return false;
    for (i++; i < end;) {
        uint8_t tag = atr[i] >> 4, l = atr[i] & 0x0f;
        if (i + 1 + l > end)
            return false;
        if (tag == 0x7 && l >= 3)
            return atr[i + 3] & 0x40;
        i += 1 + l;
    }
    return false;
}

int piv_parse_guid(const uint8_t *obj, size_t len, uint8_t guid[8])
{
    struct tlv t;
    if (!tlv_find(obj, len, 0x34, &t) || t.len < 8)
        return -1;
    memcpy(guid, t.value, 8);
    return 0;
}

const uint8_t piv_p256_oid[10] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
const uint8_t piv_p384_oid[7] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

CK_RV piv_pub_from_7f49(uint8_t alg, const uint8_t *tmpl, size_t len, struct tess_attrs *out)
{
    struct tlv n, e, pt;
    CK_RV rv;
    if (alg == PIV_ALG_RSA2048 || alg == PIV_ALG_RSA1024) {
        if (!tlv_find(tmpl, len, 0x81, &n) || !tlv_find(tmpl, len, 0x82, &e))
            return CKR_DEVICE_ERROR;
        rv = tess_attrs_set_ulong(out, CKA_KEY_TYPE, CKK_RSA);
        if (rv == CKR_OK)
            rv = tess_attrs_set(out, CKA_MODULUS, n.value, n.len);
        if (rv == CKR_OK)
            rv = tess_attrs_set(out, CKA_PUBLIC_EXPONENT, e.value, e.len);
        if (rv == CKR_OK)
            rv = tess_attrs_set_ulong(out, CKA_MODULUS_BITS, n.len * 8);
        return rv;
    }
    if (!tlv_find(tmpl, len, 0x86, &pt) || pt.len > 1 + 2 * 66)
        return CKR_DEVICE_ERROR;
    rv = tess_attrs_set_ulong(out, CKA_KEY_TYPE, CKK_EC);
    if (rv == CKR_OK)
        rv = alg == PIV_ALG_ECC384 ? tess_attrs_set(out, CKA_EC_PARAMS, piv_p384_oid, sizeof(piv_p384_oid))
                                   : tess_attrs_set(out, CKA_EC_PARAMS, piv_p256_oid, sizeof(piv_p256_oid));
    if (rv == CKR_OK)
        rv = tess_ec_point_attr(out, pt.value, pt.len);
    return rv;
}

