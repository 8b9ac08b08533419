/* A PIV card administered by Tessera: its admin key (the 9B management
 * key) and offline PIN unblock by challenge and response.
 *
 * A PIV card can reset a PIN only with its PUK, cannot check a Tessera
 * response itself, and lets nobody write a data object without the 9B key.
 * So a card whose admin key Tessera set has a PUK nobody is told: eight
 * random digits, never starting with 0, replaced after every use. Data
 * object 5FFF40 (Yubico's vendor range, readable without a PIN) holds the
 * card's current challenge and a seal (AES-256-GCM under SHA-256(tag |
 * serial | salt | response)) of the admin key and the PUK, where response =
 * E(admin key, challenge): what the helpdesk computes from the master key.
 * A right response opens the seal; the module proves the admin key to the
 * card, writes a new challenge and seal for a new PUK, resets the PIN and
 * changes the PUK. A wrong one opens nothing and is counted by the card
 * itself: the module spends one PUK try with 00000000, never a Tessera PUK,
 * so the card's PUK counter is the unblock counter and a blocked PUK locks
 * unblock, whatever software talks to the card. The challenge changes only
 * when answered (changing it needs the 9B key), so there is one at a time.
 *
 *   5FFF40: version | alg | kcv[3] | 0 | count (1) |
 *           count x ( challenge | salt[16] | sealed secret )
 *   secret: nkeys | 2 x ( alg | len | key[32] ) | npuks | 2 x puk[8]
 *
 * A change first writes the new challenge, its secret naming every key and
 * PUK the card may hold until the change is done (the current ones first),
 * then changes the card (PIN, 9B key, PUK), then writes it again naming only
 * the new ones: a process killed on the way leaves a card whose next right
 * response finishes the change, never one with a key or PUK nobody knows,
 * and never a challenge that answers twice. The YubiKey's PIN-protected
 * management key (5FC109: 88 { 89 key }) is kept too, so a logged-in user's
 * session can write to a card whose 9B key is diversified (key generation,
 * certificates), as with YubiKey Manager's --protect. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../../src/aead.h"
#include "../../src/log.h"
#include "../../src/settings.h"
#include "../../src/util.h"
#include "piv_card.h"
#include "tlv.h"

#define OBJ_ADMIN 0x5fff40
#define ADMIN_VERSION 1
#define STOCK 1
#define BLOCK_MAX 16
#define KEY_MAX 32
#define NKEYS 2
#define NPUKS 2
#define PUK_LEN 8
#define SALT_LEN 16
#define SECRET_LEN (1 + NKEYS * (2 + KEY_MAX) + 1 + NPUKS * PUK_LEN)
#define SEALED_LEN (SECRET_LEN + TESS_AEAD_OVERHEAD)
#define HEADER_LEN 7
#define RESPONSE_TAG "tessera-piv-response-v1"

static const uint8_t burn_puk[PUK_LEN] = "00000000";

struct admin_key {
    enum tess_key_alg alg;
    size_t len;
    uint8_t k[KEY_MAX];
};

/* What a right response releases: the keys and PUKs the card may hold. */
struct admin_secret {
    int nkeys, npuks;
    struct admin_key keys[NKEYS];
    uint8_t puks[NPUKS][PUK_LEN];
};

struct admin_entry {
    uint8_t challenge[BLOCK_MAX];
    uint8_t salt[SALT_LEN];
    uint8_t sealed[SEALED_LEN];
};

struct admin_obj {
    enum tess_key_alg alg;
    uint8_t kcv[3];
    int count;
    struct admin_entry e[STOCK];
};

uint8_t piv_alg_of_key(enum tess_key_alg alg)
{
    switch (alg) {
    case TESS_KEY_AES128: return PIV_ALG_AES128;
    case TESS_KEY_AES192: return PIV_ALG_AES192;
    case TESS_KEY_AES256: return PIV_ALG_AES256;
    default: return PIV_ALG_3DES;
    }
}

enum tess_key_alg piv_key_alg_of(uint8_t piv_alg)
{
    switch (piv_alg) {
    case PIV_ALG_AES128: return TESS_KEY_AES128;
    case PIV_ALG_AES192: return TESS_KEY_AES192;
    case PIV_ALG_AES256: return TESS_KEY_AES256;
    default: return TESS_KEY_3DES;
    }
}

