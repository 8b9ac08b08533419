/* TPM 2.0 virtual smart cards (VSC): internal interfaces of the driver.
 *
 * Layout of a VSC in the TPM (owner hierarchy):
 *   primary (ECC P-256 storage key, TCG SRK template, transient, re-created)
 *     +- user seal   KEYEDHASH, userAuth = H(salt_u, user PIN), data = card secret
 *     +- SO seal     KEYEDHASH, userAuth = H(salt_s, SO PIN),   data = card secret
 *     +- keys        RSA/ECC, userAuth = HMAC(card secret, key uuid), noDA
 * The seals are DA-protected, so the TPM itself checks every PIN and counts
 * failures; Tessera never holds a PIN beyond the call that uses it. Only the
 * TPM-wrapped blobs and public data reach the store. */
#ifndef TESSERA_TPM2_H
#define TESSERA_TPM2_H

#include <stdbool.h>
#include <stdint.h>

#include <tss2/tss2_esys.h>

#include "../../src/kdf.h"
#include "../../src/pin_policy.h"
#include "../../src/settings.h"
#include "../../src/store.h"
#include "../driver.h"

#define TPM2_SECRET_LEN 32
#define TPM2_SALT_LEN 16
#define TPM2_UUID_LEN 16
#define TPM2_DRIVER_NAME "tpm2"

/* ---- connection (tpm2_conn.c) ---- */

struct tpm2_key;

/* Open (once) the TCTI + ESYS connection named in the settings. */
CK_RV tpm2_conn_get(ESYS_CONTEXT **esys);
/* Is a TPM reachable? Tries to connect once, remembers a failure briefly. */
bool tpm2_conn_available(void);
/* The storage primary, created on first use in this process. */
CK_RV tpm2_primary(ESYS_CONTEXT *esys, ESYS_TR *handle);
/* An HMAC session with parameter encryption (attrs: TPMA_SESSION_DECRYPT for
 * a secret we send, TPMA_SESSION_ENCRYPT for one the TPM returns). Its key
 * comes from salt_key (a salted session: the primary) or from bind (an
 * object whose authValue only we know); an eavesdropper on the TPM bus learns
 * neither PINs nor the card secret. When salting is impossible in this
 * process (see tpm2_conn.c) *out is ESYS_TR_NONE: no encryption.
 * End it with tpm2_session_end. */
CK_RV tpm2_param_session(ESYS_CONTEXT *esys, ESYS_TR salt_key, ESYS_TR bind, TPMA_SESSION attrs, ESYS_TR *out);
void tpm2_session_end(ESYS_CONTEXT *esys, ESYS_TR session);
/* The first use of a salted session authorises the (noDA) primary: if ESYS
 * and the TPM derived different session keys (it happens, rarely, with
 * tpm2-tss 3.x ECC salting) that use fails with TPM_RC_BAD_AUTH, costing
 * nothing; then a new session is started. This says whether to. */
bool tpm2_session_mismatch(ESYS_TR session, TSS2_RC rc);
#define TPM2_SESSION_ATTEMPTS 4
/* Run before a Load: make room by flushing our least-recently-used key. */
bool tpm2_conn_evict_one(ESYS_CONTEXT *esys);
void tpm2_conn_track(struct tpm2_key *key);
void tpm2_conn_untrack(struct tpm2_key *key);
void tpm2_conn_close(bool in_child);
const struct tess_settings *tpm2_settings(void);
void tpm2_set_settings(const struct tess_settings *s);
/* Translate a TSS2 return code; logs what failed. */
CK_RV tpm2_rv(TSS2_RC rc, const char *what);
bool tpm2_rc_is(TSS2_RC rc, TSS2_RC base);

/* ---- the store (shared with the tool) ---- */
CK_RV tpm2_store(struct tess_store **out, bool create);

/* ---- virtual cards (tpm2_vsc.c) ---- */

struct tpm2_vsc {
    struct tess_card_rec rec;        /* label, serial, counters, drv blob */
    struct tess_pin_policy policy;
    uint8_t *secret;                 /* card secret while logged in, else NULL */
    int64_t data_version;            /* store version seen at last object load */
};

struct tpm2_vsc_params {
    const char *label;
    enum tess_key_alg admin_alg;                 /* with admin_key */
    const uint8_t *admin_key; size_t admin_key_len; /* NULL: none until the SO sets one */
    const char *so_pin;  size_t so_pin_len;      /* a new card's; a re-initialised card's current one */
    const char *new_so_pin; size_t new_so_pin_len; /* NULL: the SO PIN stays so_pin */
    const char *user_pin; size_t user_pin_len;   /* NULL: user PIN not initialised */
    const struct tess_pin_policy *policy;        /* NULL: settings' default */
    int user_tries, so_tries;                    /* 0: settings' */
    int slot_index;                              /* -1: lowest free */
    const char *serial;                          /* a new card's (16 hex digits); NULL: random */
};

