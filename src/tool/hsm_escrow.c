/* An escrow key inside an HSM: made there (RSA-3072, sensitive, never
 * extractable), its certification request signed there once, and from
 * then on able only to decrypt: the content keys of archives (RSAES-OAEP,
 * SHA-256), during a recovery. The private key never leaves the HSM. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "../util.h"
#include "tool.h"

int tool_hsm_escrow_generate(struct tool_hsm *h, const char *label, const X509_NAME *subject, X509_REQ **csr)
{
    CK_MECHANISM m = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = 3072, found = 0;
    CK_BYTE e[] = { 0x01, 0x00, 0x01 };
    uint8_t id[8];
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE, old;
    struct tool_p11 p = { .f = h->f };
    CK_RV rv;
    int rc;

    *csr = NULL;
    if (tool_hsm_find(h, CKO_PRIVATE_KEY, &old, &found) != EX_NOTFOUND || found) {
        fprintf(stderr, "tessera: the HSM already holds a private key with this label or id: name another\n");
        return EX_STATE;
    }
    if (RAND_bytes(id, sizeof(id)) != 1)
        return EX_FAIL;
    CK_ATTRIBUTE pub_t[] = {
        { CKA_TOKEN, &yes, sizeof(yes) },     { CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) },
        { CKA_ID, id, sizeof(id) },           { CKA_MODULUS_BITS, &bits, sizeof(bits) },
        { CKA_PUBLIC_EXPONENT, e, sizeof(e) }, { CKA_ENCRYPT, &yes, sizeof(yes) },
        { CKA_VERIFY, &yes, sizeof(yes) },
    };
    /* CKA_SIGN only until the request is signed (PKCS#11 lets it be
     * turned off after); never extractable, so never wrapped out either. */
    CK_ATTRIBUTE priv_t[] = {
        { CKA_TOKEN, &yes, sizeof(yes) },       { CKA_PRIVATE, &yes, sizeof(yes) },
        { CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) }, { CKA_ID, id, sizeof(id) },
        { CKA_SENSITIVE, &yes, sizeof(yes) },   { CKA_EXTRACTABLE, &no, sizeof(no) },
        { CKA_DECRYPT, &yes, sizeof(yes) },     { CKA_SIGN, &yes, sizeof(yes) },
        { CKA_UNWRAP, &no, sizeof(no) },
    };
    rv = h->f->C_GenerateKeyPair(h->session, &m, pub_t, TESS_ARRAY_SIZE(pub_t), priv_t, TESS_ARRAY_SIZE(priv_t), &pub,
                                 &priv);
    if (rv != CKR_OK)
        return tool_report(rv, "the HSM made no escrow key");
    rc = tool_make_csr(&p, h->session, pub, priv, subject, NULL, csr);
    CK_ATTRIBUTE no_sign = { CKA_SIGN, &no, sizeof(no) };
    rv = h->f->C_SetAttributeValue(h->session, priv, &no_sign, 1);
    if (rc == EX_OK && rv != CKR_OK) {
        /* A key that keeps signing would still decrypt archives: say so, but
         * an HSM that will not change CKA_SIGN is no reason to fail. */
        fprintf(stderr, "tessera: note: the HSM would not turn signing off for the escrow key (0x%lx)\n",
                (unsigned long)rv);
    }
    if (rc != EX_OK) {
        h->f->C_DestroyObject(h->session, priv);
        h->f->C_DestroyObject(h->session, pub);
    }
    return rc;
}

/* RSAES-OAEP decryption by the private key the URI names. */
static CK_RV hsm_oaep_decrypt(struct tool_hsm *h, int hash_nid, const unsigned char *in, size_t in_len,
                              unsigned char *out, size_t *out_len, CK_ULONG *found)
{
    bool sha1 = hash_nid == NID_sha1;
    CK_RSA_PKCS_OAEP_PARAMS oaep = { sha1 ? CKM_SHA_1 : CKM_SHA256, sha1 ? CKG_MGF1_SHA1 : CKG_MGF1_SHA256,
                                     CKZ_DATA_SPECIFIED, NULL, 0 };
    CK_MECHANISM m = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
    CK_OBJECT_HANDLE key;
    unsigned char plain[1024];   /* a modulus' worth: HSMs ask for that much room (SoftHSM does) */
    CK_ULONG n = sizeof(plain);
    CK_RV rv;

    if (tool_hsm_find(h, CKO_PRIVATE_KEY, &key, found) != EX_OK)
        return CKR_KEY_HANDLE_INVALID;
    rv = h->f->C_DecryptInit(h->session, &m, key);
    if (rv == CKR_OK)
        rv = h->f->C_Decrypt(h->session, (CK_BYTE_PTR)in, (CK_ULONG)in_len, plain, &n);
    if (rv == CKR_OK && n > *out_len)
        rv = CKR_BUFFER_TOO_SMALL;
    if (rv == CKR_OK) {
        memcpy(out, plain, n);
        *out_len = n;
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return rv;
}

int tool_hsm_escrow_unwrap(void *arg, int hash_nid, const unsigned char *wrapped, size_t wrapped_len,
                           unsigned char *cek, size_t *cek_len)
{
    CK_ULONG found = 0;
    CK_RV rv = hsm_oaep_decrypt(arg, hash_nid, wrapped, wrapped_len, cek, cek_len, &found);
    if (found != 1) {
        fprintf(stderr, "tessera: the escrow key URI names %s private key in the HSM\n",
                found ? "more than one" : "no");
        return 1;
    }
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: the HSM did not unwrap the archive (0x%lx): is it the escrow key the archive "
                        "was made for?\n", (unsigned long)rv);
        return 1;
    }
    return 0;
}

const char *tool_hsm_escrow_oaep(struct tool_hsm *h, EVP_PKEY *pub)
{
    static const struct { int nid; const char *name; } hashes[] = { { NID_sha256, "sha256" }, { NID_sha1, "sha1" } };
    unsigned char probe[32], ct[512], back[512];
    const char *works = NULL;

    if (RAND_bytes(probe, sizeof(probe)) != 1)
        return NULL;
    for (size_t i = 0; i < TESS_ARRAY_SIZE(hashes) && !works; i++) {
        const EVP_MD *md = EVP_get_digestbynid(hashes[i].nid);
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pub, NULL);
        size_t ct_len = sizeof(ct), back_len = sizeof(back);
        CK_ULONG found = 0;
        if (ctx && EVP_PKEY_encrypt_init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 &&
            EVP_PKEY_encrypt(ctx, ct, &ct_len, probe, sizeof(probe)) > 0 &&
            hsm_oaep_decrypt(h, hashes[i].nid, ct, ct_len, back, &back_len, &found) == CKR_OK &&
            back_len == sizeof(probe) && CRYPTO_memcmp(back, probe, sizeof(probe)) == 0)
            works = hashes[i].name;
        EVP_PKEY_CTX_free(ctx);
    }
    return works;
}