/* ---- the object ---- */

static size_t obj_size(const struct admin_obj *o)
{
    return HEADER_LEN + (size_t)o->count * (tess_admin_block_len(o->alg) + SALT_LEN + SEALED_LEN);
}

static CK_RV obj_read(struct channel *ch, struct admin_obj *o)
{
    struct buf raw = { 0 };
    size_t blk, off = HEADER_LEN;
    CK_RV rv = piv_get_data(ch, OBJ_ADMIN, &raw);

    memset(o, 0, sizeof(*o));
    if (rv == CKR_OBJECT_HANDLE_INVALID || (rv == CKR_OK && raw.len == 0)) {
        rv = CKR_TESSERA_NO_ADMIN_KEY;
        goto out;
    }
    if (rv != CKR_OK)
        goto out;
    rv = CKR_DEVICE_ERROR;
    if (raw.len < HEADER_LEN || raw.p[0] != ADMIN_VERSION || raw.p[1] > TESS_KEY_AES256 || raw.p[6] > STOCK)
        goto bad;
    o->alg = (enum tess_key_alg)raw.p[1];
    memcpy(o->kcv, raw.p + 2, 3);
    o->count = raw.p[6];
    if (raw.len != obj_size(o) || o->count < 1)
        goto bad;
    blk = tess_admin_block_len(o->alg);
    for (int i = 0; i < o->count; i++) {
        memcpy(o->e[i].challenge, raw.p + off, blk);
        off += blk;
        memcpy(o->e[i].salt, raw.p + off, SALT_LEN);
        off += SALT_LEN;
        memcpy(o->e[i].sealed, raw.p + off, SEALED_LEN);
        off += SEALED_LEN;
    }
    rv = CKR_OK;
    goto out;
bad:
    TESS_ERR("piv: the card's Tessera admin object (5FFF40) has an unknown format");
out:
    buf_free(&raw);
    return rv;
}

static CK_RV obj_write(struct channel *ch, const struct admin_obj *o)
{
    size_t blk = tess_admin_block_len(o->alg), off = HEADER_LEN, len = obj_size(o);
    uint8_t *raw = malloc(len);
    CK_RV rv;

    if (!raw)
        return CKR_HOST_MEMORY;
    raw[0] = ADMIN_VERSION;
    raw[1] = (uint8_t)o->alg;
    memcpy(raw + 2, o->kcv, 3);
    raw[5] = 0;
    raw[6] = (uint8_t)o->count;
    for (int i = 0; i < o->count; i++) {
        memcpy(raw + off, o->e[i].challenge, blk);
        off += blk;
        memcpy(raw + off, o->e[i].salt, SALT_LEN);
        off += SALT_LEN;
        memcpy(raw + off, o->e[i].sealed, SEALED_LEN);
        off += SEALED_LEN;
    }
    rv = piv_put_data(ch, OBJ_ADMIN, raw, len);
    free(raw);
    return rv;
}

/* ---- seals ---- */

static void secret_encode(const struct admin_secret *s, uint8_t out[SECRET_LEN])
{
    size_t off = 0;
    memset(out, 0, SECRET_LEN);
    out[off++] = (uint8_t)s->nkeys;
    for (int i = 0; i < NKEYS; i++) {
        out[off++] = (uint8_t)s->keys[i].alg;
        out[off++] = (uint8_t)s->keys[i].len;
        memcpy(out + off, s->keys[i].k, KEY_MAX);
        off += KEY_MAX;
    }
    out[off++] = (uint8_t)s->npuks;
    memcpy(out + off, s->puks, sizeof(s->puks));
}

static bool secret_decode(const uint8_t in[SECRET_LEN], struct admin_secret *s)
{
    size_t off = 0;
    memset(s, 0, sizeof(*s));
    s->nkeys = in[off++];
    for (int i = 0; i < NKEYS; i++) {
        s->keys[i].alg = (enum tess_key_alg)in[off++];
        s->keys[i].len = in[off++];
        memcpy(s->keys[i].k, in + off, KEY_MAX);
        off += KEY_MAX;
        if (i < s->nkeys && (s->keys[i].alg > TESS_KEY_AES256 || s->keys[i].len != tess_key_alg_len(s->keys[i].alg)))
            return false;
    }
    s->npuks = in[off++];
    memcpy(s->puks, in + off, sizeof(s->puks));
    return s->nkeys >= 1 && s->nkeys <= NKEYS && s->npuks >= 1 && s->npuks <= NPUKS;
}

