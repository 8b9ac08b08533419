/* The core's token model: slots, tokens and objects as PKCS#11 sees them.
 * The core owns these structures; a driver fills them through the operations
 * table in drivers/driver.h and keeps its own state behind the drv pointers. */
#ifndef TESSERA_TOKEN_H
#define TESSERA_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "attrs.h"

struct tess_driver;

struct tess_object {
    CK_OBJECT_HANDLE handle;
    uint64_t uid;               /* driver's stable id (store row); 0 for session objects */
    bool token_object;          /* CKA_TOKEN */
    CK_SESSION_HANDLE owner;    /* session that created a session object */
    struct tess_attrs attrs;    /* everything PKCS#11 can see (and the core may check) */
    void *drv;                  /* driver's data: TPM blobs, card key reference ... */
    struct tess_object *next;
};

struct tess_token {
    CK_SLOT_ID slot_id;
    const struct tess_driver *driver;
    void *drv;                  /* driver's state of this token */
    uint64_t card_key;          /* the card in the slot, as the driver's scan names it */
    bool present;               /* false once the driver says it is gone */
    bool foreign;               /* a card the driver does not serve: shown as no token, not looked at again */
    bool initialized;           /* CKF_TOKEN_INITIALIZED */
    CK_USER_TYPE login;         /* CKU_USER, CKU_SO, or (CK_USER_TYPE)-1 when logged out */
    unsigned long session_count, rw_session_count;
    struct tess_object *objects;
    uint64_t generation;        /* bumped when the object list is reloaded */
    /* Handles given to token objects, by uid: a reload keeps them. */
    struct tess_handle_map {
        uint64_t uid;
        CK_OBJECT_HANDLE handle;
    } *handles;
    size_t nhandles, caphandles;
};

#define TESS_NOT_LOGGED_IN ((CK_USER_TYPE)-1)

/* Helpers a driver calls while it loads a token's objects. */
struct tess_object *tess_object_new(void);
void tess_object_free(const struct tess_token *tok, struct tess_object *obj);
/* Append obj to tok's list, giving it a handle (the same one again for a
 * token object reloaded with the same uid). CKR_HOST_MEMORY leaves obj unlinked. */
CK_RV tess_token_add_object(struct tess_token *tok, struct tess_object *obj);
/* Drop every token object (before a reload); session objects stay. */
void tess_token_clear_token_objects(struct tess_token *tok);
struct tess_object *tess_token_find_handle(struct tess_token *tok, CK_OBJECT_HANDLE h);
struct tess_object *tess_token_find_uid(struct tess_token *tok, uint64_t uid);
void tess_token_unlink_object(struct tess_token *tok, struct tess_object *obj);

/* The token's CKO_PROFILE object (PKCS#11 3.0 profiles): every Tessera token
 * keeps its certificates public, so it says CKP_PUBLIC_CERTIFICATES_TOKEN,
 * which lets NSS list them without asking for the PIN first. The core adds it
 * after each load of a driver's objects; it cannot be changed or destroyed. */
#define TESS_UID_PROFILE UINT64_MAX
CK_RV tess_token_add_profile(struct tess_token *tok);

/* Handles are unique in the module: one counter for every object. */
CK_OBJECT_HANDLE tess_handle_next(void);

/* Called by a driver's generate_key_pair once the public material is in both
 * objects and before it persists them: fills the defaults that depend on it
 * (CKA_ID from the public key when the caller gave none). */
CK_RV tess_keygen_complete(struct tess_object *pub, struct tess_object *priv);

#endif
