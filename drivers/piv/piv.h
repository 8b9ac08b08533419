/* The PIV card application (NIST SP 800-73-4 part 2): the commands Tessera
 * sends, on top of the channel. Knows PIV; knows nothing of PKCS#11 objects. */
#ifndef TESSERA_PIV_H
#define TESSERA_PIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel.h"

/* Key references and their certificate objects. */
#define PIV_KEY_AUTH 0x9a
#define PIV_KEY_SIGN 0x9c
#define PIV_KEY_KEYMGMT 0x9d
#define PIV_KEY_CARDAUTH 0x9e
#define PIV_KEY_MGMT 0x9b          /* the card management key */
#define PIV_PIN 0x80
#define PIV_PUK 0x81

/* Algorithm identifiers (SP 800-78-4 table 6-2) */
#define PIV_ALG_3DES 0x03
#define PIV_ALG_RSA1024 0x06
#define PIV_ALG_RSA2048 0x07
#define PIV_ALG_AES128 0x08
#define PIV_ALG_AES192 0x0a
#define PIV_ALG_AES256 0x0c
#define PIV_ALG_ECC256 0x11
#define PIV_ALG_ECC384 0x14

/* Data object tags */
#define PIV_OBJ_CHUID 0x5fc102
#define PIV_OBJ_PRINTED 0x5fc109     /* printed information: read with the PIN only */

struct piv_slot_info {
    uint8_t key_ref;            /* 9A, 9C, 9D, 9E, 82..95 */
    uint32_t cert_tag;          /* 5FC105 ... */
    uint8_t id;                 /* CKA_ID: 01 9A, 02 9C, 03 9D, 04 9E, 05.. retired (as OpenSC) */
    const char *name;           /* "PIV Authentication" ... */
};
extern const struct piv_slot_info piv_slots[];
extern const size_t piv_nslots;

CK_RV piv_select(struct channel *ch);
/* The content of data object TAG (inside its 53 wrapper). */
CK_RV piv_get_data(struct channel *ch, uint32_t tag, struct buf *out);
/* GET DATA in two steps, for a cache: the first chunk of the response (all
 * of it for a short object; *more when the card holds the rest), then the
 * rest. The raw response (53 wrapper included) accumulates in resp. */
CK_RV piv_get_data_head(struct channel *ch, uint32_t tag, struct buf *resp, bool *more);
CK_RV piv_get_data_rest(struct channel *ch, struct buf *resp);
CK_RV piv_put_data(struct channel *ch, uint32_t tag, const uint8_t *data, size_t len);

/* PIN (80) or PUK (81). tries: left after a failure, or the status. */
CK_RV piv_verify(struct channel *ch, const uint8_t *pin, size_t len, int *tries);
CK_RV piv_pin_status(struct channel *ch, int *tries);   /* -1 unknown; 0 blocked */
CK_RV piv_change_reference(struct channel *ch, uint8_t ref, const uint8_t *old_pin, size_t old_len,
                           const uint8_t *new_pin, size_t new_len, int *tries);
CK_RV piv_reset_retry_counter(struct channel *ch, const uint8_t *puk, size_t puk_len, const uint8_t *new_pin,
                              size_t new_len, int *tries);

/* Mutual authentication with the 9B management key (3DES or AES). */
CK_RV piv_mgmt_auth(struct channel *ch, uint8_t alg, const uint8_t *key, size_t key_len);
/* Replace the 9B management key (the YubiKey extension, INS FF; needs the
 * current one proven). */
CK_RV piv_set_mgmt_key(struct channel *ch, uint8_t alg, const uint8_t *key, size_t key_len);
/* The YubiKey's RESET (INS FB): back to factory state, allowed once PIN and
 * PUK are both blocked; and SET PIN RETRIES (INS FA), which needs the 9B
 * key and the PIN and sets PIN and PUK back to their defaults. */
CK_RV piv_yk_reset(struct channel *ch);
CK_RV piv_yk_set_pin_retries(struct channel *ch, uint8_t pin_tries, uint8_t puk_tries);
/* Generate a key on the card: the 7F49 public key template's contents. */
CK_RV piv_generate(struct channel *ch, uint8_t key_ref, uint8_t alg, struct buf *pub);
/* The YubiKey metadata of a key or PIN reference (INS F7): 01 algorithm,
 * 05 default value ... CKR_FUNCTION_NOT_SUPPORTED on a card without it. */
CK_RV piv_metadata(struct channel *ch, uint8_t key_ref, struct buf *out);
/* Put a key from outside into a slot (the YubiKey extension, INS FE; needs
 * the management key). parts: RSA 01 p, 02 q, 03 dp, 04 dq, 05 qinv, each
 * half the modulus long; EC 06 the private scalar, the field long. */
CK_RV piv_import_key(struct channel *ch, uint8_t key_ref, uint8_t alg, const uint8_t *parts, size_t len);
/* GENERAL AUTHENTICATE with a private key: 81 challenge (sign, decrypt) or
 * 85 exponentiation (ECDH); out is the 82 response. */
CK_RV piv_private_op(struct channel *ch, uint8_t alg, uint8_t key_ref, uint8_t what, const uint8_t *in, size_t len,
                     struct buf *out);

#endif