CK_RV tpm2_vsc_create(const struct tpm2_vsc_params *p, int64_t *id_out, char *err, size_t errlen);
CK_RV tpm2_vsc_delete(int64_t id);
CK_RV tpm2_vsc_open(int64_t id, struct tpm2_vsc **out);
void tpm2_vsc_free(struct tpm2_vsc *v);
CK_RV tpm2_vsc_reload(struct tpm2_vsc *v);
CK_RV tpm2_vsc_login(struct tpm2_vsc *v, CK_USER_TYPE who, const uint8_t *pin, size_t len);
void tpm2_vsc_logout(struct tpm2_vsc *v);
CK_RV tpm2_vsc_set_user_pin(struct tpm2_vsc *v, const uint8_t *pin, size_t len, char *err, size_t errlen);
CK_RV tpm2_vsc_change_pin(struct tpm2_vsc *v, CK_USER_TYPE who, const uint8_t *old_pin, size_t old_len,
                          const uint8_t *new_pin, size_t new_len, char *err, size_t errlen);
/* Set a new user PIN with the card secret from elsewhere (an unblock). */
CK_RV tpm2_vsc_reset_user_pin(struct tpm2_vsc *v, const uint8_t *secret, const uint8_t *pin, size_t len, char *err,
                              size_t errlen);
/* The user PIN blocked: no tries left (a lock; its PIN stays as it was). */
CK_RV tpm2_vsc_block_user_pin(struct tpm2_vsc *v);
CK_RV tpm2_vsc_reinit(struct tpm2_vsc *v, const struct tpm2_vsc_params *p, char *err, size_t errlen);
int tpm2_vsc_free_slot_index(const struct tess_card_rec *recs, size_t n, int max);

/* ---- seals (tpm2_seal.c) ---- */

#define TPM2_SEAL_MAX 128            /* a KEYEDHASH object's sensitive data */
/* authValue = SHA-256(tag | salt | proof): fixed length whatever the proof's,
 * and different on every seal for the same PIN or response. */
CK_RV tpm2_seal_auth(const char *tag, const uint8_t salt[TPM2_SALT_LEN], const uint8_t *proof, size_t len,
                     TPM2B_AUTH *auth);
/* The TPM checks the proof (CKR_PIN_INCORRECT when wrong, counted by its
 * dictionary-attack logic) and returns exactly want bytes. */
CK_RV tpm2_seal_open(const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth, uint8_t *out,
                     size_t want);
/* A new seal of data under proof with a fresh salt, opened once to prove it. */
CK_RV tpm2_seal_make(const char *tag, uint8_t salt[TPM2_SALT_LEN], const uint8_t *data, size_t len,
                     const uint8_t *proof, size_t proof_len, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv);
/* Secrets in locked (unswappable) memory, wiped when freed. */
uint8_t *tpm2_secret_alloc(size_t len);
void tpm2_secret_free(uint8_t *p, size_t len);

/* ---- administration: admin key, challenges, unblock (tpm2_admin.c) ----
 * The card never holds its admin key where it could be read: at the moment
 * the key is set (card creation, an SO login, or a response proving the old
 * key) Tessera draws TPM2_ADMIN_STOCK random challenges, computes each one's
 * response, and seals (card secret | admin key) under each response. A
 * response typed in later opens its seal in the TPM, which checks it and
 * counts wrong ones; nothing on the machine can compute a response. */

#define TPM2_ADMIN_STOCK 5
#define TPM2_ADMIN_TRIES 5

struct tpm2_admin_state {
    bool set;                        /* an admin key was set: challenges can be answered */
    enum tess_key_alg alg;
    uint8_t kcv[3];                  /* first bytes of E(K, 0...0) */
    bool is_default;                 /* K is the well-known default key */
    int stock;                       /* challenges left, the pending one included */
    bool pending;                    /* a challenge was given and not yet answered */
    int tries_left, tries_max;       /* wrong responses allowed */
};

/* Seal a fresh stock of challenges for key, given the card secret: the TPM
 * work only; the caller stores rec (setting rec->card_id) in a transaction. */
CK_RV tpm2_admin_build(const uint8_t secret[TPM2_SECRET_LEN], enum tess_key_alg alg, const uint8_t *key,
                       size_t key_len, struct tess_admin_rec *rec);
