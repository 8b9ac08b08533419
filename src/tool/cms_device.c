/* What the card-management verbs do on this machine, shared by collect,
 * the changes that erase a card and the agent that locks one: the
 * machine's name as a device, a card erased or its PIN locked by its
 * diversified admin key, the key source a profile names, and the kill
 * points the tests use. */
#include "config.h"

#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cms/profile.h"
#include "../kdf.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

void cms_kill_point(const char *step)
{
    const char *at = getenv("TESSERA_TEST_KILL_AT");
    if (at && !strcmp(at, step)) {
        fflush(NULL);
        raise(SIGKILL);
    }
}

void cms_device_name(char *out, size_t outlen)
{
    struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname && strchr(ai->ai_canonname, '.'))
        snprintf(out, outlen, "%s", ai->ai_canonname);
    else
        snprintf(out, outlen, "%s", host);
    if (ai)
        freeaddrinfo(ai);
}

uint8_t cms_piv_key_id(uint8_t piv_slot)
{
    return piv_slot == 0x9a ? 1 : piv_slot == 0x9c ? 2 : piv_slot == 0x9d ? 3 : 4;
}

int cms_key_source(const struct cms_profile *prof, struct tool_key_source *ks)
{
    *ks = (struct tool_key_source)TOOL_KEY_SOURCE_INIT;
    ks->master_file = prof->master_file[0] ? prof->master_file : NULL;
    ks->master_uri = prof->master_uri[0] ? prof->master_uri : NULL;
    ks->prf = prof->prf;
    ks->alg = prof->alg;
    if (tool_key_source_given(ks))
        return EX_OK;
    fprintf(stderr, "tessera: profile %s names no admin-key master (master-file or master-uri)\n", prof->name);
    return EX_FAIL;
}

/* A PIV card whose init was cut short before its admin key was set has
 * the PUK it was initialised with (the one given, or still the factory
 * one, if the cut came before it was changed): erased by it as the SO.
 * One whose PUK is blocked has no authority left: erased with none. */
static CK_RV erase_by_puk(struct tool_p11 *p, CK_SESSION_HANDLE h, const char *puk)
{
    static const char factory[] = "12345678";
    CK_RV rv = p->f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)puk, (CK_ULONG)strlen(puk));
    if (rv == CKR_PIN_INCORRECT && strcmp(puk, factory))
        rv = p->f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)factory, (CK_ULONG)strlen(factory));
    if (rv == CKR_PIN_INCORRECT)
        fprintf(stderr, "tessera: the card's PUK is neither the one given nor the factory one: give it with "
                        "--puk-file\n");
    return rv == CKR_OK || rv == CKR_PIN_LOCKED ? p->t->T_EraseCard(h, NULL, 0) : rv;
}

int cms_card_admin(struct tool_p11 *p, const struct tool_key_source *ks, const char *serial, enum cms_admin_op op,
                   const char *puk, bool *done)
{
    CK_TESSERA_CARD_INFO info;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot;
    uint8_t key[32], chal[16], resp[16];
    size_t klen = sizeof(key), blk = tess_admin_block_len(ks->alg);
    CK_ULONG clen = sizeof(chal);
    CK_RV rv;
    int rc;

    *done = false;
    if (tool_p11_find(p, -1, serial, &slot, &info) != EX_OK)
        return EX_OK;   /* not here */
    rc = tool_key_source_key(ks, serial, key, &klen);
    if (rc != EX_OK)
        return rc;
    rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK)
        rv = p->t->T_GetChallenge(h, 0, chal, &clen);
    /* Only a card with no admin object at all falls back to its PUK; one
     * whose challenge is of another length has an admin key (not this
     * profile's), and its PUK is nobody's. */
    bool no_admin_object = rv == CKR_TESSERA_NO_ADMIN_KEY;
    if (rv == CKR_OK && clen != blk)
        rv = CKR_TESSERA_NO_ADMIN_KEY;
    if (rv == CKR_OK)
        rv = tess_admin_response(ks->alg, key, klen, chal, blk, resp);
    if (no_admin_object && op == CMS_ADMIN_ERASE && puk && info.cardType == CKT_TESSERA_PIV) {
        rv = erase_by_puk(p, h, puk);
        if (rv == CKR_OK)
            h = CK_INVALID_HANDLE;
    } else if (rv == CKR_OK && op == CMS_ADMIN_ERASE) {
        rv = p->t->T_EraseCard(h, resp, (CK_ULONG)blk);
        if (rv == CKR_OK)
            h = CK_INVALID_HANDLE;   /* erasing closed it */
    } else if (rv == CKR_OK) {
        rv = p->t->T_LockPIN(h, resp, (CK_ULONG)blk);
    }
    *done = rv == CKR_OK;
    if (h != CK_INVALID_HANDLE)
        p->f->C_CloseSession(h);
    tess_wipe(key, sizeof(key));
    tess_wipe(resp, sizeof(resp));
    return tool_report(rv, op == CMS_ADMIN_ERASE ? "the card could not be erased" : "the card's PIN could not be locked");
}
