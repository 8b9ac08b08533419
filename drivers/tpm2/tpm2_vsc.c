/* Virtual smart cards: create, delete, PIN checks (by the TPM), PIN changes. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "tpm2.h"

#define CARD_BLOB_VERSION 1
#define SO_PIN_MIN 4

/* The card's blob in the store: version | flags | salt_user | salt_so |
 * [user seal public | private] | SO seal public | private. */
struct card_blob {
    uint8_t flags;                   /* bit 0: user seal present */
    uint8_t salt_user[TPM2_SALT_LEN], salt_so[TPM2_SALT_LEN];
    TPM2B_PUBLIC user_pub, so_pub;
    TPM2B_PRIVATE user_priv, so_priv;
};

static CK_RV blob_encode(const struct card_blob *b, uint8_t **out, size_t *outlen)
{
    size_t cap = 2 + 2 * TPM2_SALT_LEN + 2 * (sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE));
    uint8_t *buf = malloc(cap);
    size_t off = 0;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (!buf)
        return CKR_HOST_MEMORY;
    buf[off++] = CARD_BLOB_VERSION;
    buf[off++] = b->flags;
    memcpy(buf + off, b->salt_user, TPM2_SALT_LEN);
    off += TPM2_SALT_LEN;
    memcpy(buf + off, b->salt_so, TPM2_SALT_LEN);
    off += TPM2_SALT_LEN;
    if (b->flags & 1) {
        rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&b->user_pub, buf, cap, &off);
        if (!rc)
            rc = Tss2_MU_TPM2B_PRIVATE_Marshal(&b->user_priv, buf, cap, &off);
    }
    if (!rc)
        rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&b->so_pub, buf, cap, &off);
    if (!rc)
        rc = Tss2_MU_TPM2B_PRIVATE_Marshal(&b->so_priv, buf, cap, &off);
    if (rc) {
        free(buf);
        return tpm2_rv(rc, "encode card");
    }
    *out = buf;
    *outlen = off;
    return CKR_OK;
}

static CK_RV blob_decode(const uint8_t *in, size_t len, struct card_blob *b)
{
    size_t off = 2 + 2 * TPM2_SALT_LEN;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memset(b, 0, sizeof(*b));
    if (len < off || in[0] != CARD_BLOB_VERSION) {
        TESS_ERR("tpm: card record has an unknown format");
        return CKR_DEVICE_ERROR;
    }
    b->flags = in[1];
    memcpy(b->salt_user, in + 2, TPM2_SALT_LEN);
    memcpy(b->salt_so, in + 2 + TPM2_SALT_LEN, TPM2_SALT_LEN);
    if (b->flags & 1) {
        rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(in, len, &off, &b->user_pub);
        if (!rc)
            rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(in, len, &off, &b->user_priv);
    }
    if (!rc)
        rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(in, len, &off, &b->so_pub);
    if (!rc)
        rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(in, len, &off, &b->so_priv);
    return rc ? tpm2_rv(rc, "decode card") : CKR_OK;
}

int tpm2_vsc_free_slot_index(const struct tess_card_rec *recs, size_t n, int max)
{
    for (int idx = 0; idx < max; idx++) {
        bool used = false;
        for (size_t i = 0; i < n; i++)
            used |= recs[i].slot_index == idx;
        if (!used)
            return idx;
    }
    return -1;
}

static CK_RV policy_refusal(const struct tess_pin_policy *p, size_t len)
{
    return tess_pin_policy_length_ok(p, len) ? CKR_PIN_INVALID : CKR_PIN_LEN_RANGE;
}

static CK_RV check_so_pin(size_t len, char *err, size_t errlen)
{
    if (len < SO_PIN_MIN || len > TESS_PIN_MAX_LEN) {
        snprintf(err, errlen, "the SO PIN must have %d to %d characters", SO_PIN_MIN, TESS_PIN_MAX_LEN);
        return CKR_PIN_LEN_RANGE;
    }
    return CKR_OK;
}