/* The seal key of one entry, and its associated data (the card's serial,
 * the object's header, the challenge): a seal moved to another card or
 * another challenge does not open. */
static CK_RV seal_params(const char *serial, const struct admin_obj *o, const struct admin_entry *e,
                         const uint8_t *resp, size_t rlen, uint8_t key[32], uint8_t *aad, size_t *aad_len)
{
    size_t blk = tess_admin_block_len(o->alg), slen = strlen(serial), n = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int klen = 0;
    int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(md, RESPONSE_TAG, sizeof(RESPONSE_TAG) - 1) &&
             EVP_DigestUpdate(md, serial, slen + 1) && EVP_DigestUpdate(md, e->salt, SALT_LEN) &&
             EVP_DigestUpdate(md, resp, rlen) && EVP_DigestFinal_ex(md, key, &klen);
    EVP_MD_CTX_free(md);
    if (!ok)
        return CKR_FUNCTION_FAILED;
    aad[n++] = ADMIN_VERSION;
    aad[n++] = (uint8_t)o->alg;
    memcpy(aad + n, o->kcv, 3);
    n += 3;
    memcpy(aad + n, serial, slen);
    n += slen;
    memcpy(aad + n, e->challenge, blk);
    *aad_len = n + blk;
    return CKR_OK;
}

#define AAD_MAX (5 + 32 + BLOCK_MAX)

/* A fresh stock of challenges whose seals hold s, for the key s->keys[0]. */
static CK_RV stock_build(const char *serial, const struct admin_secret *s, struct admin_obj *o)
{
    const struct admin_key *k = &s->keys[0];
    size_t blk = tess_admin_block_len(k->alg), aad_len = 0;
    uint8_t plain[SECRET_LEN], resp[BLOCK_MAX], key[32], aad[AAD_MAX];
    CK_RV rv;

    memset(o, 0, sizeof(*o));
    o->alg = k->alg;
    rv = tess_admin_kcv(k->alg, k->k, k->len, o->kcv);
    secret_encode(s, plain);
    for (int i = 0; i < STOCK && rv == CKR_OK; i++) {
        struct admin_entry *e = &o->e[i];
        if (RAND_bytes(e->challenge, (int)blk) != 1 || RAND_bytes(e->salt, SALT_LEN) != 1) {
            rv = CKR_FUNCTION_FAILED;
            break;
        }
        rv = tess_admin_response(k->alg, k->k, k->len, e->challenge, blk, resp);
        if (rv == CKR_OK)
            rv = seal_params(serial, o, e, resp, blk, key, aad, &aad_len);
        if (rv == CKR_OK && tess_aead_seal(key, aad, aad_len, plain, SECRET_LEN, e->sealed))
            rv = CKR_FUNCTION_FAILED;
        o->count++;
    }
    tess_wipe(plain, sizeof(plain));
    tess_wipe(resp, sizeof(resp));
    tess_wipe(key, sizeof(key));
    return rv;
}

/* CKR_OK and s filled when resp answers the pending challenge. */
static CK_RV entry_open(const char *serial, const struct admin_obj *o, const uint8_t *resp, size_t rlen,
                        struct admin_secret *s)
{
    uint8_t plain[SECRET_LEN], key[32], aad[AAD_MAX];
    size_t aad_len = 0;
    CK_RV rv;

    if (rlen != tess_admin_block_len(o->alg))
        return CKR_ARGUMENTS_BAD;   /* not a response to this card's challenge: costs nothing */
    rv = seal_params(serial, o, &o->e[0], resp, rlen, key, aad, &aad_len);
    if (rv == CKR_OK && (tess_aead_open(key, aad, aad_len, o->e[0].sealed, SEALED_LEN, plain) ||
                         !secret_decode(plain, s)))
        rv = CKR_TESSERA_RESPONSE_INCORRECT;
    tess_wipe(plain, sizeof(plain));
    tess_wipe(key, sizeof(key));
    return rv;
}

