/* The PKCS#11 front's state and the one entry/exit pattern every function
 * uses. All state lives in g_mod and is changed only with g_mod.lock held:
 *
 *   rv = tess_enter();                      initialised, same process, lock
 *   rv = tess_session_get(h, &s);           session -> token (present?)
 *   ... the call ...
 *   tess_leave();                           unlock (single exit, `goto out`)
 *
 * tess_enter_session() does the first two steps and unlocks again if the
 * session is not valid, so a caller returns at once on failure.
 */
#ifndef TESSERA_MODULE_H
#define TESSERA_MODULE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "../drivers/driver.h"
#include "../src/settings.h"
#include "pk11.h"

#define TESS_EXPORT __attribute__((visibility("default")))

enum tess_op_kind { OP_NONE = 0, OP_SIGN, OP_VERIFY, OP_ENCRYPT, OP_DECRYPT, OP_DIGEST };

struct tess_op {
    enum tess_op_kind kind;
    CK_MECHANISM_TYPE mech, base, hash;
    CK_OBJECT_HANDLE key;
    EVP_MD_CTX *md;                  /* hashing mechanisms, digest */
    uint8_t *buf;                    /* data gathered by Update for one-shot mechanisms */
    size_t len;
    bool updated;                    /* C_*Update was used: C_* (one-shot) no longer allowed */
    bool needs_context_login;        /* the key is CKA_ALWAYS_AUTHENTICATE ... */
    bool context_login_done;         /* ... and C_Login(CKU_CONTEXT_SPECIFIC) followed C_*Init */
    CK_MECHANISM_TYPE param_hash, mgf_hash;   /* PSS / OAEP */
    size_t salt_len;
    uint8_t *label;                  /* OAEP */
    size_t label_len;
};

struct tess_session {
    CK_SESSION_HANDLE handle;
    CK_SLOT_ID slot_id;
    struct tess_token *tok;
    CK_FLAGS flags;                  /* CKF_RW_SESSION | CKF_SERIAL_SESSION */
    struct {
        bool active;
        CK_OBJECT_HANDLE *handles;
        size_t n, pos;
    } find;
    struct tess_op sign, verify, encrypt, decrypt, digest;
    struct tess_session *next;
};

struct tess_slot {
    CK_SLOT_ID id;
    const struct tess_driver *driver;
    struct tess_token *tok;
    bool event;                      /* changed since the last C_WaitForSlotEvent */
    bool objects_loaded;
};

struct tess_module {
    pthread_mutex_t lock;
    bool initialized;
    bool finalizing;
    pid_t pid;                       /* process that called C_Initialize */
    struct tess_settings settings;
    struct tess_slot *slots;
    size_t nslots;
    struct tess_session *sessions;
    CK_SESSION_HANDLE next_session;
};

extern struct tess_module g_mod;
extern const struct tess_driver *const tess_drivers[];
extern const size_t tess_ndrivers;
/* The vendor interface's function table (mgmt.c). */
extern CK_TESSERA_FUNCTION_LIST tess_mgmt_function_list;

CK_RV tess_enter(void);
void tess_leave(void);
CK_RV tess_session_get(CK_SESSION_HANDLE h, struct tess_session **out);
CK_RV tess_enter_session(CK_SESSION_HANDLE h, struct tess_session **out);
struct tess_slot *tess_slot_find(CK_SLOT_ID id);
CK_RV tess_slots_rescan(void);
/* Load (or reload if another process changed them) the token's objects. */
CK_RV tess_token_objects(struct tess_slot *slot, bool check_stale);
struct tess_slot *tess_slot_of_token(const struct tess_token *tok);
/* End every session on the slot (C_CloseAllSessions without the lock dance). */
void tess_slot_close_sessions(CK_SLOT_ID id);
/* Every session of the token back to public (C_Logout's work, also after a
 * PIN lock): operations under the login end, private objects forgotten. */
void tess_token_logout(struct tess_token *tok);
/* The card in the slot changed under the module's feet (erased): drop its
 * token, with no sessions left, and look at the slot afresh. */
void tess_slot_retire(CK_SLOT_ID id);

/* Object access with PKCS#11 visibility rules (private needs user login). */
struct tess_object *tess_object_get(struct tess_session *s, CK_OBJECT_HANDLE h);
bool tess_object_visible(const struct tess_token *tok, const struct tess_object *o);
bool tess_user_logged_in(const struct tess_token *tok);
/* C_CreateObject of a CKO_PRIVATE_KEY (keys.c); o stays the caller's on error. */
CK_RV tess_create_private_key(struct tess_session *s, struct tess_object *o, CK_OBJECT_HANDLE_PTR out);

void tess_op_reset(struct tess_op *op);
void tess_session_free_ops(struct tess_session *s);
/* Drop every session object a session owns. */
void tess_session_drop_objects(struct tess_session *s);

#endif
