/* PIV cards back to their factory state (erase) and on to a known one (init).
 *
 * A PIV card cannot delete a key. A YubiKey (and vpiv) resets the whole PIV
 * application once PIN and PUK are both blocked: keys and data objects gone,
 * PIN 123456, PUK 12345678, the factory 9B key. Tessera blocks both by wrong
 * tries, then resets; only on a card that answers the YubiKey metadata
 * command, checked before anything is spent, since a card without RESET
 * would be left with both blocked.
 *
 * Anyone holding such a card can reset it this way. The authority the
 * module asks for (a response, the PUK, the SO login) keeps a program from
 * erasing a card by mistake or behind the helpdesk's back; it does not stop
 * someone with the card in hand, and a card whose PUK is blocked (unblock
 * locked) is erased with none, since nothing else can be done with it. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "piv_card.h"
#include "tlv.h"

#define TRIES_BOUND 256               /* a YubiKey counts at most 255 tries */
#define FACTORY_PIN "123456"
#define FACTORY_PUK "12345678"

/* A CHUID for a card that lost its own: the FASC-N of a non-federal card
 * (agency code 9999, as yubico-piv-tool writes), a random GUID, an expiry
 * date, an empty signature. Its GUID is the card's serial in Tessera. */
static const uint8_t fascn[25] = { 0xd4, 0xe7, 0x39, 0xda, 0x73, 0x9c, 0xed, 0x39, 0xce, 0x73, 0x9d, 0x83, 0x68,
                                   0x58, 0x21, 0x08, 0x42, 0x10, 0x84, 0x21, 0xc8, 0x42, 0x10, 0xc3, 0xeb };

static int put_tlv(struct buf *b, uint8_t tag, const uint8_t *v, size_t len)
{
    uint8_t hdr[8];
    size_t n = tlv_header(hdr, tag, len);
    return buf_append(b, hdr, n) || (len && buf_append(b, v, len));
}

static CK_RV random_digits(uint8_t out[8])
{
    if (RAND_bytes(out, 8) != 1)
        return CKR_FUNCTION_FAILED;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)('0' + out[i] % 10);
    return CKR_OK;
}

/* Spend every try of the PIN (VERIFY) or the PUK (CHANGE REFERENCE to
 * itself) on values nobody chose; one that happens to be right changes
 * nothing and the next is tried. */
static CK_RV block(struct channel *ch, uint8_t ref)
{
    uint8_t v[8];
    CK_RV rv = CKR_PIN_INCORRECT;
    for (int i = 0; i < TRIES_BOUND && (rv == CKR_PIN_INCORRECT || rv == CKR_OK); i++) {
        rv = random_digits(v);
        if (rv == CKR_OK)
            rv = ref == PIV_PIN ? piv_verify(ch, v, sizeof(v), NULL)
                                : piv_change_reference(ch, PIV_PUK, v, sizeof(v), v, sizeof(v), NULL);
    }
    tess_wipe(v, sizeof(v));
    if (rv == CKR_PIN_LOCKED)
        return CKR_OK;
    return rv == CKR_OK || rv == CKR_PIN_INCORRECT ? CKR_DEVICE_ERROR : rv;
}

/* The PUK's tries left, from the YubiKey metadata; a card without that
 * command cannot be reset by Tessera and is refused before anything. */
static CK_RV puk_tries(struct piv_token *t, int *left)
{
    struct buf meta = { 0 };
    struct tlv el;
    CK_RV rv = piv_metadata(&t->ch, PIV_PUK, &meta);
    if (rv == CKR_OK && tlv_find(meta.p, meta.len, 0x06, &el) && el.len == 2)
        *left = el.value[1];
    else if (rv == CKR_OK || rv == CKR_FUNCTION_NOT_SUPPORTED) {
        TESS_ERR("piv: card %s does not say its PUK tries (no YubiKey metadata): Tessera cannot reset it",
                 t->serial);
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    }
    buf_free(&meta);
    return rv;
}

CK_RV piv_block_pin(struct channel *ch)
{
    return block(ch, PIV_PIN);
}

