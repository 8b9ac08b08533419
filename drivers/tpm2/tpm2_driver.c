/* The TPM 2.0 virtual-card driver's operations table: maps the core's calls
 * onto VSC records (tpm2_vsc.c) and TPM keys (tpm2_key.c). */
#include "config.h"

#include <openssl/obj_mac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/log.h"
#include "../../src/mech.h"
#include "../../src/util.h"
#include "tpm2.h"

#define TPM2_SLOT_BASE 0

struct tpm2_token {
    struct tpm2_vsc *vsc;            /* NULL for the spare, uninitialised slot */
    int slot_index;
};

static CK_RV drv_init(const struct tess_settings *settings)
{
    tpm2_set_settings(settings);
    return CKR_OK;
}

static void drv_fini(bool in_child)
{
    tpm2_conn_close(in_child);
}

static CK_RV drv_scan(struct tess_slot_report *out, size_t max, size_t *count)
{
    const struct tess_settings *set = tpm2_settings();
    struct tess_store *store;
    struct tess_card_rec *recs = NULL;
    size_t n = 0, k = 0;
    CK_RV rv;

    *count = 0;
    if (!set->tpm_enabled)
        return CKR_OK;
    rv = tpm2_store(&store, false);
    if (rv == CKR_OK)
        rv = tess_store_card_list(store, TPM2_DRIVER_NAME, &recs, &n);
    else if (rv == CKR_TOKEN_NOT_PRESENT)
        rv = CKR_OK;   /* no store yet: no cards */
    if (rv != CKR_OK)
        return rv;
    for (size_t i = 0; i < n && k < max; i++) {
        out[k].slot_id = TPM2_SLOT_BASE + (CK_SLOT_ID)recs[i].slot_index;
        out[k].card_key = (uint64_t)recs[i].id;
        k++;
    }
    /* One spare slot where C_InitToken makes a new card, while there is room
     * and a TPM to make it in. */
    if (set->spare_slot && (int)n < set->max_vsc && k < max && tpm2_conn_available()) {
        int idx = tpm2_vsc_free_slot_index(recs, n, set->max_vsc);
        bool wanted_free = set->spare_index >= 0;
        for (size_t i = 0; i < n && wanted_free; i++)
            wanted_free = recs[i].slot_index != set->spare_index;
        if (wanted_free)
            idx = set->spare_index;
        out[k].slot_id = TPM2_SLOT_BASE + (CK_SLOT_ID)idx;
        out[k].card_key = 0;
        k++;
    }
    for (size_t i = 0; i < n; i++)
        tess_card_rec_clear(&recs[i]);
    free(recs);
    *count = k;
    return CKR_OK;
}

static CK_RV drv_token_open(struct tess_token *tok, uint64_t card_key)
{
    struct tpm2_token *t = calloc(1, sizeof(*t));
    CK_RV rv = CKR_OK;
    if (!t)
        return CKR_HOST_MEMORY;
    t->slot_index = (int)(tok->slot_id - TPM2_SLOT_BASE);
    if (card_key) {
        rv = tpm2_vsc_open((int64_t)card_key, &t->vsc);
        if (rv != CKR_OK) {
            free(t);
            return rv;
        }
    }
    tok->drv = t;
    tok->card_key = card_key;
    tok->initialized = t->vsc != NULL;
    return CKR_OK;
}

static void drv_token_free(void *drv)
{
    struct tpm2_token *t = drv;
    if (!t)
        return;
    tpm2_vsc_free(t->vsc);
    free(t);
}

static CK_RV drv_slot_info(struct tess_token *tok, CK_SLOT_INFO *info)
{
    struct tpm2_token *t = tok->drv;
    char desc[64];
    snprintf(desc, sizeof(desc), "Tessera TPM virtual card reader %d", t->slot_index);
    tess_pad_copy(info->slotDescription, sizeof(info->slotDescription), desc);
    tess_pad_copy(info->manufacturerID, sizeof(info->manufacturerID), "Tessera");
    /* Always "inserted"; removable so sssd's default slot choice takes it. */
    info->flags = CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
    info->hardwareVersion.major = 2;
    info->hardwareVersion.minor = 0;
    info->firmwareVersion.major = 0;
    info->firmwareVersion.minor = 1;
    return CKR_OK;
}