#define PIN_TAG "tessera-pin-v1"

static CK_RV make_user_seal(struct card_blob *b, const uint8_t *secret, const uint8_t *pin, size_t len)
{
    CK_RV rv = tpm2_seal_make(PIN_TAG, b->salt_user, secret, TPM2_SECRET_LEN, pin, len, &b->user_pub,
                              &b->user_priv);
    if (rv == CKR_OK)
        b->flags |= 1;
    return rv;
}

static CK_RV make_so_seal(struct card_blob *b, const uint8_t *secret, const uint8_t *pin, size_t len)
{
    return tpm2_seal_make(PIN_TAG, b->salt_so, secret, TPM2_SECRET_LEN, pin, len, &b->so_pub, &b->so_priv);
}

/* The TPM half of a card being made or re-made: the PINs checked against
 * the policy, a fresh card secret, its seals and challenges (slow, and it
 * leaves nothing behind if we die). The caller stores it in one transaction. */
struct card_parts {
    struct tess_pin_policy policy;
    struct card_blob blob;
    uint8_t *secret;
    struct tess_admin_rec admin;
};

static CK_RV parts_make(const struct tpm2_vsc_params *p, const struct tess_pin_policy *policy, struct card_parts *c,
                        char *err, size_t errlen)
{
    const char *so_pin = p->new_so_pin ? p->new_so_pin : p->so_pin;
    size_t so_len = p->new_so_pin ? p->new_so_pin_len : p->so_pin_len;
    CK_RV rv;

    memset(c, 0, sizeof(*c));
    c->policy = policy ? *policy : tpm2_settings()->pin_policy;
    if (tess_pin_policy_validate(&c->policy, err, errlen))
        return CKR_ARGUMENTS_BAD;
    rv = check_so_pin(so_len, err, errlen);
    if (rv != CKR_OK)
        return rv;
    if (p->user_pin && tess_pin_policy_check(&c->policy, (const uint8_t *)p->user_pin, p->user_pin_len, err, errlen))
        return policy_refusal(&c->policy, p->user_pin_len);
    if (!tpm2_conn_available()) {
        snprintf(err, errlen, "no TPM reachable at '%s'", tpm2_settings()->tcti);
        return CKR_DEVICE_ERROR;
    }
    /* A fresh card secret: blobs of any old keys become useless, even if
     * someone restores them from a backup of the store. */
    c->secret = tpm2_secret_alloc(TPM2_SECRET_LEN);
    if (!c->secret || RAND_bytes(c->secret, TPM2_SECRET_LEN) != 1)
        return CKR_HOST_MEMORY;
    rv = make_so_seal(&c->blob, c->secret, (const uint8_t *)so_pin, so_len);
    if (rv == CKR_OK && p->user_pin)
        rv = make_user_seal(&c->blob, c->secret, (const uint8_t *)p->user_pin, p->user_pin_len);
    /* The admin key given (the well-known default one, to be rotated to a
     * diversified one, or a key of its own), or none until the SO sets one. */
    if (rv == CKR_OK && p->admin_key)
        rv = tpm2_admin_build(c->secret, p->admin_alg, p->admin_key, p->admin_key_len, &c->admin);
    return rv;
}

static void parts_free(struct card_parts *c)
{
    tess_admin_rec_clear(&c->admin);
    tpm2_secret_free(c->secret, TPM2_SECRET_LEN);
    tess_wipe(c, sizeof(*c));
}

/* The card record's fields that parts and params decide. */
static CK_RV parts_to_rec(const struct tpm2_vsc_params *p, const struct card_parts *c, struct tess_card_rec *rec)
{
    const struct tess_settings *set = tpm2_settings();
    uint8_t *data = NULL;
    size_t len = 0;
    CK_RV rv = blob_encode(&c->blob, &data, &len);
    if (rv != CKR_OK)
        return rv;
    free(rec->drv_data);
    rec->drv_data = data;
    rec->drv_len = len;
    snprintf(rec->label, sizeof(rec->label), "%s", p->label && *p->label ? p->label : "Tessera VSC");
    tess_pin_policy_format(&c->policy, rec->policy, sizeof(rec->policy));
    rec->user_tries_max = rec->user_tries_left = p->user_tries > 0 ? p->user_tries : set->user_retries;
    rec->so_tries_max = rec->so_tries_left = p->so_tries > 0 ? p->so_tries : set->so_retries;
    rec->user_pin_set = p->user_pin ? 1 : 0;
    return CKR_OK;
}

