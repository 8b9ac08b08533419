/* The tool as a PKCS#11 client: it reaches cards through the module's own
 * interfaces (the standard function list and Tessera Management), linked in
 * rather than loaded, so it sees exactly what any other management client
 * would. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../drivers/tpm2/tpm2.h"
#include "../attrs.h"
#include "../util.h"
#include "tool.h"

/* The exported entry point of the module code linked into the tool. */
CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR iface, CK_FLAGS flags);

const char *tool_rv_text(CK_RV rv)
{
    switch (rv) {
    case CKR_OK: return "done";
    case CKR_PIN_INCORRECT: return "wrong PIN";
    case CKR_PIN_LOCKED: return "the PIN is locked";
    case CKR_PIN_INVALID: return "the new PIN does not meet the card's PIN policy";
    case CKR_PIN_LEN_RANGE: return "the new PIN has the wrong length for the card's PIN policy";
    case CKR_TOKEN_NOT_PRESENT: return "no card in that slot";
    case CKR_SLOT_ID_INVALID: return "no such slot";
    case CKR_DEVICE_REMOVED: return "the card was removed";
    case CKR_DEVICE_ERROR: return "the TPM or card failed (see the log: TESSERA_LOG=debug)";
    case CKR_FUNCTION_NOT_SUPPORTED: return "this card does not support that";
    case CKR_USER_ALREADY_LOGGED_IN: return "a user is logged in";
    case CKR_KEY_SIZE_RANGE: return "the key has the wrong length";
    case CKR_ARGUMENTS_BAD: return "the module refused what was asked (see the message above)";
    case CKR_USER_NOT_LOGGED_IN: return "not authorised: give the SO PIN or a response";
    case CKR_TESSERA_NO_ADMIN_KEY: return "the card has no admin key (its SO must set one: tessera admin-key set)";
    case CKR_TESSERA_NO_CHALLENGE:
        return "no challenge is waiting for a response (a challenge answers once): ask for a new challenge";
    case CKR_TESSERA_RESPONSE_INCORRECT:
        return "the response is wrong for this challenge and card; the challenge is spent, ask for a new one";
    case CKR_TESSERA_UNBLOCK_LOCKED:
        return "too many wrong responses: unblock is locked (a TPM card: until its SO sets the admin key again; "
               "a PIV card, whose PUK is blocked: for good, 'tessera card erase' resets it)";
    case CKR_TESSERA_NO_CHALLENGES_LEFT:
        return "the card has no challenges left: its SO must set the admin key again";
    default: return NULL;
    }
}

int tool_report(CK_RV rv, const char *what)
{
    const char *why = tool_rv_text(rv);
    if (rv == CKR_OK)
        return EX_OK;
    if (why)
        fprintf(stderr, "tessera: %s: %s\n", what, why);
    else
        fprintf(stderr, "tessera: %s: error 0x%lx (see TESSERA_LOG=debug)\n", what, (unsigned long)rv);
    return tool_exit_for(rv);
}

int tool_p11_open(struct tool_p11 *p)
{
    CK_INTERFACE_PTR std = NULL, mgmt = NULL;
    CK_RV rv;

    memset(p, 0, sizeof(*p));
    if (C_GetInterface((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &std, 0) != CKR_OK ||
        C_GetInterface((CK_UTF8CHAR_PTR)TESSERA_INTERFACE_NAME, NULL, &mgmt, 0) != CKR_OK) {
        fprintf(stderr, "tessera: the module offers no management interface\n");
        return EX_FAIL;
    }
    p->f = std->pFunctionList;
    p->t = mgmt->pFunctionList;
    if (p->t->version.major != TESSERA_INTERFACE_VERSION_MAJOR) {
        fprintf(stderr, "tessera: management interface %u.%u, this tool needs %u.x\n", p->t->version.major,
                p->t->version.minor, TESSERA_INTERFACE_VERSION_MAJOR);
        return EX_FAIL;
    }
    rv = p->f->C_Initialize(NULL);
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: C_Initialize failed (0x%lx); see TESSERA_LOG=debug\n", (unsigned long)rv);
        return tool_exit_for(rv);
    }
    p->initialized = true;
    return EX_OK;
}

void tool_p11_close(struct tool_p11 *p)
{
    if (p->initialized)
        p->f->C_Finalize(NULL);
    p->initialized = false;
    /* The verbs that still reach the TPM driver directly (vsc, tpm) go on
     * with the tool's own settings, not the finalized module's. */
    tpm2_set_settings(&tool_settings);
}

void tool_card_serial(const CK_TESSERA_CARD_INFO *info, char *out, size_t outlen)
{
    size_t n = sizeof(info->serialNumber);
    while (n && info->serialNumber[n - 1] == ' ')
        n--;
    snprintf(out, outlen, "%.*s", (int)n, (const char *)info->serialNumber);
}

