/* The Tessera Management interface (tessera/pkcs11-tessera.h): the vendor
 * function table a management tool gets from C_GetInterface. Same entry
 * pattern, same slots and sessions as the standard functions; the drivers'
 * admin_* entries do the card's part. */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "../src/log.h"
#include "../src/util.h"
#include "entry.h"
#include "module.h"

static CK_RV key_alg(CK_KEY_TYPE type, CK_ULONG len, enum tess_key_alg *alg)
{
    if (type == CKK_DES3 && len == 24)
        *alg = TESS_KEY_3DES;
    else if (type == CKK_AES && len == 16)
        *alg = TESS_KEY_AES128;
    else if (type == CKK_AES && len == 24)
        *alg = TESS_KEY_AES192;
    else if (type == CKK_AES && len == 32)
        *alg = TESS_KEY_AES256;
    else if (type == CKK_DES3 || type == CKK_AES)
        return CKR_KEY_SIZE_RANGE;
    else
        return CKR_KEY_TYPE_INCONSISTENT;
    return CKR_OK;
}

static CK_RV T_GetCardInfo(CK_SLOT_ID slot_id, CK_TESSERA_CARD_INFO_PTR out)
{
    struct tess_slot *slot;
    struct tess_admin_info ai;
    CK_TOKEN_INFO ti;
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    if (!out) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    slot = tess_slot_find(slot_id);
    if (!slot) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (!slot->tok || !slot->tok->present || slot->tok->foreign) {
        rv = CKR_TOKEN_NOT_PRESENT;
        goto out;
    }
    if (!slot->driver->admin_info) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    memset(&ai, 0, sizeof(ai));
    memset(&ti, 0, sizeof(ti));
    rv = slot->driver->token_info(slot->tok, &ti);
    if (rv == CKR_OK)
        rv = slot->driver->admin_info(slot->tok, &ai);
    if (rv != CKR_OK)
        goto out;
    memset(out, 0, sizeof(*out));
    out->cardType = ai.card_type;
    memset(out->serialNumber, ' ', sizeof(out->serialNumber));
    memcpy(out->serialNumber, ti.serialNumber, sizeof(ti.serialNumber));
    if (ai.key_set) {
        out->adminKeyType = ai.alg == TESS_KEY_3DES ? CKK_DES3 : CKK_AES;
        out->adminKeyLen = tess_key_alg_len(ai.alg);
        memcpy(out->adminKeyCheck, ai.kcv, 3);
        out->flags |= CKF_TESSERA_ADMIN_KEY_SET;
        if (ai.key_default)
            out->flags |= CKF_TESSERA_ADMIN_KEY_DEFAULT;
    } else {
        out->adminKeyType = CK_UNAVAILABLE_INFORMATION;
    }
    out->challengeLen = ai.challenge_len;
    out->challengesLeft = ai.challenges_left < 0 ? CK_UNAVAILABLE_INFORMATION : (CK_ULONG)ai.challenges_left;
    out->unblockTriesLeft = ai.tries_left < 0 ? CK_UNAVAILABLE_INFORMATION : (CK_ULONG)ai.tries_left;
    out->unblockTriesMax = ai.tries_max < 0 ? CK_UNAVAILABLE_INFORMATION : (CK_ULONG)ai.tries_max;
    if (ai.pending)
        out->flags |= CKF_TESSERA_CHALLENGE_PENDING;
    if (ai.tries_max > 0 && ai.tries_left == 0)
        out->flags |= CKF_TESSERA_UNBLOCK_LOCKED;
out:
    tess_leave();
    return rv;
}

static CK_RV T_GetChallenge(CK_SESSION_HANDLE h, CK_FLAGS flags, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    struct tess_session *s;
    uint8_t buf[64];
    size_t len = sizeof(buf);
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!out_len || (flags & ~CKF_TESSERA_NEW_CHALLENGE)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!s->tok->driver->admin_challenge) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    if (!out) {
        /* A length query touches no challenge. */
        struct tess_admin_info ai;
        memset(&ai, 0, sizeof(ai));
        rv = s->tok->driver->admin_info ? s->tok->driver->admin_info(s->tok, &ai) : CKR_FUNCTION_NOT_SUPPORTED;
        if (rv == CKR_OK && !ai.key_set)
            rv = CKR_TESSERA_NO_ADMIN_KEY;
        if (rv == CKR_OK)
            *out_len = ai.challenge_len;
        goto out;
    }
    rv = s->tok->driver->admin_challenge(s->tok, flags & CKF_TESSERA_NEW_CHALLENGE, buf, &len);
    if (rv != CKR_OK)
        goto out;
    if (*out_len < len) {
        *out_len = len;
        rv = CKR_BUFFER_TOO_SMALL;
    } else {
        memcpy(out, buf, len);
        *out_len = len;
    }
