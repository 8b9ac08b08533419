/* tessera cert load / cert import-ca / key import / key generate: putting
 * certificates and keys on a card, through the module's standard PKCS#11
 * functions like any other client. A certificate goes next to the key it
 * belongs to (found by comparing public keys); a key made on the card can
 * come with a PKCS#10 request it signed itself; a PKCS#12 (an escrowed
 * encryption key) brings its key, certificate and CA certificates. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../attrs.h"
#include "../keyimport.h"
#include "../mech.h"
#include "../util.h"
#include "tool.h"

#define MAX_ID TOOL_MAX_ID

static X509 *read_cert(const char *path)
{
    X509 *x = NULL;
    BIO *b = BIO_new_file(path, "rb");
    if (b) {
        x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        if (!x && BIO_reset(b) == 0)
            x = d2i_X509_bio(b, NULL);
    }
    BIO_free(b);
    if (!x)
        fprintf(stderr, "tessera: %s is not a certificate (PEM or DER)\n", path);
    return x;
}

/* The CKA_ID of the card's private key whose public key is `want`: the
 * public half is read from the private key object (RSA) or from the public
 * key object with the same CKA_ID (EC). 0 when none matches. */
static CK_ULONG key_id_for(struct tool_p11 *p, CK_SESSION_HANDLE h, EVP_PKEY *want, uint8_t *id, char *label,
                           size_t label_cap)
{
    CK_OBJECT_HANDLE keys[64], pubs[4];
    CK_ULONG nkeys = tool_find_objects(p, h, CKO_PRIVATE_KEY, NULL, 0, keys, TESS_ARRAY_SIZE(keys)), found = 0;

    for (CK_ULONG i = 0; i < nkeys && !found; i++) {
        static const CK_ATTRIBUTE_TYPE pub_types[] = { CKA_KEY_TYPE, CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS,
                                                       CKA_EC_POINT };
        struct tess_attrs a = { 0 };
        const CK_ATTRIBUTE *kid, *lab;
        EVP_PKEY *have = NULL;
        tool_fetch_attr(p, h, keys[i], CKA_ID, &a);
        tool_fetch_attr(p, h, keys[i], CKA_LABEL, &a);
        for (size_t t = 0; t < TESS_ARRAY_SIZE(pub_types); t++)
            tool_fetch_attr(p, h, keys[i], pub_types[t], &a);
        kid = tess_attrs_get(&a, CKA_ID);
        if (kid && kid->ulValueLen && kid->ulValueLen <= MAX_ID && !tess_attrs_get(&a, CKA_MODULUS) &&
            !tess_attrs_get(&a, CKA_EC_POINT) &&
            tool_find_objects(p, h, CKO_PUBLIC_KEY, kid->pValue, kid->ulValueLen, pubs, 4) > 0) {
            tool_fetch_attr(p, h, pubs[0], CKA_EC_PARAMS, &a);
            tool_fetch_attr(p, h, pubs[0], CKA_EC_POINT, &a);
        }
        if (kid && kid->ulValueLen <= MAX_ID && tess_pkey_from_attrs(&a, &have) == CKR_OK &&
            EVP_PKEY_eq(want, have) == 1) {
            memcpy(id, kid->pValue, kid->ulValueLen);
            found = kid->ulValueLen;
            lab = tess_attrs_get(&a, CKA_LABEL);
            snprintf(label, label_cap, "%.*s", lab ? (int)lab->ulValueLen : 0, lab ? (const char *)lab->pValue : "");
        }
        EVP_PKEY_free(have);
        tess_attrs_free(&a);
    }
    return found;
}

/* The same certificate already on the card (a command run again, or one
 * cut short): found by its DER. */
static bool cert_on_card(struct tool_p11 *p, CK_SESSION_HANDLE h, const unsigned char *der, int len,
                         CK_OBJECT_HANDLE *out)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_VALUE, (void *)der, (CK_ULONG)len } };
    CK_ULONG n = 0;
    if (p->f->C_FindObjectsInit(h, t, TESS_ARRAY_SIZE(t)) != CKR_OK)
        return false;
    if (p->f->C_FindObjects(h, out, 1, &n) != CKR_OK)
        n = 0;
    p->f->C_FindObjectsFinal(h);
    return n > 0;
}

