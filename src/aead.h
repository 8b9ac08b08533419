/* Authenticated encryption for what Tessera keeps outside a TPM or card
 * chip: AES-256-GCM with a random 96-bit nonce, laid out as
 * nonce | ciphertext | tag, so one buffer carries everything to open it. */
#ifndef TESSERA_AEAD_H
#define TESSERA_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define TESS_AEAD_KEY_LEN 32
#define TESS_AEAD_NONCE_LEN 12
#define TESS_AEAD_TAG_LEN 16
#define TESS_AEAD_OVERHEAD (TESS_AEAD_NONCE_LEN + TESS_AEAD_TAG_LEN)

/* out receives len + TESS_AEAD_OVERHEAD bytes. 0 on success. */
int tess_aead_seal(const uint8_t key[TESS_AEAD_KEY_LEN], const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t len, uint8_t *out);
/* in is a sealed buffer of len bytes; out receives len - TESS_AEAD_OVERHEAD
 * bytes. -1 when the key or the associated data is not the one sealed
 * with, or the buffer was changed (out is then wiped). */
int tess_aead_open(const uint8_t key[TESS_AEAD_KEY_LEN], const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t len, uint8_t *out);

#endif
