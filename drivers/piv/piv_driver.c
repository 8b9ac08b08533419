/* The PIV driver's operations table: cards in PC/SC readers, one slot per
 * reader. A reader without a card, or with a card that has no PIV
 * application, is a slot without a token (CKF_TOKEN_PRESENT clear): clients
 * such as pam_pkcs11 give up on every slot when one answers
 * CKR_TOKEN_NOT_RECOGNIZED, so Tessera never does that for a foreign card. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "../../src/keyimport.h"
#include "../../src/log.h"
#include "../../src/mech.h"
#include "../../src/settings.h"
#include "../../src/store.h"
#include "../../src/util.h"
#include "piv_card.h"
#include "piv_parse.h"
#include "tlv.h"

#define PIV_SLOT_BASE 0x100
#define MAX_READERS 32

static struct {
    bool in_child;               /* after fork: handles are the parent's, never touch them */
    struct tess_settings settings;
    SCARDCONTEXT ctx;
    bool have_ctx;
    struct {
        char name[256];
        CK_SLOT_ID slot_id;
    } readers[MAX_READERS];
    size_t nreaders;
} piv;

static CK_RV card_begin(struct piv_token *t);

static CK_RV drv_init(const struct tess_settings *settings)
{
    piv.settings = *settings;
    piv.in_child = false;
    return CKR_OK;
}

static void drv_fini(bool in_child)
{
    /* A PC/SC context must not be used across fork(); the child forgets it. */
    if (piv.have_ctx && !in_child)
        SCardReleaseContext(piv.ctx);
    piv.have_ctx = false;
    piv.nreaders = 0;
    piv.in_child = in_child;
}

static bool context(void)
{
    if (piv.have_ctx && SCardIsValidContext(piv.ctx) == SCARD_S_SUCCESS)
        return true;
    if (piv.have_ctx)
        SCardReleaseContext(piv.ctx);
    piv.have_ctx = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &piv.ctx) == SCARD_S_SUCCESS;
    if (!piv.have_ctx)
        TESS_DBG("pcsc: no PC/SC service: no card readers");
    return piv.have_ctx;
}

/* Slot ids stay with a reader's name from C_Initialize to C_Finalize. */
static CK_SLOT_ID slot_for_reader(const char *name)
{
    for (size_t i = 0; i < piv.nreaders; i++)
        if (!strcmp(piv.readers[i].name, name))
            return piv.readers[i].slot_id;
    if (piv.nreaders == MAX_READERS)
        return (CK_SLOT_ID)-1;
    snprintf(piv.readers[piv.nreaders].name, sizeof(piv.readers[0].name), "%s", name);
    piv.readers[piv.nreaders].slot_id = PIV_SLOT_BASE + piv.nreaders;
    return piv.readers[piv.nreaders++].slot_id;
}

static const char *reader_of_slot(CK_SLOT_ID id)
{
    for (size_t i = 0; i < piv.nreaders; i++)
        if (piv.readers[i].slot_id == id)
            return piv.readers[i].name;
    return NULL;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ *p++) * 16777619u;
    return h;
}

static CK_RV drv_scan(struct tess_slot_report *out, size_t max, size_t *count)
{
    char names[4096];
    DWORD len = sizeof(names);
    SCARD_READERSTATE st[MAX_READERS];
    size_t n = 0;

    *count = 0;
    if (!piv.settings.pcsc_enabled || !context())
        return CKR_OK;
    LONG rc = SCardListReaders(piv.ctx, NULL, names, &len);
    if (rc == SCARD_E_NO_READERS_AVAILABLE)
        return CKR_OK;
    if (rc != SCARD_S_SUCCESS) {
        /* pcscd hiccup: the core keeps the slots it has (a failed scan). */
        TESS_WARN("pcsc: cannot list readers: %s", pcsc_stringify_error(rc));
        return CKR_DEVICE_ERROR;
    }
    for (const char *r = names; *r && n < MAX_READERS; r += strlen(r) + 1) {
        memset(&st[n], 0, sizeof(st[n]));
        st[n].szReader = r;
        st[n].dwCurrentState = SCARD_STATE_UNAWARE;
        n++;
    }
    if (n && SCardGetStatusChange(piv.ctx, 0, st, (DWORD)n) != SCARD_S_SUCCESS)
        return CKR_DEVICE_ERROR;
    for (size_t i = 0; i < n && *count < max; i++) {
        CK_SLOT_ID id = slot_for_reader(st[i].szReader);
        if (id == (CK_SLOT_ID)-1)
            continue;
        out[*count].slot_id = id;
        /* A card's key: the reader's event count (pcsc-lite keeps it in the
         * high 16 bits) and its ATR, so a re-inserted card is a new card. */
        out[*count].card_key = (st[i].dwEventState & SCARD_STATE_PRESENT)
                                   ? ((uint64_t)(st[i].dwEventState >> 16) << 32) |
                                         (fnv1a(st[i].rgbAtr, st[i].cbAtr) | 1)
                                   : 0;
        (*count)++;
    }
    return CKR_OK;
}