CK_RV tool_store_cert(struct tool_p11 *p, CK_SESSION_HANDLE h, X509 *x, const uint8_t *id, CK_ULONG idlen,
                      const char *label, CK_ULONG category, CK_OBJECT_HANDLE *out)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    CK_BBOOL yes = CK_TRUE;
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    CK_ATTRIBUTE t[] = {
        { CKA_CLASS, &cls, sizeof(cls) },
        { CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
        { CKA_TOKEN, &yes, sizeof(yes) },
        { CKA_CERTIFICATE_CATEGORY, &category, sizeof(category) },
        { CKA_VALUE, der, (CK_ULONG)len },
        { CKA_LABEL, (void *)label, (CK_ULONG)strlen(label) },
        { CKA_ID, (void *)id, idlen },
    };
    CK_RV rv = len <= 0                        ? CKR_HOST_MEMORY
               : cert_on_card(p, h, der, len, out) ? CKR_OK
                                                   : p->f->C_CreateObject(h, t, TESS_ARRAY_SIZE(t), out);
    OPENSSL_free(der);
    return rv;
}

/* The holder's certificate next to its key; older certificates of that key
 * go once the new one is stored (a PIV card overwrites its slot's in one
 * write: the new certificate keeps the old handle, and is not removed). */
static int load_cert(struct tool_p11 *p, CK_SESSION_HANDLE h, X509 *x, const char *label_opt, uint8_t *id,
                     CK_ULONG *idlen)
{
    CK_OBJECT_HANDLE old[16], added;
    char label[128] = "", key_label[128] = "";
    CK_ULONG nold;
    CK_RV rv;

    *idlen = key_id_for(p, h, X509_get0_pubkey(x), id, key_label, sizeof(key_label));
    if (!*idlen) {
        fprintf(stderr, "tessera: no key on the card matches this certificate's public key\n");
        return EX_NOTFOUND;
    }
    if (label_opt)
        snprintf(label, sizeof(label), "%s", label_opt);
    else if (key_label[0])
        snprintf(label, sizeof(label), "%s", key_label);
    else
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, label, sizeof(label));
    nold = tool_find_objects(p, h, CKO_CERTIFICATE, id, *idlen, old, TESS_ARRAY_SIZE(old));
    rv = tool_store_cert(p, h, x, id, *idlen, label, 1, &added);
    if (rv != CKR_OK)
        return tool_report(rv, "the certificate was not stored");
    for (CK_ULONG i = 0; i < nold; i++)
        if (old[i] != added && p->f->C_DestroyObject(h, old[i]) != CKR_OK)
            fprintf(stderr, "tessera: warning: an older certificate of this key stays on the card\n");
    return EX_OK;
}

#define PIN_OPTIONS { "pin-file", required_argument, 0, 'P' }

int cmd_cert_load(int argc, char **argv)
{
    static const struct option opts[] = { TOOL_CARD_OPTIONS, PIN_OPTIONS, { "label", required_argument, 0, 'l' },
                                          { 0, 0, 0, 0 } };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    const char *pin_file = NULL, *label = NULL;
    struct tool_card_session cs = { 0 };
    uint8_t id[MAX_ID];
    CK_ULONG idlen = 0;
    X509 *x = NULL;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'P')
            pin_file = optarg;
        else if (c == 'l')
            label = optarg;
        else if (tool_card_opt(&ca, c, optarg))
            return tool_usage_error("usage: tessera cert load --slot N|--serial S [--pin-file F] [--label L] CERT");
    }
    if (optind != argc - 1)
        return tool_usage_error("usage: tessera cert load --slot N|--serial S [--pin-file F] [--label L] CERT");
    x = read_cert(argv[optind]);
    if (!x)
        return EX_USAGE;
    rc = tool_card_login(&cs, &ca, pin_file);
    if (rc == EX_OK)
        rc = load_cert(&cs.p, cs.h, x, label, id, &idlen);
    if (rc == EX_OK)
        tool_print_id("certificate loaded", id, idlen);
    X509_free(x);
    tool_card_logout(&cs);
    return rc;
}

