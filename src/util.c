#include "config.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void tess_wipe(void *p, size_t len)
{
    if (p && len)
        OPENSSL_cleanse(p, len);
}

void tess_free_secret(void *p, size_t len)
{
    if (!p)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

bool tess_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void tess_pad_copy(unsigned char *field, size_t field_len, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n > field_len)
        n = field_len;
    memset(field, ' ', field_len);
    if (n)
        memcpy(field, src, n);
}

void tess_unpad_copy(char *out, size_t out_len, const unsigned char *field, size_t field_len)
{
    size_t n = field_len < out_len - 1 ? field_len : out_len - 1;
    memcpy(out, field, n);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
        n--;
    out[n] = '\0';
}

void tess_hex(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}
