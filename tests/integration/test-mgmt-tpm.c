/* The Tessera Management interface on TPM virtual cards, through the module
 * loaded as any management tool would load it: admin keys, one-time
 * challenges, PIN unblock by challenge/response, retry limit, replay,
 * another card's response, rotation by response, re-initialisation.
 * Responses are computed here with OpenSSL directly, not with Tessera's code. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "p11util.h"

#define SO_PIN "87654321"
#define USER_PIN "123456"
#define NEW_PIN "246810"

static CK_TESSERA_FUNCTION_LIST *t;

static void load_mgmt(void)
{
    CK_RV (*get_interface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
    CK_INTERFACE list[8], *iface = NULL;
    CK_ULONG n = 8;
    bool listed = false;
    void *lib = dlopen(getenv("TESSERA_MODULE"), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);

    if (!lib)
        bail_out("module not loaded");
    *(void **)&get_interface = dlsym(lib, "C_GetInterface");
    is_rv(p11->C_GetInterfaceList(list, &n), CKR_OK, "C_GetInterfaceList");
    for (CK_ULONG i = 0; i < n; i++)
        listed |= !strcmp((char *)list[i].pInterfaceName, TESSERA_INTERFACE_NAME);
    ok(listed, "the interface list names \"%s\"", TESSERA_INTERFACE_NAME);
    ok(get_interface(NULL, NULL, &iface, 0) == CKR_OK && !strcmp((char *)iface->pInterfaceName, "PKCS 11"),
       "C_GetInterface without a name still gives standard PKCS 11");
    CK_VERSION v10 = { 1, 0 };
    is_rv(get_interface((CK_UTF8CHAR_PTR)TESSERA_INTERFACE_NAME, &v10, &iface, 0), CKR_OK,
          "C_GetInterface(\"Tessera Management\", 1.0)");
    t = iface->pFunctionList;
    ok(t->version.major == TESSERA_INTERFACE_VERSION_MAJOR && t->version.minor >= 1,
       "a tool asking for 1.0 gets the table of version %u.%u, which only appended to 1.0", t->version.major,
       t->version.minor);
    CK_VERSION v19 = { 1, 9 }, v20 = { 2, 0 };
    CK_INTERFACE_PTR later = NULL;
    is_rv(get_interface((CK_UTF8CHAR_PTR)TESSERA_INTERFACE_NAME, &v19, &later, 0), CKR_ARGUMENTS_BAD,
          "  a minor version it does not have yet is refused");
    is_rv(get_interface((CK_UTF8CHAR_PTR)TESSERA_INTERFACE_NAME, &v20, &later, 0), CKR_ARGUMENTS_BAD,
          "  and another major");
    dlclose(lib);
}

/* E(K, challenge), one block, as a helpdesk tool would compute it. */
static void respond(const uint8_t *key, size_t klen, const uint8_t *chal, size_t clen, uint8_t *out)
{
    const EVP_CIPHER *c = klen == 24 && clen == 8 ? EVP_des_ede3_ecb()
                          : klen == 16            ? EVP_aes_128_ecb()
                          : klen == 24            ? EVP_aes_192_ecb()
                                                  : EVP_aes_256_ecb();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    if (!ctx || !EVP_EncryptInit_ex(ctx, c, NULL, key, NULL) || !EVP_CIPHER_CTX_set_padding(ctx, 0) ||
        !EVP_EncryptUpdate(ctx, out, &n, chal, (int)clen))
        bail_out("openssl");
    EVP_CIPHER_CTX_free(ctx);
}

static CK_TESSERA_CARD_INFO info_of(CK_SLOT_ID slot)
{
    CK_TESSERA_CARD_INFO ci;
    memset(&ci, 0xee, sizeof(ci));
    if (t->T_GetCardInfo(slot, &ci) != CKR_OK)
        memset(&ci, 0, sizeof(ci));
    return ci;
}

