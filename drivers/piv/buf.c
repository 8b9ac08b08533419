/* A growable byte buffer for card responses; wiped when freed, since a
 * response may carry a decrypted key or a shared secret. */
#include "config.h"
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "../../src/util.h"

/* No PIV object comes near this; a card that says otherwise is broken. */
#define MAX_RESPONSE (64 * 1024)

void buf_free(struct buf *b)
{
    tess_free_secret(b->p, b->cap);
    memset(b, 0, sizeof(*b));
}

int buf_append(struct buf *b, const uint8_t *data, size_t len)
{
    if (b->len + len > MAX_RESPONSE)
        return -1;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = malloc(cap);
        if (!p)
            return -1;
        if (b->len)
            memcpy(p, b->p, b->len);
        tess_free_secret(b->p, b->cap);
        b->p = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

