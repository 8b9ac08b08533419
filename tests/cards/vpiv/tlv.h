/* Byte buffers and BER-TLV (ISO 7816-4 / SP 800-73-4 "simple" TLV) helpers.
 *
 * Every response the card builds goes through a vbuf; buffers may hold
 * secrets (PINs, key blocks, private-key results), so they are wiped when
 * freed or reset.
 */
#ifndef VPIV_TLV_H
#define VPIV_TLV_H

#include <stddef.h>
#include <stdint.h>

struct vbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* All return 0 on success, -1 when memory runs out. */
int vbuf_put(struct vbuf *b, const void *p, size_t n);
int vbuf_put_byte(struct vbuf *b, uint8_t c);
/* A BER tag of 1 to 3 bytes (e.g. 0x7C, 0x5F2F, 0x7F49). */
int vbuf_put_tag(struct vbuf *b, unsigned tag);
/* A BER length: 1 byte below 0x80, then 81 xx, 82 xx xx, 83 xx xx xx. */
int vbuf_put_len(struct vbuf *b, size_t len);
int vbuf_put_tlv(struct vbuf *b, unsigned tag, const void *v, size_t n);
/* Length of a BER length field for len. */
size_t tlv_len_size(size_t len);
/* Wipe the contents, keep the allocation. */
void vbuf_reset(struct vbuf *b);
/* Wipe and release. */
void vbuf_free(struct vbuf *b);

struct tlv {
    unsigned tag;
    const uint8_t *val;
    size_t len;
};

/* Reads the TLV at *p (not past end) and advances *p past it.
 * Returns 1 when one was read, 0 at the end (or on 00/FF padding),
 * -1 on malformed input. */
int tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *t);
/* Finds tag among the sibling TLVs in [p, p+n). Returns 1 found, 0 absent,
 * -1 malformed. */
int tlv_find(const uint8_t *p, size_t n, unsigned tag, struct tlv *t);

#endif
