/* Sessions, login state and PINs: the PKCS#11 session state machine. The
 * PIN checks themselves belong to the driver (the TPM or the card). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "../src/log.h"
#include "../src/util.h"
#include "entry.h"
#include "module.h"

void tess_op_reset(struct tess_op *op)
{
    EVP_MD_CTX_free(op->md);
    tess_free_secret(op->buf, op->len);
    tess_free_secret(op->label, op->label_len);
    memset(op, 0, sizeof(*op));
}

void tess_session_free_ops(struct tess_session *s)
{
    tess_op_reset(&s->sign);
    tess_op_reset(&s->verify);
    tess_op_reset(&s->encrypt);
    tess_op_reset(&s->decrypt);
    tess_op_reset(&s->digest);
}

void tess_session_drop_objects(struct tess_session *s)
{
    struct tess_token *tok = s->tok;
    struct tess_object **pp = &tok->objects;
    while (*pp) {
        struct tess_object *o = *pp;
        if (!o->token_object && o->owner == s->handle) {
            *pp = o->next;
            tess_object_free(tok, o);
        } else {
            pp = &o->next;
        }
    }
}

/* The objects a login opened (private ones, which a driver may keep
 * encrypted) are loaded again at the next use, under the new login state. */
static void forget_objects(struct tess_token *tok)
{
    struct tess_slot *slot = tess_slot_of_token(tok);
    tess_token_clear_token_objects(tok);
    if (slot)
        slot->objects_loaded = false;
}

/* The token forgets its login when its last session closes. */
static void logout_token(struct tess_token *tok)
{
    if (tok->login == TESS_NOT_LOGGED_IN)
        return;
    if (tok->driver->logout)
        tok->driver->logout(tok);
    tok->login = TESS_NOT_LOGGED_IN;
    forget_objects(tok);
}

void tess_token_logout(struct tess_token *tok)
{
    /* Operations started under the login end with it. */
    for (struct tess_session *o = g_mod.sessions; o; o = o->next)
        if (o->tok == tok)
            tess_session_free_ops(o);
    logout_token(tok);
}

static void session_close(struct tess_session *s)
{
    struct tess_token *tok = s->tok;
    for (struct tess_session **pp = &g_mod.sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    tess_session_drop_objects(s);
    tess_session_free_ops(s);
    free(s->find.handles);
    tok->session_count--;
    if (s->flags & CKF_RW_SESSION)
        tok->rw_session_count--;
    if (tok->session_count == 0)
        logout_token(tok);
    free(s);
}

CK_RV tess_C_OpenSession(CK_SLOT_ID id, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                         CK_SESSION_HANDLE_PTR out)
{
    struct tess_session *s = NULL;
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    struct tess_slot *slot = tess_slot_find(id);
    if (!slot) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (!out) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!(flags & CKF_SERIAL_SESSION)) {
        rv = CKR_SESSION_PARALLEL_NOT_SUPPORTED;
        goto out;
    }
    if (!slot->tok->present) {
        rv = CKR_TOKEN_NOT_PRESENT;
        goto out;
    }
    if (!slot->tok->initialized) {
        rv = CKR_TOKEN_NOT_RECOGNIZED;
        goto out;
    }
    if (!(flags & CKF_RW_SESSION) && slot->tok->login == CKU_SO) {
        rv = CKR_SESSION_READ_WRITE_SO_EXISTS;
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    s->handle = g_mod.next_session++;
    s->slot_id = id;
    s->tok = slot->tok;
    s->flags = flags & (CKF_RW_SESSION | CKF_SERIAL_SESSION);
    s->next = g_mod.sessions;
    g_mod.sessions = s;
    slot->tok->session_count++;
    if (flags & CKF_RW_SESSION)
        slot->tok->rw_session_count++;
    *out = s->handle;
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_CloseSession(CK_SESSION_HANDLE h)
{
    struct tess_session *s = NULL;
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    rv = tess_session_get(h, &s);
    if (rv == CKR_DEVICE_REMOVED) {
        /* A session on a vanished token can still be closed. */
        for (s = g_mod.sessions; s && s->handle != h; s = s->next)
            ;
        rv = s ? CKR_OK : CKR_SESSION_HANDLE_INVALID;
    }
    if (rv == CKR_OK)
        session_close(s);
    tess_leave();
    return rv;
}

void tess_slot_close_sessions(CK_SLOT_ID id)
{
    for (struct tess_session *s = g_mod.sessions, *next; s; s = next) {
        next = s->next;
        if (s->slot_id == id)
            session_close(s);
    }
}

CK_RV tess_C_CloseAllSessions(CK_SLOT_ID id)
{
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    if (tess_slot_find(id))
        tess_slot_close_sessions(id);
    else
        rv = CKR_SLOT_ID_INVALID;
    tess_leave();
    return rv;
}

CK_RV tess_C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!info) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    bool rw = s->flags & CKF_RW_SESSION;
    info->slotID = s->slot_id;
    info->flags = s->flags;
    info->ulDeviceError = 0;
    switch (s->tok->login) {
    case CKU_SO: info->state = CKS_RW_SO_FUNCTIONS; break;
    case CKU_USER: info->state = rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS; break;
    default: info->state = rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION; break;
    }
out:
    tess_leave();
    return rv;
}