/* ---- the card's side ---- */

/* A wrong response costs one PUK try on the card. */
static CK_RV count_wrong_response(struct channel *ch)
{
    CK_RV rv = piv_change_reference(ch, PIV_PUK, burn_puk, PUK_LEN, burn_puk, PUK_LEN, NULL);
    if (rv == CKR_PIN_LOCKED)
        return CKR_TESSERA_UNBLOCK_LOCKED;
    if (rv == CKR_PIN_INCORRECT || rv == CKR_OK)
        return CKR_TESSERA_RESPONSE_INCORRECT;
    return rv;
}

static CK_RV new_puk(uint8_t puk[PUK_LEN])
{
    for (int i = 0; i < PUK_LEN;) {
        uint8_t b;
        if (RAND_bytes(&b, 1) != 1)
            return CKR_FUNCTION_FAILED;
        if (b >= 250 || (i == 0 && b % 10 == 0))
            continue;   /* unbiased digits; the first never 0 */
        puk[i++] = (uint8_t)('0' + b % 10);
    }
    return CKR_OK;
}

/* Which of the PUKs s names the card holds, found by changing each to
 * itself (a PIV card checks a PUK no other way): after an interrupted
 * change, one try may be spent on the other one. */
static CK_RV find_puk(struct channel *ch, const struct admin_secret *s, int *which)
{
    CK_RV rv = CKR_PIN_INCORRECT;
    for (int i = 0; i < s->npuks && rv == CKR_PIN_INCORRECT; i++) {
        rv = piv_change_reference(ch, PIV_PUK, s->puks[i], PUK_LEN, s->puks[i], PUK_LEN, NULL);
        *which = i;
    }
    if (rv == CKR_PIN_LOCKED)
        return CKR_TESSERA_UNBLOCK_LOCKED;
    if (rv == CKR_PIN_INCORRECT) {
        TESS_ERR("piv: the card's PUK is not the one Tessera set (changed by another tool?)");
        return CKR_DEVICE_ERROR;
    }
    return rv;
}

/* Prove one of the keys s names to the card (9B); *which tells which. */
static CK_RV auth_any(struct channel *ch, const struct admin_secret *s, int *which)
{
    CK_RV rv = CKR_PIN_INCORRECT;
    for (int i = 0; i < s->nkeys && rv == CKR_PIN_INCORRECT; i++) {
        rv = piv_mgmt_auth(ch, piv_alg_of_key(s->keys[i].alg), s->keys[i].k, s->keys[i].len);
        *which = i;
    }
    if (rv == CKR_PIN_INCORRECT) {
        TESS_ERR("piv: the card refused every management key Tessera knows for it");
        rv = CKR_FUNCTION_REJECTED;
    }
    return rv;
}

/* 5FC109 = 88 { 89 key }: the YubiKey's PIN-protected management key. */
static CK_RV write_protected_key(struct channel *ch, const struct admin_key *k)
{
    uint8_t v[4 + KEY_MAX];
    CK_RV rv;
    v[0] = 0x88;
    v[1] = (uint8_t)(2 + k->len);
    v[2] = 0x89;
    v[3] = (uint8_t)k->len;
    memcpy(v + 4, k->k, k->len);
    rv = piv_put_data(ch, PIV_OBJ_PRINTED, v, 4 + k->len);
    tess_wipe(v, sizeof(v));
    return rv;
}

static void secret_add_key(struct admin_secret *s, const struct admin_key *k)
{
    for (int i = 0; i < s->nkeys; i++)
        if (s->keys[i].alg == k->alg && s->keys[i].len == k->len && !memcmp(s->keys[i].k, k->k, k->len))
            return;
    if (s->nkeys < NKEYS)
        s->keys[s->nkeys++] = *k;
}

/* The card, holding one of the keys and one of the PUKs cur names, gets
 * the admin key next (and, with pin, that PIN), in the crash-safe order
 * described at the top. */
