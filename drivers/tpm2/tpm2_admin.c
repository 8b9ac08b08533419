/* A TPM card's administration: its admin key, one-time challenges and the
 * PIN unblock they authorise (see tpm2.h for the scheme).
 *
 * The state lives in the store's card_admin row: tries_left counts wrong
 * responses, data is the blob below. Entry 0 is the pending challenge when
 * `pending`, else the next one to give.
 *
 *   version 1 | alg | kcv[3] | pending | count |
 *   count x ( challenge_len | challenge | salt[16] | seal public | seal private )
 *
 * Each seal holds (card secret | alg | admin key) under the authValue
 * SHA-256(RESPONSE_TAG | salt | E(K, challenge)). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <tss2/tss2_mu.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "tpm2.h"

#define ADMIN_BLOB_VERSION 1
#define RESPONSE_TAG "tessera-response-v1"
#define BLOCK_MAX 16
#define KEY_MAX 32
#define SEALED_MAX (TPM2_SECRET_LEN + 1 + KEY_MAX)

struct challenge_entry {
    uint8_t len;
    uint8_t challenge[BLOCK_MAX];
    uint8_t salt[TPM2_SALT_LEN];
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
};

struct admin_blob {
    enum tess_key_alg alg;
    uint8_t kcv[3];
    bool pending;
    int count;
    struct challenge_entry e[TPM2_ADMIN_STOCK];
};

/* What a correct response releases. */
struct admin_secret {
    uint8_t secret[TPM2_SECRET_LEN];
    enum tess_key_alg alg;
    uint8_t key[KEY_MAX];
    size_t key_len;
};

static CK_RV blob_encode(const struct admin_blob *b, uint8_t **out, size_t *outlen)
{
    size_t cap = 7 + TPM2_ADMIN_STOCK * (1 + BLOCK_MAX + TPM2_SALT_LEN + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE));
    uint8_t *buf = malloc(cap);
    size_t off = 0;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (!buf)
        return CKR_HOST_MEMORY;
    buf[off++] = ADMIN_BLOB_VERSION;
    buf[off++] = (uint8_t)b->alg;
    memcpy(buf + off, b->kcv, 3);
    off += 3;
    buf[off++] = b->pending;
    buf[off++] = (uint8_t)b->count;
    for (int i = 0; i < b->count && !rc; i++) {
        const struct challenge_entry *e = &b->e[i];
        buf[off++] = e->len;
        memcpy(buf + off, e->challenge, e->len);
        off += e->len;
        memcpy(buf + off, e->salt, TPM2_SALT_LEN);
        off += TPM2_SALT_LEN;
        rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&e->pub, buf, cap, &off);
        if (!rc)
            rc = Tss2_MU_TPM2B_PRIVATE_Marshal(&e->priv, buf, cap, &off);
    }
    if (rc) {
        free(buf);
        return tpm2_rv(rc, "encode admin state");
    }
    *out = buf;
    *outlen = off;
    return CKR_OK;
}

static CK_RV blob_decode(const uint8_t *in, size_t len, struct admin_blob *b)
{
    size_t off = 7;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memset(b, 0, sizeof(*b));
    if (len < off || in[0] != ADMIN_BLOB_VERSION || in[1] > TESS_KEY_AES256 || in[6] > TPM2_ADMIN_STOCK)
        goto bad;
    b->alg = (enum tess_key_alg)in[1];
    memcpy(b->kcv, in + 2, 3);
    b->pending = in[5] != 0;
    b->count = in[6];
    for (int i = 0; i < b->count && !rc; i++) {
        struct challenge_entry *e = &b->e[i];
        if (off + 1 > len || in[off] != tess_admin_block_len(b->alg) || off + 1 + in[off] + TPM2_SALT_LEN > len)
            goto bad;
        e->len = in[off++];
        memcpy(e->challenge, in + off, e->len);
        off += e->len;
        memcpy(e->salt, in + off, TPM2_SALT_LEN);
        off += TPM2_SALT_LEN;
        rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(in, len, &off, &e->pub);
        if (!rc)
            rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(in, len, &off, &e->priv);
    }
    if (rc)
        return tpm2_rv(rc, "decode admin state");
    if (b->pending && b->count == 0)
        goto bad;
    return CKR_OK;
bad:
    TESS_ERR("tpm: a card's admin state has an unknown format");
    return CKR_DEVICE_ERROR;
}

