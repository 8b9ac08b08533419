/* SP 800-108 counter-mode KDF against NIST CAVP vectors (KBKDF800-108,
 * CounterMode, CTRLOCATION=BEFORE_FIXED, RLEN=32_BITS), admin-key
 * diversification, DES parity, and the phone codes. */
#include "config.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/params.h>

#include "../../src/code.h"
#include "../../src/kdf.h"
#include "../tap.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void vector(enum tess_prf prf, const char *name, const char *key, const char *fixed, const char *expect)
{
    uint8_t k[64], f[128], e[64], got[64];
    size_t kl = unhex(key, k), fl = unhex(fixed, f), el = unhex(expect, e);
    CK_RV rv = tess_kbkdf(prf, k, kl, NULL, 0, f, fl, got, el);
    ok(rv == CKR_OK && !memcmp(got, e, el), "NIST vector %s", name);
}

static int popcount8(uint8_t b)
{
    int n = 0;
    while (b) {
        n += b & 1;
        b >>= 1;
    }
    return n;
}

/* A software PRF through EVP_MAC, standing in for an HSM's. */
struct mac_prf {
    const char *mac, *cipher, *digest;
    const uint8_t *key;
    size_t key_len;
};

static CK_RV mac_prf(void *ctx, const uint8_t *in, size_t len, uint8_t *out)
{
    struct mac_prf *m = ctx;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, m->mac, NULL);
    EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[2] = { OSSL_PARAM_END, OSSL_PARAM_END };
    size_t outl = 0;
    CK_RV rv = CKR_FUNCTION_FAILED;
    if (m->cipher)
        params[0] = OSSL_PARAM_construct_utf8_string("cipher", (char *)m->cipher, 0);
    else if (m->digest)
        params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *)m->digest, 0);
    if (c && EVP_MAC_init(c, m->key, m->key_len, params) && EVP_MAC_update(c, in, len) &&
        EVP_MAC_final(c, out, &outl, 64))
        rv = CKR_OK;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(mac);
    return rv;
}