static CK_RV rotate(struct piv_token *t, const struct admin_secret *cur, const struct admin_key *next,
                    const CK_UTF8CHAR *pin, size_t pin_len)
{
    struct admin_secret *s = calloc(1, sizeof(*s));
    struct admin_obj *o = calloc(1, sizeof(*o));
    const struct admin_key *key_now;
    uint8_t puk_now[PUK_LEN], puk[PUK_LEN];
    int kw = 0, pw = 0;
    CK_RV rv = CKR_HOST_MEMORY;

    if (!s || !o)
        goto out;
    rv = auth_any(&t->ch, cur, &kw);
    key_now = &cur->keys[kw];
    /* After an interrupted change the card holds one of two PUKs: find it
     * now, by changing it to itself (no PIN is touched). */
    if (rv == CKR_OK && cur->npuks > 1)
        rv = find_puk(&t->ch, cur, &pw);
    if (rv == CKR_OK)
        rv = new_puk(puk);
    if (rv != CKR_OK)
        goto out;
    memcpy(puk_now, cur->puks[pw], PUK_LEN);
    /* 1: a new challenge, naming old and new key and PUK. */
    s->keys[0] = *next;
    s->nkeys = 1;
    secret_add_key(s, key_now);
    memcpy(s->puks[0], puk_now, PUK_LEN);
    memcpy(s->puks[1], puk, PUK_LEN);
    s->npuks = 2;
    rv = stock_build(t->serial, s, o);
    if (rv == CKR_OK)
        rv = obj_write(&t->ch, o);
    /* 2: the card changes: PIN, 9B key, the key its PIN holder may use, PUK. */
    if (rv == CKR_OK && pin) {
        rv = piv_reset_retry_counter(&t->ch, puk_now, PUK_LEN, pin, pin_len, NULL);
        if (rv == CKR_PIN_LOCKED)
            rv = CKR_TESSERA_UNBLOCK_LOCKED;
        else if (rv == CKR_PIN_INCORRECT) {
            TESS_ERR("piv: the card's PUK is not the one Tessera set (changed by another tool?)");
            rv = CKR_DEVICE_ERROR;
        }
    }
    if (rv == CKR_OK && s->nkeys > 1) {
        rv = piv_set_mgmt_key(&t->ch, piv_alg_of_key(next->alg), next->k, next->len);
        if (rv == CKR_OK)
            rv = piv_mgmt_auth(&t->ch, piv_alg_of_key(next->alg), next->k, next->len);
    }
    if (rv == CKR_OK)
        rv = write_protected_key(&t->ch, next);
    if (rv == CKR_OK)
        rv = piv_change_reference(&t->ch, PIV_PUK, puk_now, PUK_LEN, puk, PUK_LEN, NULL);
    /* 3: the challenge names only what the card now holds. */
    if (rv == CKR_OK) {
        s->nkeys = 1;
        memcpy(s->puks[0], puk, PUK_LEN);
        memset(s->puks[1], 0, PUK_LEN);
        s->npuks = 1;
        rv = stock_build(t->serial, s, o);
    }
    if (rv == CKR_OK)
        rv = obj_write(&t->ch, o);
out:
    tess_wipe(puk, sizeof(puk));
    tess_wipe(puk_now, sizeof(puk_now));
    if (s)
        tess_wipe(s, sizeof(*s));
    if (o)
        tess_wipe(o, sizeof(*o));
    free(s);
    free(o);
    return rv;
}

/* ---- the driver's entries ---- */

/* The key tessera.conf names for the cards Tessera has not administered
 * yet (the factory default if unset). */
static CK_RV configured_key(struct admin_key *k)
{
    const char *hex = piv_settings()->piv_mgmt_key;
    memset(k, 0, sizeof(*k));
    if (tess_key_alg_parse(piv_settings()->piv_mgmt_alg, &k->alg))
        k->alg = TESS_KEY_3DES;
    if (!hex[0]) {
        /* The factory bytes: a 3DES key, or AES-192 on a YubiKey 5.7. */
        memcpy(k->k, tess_admin_default_key, 24);
        k->len = 24;
        return k->len == tess_key_alg_len(k->alg) ? CKR_OK : CKR_GENERAL_ERROR;
    }
    for (; hex[2 * k->len] && k->len < KEY_MAX; k->len++) {
        unsigned v;
        if (sscanf(hex + 2 * k->len, "%2x", &v) != 1)
            return CKR_GENERAL_ERROR;
        k->k[k->len] = (uint8_t)v;
    }
    return k->len == tess_key_alg_len(k->alg) ? CKR_OK : CKR_GENERAL_ERROR;
}

