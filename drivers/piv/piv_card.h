/* Internal state of the PIV driver, shared by its files. */
#ifndef TESSERA_PIV_CARD_H
#define TESSERA_PIV_CARD_H

#include <stdbool.h>
#include <stdint.h>

#include "../driver.h"
#include "piv.h"

/* One card in one reader (the token's drv). */
struct piv_token {
    char reader[256];
    struct channel ch;
    char serial[17];
    uint8_t *pin, *puk;          /* cached while logged in (locked memory) */
    size_t pin_len, puk_len;
    bool pin_verified;
};

/* A private key's reference on the card (an object's drv). */
struct piv_key {
    uint8_t key_ref;
    uint8_t alg;                 /* PIV_ALG_RSA2048, PIV_ALG_ECC256 ... */
};

/* piv_objects.c: the PKCS#11 objects of one slot of the card. */
CK_RV piv_objects_for_cert(struct tess_token *tok, const struct piv_slot_info *slot, const uint8_t *der,
                           size_t len);
CK_RV piv_objects_for_pubkey(struct tess_token *tok, const struct piv_slot_info *slot,
                             const struct tess_attrs *pub);
const struct piv_slot_info *piv_slot_by_ref(uint8_t key_ref);
const struct piv_slot_info *piv_slot_by_id(const uint8_t *id, size_t len);

#endif