static CK_FLAGS pin_flags(int left, int max, CK_FLAGS low, CK_FLAGS final, CK_FLAGS locked)
{
    if (left <= 0)
        return locked;
    if (left == 1)
        return low | final;
    return left < max ? low : 0;
}

static CK_RV drv_token_info(struct tess_token *tok, CK_TOKEN_INFO *info)
{
    struct tpm2_token *t = tok->drv;
    tess_pad_copy(info->manufacturerID, sizeof(info->manufacturerID), "Tessera");
    tess_pad_copy(info->model, sizeof(info->model), "TPM2 VSC");
    info->flags = CKF_RNG | CKF_LOGIN_REQUIRED;
    info->ulMaxPinLen = TESS_PIN_MAX_LEN;
    info->ulMinPinLen = 4;
    info->hardwareVersion.major = 2;
    info->firmwareVersion.major = 0;
    info->firmwareVersion.minor = 1;
    if (!t->vsc) {
        tess_pad_copy(info->label, sizeof(info->label), "");
        tess_pad_copy(info->serialNumber, sizeof(info->serialNumber), "");
        return CKR_OK;
    }
    /* Counters change in other processes too: read them fresh. */
    CK_RV rv = tpm2_vsc_reload(t->vsc);
    if (rv != CKR_OK)
        return rv;
    const struct tess_card_rec *r = &t->vsc->rec;
    tess_pad_copy(info->label, sizeof(info->label), r->label);
    tess_pad_copy(info->serialNumber, sizeof(info->serialNumber), r->serial);
    info->flags |= CKF_TOKEN_INITIALIZED;
    if (r->user_pin_set)
        info->flags |= CKF_USER_PIN_INITIALIZED;
    info->flags |= pin_flags(r->user_tries_left, r->user_tries_max, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY,
                             CKF_USER_PIN_LOCKED);
    info->flags |= pin_flags(r->so_tries_left, r->so_tries_max, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY,
                             CKF_SO_PIN_LOCKED);
    info->ulMinPinLen = (CK_ULONG)(t->vsc->policy.min_len < 4 ? t->vsc->policy.min_len : 4);
    return CKR_OK;
}

static CK_RV drv_load_objects(struct tess_token *tok)
{
    struct tpm2_token *t = tok->drv;
    struct tess_store *store;
    struct tess_object_rec *recs = NULL;
    size_t n = 0;
    CK_RV rv;

    if (!t->vsc)
        return CKR_OK;
    rv = tpm2_store(&store, false);
    if (rv != CKR_OK)
        return rv;
    t->vsc->data_version = tess_store_data_version(store);
    rv = tess_store_object_list(store, t->vsc->rec.id, &recs, &n);
    if (rv != CKR_OK)
        return rv;
    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        struct tess_object *o = tess_object_new();
        if (!o) {
            rv = CKR_HOST_MEMORY;
            break;
        }
        o->uid = (uint64_t)recs[i].id;
        o->token_object = true;
        if (recs[i].drv_data && recs[i].drv_data[0] == TPM2_PRIVATE_OBJ_VERSION) {
            /* Encrypted: it opens only with the card secret (after login). */
            uint8_t *plain = NULL;
            size_t plain_len = 0;
            if (!t->vsc->secret) {
                tess_object_free(tok, o);
                continue;
            }
            rv = tpm2_private_open(t->vsc, recs[i].drv_data, recs[i].drv_len, &plain, &plain_len);
            if (rv == CKR_OK)
                rv = tess_attrs_decode(&o->attrs, plain, plain_len);
            tess_free_secret(plain, plain_len);
        } else {
            rv = tess_attrs_decode(&o->attrs, recs[i].attrs, recs[i].attrs_len);
            if (rv == CKR_OK && recs[i].drv_data)
                rv = tpm2_key_decode(recs[i].drv_data, recs[i].drv_len, (struct tpm2_key **)&o->drv);
        }
        if (rv != CKR_OK) {
            TESS_ERR("tpm: object %lld of card %s is damaged; skipped", (long long)recs[i].id, t->vsc->rec.serial);
            tess_object_free(tok, o);
            rv = CKR_OK;
            continue;
        }
        rv = tess_token_add_object(tok, o);
        if (rv != CKR_OK)
            tess_object_free(tok, o);
    }
    for (size_t i = 0; i < n; i++)
        tess_object_rec_clear(&recs[i]);
    free(recs);
    return rv;
}