static void secret_drop(uint8_t **p, size_t *len)
{
    if (*p) {
        tess_wipe(*p, *len);
        munlock(*p, *len);
        free(*p);
    }
    *p = NULL;
    *len = 0;
}

static CK_RV secret_keep(uint8_t **p, size_t *len, const uint8_t *v, size_t n)
{
    secret_drop(p, len);
    *p = malloc(n ? n : 1);
    if (!*p)
        return CKR_HOST_MEMORY;
    mlock(*p, n ? n : 1);
    memcpy(*p, v, n);
    *len = n;
    return CKR_OK;
}

static void token_forget(struct piv_token *t)
{
    secret_drop(&t->pin, &t->pin_len);
    secret_drop(&t->puk, &t->puk_len);
    t->pin_verified = false;
}

static void drv_token_free(void *drv)
{
    struct piv_token *t = drv;
    if (!t)
        return;
    token_forget(t);
    if (!piv.in_child)
        channel_disconnect(&t->ch);
    free(t);
}

static CK_RV drv_token_open(struct tess_token *tok, uint64_t card_key)
{
    struct piv_token *t = calloc(1, sizeof(*t));
    const char *reader = reader_of_slot(tok->slot_id);
    CK_RV rv;

    if (!t)
        return CKR_HOST_MEMORY;
    snprintf(t->reader, sizeof(t->reader), "%s", reader ? reader : "?");
    tok->drv = t;
    tok->card_key = card_key;
    tok->initialized = true;
    if (!card_key || !reader) {
        tok->present = false;
        return CKR_OK;
    }
    rv = channel_connect(&t->ch, piv.ctx, reader);
    if (rv == CKR_OK)
        rv = channel_begin(&t->ch);
    if (rv != CKR_OK) {
        tok->present = false;
        return CKR_OK;
    }
    rv = piv_select(&t->ch);
    if (rv == CKR_OK)
        piv_token_read_serial(t);
    channel_end(&t->ch);
    if (rv != CKR_OK) {
        TESS_INFO("piv: the card in '%s' has no PIV application; its slot shows no token", reader);
        channel_disconnect(&t->ch);
        tok->present = false;
        tok->foreign = rv == CKR_TOKEN_NOT_RECOGNIZED;   /* not a transient failure: leave it be */
        return CKR_OK;
    }
    if (!t->serial[0])
        snprintf(t->serial, sizeof(t->serial), "%016llx", (unsigned long long)card_key);
    return CKR_OK;
}

static CK_RV drv_slot_info(struct tess_token *tok, CK_SLOT_INFO *info)
{
    struct piv_token *t = tok->drv;
    tess_pad_copy(info->slotDescription, sizeof(info->slotDescription), t->reader);
    tess_pad_copy(info->manufacturerID, sizeof(info->manufacturerID), "PC/SC reader");
    info->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | (tok->present ? CKF_TOKEN_PRESENT : 0);
    return CKR_OK;
}

/* The card answered that it is gone: every later call says so at once. */
static CK_RV gone(struct tess_token *tok, CK_RV rv)
{
    if (rv == CKR_DEVICE_REMOVED)
        tok->present = false;
    return rv;
}

CK_RV piv_token_gone(struct tess_token *tok, CK_RV rv)
{
    return gone(tok, rv);
}

const struct tess_settings *piv_settings(void)
{
    return &piv.settings;
}

static CK_RV drv_token_info(struct tess_token *tok, CK_TOKEN_INFO *info)
{
    struct piv_token *t = tok->drv;
    char label[33];
    int tries = -1;
    snprintf(label, sizeof(label), "PIV Card %.8s", t->serial);
    tess_pad_copy(info->label, sizeof(info->label), label);
    tess_pad_copy(info->manufacturerID, sizeof(info->manufacturerID), "Tessera PIV");
    tess_pad_copy(info->model, sizeof(info->model), "PIV II");
    tess_pad_copy(info->serialNumber, sizeof(info->serialNumber), t->serial);
    info->flags = CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED;
    info->ulMinPinLen = 6;
    info->ulMaxPinLen = 8;
    CK_RV rv = card_begin(t);
    if (rv == CKR_OK) {
        rv = piv_pin_status(&t->ch, &tries);
        channel_end(&t->ch);
    }
    if (rv != CKR_OK)
        return gone(tok, rv);
    /* PIV cards start with 3 tries (SP 800-73-4 leaves it to the issuer). */
    if (tries == 0)
        info->flags |= CKF_USER_PIN_LOCKED;
    else if (tries == 1)
        info->flags |= CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY;
    else if (tries > 1 && tries < 3)
        info->flags |= CKF_USER_PIN_COUNT_LOW;
    return CKR_OK;
}

