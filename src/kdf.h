/* Key derivation for card administration keys: NIST SP 800-108 in counter
 * mode (OpenSSL's EVP_KDF "KBKDF"), and the diversification of a master key
 * into one admin key per card. */
#ifndef TESSERA_KDF_H
#define TESSERA_KDF_H

#include <stddef.h>
#include <stdint.h>

#include "../pkcs11/pk11.h"

enum tess_prf { TESS_PRF_CMAC_AES128, TESS_PRF_CMAC_AES256, TESS_PRF_HMAC_SHA256 };
enum tess_key_alg { TESS_KEY_3DES, TESS_KEY_AES128, TESS_KEY_AES192, TESS_KEY_AES256 };

/* SP 800-108 counter mode, 32-bit counter before the fixed input.
 * Structured form (label, 0x00, context, [L]32) when label is given;
 * with label NULL, fixed is the whole fixed input (as in NIST's vectors). */
CK_RV tess_kbkdf(enum tess_prf prf, const uint8_t *key, size_t key_len, const uint8_t *label, size_t label_len,
                 const uint8_t *fixed, size_t fixed_len, uint8_t *out, size_t out_len);

/* The same counter mode, structured form, with the PRF computed elsewhere
 * (inside an HSM, where the key stays): prf(ctx, in, len, out) gives one
 * PRF block of block_len bytes (16 for CMAC, 32 for HMAC-SHA-256). The
 * fixed input of block i is [i]32 | label | 0x00 | context | [L]32, as in
 * tess_kbkdf, so both give the same bytes for the same key. */
typedef CK_RV (*tess_prf_fn)(void *ctx, const uint8_t *in, size_t len, uint8_t *out);
CK_RV tess_kbkdf_external(tess_prf_fn prf, void *ctx, size_t block_len, const uint8_t *label, size_t label_len,
                          const uint8_t *context, size_t context_len, uint8_t *out, size_t out_len);

/* Length in bytes of a key of this algorithm (24 for 3DES). */
size_t tess_key_alg_len(enum tess_key_alg alg);
int tess_key_alg_parse(const char *name, enum tess_key_alg *alg);
int tess_prf_parse(const char *name, enum tess_prf *prf);
/* The names the parsers take. */
const char *tess_prf_name(enum tess_prf prf);
const char *tess_key_alg_name(enum tess_key_alg alg);

/* A card's admin key: KBKDF(master, label "Tessera card admin key v1",
 * context = the card's serial), the length of alg; 3DES keys get odd parity. */
CK_RV tess_admin_key_diversify(enum tess_prf prf, const uint8_t *master, size_t master_len, const char *serial,
                               enum tess_key_alg alg, uint8_t *out, size_t *out_len);

/* Challenge/response with an admin key: a challenge is one cipher block (8
 * bytes for 3DES, as the Windows minidriver's, 16 for AES) and the response
 * is that block encrypted under the key (ECB; the same as GIDS's CBC with a
 * zero IV for one block). */
size_t tess_admin_block_len(enum tess_key_alg alg);
CK_RV tess_admin_response(enum tess_key_alg alg, const uint8_t *key, size_t key_len, const uint8_t *challenge,
                          size_t len, uint8_t *response);
/* Key check value: the first 3 bytes of a zero block encrypted under key. */
CK_RV tess_admin_kcv(enum tess_key_alg alg, const uint8_t *key, size_t key_len, uint8_t kcv[3]);
/* The well-known default admin key (Windows tpmvscmgr's): 0102..08 x 3. */
extern const uint8_t tess_admin_default_key[24];

/* tess_admin_key_diversify with the master key's PRF done elsewhere. */
CK_RV tess_admin_key_diversify_external(tess_prf_fn prf, void *ctx, size_t block_len, const char *serial,
                                        enum tess_key_alg alg, uint8_t *out, size_t *out_len);

/* Set each byte's lowest bit so it has odd parity (DES key convention). */
void tess_des_fix_parity(uint8_t *key, size_t len);

#endif