CK_RV tpm2_vsc_create(const struct tpm2_vsc_params *p, int64_t *id_out, char *err, size_t errlen)
{
    const struct tess_settings *set = tpm2_settings();
    struct tess_store *store;
    struct tess_card_rec *recs = NULL, rec = { 0 };
    size_t n = 0;
    struct card_parts parts;
    uint8_t serial_raw[8];
    bool in_tx = false;
    CK_RV rv;

    err[0] = '\0';
    rv = parts_make(p, p->policy, &parts, err, errlen);
    if (rv == CKR_OK && !p->serial && RAND_bytes(serial_raw, sizeof(serial_raw)) != 1)
        rv = CKR_FUNCTION_FAILED;
    if (rv == CKR_OK)
        rv = tpm2_store(&store, true);
    if (rv != CKR_OK)
        goto out;

    rv = tess_store_begin(store);
    if (rv != CKR_OK)
        goto out;
    in_tx = true;
    rv = tess_store_card_list(store, TPM2_DRIVER_NAME, &recs, &n);
    if (rv != CKR_OK)
        goto out;
    if ((int)n >= set->max_vsc) {
        snprintf(err, errlen, "this TPM already holds %zu virtual cards (limit %d, 'max_vsc')", n, set->max_vsc);
        rv = CKR_DEVICE_MEMORY;
        goto out;
    }
    snprintf(rec.driver, sizeof(rec.driver), TPM2_DRIVER_NAME);
    rec.slot_index = p->slot_index >= 0 ? p->slot_index : tpm2_vsc_free_slot_index(recs, n, set->max_vsc);
    for (size_t i = 0; i < n; i++) {
        if (recs[i].slot_index == rec.slot_index) {
            snprintf(err, errlen, "slot %d already holds a virtual card", rec.slot_index);
            rv = CKR_SLOT_ID_INVALID;
            goto out;
        }
    }
    if (p->serial)
        snprintf(rec.serial, sizeof(rec.serial), "%s", p->serial);
    else
        tess_hex(rec.serial, serial_raw, sizeof(serial_raw));
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(recs[i].serial, rec.serial)) {
            snprintf(err, errlen, "a virtual card with serial %s exists already", rec.serial);
            rv = CKR_ARGUMENTS_BAD;
            goto out;
        }
    }
    rv = parts_to_rec(p, &parts, &rec);
    if (rv == CKR_OK)
        rv = tess_store_card_insert(store, &rec);
    parts.admin.card_id = rec.id;
    if (rv == CKR_OK && parts.admin.present)
        rv = tess_store_admin_put(store, &parts.admin);
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    in_tx = false;
    if (rv == CKR_OK && id_out)
        *id_out = rec.id;
    if (rv == CKR_OK)
        TESS_INFO("tpm: created virtual card %s '%s' in slot %d", rec.serial, rec.label, rec.slot_index);
out:
    if (in_tx)
        tess_store_rollback(store);
    for (size_t i = 0; i < n; i++)
        tess_card_rec_clear(&recs[i]);
    free(recs);
    tess_card_rec_clear(&rec);
    parts_free(&parts);
    if (rv != CKR_OK && !err[0])
        snprintf(err, errlen, "could not create the virtual card (see the log; TESSERA_LOG=debug)");
    return rv;
}

CK_RV tpm2_vsc_delete(int64_t id)
{
    struct tess_store *store;
    CK_RV rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        return rv;
    /* Objects go with the card (foreign key cascade), in one statement. */
    return tess_store_card_delete(store, id);
}