/* A slot's public key, remembered in the store when Tessera generated it:
 * PIV cannot tell a key's public half without a certificate. */
static void cache_name(char out[16], uint8_t key_ref)
{
    snprintf(out, 16, "pub:%02X", key_ref);
}

static CK_RV cached_pubkey(const struct piv_token *t, uint8_t key_ref, struct tess_attrs *pub)
{
    struct tess_store *store;
    uint8_t *val = NULL;
    size_t len = 0;
    char name[16];
    CK_RV rv = t->identified ? tess_store_shared(piv.settings.store_path, false, &store) : CKR_TOKEN_NOT_PRESENT;
    cache_name(name, key_ref);
    if (rv == CKR_OK)
        rv = tess_store_cache_get(store, "piv", t->serial, name, &val, &len);
    if (rv == CKR_OK)
        rv = tess_attrs_decode(pub, val, len);
    free(val);
    return rv;
}

static void remember_pubkey(const struct piv_token *t, uint8_t key_ref, const struct tess_attrs *pub)
{
    struct tess_store *store;
    uint8_t *val = NULL;
    size_t len = 0;
    char name[16];
    cache_name(name, key_ref);
    if (!t->identified) {
        TESS_WARN("piv: this card has no CHUID to know it by: other processes will not see the new key until "
                  "a certificate is stored with it");
        return;
    }
    if (tess_store_shared(piv.settings.store_path, true, &store) != CKR_OK || tess_attrs_encode(pub, &val, &len) != CKR_OK ||
        tess_store_cache_put(store, "piv", t->serial, name, val, len) != CKR_OK)
        TESS_WARN("piv: could not remember the public key of slot %02X: other processes will not see the key "
                  "until a certificate is stored with it", key_ref);
    free(val);
}

CK_RV piv_token_read_serial(struct piv_token *t)
{
    struct buf chuid = { 0 };
    uint8_t guid[8];
    CK_RV rv = piv_get_data(&t->ch, PIV_OBJ_CHUID, &chuid);
    /* The card's serial: its GUID (34) from the CHUID, as hex. */
    if (rv == CKR_OK && piv_parse_guid(chuid.p, chuid.len, guid) == 0) {
        tess_hex(t->serial, guid, sizeof(guid));
        t->identified = true;
    } else if (rv == CKR_OK) {
        rv = CKR_DEVICE_ERROR;
    }
    buf_free(&chuid);
    return rv;
}

void piv_cache_forget(const struct piv_token *t)
{
    struct tess_store *store;
    if (tess_store_shared(piv.settings.store_path, false, &store) == CKR_OK &&
        tess_store_cache_forget(store, "piv", t->serial) != CKR_OK)
        TESS_WARN("piv: card %s: could not forget what the store remembers of it", t->serial);
}

/* A certificate, read whole only when it changed: the first chunk of the
 * card's answer (its length, serial number, issuer, validity) is the change
 * check against what the store remembers for this card, so a card seen
 * before costs one APDU per certificate instead of five or six. */
static CK_RV read_cert(struct piv_token *t, const struct piv_slot_info *slot, struct buf *der)
{
    struct buf resp = { 0 };
    struct tess_store *store = NULL;
    uint8_t head_hash[32], *cached = NULL;
    size_t cached_len = 0;
    char name[16];
    struct tlv content;
    bool more = false;
    CK_RV rv = piv_get_data_head(&t->ch, slot->cert_tag, &resp, &more);
    if (rv != CKR_OK)
        goto out;
    snprintf(name, sizeof(name), "cert:%06X", slot->cert_tag);
    if (more) {
        /* A card without a CHUID has no identity to cache under: read it whole. */
        EVP_Digest(resp.p, resp.len, head_hash, NULL, EVP_sha256(), NULL);
        if (t->identified && tess_store_shared(piv.settings.store_path, false, &store) == CKR_OK &&
            tess_store_cache_get(store, "piv", t->serial, name, &cached, &cached_len) == CKR_OK &&
            cached_len > sizeof(head_hash) && !memcmp(cached, head_hash, sizeof(head_hash))) {
            rv = buf_append(der, cached + sizeof(head_hash), cached_len - sizeof(head_hash)) ? CKR_HOST_MEMORY : CKR_OK;
            goto out;
        }
        rv = piv_get_data_rest(&t->ch, &resp);
        if (rv != CKR_OK)
            goto out;
    }
    rv = piv_parse_data_object(resp.p, resp.len, slot->cert_tag, &content);
    if (rv == CKR_OK)
        rv = piv_parse_cert(content.value, content.len, der);
    if (rv == CKR_OK && more && t->identified && tess_store_shared(piv.settings.store_path, true, &store) == CKR_OK) {
        struct buf entry = { 0 };
        if (!buf_append(&entry, head_hash, sizeof(head_hash)) && !buf_append(&entry, der->p, der->len))
            tess_store_cache_put(store, "piv", t->serial, name, entry.p, entry.len);
        buf_free(&entry);
    }
out:
    free(cached);
    buf_free(&resp);
    return rv;
}

