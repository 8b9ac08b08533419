/* Codes a person reads aloud over the phone: bytes as Crockford base32
 * (no I, L, O, U), in groups of four, with a check symbol so a mistyped
 * code is told apart from a wrong one. Reading back is case- and
 * separator-insensitive, and takes O for 0 and I or L for 1. */
#ifndef TESSERA_CODE_H
#define TESSERA_CODE_H

#include <stddef.h>
#include <stdint.h>

#define TESS_CODE_MAX 128

/* Format len bytes (at most 32) as "XXXX-XXXX-...-C" into out. */
int tess_code_format(const uint8_t *in, size_t len, char *out, size_t outlen);

enum tess_code_result { TESS_CODE_OK = 0, TESS_CODE_MISTYPED, TESS_CODE_BAD };
/* Read a code back into exactly len bytes. MISTYPED: the check symbol does
 * not match (a typo); BAD: not a code of that length at all. */
enum tess_code_result tess_code_parse(const char *text, uint8_t *out, size_t len);

#endif
