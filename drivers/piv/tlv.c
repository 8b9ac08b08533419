#include "config.h"
#include "tlv.h"

int tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *out)
{
    const uint8_t *q = *p;
    uint32_t tag;
    size_t len;

    if (q >= end)
        return -1;
    tag = *q++;
    if ((tag & 0x1f) == 0x1f) {      /* multi-byte tag: continues while b8 is set */
        int n = 0;
        do {
            if (q >= end || ++n > 2)
                return -1;
            tag = (tag << 8) | *q;
        } while (*q++ & 0x80);
    }
    if (q >= end)
        return -1;
    if (*q < 0x80) {
        len = *q++;
    } else {
        int n = *q++ & 0x7f;
        if (n == 0 || n > 4 || end - q < n)
            return -1;   /* indefinite or absurd lengths are not PIV */
        len = 0;
        while (n--)
            len = (len << 8) | *q++;
    }
    if ((size_t)(end - q) < len)
        return -1;
    out->tag = tag;
    out->value = q;
    out->len = len;
    *p = q + len;
    return 0;
}

bool tlv_find(const uint8_t *buf, size_t len, uint32_t tag, struct tlv *out)
{
    const uint8_t *p = buf, *end = buf + len;
    struct tlv t;
    while (p < end && tlv_next(&p, end, &t) == 0) {
        if (t.tag == tag) {
            *out = t;
            return true;
        }
    }
    return false;
}

size_t tlv_tag(uint8_t *out, uint32_t tag)
{
    size_t n = 0;
    if (tag > 0xffff)
        out[n++] = (uint8_t)(tag >> 16);
    if (tag > 0xff)
        out[n++] = (uint8_t)(tag >> 8);
    out[n++] = (uint8_t)tag;
    return n;
}

size_t tlv_header(uint8_t *out, uint32_t tag, size_t len)
{
    size_t n = tlv_tag(out, tag);
    if (len < 0x80) {
        out[n++] = (uint8_t)len;
    } else if (len <= 0xff) {
        out[n++] = 0x81;
        out[n++] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[n++] = 0x82;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x83;
        out[n++] = (uint8_t)(len >> 16);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    }
    return n;
}