int tool_p11_find(struct tool_p11 *p, long slot, const char *serial, CK_SLOT_ID *out, CK_TESSERA_CARD_INFO *info)
{
    CK_SLOT_ID slots[128];
    CK_ULONG n = TESS_ARRAY_SIZE(slots);
    char sn[40];

    if (slot < 0 && !serial) {
        fprintf(stderr, "tessera: name the card: --slot N or --serial S\n");
        return EX_USAGE;
    }
    if (p->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        n = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        if (slot >= 0 && slots[i] != (CK_SLOT_ID)slot)
            continue;
        if (p->t->T_GetCardInfo(slots[i], info) != CKR_OK)
            continue;
        tool_card_serial(info, sn, sizeof(sn));
        if (serial && strcasecmp(serial, sn))
            continue;
        *out = slots[i];
        return EX_OK;
    }
    if (serial)
        fprintf(stderr, "tessera: no card with serial %s\n", serial);
    else
        fprintf(stderr, "tessera: no manageable card in slot %ld\n", slot);
    return EX_NOTFOUND;
}

int tool_card_opt(struct tool_card_args *ca, int c, const char *arg)
{
    if (c == 'n') {
        char *end;
        ca->slot = strtol(arg, &end, 10);
        return *end || ca->slot < 0 ? 1 : 0;
    }
    if (c == 's') {
        ca->serial = arg;
        return 0;
    }
    return -1;
}

int tool_open_card(struct tool_p11 *p, const struct tool_card_args *ca, CK_SLOT_ID *slot, CK_TESSERA_CARD_INFO *info)
{
    int rc = tool_p11_open(p);
    return rc == EX_OK ? tool_p11_find(p, ca->slot, ca->serial, slot, info) : rc;
}

int tool_usage_error(const char *msg)
{
    fprintf(stderr, "tessera: %s\n", msg);
    return EX_USAGE;
}

int tool_card_login(struct tool_card_session *cs, const struct tool_card_args *ca, const char *pin_file)
{
    CK_RV rv;
    int rc = tool_open_card(&cs->p, ca, &cs->slot, &cs->info);
    if (rc != EX_OK)
        return rc;
    rv = cs->p.f->C_OpenSession(cs->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &cs->h);
    if (rv != CKR_OK)
        return tool_report(rv, "no session with the card");
    if (tool_read_secret(pin_file, "User PIN", cs->pin, sizeof(cs->pin)))
        return EX_USAGE;
    rv = cs->p.f->C_Login(cs->h, CKU_USER, (CK_UTF8CHAR_PTR)cs->pin, (CK_ULONG)strlen(cs->pin));
    return rv == CKR_OK ? EX_OK : tool_report(rv, "login refused");
}

void tool_card_logout(struct tool_card_session *cs)
{
    tess_wipe(cs->pin, sizeof(cs->pin));
    tool_p11_close(&cs->p);
}

/* One attribute of an object, appended to a (absent ones are skipped). */
void tool_fetch_attr(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                       struct tess_attrs *a)
{
    CK_ATTRIBUTE q = { type, NULL, 0 };
    if (p->f->C_GetAttributeValue(h, o, &q, 1) != CKR_OK || q.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return;
    q.pValue = malloc(q.ulValueLen ? q.ulValueLen : 1);
    if (q.pValue && p->f->C_GetAttributeValue(h, o, &q, 1) == CKR_OK)
        tess_attrs_set(a, type, q.pValue, q.ulValueLen);
    free(q.pValue);
}

CK_ULONG tool_find_objects(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const uint8_t *id,
                             CK_ULONG idlen, CK_OBJECT_HANDLE *out, CK_ULONG max)
{
    CK_ATTRIBUTE t[2] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, (void *)id, idlen } };
    CK_ULONG n = 0;
    if (p->f->C_FindObjectsInit(h, t, id ? 2 : 1) != CKR_OK)
        return 0;
    p->f->C_FindObjects(h, out, max, &n);
    p->f->C_FindObjectsFinal(h);
    return n;
}

void tool_print_id(const char *what, const uint8_t *id, CK_ULONG idlen)
{
    char hex[2 * TOOL_MAX_ID + 1];
    tess_hex(hex, id, idlen);
    if (tool_json)
        printf("{\"%s\":\"%s\"}\n", what, hex);
    else
        printf("%s: id %s\n", what, hex);
}

int tool_set_admin_key_as_so(struct tool_p11 *p, CK_SLOT_ID slot, const char *so_pin, const struct tool_key_source *ks,
                             const char *serial)
{
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    uint8_t key[32];
    size_t len = sizeof(key);
    CK_RV rv;
    int rc = tool_key_source_key(ks, serial, key, &len);

    if (rc != EX_OK)
        return rc;
    rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK)
        rv = p->f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, strlen(so_pin));
    if (rv == CKR_OK)
        rv = p->t->T_SetAdminKey(h, NULL, 0, ks->alg == TESS_KEY_3DES ? CKK_DES3 : CKK_AES, key, len);
    if (rv != CKR_OK) {
        const char *why = tool_rv_text(rv);
        fprintf(stderr, "tessera: could not set the admin key: %s\n", why ? why : "error");
        rc = tool_exit_for(rv);
    }
    if (h != CK_INVALID_HANDLE)
        p->f->C_CloseSession(h);
    tess_wipe(key, sizeof(key));
    return rc;
}
