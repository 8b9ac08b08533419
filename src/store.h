/* The token store: one SQLite database under TESSERA_HOME holding the cards a
 * driver keeps on the host (TPM virtual cards) and their objects. Drivers keep
 * their own data as opaque blobs; nothing in here is a secret in the clear
 * (TPM blobs are wrapped by the TPM, PINs are never stored). */
#ifndef TESSERA_STORE_H
#define TESSERA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../pkcs11/pk11.h"

struct tess_store;

struct tess_card_rec {
    int64_t id;
    char driver[16];
    int slot_index;
    char label[33];
    char serial[17];
    char policy[256];        /* tess_pin_policy_format text */
    int user_tries_left, user_tries_max;
    int so_tries_left, so_tries_max;
    int user_pin_set;        /* 0/1 */
    uint8_t *drv_data;       /* owned */
    size_t drv_len;
};

struct tess_object_rec {
    int64_t id;
    int64_t card_id;
    uint8_t *attrs;          /* tess_attrs_encode form, owned */
    size_t attrs_len;
    uint8_t *drv_data;       /* owned */
    size_t drv_len;
};

/* Opens (creating folder 0700 and file 0600 if needed) and migrates. */
int tess_store_open(const char *path, struct tess_store **out, char *err, size_t errlen);
void tess_store_close(struct tess_store *s);

/* Write transactions: BEGIN IMMEDIATE ... COMMIT, with the busy timeout. */
CK_RV tess_store_begin(struct tess_store *s);
CK_RV tess_store_commit(struct tess_store *s);
void tess_store_rollback(struct tess_store *s);
/* Changes whenever another connection commits (PRAGMA data_version). */
int64_t tess_store_data_version(struct tess_store *s);

void tess_card_rec_clear(struct tess_card_rec *r);
void tess_object_rec_clear(struct tess_object_rec *r);

CK_RV tess_store_card_list(struct tess_store *s, const char *driver, struct tess_card_rec **recs, size_t *n);
CK_RV tess_store_card_get(struct tess_store *s, int64_t id, struct tess_card_rec *rec);
CK_RV tess_store_card_insert(struct tess_store *s, struct tess_card_rec *rec);
CK_RV tess_store_card_update(struct tess_store *s, const struct tess_card_rec *rec);
CK_RV tess_store_card_set_tries(struct tess_store *s, int64_t id, int user_left, int so_left);
CK_RV tess_store_card_delete(struct tess_store *s, int64_t id);

CK_RV tess_store_object_list(struct tess_store *s, int64_t card_id, struct tess_object_rec **recs, size_t *n);
CK_RV tess_store_object_insert(struct tess_store *s, struct tess_object_rec *rec);
CK_RV tess_store_object_update_attrs(struct tess_store *s, int64_t id, const uint8_t *attrs, size_t len);
/* Both columns at once (an object whose attributes the driver keeps encrypted). */
CK_RV tess_store_object_update(struct tess_store *s, const struct tess_object_rec *rec);
CK_RV tess_store_object_delete(struct tess_store *s, int64_t id);
CK_RV tess_store_objects_delete_card(struct tess_store *s, int64_t card_id);

/* Cached public data about a card the store does not own (by driver, card
 * identity, name). get: CKR_OBJECT_HANDLE_INVALID when absent; put with a
 * NULL value deletes. */
CK_RV tess_store_cache_get(struct tess_store *s, const char *driver, const char *card, const char *name,
                           uint8_t **value, size_t *len);
CK_RV tess_store_cache_put(struct tess_store *s, const char *driver, const char *card, const char *name,
                           const uint8_t *value, size_t len);
/* Everything cached about one card (it was erased). */
CK_RV tess_store_cache_forget(struct tess_store *s, const char *driver, const char *card);

/* A card's administration state, kept by its driver (TPM cards: the admin
 * key's check value and the sealed challenges); tries_left counts wrong
 * unblock responses. get leaves present false when the card has none. */
struct tess_admin_rec {
    int64_t card_id;
    bool present;
    int tries_left, tries_max;
    uint8_t *data;           /* owned, wiped when cleared */
    size_t data_len;
};

void tess_admin_rec_clear(struct tess_admin_rec *r);
CK_RV tess_store_admin_get(struct tess_store *s, int64_t card_id, struct tess_admin_rec *rec);
CK_RV tess_store_admin_put(struct tess_store *s, const struct tess_admin_rec *rec);
CK_RV tess_store_admin_delete(struct tess_store *s, int64_t card_id);

/* The process's one connection to the store at path, opened on first use
 * (created only if create); drivers share it under the module lock.
 * CKR_TOKEN_NOT_PRESENT when there is no store and create is false. */
CK_RV tess_store_shared(const char *path, bool create, struct tess_store **out);
void tess_store_shared_close(bool in_child);

#endif