/* Certificates of the four main slots, and as many retired ones as the key
 * history object says the card holds. */
static CK_RV drv_load_objects(struct tess_token *tok)
{
    struct piv_token *t = tok->drv;
    struct buf hist = { 0 };
    size_t retired = 0;
    unsigned long apdus_before = t->ch.apdus;
    CK_RV rv = card_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    if (piv_get_data(&t->ch, 0x5fc10c, &hist) == CKR_OK)
        retired = piv_parse_retired_count(hist.p, hist.len);
    buf_free(&hist);
    for (size_t i = 0; i < 4 + retired && rv == CKR_OK; i++) {
        struct buf der = { 0 };
        CK_RV r = read_cert(t, &piv_slots[i], &der);
        if (r == CKR_OK)
            rv = piv_objects_for_cert(tok, &piv_slots[i], der.p, der.len);
        else if (r == CKR_DEVICE_REMOVED)
            rv = r;
        else {
            /* No certificate: a key Tessera generated still shows, from the cache. */
            struct tess_attrs pub = { 0 };
            if (cached_pubkey(t, piv_slots[i].key_ref, &pub) == CKR_OK)
                rv = piv_objects_for_pubkey(tok, &piv_slots[i], &pub, true);
            tess_attrs_free(&pub);
        }
        buf_free(&der);
    }
    channel_end(&t->ch);
    TESS_INFO("piv: card %s: objects read with %lu APDUs", t->serial, t->ch.apdus - apdus_before);
    return gone(tok, rv);
}

static void drv_free_object(void *drv)
{
    free(drv);
}

/* After another process reset the card, PIV state (selection, PIN) is lost:
 * select again and, if we were logged in, verify the cached PIN again. */
/* Verify the cached PIN again (the card forgot it: reset, or another
 * process logged out). If the card refuses it, someone changed the PIN:
 * drop it, so no more tries are spent behind the user's back. */
static CK_RV reverify(struct piv_token *t)
{
    CK_RV rv = piv_verify(&t->ch, t->pin, t->pin_len, NULL);
    t->pin_verified = rv == CKR_OK;
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED) {
        TESS_WARN("piv: card %s no longer takes the PIN given at login; log in again", t->serial);
        secret_drop(&t->pin, &t->pin_len);
        rv = CKR_USER_NOT_LOGGED_IN;
    }
    return rv;
}

static CK_RV restore(struct piv_token *t)
{
    CK_RV rv;
    if (!t->ch.was_reset)
        return CKR_OK;
    t->ch.was_reset = false;
    t->pin_verified = false;
    rv = piv_select(&t->ch);
    if (rv == CKR_OK && t->pin)
        rv = reverify(t);
    return rv;
}

/* Exclusive use of the card (a PC/SC transaction), with its PIV state
 * restored if someone else reset it meanwhile. Ends itself on failure. */
static CK_RV card_begin(struct piv_token *t)
{
    CK_RV rv = channel_begin(&t->ch);
    if (rv == CKR_OK && (rv = restore(t)) != CKR_OK)
        channel_end(&t->ch);
    return rv;
}

CK_RV piv_token_begin(struct piv_token *t)
{
    return card_begin(t);
}

void piv_token_end(struct piv_token *t)
{
    channel_end(&t->ch);
}

void piv_token_drop_puk(struct piv_token *t)
{
    secret_drop(&t->puk, &t->puk_len);
}

/* The same with the management key proven: for changes to the card. */
static CK_RV admin_begin(struct piv_token *t)
{
    CK_RV rv = card_begin(t);
    if (rv == CKR_OK && (rv = piv_admin_auth(t)) != CKR_OK)
        channel_end(&t->ch);
    return rv;
}

static CK_RV drv_login(struct tess_token *tok, CK_USER_TYPE who, const CK_UTF8CHAR *pin, CK_ULONG len)
{
    struct piv_token *t = tok->drv;
    int tries = -1;
    CK_RV rv = card_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    if (who == CKU_SO) {
        /* The SO is whoever knows the PUK. PIV cannot verify a PUK alone:
         * changing it to itself proves it (a wrong one counts down). */
        rv = piv_change_reference(&t->ch, PIV_PUK, pin, len, pin, len, &tries);
        if (rv == CKR_OK)
            rv = secret_keep(&t->puk, &t->puk_len, pin, len);
    } else {
        rv = piv_verify(&t->ch, pin, len, &tries);
        t->pin_verified = rv == CKR_OK;
        if (rv == CKR_OK)
            rv = secret_keep(&t->pin, &t->pin_len, pin, len);
    }
    channel_end(&t->ch);
    if (rv == CKR_PIN_INCORRECT)
        TESS_INFO("piv: wrong %s, %d tries left", who == CKU_SO ? "PUK" : "PIN", tries);
    return gone(tok, rv);
}

