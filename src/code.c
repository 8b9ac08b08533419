#include "config.h"
#include "code.h"

#include <ctype.h>
#include <string.h>

#include "util.h"

static const char digits[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/* Crockford's check symbols: the 32 digits and five more (value mod 37). */
static const char checks[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U";

static size_t ndigits(size_t len)
{
    return (len * 8 + 4) / 5;
}

static int value_of(char c)
{
    c = (char)toupper((unsigned char)c);
    if (c == 'O')
        c = '0';
    if (c == 'I' || c == 'L')
        c = '1';
    const char *p = strchr(digits, c);
    return p && c ? (int)(p - digits) : -1;
}

/* The code's digits as one big number, mod 37 (Crockford's check). */
static int check_of(const uint8_t *d, size_t n)
{
    int r = 0;
    for (size_t i = 0; i < n; i++)
        r = (r * 32 + d[i]) % 37;
    return r;
}

int tess_code_format(const uint8_t *in, size_t len, char *out, size_t outlen)
{
    uint8_t d[TESS_CODE_MAX];
    size_t n = ndigits(len), o = 0;
    if (len > 32 || outlen < n + n / 4 + 3)
        return -1;
    /* Big-endian bits, 5 at a time; the last digit is padded with zeros. */
    for (size_t i = 0; i < n; i++) {
        size_t bit = i * 5;
        unsigned v = 0;
        for (int b = 0; b < 5; b++, bit++)
            v = (v << 1) | (bit < len * 8 ? (in[bit / 8] >> (7 - bit % 8)) & 1 : 0);
        d[i] = (uint8_t)v;
    }
    for (size_t i = 0; i < n; i++) {
        if (i && i % 4 == 0)
            out[o++] = '-';
        out[o++] = digits[d[i]];
    }
    /* The check symbol ends the last group, or starts one if it is full. */
    if (n % 4 == 0)
        out[o++] = '-';
    out[o++] = checks[check_of(d, n)];
    out[o] = '\0';
    tess_wipe(d, sizeof(d));
    return 0;
}

enum tess_code_result tess_code_parse(const char *text, uint8_t *out, size_t len)
{
    uint8_t d[TESS_CODE_MAX + 1];
    size_t n = 0, want = ndigits(len);
    char check = 0;
    enum tess_code_result res = TESS_CODE_BAD;

    if (len > 32)
        return TESS_CODE_BAD;
    for (const char *p = text; *p; p++) {
        if (*p == '-' || *p == ' ' || *p == '.' || *p == '_')
            continue;
        if (n == want) {
            if (check)
                goto out;   /* too long */
            check = (char)toupper((unsigned char)*p);
            continue;
        }
        int v = value_of(*p);
        if (v < 0)
            goto out;
        d[n++] = (uint8_t)v;
    }
    if (n != want || !check)
        goto out;
    if (checks[check_of(d, n)] != check && !(check == 'O' && checks[check_of(d, n)] == '0') &&
        !((check == 'I' || check == 'L') && checks[check_of(d, n)] == '1')) {
        res = TESS_CODE_MISTYPED;
        goto out;
    }
    memset(out, 0, len);
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 5; b++) {
            size_t bit = i * 5 + (size_t)b;
            if (bit < len * 8 && (d[i] >> (4 - b)) & 1)
                out[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
        }
    }
    res = TESS_CODE_OK;
out:
    tess_wipe(d, sizeof(d));
    return res;
}