static CK_RV challenge(CK_SESSION_HANDLE s, CK_FLAGS flags, uint8_t *out, CK_ULONG *len)
{
    *len = 16;
    return t->T_GetChallenge(s, flags, out, len);
}

static CK_RV unblock(CK_SESSION_HANDLE s, const uint8_t *resp, CK_ULONG len, const char *pin)
{
    return t->T_UnblockPIN(s, (CK_BYTE_PTR)resp, len, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_SLOT_ID new_card(const char *name)
{
    CK_SLOT_ID slot;
    CK_UTF8CHAR label[32];
    CK_SESSION_HANDLE s;
    if (p11_find_slot(false, &slot))
        bail_out("no spare slot");
    memset(label, ' ', 32);
    memcpy(label, name, strlen(name));
    ok(p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)SO_PIN, 8, label) == CKR_OK, "C_InitToken makes card %s", name);
    p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    p11_login(s, CKU_SO, SO_PIN);
    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, 6);
    p11->C_CloseSession(s);
    return slot;
}

static void lock_user_pin(CK_SESSION_HANDLE s)
{
    CK_RV rv = CKR_OK;
    for (int i = 0; i < 10 && rv != CKR_PIN_LOCKED; i++)
        rv = p11_login(s, CKU_USER, "000000");
    is_rv(rv, CKR_PIN_LOCKED, "the user PIN is locked after wrong PINs");
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED, "  even the right PIN is refused now");
}

