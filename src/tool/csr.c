/* tessera key generate [--csr FILE --subject DN]: a key pair made on the
 * card, and a PKCS#10 certification request signed by that key on the card
 * (the request's body is built with OpenSSL, its signature is a C_Sign). */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "../attrs.h"
#include "../cms/ca.h"
#include "../mech.h"
#include "../util.h"
#include "tool.h"

static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

/* The new public key as OpenSSL sees it. */
static EVP_PKEY *public_key_of(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE pub)
{
    static const CK_ATTRIBUTE_TYPE types[] = { CKA_KEY_TYPE, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS,
                                               CKA_EC_POINT };
    struct tess_attrs a = { 0 };
    EVP_PKEY *pk = NULL;
    for (size_t i = 0; i < TESS_ARRAY_SIZE(types); i++)
        tool_fetch_attr(p, h, pub, types[i], &a);
    if (tess_pkey_from_attrs(&a, &pk) != CKR_OK)
        pk = NULL;
    tess_attrs_free(&a);
    return pk;
}

/* Sign the request's body on the card (SHA-256), with the PIN again for a
 * key that asks for it each time (PIV 9C). */
static CK_RV sign_on_card(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key, bool rsa, const char *pin,
                          const uint8_t *tbs, size_t tbs_len, uint8_t **sig, size_t *sig_len)
{
    CK_MECHANISM m = { rsa ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0 };
    CK_BBOOL always = CK_FALSE;
    CK_ATTRIBUTE q = { CKA_ALWAYS_AUTHENTICATE, &always, sizeof(always) };
    uint8_t raw[512];
    CK_ULONG raw_len = sizeof(raw);
    CK_RV rv = p->f->C_SignInit(h, &m, key);
    p->f->C_GetAttributeValue(h, key, &q, 1);
    if (rv == CKR_OK && always && pin)
        rv = p->f->C_Login(h, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
    if (rv == CKR_OK)
        rv = p->f->C_Sign(h, (CK_BYTE_PTR)tbs, (CK_ULONG)tbs_len, raw, &raw_len);
    if (rv != CKR_OK)
        return rv;
    if (!rsa)   /* PKCS#11 gives r | s; X.509 wants the DER SEQUENCE */
        return tess_ecdsa_rs_to_der(raw, raw_len, sig, sig_len);
    *sig = OPENSSL_memdup(raw, raw_len);
    *sig_len = raw_len;
    return *sig ? CKR_OK : CKR_HOST_MEMORY;
}

int tool_make_csr(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                  const X509_NAME *subject, const char *pin, X509_REQ **csr)
{
    EVP_PKEY *pk = public_key_of(p, h, pub);
    X509_REQ *req = X509_REQ_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
    unsigned char *tbs = NULL;
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    int tbs_len, rc = EX_FAIL;
    CK_RV rv;

    *csr = NULL;
    if (!pk || !req || !alg || !bits || !X509_REQ_set_version(req, 0) || !X509_REQ_set_subject_name(req, subject) ||
        !X509_REQ_set_pubkey(req, pk))
        goto out;
    bool rsa = EVP_PKEY_is_a(pk, "RSA");
    tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
    if (tbs_len <= 0)
        goto out;
    rv = sign_on_card(p, h, priv, rsa, pin, tbs, (size_t)tbs_len, &sig, &sig_len);
    if (rv != CKR_OK) {
        rc = tool_report(rv, "the card did not sign the request");
        goto out;
    }
    /* sha256WithRSAEncryption takes a NULL parameter, ecdsa-with-SHA256 none. */
    if (!X509_ALGOR_set0(alg, OBJ_nid2obj(rsa ? NID_sha256WithRSAEncryption : NID_ecdsa_with_SHA256),
                         rsa ? V_ASN1_NULL : V_ASN1_UNDEF, NULL) ||
        !X509_REQ_set1_signature_algo(req, alg) || !ASN1_BIT_STRING_set(bits, sig, (int)sig_len))
        goto out;
    bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
    bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;   /* no unused bits */
    X509_REQ_set0_signature(req, bits);
    bits = NULL;
    /* Never hand out a request that does not verify. */
    if (X509_REQ_verify(req, pk) != 1) {
        fprintf(stderr, "tessera: the signed request does not verify\n");
        goto out;
    }
    *csr = req;
    req = NULL;
    rc = EX_OK;
out:
    OPENSSL_free(tbs);
    OPENSSL_free(sig);
    ASN1_BIT_STRING_free(bits);
    X509_ALGOR_free(alg);
    X509_REQ_free(req);
    EVP_PKEY_free(pk);
    return rc;
}

/* rsa2048, rsa3072, p256, p384 into a mechanism and templates. */
static int key_type(const char *name, CK_MECHANISM_TYPE *mech, CK_ULONG *bits, const uint8_t **oid, size_t *oid_len)
{
    *oid = NULL;
    *bits = 0;
    *mech = CKM_RSA_PKCS_KEY_PAIR_GEN;
    if (!strcmp(name, "rsa2048"))
        *bits = 2048;
    else if (!strcmp(name, "rsa3072"))
        *bits = 3072;
    else if (!strcmp(name, "p256") || !strcmp(name, "p384")) {
        bool p256 = !strcmp(name, "p256");
        *mech = CKM_EC_KEY_PAIR_GEN;
        *oid = p256 ? oid_p256 : oid_p384;
        *oid_len = p256 ? sizeof(oid_p256) : sizeof(oid_p384);
    } else
        return -1;
    return 0;
}

CK_RV tool_generate_pair(struct tool_p11 *p, CK_SESSION_HANDLE h, const char *type, const uint8_t *id, CK_ULONG idlen,
                         const char *label, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM_TYPE mech;
    CK_ULONG bits;
    const uint8_t *oid;
    size_t oid_len = 0;
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG n_pub = 0, n_priv = 0;
    CK_ATTRIBUTE pub_t[5], priv_t[4];

    if (key_type(type, &mech, &bits, &oid, &oid_len))
        return CKR_ARGUMENTS_BAD;
    pub_t[n_pub++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
    pub_t[n_pub++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) };
    if (oid)
        pub_t[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)oid, (CK_ULONG)oid_len };
    else
        pub_t[n_pub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &bits, sizeof(bits) };
    priv_t[n_priv++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
    priv_t[n_priv++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) };
    if (id) {
        pub_t[n_pub++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, idlen };
        priv_t[n_priv++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, idlen };
    }
    CK_MECHANISM m = { mech, NULL, 0 };
    return p->f->C_GenerateKeyPair(h, &m, pub_t, n_pub, priv_t, n_priv, pub, priv);
}