CK_RV tpm2_vsc_open(int64_t id, struct tpm2_vsc **out)
{
    struct tpm2_vsc *v = calloc(1, sizeof(*v));
    CK_RV rv;
    if (!v)
        return CKR_HOST_MEMORY;
    v->rec.id = id;
    v->data_version = -1;
    rv = tpm2_vsc_reload(v);
    if (rv != CKR_OK) {
        tpm2_vsc_free(v);
        return rv;
    }
    *out = v;
    return CKR_OK;
}

CK_RV tpm2_vsc_reload(struct tpm2_vsc *v)
{
    struct tess_store *store;
    struct tess_card_rec rec;
    char err[256];
    CK_RV rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        return rv;
    rv = tess_store_card_get(store, v->rec.id, &rec);
    if (rv != CKR_OK)
        return rv;
    tess_card_rec_clear(&v->rec);
    v->rec = rec;
    if (tess_pin_policy_parse(&v->policy, v->rec.policy, err, sizeof(err))) {
        TESS_WARN("tpm: card %s: %s; using the default PIN policy", v->rec.serial, err);
        v->policy = tpm2_settings()->pin_policy;
    }
    return CKR_OK;
}

void tpm2_vsc_free(struct tpm2_vsc *v)
{
    if (!v)
        return;
    tpm2_secret_free(v->secret, TPM2_SECRET_LEN);
    tess_card_rec_clear(&v->rec);
    free(v);
}

/* Check a PIN with the card's retry counter around the TPM's own check: the
 * try is counted (committed) before the TPM sees the PIN, so a process killed
 * mid-check still spends it, and given back only on success. */
static CK_RV verify_pin(struct tpm2_vsc *v, CK_USER_TYPE who, const uint8_t *pin, size_t len,
                        uint8_t secret[TPM2_SECRET_LEN])
{
    struct tess_store *store;
    struct card_blob blob;
    TPM2B_AUTH auth;
    bool user = who != CKU_SO;
    CK_RV rv;

    rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        return rv;
    rv = tess_store_begin(store);
    if (rv != CKR_OK)
        return rv;
    rv = tpm2_vsc_reload(v);
    if (rv != CKR_OK)
        goto abort;
    if (user && !v->rec.user_pin_set) {
        rv = CKR_USER_PIN_NOT_INITIALIZED;
        goto abort;
    }
    int *left = user ? &v->rec.user_tries_left : &v->rec.so_tries_left;
    if (*left <= 0) {
        rv = CKR_PIN_LOCKED;
        goto abort;
    }
    (*left)--;
    rv = tess_store_card_set_tries(store, v->rec.id, v->rec.user_tries_left, v->rec.so_tries_left);
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    if (rv != CKR_OK)
        goto abort;

    rv = blob_decode(v->rec.drv_data, v->rec.drv_len, &blob);
    if (rv == CKR_OK)
        rv = tpm2_seal_auth(PIN_TAG, user ? blob.salt_user : blob.salt_so, pin, len, &auth);
    if (rv == CKR_OK) {
        rv = user ? tpm2_seal_open(&blob.user_pub, &blob.user_priv, &auth, secret, TPM2_SECRET_LEN)
                  : tpm2_seal_open(&blob.so_pub, &blob.so_priv, &auth, secret, TPM2_SECRET_LEN);
        tess_wipe(&auth, sizeof(auth));
    }
    if (rv == CKR_PIN_INCORRECT) {
        TESS_INFO("tpm: card %s: wrong %s PIN, %d tries left", v->rec.serial, user ? "user" : "SO", *left);
        return rv;
    }
    /* Success resets the counter; a PIN the TPM never checked (TPM in
     * lockout, TPM gone) gives back the try we took. Re-read first: another
     * process may have counted tries of its own meanwhile. */
    if (tess_store_begin(store) == CKR_OK) {
        CK_RV wrv = tpm2_vsc_reload(v);
        int max = user ? v->rec.user_tries_max : v->rec.so_tries_max;
        int *now = user ? &v->rec.user_tries_left : &v->rec.so_tries_left;
        int want = rv == CKR_OK ? max : (*now + 1 < max ? *now + 1 : max);
        if (wrv == CKR_OK && want != *now) {
            *now = want;
            wrv = tess_store_card_set_tries(store, v->rec.id, v->rec.user_tries_left, v->rec.so_tries_left);
        }
        if (wrv == CKR_OK)
            tess_store_commit(store);
        else
            tess_store_rollback(store);
    }
    return rv;
abort:
    tess_store_rollback(store);
    return rv;
}