static CK_RV save(struct tess_store *store, struct tess_admin_rec *rec, const struct admin_blob *b)
{
    uint8_t *data = NULL;
    size_t len = 0;
    CK_RV rv = blob_encode(b, &data, &len);
    if (rv != CKR_OK)
        return rv;
    free(rec->data);
    rec->data = data;
    rec->data_len = len;
    return tess_store_admin_put(store, rec);
}

CK_RV tpm2_admin_build(const uint8_t secret[TPM2_SECRET_LEN], enum tess_key_alg alg, const uint8_t *key,
                       size_t key_len, struct tess_admin_rec *rec)
{
    struct admin_blob *b = calloc(1, sizeof(*b));
    uint8_t sealed[SEALED_MAX], resp[BLOCK_MAX];
    size_t blk = tess_admin_block_len(alg);
    CK_RV rv;

    if (!b)
        return CKR_HOST_MEMORY;
    if (key_len != tess_key_alg_len(alg)) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    b->alg = alg;
    rv = tess_admin_kcv(alg, key, key_len, b->kcv);
    memcpy(sealed, secret, TPM2_SECRET_LEN);
    sealed[TPM2_SECRET_LEN] = (uint8_t)alg;
    memcpy(sealed + TPM2_SECRET_LEN + 1, key, key_len);
    for (int i = 0; i < TPM2_ADMIN_STOCK && rv == CKR_OK; i++) {
        struct challenge_entry *e = &b->e[i];
        e->len = (uint8_t)blk;
        if (RAND_bytes(e->challenge, (int)blk) != 1) {
            rv = CKR_FUNCTION_FAILED;
            break;
        }
        rv = tess_admin_response(alg, key, key_len, e->challenge, blk, resp);
        if (rv == CKR_OK)
            rv = tpm2_seal_make(RESPONSE_TAG, e->salt, sealed, TPM2_SECRET_LEN + 1 + key_len, resp, blk, &e->pub,
                                &e->priv);
        if (rv == CKR_OK)
            b->count++;
    }
    if (rv != CKR_OK)
        goto out;
    free(rec->data);
    rec->data = NULL;
    rec->present = true;
    rec->tries_left = rec->tries_max = TPM2_ADMIN_TRIES;
    rv = blob_encode(b, &rec->data, &rec->data_len);
out:
    tess_wipe(sealed, sizeof(sealed));
    tess_wipe(resp, sizeof(resp));
    tess_wipe(b, sizeof(*b));
    free(b);
    return rv;
}

static CK_RV load(struct tess_store *store, int64_t card_id, struct tess_admin_rec *rec, struct admin_blob *b)
{
    CK_RV rv = tess_store_admin_get(store, card_id, rec);
    if (rv != CKR_OK)
        return rv;
    if (!rec->present)
        return CKR_TESSERA_NO_ADMIN_KEY;
    return blob_decode(rec->data, rec->data_len, b);
}