/* The card's PIN-protected key (needs the PIN verified), with its
 * algorithm from the card's metadata or the Tessera object. */
static CK_RV protected_key(struct piv_token *t, struct admin_key *k)
{
    struct buf raw = { 0 }, meta = { 0 };
    struct tlv outer, inner, alg;
    struct admin_obj *o = NULL;
    CK_RV rv = piv_get_data(&t->ch, PIV_OBJ_PRINTED, &raw);

    memset(k, 0, sizeof(*k));
    if (rv != CKR_OK)
        goto out;
    rv = CKR_OBJECT_HANDLE_INVALID;
    if (!tlv_find(raw.p, raw.len, 0x88, &outer) || !tlv_find(outer.value, outer.len, 0x89, &inner) ||
        inner.len > KEY_MAX)
        goto out;
    memcpy(k->k, inner.value, inner.len);
    k->len = inner.len;
    if (piv_metadata(&t->ch, PIV_KEY_MGMT, &meta) == CKR_OK && tlv_find(meta.p, meta.len, 0x01, &alg) &&
        alg.len == 1) {
        k->alg = piv_key_alg_of(alg.value[0]);
    } else if ((o = malloc(sizeof(*o))) && obj_read(&t->ch, o) == CKR_OK) {
        k->alg = o->alg;
    } else {
        k->alg = k->len == 24 ? TESS_KEY_3DES : k->len == 16 ? TESS_KEY_AES128 : TESS_KEY_AES256;
    }
    rv = k->len == tess_key_alg_len(k->alg) ? CKR_OK : CKR_OBJECT_HANDLE_INVALID;
out:
    free(o);
    buf_free(&meta);
    tess_wipe(raw.p, raw.len);
    buf_free(&raw);
    return rv;
}

CK_RV piv_admin_auth(struct piv_token *t)
{
    struct admin_key k;
    CK_RV rv = CKR_OBJECT_HANDLE_INVALID;

    /* A diversified key the card keeps for its PIN holder first. */
    if (t->pin_verified && (rv = protected_key(t, &k)) == CKR_OK)
        rv = piv_mgmt_auth(&t->ch, piv_alg_of_key(k.alg), k.k, k.len);
    if (rv != CKR_OK && rv != CKR_DEVICE_REMOVED && rv != CKR_HOST_MEMORY) {
        rv = configured_key(&k);
        if (rv == CKR_OK)
            rv = piv_mgmt_auth(&t->ch, piv_alg_of_key(k.alg), k.k, k.len);
    }
    tess_wipe(&k, sizeof(k));
    /* A wrong key, or the right key for another algorithm: either way the
     * card will not be changed, and the operator must know why. */
    if (rv != CKR_OK && rv != CKR_DEVICE_REMOVED && rv != CKR_HOST_MEMORY) {
        TESS_ERR("piv: card %s refused the management key (log in with the PIN to use the key it keeps, or set "
                 "piv_management_key and piv_management_alg in tessera.conf)", t->serial);
        rv = CKR_FUNCTION_REJECTED;
    }
    return rv;
}

/* What T_GetCardInfo shows of a PIV card. Its 9B management key is its
 * admin key; challenges exist once Tessera has set it. */