out:
    tess_leave();
    return rv;
}

static CK_RV T_UnblockPIN(CK_SESSION_HANDLE h, CK_BYTE_PTR resp, CK_ULONG resp_len, CK_UTF8CHAR_PTR pin,
                          CK_ULONG pin_len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!resp || !resp_len || (!pin && pin_len)) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
    } else if (s->tok->login != TESS_NOT_LOGGED_IN) {
        /* Whoever is logged in has a better way than a helpdesk call. */
        rv = s->tok->login == CKU_SO ? CKR_USER_ANOTHER_ALREADY_LOGGED_IN : CKR_USER_ALREADY_LOGGED_IN;
    } else if (!s->tok->driver->unblock_pin) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    } else {
        rv = s->tok->driver->unblock_pin(s->tok, resp, resp_len, pin, pin_len);
    }
    tess_leave();
    return rv;
}

static CK_RV T_SetAdminKey(CK_SESSION_HANDLE h, CK_BYTE_PTR resp, CK_ULONG resp_len, CK_KEY_TYPE type,
                           CK_BYTE_PTR key, CK_ULONG key_len)
{
    struct tess_session *s;
    enum tess_key_alg alg;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!key || (resp && !resp_len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = key_alg(type, key_len, &alg);
    if (rv != CKR_OK)
        goto out;
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if (!resp && s->tok->login != CKU_SO) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    rv = s->tok->driver->set_admin_key ? s->tok->driver->set_admin_key(s->tok, resp, resp_len, alg, key, key_len)
                                       : CKR_FUNCTION_NOT_SUPPORTED;
out:
    tess_leave();
    return rv;
}

/* CK_TESSERA_INIT to the driver's form; refuses what no card could take. */
static CK_RV init_params(const CK_TESSERA_INIT *in, struct tess_card_init *p, struct tess_pin_policy *policy,
                         char label[33])
{
    static const CK_ULONG max_tries = 255;   /* a PIV card counts in a byte */
    char err[128];
    CK_RV rv;

    memset(p, 0, sizeof(*p));
    if ((!in->pLabel && in->ulLabelLen) || in->ulLabelLen > 32 || !in->pSoPin || !in->ulSoPinLen ||
        (!in->pNewSoPin && in->ulNewSoPinLen) || (!in->pUserPin && in->ulUserPinLen) ||
        in->ulUserPinTries > max_tries || in->ulSoPinTries > max_tries || (!in->pAdminKey && in->ulAdminKeyLen))
        return CKR_ARGUMENTS_BAD;
    if (in->pLabel) {
        memcpy(label, in->pLabel, in->ulLabelLen);
        label[in->ulLabelLen] = '\0';
        if (strlen(label) != in->ulLabelLen)
            return CKR_ARGUMENTS_BAD;
        p->label = label;
    }
    if (in->pPinPolicy) {
        const CK_TESSERA_PIN_POLICY *pp = in->pPinPolicy;
        const CK_ULONG rules[TESS_PIN_NCLASSES] = { pp->digits, pp->uppercase, pp->lowercase, pp->special };
        if (pp->ulMinLen > TESS_PIN_MAX_LEN || pp->ulMaxLen > TESS_PIN_MAX_LEN)
            return CKR_ARGUMENTS_BAD;
        policy->min_len = (int)pp->ulMinLen;
        policy->max_len = (int)pp->ulMaxLen;
        for (int i = 0; i < TESS_PIN_NCLASSES; i++) {
            if (rules[i] > CKV_TESSERA_PIN_CHARS_FORBIDDEN)
                return CKR_ARGUMENTS_BAD;
            policy->rule[i] = (enum tess_pin_class_rule)rules[i];
        }
        if (tess_pin_policy_validate(policy, err, sizeof(err))) {
            TESS_ERR("T_InitCard: %s", err);
            return CKR_ARGUMENTS_BAD;
        }
        p->policy = policy;
    }
    if (in->pAdminKey) {
        rv = key_alg(in->adminKeyType, in->ulAdminKeyLen, &p->admin_alg);
        if (rv != CKR_OK)
            return rv;
        p->admin_key = in->pAdminKey;
        p->admin_key_len = in->ulAdminKeyLen;
    }
    p->so_pin = in->pSoPin;
    p->so_len = in->ulSoPinLen;
    p->new_so_pin = in->pNewSoPin;
    p->new_so_len = in->ulNewSoPinLen;
    p->user_pin = in->pUserPin;
    p->user_len = in->ulUserPinLen;
    p->user_tries = (int)in->ulUserPinTries;
    p->so_tries = (int)in->ulSoPinTries;
    return CKR_OK;
}

/* A chosen serial: 16 hex digits, kept lower case as the driver writes them. */
static CK_RV serial_param(const CK_UTF8CHAR *in, CK_ULONG len, char out[17])
{
    if (!in || len != 16)
        return CKR_ARGUMENTS_BAD;
    for (CK_ULONG i = 0; i < len; i++) {
        if (!isxdigit(in[i]))
            return CKR_ARGUMENTS_BAD;
        out[i] = (char)tolower(in[i]);
    }
    out[len] = '\0';
    return CKR_OK;
}

static CK_RV init_card(CK_SLOT_ID slot_id, CK_TESSERA_INIT_PTR in, const CK_UTF8CHAR *serial_in,
                       CK_ULONG serial_len)
{
    struct tess_slot *slot;
    struct tess_card_init p;
    struct tess_pin_policy policy;
    char label[33], serial[17];
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    slot = tess_slot_find(slot_id);
    if (!slot) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    rv = in ? init_params(in, &p, &policy, label) : CKR_ARGUMENTS_BAD;
    if (rv == CKR_OK && serial_in) {
        rv = serial_param(serial_in, serial_len, serial);
        p.serial = serial;
    }
    if (rv != CKR_OK)
        goto out;
    if (!slot->tok || !slot->tok->present || slot->tok->foreign) {
        rv = CKR_TOKEN_NOT_PRESENT;
    } else if (slot->tok->session_count) {
        rv = CKR_SESSION_EXISTS;   /* as C_InitToken: nobody may be using what is erased */
    } else if (!slot->driver->init_card) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    } else {
        rv = slot->driver->init_card(slot->tok, &p);
        /* A new card, or one whose serial, keys and PINs all changed: the
         * slot is looked at afresh (no session holds the old token). */
        if (rv == CKR_OK)
            tess_slot_retire(slot_id);
    }
out:
    tess_leave();
    return rv;
}