static void drv_logout(struct tess_token *tok)
{
    struct piv_token *t = tok->drv;
    uint16_t sw;
    /* VERIFY with P1=FF clears the card's PIN status (SP 800-73-4 3.2.1). */
    if (t->pin_verified && channel_begin(&t->ch) == CKR_OK) {
        channel_transmit(&t->ch, 0x00, 0x20, 0xff, PIV_PIN, NULL, 0, NULL, &sw);
        channel_end(&t->ch);
    }
    token_forget(t);
}

static CK_RV drv_init_pin(struct tess_token *tok, const CK_UTF8CHAR *pin, CK_ULONG len)
{
    struct piv_token *t = tok->drv;
    CK_RV rv;
    if (!t->puk)
        return CKR_USER_NOT_LOGGED_IN;
    if (len < 6 || len > 8)
        return CKR_PIN_LEN_RANGE;   /* PIV PINs: 6 to 8 characters */
    rv = card_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    rv = piv_reset_retry_counter(&t->ch, t->puk, t->puk_len, pin, len, NULL);
    channel_end(&t->ch);
    return gone(tok, rv);
}

static CK_RV drv_set_pin(struct tess_token *tok, CK_USER_TYPE who, const CK_UTF8CHAR *old_pin, CK_ULONG old_len,
                         const CK_UTF8CHAR *new_pin, CK_ULONG new_len)
{
    struct piv_token *t = tok->drv;
    CK_RV rv;
    if (new_len < 6 || new_len > 8)
        return CKR_PIN_LEN_RANGE;
    rv = card_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    rv = piv_change_reference(&t->ch, who == CKU_SO ? PIV_PUK : PIV_PIN, old_pin, old_len, new_pin, new_len, NULL);
    if (rv == CKR_OK && who != CKU_SO && t->pin)
        rv = secret_keep(&t->pin, &t->pin_len, new_pin, new_len);
    if (rv == CKR_OK && who == CKU_SO && t->puk)
        rv = secret_keep(&t->puk, &t->puk_len, new_pin, new_len);
    channel_end(&t->ch);
    return gone(tok, rv);
}

/* The slot a key template names by CKA_ID (on either half). */
static const struct piv_slot_info *slot_named(const struct tess_object *pub, const struct tess_object *priv,
                                              const char *what)
{
    const CK_ATTRIBUTE *id = tess_attrs_get(&priv->attrs, CKA_ID);
    const struct piv_slot_info *slot;
    if ((!id || !id->ulValueLen) && pub)
        id = tess_attrs_get(&pub->attrs, CKA_ID);
    slot = id ? piv_slot_by_id(id->pValue, id->ulValueLen) : NULL;
    if (!slot)
        TESS_ERR("piv: %s needs CKA_ID 01 (9A), 02 (9C), 03 (9D), 04 (9E) or 05..18 (retired)", what);
    return slot;
}

/* A slot has a new key (generated or imported): the caller's objects get
 * its public material and the names piv_objects_for_pubkey gives them once
 * loaded from the card; the token's object list is rebuilt from the card
 * (and this key) at the next load. */
static CK_RV adopt_key(struct piv_token *t, const struct piv_slot_info *slot, uint8_t alg,
                       const struct tess_attrs *material, struct tess_object *pub, struct tess_object *priv)
{
    bool ec = alg == PIV_ALG_ECC256 || alg == PIV_ALG_ECC384;
    char label[64];
    CK_RV rv = pub ? tess_attrs_copy(&pub->attrs, material) : CKR_OK;
    for (size_t i = 0; i < material->n && rv == CKR_OK; i++)
        if (material->v[i].type != CKA_EC_POINT && material->v[i].type != CKA_MODULUS_BITS)
            rv = tess_attrs_set(&priv->attrs, material->v[i].type, material->v[i].pValue, material->v[i].ulValueLen);
    if (rv != CKR_OK)
        return rv;
    struct piv_key *key = calloc(1, sizeof(*key));
    if (!key)
        return CKR_HOST_MEMORY;
    key->key_ref = slot->key_ref;
    key->alg = alg;
    priv->drv = key;
    priv->uid = ((uint64_t)slot->key_ref << 2) | 2;
    snprintf(label, sizeof(label), "%s key", slot->name);
    rv = tess_attrs_set(&priv->attrs, CKA_ID, &slot->id, 1);
    if (rv == CKR_OK)
        rv = tess_attrs_set(&priv->attrs, CKA_LABEL, label, strlen(label));
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&priv->attrs, CKA_DERIVE, ec && slot->key_ref != PIV_KEY_SIGN);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&priv->attrs, CKA_MODIFIABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&priv->attrs, CKA_ALWAYS_AUTHENTICATE, slot->key_ref == PIV_KEY_SIGN);
    if (rv == CKR_OK && pub) {
        pub->uid = ((uint64_t)slot->key_ref << 2) | 1;
        rv = tess_attrs_set(&pub->attrs, CKA_ID, &slot->id, 1);
        if (rv == CKR_OK)
            rv = tess_attrs_set(&pub->attrs, CKA_LABEL, label, strlen(label));
        if (rv == CKR_OK)
            rv = tess_attrs_set_bool(&pub->attrs, CKA_MODIFIABLE, false);
    }
    remember_pubkey(t, slot->key_ref, material);
    return rv;
}

