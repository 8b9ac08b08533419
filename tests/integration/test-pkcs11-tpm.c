/* The PKCS#11 module end to end on a TPM virtual card (a real swtpm started
 * by tests/integration/with-swtpm.sh): card creation through C_InitToken,
 * PINs and their counters, keys generated in the TPM, every mechanism
 * checked against OpenSSL, objects, threads, and persistence. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "p11suite.h"

#define SO_PIN "87654321"
#define USER_PIN "123456"

static void test_pins(CK_SLOT_ID slot)
{
    CK_SESSION_HANDLE s;
    p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    is_rv(p11_login(s, CKU_USER, "000000"), CKR_PIN_INCORRECT, "wrong PIN");
    CK_FLAGS f = p11_token_flags(slot);
    ok(f & CKF_USER_PIN_COUNT_LOW, "count-low flag after a wrong PIN");
    ok(!(f & CKF_USER_PIN_LOCKED), "not locked yet");
    for (int i = 0; i < 3; i++)
        p11_login(s, CKU_USER, "000000");
    f = p11_token_flags(slot);
    ok(f & CKF_USER_PIN_FINAL_TRY, "final-try flag with one try left");
    is_rv(p11_login(s, CKU_USER, "000000"), CKR_PIN_INCORRECT, "fifth wrong PIN");
    ok(p11_token_flags(slot) & CKF_USER_PIN_LOCKED, "locked after five");
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_PIN_LOCKED, "the right PIN no longer opens a locked card");

    /* The SO (administrator) unblocks by setting a new user PIN. */
    is_rv(p11_login(s, CKU_SO, SO_PIN), CKR_OK, "SO login");
    is_rv(p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "12", 2), CKR_PIN_LEN_RANGE, "C_InitPIN refuses a too-short PIN");
    is_rv(p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "12\t456", 6), CKR_PIN_INVALID, "C_InitPIN refuses a control character");
    is_rv(p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "654321", 6), CKR_OK, "C_InitPIN unblocks");
    p11->C_Logout(s);
    ok(!(p11_token_flags(slot) & (CKF_USER_PIN_LOCKED | CKF_USER_PIN_COUNT_LOW)), "flags clear after unblock");
    is_rv(p11_login(s, CKU_USER, "654321"), CKR_OK, "login with the new PIN");
    is_rv(p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "654321", 6, (CK_UTF8CHAR_PTR) "1", 1), CKR_PIN_LEN_RANGE,
          "C_SetPIN refuses a PIN shorter than the policy allows");
    is_rv(p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "000000", 6, (CK_UTF8CHAR_PTR) USER_PIN, 6), CKR_PIN_INCORRECT,
          "C_SetPIN with a wrong old PIN");
    is_rv(p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "654321", 6, (CK_UTF8CHAR_PTR) USER_PIN, 6), CKR_OK, "C_SetPIN");
    p11->C_Logout(s);
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_OK, "login with the changed PIN");
    p11->C_CloseSession(s);
}

