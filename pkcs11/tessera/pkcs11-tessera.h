/* Tessera Management: the vendor interface of tessera-pkcs11.so.
 *
 * Standard PKCS#11 consumers never see it. A management tool asks for it by
 * name through PKCS#11 3.0:
 *
 *     CK_INTERFACE_PTR iface;
 *     C_GetInterface((CK_UTF8CHAR_PTR)TESSERA_INTERFACE_NAME, NULL, &iface, 0);
 *     CK_TESSERA_FUNCTION_LIST_PTR t = iface->pFunctionList;
 *
 * and uses it next to the standard function list, with the same slots and
 * sessions: C_Initialize first, C_OpenSession for a session handle. The
 * first member of the list is its version; a tool checks the major version
 * (a new major may change functions; a new minor only adds them at the end).
 * doc/tessera-management.md describes each function; doc/examples/ holds a
 * complete program.
 *
 * Include a PKCS#11 3.0 pkcs11.h (for CK_INTERFACE) before this header, or
 * let it include p11-kit's. */
#ifndef TESSERA_PKCS11_TESSERA_H
#define TESSERA_PKCS11_TESSERA_H

#ifndef CKR_OK
#include <p11-kit/pkcs11.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TESSERA_INTERFACE_NAME "Tessera Management"
#define TESSERA_INTERFACE_VERSION_MAJOR 1
#define TESSERA_INTERFACE_VERSION_MINOR 3   /* 1.1: T_InitCard, T_EraseCard; 1.2: T_InitCardWithSerial;
                                               1.3: T_LockPIN */

/* ---- return values beyond the standard's ---- */
#define CKR_TESSERA_BASE (CKR_VENDOR_DEFINED | 0x54450000UL)
/* The card has no admin key Tessera can check a response against (a TPM
 * card re-initialised with C_InitToken, before an SO sets one). */
#define CKR_TESSERA_NO_ADMIN_KEY (CKR_TESSERA_BASE + 1)
/* No challenge is waiting for this response: ask for a challenge first. A
 * challenge answers once; its response is refused afterwards. */
#define CKR_TESSERA_NO_CHALLENGE (CKR_TESSERA_BASE + 2)
/* The response is not the one the admin key gives for the challenge. The
 * challenge is spent; ask for a new one. */
#define CKR_TESSERA_RESPONSE_INCORRECT (CKR_TESSERA_BASE + 3)
/* Too many wrong responses: challenge/response is locked on this card until
 * its SO sets the admin key again (a TPM card), or for good (a PIV card,
 * whose PUK it has blocked: T_EraseCard resets it). */
#define CKR_TESSERA_UNBLOCK_LOCKED (CKR_TESSERA_BASE + 4)
/* The card has used up the challenges it was given when its admin key was
 * last set; the SO (or a response to a challenge) must set it again. */
#define CKR_TESSERA_NO_CHALLENGES_LEFT (CKR_TESSERA_BASE + 5)

/* ---- card types ---- */
#define CKT_TESSERA_TPM_VSC 1UL     /* a TPM 2.0 virtual smart card */
#define CKT_TESSERA_PIV 2UL         /* a PIV card in a PC/SC reader */

/* ---- CK_TESSERA_CARD_INFO.flags ---- */
#define CKF_TESSERA_ADMIN_KEY_SET 0x00000001UL     /* an admin key is set and known to the card */
#define CKF_TESSERA_ADMIN_KEY_DEFAULT 0x00000002UL /* ... and it is the well-known default key */
#define CKF_TESSERA_CHALLENGE_PENDING 0x00000004UL /* a challenge was given and not answered */
#define CKF_TESSERA_UNBLOCK_LOCKED 0x00000008UL    /* too many wrong responses */

/* ---- T_GetChallenge flags ---- */
#define CKF_TESSERA_NEW_CHALLENGE 0x00000001UL     /* discard a pending challenge, give the next */

