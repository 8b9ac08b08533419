/* A growable byte buffer for card responses (wiped when freed). */
#ifndef TESSERA_PIV_BUF_H
#define TESSERA_PIV_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *p;
    size_t len, cap;
};
void buf_free(struct buf *b);
/* Returns 0, or -1 when out of memory or past 64 KiB. */
int buf_append(struct buf *b, const uint8_t *data, size_t len);

#endif