CK_RV piv_admin_info(struct tess_token *tok, struct tess_admin_info *info)
{
    struct piv_token *t = tok->drv;
    struct admin_obj *o = malloc(sizeof(*o));
    struct buf meta = { 0 };
    struct tlv el;
    CK_RV rv;

    if (!o)
        return CKR_HOST_MEMORY;
    info->card_type = CKT_TESSERA_PIV;
    info->challenges_left = -1;
    info->tries_left = info->tries_max = -1;
    rv = piv_token_begin(t);
    if (rv != CKR_OK)
        goto out;
    if (piv_metadata(&t->ch, PIV_KEY_MGMT, &meta) == CKR_OK) {
        if (tlv_find(meta.p, meta.len, 0x01, &el) && el.len == 1)
            info->alg = piv_key_alg_of(el.value[0]);
        if (tlv_find(meta.p, meta.len, 0x05, &el) && el.len == 1)
            info->key_default = el.value[0] == 1;
    }
    buf_free(&meta);
    /* The unblock counter is the PUK's. */
    if (piv_metadata(&t->ch, PIV_PUK, &meta) == CKR_OK && tlv_find(meta.p, meta.len, 0x06, &el) && el.len == 2) {
        info->tries_max = el.value[0];
        info->tries_left = el.value[1];
    }
    rv = obj_read(&t->ch, o);
    piv_token_end(t);
    info->key_set = true;   /* a PIV card always has a 9B key */
    if (rv == CKR_TESSERA_NO_ADMIN_KEY) {
        /* Not administered by Tessera yet: no challenges; the check value
         * only when the card says it has the factory key. */
        if (info->key_default && tess_key_alg_len(info->alg) == 24)
            rv = tess_admin_kcv(info->alg, tess_admin_default_key, 24, info->kcv);
        else
            rv = CKR_OK;
        goto out;
    }
    if (rv != CKR_OK)
        goto out;
    info->alg = o->alg;
    memcpy(info->kcv, o->kcv, 3);
    info->challenge_len = tess_admin_block_len(o->alg);
    info->challenges_left = o->count;
out:
    buf_free(&meta);
    free(o);
    return piv_token_gone(tok, rv);
}

/* The card's current challenge. It changes only when answered: a new one
 * before that would need the 9B key on a card nobody may write without it. */