typedef struct CK_TESSERA_CARD_INFO {
    CK_ULONG cardType;                 /* CKT_TESSERA_* */
    CK_UTF8CHAR serialNumber[32];      /* the card's serial, blank padded: the
                                          admin key is diversified from it */
    CK_KEY_TYPE adminKeyType;          /* CKK_DES3, CKK_AES; CK_UNAVAILABLE_INFORMATION if unknown */
    CK_ULONG adminKeyLen;              /* bytes: 24 for 3DES, 16/24/32 for AES */
    CK_BYTE adminKeyCheck[3];          /* KCV: first 3 bytes of a zero block
                                          encrypted under the key; 0 if unknown */
    CK_ULONG challengeLen;             /* bytes in a challenge and in its response */
    CK_ULONG challengesLeft;           /* CK_UNAVAILABLE_INFORMATION when the card has no limit */
    CK_ULONG unblockTriesLeft;         /* wrong responses still allowed */
    CK_ULONG unblockTriesMax;
    CK_FLAGS flags;                    /* CKF_TESSERA_* */
} CK_TESSERA_CARD_INFO;
typedef CK_TESSERA_CARD_INFO *CK_TESSERA_CARD_INFO_PTR;

/* ---- T_InitCard (1.1) ---- */
#define CKV_TESSERA_PIN_CHARS_OPTIONAL 0UL
#define CKV_TESSERA_PIN_CHARS_MANDATORY 1UL
#define CKV_TESSERA_PIN_CHARS_FORBIDDEN 2UL

typedef struct CK_TESSERA_PIN_POLICY {
    CK_ULONG ulMinLen;                 /* characters, 4 to 127 */
    CK_ULONG ulMaxLen;
    CK_ULONG digits;                   /* CKV_TESSERA_PIN_CHARS_* */
    CK_ULONG uppercase;
    CK_ULONG lowercase;
    CK_ULONG special;                  /* anything else */
} CK_TESSERA_PIN_POLICY;
typedef CK_TESSERA_PIN_POLICY *CK_TESSERA_PIN_POLICY_PTR;

/* What a card is initialised to. Pointers may be NULL where said. */
typedef struct CK_TESSERA_INIT {
    CK_UTF8CHAR_PTR pLabel;            /* NULL: the default label (PIV: must be NULL) */
    CK_ULONG ulLabelLen;               /* at most 32 */
    CK_UTF8CHAR_PTR pSoPin;            /* authority: the card's SO PIN (PIV: its PUK);
                                          on an empty TPM slot, the new card's SO PIN */
    CK_ULONG ulSoPinLen;
    CK_UTF8CHAR_PTR pNewSoPin;         /* NULL: the SO PIN stays pSoPin */
    CK_ULONG ulNewSoPinLen;
    CK_UTF8CHAR_PTR pUserPin;          /* NULL: none yet, C_InitPIN sets it (PIV: required) */
    CK_ULONG ulUserPinLen;
    CK_TESSERA_PIN_POLICY_PTR pPinPolicy; /* NULL: tessera.conf's (PIV: must be NULL,
                                          the card's own rule is 6 to 8 characters) */
    CK_ULONG ulUserPinTries;           /* wrong PINs before it locks; 0: tessera.conf's
                                          (PIV: the card's, 3 on a new one) */
    CK_ULONG ulSoPinTries;             /* the same for the SO PIN (PIV: the PUK) */
    CK_KEY_TYPE adminKeyType;          /* with pAdminKey: CKK_DES3 or CKK_AES */
    CK_BYTE_PTR pAdminKey;             /* NULL: none (TPM), the configured one (PIV) */
    CK_ULONG ulAdminKeyLen;
} CK_TESSERA_INIT;
typedef CK_TESSERA_INIT *CK_TESSERA_INIT_PTR;

typedef struct CK_TESSERA_FUNCTION_LIST CK_TESSERA_FUNCTION_LIST;
typedef CK_TESSERA_FUNCTION_LIST *CK_TESSERA_FUNCTION_LIST_PTR;

struct CK_TESSERA_FUNCTION_LIST {
    CK_VERSION version;

    /* What the card in slotID says about its administration. */
    CK_RV (*T_GetCardInfo)(CK_SLOT_ID slotID, CK_TESSERA_CARD_INFO_PTR pInfo);

    /* A one-time challenge from the card (challengeLen bytes). While one is
     * pending the same one is returned, unless flags has
     * CKF_TESSERA_NEW_CHALLENGE. Any session; nobody need be logged in.
     * pChallenge NULL: the length only (standard buffer rules). A PIV card
     * has one challenge at a time, replaced when answered rightly:
     * CKF_TESSERA_NEW_CHALLENGE is CKR_FUNCTION_NOT_SUPPORTED there. */
    CK_RV (*T_GetChallenge)(CK_SESSION_HANDLE hSession, CK_FLAGS flags, CK_BYTE_PTR pChallenge,
                            CK_ULONG_PTR pulChallengeLen);