int main(void)
{
    static const uint8_t k1[24] = { 0x10, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98,
                                    0x76, 0x54, 0x32, 0x10, 0x01, 0x13, 0x25, 0x37, 0x49, 0x5b, 0x6d, 0x7f };
    static const uint8_t k2[24] = { 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x2a, 0x4c, 0x4c, 0x4c, 0x4c,
                                    0x4c, 0x4c, 0x4c, 0x4c, 0x6e, 0x6e, 0x6e, 0x6e, 0x6e, 0x6e, 0x6e, 0x6e };
    static const uint8_t aes[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    uint8_t chal[16], chal2[16], resp[16], zero[16] = { 0 }, kcv[16];
    CK_ULONG clen, clen2;
    CK_SESSION_HANDLE s, s2, ro;
    CK_TESSERA_CARD_INFO ci;

    plan_lazy();
    p11_load();
    is_rv(p11_init(), CKR_OK, "C_Initialize");
    load_mgmt();

    CK_SLOT_ID a = new_card("Card A");
    ci = info_of(a);
    ok(ci.cardType == CKT_TESSERA_TPM_VSC, "card info: a TPM virtual card");
    ok(!(ci.flags & CKF_TESSERA_ADMIN_KEY_SET) && ci.adminKeyType == CK_UNAVAILABLE_INFORMATION,
       "a card made by C_InitToken has no admin key");
    is_rv(p11->C_OpenSession(a, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK, "R/W session");
    is_rv(challenge(s, 0, chal, &clen), CKR_TESSERA_NO_ADMIN_KEY, "no challenge without an admin key");
    is_rv(t->T_SetAdminKey(s, NULL, 0, CKK_DES3, (CK_BYTE_PTR)k1, 24), CKR_USER_NOT_LOGGED_IN,
          "setting an admin key without a response needs the SO");
    is_rv(p11_login(s, CKU_SO, SO_PIN), CKR_OK, "SO login");
    is_rv(t->T_SetAdminKey(s, NULL, 0, CKK_DES3, (CK_BYTE_PTR)k1, 16), CKR_KEY_SIZE_RANGE,
          "a 3DES admin key of 16 bytes is refused");
    is_rv(t->T_SetAdminKey(s, NULL, 0, CKK_RSA, (CK_BYTE_PTR)k1, 24), CKR_KEY_TYPE_INCONSISTENT,
          "an RSA admin key is refused");
    is_rv(t->T_SetAdminKey(s, NULL, 0, CKK_DES3, (CK_BYTE_PTR)k1, 24), CKR_OK, "the SO sets a 3DES admin key");
    p11->C_Logout(s);
    ci = info_of(a);
    respond(k1, 24, zero, 8, kcv);
    ok((ci.flags & CKF_TESSERA_ADMIN_KEY_SET) && !(ci.flags & CKF_TESSERA_ADMIN_KEY_DEFAULT) &&
           ci.adminKeyType == CKK_DES3 && ci.adminKeyLen == 24 && !memcmp(ci.adminKeyCheck, kcv, 3),
       "card info: a 3DES key whose check value is E(K, 0)'s first bytes");
    ok(ci.challengeLen == 8 && ci.challengesLeft == 5 && ci.unblockTriesLeft == 5 && ci.unblockTriesMax == 5,
       "8-byte challenges, 5 in stock, 5 wrong responses allowed");

    lock_user_pin(s);

    /* Challenges: a length query spends nothing; a pending one is given again. */
    clen = 0;
    is_rv(t->T_GetChallenge(s, 0, NULL, &clen), CKR_OK, "challenge length query");
    ok(clen == 8 && !(info_of(a).flags & CKF_TESSERA_CHALLENGE_PENDING), "  8 bytes, and nothing pending yet");
    clen = 4;
    is_rv(t->T_GetChallenge(s, 0, chal, &clen), CKR_BUFFER_TOO_SMALL, "a short buffer is refused");
    is_rv(challenge(s, 0, chal, &clen), CKR_OK, "a challenge");
    ok(info_of(a).flags & CKF_TESSERA_CHALLENGE_PENDING, "  now pending");
    is_rv(challenge(s, 0, chal2, &clen2), CKR_OK, "asked again");
    ok(clen2 == clen && !memcmp(chal, chal2, clen), "  the same pending challenge");
    is_rv(challenge(s, CKF_TESSERA_NEW_CHALLENGE, chal2, &clen2), CKR_OK, "a new one asked for");
    ok(memcmp(chal, chal2, clen) != 0 && info_of(a).challengesLeft == 4, "  differs; the old one is thrown away");
    respond(k1, 24, chal, 8, resp);
    is_rv(unblock(s, resp, 8, NEW_PIN), CKR_TESSERA_RESPONSE_INCORRECT,
          "the response to a discarded challenge is wrong for the pending one");
    ci = info_of(a);
    ok(ci.unblockTriesLeft == 4 && !(ci.flags & CKF_TESSERA_CHALLENGE_PENDING) && ci.challengesLeft == 3,
       "  it cost a try and spent the challenge");
    respond(k1, 24, chal2, 8, resp);
    is_rv(unblock(s, resp, 8, NEW_PIN), CKR_TESSERA_NO_CHALLENGE, "  its own response is now refused: spent");

    /* The good path. */
    is_rv(challenge(s, 0, chal, &clen), CKR_OK, "a fresh challenge");
    respond(k1, 24, chal, 8, resp);
    is_rv(unblock(s, resp, 8, "12"), CKR_PIN_LEN_RANGE, "a new PIN the policy refuses ...");
    ok(info_of(a).flags & CKF_TESSERA_CHALLENGE_PENDING, "  ... costs no challenge");
    is_rv(unblock(s, resp, 4, NEW_PIN), CKR_ARGUMENTS_BAD, "a response of the wrong length costs nothing");
    is_rv(p11->C_OpenSession(a, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK, "R/O session");
    is_rv(unblock(ro, resp, 8, NEW_PIN), CKR_SESSION_READ_ONLY, "unblock needs a R/W session");
    p11->C_CloseSession(ro);
    is_rv(unblock(s, resp, 8, NEW_PIN), CKR_OK, "the right response and a good PIN unblock the card");
    ok(!(p11_token_flags(a) & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_COUNT_LOW)), "  the PIN is no longer locked");
    ci = info_of(a);
    ok(ci.unblockTriesLeft == 5 && ci.challengesLeft == 5, "  tries and challenges restored (%lu, %lu)",
       (unsigned long)ci.unblockTriesLeft, (unsigned long)ci.challengesLeft);
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_PIN_INCORRECT, "the old PIN is gone");
    is_rv(p11_login(s, CKU_USER, NEW_PIN), CKR_OK, "the new PIN logs in");
    is_rv(unblock(s, resp, 8, NEW_PIN), CKR_USER_ALREADY_LOGGED_IN, "no unblock while the user is logged in");
    p11->C_Logout(s);
    is_rv(unblock(s, resp, 8, USER_PIN), CKR_TESSERA_NO_CHALLENGE, "the same response again: refused");

    /* Another card, another key: card A's key never answers card B. */
    CK_SLOT_ID b = new_card("Card B");
    is_rv(p11->C_OpenSession(b, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s2), CKR_OK, "session on card B");
    p11_login(s2, CKU_SO, SO_PIN);
    is_rv(t->T_SetAdminKey(s2, NULL, 0, CKK_DES3, (CK_BYTE_PTR)k2, 24), CKR_OK, "card B gets its own admin key");
    p11->C_Logout(s2);
    lock_user_pin(s2);
    is_rv(challenge(s2, 0, chal, &clen), CKR_OK, "card B's challenge");
    respond(k1, 24, chal, 8, resp);
    is_rv(unblock(s2, resp, 8, NEW_PIN), CKR_TESSERA_RESPONSE_INCORRECT, "card A's key gives a wrong response");
    CK_RV rv = CKR_OK;
    int wrong = 1;
    while (wrong < 10 && (rv = challenge(s2, 0, chal, &clen)) == CKR_OK) {
        respond(k1, 24, chal, 8, resp);
        unblock(s2, resp, 8, NEW_PIN);
        wrong++;
    }
    ok(rv == CKR_TESSERA_UNBLOCK_LOCKED, "after %d wrong responses unblock is locked (0x%lx)", wrong,
       (unsigned long)rv);
    ci = info_of(b);
    ok((ci.flags & CKF_TESSERA_UNBLOCK_LOCKED) && ci.unblockTriesLeft == 0, "  card info says so");
    p11_login(s2, CKU_SO, SO_PIN);
    is_rv(t->T_SetAdminKey(s2, NULL, 0, CKK_DES3, (CK_BYTE_PTR)k2, 24), CKR_OK, "the SO sets the key again");
    p11->C_Logout(s2);
    ok(!(info_of(b).flags & CKF_TESSERA_UNBLOCK_LOCKED), "  which ends the lock");
    is_rv(challenge(s2, 0, chal, &clen), CKR_OK, "card B's challenge");
    respond(k2, 24, chal, 8, resp);
    is_rv(unblock(s2, resp, 8, NEW_PIN), CKR_OK, "its own key's response unblocks it");

    /* Rotation by response: from k1 to an AES key, no SO PIN. */
    is_rv(challenge(s, CKF_TESSERA_NEW_CHALLENGE, chal, &clen), CKR_OK, "card A: a challenge for rotation");
    respond(k2, 24, chal, 8, resp);
    is_rv(t->T_SetAdminKey(s, resp, 8, CKK_AES, (CK_BYTE_PTR)aes, 16), CKR_TESSERA_RESPONSE_INCORRECT,
          "a wrong response does not change the key");
    is_rv(challenge(s, 0, chal, &clen), CKR_OK, "another challenge");
    respond(k1, 24, chal, 8, resp);
    is_rv(t->T_SetAdminKey(s, resp, 8, CKK_AES, (CK_BYTE_PTR)aes, 16), CKR_OK,
          "the current key's response changes it to AES-128");
    ci = info_of(a);
    respond(aes, 16, zero, 16, kcv);
    ok(ci.adminKeyType == CKK_AES && ci.adminKeyLen == 16 && ci.challengeLen == 16 &&
           !memcmp(ci.adminKeyCheck, kcv, 3), "card info: AES-128, 16-byte challenges, the new check value");
    lock_user_pin(s);
    is_rv(challenge(s, 0, chal, &clen), CKR_OK, "an AES challenge");
    ok(clen == 16, "  of 16 bytes");
    respond(aes, 16, chal, 16, resp);
    is_rv(unblock(s, resp, 16, USER_PIN), CKR_OK, "the AES response unblocks");
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_OK, "  and the PIN set with it logs in");
    p11->C_Logout(s);

    /* Challenges thrown away unanswered run the stock out; the SO refills it. */
    int given = 0;
    while (given < 10 && (rv = challenge(s, CKF_TESSERA_NEW_CHALLENGE, chal, &clen)) == CKR_OK)
        given++;
    ok(rv == CKR_TESSERA_NO_CHALLENGES_LEFT && given == 5, "5 challenges thrown away, then none left (0x%lx)",
       (unsigned long)rv);
    ok(info_of(a).challengesLeft == 0 && !(info_of(a).flags & CKF_TESSERA_CHALLENGE_PENDING),
       "  card info says so");
    p11_login(s, CKU_SO, SO_PIN);
    is_rv(t->T_SetAdminKey(s, NULL, 0, CKK_AES, (CK_BYTE_PTR)aes, 16), CKR_OK, "the SO sets the key again");
    p11->C_Logout(s);
    ok(info_of(a).challengesLeft == 5, "  and the card has 5 challenges again");

    /* Re-initialising the card forgets its admin key (its challenges hold
     * the old card secret). */
    p11->C_CloseSession(s);
    p11->C_CloseSession(s2);
    CK_UTF8CHAR label[32];
    memset(label, ' ', 32);
    is_rv(p11->C_InitToken(a, (CK_UTF8CHAR_PTR)SO_PIN, 8, label), CKR_OK, "C_InitToken re-initialises card A");
    ok(!(info_of(a).flags & CKF_TESSERA_ADMIN_KEY_SET), "  it has no admin key any more");

    /* T_InitCard (1.1): a card issued with everything in one call. */
    CK_TESSERA_PIN_POLICY pol = { 8, 16, CKV_TESSERA_PIN_CHARS_MANDATORY, CKV_TESSERA_PIN_CHARS_OPTIONAL,
                                  CKV_TESSERA_PIN_CHARS_OPTIONAL, CKV_TESSERA_PIN_CHARS_FORBIDDEN };
    CK_TESSERA_INIT in = {
        .pLabel = (CK_UTF8CHAR_PTR) "Issued", .ulLabelLen = 6, .pSoPin = (CK_UTF8CHAR_PTR)SO_PIN, .ulSoPinLen = 8,
        .pUserPin = (CK_UTF8CHAR_PTR) "abcd1234", .ulUserPinLen = 8, .pPinPolicy = &pol, .ulUserPinTries = 3,
        .adminKeyType = CKK_AES, .pAdminKey = (CK_BYTE_PTR)aes, .ulAdminKeyLen = 16,
    };
    is_rv(t->T_InitCard(a, NULL), CKR_ARGUMENTS_BAD, "T_InitCard without parameters");
    in.ulUserPinTries = 256;
    is_rv(t->T_InitCard(a, &in), CKR_ARGUMENTS_BAD, "  256 tries are refused");
    in.ulUserPinTries = 3;
    pol.ulMinLen = 20;
    is_rv(t->T_InitCard(a, &in), CKR_ARGUMENTS_BAD, "  a policy whose minimum is above its maximum");
    pol.ulMinLen = 8;
    pol.digits = 7;
    is_rv(t->T_InitCard(a, &in), CKR_ARGUMENTS_BAD, "  a character rule that is none of the three");
    pol.digits = CKV_TESSERA_PIN_CHARS_MANDATORY;
    in.ulAdminKeyLen = 15;
    is_rv(t->T_InitCard(a, &in), CKR_KEY_SIZE_RANGE, "  an AES key of 15 bytes");
    in.ulAdminKeyLen = 16;
    in.pUserPin = (CK_UTF8CHAR_PTR) "abcdefgh";
    is_rv(t->T_InitCard(a, &in), CKR_PIN_INVALID, "  a user PIN the policy refuses (no digit)");
    in.pUserPin = (CK_UTF8CHAR_PTR) "abcd1234";
    is_rv(p11->C_OpenSession(a, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK, "a session on the card");
    is_rv(t->T_InitCard(a, &in), CKR_SESSION_EXISTS, "  T_InitCard waits until it is closed");
    p11->C_CloseSession(ro);
    in.pSoPin = (CK_UTF8CHAR_PTR) "00000000";
    is_rv(t->T_InitCard(a, &in), CKR_PIN_INCORRECT, "  a wrong SO PIN initialises nothing");
    in.pSoPin = (CK_UTF8CHAR_PTR)SO_PIN;
    is_rv(t->T_InitCard(a, &in), CKR_OK, "T_InitCard with label, policy, PIN, tries and admin key");
    ci = info_of(a);
    respond(aes, 16, zero, 16, kcv);
    ok((ci.flags & CKF_TESSERA_ADMIN_KEY_SET) && ci.adminKeyType == CKK_AES && !memcmp(ci.adminKeyCheck, kcv, 3),
       "  the card has the AES admin key");
    CK_TOKEN_INFO ti;
    is_rv(p11->C_GetTokenInfo(a, &ti), CKR_OK, "  token info");
    ok(!memcmp(ti.label, "Issued ", 7) && (ti.flags & CKF_USER_PIN_INITIALIZED), "  its label and user PIN");
    is_rv(p11->C_OpenSession(a, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK, "a read-only session");
    is_rv(p11_login(ro, CKU_USER, "abcd1234"), CKR_OK, "  the user PIN logs in");
    p11->C_Logout(ro);

    /* T_EraseCard (1.1). */
    is_rv(t->T_EraseCard(ro, NULL, 0), CKR_SESSION_READ_ONLY, "T_EraseCard needs an R/W session");
    is_rv(p11->C_OpenSession(a, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK, "an R/W session");
    is_rv(t->T_EraseCard(s, NULL, 0), CKR_USER_NOT_LOGGED_IN, "  and an authority");
    is_rv(challenge(s, 0, chal, &clen), CKR_OK, "  a challenge");
    respond(k1, 24, chal, 16, resp);
    is_rv(t->T_EraseCard(s, resp, 16), CKR_TESSERA_RESPONSE_INCORRECT, "  a wrong response erases nothing");
    is_rv(challenge(s, 0, chal, &clen), CKR_OK, "  another challenge");
    respond(aes, 16, chal, 16, resp);
    is_rv(t->T_EraseCard(s, resp, 16), CKR_OK, "the right response erases the card");
    CK_SESSION_INFO si;
    is_rv(p11->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID, "  its session ended");
    is_rv(p11->C_GetSessionInfo(ro, &si), CKR_SESSION_HANDLE_INVALID, "  and the other one");
    ok(t->T_GetCardInfo(a, &ci) != CKR_OK, "  the slot holds no card");

    /* T_InitCardWithSerial (1.2): a new card with the serial the caller
     * recorded before making it. */
    ok(t->version.minor >= 2, "the table is of version 1.2 or later");
    CK_SLOT_ID spare;
    if (p11_find_slot(false, &spare))
        bail_out("no spare slot");
    in.pLabel = (CK_UTF8CHAR_PTR) "Chosen";
    in.ulLabelLen = 6;
    is_rv(t->T_InitCardWithSerial(spare, &in, (CK_UTF8CHAR_PTR) "0123456789abcdeg", 16), CKR_ARGUMENTS_BAD,
          "  a serial with a letter that is not hex is refused");
    is_rv(t->T_InitCardWithSerial(spare, &in, (CK_UTF8CHAR_PTR) "0123456789abcde", 15), CKR_ARGUMENTS_BAD,
          "  and one of 15 digits");
    is_rv(t->T_InitCardWithSerial(spare, &in, NULL, 0), CKR_ARGUMENTS_BAD, "  and none");
    is_rv(t->T_InitCardWithSerial(spare, &in, (CK_UTF8CHAR_PTR) "00C0FFEE00C0FFEE", 16), CKR_OK,
          "T_InitCardWithSerial makes a new card");
    is_rv(t->T_GetCardInfo(spare, &ci), CKR_OK, "  its card info");
    ok(!memcmp(ci.serialNumber, "00c0ffee00c0ffee", 16), "  with the serial asked for, in lower case");
    is_rv(t->T_InitCardWithSerial(spare, &in, (CK_UTF8CHAR_PTR) "00c0ffee00c0ffef", 16),
          CKR_FUNCTION_NOT_SUPPORTED, "  a card that exists keeps its serial");
    CK_SLOT_ID spare2;
    if (p11_find_slot(false, &spare2))
        bail_out("no spare slot");
    is_rv(t->T_InitCardWithSerial(spare2, &in, (CK_UTF8CHAR_PTR) "00c0ffee00c0ffee", 16), CKR_ARGUMENTS_BAD,
          "  a second card cannot take the same serial");
    ok(t->T_GetCardInfo(spare2, &ci) != CKR_OK, "  and was not made");

    /* T_LockPIN (1.3): what a scheduled lock does on the device. */
    ok(t->version.minor >= 3, "the table is of version 1.3 or later");
    CK_SESSION_HANDLE user, rw;
    is_rv(p11->C_OpenSession(spare, CKF_SERIAL_SESSION, NULL, NULL, &user), CKR_OK, "a session on the new card");
    is_rv(p11_login(user, CKU_USER, "abcd1234"), CKR_OK, "  its user logged in");
    is_rv(t->T_LockPIN(user, resp, 16), CKR_SESSION_READ_ONLY, "T_LockPIN needs an R/W session");
    is_rv(p11->C_OpenSession(spare, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK, "an R/W session");
    is_rv(t->T_LockPIN(rw, NULL, 0), CKR_ARGUMENTS_BAD, "  and a response");
    is_rv(challenge(rw, 0, chal, &clen), CKR_OK, "  a challenge");
    respond(k1, 24, chal, 16, resp);
    is_rv(t->T_LockPIN(rw, resp, 16), CKR_TESSERA_RESPONSE_INCORRECT, "  a wrong response locks nothing");
    is_rv(p11->C_GetSessionInfo(user, &si), CKR_OK, "  the user");
    ok(si.state == CKS_RO_USER_FUNCTIONS, "  is still logged in");
    is_rv(challenge(rw, 0, chal, &clen), CKR_OK, "  another challenge");
    respond(aes, 16, chal, 16, resp);
    is_rv(t->T_LockPIN(rw, resp, 16), CKR_OK, "the right response locks the user PIN");
    is_rv(p11->C_GetSessionInfo(user, &si), CKR_OK, "  the session is still open");
    ok(si.state == CKS_RO_PUBLIC_SESSION, "  but its user is logged out");
    is_rv(p11->C_GetTokenInfo(spare, &ti), CKR_OK, "  token info");
    ok(ti.flags & CKF_USER_PIN_LOCKED, "  says the user PIN is locked");
    is_rv(p11_login(rw, CKU_USER, "abcd1234"), CKR_PIN_LOCKED, "  the right PIN does not open it");
    is_rv(challenge(rw, 0, chal, &clen), CKR_OK, "a challenge (the lock's was replaced)");
    respond(aes, 16, chal, 16, resp);
    is_rv(unblock(rw, resp, 16, "efgh5678"), CKR_OK, "T_UnblockPIN opens it again, with a new PIN");
    is_rv(p11_login(rw, CKU_USER, "efgh5678"), CKR_OK, "  which logs in");
    p11->C_CloseSession(user);
    p11->C_CloseSession(rw);

    is_rv(p11->C_Finalize(NULL), CKR_OK, "C_Finalize");
    return done_testing();
}