CK_RV tpm2_vsc_login(struct tpm2_vsc *v, CK_USER_TYPE who, const uint8_t *pin, size_t len)
{
    uint8_t *secret = tpm2_secret_alloc(TPM2_SECRET_LEN);
    CK_RV rv;
    if (!secret)
        return CKR_HOST_MEMORY;
    rv = verify_pin(v, who, pin, len, secret);
    if (rv != CKR_OK) {
        tpm2_secret_free(secret, TPM2_SECRET_LEN);
        return rv;
    }
    tpm2_secret_free(v->secret, TPM2_SECRET_LEN);
    v->secret = secret;
    return CKR_OK;
}

void tpm2_vsc_logout(struct tpm2_vsc *v)
{
    tpm2_secret_free(v->secret, TPM2_SECRET_LEN);
    v->secret = NULL;
}

static CK_RV save_blob(struct tpm2_vsc *v, const struct card_blob *blob, bool reset_user, bool reset_so)
{
    struct tess_store *store;
    uint8_t *data = NULL;
    size_t len = 0;
    CK_RV rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        return rv;
    rv = blob_encode(blob, &data, &len);
    if (rv != CKR_OK)
        return rv;
    rv = tess_store_begin(store);
    if (rv == CKR_OK)
        rv = tpm2_vsc_reload(v);
    if (rv == CKR_OK) {
        free(v->rec.drv_data);
        v->rec.drv_data = data;
        v->rec.drv_len = len;
        data = NULL;
        if (reset_user) {
            v->rec.user_pin_set = 1;
            v->rec.user_tries_left = v->rec.user_tries_max;
        }
        if (reset_so)
            v->rec.so_tries_left = v->rec.so_tries_max;
        rv = tess_store_card_update(store, &v->rec);
    }
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    else
        tess_store_rollback(store);
    free(data);
    return rv;
}

CK_RV tpm2_vsc_block_user_pin(struct tpm2_vsc *v)
{
    struct tess_store *store;
    CK_RV rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        return rv;
    rv = tess_store_begin(store);
    if (rv != CKR_OK)
        return rv;
    rv = tpm2_vsc_reload(v);
    if (rv == CKR_OK) {
        v->rec.user_tries_left = 0;
        rv = tess_store_card_set_tries(store, v->rec.id, v->rec.user_tries_left, v->rec.so_tries_left);
    }
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    else
        tess_store_rollback(store);
    return rv;
}

CK_RV tpm2_vsc_set_user_pin(struct tpm2_vsc *v, const uint8_t *pin, size_t len, char *err, size_t errlen)
{
    if (!v->secret)
        return CKR_USER_NOT_LOGGED_IN;
    return tpm2_vsc_reset_user_pin(v, v->secret, pin, len, err, errlen);
}

CK_RV tpm2_vsc_reset_user_pin(struct tpm2_vsc *v, const uint8_t *secret, const uint8_t *pin, size_t len, char *err,
                              size_t errlen)
{
    struct card_blob blob;
    CK_RV rv;

    if (tess_pin_policy_check(&v->policy, pin, len, err, errlen)) {
        TESS_WARN("tpm: card %s: new PIN refused: %s", v->rec.serial, err);
        return policy_refusal(&v->policy, len);
    }
    rv = blob_decode(v->rec.drv_data, v->rec.drv_len, &blob);
    if (rv == CKR_OK)
        rv = make_user_seal(&blob, secret, pin, len);
    if (rv == CKR_OK)
        rv = save_blob(v, &blob, true, false);
    tess_wipe(&blob, sizeof(blob));
    return rv;
}