int tool_load_ca_certs(struct tool_p11 *p, CK_SESSION_HANDLE h, const CK_TESSERA_CARD_INFO *info,
                       STACK_OF(X509) *cas)
{
    for (int i = 0; i < sk_X509_num(cas); i++) {
        X509 *x = sk_X509_value(cas, i);
        const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(x);
        uint8_t sha[20];
        char label[128] = "CA";
        CK_OBJECT_HANDLE added;
        if (info->cardType == CKT_TESSERA_PIV) {
            fprintf(stderr, "tessera: a PIV card has no place for CA certificates; %d not stored\n",
                    sk_X509_num(cas) - i);
            return EX_OK;
        }
        if (!skid)
            X509_pubkey_digest(x, EVP_sha1(), sha, NULL);
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, label, sizeof(label));
        CK_RV rv = tool_store_cert(p, h, x, skid ? ASN1_STRING_get0_data(skid) : sha,
                              skid ? (CK_ULONG)ASN1_STRING_length(skid) : 20, label, 2, &added);
        if (rv != CKR_OK)
            return tool_report(rv, "a CA certificate was not stored");
    }
    return EX_OK;
}

int cmd_cert_import_ca(int argc, char **argv)
{
    static const struct option opts[] = { TOOL_CARD_OPTIONS, PIN_OPTIONS, { 0, 0, 0, 0 } };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    const char *pin_file = NULL;
    struct tool_card_session cs = { 0 };
    STACK_OF(X509) *cas = sk_X509_new_null();
    int c, rc = EX_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'P')
            pin_file = optarg;
        else if (tool_card_opt(&ca, c, optarg))
            rc = EX_USAGE;
    }
    if (rc != EX_OK || optind >= argc) {
        sk_X509_free(cas);
        return tool_usage_error("usage: tessera cert import-ca --slot N|--serial S [--pin-file F] CERT...");
    }
    for (int i = optind; i < argc && rc == EX_OK; i++) {
        X509 *x = read_cert(argv[i]);
        if (!x || !sk_X509_push(cas, x)) {
            X509_free(x);
            rc = EX_USAGE;
        }
    }
    if (rc == EX_OK)
        rc = tool_card_login(&cs, &ca, pin_file);
    if (rc == EX_OK)
        rc = tool_load_ca_certs(&cs.p, cs.h, &cs.info, cas);
    if (rc == EX_OK && !tool_json)
        printf("CA certificates loaded: %d\n", sk_X509_num(cas));
    else if (rc == EX_OK)
        printf("{\"ca_certificates\":%d}\n", sk_X509_num(cas));
    sk_X509_pop_free(cas, X509_free);
    tool_card_logout(&cs);
    return rc;
}

/* A private key as a CKO_PRIVATE_KEY template (the module checks it and
 * takes the secret parts out at once). */
static CK_RV private_template(EVP_PKEY *pk, struct tess_attrs *a)
{
    CK_RV rv = tess_pkey_public_attrs(pk, a);
    if (rv == CKR_OK)
        rv = tess_attrs_set_ulong(a, CKA_CLASS, CKO_PRIVATE_KEY);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(a, CKA_TOKEN, true);
    tess_attrs_remove(a, CKA_EC_POINT);
    tess_attrs_remove(a, CKA_MODULUS_BITS);
    static const struct { CK_ATTRIBUTE_TYPE type; const char *param; } rsa[] = {
        { CKA_PRIVATE_EXPONENT, OSSL_PKEY_PARAM_RSA_D },     { CKA_PRIME_1, OSSL_PKEY_PARAM_RSA_FACTOR1 },
        { CKA_PRIME_2, OSSL_PKEY_PARAM_RSA_FACTOR2 },        { CKA_EXPONENT_1, OSSL_PKEY_PARAM_RSA_EXPONENT1 },
        { CKA_EXPONENT_2, OSSL_PKEY_PARAM_RSA_EXPONENT2 },   { CKA_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1 },
    };
    static const struct { CK_ATTRIBUTE_TYPE type; const char *param; } ec[] = { { CKA_VALUE, OSSL_PKEY_PARAM_PRIV_KEY } };
    bool is_rsa = EVP_PKEY_is_a(pk, "RSA");
    size_t n = is_rsa ? TESS_ARRAY_SIZE(rsa) : TESS_ARRAY_SIZE(ec);
    for (size_t i = 0; i < n && rv == CKR_OK; i++) {
        BIGNUM *bn = NULL;
        uint8_t buf[512];
        int len;
        if (!EVP_PKEY_get_bn_param(pk, is_rsa ? rsa[i].param : ec[i].param, &bn) || BN_num_bytes(bn) > (int)sizeof(buf))
            rv = CKR_KEY_TYPE_INCONSISTENT;
        else if ((len = BN_bn2bin(bn, buf)) >= 0)
            rv = tess_attrs_set(a, is_rsa ? rsa[i].type : ec[i].type, buf, (CK_ULONG)len);
        OPENSSL_cleanse(buf, sizeof(buf));
        BN_clear_free(bn);
    }
    return rv;
}