/* After a new key went into a slot: a certificate left there would name the
 * old key, so it goes. */
static void clear_old_cert(struct piv_token *t, const struct piv_slot_info *slot)
{
    if (piv_put_data(&t->ch, slot->cert_tag, NULL, 0) != CKR_OK)
        TESS_WARN("piv: could not clear the old certificate of slot %02X", slot->key_ref);
}

static CK_RV drv_generate_key_pair(struct tess_token *tok, const struct tess_keygen_spec *spec,
                                   struct tess_object *pub, struct tess_object *priv)
{
    struct piv_token *t = tok->drv;
    const struct piv_slot_info *slot = slot_named(pub, priv, "C_GenerateKeyPair");
    struct buf tmpl = { 0 };
    struct tess_attrs material = { 0 };
    uint8_t alg;
    CK_RV rv;

    if (!slot)
        return CKR_TEMPLATE_INCOMPLETE;
    if (!spec->token)
        return CKR_TEMPLATE_INCONSISTENT;   /* a card key is always a token object */
    if (spec->key_type == CKK_RSA)
        alg = spec->modulus_bits == 2048 ? PIV_ALG_RSA2048 : 0;
    else
        alg = spec->curve_nid == NID_X9_62_prime256v1 ? PIV_ALG_ECC256
              : spec->curve_nid == NID_secp384r1      ? PIV_ALG_ECC384
                                                      : 0;
    if (!alg)
        return spec->key_type == CKK_RSA ? CKR_KEY_SIZE_RANGE : CKR_CURVE_NOT_SUPPORTED;
    rv = admin_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    rv = piv_generate(&t->ch, slot->key_ref, alg, &tmpl);
    if (rv == CKR_OK)
        clear_old_cert(t, slot);
    channel_end(&t->ch);
    if (rv == CKR_OK)
        rv = piv_pub_from_7f49(alg, tmpl.p, tmpl.len, &material);
    buf_free(&tmpl);
    if (rv == CKR_OK)
        rv = adopt_key(t, slot, alg, &material, pub, priv);
    tess_attrs_free(&material);
    return gone(tok, rv);
}

static bool put_part(struct buf *b, uint8_t tag, EVP_PKEY *pk, const char *name, size_t len)
{
    uint8_t hdr[4], v[256];
    BIGNUM *bn = NULL;
    bool ok = len <= sizeof(v) && EVP_PKEY_get_bn_param(pk, name, &bn) && BN_bn2binpad(bn, v, (int)len) == (int)len &&
              !buf_append(b, hdr, tlv_header(hdr, tag, len)) && !buf_append(b, v, len);
    OPENSSL_cleanse(v, sizeof(v));
    BN_clear_free(bn);
    return ok;
}

/* The key's parts as the import command wants them, and the card's name
 * for its algorithm (0: not one a PIV card keeps). */
static uint8_t import_parts(EVP_PKEY *pk, struct buf *parts)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bits(pk) != 2048)
            return 0;
        bool ok = put_part(parts, 0x01, pk, OSSL_PKEY_PARAM_RSA_FACTOR1, 128) &&
                  put_part(parts, 0x02, pk, OSSL_PKEY_PARAM_RSA_FACTOR2, 128) &&
                  put_part(parts, 0x03, pk, OSSL_PKEY_PARAM_RSA_EXPONENT1, 128) &&
                  put_part(parts, 0x04, pk, OSSL_PKEY_PARAM_RSA_EXPONENT2, 128) &&
                  put_part(parts, 0x05, pk, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 128);
        return ok ? PIV_ALG_RSA2048 : 0;
    }
    char group[64];
    if (!EVP_PKEY_is_a(pk, "EC") ||
        !EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL))
        return 0;
    int nid = OBJ_sn2nid(group);
    if (nid == NID_X9_62_prime256v1)
        return put_part(parts, 0x06, pk, OSSL_PKEY_PARAM_PRIV_KEY, 32) ? PIV_ALG_ECC256 : 0;
    if (nid == NID_secp384r1)
        return put_part(parts, 0x06, pk, OSSL_PKEY_PARAM_PRIV_KEY, 48) ? PIV_ALG_ECC384 : 0;
    return 0;
}