static bool drv_objects_stale(struct tess_token *tok)
{
    struct tpm2_token *t = tok->drv;
    struct tess_store *store;
    if (!t->vsc || tpm2_store(&store, false) != CKR_OK)
        return false;
    return tess_store_data_version(store) != t->vsc->data_version;
}

/* A private object that is not a TPM key keeps its attributes encrypted. */
static bool sealed_object(const struct tess_object *obj)
{
    CK_ULONG cls = 0;
    tess_attrs_get_ulong(&obj->attrs, CKA_CLASS, &cls);
    return !obj->drv && cls != CKO_PRIVATE_KEY && tess_attrs_get_bool(&obj->attrs, CKA_PRIVATE, false);
}

/* The store's form of an object: attributes, and the key blob or the
 * encrypted attributes. */
static CK_RV object_rec(const struct tpm2_vsc *v, const struct tess_object *obj, struct tess_object_rec *rec)
{
    CK_RV rv;
    if (!sealed_object(obj)) {
        rv = tess_attrs_encode(&obj->attrs, &rec->attrs, &rec->attrs_len);
        if (rv == CKR_OK && obj->drv)
            rv = tpm2_key_encode(obj->drv, &rec->drv_data, &rec->drv_len);
        return rv;
    }
    struct tess_attrs header = { 0 };
    uint8_t *full = NULL;
    size_t full_len = 0;
    CK_ULONG cls = 0;
    tess_attrs_get_ulong(&obj->attrs, CKA_CLASS, &cls);
    rv = tess_attrs_set_ulong(&header, CKA_CLASS, cls);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&header, CKA_TOKEN, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&header, CKA_PRIVATE, true);
    if (rv == CKR_OK)
        rv = tess_attrs_encode(&header, &rec->attrs, &rec->attrs_len);
    if (rv == CKR_OK)
        rv = tess_attrs_encode(&obj->attrs, &full, &full_len);
    if (rv == CKR_OK)
        rv = tpm2_private_seal(v, full, full_len, &rec->drv_data, &rec->drv_len);
    tess_free_secret(full, full_len);
    tess_attrs_free(&header);
    return rv;
}

static CK_RV insert_object(struct tess_store *store, struct tpm2_vsc *v, struct tess_object *obj)
{
    struct tess_object_rec rec = { .card_id = v->rec.id };
    CK_RV rv = object_rec(v, obj, &rec);
    if (rv == CKR_OK)
        rv = tess_store_object_insert(store, &rec);
    if (rv == CKR_OK)
        obj->uid = (uint64_t)rec.id;
    tess_object_rec_clear(&rec);
    return rv;
}

static CK_RV drv_store_object(struct tess_token *tok, struct tess_object *obj)
{
    struct tpm2_token *t = tok->drv;
    struct tess_store *store;
    CK_RV rv;
    if (!t->vsc)
        return CKR_TOKEN_NOT_RECOGNIZED;
    rv = tpm2_store(&store, false);
    if (rv == CKR_OK)
        rv = insert_object(store, t->vsc, obj);
    return rv;
}

static CK_RV drv_update_object(struct tess_token *tok, struct tess_object *obj)
{
    struct tpm2_token *t = tok->drv;
    struct tess_store *store;
    struct tess_object_rec rec = { .id = (int64_t)obj->uid };
    CK_RV rv = t->vsc ? tpm2_store(&store, false) : CKR_TOKEN_NOT_RECOGNIZED;
    if (rv == CKR_OK)
        rv = object_rec(t->vsc, obj, &rec);
    if (rv == CKR_OK)
        rv = tess_store_object_update(store, &rec);
    tess_object_rec_clear(&rec);
    return rv;
}