CK_RV tpm2_admin_get_state(struct tpm2_vsc *v, struct tpm2_admin_state *st)
{
    struct tess_store *store;
    struct tess_admin_rec rec = { 0 };
    struct admin_blob *b = calloc(1, sizeof(*b));
    CK_RV rv = b ? tpm2_store(&store, false) : CKR_HOST_MEMORY;

    memset(st, 0, sizeof(*st));
    if (rv == CKR_OK)
        rv = load(store, v->rec.id, &rec, b);
    if (rv == CKR_TESSERA_NO_ADMIN_KEY) {
        rv = CKR_OK;   /* a card without one: st->set stays false */
    } else if (rv == CKR_OK) {
        static const uint8_t zero[3];
        uint8_t def[3];
        st->set = true;
        st->alg = b->alg;
        memcpy(st->kcv, b->kcv, 3);
        st->is_default = b->alg == TESS_KEY_3DES &&
                         tess_admin_kcv(TESS_KEY_3DES, tess_admin_default_key, 24, def) == CKR_OK &&
                         memcmp(def, b->kcv, 3) == 0 && memcmp(def, zero, 3) != 0;
        st->stock = b->count;
        st->pending = b->pending;
        st->tries_left = rec.tries_left;
        st->tries_max = rec.tries_max;
    }
    tess_admin_rec_clear(&rec);
    free(b);
    return rv;
}

/* Open a write transaction on the card's admin state, refusing a card whose
 * unblock is locked. On failure nothing is left open. */
static CK_RV begin_unlocked(struct tpm2_vsc *v, struct tess_store **store, struct tess_admin_rec *rec,
                            struct admin_blob *b)
{
    CK_RV rv = tpm2_store(store, false);
    if (rv == CKR_OK)
        rv = tess_store_begin(*store);
    if (rv != CKR_OK)
        return rv;
    rv = load(*store, v->rec.id, rec, b);
    if (rv == CKR_OK && rec->tries_left <= 0)
        rv = CKR_TESSERA_UNBLOCK_LOCKED;
    if (rv != CKR_OK)
        tess_store_rollback(*store);
    return rv;
}

/* Entry 0 (the pending challenge) goes, with its seal. */
static void drop_first(struct admin_blob *b)
{
    memmove(&b->e[0], &b->e[1], (size_t)(b->count - 1) * sizeof(b->e[0]));
    b->count--;
    b->pending = false;
}

