/* Module lifetime, slots and tokens, mechanisms, and the function tables
 * (PKCS#11 3.0 interfaces and the 2.40 list). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/log.h"
#include "../src/mech.h"
#include "../src/store.h"
#include "../src/util.h"
#include "entry.h"
#include "module.h"

struct tess_module g_mod = { .lock = PTHREAD_MUTEX_INITIALIZER };

const struct tess_driver *const tess_drivers[] = {
    &tess_tpm2_driver,
#ifdef HAVE_PCSC
    &tess_piv_driver,
#endif
};
const size_t tess_ndrivers = TESS_ARRAY_SIZE(tess_drivers);

#define MAX_SLOTS_PER_DRIVER 64

/* ---- entry/exit ---- */

CK_RV tess_enter(void)
{
    pthread_mutex_lock(&g_mod.lock);
    /* After fork() the child must call C_Initialize again; until it does, it
     * holds none of the parent's connections. */
    if (!g_mod.initialized || g_mod.pid != getpid()) {
        pthread_mutex_unlock(&g_mod.lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    return CKR_OK;
}

void tess_leave(void)
{
    pthread_mutex_unlock(&g_mod.lock);
}

CK_RV tess_enter_session(CK_SESSION_HANDLE h, struct tess_session **out)
{
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    rv = tess_session_get(h, out);
    if (rv != CKR_OK)
        tess_leave();
    return rv;
}

struct tess_slot *tess_slot_find(CK_SLOT_ID id)
{
    for (size_t i = 0; i < g_mod.nslots; i++)
        if (g_mod.slots[i].id == id)
            return &g_mod.slots[i];
    return NULL;
}

struct tess_slot *tess_slot_of_token(const struct tess_token *tok)
{
    for (size_t i = 0; i < g_mod.nslots; i++)
        if (g_mod.slots[i].tok == tok)
            return &g_mod.slots[i];
    return NULL;
}

CK_RV tess_session_get(CK_SESSION_HANDLE h, struct tess_session **out)
{
    for (struct tess_session *s = g_mod.sessions; s; s = s->next) {
        if (s->handle != h)
            continue;
        if (!s->tok->present)
            return CKR_DEVICE_REMOVED;
        *out = s;
        return CKR_OK;
    }
    return CKR_SESSION_HANDLE_INVALID;
}

bool tess_user_logged_in(const struct tess_token *tok)
{
    return tok->login == CKU_USER;
}

bool tess_object_visible(const struct tess_token *tok, const struct tess_object *o)
{
    return !tess_attrs_get_bool(&o->attrs, CKA_PRIVATE, false) || tess_user_logged_in(tok);
}

struct tess_object *tess_object_get(struct tess_session *s, CK_OBJECT_HANDLE h)
{
    struct tess_slot *slot = tess_slot_of_token(s->tok);
    if (slot && tess_token_objects(slot, false) != CKR_OK)
        return NULL;
    struct tess_object *o = tess_token_find_handle(s->tok, h);
    if (!o || !tess_object_visible(s->tok, o))
        return NULL;
    /* A session object belongs to the application, not to one session. */
    return o;
}

CK_RV tess_token_objects(struct tess_slot *slot, bool check_stale)
{
    struct tess_token *tok = slot->tok;
    CK_RV rv;
    if (slot->objects_loaded && !(check_stale && tok->driver->objects_stale && tok->driver->objects_stale(tok)))
        return CKR_OK;
    tess_token_clear_token_objects(tok);
    rv = tok->driver->load_objects ? tok->driver->load_objects(tok) : CKR_OK;
    if (rv == CKR_OK)
        rv = tess_token_add_profile(tok);
    slot->objects_loaded = rv == CKR_OK;
    return rv;
}

/* ---- slots ---- */

static void token_destroy(struct tess_token *tok)
{
    if (!tok)
        return;
    while (tok->objects) {
        struct tess_object *o = tok->objects;
        tok->objects = o->next;
        tess_object_free(tok, o);
    }
    if (tok->driver->token_free)
        tok->driver->token_free(tok->drv);
    free(tok->handles);
    free(tok);
}

static bool slot_has_sessions(const struct tess_token *tok)
{
    return tok->session_count > 0;
}

static CK_RV slot_open(struct tess_slot *slot, const struct tess_driver *drv, const struct tess_slot_report *r)
{
    struct tess_token *tok = calloc(1, sizeof(*tok));
    CK_RV rv;
    if (!tok)
        return CKR_HOST_MEMORY;
    tok->slot_id = r->slot_id;
    tok->driver = drv;
    tok->present = true;
    tok->login = TESS_NOT_LOGGED_IN;
    rv = drv->token_open(tok, r->card_key);
    if (rv != CKR_OK) {
        free(tok);
        return rv;
    }
    slot->id = r->slot_id;
    slot->driver = drv;
    slot->tok = tok;
    slot->event = true;
    slot->objects_loaded = false;
    return CKR_OK;
}

void tess_slot_retire(CK_SLOT_ID id)
{
    struct tess_slot *slot = tess_slot_find(id);
    if (!slot || !slot->tok || slot->tok->session_count)
        return;
    /* No scan reports this key: the rescan opens whatever is there now. */
    slot->tok->card_key = UINT64_MAX;
    slot->tok->present = false;
    if (tess_slots_rescan() != CKR_OK)
        TESS_WARN("slot %lu: could not look at the card again; the next C_GetSlotList will", (unsigned long)id);
}

/* Ask every driver which slots it has now; keep the tokens of slots whose
 * card is unchanged (their sessions and handles live on), open new ones, and
 * retire the rest (a token with open sessions stays, marked not present). */
CK_RV tess_slots_rescan(void)
{
    struct tess_slot_report reports[MAX_SLOTS_PER_DRIVER];
    struct tess_slot *next = NULL;
    size_t nnext = 0;
    CK_RV rv = CKR_OK;

    for (size_t d = 0; d < tess_ndrivers; d++) {
        const struct tess_driver *drv = tess_drivers[d];
        size_t n = 0;
        if (drv->scan(reports, MAX_SLOTS_PER_DRIVER, &n) != CKR_OK) {
            TESS_WARN("driver %s could not list its slots", drv->name);
            /* keep what it had */
            for (size_t i = 0; i < g_mod.nslots; i++) {
                if (g_mod.slots[i].driver != drv)
                    continue;
                struct tess_slot *ns = realloc(next, (nnext + 1) * sizeof(*ns));
                if (!ns)
                    goto nomem;
                next = ns;
                next[nnext++] = g_mod.slots[i];
                g_mod.slots[i].tok = NULL;
            }
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            struct tess_slot *old = tess_slot_find(reports[i].slot_id);
            struct tess_slot *ns = realloc(next, (nnext + 1) * sizeof(*ns));
            if (!ns)
                goto nomem;
            next = ns;
            /* Same card as before (or the same foreign card: no need to look
             * again). A card that failed to open is tried again. */
            if (old && old->tok && old->tok->card_key == reports[i].card_key &&
                (old->tok->present || old->tok->foreign || !reports[i].card_key)) {
                next[nnext++] = *old;
                old->tok = NULL;
                continue;
            }
            if (old && old->tok && slot_has_sessions(old->tok)) {
                /* The card changed under open sessions: they see it removed
                 * (one event, when that happens). */
                if (old->tok->present)
                    old->event = true;
                old->tok->present = false;
                next[nnext++] = *old;
                old->tok = NULL;
                continue;
            }
            memset(&next[nnext], 0, sizeof(next[nnext]));
            if (slot_open(&next[nnext], drv, &reports[i]) == CKR_OK)
                nnext++;
        }
    }
    /* Slots no driver reported any more. */
    for (size_t i = 0; i < g_mod.nslots; i++) {
        struct tess_token *tok = g_mod.slots[i].tok;
        if (!tok)
            continue;
        if (slot_has_sessions(tok)) {
            struct tess_slot *ns = realloc(next, (nnext + 1) * sizeof(*ns));
            if (!ns)
                goto nomem;
            next = ns;
            next[nnext] = g_mod.slots[i];
            if (tok->present)
                next[nnext].event = true;
            tok->present = false;
            nnext++;
        } else {
            token_destroy(tok);
        }
        g_mod.slots[i].tok = NULL;
    }
    free(g_mod.slots);
    g_mod.slots = next;
    g_mod.nslots = nnext;
    return rv;
nomem:
    /* Put back what was moved; nothing is lost. */
    for (size_t i = 0; i < nnext; i++) {
        struct tess_slot *old = tess_slot_find(next[i].id);
        if (old && !old->tok)
            *old = next[i];
        else
            token_destroy(next[i].tok);
    }
    free(next);
    return CKR_HOST_MEMORY;
}

static void free_all_state(void)
{
    while (g_mod.sessions) {
        struct tess_session *s = g_mod.sessions;
        g_mod.sessions = s->next;
        tess_session_free_ops(s);
        free(s->find.handles);
        free(s);
    }
    for (size_t i = 0; i < g_mod.nslots; i++)
        token_destroy(g_mod.slots[i].tok);
    free(g_mod.slots);
    g_mod.slots = NULL;
    g_mod.nslots = 0;
}

/* ---- general ---- */

static CK_RV tess_C_Initialize(CK_VOID_PTR init_args)
{
    CK_C_INITIALIZE_ARGS *args = init_args;
    char err[512];
    CK_RV rv = CKR_OK;

    if (args) {
        if (args->pReserved)
            return CKR_ARGUMENTS_BAD;
        bool some = args->CreateMutex || args->DestroyMutex || args->LockMutex || args->UnlockMutex;
        bool all = args->CreateMutex && args->DestroyMutex && args->LockMutex && args->UnlockMutex;
        if (some && !all)
            return CKR_ARGUMENTS_BAD;
        /* We lock with pthreads; an application that insists on its own
         * mutex functions without allowing OS locking cannot be served. */
        if (all && !(args->flags & CKF_OS_LOCKING_OK))
            return CKR_CANT_LOCK;
    }
    if (g_mod.initialized && g_mod.pid != getpid()) {
        /* A forked child re-initialising: drop the parent's state without
         * touching the parent's TPM objects or connections. */
        pthread_mutex_init(&g_mod.lock, NULL);
        for (size_t d = 0; d < tess_ndrivers; d++)
            tess_drivers[d]->fini(true);
        tess_store_shared_close(true);
        free_all_state();
        g_mod.initialized = false;
    }
    pthread_mutex_lock(&g_mod.lock);
    if (g_mod.initialized) {
        rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
        goto out;
    }
    if (tess_settings_load(&g_mod.settings, err, sizeof(err))) {
        TESS_ERR("configuration: %s", err);
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    for (size_t d = 0; d < tess_ndrivers; d++) {
        if (tess_drivers[d]->abi != TESS_DRIVER_ABI) {
            TESS_ERR("driver %s was built for driver ABI %u, not %u", tess_drivers[d]->name, tess_drivers[d]->abi,
                     TESS_DRIVER_ABI);
            rv = CKR_GENERAL_ERROR;
            goto out;
        }
        rv = tess_drivers[d]->init(&g_mod.settings);
        if (rv != CKR_OK)
            goto out;
    }
    g_mod.pid = getpid();
    g_mod.initialized = true;
    g_mod.finalizing = false;
    g_mod.next_session = 1;
    /* A slot list that cannot be read now (no TPM, unreadable store) is not
     * fatal: the module loads and shows what it can. */
    tess_slots_rescan();
out:
    pthread_mutex_unlock(&g_mod.lock);
    return rv;
}

static CK_RV tess_C_Finalize(CK_VOID_PTR reserved)
{
    CK_RV rv;
    if (reserved)
        return CKR_ARGUMENTS_BAD;
    rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    g_mod.finalizing = true;
    free_all_state();
    for (size_t d = 0; d < tess_ndrivers; d++)
        tess_drivers[d]->fini(false);
    tess_store_shared_close(false);
    g_mod.initialized = false;
    tess_leave();
    return CKR_OK;
}

static CK_RV tess_C_GetInfo(CK_INFO_PTR info)
{
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    if (!info) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    memset(info, 0, sizeof(*info));
    info->cryptokiVersion.major = 3;
    info->cryptokiVersion.minor = 0;
    tess_pad_copy(info->manufacturerID, sizeof(info->manufacturerID), "Tessera");
    tess_pad_copy(info->libraryDescription, sizeof(info->libraryDescription), "Tessera smart cards and TPM cards");
    info->libraryVersion.major = 0;
    info->libraryVersion.minor = 1;
out:
    tess_leave();
    return rv;
}

static CK_RV tess_C_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
    CK_RV rv = tess_enter();
    CK_ULONG n = 0;
    if (rv != CKR_OK)
        return rv;
    if (!count) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    /* PKCS#11: the list may change only on a call that asks for its size. */
    if (!list)
        tess_slots_rescan();
    for (size_t i = 0; i < g_mod.nslots; i++) {
        if (token_present && !g_mod.slots[i].tok->present)
            continue;
        if (list && n < *count)
            list[n] = g_mod.slots[i].id;
        n++;
    }
    if (list && n > *count)
        rv = CKR_BUFFER_TOO_SMALL;
    *count = n;
out:
    tess_leave();
    return rv;
}

static CK_RV tess_C_GetSlotInfo(CK_SLOT_ID id, CK_SLOT_INFO_PTR info)
{
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    struct tess_slot *slot = tess_slot_find(id);
    if (!slot) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (!info) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    memset(info, 0, sizeof(*info));
    rv = slot->driver->slot_info(slot->tok, info);
    if (!slot->tok->present)
        info->flags &= ~CKF_TOKEN_PRESENT;
out:
    tess_leave();
    return rv;
}

static CK_RV tess_C_GetTokenInfo(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    struct tess_slot *slot = tess_slot_find(id);
    if (!slot) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (!info) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!slot->tok->present) {
        rv = CKR_TOKEN_NOT_PRESENT;
        goto out;
    }
    memset(info, 0, sizeof(*info));
    rv = slot->driver->token_info(slot->tok, info);
    if (rv != CKR_OK)
        goto out;
    info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulSessionCount = slot->tok->session_count;
    info->ulRwSessionCount = slot->tok->rw_session_count;
    info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    tess_pad_copy(info->utcTime, sizeof(info->utcTime), "");
out:
    tess_leave();
    return rv;
}

static CK_RV tess_C_GetMechanismList(CK_SLOT_ID id, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    size_t n;
    const struct tess_mech_info *m = tess_mech_table(&n);
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    if (!tess_slot_find(id)) {
        rv = CKR_SLOT_ID_INVALID;
        goto out;
    }
    if (!count) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (list) {
        if (*count < n)
            rv = CKR_BUFFER_TOO_SMALL;
        else
            for (size_t i = 0; i < n; i++)
                list[i] = m[i].type;
    }
    *count = n;
out:
    tess_leave();
    return rv;
}

static CK_RV tess_C_GetMechanismInfo(CK_SLOT_ID id, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
    CK_RV rv = tess_enter();
    if (rv != CKR_OK)
        return rv;
    const struct tess_mech_info *m = tess_mech_find(type);
    if (!tess_slot_find(id))
        rv = CKR_SLOT_ID_INVALID;
    else if (!info)
        rv = CKR_ARGUMENTS_BAD;
    else if (!m)
        rv = CKR_MECHANISM_INVALID;
    else {
        info->ulMinKeySize = m->min_bits;
        info->ulMaxKeySize = m->max_bits;
        info->flags = m->flags;
    }
    tess_leave();
    return rv;
}

static CK_RV tess_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot_out, CK_VOID_PTR reserved)
{
    CK_RV rv;
    if (!slot_out || reserved)
        return CKR_ARGUMENTS_BAD;
    for (;;) {
        rv = tess_enter();
        if (rv != CKR_OK)
            return rv;
        if (g_mod.finalizing) {
            tess_leave();
            return CKR_CRYPTOKI_NOT_INITIALIZED;
        }
        tess_slots_rescan();
        for (size_t i = 0; i < g_mod.nslots; i++) {
            if (g_mod.slots[i].event) {
                g_mod.slots[i].event = false;
                *slot_out = g_mod.slots[i].id;
                tess_leave();
                return CKR_OK;
            }
        }
        tess_leave();
        if (flags & CKF_DONT_BLOCK)
            return CKR_NO_EVENT;
        /* Cards in a TPM do not interrupt; poll the store gently. */
        struct timespec ts = { 0, 500 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* ---- what we do not do ---- */

static CK_RV not_supported(void)
{
    return CKR_FUNCTION_NOT_SUPPORTED;
}

#define UNSUPPORTED(name, ...)                                                                                 \
    static CK_RV tess_##name(__VA_ARGS__)                                                                      \
    {                                                                                                          \
        return not_supported();                                                                                \
    }

UNSUPPORTED(C_GetOperationState, CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG_PTR l)
UNSUPPORTED(C_SetOperationState, CK_SESSION_HANDLE h, CK_BYTE_PTR p, CK_ULONG l, CK_OBJECT_HANDLE a,
            CK_OBJECT_HANDLE b)
UNSUPPORTED(C_SignRecoverInit, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
UNSUPPORTED(C_SignRecover, CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG_PTR sl)
UNSUPPORTED(C_VerifyRecoverInit, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
UNSUPPORTED(C_VerifyRecover, CK_SESSION_HANDLE h, CK_BYTE_PTR s, CK_ULONG sl, CK_BYTE_PTR d, CK_ULONG_PTR dl)
UNSUPPORTED(C_DigestEncryptUpdate, CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
UNSUPPORTED(C_DecryptDigestUpdate, CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
UNSUPPORTED(C_SignEncryptUpdate, CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
UNSUPPORTED(C_DecryptVerifyUpdate, CK_SESSION_HANDLE h, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR c, CK_ULONG_PTR d)
UNSUPPORTED(C_GenerateKey, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
            CK_OBJECT_HANDLE_PTR k)
UNSUPPORTED(C_WrapKey, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE a, CK_OBJECT_HANDLE b,
            CK_BYTE_PTR w, CK_ULONG_PTR wl)
UNSUPPORTED(C_UnwrapKey, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE a, CK_BYTE_PTR w, CK_ULONG wl,
            CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k)
UNSUPPORTED(C_MessageEncryptInit, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
UNSUPPORTED(C_EncryptMessage, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR a, CK_ULONG al,
            CK_BYTE_PTR t, CK_ULONG tl, CK_BYTE_PTR c, CK_ULONG_PTR cl)
UNSUPPORTED(C_EncryptMessageBegin, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR a, CK_ULONG al)
UNSUPPORTED(C_EncryptMessageNext, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR a, CK_ULONG al,
            CK_BYTE_PTR c, CK_ULONG_PTR cl, CK_FLAGS f)
UNSUPPORTED(C_MessageEncryptFinal, CK_SESSION_HANDLE h)
UNSUPPORTED(C_MessageDecryptInit, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
UNSUPPORTED(C_DecryptMessage, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR a, CK_ULONG al,
            CK_BYTE_PTR c, CK_ULONG cl, CK_BYTE_PTR t, CK_ULONG_PTR tl)
UNSUPPORTED(C_DecryptMessageBegin, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR a, CK_ULONG al)
UNSUPPORTED(C_DecryptMessageNext, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR a, CK_ULONG al,
            CK_BYTE_PTR c, CK_ULONG_PTR cl, CK_FLAGS f)
UNSUPPORTED(C_MessageDecryptFinal, CK_SESSION_HANDLE h)
UNSUPPORTED(C_MessageSignInit, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
UNSUPPORTED(C_SignMessage, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR d, CK_ULONG dl,
            CK_BYTE_PTR s, CK_ULONG_PTR sl)
UNSUPPORTED(C_SignMessageBegin, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl)
UNSUPPORTED(C_SignMessageNext, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR d, CK_ULONG dl,
            CK_BYTE_PTR s, CK_ULONG_PTR sl)
UNSUPPORTED(C_MessageSignFinal, CK_SESSION_HANDLE h)
UNSUPPORTED(C_MessageVerifyInit, CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
UNSUPPORTED(C_VerifyMessage, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR d, CK_ULONG dl,
            CK_BYTE_PTR s, CK_ULONG sl)
UNSUPPORTED(C_VerifyMessageBegin, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl)
UNSUPPORTED(C_VerifyMessageNext, CK_SESSION_HANDLE h, CK_VOID_PTR p, CK_ULONG pl, CK_BYTE_PTR d, CK_ULONG dl,
            CK_BYTE_PTR s, CK_ULONG sl)
UNSUPPORTED(C_MessageVerifyFinal, CK_SESSION_HANDLE h)

static CK_RV tess_C_GetFunctionStatus(CK_SESSION_HANDLE h)
{
    return CKR_FUNCTION_NOT_PARALLEL;
}

static CK_RV tess_C_CancelFunction(CK_SESSION_HANDLE h)
{
    return CKR_FUNCTION_NOT_PARALLEL;
}

/* ---- function tables and interfaces ---- */

static CK_RV tess_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);
static CK_RV tess_C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count);
static CK_RV tess_C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR iface,
                                 CK_FLAGS flags);

#define COMMON_FUNCTIONS                                                                                       \
    tess_C_Initialize, tess_C_Finalize, tess_C_GetInfo, tess_C_GetFunctionList, tess_C_GetSlotList,            \
        tess_C_GetSlotInfo, tess_C_GetTokenInfo, tess_C_GetMechanismList, tess_C_GetMechanismInfo,             \
        tess_C_InitToken, tess_C_InitPIN, tess_C_SetPIN, tess_C_OpenSession, tess_C_CloseSession,              \
        tess_C_CloseAllSessions, tess_C_GetSessionInfo, tess_C_GetOperationState, tess_C_SetOperationState,    \
        tess_C_Login, tess_C_Logout, tess_C_CreateObject, tess_C_CopyObject, tess_C_DestroyObject,             \
        tess_C_GetObjectSize, tess_C_GetAttributeValue, tess_C_SetAttributeValue, tess_C_FindObjectsInit,      \
        tess_C_FindObjects, tess_C_FindObjectsFinal, tess_C_EncryptInit, tess_C_Encrypt, tess_C_EncryptUpdate, \
        tess_C_EncryptFinal, tess_C_DecryptInit, tess_C_Decrypt, tess_C_DecryptUpdate, tess_C_DecryptFinal,    \
        tess_C_DigestInit, tess_C_Digest, tess_C_DigestUpdate, tess_C_DigestKey, tess_C_DigestFinal,           \
        tess_C_SignInit, tess_C_Sign, tess_C_SignUpdate, tess_C_SignFinal, tess_C_SignRecoverInit,             \
        tess_C_SignRecover, tess_C_VerifyInit, tess_C_Verify, tess_C_VerifyUpdate, tess_C_VerifyFinal,         \
        tess_C_VerifyRecoverInit, tess_C_VerifyRecover, tess_C_DigestEncryptUpdate,                            \
        tess_C_DecryptDigestUpdate, tess_C_SignEncryptUpdate, tess_C_DecryptVerifyUpdate, tess_C_GenerateKey,  \
        tess_C_GenerateKeyPair, tess_C_WrapKey, tess_C_UnwrapKey, tess_C_DeriveKey, tess_C_SeedRandom,         \
        tess_C_GenerateRandom, tess_C_GetFunctionStatus, tess_C_CancelFunction, tess_C_WaitForSlotEvent

static CK_FUNCTION_LIST function_list_2_40 = { { 2, 40 }, COMMON_FUNCTIONS };

static CK_FUNCTION_LIST_3_0 function_list_3_0 = {
    { 3, 0 }, COMMON_FUNCTIONS,
    tess_C_GetInterfaceList, tess_C_GetInterface, tess_C_LoginUser, tess_C_SessionCancel,
    tess_C_MessageEncryptInit, tess_C_EncryptMessage, tess_C_EncryptMessageBegin, tess_C_EncryptMessageNext,
    tess_C_MessageEncryptFinal, tess_C_MessageDecryptInit, tess_C_DecryptMessage, tess_C_DecryptMessageBegin,
    tess_C_DecryptMessageNext, tess_C_MessageDecryptFinal, tess_C_MessageSignInit, tess_C_SignMessage,
    tess_C_SignMessageBegin, tess_C_SignMessageNext, tess_C_MessageSignFinal, tess_C_MessageVerifyInit,
    tess_C_VerifyMessage, tess_C_VerifyMessageBegin, tess_C_VerifyMessageNext, tess_C_MessageVerifyFinal,
};

/* Not CKF_INTERFACE_FORK_SAFE: that would promise a child its parent's
 * sessions and login. A child calls C_Initialize and starts afresh. */
static CK_INTERFACE interfaces[] = {
    { (CK_CHAR *)"PKCS 11", &function_list_3_0, 0 },
    { (CK_CHAR *)"PKCS 11", &function_list_2_40, 0 },
    { (CK_CHAR *)TESSERA_INTERFACE_NAME, &tess_mgmt_function_list, 0 },
};

static CK_RV tess_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (!list)
        return CKR_ARGUMENTS_BAD;
    *list = &function_list_2_40;
    return CKR_OK;
}

static CK_RV tess_C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count)
{
    CK_ULONG n = TESS_ARRAY_SIZE(interfaces);
    if (!count)
        return CKR_ARGUMENTS_BAD;
    if (!list) {
        *count = n;
        return CKR_OK;
    }
    if (*count < n) {
        *count = n;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(list, interfaces, sizeof(interfaces));
    *count = n;
    return CKR_OK;
}

static CK_RV tess_C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR iface,
                                 CK_FLAGS flags)
{
    if (!iface)
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < TESS_ARRAY_SIZE(interfaces); i++) {
        const CK_VERSION *v = interfaces[i].pFunctionList;
        if (name && strcmp((const char *)name, (const char *)interfaces[i].pInterfaceName))
            continue;
        /* A later minor version only appends functions: it serves a caller
         * asking for an earlier one. */
        if (version && (version->major != v->major || version->minor > v->minor))
            continue;
        if ((interfaces[i].flags & flags) != flags)
            continue;
        *iface = &interfaces[i];
        return CKR_OK;
    }
    return CKR_ARGUMENTS_BAD;
}

/* The exported symbols: everything else is hidden. */
TESS_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);
TESS_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count);
TESS_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR iface,
                                 CK_FLAGS flags);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    return tess_C_GetFunctionList(list);
}

CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count)
{
    return tess_C_GetInterfaceList(list, count);
}

CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR iface, CK_FLAGS flags)
{
    return tess_C_GetInterface(name, version, iface, flags);
}