static CK_RV create_from(struct tool_p11 *p, CK_SESSION_HANDLE h, struct tess_attrs *a, CK_OBJECT_HANDLE *out)
{
    return p->f->C_CreateObject(h, a->v, (CK_ULONG)a->n, out);
}

/* The key from a PKCS#12 onto the card, with a public key object when the
 * card shows none for it (a PIV card shows its slots' own), its certificate
 * and its CA certificates. */
CK_ULONG tool_key_on_card(struct tool_p11 *p, CK_SESSION_HANDLE h, EVP_PKEY *pk, uint8_t id[TOOL_MAX_ID])
{
    char label[128];
    return key_id_for(p, h, pk, id, label, sizeof(label));
}

int tool_import_key(struct tool_p11 *p, CK_SESSION_HANDLE h, const CK_TESSERA_CARD_INFO *info, EVP_PKEY *pk,
                    X509 *cert, STACK_OF(X509) *cas, const uint8_t *id_opt, size_t id_opt_len, const char *label_opt,
                    bool say_id)
{
    struct tess_attrs priv = { 0 }, pub = { 0 };
    CK_OBJECT_HANDLE key, obj;
    uint8_t id[MAX_ID];
    CK_ULONG idlen = 0;
    char label[128] = "imported key";
    int rc = EX_FAIL;
    CK_RV rv;

    int alias_len = 0;
    const unsigned char *alias = cert ? X509_alias_get0(cert, &alias_len) : NULL;
    if (label_opt)
        snprintf(label, sizeof(label), "%s", label_opt);
    else if (alias)   /* the PKCS#12's friendly name */
        snprintf(label, sizeof(label), "%.*s", alias_len, (const char *)alias);
    else if (cert)
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, label, sizeof(label));
    /* The key already on the card (an import cut short, or run twice): go
     * on from there rather than put a second copy in. */
    char have_label[128] = "", hex[2 * MAX_ID + 1];
    idlen = key_id_for(p, h, pk, id, have_label, sizeof(have_label));
    if (idlen && (!id_opt_len || (id_opt_len == idlen && !memcmp(id, id_opt, idlen)))) {
        tess_hex(hex, id, idlen);
        fprintf(stderr, "tessera: the card already holds this key (id %s): completing its import\n", hex);
        if (!label_opt && have_label[0])
            snprintf(label, sizeof(label), "%s", have_label);
        goto have_key;
    }
    idlen = 0;
    rv = private_template(pk, &priv);
    if (rv == CKR_OK)
        rv = tess_attrs_set(&priv, CKA_LABEL, label, (CK_ULONG)strlen(label));
    if (rv == CKR_OK && id_opt_len)
        rv = tess_attrs_set(&priv, CKA_ID, id_opt, (CK_ULONG)id_opt_len);
    else if (rv == CKR_OK && info->cardType == CKT_TESSERA_PIV)
        rv = tess_attrs_set(&priv, CKA_ID, "\x03", 1);   /* 9D, key management: where an escrowed key goes */
    if (rv == CKR_OK)
        rv = create_from(p, h, &priv, &key);
    if (rv != CKR_OK) {
        rc = tool_report(rv, "the key was not imported");
        goto out;
    }
    CK_ATTRIBUTE q = { CKA_ID, id, sizeof(id) };
    if (p->f->C_GetAttributeValue(h, key, &q, 1) != CKR_OK || q.ulValueLen > MAX_ID) {
        rc = tool_report(CKR_GENERAL_ERROR, "the imported key has no id");
        goto out;
    }
    idlen = q.ulValueLen;