static CK_RV drv_destroy_object(struct tess_token *tok, struct tess_object *obj)
{
    struct tess_store *store;
    CK_RV rv = tpm2_store(&store, false);
    if (rv == CKR_OK)
        rv = tess_store_object_delete(store, (int64_t)obj->uid);
    return rv;
}

static void drv_free_object(void *drv)
{
    tpm2_key_free(drv);
}

static CK_RV drv_login(struct tess_token *tok, CK_USER_TYPE who, const CK_UTF8CHAR *pin, CK_ULONG len)
{
    struct tpm2_token *t = tok->drv;
    if (!t->vsc)
        return CKR_USER_PIN_NOT_INITIALIZED;
    return tpm2_vsc_login(t->vsc, who, pin, len);
}

static void drv_logout(struct tess_token *tok)
{
    struct tpm2_token *t = tok->drv;
    /* Flush the token's keys: their authValues leave the TPM with them. */
    for (struct tess_object *o = tok->objects; o; o = o->next)
        if (o->drv)
            tpm2_key_unload(o->drv);
    if (t->vsc)
        tpm2_vsc_logout(t->vsc);
}

/* A new card in the spare slot, or the card there made new again. */
static CK_RV init_card(struct tess_token *tok, struct tpm2_vsc_params *p)
{
    struct tpm2_token *t = tok->drv;
    char err[256];
    int64_t id;
    CK_RV rv;

    if (t->vsc && p->serial) {
        TESS_ERR("tpm: card %s has its serial: only a new card takes one", t->vsc->rec.serial);
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (t->vsc) {
        rv = tpm2_vsc_reinit(t->vsc, p, err, sizeof(err));
    } else {
        p->slot_index = t->slot_index;
        rv = tpm2_vsc_create(p, &id, err, sizeof(err));
        if (rv == CKR_OK)
            rv = tpm2_vsc_open(id, &t->vsc);
        if (rv == CKR_OK) {
            tok->card_key = (uint64_t)id;
            tok->initialized = true;
        }
    }
    if (rv != CKR_OK && err[0])
        TESS_ERR("tpm: %s", err);
    return rv;
}

static CK_RV drv_init_token(struct tess_token *tok, const CK_UTF8CHAR *so_pin, CK_ULONG so_len, const char *label)
{
    struct tpm2_token *t = tok->drv;
    struct tpm2_vsc_params p = { .label = label, .so_pin = (const char *)so_pin, .so_pin_len = so_len };
    /* C_InitToken says nothing of PIN policy and tries: a card keeps its
     * own (a new one gets tessera.conf's). */
    if (t->vsc) {
        p.policy = &t->vsc->policy;
        p.user_tries = t->vsc->rec.user_tries_max;
        p.so_tries = t->vsc->rec.so_tries_max;
    }
    return init_card(tok, &p);
}

static CK_RV drv_init_card(struct tess_token *tok, const struct tess_card_init *in)
{
    struct tpm2_vsc_params p = {
        .label = in->label, .so_pin = (const char *)in->so_pin, .so_pin_len = in->so_len,
        .new_so_pin = (const char *)in->new_so_pin, .new_so_pin_len = in->new_so_len,
        .user_pin = (const char *)in->user_pin, .user_pin_len = in->user_len,
        .policy = in->policy ? in->policy : &tpm2_settings()->pin_policy,
        .user_tries = in->user_tries, .so_tries = in->so_tries,
        .admin_alg = in->admin_alg, .admin_key = in->admin_key, .admin_key_len = in->admin_key_len,
        .serial = in->serial,
    };
    return init_card(tok, &p);
}

/* The card and everything of it leave the store in one statement. */
static CK_RV drv_erase_card(struct tess_token *tok, const uint8_t *resp, size_t rlen)
{
    struct tpm2_token *t = tok->drv;
    CK_RV rv = CKR_OK;

    if (!t->vsc)
        return CKR_OK;   /* the spare slot: nothing to erase */
    if (resp)
        rv = tpm2_admin_check(t->vsc, resp, rlen);
    else if (tok->login != CKU_SO && !tpm2_admin_orphaned(t->vsc))
        rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK)
        rv = tpm2_vsc_delete(t->vsc->rec.id);
    if (rv == CKR_OK) {
        TESS_INFO("tpm: card %s erased", t->vsc->rec.serial);
        tpm2_vsc_free(t->vsc);
        t->vsc = NULL;
        tok->initialized = false;
    }
    return rv;
}