static CK_RV drv_import_key(struct tess_token *tok, EVP_PKEY *pk, struct tess_object *priv, bool token)
{
    struct piv_token *t = tok->drv;
    const struct piv_slot_info *slot = slot_named(NULL, priv, "C_CreateObject of a private key");
    struct buf parts = { 0 };
    struct tess_attrs material = { 0 };
    uint8_t alg;
    CK_RV rv;

    if (!slot)
        return CKR_TEMPLATE_INCOMPLETE;
    if (!token)
        return CKR_TEMPLATE_INCONSISTENT;
    alg = import_parts(pk, &parts);
    if (!alg) {
        TESS_ERR("piv: a PIV card keeps RSA 2048 and EC P-256/P-384 keys only");
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    rv = tess_pkey_public_attrs(pk, &material);
    if (rv != CKR_OK)
        goto out;
    rv = admin_begin(t);
    if (rv != CKR_OK)
        goto out;
    rv = piv_import_key(&t->ch, slot->key_ref, alg, parts.p, parts.len);
    if (rv == CKR_OK)
        clear_old_cert(t, slot);
    channel_end(&t->ch);
    if (rv == CKR_OK)
        rv = adopt_key(t, slot, alg, &material, NULL, priv);
out:
    buf_free(&parts);
    tess_attrs_free(&material);
    return gone(tok, rv);
}

/* A certificate in retired slot n (1..20): the key history object (5FC10C,
 * SP 800-73) counts on-card retired certificates up to it, or middleware,
 * Tessera included, does not look at that slot. A YubiKey keeps the object
 * only as written; it is raised here, never lowered. */
static CK_RV note_retired(struct piv_token *t, size_t n)
{
    struct buf hist = { 0 };
    CK_RV rv = piv_get_data(&t->ch, 0x5fc10c, &hist);
    size_t have = rv == CKR_OK ? piv_parse_retired_count(hist.p, hist.len) : 0;
    uint8_t v[] = { 0xc1, 0x01, (uint8_t)n, 0xc2, 0x01, 0x00, 0xfe, 0x00 };
    buf_free(&hist);
    if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID)
        return rv;
    return have >= n ? CKR_OK : piv_put_data(&t->ch, 0x5fc10c, v, sizeof(v));
}

static CK_RV drv_store_object(struct tess_token *tok, struct tess_object *obj)
{
    struct piv_token *t = tok->drv;
    CK_ULONG cls = 0;
    const CK_ATTRIBUTE *id = tess_attrs_get(&obj->attrs, CKA_ID), *val = tess_attrs_get(&obj->attrs, CKA_VALUE);
    const struct piv_slot_info *slot = id ? piv_slot_by_id(id->pValue, id->ulValueLen) : NULL;
    struct buf data = { 0 };
    uint8_t hdr[8];
    CK_RV rv;

    tess_attrs_get_ulong(&obj->attrs, CKA_CLASS, &cls);
    if (cls != CKO_CERTIFICATE || !slot || !val) {
        TESS_ERR("piv: a PIV card stores certificates only, with CKA_ID 01..18 naming the key slot");
        return CKR_TEMPLATE_INCONSISTENT;
    }
    /* 70 certificate, 71 CertInfo 00 (not compressed), FE error detection */
    size_t hn = tlv_header(hdr, 0x70, val->ulValueLen);
    if (buf_append(&data, hdr, hn) || buf_append(&data, val->pValue, val->ulValueLen) ||
        buf_append(&data, (const uint8_t *)"\x71\x01\x00\xfe\x00", 5)) {
        buf_free(&data);
        return CKR_HOST_MEMORY;
    }
    rv = admin_begin(t);
    if (rv == CKR_OK) {
        rv = piv_put_data(&t->ch, slot->cert_tag, data.p, data.len);
        if (rv == CKR_OK && slot->id >= 5)
            rv = note_retired(t, slot->id - 4);
        channel_end(&t->ch);
    }
    buf_free(&data);
    if (rv == CKR_OK)
        obj->uid = (uint64_t)slot->key_ref << 2;   /* the slot's certificate */
    return gone(tok, rv);
}

static CK_RV drv_destroy_object(struct tess_token *tok, struct tess_object *obj)
{
    struct piv_token *t = tok->drv;
    const struct piv_slot_info *slot = piv_slot_by_ref((uint8_t)(obj->uid >> 2));
    CK_RV rv;
    if ((obj->uid & 3) != 0 || !slot)
        return CKR_ACTION_PROHIBITED;   /* keys cannot be deleted from a PIV card */
    rv = admin_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    rv = piv_put_data(&t->ch, slot->cert_tag, NULL, 0);
    channel_end(&t->ch);
    return gone(tok, rv);
}

