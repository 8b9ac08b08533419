/* The card's cryptography, on OpenSSL 3 EVP interfaces only. */
#ifndef VPIV_CRYPTO_H
#define VPIV_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "tlv.h"

/* SP 800-78-4 algorithm identifiers (and the YubiKey's use of them). */
#define ALG_3DES_OLD 0x00 /* "3 key TDEA", SP 800-78 deprecated alias of 03 */
#define ALG_3DES 0x03
#define ALG_RSA1024 0x06
#define ALG_RSA2048 0x07
#define ALG_AES128 0x08
#define ALG_AES192 0x0A
#define ALG_AES256 0x0C
#define ALG_ECCP256 0x11
#define ALG_ECCP384 0x14

int vc_random(uint8_t *buf, size_t n);

/* Management (9B) key algorithms: key length and block size, 0 when alg
 * is not a symmetric algorithm the card supports. */
size_t vc_sym_keylen(uint8_t alg);
size_t vc_sym_block(uint8_t alg);
/* One or more blocks in ECB mode, no padding (SP 800-73-4 GENERAL
 * AUTHENTICATE with the card application administration key). */
int vc_sym_crypt(uint8_t alg, const uint8_t *key, const uint8_t *in, uint8_t *out,
                 size_t n, int encrypt);

int vc_is_rsa(uint8_t alg);
int vc_is_ec(uint8_t alg);
/* Generates a key for a PIV asymmetric algorithm id. */
EVP_PKEY *vc_generate(uint8_t alg);
/* The PIV algorithm id of a key, or -1 when the card cannot hold it. */
int vc_key_alg(EVP_PKEY *k);
/* Size of the RSA modulus or EC field in bytes. */
size_t vc_key_bytes(uint8_t alg);

/* RSA private-key operation without padding: the PIV card's only RSA
 * primitive (signature and key transport alike). in must be exactly the
 * modulus size and below the modulus. */
int vc_rsa_raw(EVP_PKEY *k, const uint8_t *in, size_t n, struct vbuf *out);
/* ECDSA over a digest the host computed; DER Ecdsa-Sig-Value out. */
int vc_ecdsa(EVP_PKEY *k, const uint8_t *dgst, size_t n, struct vbuf *out);
/* ECDH (cofactor = 1): the X coordinate of the shared point. */
int vc_ecdh(EVP_PKEY *k, const uint8_t *point, size_t n, struct vbuf *out);

/* Public key as the data objects of a 7F49 template (SP 800-73-4 part 2,
 * table 11): 81 modulus 82 exponent for RSA, 86 point for EC. */
int vc_pubkey_tlvs(EVP_PKEY *k, struct vbuf *out);

/* YubiKey IMPORT ASYMMETRIC KEY formats: RSA CRT parts (public exponent
 * 65537), or an EC private scalar. */
EVP_PKEY *vc_import_rsa(const uint8_t *p, size_t plen, const uint8_t *q, size_t qlen);
EVP_PKEY *vc_import_ec(uint8_t alg, const uint8_t *d, size_t dlen);

#endif