CK_RV tpm2_admin_get_state(struct tpm2_vsc *v, struct tpm2_admin_state *st);
/* The pending challenge, or (fresh, or none pending) the next one. */
CK_RV tpm2_admin_challenge(struct tpm2_vsc *v, bool fresh, uint8_t *out, size_t *len);
/* Answer the pending challenge and set a new user PIN. */
CK_RV tpm2_admin_unblock(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen, const uint8_t *pin, size_t pin_len,
                         char *err, size_t errlen);
/* A right response to the pending challenge, for an erase: the challenge
 * is spent, a wrong response counted as for an unblock. */
CK_RV tpm2_admin_check(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen);
/* Answer the pending challenge and block the user PIN (a lock): only an
 * unblock opens the card again. */
CK_RV tpm2_admin_lock_pin(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen);
/* No authority left on the card: its SO PIN locked and no response can be
 * accepted (no admin key, or unblock locked). */
bool tpm2_admin_orphaned(struct tpm2_vsc *v);
/* Replace the admin key: authorised by a response to the pending challenge
 * under the old key, or (resp NULL) by the card secret of an SO login. */
CK_RV tpm2_admin_set_key(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen, const uint8_t *so_secret,
                         enum tess_key_alg alg, const uint8_t *key, size_t key_len);

/* ---- keys (tpm2_key.c) ---- */

struct tpm2_key {
    uint8_t uuid[TPM2_UUID_LEN];
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    ESYS_TR handle;                  /* ESYS_TR_NONE when not loaded */
    uint64_t last_use;
    struct tpm2_key *lru_next;       /* conn's list of loaded keys */
};

CK_RV tpm2_key_generate(struct tpm2_vsc *v, const struct tess_keygen_spec *spec, struct tpm2_key **out);
/* A key from outside into this TPM (it cannot leave again). */
CK_RV tpm2_key_import(struct tpm2_vsc *v, EVP_PKEY *pk, struct tpm2_key **out);
CK_RV tpm2_key_encode(const struct tpm2_key *k, uint8_t **out, size_t *outlen);
CK_RV tpm2_key_decode(const uint8_t *in, size_t len, struct tpm2_key **out);
void tpm2_key_free(struct tpm2_key *k);
void tpm2_key_unload(struct tpm2_key *k);
CK_RV tpm2_key_rsa_sign(struct tpm2_vsc *v, struct tpm2_key *k, CK_MECHANISM_TYPE hash, const uint8_t *digest,
                        size_t dlen, uint8_t *sig, size_t *siglen);
CK_RV tpm2_key_rsa_raw(struct tpm2_vsc *v, struct tpm2_key *k, const uint8_t *in, size_t inlen, uint8_t *out,
                       size_t *outlen);
CK_RV tpm2_key_ecdsa(struct tpm2_vsc *v, struct tpm2_key *k, const uint8_t *digest, size_t dlen, uint8_t *rs,
                     size_t *rslen);
CK_RV tpm2_key_ecdh(struct tpm2_vsc *v, struct tpm2_key *k, const uint8_t *point, size_t plen, uint8_t *z,
                    size_t *zlen);

/* ---- private objects stored encrypted (tpm2_private_obj.c) ---- */

#define TPM2_PRIVATE_OBJ_VERSION 2   /* first byte of the blob; key blobs start with 1 */
/* Encrypt / decrypt an attribute encoding under the card secret (logged in). */
CK_RV tpm2_private_seal(const struct tpm2_vsc *v, const uint8_t *plain, size_t len, uint8_t **out, size_t *outlen);
CK_RV tpm2_private_open(const struct tpm2_vsc *v, const uint8_t *in, size_t len, uint8_t **out, size_t *outlen);

/* ---- TPM status and dictionary-attack settings (tpm2_status.c) ---- */

struct tpm2_status {
    bool reachable;
    char why[1280];                  /* when not reachable or not ready */
    char manufacturer[5];
    char vendor[17];
    uint32_t fw1, fw2;
    uint32_t spec_level, spec_revision;
    bool in_lockout, owner_auth_set, lockout_auth_set;
    uint32_t lockout_counter, max_tries, recovery_time, lockout_recovery;
    uint32_t transient_slots;        /* TPM2_PT_HR_TRANSIENT_MIN */
};

CK_RV tpm2_get_status(struct tpm2_status *st);
CK_RV tpm2_set_da(uint32_t max_tries, uint32_t recovery, uint32_t lockout_recovery);
CK_RV tpm2_clear_da_lockout(void);

#endif