int main(void)
{
    CK_SLOT_ID spare, slot;
    CK_SESSION_HANDLE s, ro;
    CK_TOKEN_INFO ti;
    CK_SLOT_INFO si;
    CK_INFO info;
    CK_UTF8CHAR label[32];
    struct keypair rsa = { 0 }, ec = { 0 }, ec384 = { 0 };

    plan_lazy();
    p11_load();
    is_rv(p11_init(), CKR_OK, "C_Initialize");
    is_rv(p11_init(), CKR_CRYPTOKI_ALREADY_INITIALIZED, "second C_Initialize");
    is_rv(p11->C_GetInfo(&info), CKR_OK, "C_GetInfo");
    ok(info.cryptokiVersion.major == 3, "Cryptoki 3.x");
    ok(p11_find_slot(false, &spare) == 0, "a spare, uninitialised slot is offered");
    is_rv(p11->C_GetSlotInfo(spare, &si), CKR_OK, "C_GetSlotInfo");
    ok((si.flags & (CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT)) ==
           (CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE | CKF_HW_SLOT), "slot flags: present, removable, hardware");
    is_rv(p11->C_OpenSession(spare, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_TOKEN_NOT_RECOGNIZED,
          "no session on an uninitialised card");

    pad32(label, "Integration Card");
    is_rv(p11->C_InitToken(spare, (CK_UTF8CHAR_PTR)SO_PIN, 8, label), CKR_OK, "C_InitToken creates a VSC");
    slot = spare;
    is_rv(p11->C_GetTokenInfo(slot, &ti), CKR_OK, "C_GetTokenInfo");
    ok(!memcmp(ti.label, "Integration Card                ", 32), "label blank-padded");
    ok(memchr(ti.serialNumber, 0, 16) == NULL && memchr(ti.model, 0, 16) == NULL &&
           memchr(ti.manufacturerID, 0, 32) == NULL, "text fields hold no NULs");
    ok((ti.flags & CKF_TOKEN_INITIALIZED) && !(ti.flags & CKF_USER_PIN_INITIALIZED), "initialised, no user PIN yet");
    CK_SLOT_ID other;
    ok(p11_find_slot(false, &other) == 0 && other != slot, "a new spare slot appears");

    is_rv(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK, "R/O session");
    is_rv(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK, "R/W session");
    is_rv(p11_login(s, CKU_SO, SO_PIN), CKR_SESSION_READ_ONLY_EXISTS, "SO login refused beside a R/O session");
    p11->C_CloseSession(ro);
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_USER_PIN_NOT_INITIALIZED, "no user PIN yet");
    is_rv(p11_login(s, CKU_SO, "11111111"), CKR_PIN_INCORRECT, "wrong SO PIN");
    is_rv(p11_login(s, CKU_SO, SO_PIN), CKR_OK, "SO login");
    is_rv(p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, 6), CKR_OK, "C_InitPIN");
    is_rv(p11->C_Logout(s), CKR_OK, "SO logout");
    ok(p11_token_flags(slot) & CKF_USER_PIN_INITIALIZED, "user PIN initialised");
    ok(!(p11_token_flags(slot) & CKF_SO_PIN_COUNT_LOW), "SO counter restored by the good SO PIN");

    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_OK, "user login");
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_USER_ALREADY_LOGGED_IN, "already logged in");
    is_rv(gen_rsa(s, 2048, "k1", &rsa), CKR_OK, "RSA-2048 key pair in the TPM");
    is_rv(gen_ec(s, P256, sizeof(P256), "k2", &ec), CKR_OK, "P-256 key pair in the TPM");
    is_rv(gen_ec(s, P384, sizeof(P384), "k3", &ec384), CKR_OK, "P-384 key pair in the TPM");
    ok(rsa.ossl && ec.ossl && ec384.ossl, "public keys readable and valid for OpenSSL");
    {
        CK_ULONG bits = 1024;
        CK_MECHANISM m = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
        CK_ATTRIBUTE pub[] = { { CKA_MODULUS_BITS, &bits, sizeof(bits) } };
        CK_OBJECT_HANDLE a, b;
        is_rv(p11->C_GenerateKeyPair(s, &m, pub, 1, NULL, 0, &a, &b), CKR_KEY_SIZE_RANGE, "RSA-1024 refused");
        CK_ATTRIBUTE ext[] = { { CKA_EXTRACTABLE, &yes, 1 } };
        bits = 2048;
        is_rv(p11->C_GenerateKeyPair(s, &m, pub, 1, ext, 1, &a, &b), CKR_ATTRIBUTE_VALUE_INVALID,
              "an extractable TPM key is refused");
    }

    test_rsa_signatures(s, &rsa);
    test_rsa_decrypt(s, &rsa);
    test_ec(s, &ec, "SHA256", 32);
    test_ec(s, &ec384, "SHA384", 48);
    test_ecdh(s, &ec);
    test_attributes(s, &rsa);
    test_objects(s, &rsa, "r1");
    test_threads(slot, &rsa, &ec);

    /* Private objects disappear with the login. */
    CK_OBJECT_HANDLE found[8];
    ok(p11_find(s, CKO_PRIVATE_KEY, NULL, 0, found, 8) == 3, "three private keys while logged in");
    p11->C_Logout(s);
    ok(p11_find(s, CKO_PRIVATE_KEY, NULL, 0, found, 8) == 0, "none after logout");
    ok(p11_find(s, CKO_PUBLIC_KEY, NULL, 0, found, 8) == 3, "public keys stay visible");
    CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
    is_rv(p11->C_SignInit(s, &m, rsa.priv), CKR_KEY_HANDLE_INVALID, "no signing after logout");
    p11->C_CloseSession(s);

    test_pins(slot);

    /* Everything survives a restart of the module. */
    is_rv(p11->C_Finalize(NULL), CKR_OK, "C_Finalize");
    is_rv(p11_init(), CKR_OK, "C_Initialize again");
    p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    is_rv(p11_login(s, CKU_USER, USER_PIN), CKR_OK, "login after restart");
    ok(p11_find(s, CKO_PRIVATE_KEY, "k1", 2, found, 8) == 1, "RSA key still there");
    uint8_t sig[512];
    CK_ULONG sl = sizeof(sig);
    is_rv(sign(s, &m, found[0], msg, sizeof(msg), sig, &sl), CKR_OK, "and signs");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ok(EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, rsa.ossl, NULL) == 1 &&
           EVP_DigestVerify(ctx, sig, sl, msg, sizeof(msg)) == 1, "with the same key as before");
    EVP_MD_CTX_free(ctx);
    p11->C_CloseSession(s);

    /* A second card is separate from the first. */
    CK_SLOT_ID second;
    ok(p11_find_slot(false, &second) == 0, "spare slot for a second card");
    pad32(label, "Second");
    is_rv(p11->C_InitToken(second, (CK_UTF8CHAR_PTR)SO_PIN, 8, label), CKR_OK, "second VSC");
    p11->C_OpenSession(second, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    p11_login(s, CKU_SO, SO_PIN);
    p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)USER_PIN, 6);
    p11->C_Logout(s);
    p11_login(s, CKU_USER, USER_PIN);
    ok(p11_find(s, CKO_PRIVATE_KEY, NULL, 0, found, 8) == 0, "the second card sees none of the first's keys");
    p11->C_CloseSession(s);

    /* Re-initialising a card erases it; it needs the SO PIN. */
    is_rv(p11->C_InitToken(second, (CK_UTF8CHAR_PTR) "99999999", 8, label), CKR_PIN_INCORRECT,
          "re-init with a wrong SO PIN");
    is_rv(p11->C_InitToken(slot, (CK_UTF8CHAR_PTR)SO_PIN, 8, label), CKR_OK, "re-init the first card");
    ok(!(p11_token_flags(slot) & CKF_USER_PIN_INITIALIZED), "user PIN gone");
    p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
    ok(p11_find(s, CKO_PUBLIC_KEY, NULL, 0, found, 8) == 0, "keys gone");
    p11->C_CloseSession(s);

    CK_SLOT_ID ev;
    CK_RV rv = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL);
    while (rv == CKR_OK)
        rv = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &ev, NULL);
    is_rv(rv, CKR_NO_EVENT, "no pending slot events once drained");

    EVP_PKEY_free(rsa.ossl);
    EVP_PKEY_free(ec.ossl);
    EVP_PKEY_free(ec384.ossl);
    is_rv(p11->C_Finalize(NULL), CKR_OK, "C_Finalize");
    return done_testing();
}