int main(void)
{
    plan_lazy();
    vector(TESS_PRF_CMAC_AES128, "CMAC-AES128 COUNT=0 L=128", "c10b152e8c97b77e18704e0f0bd38305",
           "98cd4cbbbebe15d17dc86e6dbad800a2dcbd64f7c7ad0e78e9cf94ffdba89d03e97eadf6c4f7b806caf52aa38f09d0eb71d71f497bcc6906b48d36c4",
           "26faf61908ad9ee881b8305c221db53f");
    vector(TESS_PRF_CMAC_AES128, "CMAC-AES128 COUNT=10 L=256", "695f1b1a16c949cea51cdf2554ec9d42",
           "4fce5942832a390aa1cbe8a0bf9d202cb799e986c9d6b51f45e4d597a6b57f06a4ebfec6467335d116b7f5f9c5b954062f661820f5db2a5bbb3e0625",
           "d34b601ec18c34dfa0f9e0b7523e218bdddb9befe8d08b6c0202d75ace0dba89");
    vector(TESS_PRF_CMAC_AES128, "CMAC-AES128 COUNT=30 L=320", "b2fcf854b1029888aeb0274ca09bb21a",
           "a6b84baae7a6ceb1d63ed704757500c510c0a8bdc22d2f42af09f79c815f37f33b67dad0b30f428fc1e2d355f7f91f65acbedd2fdd5b8c38dd890407",
           "fe4c2c0242c5a295c008aeb87ae0815171de6173773292347f4f5ec07185c3f860b5667c199aad55");
    vector(TESS_PRF_HMAC_SHA256, "HMAC-SHA256 COUNT=0 L=128", "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0",
           "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac",
           "10621342bfb0fd40046c0e29f2cfdbf0");
    vector(TESS_PRF_HMAC_SHA256, "HMAC-SHA256 COUNT=10 L=256", "e204d6d466aad507ffaf6d6dab0a5b26152c9e21e764370464e360c8fbc765c6",
           "7b03b98d9f94b899e591f3ef264b71b193fba7043c7e953cde23bc5384bc1a6293580115fae3495fd845dadbd02bd6455cf48d0f62b33e62364a3a80",
           "770dfab6a6a4a4bee0257ff335213f78d8287b4fd537d5c1fffa956910e7c779");
    vector(TESS_PRF_HMAC_SHA256, "HMAC-SHA256 COUNT=30 L=320", "c4bedbddb66493e7c7259a3bbbc25f8c7e0ca7fe284d92d431d9cd99a0d214ac",
           "1c69c54766791e315c2cc5c47ecd3ffab87d0d273dd920e70955814c220eacace6a5946542da3dfe24ff626b4897898cafb7db83bdff3c14fa46fd4b",
           "1da47638d6c9c4d04d74d4640bbd42ab814d9e8cc22f4326695239f96b0693f12d0dd1152cf44430");

    /* The structured form is label | 00 | context | [L]32 after the counter:
     * the same bytes given as raw fixed input give the same key. */
    {
        uint8_t master[32], a[24], b[24], fixed[64];
        memset(master, 0x42, sizeof(master));
        const char label[] = "Tessera card admin key v1", serial[] = "ab12cd34";
        size_t n = 0;
        memcpy(fixed, label, sizeof(label) - 1);
        n += sizeof(label) - 1;
        fixed[n++] = 0x00;
        memcpy(fixed + n, serial, sizeof(serial) - 1);
        n += sizeof(serial) - 1;
        fixed[n++] = 0; fixed[n++] = 0; fixed[n++] = 0; fixed[n++] = 24 * 8;
        ok(tess_kbkdf(TESS_PRF_HMAC_SHA256, master, 32, (const uint8_t *)label, sizeof(label) - 1,
                      (const uint8_t *)serial, sizeof(serial) - 1, a, 24) == CKR_OK &&
               tess_kbkdf(TESS_PRF_HMAC_SHA256, master, 32, NULL, 0, fixed, n, b, 24) == CKR_OK && !memcmp(a, b, 24),
           "structured input is label | 0x00 | context | [L]32 (SP 800-108 section 4)");
    }

    /* Diversification */
    {
        uint8_t master[32], k1[32], k2[32], k3[32];
        size_t l1 = sizeof(k1), l2 = sizeof(k2), l3 = sizeof(k3);
        memset(master, 0x5a, sizeof(master));
        ok(tess_admin_key_diversify(TESS_PRF_CMAC_AES256, master, 32, "card-0001", TESS_KEY_3DES, k1, &l1) == CKR_OK &&
               l1 == 24, "a 3DES admin key is 24 bytes");
        int odd = 1;
        for (size_t i = 0; i < l1; i++)
            odd &= popcount8(k1[i]) & 1;
        ok(odd, "every byte of it has odd parity");
        ok(tess_admin_key_diversify(TESS_PRF_CMAC_AES256, master, 32, "card-0001", TESS_KEY_3DES, k2, &l2) == CKR_OK &&
               !memcmp(k1, k2, 24), "the same card gets the same key");
        l2 = sizeof(k2);
        ok(tess_admin_key_diversify(TESS_PRF_CMAC_AES256, master, 32, "card-0002", TESS_KEY_3DES, k2, &l2) == CKR_OK &&
               memcmp(k1, k2, 24), "another card, another key");
        ok(tess_admin_key_diversify(TESS_PRF_HMAC_SHA256, master, 32, "card-0001", TESS_KEY_AES128, k3, &l3) == CKR_OK &&
               l3 == 16, "an AES-128 admin key is 16 bytes");
        l3 = sizeof(k3);
        ok(tess_admin_key_diversify(TESS_PRF_CMAC_AES256, master, 32, "card-0001", TESS_KEY_AES256, k3, &l3) == CKR_OK &&
               l3 == 32, "an AES-256 admin key is 32 bytes");
        l3 = sizeof(k3);
        ok(tess_admin_key_diversify(TESS_PRF_CMAC_AES128, master, 32, "card-0001", TESS_KEY_AES128, k3, &l3) ==
               CKR_KEY_SIZE_RANGE, "CMAC-AES128 refuses a 32-byte master key");
        l3 = 8;
        ok(tess_admin_key_diversify(TESS_PRF_HMAC_SHA256, master, 32, "card-0001", TESS_KEY_AES128, k3, &l3) ==
               CKR_ARGUMENTS_BAD, "too small an output buffer is refused");
    }
    {
        uint8_t k[3] = { 0x00, 0xff, 0x12 };
        tess_des_fix_parity(k, 3);
        ok(k[0] == 0x01 && k[1] == 0xfe && k[2] == 0x13, "DES parity: 00->01, ff->fe, 12->13");
    }

    /* The external-PRF form (an HSM's) gives the same bytes as OpenSSL's KBKDF. */
    {
        uint8_t master[32], a[24], b[24];
        size_t la = sizeof(a), lb = sizeof(b);
        for (int i = 0; i < 32; i++)
            master[i] = (uint8_t)(0xa0 + i);
        struct mac_prf cmac = { "CMAC", "AES-256-CBC", NULL, master, 32 };
        ok(tess_admin_key_diversify(TESS_PRF_CMAC_AES256, master, 32, "0123abcd", TESS_KEY_3DES, a, &la) == CKR_OK &&
               tess_admin_key_diversify_external(mac_prf, &cmac, 16, "0123abcd", TESS_KEY_3DES, b, &lb) == CKR_OK &&
               la == lb && !memcmp(a, b, la),
           "diversify with an external CMAC-AES256 PRF = with the key in hand (two blocks)");
        struct mac_prf hmac = { "HMAC", NULL, "SHA256", master, 32 };
        la = lb = 32;
        uint8_t c[32], d[32];
        ok(tess_admin_key_diversify(TESS_PRF_HMAC_SHA256, master, 32, "card-7", TESS_KEY_AES256, c, &la) == CKR_OK &&
               tess_admin_key_diversify_external(mac_prf, &hmac, 32, "card-7", TESS_KEY_AES256, d, &lb) == CKR_OK &&
               !memcmp(c, d, 32),
           "and with an external HMAC-SHA-256 PRF");
        struct mac_prf broken = { "NOPE", NULL, NULL, master, 32 };
        lb = 24;
        ok(tess_admin_key_diversify_external(mac_prf, &broken, 16, "x", TESS_KEY_3DES, b, &lb) != CKR_OK,
           "a failing PRF fails the derivation");
    }

    /* Phone codes */
    {
        uint8_t in[8] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef }, back[8];
        char code[TESS_CODE_MAX], typo[TESS_CODE_MAX];
        ok(tess_code_format(in, 8, code, sizeof(code)) == 0, "an 8-byte challenge as a code: %s", code);
        ok(strlen(code) == 17, "13 digits in groups of four, the check symbol ending the last: %zu characters",
           strlen(code));
        ok(tess_code_parse(code, back, 8) == TESS_CODE_OK && !memcmp(in, back, 8), "reads back");
        char lower[TESS_CODE_MAX];
        size_t j = 0;
        for (size_t i = 0; code[i]; i++)
            if (code[i] != '-')
                lower[j++] = (char)(code[i] >= 'A' && code[i] <= 'Z' ? code[i] + 32 : code[i]);
        lower[j] = '\0';
        ok(tess_code_parse(lower, back, 8) == TESS_CODE_OK && !memcmp(in, back, 8),
           "lower case without separators reads back too");
        int caught = 0, tried = 0;
        for (size_t i = 0; i < strlen(code) - 1; i++) {
            if (code[i] == '-')
                continue;
            strcpy(typo, code);
            typo[i] = code[i] == 'Z' ? 'Y' : code[i] == '9' ? 'A' : (char)(code[i] + 1);
            if (typo[i] == 'I' || typo[i] == 'L' || typo[i] == 'O' || typo[i] == 'U')
                typo[i]++;
            tried++;
            caught += tess_code_parse(typo, back, 8) == TESS_CODE_MISTYPED;
        }
        ok(caught == tried, "every single-symbol typo is caught as mistyped (%d of %d)", caught, tried);
        ok(tess_code_parse("1234", back, 8) == TESS_CODE_BAD, "a short code is not a code");
        ok(tess_code_parse("!!!!-!!!!-!!!!-!0", back, 8) == TESS_CODE_BAD, "nor is junk");
        uint8_t in16[16] = { 0 };
        ok(tess_code_format(in16, 16, code, sizeof(code)) == 0 && strlen(code) == 6 * 5 + 3,
           "a 16-byte challenge: 26 digits and the check in 7 groups: %s", code);
    }

    /* Challenge/response with an admin key */
    {
        static const uint8_t chal[8] = { 0xa8, 0x92, 0xd7, 0x56, 0x01, 0x61, 0x7c, 0x5d };
        static const uint8_t want[8] = { 0xb0, 0xa1, 0x67, 0x47, 0x47, 0xf4, 0xeb, 0x87 };
        static const uint8_t kcv_want[3] = { 0xb0, 0x73, 0xdc };
        uint8_t resp[16], kcv[3];
        ok(tess_admin_response(TESS_KEY_3DES, tess_admin_default_key, 24, chal, 8, resp) == CKR_OK &&
               !memcmp(resp, want, 8),
           "3DES response to A892D75601617C5D under the default key is B0A1674747F4EB87 (Windows VSC)");
        ok(tess_admin_kcv(TESS_KEY_3DES, tess_admin_default_key, 24, kcv) == CKR_OK && !memcmp(kcv, kcv_want, 3),
           "the default key's check value is B073DC (tpmvscmgr's KCV)");
        /* FIPS-197 appendix C.1 */
        uint8_t aes_key[16], pt[16];
        static const uint8_t ct[16] = { 0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30,
                                        0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a };
        for (int i = 0; i < 16; i++) {
            aes_key[i] = (uint8_t)i;
            pt[i] = (uint8_t)(i * 0x11);
        }
        ok(tess_admin_response(TESS_KEY_AES128, aes_key, 16, pt, 16, resp) == CKR_OK && !memcmp(resp, ct, 16),
           "AES-128 response is the block encrypted (FIPS-197 C.1)");
        ok(tess_admin_response(TESS_KEY_AES128, aes_key, 16, pt, 8, resp) == CKR_ARGUMENTS_BAD,
           "a challenge of the wrong length is refused");
        ok(tess_admin_response(TESS_KEY_3DES, aes_key, 16, chal, 8, resp) == CKR_ARGUMENTS_BAD,
           "a key of the wrong length is refused");
    }

    return done_testing();
}