CK_RV piv_admin_challenge(struct tess_token *tok, bool fresh, uint8_t *out, size_t *len)
{
    struct piv_token *t = tok->drv;
    struct admin_obj *o = malloc(sizeof(*o));
    CK_RV rv;

    if (!o)
        return CKR_HOST_MEMORY;
    rv = piv_token_begin(t);
    if (rv != CKR_OK)
        goto out;
    rv = obj_read(&t->ch, o);
    piv_token_end(t);
    if (rv == CKR_OK && fresh) {
        TESS_ERR("piv: a PIV card has one challenge at a time; it changes when answered");
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (rv == CKR_OK) {
        size_t blk = tess_admin_block_len(o->alg);
        if (*len < blk) {
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(out, o->e[0].challenge, blk);
            *len = blk;
        }
    }
out:
    free(o);
    return piv_token_gone(tok, rv);
}

/* The secret the response releases, or the wrong response counted. */
static CK_RV answer(struct piv_token *t, const uint8_t *resp, size_t rlen, struct admin_secret *s)
{
    struct admin_obj *o = malloc(sizeof(*o));
    CK_RV rv = o ? obj_read(&t->ch, o) : CKR_HOST_MEMORY;
    if (rv == CKR_OK)
        rv = entry_open(t->serial, o, resp, rlen, s);
    if (rv == CKR_TESSERA_RESPONSE_INCORRECT)
        rv = count_wrong_response(&t->ch);
    free(o);
    return rv;
}

/* The challenge answered once: a new challenge and PUK written (the key
 * stays); with pin, the PIN reset to it (an unblock); with lock, then the
 * PIN's tries spent (a scheduled lock: killed in between, the PIN is still
 * open and the next lock answers the new challenge). */
static CK_RV answer_once(struct tess_token *tok, const uint8_t *resp, size_t rlen, const CK_UTF8CHAR *pin,
                         CK_ULONG pin_len, bool lock)
{
    struct piv_token *t = tok->drv;
    struct admin_secret *s = calloc(1, sizeof(*s));
    CK_RV rv;

    if (!s)
        return CKR_HOST_MEMORY;
    rv = piv_token_begin(t);
    if (rv != CKR_OK)
        goto out;
    rv = answer(t, resp, rlen, s);
    if (rv == CKR_OK)
        rv = rotate(t, s, &s->keys[0], pin, pin_len);
    /* A blocked PUK cannot be replaced (and nothing unblocks this card any
     * more): a lock still blocks the PIN. */
    if (lock && (rv == CKR_PIN_LOCKED || rv == CKR_TESSERA_UNBLOCK_LOCKED))
        rv = CKR_OK;
    if (rv == CKR_OK && lock)
        rv = piv_block_pin(&t->ch);
    piv_token_end(t);
    if (rv == CKR_OK)
        TESS_INFO("piv: card %s: PIN %s by a response; new challenge and PUK written", t->serial,
                  lock ? "locked" : "unblocked");
out:
    tess_wipe(s, sizeof(*s));
    free(s);
    return piv_token_gone(tok, rv);
}

CK_RV piv_admin_unblock(struct tess_token *tok, const uint8_t *resp, size_t rlen, const CK_UTF8CHAR *pin,
                        CK_ULONG pin_len)
{
    /* The new PIN is judged before the response is spent. */
    if (pin_len < 6 || pin_len > 8)
        return CKR_PIN_LEN_RANGE;
    return answer_once(tok, resp, rlen, pin, pin_len, false);
}

/* The PIN locked, as a card-management system's scheduled lock does; an
 * unblock by response opens it again. */
CK_RV piv_admin_lock(struct tess_token *tok, const uint8_t *resp, size_t rlen)
{
    return answer_once(tok, resp, rlen, NULL, 0, true);
}

/* A new admin key, authorised by a response (which releases the PUK and
 * the current key) or by the PUK (the current key is then the one
 * tessera.conf names). Either way the PUK becomes Tessera's. */
static CK_RV set_key(struct piv_token *t, const uint8_t *resp, size_t rlen, const uint8_t *puk, size_t puk_len,
                     enum tess_key_alg alg, const uint8_t *key, size_t key_len)
{
    struct admin_secret *s = calloc(1, sizeof(*s));
    struct admin_key next = { .alg = alg, .len = key_len };
    CK_RV rv = CKR_OK;

    if (!s)
        return CKR_HOST_MEMORY;
    if (key_len != tess_key_alg_len(alg) || key_len > KEY_MAX) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    memcpy(next.k, key, key_len);
    if (!resp) {
        if (!puk || puk_len > PUK_LEN) {
            rv = CKR_USER_NOT_LOGGED_IN;
            goto out;
        }
        rv = configured_key(&s->keys[0]);
        s->nkeys = 1;
        memset(s->puks[0], 0xff, PUK_LEN);   /* as the card pads it */
        memcpy(s->puks[0], puk, puk_len);
        s->npuks = 1;
        if (rv != CKR_OK)
            goto out;
    }
    rv = piv_token_begin(t);
    if (rv != CKR_OK)
        goto out;
    if (resp)
        rv = answer(t, resp, rlen, s);
    if (rv == CKR_OK)
        rv = rotate(t, s, &next, NULL, 0);
    piv_token_end(t);
out:
    tess_wipe(&next, sizeof(next));
    tess_wipe(s, sizeof(*s));
    free(s);
    return rv;
}

CK_RV piv_admin_set_key(struct tess_token *tok, const uint8_t *resp, size_t rlen, enum tess_key_alg alg,
                        const uint8_t *key, size_t key_len)
{
    struct piv_token *t = tok->drv;
    CK_RV rv = set_key(t, resp, rlen, resp ? NULL : t->puk, resp ? 0 : t->puk_len, alg, key, key_len);
    /* The PUK the SO logged in with is no more. */
    if (rv == CKR_OK && !resp)
        piv_token_drop_puk(t);
    return piv_token_gone(tok, rv);
}

CK_RV piv_admin_set_key_with_puk(struct piv_token *t, const uint8_t *puk, size_t puk_len, enum tess_key_alg alg,
                                 const uint8_t *key, size_t key_len)
{
    return set_key(t, NULL, 0, puk, puk_len, alg, key, key_len);
}

CK_RV piv_admin_check(struct piv_token *t, const uint8_t *resp, size_t rlen)
{
    struct admin_secret *s = calloc(1, sizeof(*s));
    CK_RV rv = s ? answer(t, resp, rlen, s) : CKR_HOST_MEMORY;
    if (s)
        tess_wipe(s, sizeof(*s));
    free(s);
    return rv;
}

CK_RV piv_admin_configured(uint8_t *piv_alg, uint8_t key[32], size_t *len)
{
    struct admin_key k;
    CK_RV rv = configured_key(&k);
    if (rv == CKR_OK) {
        *piv_alg = piv_alg_of_key(k.alg);
        memcpy(key, k.k, k.len);
        *len = k.len;
    }
    tess_wipe(&k, sizeof(k));
    return rv;
}