static CK_RV T_InitCard(CK_SLOT_ID slot_id, CK_TESSERA_INIT_PTR in)
{
    return init_card(slot_id, in, NULL, 0);
}

static CK_RV T_InitCardWithSerial(CK_SLOT_ID slot_id, CK_TESSERA_INIT_PTR in, CK_UTF8CHAR_PTR serial,
                                  CK_ULONG serial_len)
{
    return serial ? init_card(slot_id, in, serial, serial_len) : CKR_ARGUMENTS_BAD;
}

static CK_RV T_EraseCard(CK_SESSION_HANDLE h, CK_BYTE_PTR resp, CK_ULONG resp_len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (resp && !resp_len) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
    } else if (!s->tok->driver->erase_card) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    } else {
        CK_SLOT_ID slot_id = s->slot_id;
        rv = s->tok->driver->erase_card(s->tok, resp, resp_len);
        if (rv == CKR_OK) {
            /* What the sessions knew of the card is gone with it. */
            tess_slot_close_sessions(slot_id);
            tess_slot_retire(slot_id);
        }
    }
    tess_leave();
    return rv;
}

static CK_RV T_LockPIN(CK_SESSION_HANDLE h, CK_BYTE_PTR resp, CK_ULONG resp_len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!resp || !resp_len) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
    } else if (!s->tok->driver->lock_pin) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    } else {
        rv = s->tok->driver->lock_pin(s->tok, resp, resp_len);
        /* A locked card is not left open to whoever was logged in. */
        if (rv == CKR_OK && s->tok->login == CKU_USER)
            tess_token_logout(s->tok);
    }
    tess_leave();
    return rv;
}

CK_TESSERA_FUNCTION_LIST tess_mgmt_function_list = {
    { TESSERA_INTERFACE_VERSION_MAJOR, TESSERA_INTERFACE_VERSION_MINOR },
    T_GetCardInfo,
    T_GetChallenge,
    T_UnblockPIN,
    T_SetAdminKey,
    T_InitCard,
    T_EraseCard,
    T_InitCardWithSerial,
    T_LockPIN,
};
