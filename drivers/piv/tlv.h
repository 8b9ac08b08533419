/* BER-TLV as PIV cards speak it (SP 800-73-4 part 1, appendix; ISO 7816-4):
 * tags of 1 to 3 bytes, definite lengths of 1 to 4 bytes. Every length is
 * checked against the buffer: card data is untrusted input (and fuzzed, see
 * tests/fuzz/fuzz-piv-parse.c). */
#ifndef TESSERA_PIV_TLV_H
#define TESSERA_PIV_TLV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tlv {
    uint32_t tag;
    const uint8_t *value;
    size_t len;
};

/* Read one TLV at *p (advancing it) from a buffer ending at end.
 * Returns 0, or -1 on malformed or truncated input. */
int tlv_next(const uint8_t **p, const uint8_t *end, struct tlv *out);
/* Find the first TLV with this tag among the TLVs of buf (one level). */
bool tlv_find(const uint8_t *buf, size_t len, uint32_t tag, struct tlv *out);
/* Encode a tag alone (1 to 3 bytes) into out; returns its size. */
size_t tlv_tag(uint8_t *out, uint32_t tag);
/* Encode a tag and length header into out (at most 7 bytes); returns its size. */
size_t tlv_header(uint8_t *out, uint32_t tag, size_t len);

#endif
