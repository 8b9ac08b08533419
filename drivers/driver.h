/* The driver operations table: the only door between the core (PKCS#11
 * semantics) and a backend (TPM virtual card, PIV card ...). A driver knows its
 * card; the core knows PKCS#11; neither sees the other's insides.
 *
 * Calling rules (the core guarantees them):
 *  - every call is made with the module lock held, so a driver needs no lock
 *    of its own for state reached only through this table;
 *  - `tok->drv` is set by token_open and freed by token_free;
 *  - private-key primitives are called only after the core checked the
 *    session, the login state and the key's usage attributes; padding and
 *    hashing are the core's job, the driver does the raw private operation
 *    (ecdsa_sign gets exactly as many bytes as the curve's field).
 * A NULL entry means "this backend cannot": the core answers
 * CKR_FUNCTION_NOT_SUPPORTED or picks another path (e.g. rsa_raw for PKCS#1). */
#ifndef TESSERA_DRIVER_H
#define TESSERA_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "../src/kdf.h"
#include "../src/pin_policy.h"
#include "../src/token.h"

#define TESS_DRIVER_ABI 5

struct tess_settings;

/* One slot a driver reports at scan time. card_key names the card in the
 * slot (0: an empty or uninitialised slot); a slot whose card_key is unchanged
 * keeps its token, sessions and handles. */
struct tess_slot_report {
    CK_SLOT_ID slot_id;
    uint64_t card_key;
};

struct tess_keygen_spec {
    CK_KEY_TYPE key_type;        /* CKK_RSA or CKK_EC */
    CK_ULONG modulus_bits;       /* RSA */
    int curve_nid;               /* EC: NID_X9_62_prime256v1 or NID_secp384r1 */
    bool token;                  /* persist (CKA_TOKEN) */
};

/* What a card says about its administration (T_GetCardInfo). */
struct tess_admin_info {
    CK_ULONG card_type;          /* CKT_TESSERA_* */
    bool key_set;                /* the card has an admin key it can check responses against */
    bool key_default;            /* ... the well-known default one */
    enum tess_key_alg alg;
    uint8_t kcv[3];              /* zero when unknown */
    size_t challenge_len;
    long challenges_left;        /* -1: the card sets no limit */
    bool pending;                /* a challenge waits for its response */
    int tries_left, tries_max;   /* wrong responses; -1: the card does not say */
};

/* T_InitCard's parameters, checked by the core (lengths, policy coherent,
 * key length for its algorithm). NULL / 0: not given. */
struct tess_card_init {
    const char *label;
    const CK_UTF8CHAR *so_pin; CK_ULONG so_len;          /* authority, or a new card's SO PIN */
    const CK_UTF8CHAR *new_so_pin; CK_ULONG new_so_len;
    const CK_UTF8CHAR *user_pin; CK_ULONG user_len;
    const struct tess_pin_policy *policy;
    int user_tries, so_tries;
    enum tess_key_alg admin_alg;
    const uint8_t *admin_key; size_t admin_key_len;
    const char *serial;          /* the card's serial, 16 lower-case hex digits (a new TPM
                                    card's; a PIV card's CHUID GUID begins with it); NULL: random */
};

struct tess_driver {
    unsigned abi;                /* TESS_DRIVER_ABI: the core skips a driver built for another */
    const char *name;

    /* Module lifetime. init must not touch the device (start-up stays fast);
     * fini(in_child=true) drops state after fork() without I/O on the parent's
     * connections. */
    CK_RV (*init)(const struct tess_settings *settings);
    void (*fini)(bool in_child);

    /* Slots. */
    CK_RV (*scan)(struct tess_slot_report *out, size_t max, size_t *count);
    CK_RV (*token_open)(struct tess_token *tok, uint64_t card_key);
    void (*token_free)(void *drv);
    CK_RV (*slot_info)(struct tess_token *tok, CK_SLOT_INFO *info);
    CK_RV (*token_info)(struct tess_token *tok, CK_TOKEN_INFO *info);

    /* Objects: load_objects fills tok->objects via tess_token_add_object;
     * objects_stale says another process changed them since. */
    CK_RV (*load_objects)(struct tess_token *tok);
    bool (*objects_stale)(struct tess_token *tok);
    CK_RV (*store_object)(struct tess_token *tok, struct tess_object *obj);
    CK_RV (*update_object)(struct tess_token *tok, struct tess_object *obj);
    CK_RV (*destroy_object)(struct tess_token *tok, struct tess_object *obj);
    void (*free_object)(void *drv);