static CK_RV drv_init_pin(struct tess_token *tok, const CK_UTF8CHAR *pin, CK_ULONG len)
{
    struct tpm2_token *t = tok->drv;
    char err[256];
    CK_RV rv;
    if (!t->vsc)
        return CKR_USER_NOT_LOGGED_IN;
    rv = tpm2_vsc_set_user_pin(t->vsc, pin, len, err, sizeof(err));
    if (rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        TESS_ERR("C_InitPIN: %s", err);
    return rv;
}

static CK_RV drv_set_pin(struct tess_token *tok, CK_USER_TYPE who, const CK_UTF8CHAR *old_pin, CK_ULONG old_len,
                         const CK_UTF8CHAR *new_pin, CK_ULONG new_len)
{
    struct tpm2_token *t = tok->drv;
    char err[256];
    CK_RV rv;
    if (!t->vsc)
        return CKR_USER_PIN_NOT_INITIALIZED;
    rv = tpm2_vsc_change_pin(t->vsc, who, old_pin, old_len, new_pin, new_len, err, sizeof(err));
    if (rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        TESS_ERR("C_SetPIN: %s", err);
    return rv;
}

static CK_RV set_public_material(const struct tpm2_key *k, struct tess_object *pub, struct tess_object *priv)
{
    const TPMT_PUBLIC *pa = &k->pub.publicArea;
    CK_RV rv;
    if (pa->type == TPM2_ALG_RSA) {
        static const uint8_t f4[] = { 0x01, 0x00, 0x01 };
        uint32_t e = pa->parameters.rsaDetail.exponent;
        uint8_t ebuf[4] = { (uint8_t)(e >> 24), (uint8_t)(e >> 16), (uint8_t)(e >> 8), (uint8_t)e };
        const uint8_t *ep = e ? ebuf : f4;
        size_t elen = e ? 4 : 3;
        while (e && elen > 1 && *ep == 0) {
            ep++;
            elen--;
        }
        rv = tess_attrs_set(&pub->attrs, CKA_MODULUS, pa->unique.rsa.buffer, pa->unique.rsa.size);
        if (rv == CKR_OK)
            rv = tess_attrs_set(&priv->attrs, CKA_MODULUS, pa->unique.rsa.buffer, pa->unique.rsa.size);
        if (rv == CKR_OK)
            rv = tess_attrs_set(&pub->attrs, CKA_PUBLIC_EXPONENT, ep, elen);
        if (rv == CKR_OK)
            rv = tess_attrs_set(&priv->attrs, CKA_PUBLIC_EXPONENT, ep, elen);
        if (rv == CKR_OK)
            rv = tess_attrs_set_ulong(&pub->attrs, CKA_MODULUS_BITS, (CK_ULONG)pa->unique.rsa.size * 8);
        return rv;
    }
    size_t flen = pa->unique.ecc.x.size;
    uint8_t pt[1 + 2 * 66];
    if (flen > 66 || pa->unique.ecc.y.size != flen)
        return CKR_DEVICE_ERROR;
    pt[0] = 0x04;   /* uncompressed */
    memcpy(pt + 1, pa->unique.ecc.x.buffer, flen);
    memcpy(pt + 1 + flen, pa->unique.ecc.y.buffer, flen);
    return tess_ec_point_attr(&pub->attrs, pt, 1 + 2 * flen);
}

static CK_RV drv_generate_key_pair(struct tess_token *tok, const struct tess_keygen_spec *spec,
                                   struct tess_object *pub, struct tess_object *priv)
{
    struct tpm2_token *t = tok->drv;
    struct tpm2_key *k = NULL;
    struct tess_store *store = NULL;
    CK_RV rv;

    if (!t->vsc || !t->vsc->secret)
        return CKR_USER_NOT_LOGGED_IN;
    rv = tpm2_key_generate(t->vsc, spec, &k);
    if (rv != CKR_OK)
        return rv;
    priv->drv = k;   /* owned by priv from here on */
    rv = set_public_material(k, pub, priv);
    if (rv == CKR_OK)
        rv = tess_keygen_complete(pub, priv);
    if (rv != CKR_OK || !spec->token)
        return rv;
    /* Both halves in one transaction: never a private key without its public one. */
    rv = tpm2_store(&store, false);
    if (rv == CKR_OK)
        rv = tess_store_begin(store);
    if (rv != CKR_OK)
        return rv;
    rv = insert_object(store, t->vsc, pub);
    if (rv == CKR_OK)
        rv = insert_object(store, t->vsc, priv);
    if (rv == CKR_OK)
        rv = tess_store_commit(store);
    else
        tess_store_rollback(store);
    return rv;
}

static CK_RV drv_import_key(struct tess_token *tok, EVP_PKEY *key, struct tess_object *priv, bool token)
{
    struct tpm2_token *t = tok->drv;
    struct tpm2_key *k = NULL;
    struct tess_store *store = NULL;
    CK_RV rv;

    if (!t->vsc || !t->vsc->secret)
        return CKR_USER_NOT_LOGGED_IN;
    rv = tpm2_key_import(t->vsc, key, &k);
    if (rv != CKR_OK)
        return rv;
    priv->drv = k;   /* owned by priv from here on */
    if (!token)
        return CKR_OK;
    rv = tpm2_store(&store, false);
    if (rv == CKR_OK)
        rv = insert_object(store, t->vsc, priv);
    return rv;
}

static CK_RV drv_rsa_sign(struct tess_token *tok, struct tess_object *key, CK_MECHANISM_TYPE hash,
                          const uint8_t *digest, size_t dlen, uint8_t *sig, size_t *siglen)
{
    struct tpm2_token *t = tok->drv;
    if (!key->drv || !t->vsc)
        return CKR_KEY_HANDLE_INVALID;
    return tpm2_key_rsa_sign(t->vsc, key->drv, hash, digest, dlen, sig, siglen);
}

static CK_RV drv_rsa_raw(struct tess_token *tok, struct tess_object *key, const uint8_t *in, size_t inlen,
                         uint8_t *out, size_t *outlen)
{
    struct tpm2_token *t = tok->drv;
    if (!key->drv || !t->vsc)
        return CKR_KEY_HANDLE_INVALID;
    return tpm2_key_rsa_raw(t->vsc, key->drv, in, inlen, out, outlen);
}

static CK_RV drv_ecdsa(struct tess_token *tok, struct tess_object *key, const uint8_t *digest, size_t dlen,
                       uint8_t *rs, size_t *rslen)
{
    struct tpm2_token *t = tok->drv;
    if (!key->drv || !t->vsc)
        return CKR_KEY_HANDLE_INVALID;
    return tpm2_key_ecdsa(t->vsc, key->drv, digest, dlen, rs, rslen);
}

static CK_RV drv_ecdh(struct tess_token *tok, struct tess_object *key, const uint8_t *point, size_t plen,
                      uint8_t *z, size_t *zlen)
{
    struct tpm2_token *t = tok->drv;
    if (!key->drv || !t->vsc)
        return CKR_KEY_HANDLE_INVALID;
    return tpm2_key_ecdh(t->vsc, key->drv, point, plen, z, zlen);
}

static CK_RV drv_random(struct tess_token *tok, uint8_t *out, size_t len)
{
    ESYS_CONTEXT *esys;
    CK_RV rv = tpm2_conn_get(&esys);
    while (rv == CKR_OK && len) {
        TPM2B_DIGEST *r = NULL;
        UINT16 want = len > 32 ? 32 : (UINT16)len;
        TSS2_RC rc = Esys_GetRandom(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &r);
        if (rc != TSS2_RC_SUCCESS)
            return tpm2_rv(rc, "get random");
        if (r->size == 0 || r->size > want) {
            Esys_Free(r);
            return CKR_DEVICE_ERROR;
        }
        memcpy(out, r->buffer, r->size);
        out += r->size;
        len -= r->size;
        tess_wipe(r, sizeof(*r));
        Esys_Free(r);
    }
    return rv;
}

/* ---- administration ---- */

static CK_RV drv_admin_info(struct tess_token *tok, struct tess_admin_info *info)
{
    struct tpm2_token *t = tok->drv;
    struct tpm2_admin_state st;
    CK_RV rv;

    info->card_type = CKT_TESSERA_TPM_VSC;
    if (!t->vsc)
        return CKR_TOKEN_NOT_RECOGNIZED;   /* the spare slot: no card yet */
    rv = tpm2_admin_get_state(t->vsc, &st);
    if (rv != CKR_OK)
        return rv;
    info->key_set = st.set;
    info->key_default = st.is_default;
    info->alg = st.alg;
    memcpy(info->kcv, st.kcv, 3);
    info->challenge_len = st.set ? tess_admin_block_len(st.alg) : 0;
    info->challenges_left = st.stock;
    info->pending = st.pending;
    info->tries_left = st.set ? st.tries_left : -1;
    info->tries_max = st.set ? st.tries_max : -1;
    return CKR_OK;
}

static CK_RV drv_admin_challenge(struct tess_token *tok, bool fresh, uint8_t *out, size_t *len)
{
    struct tpm2_token *t = tok->drv;
    if (!t->vsc)
        return CKR_TOKEN_NOT_RECOGNIZED;
    return tpm2_admin_challenge(t->vsc, fresh, out, len);
}

static CK_RV drv_unblock_pin(struct tess_token *tok, const uint8_t *resp, size_t rlen, const CK_UTF8CHAR *pin,
                             CK_ULONG len)
{
    struct tpm2_token *t = tok->drv;
    char err[256];
    CK_RV rv;
    if (!t->vsc)
        return CKR_TOKEN_NOT_RECOGNIZED;
    rv = tpm2_admin_unblock(t->vsc, resp, rlen, pin, len, err, sizeof(err));
    if (rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        TESS_ERR("unblock: %s", err);
    return rv;
}

static CK_RV drv_lock_pin(struct tess_token *tok, const uint8_t *resp, size_t rlen)
{
    struct tpm2_token *t = tok->drv;
    if (!t->vsc)
        return CKR_TOKEN_NOT_RECOGNIZED;
    return tpm2_admin_lock_pin(t->vsc, resp, rlen);
}

static CK_RV drv_set_admin_key(struct tess_token *tok, const uint8_t *resp, size_t rlen, enum tess_key_alg alg,
                               const uint8_t *key, size_t key_len)
{
    struct tpm2_token *t = tok->drv;
    if (!t->vsc)
        return CKR_TOKEN_NOT_RECOGNIZED;
    return tpm2_admin_set_key(t->vsc, resp, rlen, t->vsc->secret, alg, key, key_len);
}

const struct tess_driver tess_tpm2_driver = {
    .abi = TESS_DRIVER_ABI,
    .name = TPM2_DRIVER_NAME,
    .init = drv_init,
    .fini = drv_fini,
    .scan = drv_scan,
    .token_open = drv_token_open,
    .token_free = drv_token_free,
    .slot_info = drv_slot_info,
    .token_info = drv_token_info,
    .load_objects = drv_load_objects,
    .objects_stale = drv_objects_stale,
    .store_object = drv_store_object,
    .update_object = drv_update_object,
    .destroy_object = drv_destroy_object,
    .free_object = drv_free_object,
    .login = drv_login,
    .logout = drv_logout,
    .init_token = drv_init_token,
    .init_pin = drv_init_pin,
    .set_pin = drv_set_pin,
    .generate_key_pair = drv_generate_key_pair,
    .import_key = drv_import_key,
    .rsa_sign_pkcs1 = drv_rsa_sign,
    .rsa_raw = drv_rsa_raw,
    .ecdsa_sign = drv_ecdsa,
    .ecdh = drv_ecdh,
    .random = drv_random,
    .admin_info = drv_admin_info,
    .admin_challenge = drv_admin_challenge,
    .unblock_pin = drv_unblock_pin,
    .set_admin_key = drv_set_admin_key,
    .init_card = drv_init_card,
    .erase_card = drv_erase_card,
    .lock_pin = drv_lock_pin,
};
