/* The CA connector: which CA the database uses, and what every connector
 * shares. */
#include "config.h"
#include "ca.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>

int cms_ca_open(struct cms_db *db, struct cms_ca **out)
{
    char *kind = cms_meta_get(db, "ca.kind");
    int rc;
    *out = NULL;
    if (!kind)
        rc = cms_fail(db, CMS_NOTFOUND, "this database has no CA yet: 'tessera ca init' makes the embedded one, "
                                           "'tessera ca connect cfssl' uses a cfssl server");
    else if (!strcmp(kind, "local"))
        rc = cms_ca_local_open(db, out);
    else if (!strcmp(kind, "cfssl"))
        rc = cms_ca_cfssl_open(db, out);
    else
        rc = cms_fail(db, CMS_ERR, "this database uses a CA of kind '%s', which this Tessera does not know", kind);
    free(kind);
    return rc;
}

void cms_ca_close(struct cms_ca *ca)
{
    if (ca)
        ca->ops->close(ca);
}

int cms_ca_fail(struct cms_ca *ca, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ca->err, sizeof(ca->err), fmt, ap);
    va_end(ap);
    return rc;
}

void cms_ca_serial(const X509 *x, char *out, size_t outlen)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(out, outlen, "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
}

int cms_key_sha256(const EVP_PKEY *key, char out[65])
{
    unsigned char *der = NULL, md[32];
    int len = key ? i2d_PUBKEY(key, &der) : -1, ok;
    ok = len > 0 && EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_free(der);
    out[0] = '\0';
    if (!ok)
        return -1;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int cms_asn1_time_text(const ASN1_TIME *t, char out[32])
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return 0;
}

X509_NAME *cms_parse_dn(const char *text)
{
    X509_NAME *name = X509_NAME_new();
    char *copy = strdup(text), *save = NULL;
    bool ok = name && copy && text[0] == '/';
    for (char *rdn = ok ? strtok_r(copy, "/", &save) : NULL; rdn && ok; rdn = strtok_r(NULL, "/", &save)) {
        char *eq = strchr(rdn, '=');
        ok = eq && eq != rdn && eq[1];
        if (ok) {
            *eq = '\0';
            ok = X509_NAME_add_entry_by_txt(name, rdn, MBSTRING_UTF8, (const unsigned char *)eq + 1, -1, -1, 0) == 1;
        }
    }
    free(copy);
    if (ok && X509_NAME_entry_count(name) > 0)
        return name;
    X509_NAME_free(name);
    return NULL;
}
