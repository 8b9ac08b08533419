/* The PKCS#11 module on a PIV card (the virtual card tests/cards/vpiv in a
 * vpcd reader of a private pcscd, started by test-pkcs11-piv.sh): the shared
 * suite of p11suite.c, as on a TPM card, plus what is PIV's own — PIN and
 * PUK, the key slots, the PIN-always signature key, a pulled card. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "p11suite.h"

#define PIN "123456"
#define PUK "12345678"

static int find_piv_slot(CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = p11_slots(slots, 64);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (p11->C_GetTokenInfo(slots[i], &ti) == CKR_OK && !memcmp(ti.model, "PIV II          ", 16)) {
            *out = slots[i];
            return 0;
        }
    }
    return -1;
}

static void test_pins(CK_SLOT_ID slot, CK_SESSION_HANDLE s)
{
    CK_TOKEN_INFO ti;
    is_rv(p11_login(s, CKU_USER, "000000"), CKR_PIN_INCORRECT, "wrong PIN");
    p11->C_GetTokenInfo(slot, &ti);
    ok(ti.flags & CKF_USER_PIN_COUNT_LOW, "count-low flag after a wrong PIN");
    is_rv(p11_login(s, CKU_USER, "000000"), CKR_PIN_INCORRECT, "wrong PIN again");
    p11->C_GetTokenInfo(slot, &ti);
    ok(ti.flags & CKF_USER_PIN_FINAL_TRY, "final-try flag with one try left");
    is_rv(p11_login(s, CKU_USER, "000000"), CKR_PIN_INCORRECT, "third wrong PIN");
    p11->C_GetTokenInfo(slot, &ti);
    ok(ti.flags & CKF_USER_PIN_LOCKED, "the PIN is blocked after three");
    is_rv(p11_login(s, CKU_USER, PIN), CKR_PIN_LOCKED, "the right PIN no longer opens it");
    /* The SO is the PUK holder: C_InitPIN resets the counter with a new PIN. */
    is_rv(p11_login(s, CKU_SO, "87654321"), CKR_PIN_INCORRECT, "a wrong PUK");
    is_rv(p11_login(s, CKU_SO, PUK), CKR_OK, "SO login with the PUK");
    is_rv(p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "654321", 6), CKR_OK, "C_InitPIN unblocks (RESET RETRY COUNTER)");
    p11->C_Logout(s);
    is_rv(p11_login(s, CKU_USER, "654321"), CKR_OK, "the new PIN works");
    is_rv(p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "654321", 6, (CK_UTF8CHAR_PTR) "123", 3), CKR_PIN_LEN_RANGE,
          "a 3-digit PIN is refused");
    is_rv(p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "654321", 6, (CK_UTF8CHAR_PTR)PIN, 6), CKR_OK, "C_SetPIN back");
    p11->C_Logout(s);
}