/* A private operation: PIN-always keys get the PIN again right before. */
static CK_RV private_op(struct tess_token *tok, struct tess_object *key, uint8_t what, const uint8_t *in, size_t len,
                        struct buf *out)
{
    struct piv_token *t = tok->drv;
    struct piv_key *k = key->drv;
    CK_RV rv;
    if (!k)
        return CKR_KEY_HANDLE_INVALID;
    rv = card_begin(t);
    if (rv != CKR_OK)
        return gone(tok, rv);
    if (k->key_ref == PIV_KEY_SIGN && t->pin)
        rv = reverify(t);
    if (rv == CKR_OK)
        rv = piv_private_op(&t->ch, k->alg, k->key_ref, what, in, len, out);
    /* The card forgot our PIN without a reset: another process logged out
     * (VERIFY P1=FF clears the status for everyone). Verify it again, once. */
    if (rv == CKR_USER_NOT_LOGGED_IN && t->pin && reverify(t) == CKR_OK) {
        buf_free(out);
        rv = piv_private_op(&t->ch, k->alg, k->key_ref, what, in, len, out);
    }
    channel_end(&t->ch);
    return gone(tok, rv);
}

static CK_RV drv_rsa_raw(struct tess_token *tok, struct tess_object *key, const uint8_t *in, size_t len, uint8_t *out,
                         size_t *outlen)
{
    struct buf r = { 0 };
    CK_RV rv = private_op(tok, key, 0x81, in, len, &r);
    if (rv == CKR_OK && (r.len > *outlen || r.len > len))
        rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK) {
        /* left-pad to the modulus length */
        memset(out, 0, len - r.len);
        memcpy(out + len - r.len, r.p, r.len);
        *outlen = len;
    }
    buf_free(&r);
    return rv;
}

static size_t field_len(const struct tess_object *key)
{
    const struct piv_key *k = key->drv;
    return k && k->alg == PIV_ALG_ECC384 ? 48 : 32;
}

static CK_RV drv_ecdsa(struct tess_token *tok, struct tess_object *key, const uint8_t *digest, size_t dlen,
                       uint8_t *rs, size_t *rslen)
{
    size_t flen = field_len(key);
    struct buf r = { 0 };
    CK_RV rv;

    if (*rslen < 2 * flen)
        return CKR_BUFFER_TOO_SMALL;
    if (dlen != flen)
        return CKR_DATA_LEN_RANGE;   /* the core hands over field-size input */
    rv = private_op(tok, key, 0x81, digest, flen, &r);
    if (rv == CKR_OK) {
        /* The card answers a DER ECDSA-Sig-Value; PKCS#11 wants r | s. */
        const unsigned char *p = r.p;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)r.len);
        const BIGNUM *br, *bs;
        if (!sig) {
            rv = CKR_DEVICE_ERROR;
        } else {
            ECDSA_SIG_get0(sig, &br, &bs);
            if (BN_bn2binpad(br, rs, (int)flen) < 0 || BN_bn2binpad(bs, rs + flen, (int)flen) < 0)
                rv = CKR_DEVICE_ERROR;
            *rslen = 2 * flen;
            ECDSA_SIG_free(sig);
        }
    }
    buf_free(&r);
    return rv;
}

static CK_RV drv_ecdh(struct tess_token *tok, struct tess_object *key, const uint8_t *point, size_t plen, uint8_t *z,
                      size_t *zlen)
{
    struct buf r = { 0 };
    CK_RV rv = private_op(tok, key, 0x85, point, plen, &r);
    if (rv == CKR_OK && r.len > *zlen)
        rv = CKR_BUFFER_TOO_SMALL;
    if (rv == CKR_OK) {
        memcpy(z, r.p, r.len);
        *zlen = r.len;
    }
    buf_free(&r);
    return rv;
}

const struct tess_driver tess_piv_driver = {
    .abi = TESS_DRIVER_ABI,
    .name = "piv",
    .init = drv_init,
    .fini = drv_fini,
    .scan = drv_scan,
    .token_open = drv_token_open,
    .token_free = drv_token_free,
    .slot_info = drv_slot_info,
    .token_info = drv_token_info,
    .load_objects = drv_load_objects,
    .store_object = drv_store_object,
    .destroy_object = drv_destroy_object,
    .free_object = drv_free_object,
    .login = drv_login,
    .logout = drv_logout,
    .init_pin = drv_init_pin,
    .set_pin = drv_set_pin,
    .generate_key_pair = drv_generate_key_pair,
    .import_key = drv_import_key,
    .rsa_raw = drv_rsa_raw,
    .ecdsa_sign = drv_ecdsa,
    .ecdh = drv_ecdh,
    .admin_info = piv_admin_info,
    .admin_challenge = piv_admin_challenge,
    .unblock_pin = piv_admin_unblock,
    .lock_pin = piv_admin_lock,
    .set_admin_key = piv_admin_set_key,
    .init_card = piv_init_card,
    .erase_card = piv_erase_card,
};