CK_RV tpm2_admin_challenge(struct tpm2_vsc *v, bool fresh, uint8_t *out, size_t *len)
{
    struct tess_store *store;
    struct tess_admin_rec rec = { 0 };
    struct admin_blob *b = calloc(1, sizeof(*b));
    bool changed = false;
    CK_RV rv = b ? begin_unlocked(v, &store, &rec, b) : CKR_HOST_MEMORY;

    if (rv != CKR_OK)
        goto done;
    if (b->pending && fresh) {
        /* The old challenge is thrown away: its response can never be used. */
        drop_first(b);
        changed = true;
    }
    if (b->count == 0) {
        /* Keep the discard (if any): the old challenge stays thrown away. */
        rv = changed ? save(store, &rec, b) : CKR_OK;
        if (rv != CKR_OK)
            goto out;
        rv = tess_store_commit(store);
        if (rv == CKR_OK)
            rv = CKR_TESSERA_NO_CHALLENGES_LEFT;
        goto done;
    }
    if (*len < b->e[0].len) {
        *len = b->e[0].len;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    if (!b->pending) {
        b->pending = true;
        changed = true;
    }
    rv = changed ? save(store, &rec, b) : CKR_OK;
    if (rv != CKR_OK)
        goto out;
    rv = tess_store_commit(store);
    if (rv == CKR_OK) {
        memcpy(out, b->e[0].challenge, b->e[0].len);
        *len = b->e[0].len;
    }
    goto done;
out:
    tess_store_rollback(store);
done:
    tess_admin_rec_clear(&rec);
    if (b)
        tess_wipe(b, sizeof(*b));
    free(b);
    return rv;
}

/* Check a response to the pending challenge. The challenge is spent and the
 * try counted (committed) before the TPM sees the response, so a process
 * killed mid-check still spends both; the try is given back on success and
 * when the TPM could not check at all. */
static CK_RV prove(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen, struct admin_secret *out)
{
    struct tess_store *store;
    struct tess_admin_rec rec = { 0 };
    struct admin_blob *b = calloc(1, sizeof(*b));
    struct challenge_entry entry;
    uint8_t sealed[SEALED_MAX];
    TPM2B_AUTH auth;
    size_t klen;
    CK_RV rv = b ? begin_unlocked(v, &store, &rec, b) : CKR_HOST_MEMORY;

    memset(&entry, 0, sizeof(entry));
    if (rv != CKR_OK)
        goto done;
    if (!b->pending)
        rv = CKR_TESSERA_NO_CHALLENGE;
    else if (rlen != b->e[0].len)
        rv = CKR_ARGUMENTS_BAD;   /* not a response of this card's kind: costs nothing */
    if (rv != CKR_OK) {
        tess_store_rollback(store);
        goto done;
    }
    entry = b->e[0];
    drop_first(b);
    rec.tries_left--;
    rv = save(store, &rec, b);
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    else
        tess_store_rollback(store);
    if (rv != CKR_OK)
        goto done;

    klen = tess_key_alg_len(b->alg);
    rv = tpm2_seal_auth(RESPONSE_TAG, entry.salt, resp, rlen, &auth);
    if (rv == CKR_OK) {
        rv = tpm2_seal_open(&entry.pub, &entry.priv, &auth, sealed, TPM2_SECRET_LEN + 1 + klen);
        tess_wipe(&auth, sizeof(auth));
    }
    if (rv == CKR_PIN_INCORRECT) {
        TESS_INFO("tpm: card %s: wrong unblock response, %d tries left", v->rec.serial, rec.tries_left);
        rv = CKR_TESSERA_RESPONSE_INCORRECT;
        goto done;
    }
    if (rv == CKR_OK) {
        memcpy(out->secret, sealed, TPM2_SECRET_LEN);
        out->alg = (enum tess_key_alg)sealed[TPM2_SECRET_LEN];
        out->key_len = klen;
        memcpy(out->key, sealed + TPM2_SECRET_LEN + 1, klen);
        if (out->alg != b->alg) {
            TESS_ERR("tpm: card %s: a challenge seal disagrees with the admin state", v->rec.serial);
            rv = CKR_DEVICE_ERROR;
        }
    }
    /* Give the try back (success: all of them). Re-read first: another
     * process may have changed the state meanwhile. */
    if (rv != CKR_TESSERA_RESPONSE_INCORRECT && tess_store_begin(store) == CKR_OK) {
        tess_admin_rec_clear(&rec);
        CK_RV wrv = tess_store_admin_get(store, v->rec.id, &rec);
        int want = rv == CKR_OK ? rec.tries_max : (rec.tries_left < rec.tries_max ? rec.tries_left + 1 : rec.tries_max);
        if (wrv == CKR_OK && rec.present && want != rec.tries_left) {
            rec.tries_left = want;
            wrv = tess_store_admin_put(store, &rec);
        }
        if (wrv == CKR_OK)
            tess_store_commit(store);
        else
            tess_store_rollback(store);
    }
done:
    tess_wipe(sealed, sizeof(sealed));
    tess_wipe(&entry, sizeof(entry));
    tess_admin_rec_clear(&rec);
    if (b)
        tess_wipe(b, sizeof(*b));
    free(b);
    return rv;
}

/* Seal a new stock for key and store it in one transaction: the card moves
 * from its old key to this one at the commit, never in between. */
static CK_RV install(struct tpm2_vsc *v, const uint8_t *secret, enum tess_key_alg alg, const uint8_t *key,
                     size_t key_len)
{
    struct tess_store *store;
    struct tess_admin_rec rec = { 0 };
    CK_RV rv = tpm2_store(&store, false);

    if (rv == CKR_OK)
        rv = tpm2_admin_build(secret, alg, key, key_len, &rec);
    if (rv != CKR_OK)
        goto out;
    rec.card_id = v->rec.id;
    rv = tess_store_begin(store);
    if (rv != CKR_OK)
        goto out;
    rv = tess_store_admin_put(store, &rec);
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    else
        tess_store_rollback(store);
out:
    tess_admin_rec_clear(&rec);
    return rv;
}

CK_RV tpm2_admin_unblock(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen, const uint8_t *pin, size_t pin_len,
                         char *err, size_t errlen)
{
    struct admin_secret *as = (struct admin_secret *)tpm2_secret_alloc(sizeof(*as));
    CK_RV rv;

    err[0] = '\0';
    if (!as)
        return CKR_HOST_MEMORY;
    /* A PIN the policy refuses must not cost the user a challenge. */
    if (tess_pin_policy_check(&v->policy, pin, pin_len, err, errlen)) {
        rv = tess_pin_policy_length_ok(&v->policy, pin_len) ? CKR_PIN_INVALID : CKR_PIN_LEN_RANGE;
        goto out;
    }
    rv = prove(v, resp, rlen, as);
    if (rv == CKR_OK)
        rv = tpm2_vsc_reset_user_pin(v, as->secret, pin, pin_len, err, errlen);
    if (rv != CKR_OK)
        goto out;
    TESS_INFO("tpm: card %s: user PIN unblocked by challenge/response", v->rec.serial);
    /* The spent challenge is replaced while the key is at hand. The PIN is
     * already set: a failure here only leaves fewer challenges. */
    if (install(v, as->secret, as->alg, as->key, as->key_len) != CKR_OK)
        TESS_WARN("tpm: card %s: could not renew its challenges; %s", v->rec.serial,
                  "set the admin key again to restore them");
out:
    tpm2_secret_free((uint8_t *)as, sizeof(*as));
    return rv;
}

CK_RV tpm2_admin_check(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen)
{
    struct admin_secret *as = (struct admin_secret *)tpm2_secret_alloc(sizeof(*as));
    CK_RV rv = as ? prove(v, resp, rlen, as) : CKR_HOST_MEMORY;
    tpm2_secret_free((uint8_t *)as, sizeof(*as));
    return rv;
}

CK_RV tpm2_admin_lock_pin(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen)
{
    struct admin_secret *as = (struct admin_secret *)tpm2_secret_alloc(sizeof(*as));
    CK_RV rv = as ? prove(v, resp, rlen, as) : CKR_HOST_MEMORY;
    if (rv == CKR_OK)
        rv = tpm2_vsc_block_user_pin(v);
    if (rv == CKR_OK) {
        TESS_INFO("tpm: card %s: user PIN locked by challenge/response", v->rec.serial);
        /* As after an unblock: the spent challenge is replaced. */
        if (install(v, as->secret, as->alg, as->key, as->key_len) != CKR_OK)
            TESS_WARN("tpm: card %s: could not renew its challenges; %s", v->rec.serial,
                      "set the admin key again to restore them");
    }
    tpm2_secret_free((uint8_t *)as, sizeof(*as));
    return rv;
}

bool tpm2_admin_orphaned(struct tpm2_vsc *v)
{
    struct tpm2_admin_state st;
    if (tpm2_vsc_reload(v) != CKR_OK || v->rec.so_tries_left > 0)
        return false;
    if (tpm2_admin_get_state(v, &st) != CKR_OK)
        return false;
    return !st.set || st.tries_left <= 0 || st.stock <= 0;
}

CK_RV tpm2_admin_set_key(struct tpm2_vsc *v, const uint8_t *resp, size_t rlen, const uint8_t *so_secret,
                         enum tess_key_alg alg, const uint8_t *key, size_t key_len)
{
    struct admin_secret *as = (struct admin_secret *)tpm2_secret_alloc(sizeof(*as));
    CK_RV rv = CKR_OK;

    if (!as)
        return CKR_HOST_MEMORY;
    if (key_len != tess_key_alg_len(alg)) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    if (resp)
        rv = prove(v, resp, rlen, as);
    else if (so_secret)
        memcpy(as->secret, so_secret, TPM2_SECRET_LEN);
    else
        rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK)
        rv = install(v, as->secret, alg, key, key_len);
    if (rv == CKR_OK)
        TESS_INFO("tpm: card %s: admin key changed", v->rec.serial);
out:
    tpm2_secret_free((uint8_t *)as, sizeof(*as));
    return rv;
}