int main(void)
{
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE s;
    CK_SLOT_INFO si;
    struct keypair rsa = { 0 }, ec = { 0 }, ec384 = { 0 }, sig = { 0 };
    CK_OBJECT_HANDLE found[16];

    plan_lazy();
    p11_load();
    is_rv(p11_init(), CKR_OK, "C_Initialize");
    if (find_piv_slot(&slot))
        bail_out("no PIV card in any slot");
    ok(1, "the PIV card shows as a token (slot %lu)", slot);
    is_rv(p11->C_GetSlotInfo(slot, &si), CKR_OK, "C_GetSlotInfo");
    ok((si.flags & (CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT)) ==
           (CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT), "reader slot: present, removable, hardware");
    is_rv(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK, "session");

    test_pins(slot, s);

    is_rv(p11_login(s, CKU_USER, PIN), CKR_OK, "user login");
    is_rv(gen_rsa(s, 2048, "\x01", &rsa), CKR_OK, "RSA-2048 key generated in slot 9A");
    is_rv(gen_ec(s, P256, sizeof(P256), "\x03", &ec), CKR_OK, "P-256 key generated in slot 9D");
    is_rv(gen_ec(s, P384, sizeof(P384), "\x04", &ec384), CKR_OK, "P-384 key generated in slot 9E");
    ok(rsa.ossl && ec.ossl && ec384.ossl, "public keys readable and valid for OpenSSL");
    {
        CK_OBJECT_HANDLE a, b;
        CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
        CK_ATTRIBUTE pub[] = { { CKA_TOKEN, &yes, 1 }, { CKA_EC_PARAMS, (void *)P256, sizeof(P256) } };
        is_rv(p11->C_GenerateKeyPair(s, &m, pub, 2, NULL, 0, &a, &b), CKR_TEMPLATE_INCOMPLETE,
              "a key without CKA_ID naming a PIV slot is refused");
    }

    test_rsa_signatures(s, &rsa);
    test_rsa_decrypt(s, &rsa);
    test_ec(s, &ec, "SHA256", 32);
    test_ec(s, &ec384, "SHA384", 48);
    test_ecdh(s, &ec);
    test_attributes(s, &rsa);
    test_objects(s, &rsa, "\x01");
    test_threads(slot, &rsa, &ec);

    /* 9C, the digital signature key, wants the PIN before every use. */
    is_rv(gen_ec(s, P256, sizeof(P256), "\x02", &sig), CKR_OK, "P-256 key generated in slot 9C");
    {
        CK_BBOOL always = CK_FALSE;
        CK_ATTRIBUTE a = { CKA_ALWAYS_AUTHENTICATE, &always, 1 };
        p11->C_GetAttributeValue(s, sig.priv, &a, 1);
        ok(always == CK_TRUE, "9C is CKA_ALWAYS_AUTHENTICATE");
        uint8_t out[128];
        CK_ULONG ol = sizeof(out);
        CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
        is_rv(p11->C_SignInit(s, &m, sig.priv), CKR_OK, "C_SignInit on 9C");
        is_rv(p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), out, &ol), CKR_USER_NOT_LOGGED_IN,
              "no signature without the PIN for this operation");
        is_rv(p11->C_SignInit(s, &m, sig.priv), CKR_OK, "C_SignInit on 9C again");
        is_rv(p11_login(s, CKU_CONTEXT_SPECIFIC, PIN), CKR_OK, "context-specific login");
        is_rv(p11->C_Sign(s, (CK_BYTE_PTR)msg, sizeof(msg), out, &ol), CKR_OK, "sign with 9C");
        p11->C_VerifyInit(s, &m, sig.pub);
        is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), out, ol), CKR_OK, "the 9C signature verifies");
    }

    /* What the card holds survives a restart of the module (certificates
     * give public keys back; keys without one show only where made). */
    p11->C_CloseSession(s);
    is_rv(p11->C_Finalize(NULL), CKR_OK, "C_Finalize");
    is_rv(p11_init(), CKR_OK, "C_Initialize again");
    ok(find_piv_slot(&slot) == 0, "the card is still there");
    p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    ok(p11_find(s, CKO_PUBLIC_KEY, NULL, 0, found, 16) == 4,
       "the four keys Tessera generated are there after a restart (their public keys are cached)");
    p11_login(s, CKU_USER, PIN);
    ok(p11_find(s, CKO_PRIVATE_KEY, "\x03", 1, found, 16) == 1, "the 9D key after the restart");
    {
        uint8_t out[128];
        CK_ULONG ol = sizeof(out);
        CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
        is_rv(sign(s, &m, found[0], msg, sizeof(msg), out, &ol), CKR_OK, "signs");
        CK_OBJECT_HANDLE pubs[2];
        p11_find(s, CKO_PUBLIC_KEY, "\x03", 1, pubs, 2);
        p11->C_VerifyInit(s, &m, pubs[0]);
        is_rv(p11->C_Verify(s, (CK_BYTE_PTR)msg, sizeof(msg), out, ol), CKR_OK, "and verifies with the cached key");
    }
    p11->C_CloseSession(s);

    /* The card pulled out of the reader under an open, logged-in session. */
    const char *pull = getenv("TESSERA_CARD_PULL"), *push = getenv("TESSERA_CARD_PUSH");
    if (pull && push) {
        CK_SLOT_INFO info;
        CK_ULONG n = 0;
        uint8_t out[128];
        CK_ULONG ol = sizeof(out);
        CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
        p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
        p11_login(s, CKU_USER, PIN);
        p11_find(s, CKO_PRIVATE_KEY, "\x03", 1, found, 16);
        ok(system(pull) == 0, "the card is pulled out");
        CK_RV rv = sign(s, &m, found[0], msg, sizeof(msg), out, &ol);
        ok(rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT, "signing says the card is gone (0x%lx)", rv);
        is_rv(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK, "the slot list is read again");
        is_rv(p11->C_GetSlotInfo(slot, &info), CKR_OK, "the reader's slot is still there");
        ok(!(info.flags & CKF_TOKEN_PRESENT), "without a token");
        CK_SESSION_HANDLE s2;
        is_rv(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2), CKR_TOKEN_NOT_PRESENT, "no new session");
        is_rv(p11->C_CloseSession(s), CKR_OK, "the old session can be closed");
        ok(system(push) == 0, "the card goes back in");
        p11->C_GetSlotList(CK_FALSE, NULL, &n);
        p11->C_GetSlotInfo(slot, &info);
        ok(info.flags & CKF_TOKEN_PRESENT, "the token is back");
        is_rv(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK, "a new session");
        is_rv(p11_login(s, CKU_USER, PIN), CKR_OK, "login");
        ok(p11_find(s, CKO_PRIVATE_KEY, "\x03", 1, found, 16) == 1, "the key is found again");
        ol = sizeof(out);
        is_rv(sign(s, &m, found[0], msg, sizeof(msg), out, &ol), CKR_OK, "and signs");
        p11->C_CloseSession(s);
    }

    EVP_PKEY_free(rsa.ossl);
    EVP_PKEY_free(ec.ossl);
    EVP_PKEY_free(ec384.ossl);
    EVP_PKEY_free(sig.ossl);
    is_rv(p11->C_Finalize(NULL), CKR_OK, "C_Finalize");
    return done_testing();
}
