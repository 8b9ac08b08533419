/* Small helpers used everywhere: secret wiping, constant-time compare,
 * PKCS#11 blank-padded text fields, hex. */
#ifndef TESSERA_UTIL_H
#define TESSERA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The one wipe function: every PIN, key and derived secret goes through it. */
void tess_wipe(void *p, size_t len);
/* Wipe then free; NULL is fine. */
void tess_free_secret(void *p, size_t len);
/* Constant-time equality of two equal-length buffers. */
bool tess_ct_equal(const void *a, const void *b, size_t len);

/* Copy a NUL-terminated string into a fixed PKCS#11 text field, padded with
 * blanks (never NULs) as the standard requires; longer input is truncated. */
void tess_pad_copy(unsigned char *field, size_t field_len, const char *src);
/* The reverse: trailing blanks removed, result NUL-terminated in out[out_len]. */
void tess_unpad_copy(char *out, size_t out_len, const unsigned char *field, size_t field_len);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void tess_hex(char *out, const uint8_t *in, size_t len);

#define TESS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