    /* Unblock the user PIN: the response to the pending challenge, computed
     * from the card's admin key (E(K, challenge), one block, ECB), and the
     * new PIN, which must meet the card's PIN policy (checked before the
     * response is spent). R/W session, nobody logged in. The user PIN's
     * retry counter is reset. */
    CK_RV (*T_UnblockPIN)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pResponse, CK_ULONG ulResponseLen,
                          CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewPinLen);

    /* Set a new admin key (keyType CKK_DES3 with 24 bytes, or CKK_AES with 16,
     * 24 or 32). Authorised either by pResponse, the response to the pending
     * challenge under the current key (any R/W session), or,
     * with pResponse NULL, by the SO logged in on an R/W session (on a PIV
     * card: the PUK, replacing the 9B key tessera.conf names). The card
     * changes from the old key to the new one in one step: it never has a
     * key nobody knows. Resets the unblock retry counter. */
    CK_RV (*T_SetAdminKey)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pResponse, CK_ULONG ulResponseLen,
                           CK_KEY_TYPE keyType, CK_BYTE_PTR pKey, CK_ULONG ulKeyLen);

    /* ---- 1.1 ---- */

    /* Bring the card in slotID to a known state, as C_InitToken does but
     * with everything a card is issued with; no session may be open on it.
     * On a TPM slot without a card (the spare slot), a new virtual card; on
     * a TPM card, authorised by its SO PIN, its keys, objects and admin key
     * are erased (its serial stays); on a PIV card, authorised by its PUK,
     * the card is reset (as T_EraseCard) and given the PINs and tries asked
     * for. Without pAdminKey the card has no admin key (TPM) or the one
     * tessera.conf names (PIV) until T_SetAdminKey. A wrong SO PIN is
     * counted and changes nothing. */
    CK_RV (*T_InitCard)(CK_SLOT_ID slotID, CK_TESSERA_INIT_PTR pInit);

    /* Erase the card: a TPM card is destroyed (keys, certificates, PINs,
     * admin key; its slot empties); a PIV card is reset to its factory
     * state (keys and data objects gone, PIN 123456, PUK 12345678, the
     * factory 9B key), which needs the YubiKey commands. Authorised by
     * pResponse, the response to the pending challenge (a wrong one is
     * counted as for T_UnblockPIN), or, pResponse NULL, by the SO logged in
     * on this session; a card with no such authority left (its SO PIN and
     * unblock both locked) is erased with neither. R/W session. Every
     * session on the token ends: hSession is invalid afterwards. */
    CK_RV (*T_EraseCard)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pResponse, CK_ULONG ulResponseLen);

    /* ---- 1.2 ---- */

    /* T_InitCard with the serial the caller chose: 16 hexadecimal digits
     * (upper or lower case; stored lower case). On a TPM slot without a
     * card, the new virtual card has it; a PIV card, initialised as by
     * T_InitCard (authorised by its PUK), gets a new CHUID whose GUID
     * begins with those 8 bytes (its serial in Tessera). A card-management
     * system records the serial before the card is touched, so that a
     * process killed in between leaves a card it can find again, never one
     * it does not know. CKR_ARGUMENTS_BAD for a malformed serial or, on a
     * TPM, one another card has; CKR_FUNCTION_NOT_SUPPORTED on a TPM slot
     * that holds a card. */
    CK_RV (*T_InitCardWithSerial)(CK_SLOT_ID slotID, CK_TESSERA_INIT_PTR pInit, CK_UTF8CHAR_PTR pSerial,
                                  CK_ULONG ulSerialLen);

    /* ---- 1.3 ---- */

    /* Lock the user PIN: blocked as if every try were spent (the token
     * shows CKF_USER_PIN_LOCKED; C_Login as CKU_USER is CKR_PIN_LOCKED)
     * until T_UnblockPIN, which sets a new one. What a card-management
     * system's scheduled lock does on the device. Authorised by pResponse,
     * the response to the pending challenge (a wrong one is counted as for
     * T_UnblockPIN). R/W session; a user logged in is logged out (every
     * session of the token). A PIV card's PIN is blocked by tries spent
     * on values nobody chose, once the response is found right. */
    CK_RV (*T_LockPIN)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pResponse, CK_ULONG ulResponseLen);
};

#ifdef __cplusplus
}
#endif

#endif