static bool ro_session_exists(const struct tess_token *tok)
{
    for (struct tess_session *s = g_mod.sessions; s; s = s->next)
        if (s->tok == tok && !(s->flags & CKF_RW_SESSION))
            return true;
    return false;
}

CK_RV tess_C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    struct tess_token *tok = s->tok;
    if (!pin && len) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (who != CKU_USER && who != CKU_SO && who != CKU_CONTEXT_SPECIFIC) {
        rv = CKR_USER_TYPE_INVALID;
        goto out;
    }
    if (who == CKU_CONTEXT_SPECIFIC) {
        /* The PIN again, for the one operation just started on a
         * CKA_ALWAYS_AUTHENTICATE key (a PIV card's signature key). */
        struct tess_op *op = s->sign.kind != OP_NONE ? &s->sign : &s->decrypt;
        if (tok->login != CKU_USER) {
            rv = CKR_USER_NOT_LOGGED_IN;
            goto out;
        }
        if (op->kind == OP_NONE) {
            rv = CKR_OPERATION_NOT_INITIALIZED;
            goto out;
        }
        rv = tok->driver->login(tok, CKU_USER, pin, len);
        op->context_login_done = rv == CKR_OK;
        goto out;
    }
    if (tok->login == who) {
        rv = CKR_USER_ALREADY_LOGGED_IN;
        goto out;
    }
    if (tok->login != TESS_NOT_LOGGED_IN) {
        rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
        goto out;
    }
    if (who == CKU_SO && ro_session_exists(tok)) {
        rv = CKR_SESSION_READ_ONLY_EXISTS;
        goto out;
    }
    rv = tok->driver->login(tok, who, pin, len);
    if (rv == CKR_OK) {
        tok->login = who;
        forget_objects(tok);
    }
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_LoginUser(CK_SESSION_HANDLE h, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin, CK_ULONG len,
                       CK_UTF8CHAR_PTR user, CK_ULONG user_len)
{
    /* Cards have no user names: only the anonymous user is accepted. */
    if (user && user_len)
        return CKR_ARGUMENTS_BAD;
    return tess_C_Login(h, who, pin, len);
}

CK_RV tess_C_Logout(CK_SESSION_HANDLE h)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (s->tok->login == TESS_NOT_LOGGED_IN) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    tess_token_logout(s->tok);
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_InitToken(CK_SLOT_ID id, CK_UTF8CHAR_PTR so_pin, CK_ULONG so_len, CK_UTF8CHAR_PTR label)
{
    char text[33];
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    struct tess_slot *slot = tess_slot_find(id);
    if (!slot) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (!label || (!so_pin && so_len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!slot->tok->present) {
        rv = CKR_TOKEN_NOT_PRESENT;
        goto out;
    }
    if (slot->tok->session_count) {
        rv = CKR_SESSION_EXISTS;
        goto out;
    }
    if (!slot->driver->init_token) {
        rv = CKR_FUNCTION_NOT_SUPPORTED;
        goto out;
    }
    tess_unpad_copy(text, sizeof(text), label, 32);
    rv = slot->driver->init_token(slot->tok, so_pin, so_len, text);
    if (rv == CKR_OK) {
        /* Objects were erased (or the card is new): reload on next use. */
        tess_token_clear_token_objects(slot->tok);
        slot->objects_loaded = false;
        slot->event = true;
    }
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if (!pin && len) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if (s->tok->login != CKU_SO) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    rv = s->tok->driver->init_pin ? s->tok->driver->init_pin(s->tok, pin, len) : CKR_FUNCTION_NOT_SUPPORTED;
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin,
                    CK_ULONG new_len)
{
    struct tess_session *s;
    CK_RV rv = tess_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    if ((!old_pin && old_len) || (!new_pin && new_len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    /* The SO's PIN in an SO session, the user's otherwise. */
    CK_USER_TYPE who = s->tok->login == CKU_SO ? CKU_SO : CKU_USER;
    rv = s->tok->driver->set_pin ? s->tok->driver->set_pin(s->tok, who, old_pin, old_len, new_pin, new_len)
                                 : CKR_FUNCTION_NOT_SUPPORTED;
out:
    tess_leave();
    return rv;
}

CK_RV tess_C_SessionCancel(CK_SESSION_HANDLE h, CK_FLAGS flags)
{
    struct tess_session *s;
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    rv = tess_session_get(h, &s);
    if (rv == CKR_OK) {
        if (flags & CKF_SIGN)
            tess_op_reset(&s->sign);
        if (flags & CKF_VERIFY)
            tess_op_reset(&s->verify);
        if (flags & CKF_ENCRYPT)
            tess_op_reset(&s->encrypt);
        if (flags & CKF_DECRYPT)
            tess_op_reset(&s->decrypt);
        if (flags & CKF_DIGEST)
            tess_op_reset(&s->digest);
        if (flags & CKF_FIND_OBJECTS) {
            free(s->find.handles);
            memset(&s->find, 0, sizeof(s->find));
        }
    }
    tess_leave();
    return rv;
}
