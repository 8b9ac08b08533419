/* Byte buffers and BER-TLV helpers (see tlv.h). */
#include "tlv.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

static int vbuf_reserve(struct vbuf *b, size_t extra)
{
    int rc = -1;
    size_t want, cap;
    uint8_t *n;

    if (extra > SIZE_MAX / 2 - b->len)
        goto out;
    want = b->len + extra;
    if (want <= b->cap) {
        rc = 0;
        goto out;
    }
    cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap *= 2;
    /* Not realloc: the old block may hold secrets and must be wiped. */
    n = malloc(cap);
    if (!n)
        goto out;
    if (b->data) {
        memcpy(n, b->data, b->len);
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = n;
    b->cap = cap;
    rc = 0;
out:
    return rc;
}

int vbuf_put(struct vbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (vbuf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int vbuf_put_byte(struct vbuf *b, uint8_t c)
{
    return vbuf_put(b, &c, 1);
}

int vbuf_put_tag(struct vbuf *b, unsigned tag)
{
    uint8_t t[3];
    size_t n = 0;

    if (tag > 0xFFFF)
        t[n++] = (uint8_t)(tag >> 16);
    if (tag > 0xFF)
        t[n++] = (uint8_t)(tag >> 8);
    t[n++] = (uint8_t)tag;
    return vbuf_put(b, t, n);
}

size_t tlv_len_size(size_t len)
{
    if (len < 0x80)
        return 1;
    if (len <= 0xFF)
        return 2;
    if (len <= 0xFFFF)
        return 3;
    return 4;
}

int vbuf_put_len(struct vbuf *b, size_t len)
{
    uint8_t l[4];
    size_t n = 0;

    if (len > 0xFFFFFF)
        return -1;
    if (len < 0x80) {
        l[n++] = (uint8_t)len;
    } else if (len <= 0xFF) {
        l[n++] = 0x81;
        l[n++] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        l[n++] = 0x82;
        l[n++] = (uint8_t)(len >> 8);
        l[n++] = (uint8_t)len;
    } else {
        l[n++] = 0x83;
        l[n++] = (uint8_t)(len >> 16);
        l[n++] = (uint8_t)(len >> 8);
        l[n++] = (uint8_t)len;
    }
    return vbuf_put(b, l, n);
}

int vbuf_put_tlv(struct vbuf *b, unsigned tag, const void *v, size_t n)
{
    if (vbuf_put_tag(b, tag) < 0 || vbuf_put_len(b, n) < 0 || vbuf_put(b, v, n) < 0)
        return -1;
    return 0;
}

void vbuf_reset(struct vbuf *b)
{
    if (b->data)
        OPENSSL_cleanse(b->data, b->cap);
    b->len = 0;
}

void vbuf_free(struct vbuf *b)
{
    vbuf_reset(b);
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}

int tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *t)
{
    const uint8_t *q = *p;
    unsigned tag;
    size_t len, i, nlen;

    /* ISO 7816-4 allows 00 and FF bytes before, between and after TLVs. */
    while (q < end && (*q == 0x00 || *q == 0xFF))
        q++;
    if (q >= end) {
        *p = q;
        return 0;
    }
    tag = *q++;
    if ((tag & 0x1F) == 0x1F) {
        /* Subsequent tag bytes: at most two, the last without bit 8. */
        for (i = 0; i < 2; i++) {
            if (q >= end)
                return -1;
            tag = (tag << 8) | *q;
            if (!(*q++ & 0x80))
                break;
        }
        if (q[-1] & 0x80)
            return -1;
    }
    if (q >= end)
        return -1;
    if (*q < 0x80) {
        len = *q++;
    } else {
        nlen = *q++ & 0x7F;
        if (nlen == 0 || nlen > 3 || (size_t)(end - q) < nlen)
            return -1;
        for (len = 0, i = 0; i < nlen; i++)
            len = (len << 8) | *q++;
    }
    if ((size_t)(end - q) < len)
        return -1;
    t->tag = tag;
    t->val = q;
    t->len = len;
    *p = q + len;
    return 1;
}

int tlv_find(const uint8_t *p, size_t n, unsigned tag, struct tlv *t)
{
    const uint8_t *end = p + n;
    int r;

    while ((r = tlv_next(&p, end, t)) == 1)
        if (t->tag == tag)
            return 1;
    return r;
}