CK_RV tpm2_vsc_change_pin(struct tpm2_vsc *v, CK_USER_TYPE who, const uint8_t *old_pin, size_t old_len,
                          const uint8_t *new_pin, size_t new_len, char *err, size_t errlen)
{
    uint8_t *secret = NULL;
    struct card_blob blob;
    CK_RV rv;

    /* Refuse a bad new PIN before spending a try on the old one. */
    if (who == CKU_SO) {
        rv = check_so_pin(new_len, err, errlen);
        if (rv != CKR_OK)
            return rv;
    } else if (tess_pin_policy_check(&v->policy, new_pin, new_len, err, errlen)) {
        TESS_WARN("tpm: card %s: new PIN refused: %s", v->rec.serial, err);
        return policy_refusal(&v->policy, new_len);
    }
    secret = tpm2_secret_alloc(TPM2_SECRET_LEN);
    if (!secret)
        return CKR_HOST_MEMORY;
    rv = verify_pin(v, who, old_pin, old_len, secret);
    if (rv == CKR_OK)
        rv = blob_decode(v->rec.drv_data, v->rec.drv_len, &blob);
    if (rv == CKR_OK) {
        rv = who == CKU_SO ? make_so_seal(&blob, secret, new_pin, new_len)
                           : make_user_seal(&blob, secret, new_pin, new_len);
        if (rv == CKR_OK)
            rv = save_blob(v, &blob, who != CKU_SO, who == CKU_SO);
        tess_wipe(&blob, sizeof(blob));
    }
    tpm2_secret_free(secret, TPM2_SECRET_LEN);
    return rv;
}

/* The card again as new, authorised by its SO PIN: objects and admin key
 * gone, a new card secret, the PINs, policy and tries p names; its serial
 * and slot stay. One transaction: a process killed before it leaves the
 * card as it was. */
CK_RV tpm2_vsc_reinit(struct tpm2_vsc *v, const struct tpm2_vsc_params *p, char *err, size_t errlen)
{
    struct tess_store *store;
    struct card_parts parts;
    uint8_t *old = tpm2_secret_alloc(TPM2_SECRET_LEN);
    CK_RV rv;

    err[0] = '\0';
    memset(&parts, 0, sizeof(parts));
    if (!old)
        return CKR_HOST_MEMORY;
    /* Judge what is asked for before the SO PIN is tried. */
    rv = parts_make(p, p->policy, &parts, err, errlen);
    if (rv == CKR_OK)
        rv = verify_pin(v, CKU_SO, (const uint8_t *)p->so_pin, p->so_pin_len, old);
    if (rv == CKR_OK)
        rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        goto out;
    rv = tess_store_begin(store);
    if (rv != CKR_OK)
        goto out;
    rv = tess_store_objects_delete_card(store, v->rec.id);
    /* The challenges hold the old card secret: they go too (replaced by p's
     * admin key, if it names one). */
    if (rv == CKR_OK)
        rv = tess_store_admin_delete(store, v->rec.id);
    if (rv == CKR_OK)
        rv = tpm2_vsc_reload(v);
    if (rv == CKR_OK)
        rv = parts_to_rec(p, &parts, &v->rec);
    if (rv == CKR_OK)
        rv = tess_store_card_update(store, &v->rec);
    parts.admin.card_id = v->rec.id;
    if (rv == CKR_OK && parts.admin.present)
        rv = tess_store_admin_put(store, &parts.admin);
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    else
        tess_store_rollback(store);
    if (rv == CKR_OK) {
        v->policy = parts.policy;
        tpm2_vsc_logout(v);
        TESS_INFO("tpm: card %s initialised again as '%s'", v->rec.serial, v->rec.label);
    }
out:
    parts_free(&parts);
    tpm2_secret_free(old, TPM2_SECRET_LEN);
    return rv;
}