have_key:
    /* A PIV card shows a public key for each of its key slots itself. */
    if (info->cardType != CKT_TESSERA_PIV && !tool_find_objects(p, h, CKO_PUBLIC_KEY, id, idlen, &obj, 1)) {
        rv = tess_pkey_public_attrs(pk, &pub);
        if (rv == CKR_OK)
            rv = tess_attrs_set_ulong(&pub, CKA_CLASS, CKO_PUBLIC_KEY);
        if (rv == CKR_OK)
            rv = tess_attrs_set_bool(&pub, CKA_TOKEN, true);
        if (rv == CKR_OK)
            rv = tess_attrs_set(&pub, CKA_ID, id, idlen);
        if (rv == CKR_OK)
            rv = tess_attrs_set(&pub, CKA_LABEL, label, (CK_ULONG)strlen(label));
        if (rv == CKR_OK)
            rv = create_from(p, h, &pub, &obj);
        if (rv != CKR_OK) {
            rc = tool_report(rv, "the public key was not stored");
            goto out;
        }
    }
    if (cert && tool_store_cert(p, h, cert, id, idlen, label, 1, &obj) != CKR_OK) {
        rc = tool_report(CKR_GENERAL_ERROR, "the certificate was not stored");
        goto out;
    }
    rc = cas ? tool_load_ca_certs(p, h, info, cas) : EX_OK;
    if (rc == EX_OK && say_id)
        tool_print_id("key imported", id, idlen);
out:
    tess_attrs_free(&priv);
    tess_attrs_free(&pub);
    return rc;
}

int cmd_key_import(int argc, char **argv)
{
    static const struct option opts[] = { TOOL_CARD_OPTIONS, PIN_OPTIONS, { "p12", required_argument, 0, 'f' },
                                          { "p12-pass-file", required_argument, 0, 'W' },
                                          { "id", required_argument, 0, 'i' }, { "label", required_argument, 0, 'l' },
                                          { 0, 0, 0, 0 } };
    static const char use[] = "usage: tessera key import --slot N|--serial S --p12 FILE [--p12-pass-file F] "
                              "[--pin-file F] [--id HEX] [--label L]";
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    const char *pin_file = NULL, *p12_file = NULL, *pass_file = NULL, *label = NULL, *id_hex = NULL;
    struct tool_card_session cs = { 0 };
    uint8_t id[MAX_ID];
    size_t idlen = 0;
    char pass[256] = "";
    PKCS12 *p12 = NULL;
    EVP_PKEY *pk = NULL;
    X509 *cert = NULL;
    STACK_OF(X509) *cas = NULL;
    BIO *b = NULL;
    int c, rc = EX_OK;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'P': pin_file = optarg; break;
        case 'f': p12_file = optarg; break;
        case 'W': pass_file = optarg; break;
        case 'l': label = optarg; break;
        case 'i': id_hex = optarg; break;
        default:
            if (tool_card_opt(&ca, c, optarg))
                rc = EX_USAGE;
        }
    }
    if (rc != EX_OK || !p12_file || optind != argc || (id_hex && (tool_unhex(id_hex, id, sizeof(id), &idlen) || !idlen)))
        return tool_usage_error(use);
    b = BIO_new_file(p12_file, "rb");
    p12 = b ? d2i_PKCS12_bio(b, NULL) : NULL;
    if (!p12) {
        fprintf(stderr, "tessera: %s is not a PKCS#12 file\n", p12_file);
        rc = EX_USAGE;
        goto out;
    }
    if (tool_read_secret(pass_file, "PKCS#12 password", pass, sizeof(pass))) {
        rc = EX_USAGE;
        goto out;
    }
    if (!PKCS12_parse(p12, pass, &pk, &cert, &cas) || !pk) {
        fprintf(stderr, "tessera: cannot open %s: wrong password, or no key in it\n", p12_file);
        rc = EX_PIN;
        goto out;
    }
    rc = tool_card_login(&cs, &ca, pin_file);
    if (rc == EX_OK)
        rc = tool_import_key(&cs.p, cs.h, &cs.info, pk, cert, sk_X509_num(cas) > 0 ? cas : NULL, id, idlen, label, true);
out:
    tess_wipe(pass, sizeof(pass));
    EVP_PKEY_free(pk);
    X509_free(cert);
    sk_X509_pop_free(cas, X509_free);
    PKCS12_free(p12);
    BIO_free(b);
    tool_card_logout(&cs);
    return rc;
}