    /* PINs and initialisation. */
    CK_RV (*login)(struct tess_token *tok, CK_USER_TYPE who, const CK_UTF8CHAR *pin, CK_ULONG len);
    void (*logout)(struct tess_token *tok);
    CK_RV (*init_token)(struct tess_token *tok, const CK_UTF8CHAR *so_pin, CK_ULONG so_len,
                        const char *label);
    CK_RV (*init_pin)(struct tess_token *tok, const CK_UTF8CHAR *pin, CK_ULONG len);
    CK_RV (*set_pin)(struct tess_token *tok, CK_USER_TYPE who, const CK_UTF8CHAR *old_pin,
                     CK_ULONG old_len, const CK_UTF8CHAR *new_pin, CK_ULONG new_len);

    /* Keys. generate_key_pair receives both objects with the caller's
     * attributes merged; it adds the public material (CKA_MODULUS ... or
     * CKA_EC_POINT) to both and persists them together when spec->token. */
    CK_RV (*generate_key_pair)(struct tess_token *tok, const struct tess_keygen_spec *spec,
                               struct tess_object *pub, struct tess_object *priv);
    /* import_key receives a private key the core checked (C_CreateObject);
     * priv holds the caller's attributes with the secret ones already wiped.
     * The driver moves the key into the device, keeps no copy of it, and
     * persists priv when token is set. */
    CK_RV (*import_key)(struct tess_token *tok, EVP_PKEY *key, struct tess_object *priv, bool token);
    CK_RV (*rsa_sign_pkcs1)(struct tess_token *tok, struct tess_object *key, CK_MECHANISM_TYPE hash,
                            const uint8_t *digest, size_t digest_len, uint8_t *sig, size_t *sig_len);
    CK_RV (*rsa_raw)(struct tess_token *tok, struct tess_object *key, const uint8_t *in, size_t in_len,
                     uint8_t *out, size_t *out_len);
    CK_RV (*ecdsa_sign)(struct tess_token *tok, struct tess_object *key, const uint8_t *digest,
                        size_t digest_len, uint8_t *rs, size_t *rs_len);
    CK_RV (*ecdh)(struct tess_token *tok, struct tess_object *key, const uint8_t *point,
                  size_t point_len, uint8_t *z, size_t *z_len);
    CK_RV (*random)(struct tess_token *tok, uint8_t *out, size_t len);

    /* Administration (the Tessera Management interface, pkcs11/mgmt.c). The
     * core checks sessions and login state and hands over bytes; the
     * driver and its card judge challenges and responses. set_admin_key
     * with resp NULL is called only in an SO session. */
    CK_RV (*admin_info)(struct tess_token *tok, struct tess_admin_info *info);
    CK_RV (*admin_challenge)(struct tess_token *tok, bool fresh, uint8_t *out, size_t *len);
    CK_RV (*unblock_pin)(struct tess_token *tok, const uint8_t *resp, size_t rlen, const CK_UTF8CHAR *pin,
                         CK_ULONG len);
    CK_RV (*set_admin_key)(struct tess_token *tok, const uint8_t *resp, size_t rlen, enum tess_key_alg alg,
                           const uint8_t *key, size_t key_len);
    /* init_card: no session is open on tok. erase_card: authorised by resp,
     * or (resp NULL) by tok->login == CKU_SO, or by nothing when the card has
     * no authority left; the core ends every session on tok afterwards and
     * opens the slot afresh. */
    CK_RV (*init_card)(struct tess_token *tok, const struct tess_card_init *p);
    CK_RV (*erase_card)(struct tess_token *tok, const uint8_t *resp, size_t rlen);
    /* lock_pin: the user PIN blocked, as if every try were spent, until an
     * unblock (its value stays); authorised by resp only. The core logs the
     * token's sessions out afterwards. */
    CK_RV (*lock_pin)(struct tess_token *tok, const uint8_t *resp, size_t rlen);
};

/* The drivers built into this module, in slot order. */
extern const struct tess_driver tess_tpm2_driver;
#ifdef HAVE_PCSC
extern const struct tess_driver tess_piv_driver;   /* cards in PC/SC readers */
#endif

#endif
