/* Helpers for tests that drive the module through its PKCS#11 interface,
 * loaded with dlopen exactly as an application would. */
#ifndef TESSERA_P11UTIL_H
#define TESSERA_P11UTIL_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../pkcs11/pk11.h"
#include "../tap.h"

#ifdef TAP_EXTERN
extern CK_FUNCTION_LIST_3_0 *p11;
#else
CK_FUNCTION_LIST_3_0 *p11;
#endif

static inline CK_FUNCTION_LIST_3_0 *p11_load(void)
{
    const char *path = getenv("TESSERA_MODULE");
    void *lib;
    CK_RV (*get_interface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
    CK_INTERFACE *iface = NULL;
    CK_VERSION v30 = { 3, 0 };

    if (!path)
        bail_out("TESSERA_MODULE is not set");
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        bail_out(dlerror());
    *(void **)&get_interface = dlsym(lib, "C_GetInterface");
    if (!get_interface)
        bail_out("no C_GetInterface");
    if (get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &iface, 0) != CKR_OK || !iface)
        bail_out("no PKCS 11 3.0 interface");
    p11 = iface->pFunctionList;
    return p11;
}

static inline CK_RV p11_init(void)
{
    CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
    return p11->C_Initialize(&args);
}

/* Slots in slot-list order; returns count. */
static inline CK_ULONG p11_slots(CK_SLOT_ID *out, CK_ULONG max)
{
    CK_ULONG n = 0;
    if (p11->C_GetSlotList(CK_FALSE, NULL, &n) != CKR_OK || n > max)
        return 0;
    if (p11->C_GetSlotList(CK_FALSE, out, &n) != CKR_OK)
        return 0;
    return n;
}

/* The first slot whose token is (or is not) initialised. */
static inline int p11_find_slot(bool initialized, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = p11_slots(slots, 64);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if (!!(ti.flags & CKF_TOKEN_INITIALIZED) == initialized) {
            *out = slots[i];
            return 0;
        }
    }
    return -1;
}

static inline CK_RV p11_login(CK_SESSION_HANDLE s, CK_USER_TYPE who, const char *pin)
{
    return p11->C_Login(s, who, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
}

static inline void pad32(CK_UTF8CHAR out[32], const char *s)
{
    memset(out, ' ', 32);
    memcpy(out, s, strlen(s) < 32 ? strlen(s) : 32);
}

static inline CK_FLAGS p11_token_flags(CK_SLOT_ID slot)
{
    CK_TOKEN_INFO ti;
    return p11->C_GetTokenInfo(slot, &ti) == CKR_OK ? ti.flags : 0;
}

/* Find objects of a class with an id; returns count found (<= max). */
static inline CK_ULONG p11_find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const void *id, CK_ULONG idlen,
                                CK_OBJECT_HANDLE *out, CK_ULONG max)
{
    CK_ATTRIBUTE t[2] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, (void *)id, idlen } };
    CK_ULONG n = 0;
    if (p11->C_FindObjectsInit(s, t, id ? 2 : 1) != CKR_OK)
        return 0;
    p11->C_FindObjects(s, out, max, &n);
    p11->C_FindObjectsFinal(s);
    return n;
}

#endif