static CK_RV reset(struct piv_token *t)
{
    CK_RV rv = block(&t->ch, PIV_PIN);
    if (rv == CKR_OK)
        rv = block(&t->ch, PIV_PUK);
    if (rv == CKR_OK)
        rv = piv_yk_reset(&t->ch);
    if (rv == CKR_OK) {
        piv_cache_forget(t);   /* its keys are gone */
        rv = piv_select(&t->ch);
    }
    return rv;
}

CK_RV piv_erase_card(struct tess_token *tok, const uint8_t *resp, size_t rlen)
{
    struct piv_token *t = tok->drv;
    int left = -1;
    CK_RV rv = piv_token_begin(t);

    if (rv != CKR_OK)
        return piv_token_gone(tok, rv);
    rv = puk_tries(t, &left);
    if (rv == CKR_OK && resp)
        rv = piv_admin_check(t, resp, rlen);
    else if (rv == CKR_OK && !(tok->login == CKU_SO && t->puk) && left > 0)
        rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK)
        rv = reset(t);
    piv_token_end(t);
    if (rv == CKR_OK) {
        TESS_INFO("piv: card %s erased (reset to its factory state)", t->serial);
    }
    return piv_token_gone(tok, rv);
}

/* Just after a reset: the factory 9B key, in the algorithm the card says. */
static CK_RV factory_auth(struct piv_token *t, uint8_t *alg)
{
    struct buf meta = { 0 };
    struct tlv el;
    CK_RV rv = piv_metadata(&t->ch, PIV_KEY_MGMT, &meta);
    *alg = PIV_ALG_3DES;
    if (rv == CKR_OK && tlv_find(meta.p, meta.len, 0x01, &el) && el.len == 1)
        *alg = el.value[0];
    buf_free(&meta);
    return piv_mgmt_auth(&t->ch, *alg, tess_admin_default_key, 24);
}

/* The card's CHUID after a reset: a YubiKey (and vpiv) loses its own, so it
 * gets one to keep one serial, the one its admin key is diversified from.
 * With want (16 hex digits, a card-management system's choice, recorded
 * before the card is touched) the GUID begins with those 8 bytes, the rest
 * random; otherwise a card that still has a CHUID keeps it, and one without
 * gets a random GUID. */
static CK_RV write_chuid(struct piv_token *t, const char *want)
{
    struct buf cur = { 0 }, v = { 0 };
    uint8_t guid[16];
    CK_RV rv = CKR_OK;
    if (!want) {
        rv = piv_get_data(&t->ch, PIV_OBJ_CHUID, &cur);
        buf_free(&cur);
        if (rv == CKR_OK || rv == CKR_DEVICE_REMOVED)
            return rv;
    }
    if (RAND_bytes(guid, sizeof(guid)) != 1)
        return CKR_FUNCTION_FAILED;
    if (want) {
        for (int i = 0; i < 8; i++) {
            unsigned int byte;
            if (sscanf(want + 2 * i, "%2x", &byte) != 1)
                return CKR_ARGUMENTS_BAD;
            guid[i] = (uint8_t)byte;
        }
    } else {
        guid[6] = (uint8_t)((guid[6] & 0x0f) | 0x40);   /* RFC 4122 version 4 */
    }
    guid[8] = (uint8_t)((guid[8] & 0x3f) | 0x80);
    if (put_tlv(&v, 0x30, fascn, sizeof(fascn)) || put_tlv(&v, 0x34, guid, sizeof(guid)) ||
        put_tlv(&v, 0x35, (const uint8_t *)"20991231", 8) || put_tlv(&v, 0x3e, NULL, 0) ||
        put_tlv(&v, 0xfe, NULL, 0))
        rv = CKR_HOST_MEMORY;
    else
        rv = piv_put_data(&t->ch, PIV_OBJ_CHUID, v.p, v.len);
    buf_free(&v);
    return rv;
}

/* After the reset: the tries asked for, tessera.conf's 9B key, a CHUID, the
 * PIN and the PUK, in that order, each from the factory value. A card pulled
 * on the way keeps the factory PUK or the new one, and a new init with
 * either finishes it. */