static int write_csr(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                     const X509_NAME *subject, const char *pin, const char *path)
{
    X509_REQ *req = NULL;
    FILE *out = NULL;
    int rc = tool_make_csr(p, h, pub, priv, subject, pin, &req);
    if (rc != EX_OK)
        return rc;
    out = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!out || !PEM_write_X509_REQ(out, req)) {
        fprintf(stderr, "tessera: cannot write %s\n", path);
        rc = EX_FAIL;
    }
    if (out && out != stdout)
        fclose(out);
    X509_REQ_free(req);
    return rc;
}

int cmd_key_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        TOOL_CARD_OPTIONS, { "pin-file", required_argument, 0, 'P' }, { "type", required_argument, 0, 't' },
        { "id", required_argument, 0, 'i' }, { "label", required_argument, 0, 'l' },
        { "csr", required_argument, 0, 'c' }, { "subject", required_argument, 0, 'S' }, { 0, 0, 0, 0 }
    };
    static const char use[] = "usage: tessera key generate --slot N|--serial S [--type rsa2048|rsa3072|p256|p384] "
                              "[--id HEX] [--label L] [--pin-file F] [--csr FILE --subject /CN=...]";
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    const char *pin_file = NULL, *type = "rsa2048", *label = "", *id_hex = NULL, *csr = NULL, *subject_text = NULL;
    struct tool_card_session cs = { 0 };
    CK_OBJECT_HANDLE pub = 0, priv = 0;
    CK_MECHANISM_TYPE mech;
    CK_ULONG bits;
    const uint8_t *oid;
    size_t oid_len = 0, idlen = 0;
    uint8_t id[64];
    X509_NAME *subject = NULL;
    int c, rc = EX_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'P': pin_file = optarg; break;
        case 't': type = optarg; break;
        case 'i': id_hex = optarg; break;
        case 'l': label = optarg; break;
        case 'c': csr = optarg; break;
        case 'S': subject_text = optarg; break;
        default:
            if (tool_card_opt(&ca, c, optarg))
                rc = EX_USAGE;
        }
    }
    if (rc != EX_OK || optind != argc || key_type(type, &mech, &bits, &oid, &oid_len) ||
        (id_hex && (tool_unhex(id_hex, id, sizeof(id), &idlen) || !idlen)) || !csr != !subject_text)
        return tool_usage_error(use);
    if (subject_text && !(subject = cms_parse_dn(subject_text))) {
        fprintf(stderr, "tessera: --subject wants /TYPE=value/..., e.g. /CN=Jane Doe/O=Example\n");
        return EX_USAGE;
    }
    rc = tool_card_login(&cs, &ca, pin_file);
    if (rc != EX_OK)
        goto out;
    if (!idlen && cs.info.cardType == CKT_TESSERA_PIV) {
        id[0] = 0x01;   /* 9A, PIV authentication */
        idlen = 1;
    }
    CK_RV rv = tool_generate_pair(&cs.p, cs.h, type, idlen ? id : NULL, (CK_ULONG)idlen, label, &pub, &priv);
    if (rv != CKR_OK) {
        rc = tool_report(rv, "no key was made");
        goto out;
    }
    CK_ATTRIBUTE q = { CKA_ID, id, sizeof(id) };
    if (cs.p.f->C_GetAttributeValue(cs.h, priv, &q, 1) == CKR_OK)
        idlen = q.ulValueLen;
    if (csr)
        rc = write_csr(&cs.p, cs.h, pub, priv, subject, cs.pin, csr);
    if (rc == EX_OK && !(csr && !strcmp(csr, "-")))   /* stdout holds the request */
        tool_print_id("key generated", id, idlen);
out:
    X509_NAME_free(subject);
    tool_card_logout(&cs);
    return rc;
}
