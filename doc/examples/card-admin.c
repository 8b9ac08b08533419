/* card-admin: a small management tool built on Tessera's vendor interface.
 *
 *   card-admin MODULE                          list cards and their admin state
 *   card-admin MODULE challenge SLOT           print a one-time unblock challenge
 *   card-admin MODULE unblock SLOT RESPONSE NEWPIN
 *                                              RESPONSE in hex, as the helpdesk gave it
 *
 * Build: cc -o card-admin card-admin.c -ldl   (with <tessera/pkcs11-tessera.h>
 * and p11-kit's <p11-kit/pkcs11.h> installed). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#ifndef CKF_INTERFACE_FORK_SAFE   /* a pkcs11.h older than PKCS#11 3.0 */
typedef struct CK_INTERFACE {
    CK_CHAR *pInterfaceName;
    CK_VOID_PTR pFunctionList;
    CK_FLAGS flags;
} CK_INTERFACE;
#endif

#include <tessera/pkcs11-tessera.h>

typedef CK_RV (*get_interface_fn)(CK_UTF8CHAR *, CK_VERSION *, CK_INTERFACE **, CK_FLAGS);

static int list(CK_FUNCTION_LIST *f, CK_TESSERA_FUNCTION_LIST *t)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return 1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TESSERA_CARD_INFO ci;
        if (t->T_GetCardInfo(slots[i], &ci) != CKR_OK)
            continue;   /* not a card Tessera manages */
        printf("slot %lu: serial %.32s\n", (unsigned long)slots[i], (const char *)ci.serialNumber);
        if (!(ci.flags & CKF_TESSERA_ADMIN_KEY_SET)) {
            printf("  no admin key\n");
            continue;
        }
        printf("  admin key %s-%lu, KCV %02X%02X%02X%s\n", ci.adminKeyType == CKK_DES3 ? "3DES" : "AES",
               (unsigned long)ci.adminKeyLen * 8, ci.adminKeyCheck[0], ci.adminKeyCheck[1], ci.adminKeyCheck[2],
               ci.flags & CKF_TESSERA_ADMIN_KEY_DEFAULT ? " (default key!)" : "");
        printf("  unblock: %lu of %lu tries left%s\n", (unsigned long)ci.unblockTriesLeft,
               (unsigned long)ci.unblockTriesMax, ci.flags & CKF_TESSERA_UNBLOCK_LOCKED ? ", LOCKED" : "");
    }
    return 0;
}

static int challenge(CK_FUNCTION_LIST *f, CK_TESSERA_FUNCTION_LIST *t, CK_SLOT_ID slot)
{
    CK_SESSION_HANDLE s;
    CK_BYTE chal[32];
    CK_ULONG len = sizeof(chal);
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    if (rv == CKR_OK)
        rv = t->T_GetChallenge(s, 0, chal, &len);
    if (rv != CKR_OK) {
        fprintf(stderr, "no challenge: 0x%lx\n", (unsigned long)rv);
        return 1;
    }
    for (CK_ULONG i = 0; i < len; i++)
        printf("%02X", chal[i]);
    printf("\n");
    f->C_CloseSession(s);
    return 0;
}

static int unblock(CK_FUNCTION_LIST *f, CK_TESSERA_FUNCTION_LIST *t, CK_SLOT_ID slot, const char *hex,
                   const char *pin)
{
    CK_SESSION_HANDLE s;
    CK_BYTE resp[32];
    CK_ULONG len = 0;
    unsigned v;
    for (; hex[0] && hex[1] && len < sizeof(resp) && sscanf(hex, "%2x", &v) == 1; hex += 2)
        resp[len++] = (CK_BYTE)v;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv == CKR_OK)
        rv = t->T_UnblockPIN(s, resp, len, (CK_UTF8CHAR *)pin, strlen(pin));
    switch (rv) {
    case CKR_OK: printf("unblocked\n"); break;
    case CKR_TESSERA_RESPONSE_INCORRECT: fprintf(stderr, "wrong response; ask for a new challenge\n"); break;
    case CKR_TESSERA_NO_CHALLENGE: fprintf(stderr, "no challenge pending (already answered?)\n"); break;
    case CKR_TESSERA_UNBLOCK_LOCKED: fprintf(stderr, "unblock is locked on this card\n"); break;
    case CKR_PIN_LEN_RANGE: case CKR_PIN_INVALID: fprintf(stderr, "the PIN breaks the card's policy\n"); break;
    default: fprintf(stderr, "failed: 0x%lx\n", (unsigned long)rv);
    }
    f->C_CloseSession(s);
    return rv == CKR_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
    CK_INTERFACE *std_if, *mgmt_if;
    void *lib;
    get_interface_fn get_interface;
    int rc = 2;

    if (argc < 2 || !(lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL))) {
        fprintf(stderr, "usage: card-admin MODULE [challenge SLOT | unblock SLOT RESPONSE NEWPIN]\n");
        return 2;
    }
    *(void **)&get_interface = dlsym(lib, "C_GetInterface");
    if (!get_interface || get_interface((CK_UTF8CHAR *)"PKCS 11", NULL, &std_if, 0) != CKR_OK ||
        get_interface((CK_UTF8CHAR *)TESSERA_INTERFACE_NAME, NULL, &mgmt_if, 0) != CKR_OK) {
        fprintf(stderr, "%s is not a Tessera module\n", argv[1]);
        return 2;
    }
    CK_FUNCTION_LIST *f = std_if->pFunctionList;
    CK_TESSERA_FUNCTION_LIST *t = mgmt_if->pFunctionList;
    if (t->version.major != TESSERA_INTERFACE_VERSION_MAJOR || f->C_Initialize(NULL) != CKR_OK)
        return 2;
    if (argc == 2)
        rc = list(f, t);
    else if (argc == 4 && !strcmp(argv[2], "challenge"))
        rc = challenge(f, t, strtoul(argv[3], NULL, 10));
    else if (argc == 6 && !strcmp(argv[2], "unblock"))
        rc = unblock(f, t, strtoul(argv[3], NULL, 10), argv[4], argv[5]);
    f->C_Finalize(NULL);
    dlclose(lib);
    return rc;
}