static CK_RV configure(struct piv_token *t, const struct tess_card_init *p, const uint8_t *puk, size_t puk_len)
{
    uint8_t factory_alg, conf_alg, conf_key[32];
    size_t conf_len = 0;
    CK_RV rv = piv_admin_configured(&conf_alg, conf_key, &conf_len);

    if (rv == CKR_OK)
        rv = factory_auth(t, &factory_alg);
    if (rv == CKR_OK && (p->user_tries || p->so_tries)) {
        /* SET PIN RETRIES needs the PIN verified, and leaves the 9B key
         * proven on a YubiKey; proven again to be sure. */
        rv = piv_verify(&t->ch, (const uint8_t *)FACTORY_PIN, 6, NULL);
        if (rv == CKR_OK)
            rv = piv_yk_set_pin_retries(&t->ch, (uint8_t)(p->user_tries ? p->user_tries : 3),
                                        (uint8_t)(p->so_tries ? p->so_tries : 3));
        if (rv == CKR_OK)
            rv = factory_auth(t, &factory_alg);
    }
    if (rv == CKR_OK && (conf_alg != factory_alg || conf_len != 24 || memcmp(conf_key, tess_admin_default_key, 24)))
        rv = piv_set_mgmt_key(&t->ch, conf_alg, conf_key, conf_len);
    if (rv == CKR_OK)
        rv = write_chuid(t, p->serial);
    if (rv == CKR_OK)
        rv = piv_token_read_serial(t);   /* its serial now */
    if (rv == CKR_OK)
        rv = piv_change_reference(&t->ch, PIV_PIN, (const uint8_t *)FACTORY_PIN, 6, p->user_pin, p->user_len, NULL);
    if (rv == CKR_OK)
        rv = piv_change_reference(&t->ch, PIV_PUK, (const uint8_t *)FACTORY_PUK, 8, puk, puk_len, NULL);
    tess_wipe(conf_key, sizeof(conf_key));
    return rv;
}

CK_RV piv_init_card(struct tess_token *tok, const struct tess_card_init *p)
{
    struct piv_token *t = tok->drv;
    const uint8_t *puk = p->new_so_pin ? p->new_so_pin : p->so_pin;
    size_t puk_len = p->new_so_pin ? p->new_so_len : p->so_len;
    int left = -1;
    CK_RV rv;

    /* What the card cannot take is refused before it is touched. */
    if (p->label || p->policy) {
        TESS_ERR("piv: a PIV card has no label of its own, and its PIN rule is its own (6 to 8 characters)");
        return CKR_ARGUMENTS_BAD;
    }
    if (!p->user_pin) {
        TESS_ERR("piv: a PIV card always has a PIN: initialise it with the user's");
        return CKR_ARGUMENTS_BAD;
    }
    if (p->user_len < 6 || p->user_len > 8 || puk_len < 6 || puk_len > 8 || p->so_len > 8)
        return CKR_PIN_LEN_RANGE;
    rv = piv_token_begin(t);
    if (rv != CKR_OK)
        return piv_token_gone(tok, rv);
    rv = puk_tries(t, &left);
    /* The PUK proves the authority (changed to itself); a wrong one costs a
     * try, as the card counts it, and nothing else happens. A blocked PUK
     * (an erase cut short, or unblock locked) proves nothing any more: such
     * a card is reset without, as T_EraseCard would. */
    if (rv == CKR_OK && left != 0)
        rv = piv_change_reference(&t->ch, PIV_PUK, p->so_pin, p->so_len, p->so_pin, p->so_len, NULL);
    if (rv == CKR_OK)
        rv = reset(t);
    if (rv == CKR_OK)
        rv = configure(t, p, puk, puk_len);
    piv_token_end(t);
    if (rv == CKR_OK && p->admin_key)
        rv = piv_admin_set_key_with_puk(t, puk, puk_len, p->admin_alg, p->admin_key, p->admin_key_len);
    if (rv == CKR_OK)
        TESS_INFO("piv: card %s initialised", t->serial);
    return piv_token_gone(tok, rv);
}
