/* The embedded CA: a CA kept by Tessera beside its database, with OpenSSL.
 *
 *   ca/ca.key   its private key (PKCS#8 PEM, 0600, in a 0700 folder)
 *   ca/ca.crt   its self-signed certificate
 *   ca/ca.db    its register: every certificate it issued, with the hash of
 *               its public key, and which are revoked (SQLite,
 *               synchronous=FULL: a certificate is in the register before
 *               the caller sees it)
 *   ca/crl.pem  the CRL, published again after every revocation
 *
 * A CA for an organisation's own cards where no CA server exists; a CA
 * server is reached through another connector of ca.h. */
#include "config.h"
#include "ca.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "../private_file.h"
#include "audit.h"
#include "profile.h"

#define CRL_DAYS 7   /* nextUpdate: a relying party fetches a new CRL at least weekly */

struct local_ca {
    char dir[4200];
    EVP_PKEY *key;
    X509 *cert;
    sqlite3 *reg;
    char crl_url[512];
};

static const char register_sql[] =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS issued ("
    "  serial TEXT PRIMARY KEY,"
    "  subject TEXT NOT NULL,"
    "  not_after TEXT NOT NULL,"
    "  der BLOB NOT NULL,"
    "  revoked TEXT,"
    "  reason INTEGER);"
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);";

void cms_ca_local_dir(const struct cms_db *db, char *out, size_t outlen)
{
    char copy[sizeof(db->path)];
    snprintf(copy, sizeof(copy), "%s", db->path);
    snprintf(out, outlen, "%s/ca", dirname(copy));
}

static void path_in(const struct local_ca *l, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", l->dir, name);
}

/* Write a file in the CA's folder whole or not at all: a temporary file,
 * flushed, then renamed over the old one. */
static int write_atomic(const char *path, int (*writer)(FILE *, const void *), const void *obj, char *err,
                        size_t errlen)
{
    char tmp[4300];
    FILE *f;
    int ok;
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    unlink(tmp);
    if (tess_private_file_create(tmp, err, errlen))
        return -1;
    f = fopen(tmp, "w");
    ok = f && writer(f, obj) && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int write_key(FILE *f, const void *k)
{
    return PEM_write_PrivateKey(f, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

static int write_cert(FILE *f, const void *x)
{
    return PEM_write_X509(f, (X509 *)x);
}

static int write_crl(FILE *f, const void *c)
{
    return PEM_write_X509_CRL(f, (X509_CRL *)c);
}

static EVP_PKEY *new_key(const char *type)
{
    if (!strcmp(type, "p256"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!strcmp(type, "p384"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    if (!strcmp(type, "rsa3072"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    if (!strcmp(type, "rsa4096"))
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
    return NULL;
}

/* A random positive serial of 16 bytes (RFC 5280: at most 20 octets). */
static int random_serial(X509 *x)
{
    uint8_t raw[16];
    BIGNUM *bn = NULL;
    int ok = RAND_bytes(raw, sizeof(raw)) == 1;
    raw[0] = (uint8_t)((raw[0] & 0x7f) | 0x01);   /* positive, and 16 bytes long */
    ok = ok && (bn = BN_bin2bn(raw, sizeof(raw), NULL)) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int sign_with(EVP_PKEY *key, X509 *x, X509_CRL *crl)
{
    /* SHA-384 with a P-384 key, SHA-256 otherwise. */
    const EVP_MD *md = EVP_PKEY_get_bits(key) == 384 ? EVP_sha384() : EVP_sha256();
    return (x ? X509_sign(x, key, md) : X509_CRL_sign(crl, key, md)) > 0 ? 0 : -1;
}

static int open_register(struct local_ca *l, char *err, size_t errlen)
{
    char path[4300];
    char *msg = NULL;
    sqlite3_stmt *st = NULL;
    path_in(l, "ca.db", path, sizeof(path));
    if (tess_private_file_create(path, err, errlen))
        return -1;
    if (sqlite3_open_v2(path, &l->reg, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s", path);
        return -1;
    }
    sqlite3_busy_timeout(l->reg, 15000);
    if (sqlite3_exec(l->reg, register_sql, NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    /* A register from before certificates were found by their key gets the
     * column (its older rows stay without: no enrolment asks for them). */
    if (sqlite3_prepare_v2(l->reg, "SELECT key_sha256 FROM issued LIMIT 0", -1, &st, NULL) != SQLITE_OK &&
        sqlite3_exec(l->reg, "ALTER TABLE issued ADD COLUMN key_sha256 TEXT", NULL, NULL, &msg) != SQLITE_OK) {
        /* Another process opening it added the column first. */
        sqlite3_free(msg);
        msg = NULL;
        if (sqlite3_prepare_v2(l->reg, "SELECT key_sha256 FROM issued LIMIT 0", -1, &st, NULL) != SQLITE_OK)
            goto fail;
    }
    sqlite3_finalize(st);
    if (sqlite3_exec(l->reg, "CREATE INDEX IF NOT EXISTS issued_key ON issued(key_sha256) "
                             "WHERE key_sha256 IS NOT NULL", NULL, NULL, &msg) != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", path, msg ? msg : "cannot set up");
    sqlite3_free(msg);
    return -1;
}

int cms_ca_local_create(struct cms_db *db, const struct cms_actor *by, const char *subject, const char *key_type,
                        int days, const char *crl_url, char *err, size_t errlen)
{
    struct local_ca l = { 0 };
    X509_NAME *name = cms_parse_dn(subject);
    X509 *x = X509_new();
    char path[4300], *kind = cms_meta_get(db, "ca.kind");
    int rc = CMS_ERR;

    cms_ca_local_dir(db, l.dir, sizeof(l.dir));
    if (kind) {
        snprintf(err, errlen, "this database has a CA already (%s)", kind);
        rc = CMS_EXISTS;
        goto out;
    }
    if (!name || days < 1) {
        snprintf(err, errlen, "the CA needs a subject /CN=.../O=... and a lifetime of at least one day");
        rc = CMS_INVALID;
        goto out;
    }
    l.key = new_key(key_type);
    if (!l.key) {
        snprintf(err, errlen, "CA key type must be p256, p384, rsa3072 or rsa4096");
        rc = CMS_INVALID;
        goto out;
    }
    if (!x || !X509_set_version(x, X509_VERSION_3) || random_serial(x) || !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, name) || !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) || !X509_set_pubkey(x, l.key) ||
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(x, x, NID_subject_key_identifier, "hash") || add_ext(x, x, NID_authority_key_identifier, "keyid") ||
        sign_with(l.key, x, NULL)) {
        snprintf(err, errlen, "cannot make the CA certificate");
        goto out;
    }
    /* Files first, then the database says it has a CA: a run killed in
     * between leaves files no certificate was issued with, which the next
     * ca init replaces. */
    path_in(&l, "ca.key", path, sizeof(path));
    if (write_atomic(path, write_key, l.key, err, errlen))
        goto out;
    path_in(&l, "ca.crt", path, sizeof(path));
    if (write_atomic(path, write_cert, x, err, errlen))
        goto out;
    path_in(&l, "ca.db", path, sizeof(path));
    unlink(path);   /* a register left by such a run: it issued nothing */
    if (open_register(&l, err, errlen))
        goto out;
    rc = cms_begin(db);
    if (rc == CMS_OK)
        rc = cms_meta_set(db, "ca.kind", "local");
    if (rc == CMS_OK)
        rc = cms_meta_set(db, "ca.crl-url", crl_url ? crl_url : "");
    if (rc == CMS_OK) {
        char detail[512], dn[256];
        X509_NAME_oneline(name, dn, sizeof(dn));
        snprintf(detail, sizeof(detail), "embedded CA %s, %s key, %d days%s%s", dn, key_type, days,
                 crl_url ? ", CRL at " : "", crl_url ? crl_url : "");
        struct cms_audit_rec rec = { .operator = by->name, .action = "ca.init", .result = "ok", .detail = detail };
        rc = cms_audit_append(db, &rec);
    }
    if (rc == CMS_OK)
        rc = cms_commit(db);
    else
        cms_rollback(db);
    if (rc != CMS_OK)
        snprintf(err, errlen, "%s", db->err);
out:
    free(kind);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(l.key);
    sqlite3_close(l.reg);
    return rc;
}

/* ---- the connector ---- */

static struct local_ca *impl(struct cms_ca *ca)
{
    return ca->impl;
}

/* keyUsage and extendedKeyUsage as the profile's key wants them. */
static int usage_exts(X509 *x, X509 *issuer, const struct cms_cert_request *req, EVP_PKEY *pub)
{
    char ku[96] = "critical", eku[96] = "";
    bool rsa = EVP_PKEY_is_a(pub, "RSA");
    if (req->sign)
        strcat(ku, ",digitalSignature");
    if (req->decrypt)
        strcat(ku, rsa ? ",keyEncipherment" : ",keyAgreement");
    if (req->eku & CMS_EKU_CLIENT_AUTH)
        strcat(eku, ",clientAuth");
    if (req->eku & CMS_EKU_EMAIL)
        strcat(eku, ",emailProtection");
    if (req->eku & CMS_EKU_SMARTCARD_LOGON)
        strcat(eku, ",msSmartcardLogin");
    if ((req->sign || req->decrypt) && add_ext(x, issuer, NID_key_usage, ku))
        return -1;
    return eku[0] ? add_ext(x, issuer, NID_ext_key_usage, eku + 1) : 0;
}

/* rfc822Name and the Microsoft UPN (an otherName holding a UTF8String). */
static int alt_names(X509 *x, const struct cms_cert_request *req)
{
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    int ok = names != NULL;
    if (ok && req->email && req->email[0]) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        ok = g && s && ASN1_STRING_set(s, req->email, -1);
        if (ok) {
            GENERAL_NAME_set0_value(g, GEN_EMAIL, s);
            s = NULL;
            ok = sk_GENERAL_NAME_push(names, g) > 0;
            if (ok)
                g = NULL;
        }
        ASN1_IA5STRING_free(s);
        GENERAL_NAME_free(g);
    }
    if (ok && req->upn && req->upn[0]) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_TYPE *v = ASN1_TYPE_new();
        ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();
        ok = g && v && s && ASN1_STRING_set(s, req->upn, -1);
        if (ok) {
            ASN1_TYPE_set(v, V_ASN1_UTF8STRING, s);
            s = NULL;
            ok = GENERAL_NAME_set0_othername(g, OBJ_nid2obj(NID_ms_upn), v);
            if (ok) {
                v = NULL;
                ok = sk_GENERAL_NAME_push(names, g) > 0;
                if (ok)
                    g = NULL;
            }
        }
        ASN1_UTF8STRING_free(s);
        ASN1_TYPE_free(v);
        GENERAL_NAME_free(g);
    }
    if (ok && sk_GENERAL_NAME_num(names) > 0)
        ok = X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(names);
    return ok ? 0 : -1;
}

static int register_add(struct local_ca *l, X509 *x)
{
    sqlite3_stmt *st = NULL;
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der), ok;
    char serial[64], subject[512], not_after[32], key[65];
    cms_ca_serial(x, serial, sizeof(serial));
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    ok = len > 0 && serial[0] && cms_asn1_time_text(X509_get0_notAfter(x), not_after) == 0 &&
         cms_key_sha256(X509_get0_pubkey(x), key) == 0 &&
         sqlite3_prepare_v2(l->reg, "INSERT INTO issued (serial, subject, not_after, der, key_sha256) "
                                    "VALUES (?, ?, ?, ?, ?)", -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, subject, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, not_after, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, der, len, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    OPENSSL_free(der);
    return ok ? 0 : -1;
}

static int local_enroll(struct cms_ca *ca, const struct cms_cert_request *req, X509 **out)
{
    struct local_ca *l = impl(ca);
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req->csr);
    X509 *x = NULL;
    char cdp[600];
    int rc = CMS_ERR;

    *out = NULL;
    /* A certificate is issued when it is in the register, the last step. */
    ca->none_valid = true;
    /* The request proves the card holds the key: nothing else is signed. */
    if (!pub || X509_REQ_verify(req->csr, pub) != 1)
        return cms_ca_fail(ca, CMS_INVALID, "the certification request's signature does not verify");
    if (req->lifetime_days < 1)
        return cms_ca_fail(ca, CMS_INVALID, "a certificate needs a lifetime of at least one day");
    x = X509_new();
    if (!x || !X509_set_version(x, X509_VERSION_3) || random_serial(x) ||
        !X509_set_subject_name(x, req->subject ? req->subject : X509_REQ_get_subject_name(req->csr)) ||
        !X509_set_issuer_name(x, X509_get_subject_name(l->cert)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), req->lifetime_days, 0, NULL) || !X509_set_pubkey(x, pub) ||
        add_ext(x, l->cert, NID_basic_constraints, "critical,CA:FALSE") || usage_exts(x, l->cert, req, pub) ||
        alt_names(x, req) || add_ext(x, l->cert, NID_subject_key_identifier, "hash") ||
        add_ext(x, l->cert, NID_authority_key_identifier, "keyid")) {
        rc = cms_ca_fail(ca, CMS_ERR, "cannot build the certificate");
        goto out;
    }
    if (l->crl_url[0]) {
        snprintf(cdp, sizeof(cdp), "URI:%s", l->crl_url);
        if (add_ext(x, l->cert, NID_crl_distribution_points, cdp)) {
            rc = cms_ca_fail(ca, CMS_ERR, "the CRL address '%s' does not fit a certificate", l->crl_url);
            goto out;
        }
    }
    if (sign_with(l->key, x, NULL) || register_add(l, x)) {
        rc = cms_ca_fail(ca, CMS_ERR, "cannot sign or register the certificate");
        goto out;
    }
    *out = x;
    x = NULL;
    rc = CMS_OK;
out:
    X509_free(x);
    return rc;
}

static int64_t next_crl_number(struct local_ca *l)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(l->reg,
                           "INSERT INTO counters (name, value) VALUES ('crl', 1) "
                           "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int revoked_entry(X509_CRL *crl, const char *serial, const char *when, int reason)
{
    X509_REVOKED *r = X509_REVOKED_new();
    BIGNUM *bn = NULL;
    ASN1_INTEGER *num = NULL;
    ASN1_TIME *t = ASN1_TIME_new();
    ASN1_ENUMERATED *why = ASN1_ENUMERATED_new();
    int ok = r && t && why && BN_hex2bn(&bn, serial) && (num = BN_to_ASN1_INTEGER(bn, NULL)) &&
             X509_REVOKED_set_serialNumber(r, num) && ASN1_TIME_set_string_X509(t, when) == 1 &&
             X509_REVOKED_set_revocationDate(r, t) && ASN1_ENUMERATED_set(why, reason) &&
             X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, why, 0, 0) == 1 && X509_CRL_add0_revoked(crl, r);
    if (ok)
        r = NULL;
    X509_REVOKED_free(r);
    BN_free(bn);
    ASN1_INTEGER_free(num);
    ASN1_TIME_free(t);
    ASN1_ENUMERATED_free(why);
    return ok ? 0 : -1;
}

/* A new CRL of every revoked certificate not yet expired, written to
 * crl.pem; the caller gets it too when out is given. */
static int publish_crl(struct cms_ca *ca, X509_CRL **out)
{
    struct local_ca *l = impl(ca);
    X509_CRL *crl = X509_CRL_new();
    ASN1_INTEGER *number = ASN1_INTEGER_new();
    ASN1_TIME *now = ASN1_TIME_new(), *next = ASN1_TIME_new();
    sqlite3_stmt *st = NULL;
    char path[4300], today[32], err[256];
    int64_t crl_number = next_crl_number(l);
    int rc = CMS_ERR, s;

    cms_time_text((int64_t)time(NULL), today);
    if (!crl || !number || !now || !next || crl_number < 1 || !X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
        !X509_CRL_set_issuer_name(crl, X509_get_subject_name(l->cert)) || !X509_gmtime_adj(now, 0) ||
        !X509_time_adj_ex(next, CRL_DAYS, 0, NULL) || !X509_CRL_set1_lastUpdate(crl, now) ||
        !X509_CRL_set1_nextUpdate(crl, next) || !ASN1_INTEGER_set_int64(number, crl_number) ||
        X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) != 1 ||
        sqlite3_prepare_v2(l->reg, "SELECT serial, revoked, reason FROM issued WHERE revoked IS NOT NULL "
                                   "AND not_after > ? ORDER BY revoked, serial", -1, &st, NULL) != SQLITE_OK) {
        rc = cms_ca_fail(ca, CMS_ERR, "cannot start a CRL");
        goto out;
    }
    sqlite3_bind_text(st, 1, today, -1, SQLITE_STATIC);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        char when[20];
        int64_t t;
        /* Stored as ISO 8601; a CRL wants GeneralizedTime YYYYMMDDHHMMSSZ. */
        if (cms_time_parse((const char *)sqlite3_column_text(st, 1), &t)) {
            s = SQLITE_ERROR;
            break;
        }
        struct tm tm;
        time_t tt = (time_t)t;
        gmtime_r(&tt, &tm);
        strftime(when, sizeof(when), "%Y%m%d%H%M%SZ", &tm);
        if (revoked_entry(crl, (const char *)sqlite3_column_text(st, 0), when, sqlite3_column_int(st, 2))) {
            s = SQLITE_ERROR;
            break;
        }
    }
    if (s != SQLITE_DONE) {
        rc = cms_ca_fail(ca, CMS_ERR, "cannot read the register for the CRL");
        goto out;
    }
    X509_CRL_sort(crl);
    {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, l->cert, NULL, NULL, crl, 0);
        X509_EXTENSION *aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid");
        int ok = aki && X509_CRL_add_ext(crl, aki, -1);
        X509_EXTENSION_free(aki);
        if (!ok || sign_with(l->key, NULL, crl)) {
            rc = cms_ca_fail(ca, CMS_ERR, "cannot sign the CRL");
            goto out;
        }
    }
    path_in(l, "crl.pem", path, sizeof(path));
    if (write_atomic(path, write_crl, crl, err, sizeof(err))) {
        rc = cms_ca_fail(ca, CMS_ERR, "%s", err);
        goto out;
    }
    if (out) {
        *out = crl;
        crl = NULL;
    }
    rc = CMS_OK;
out:
    sqlite3_finalize(st);
    X509_CRL_free(crl);
    ASN1_INTEGER_free(number);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    return rc;
}

static int local_revoke(struct cms_ca *ca, const char *serial, int reason)
{
    struct local_ca *l = impl(ca);
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc = CMS_ERR, changed = 0, found = 0;

    cms_time_text((int64_t)time(NULL), now);
    /* Revoked stays revoked; only a hold changes, to a final reason or
     * (reason -1) back to good. */
    const char *sql = reason < 0 ? "UPDATE issued SET revoked = NULL, reason = NULL WHERE serial = ?1 AND reason = 6"
                                 : "UPDATE issued SET revoked = ?2, reason = ?3 "
                                   "WHERE serial = ?1 AND (revoked IS NULL OR (reason = 6 AND ?3 != 6))";
    if (sqlite3_prepare_v2(l->reg, sql, -1, &st, NULL) != SQLITE_OK)
        return cms_ca_fail(ca, CMS_ERR, "register: %s", sqlite3_errmsg(l->reg));
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    if (reason >= 0) {
        sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, reason);
    }
    if (sqlite3_step(st) == SQLITE_DONE)
        changed = sqlite3_changes(l->reg);
    else
        rc = cms_ca_fail(ca, CMS_ERR, "register: %s", sqlite3_errmsg(l->reg));
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(l->reg, "SELECT 1 FROM issued WHERE serial = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    if (!found)
        return cms_ca_fail(ca, CMS_NOTFOUND, "this CA issued no certificate with serial %s", serial);
    rc = changed ? publish_crl(ca, NULL) : CMS_OK;
    return rc;
}

static int local_find_by_key(struct cms_ca *ca, const char *key_sha256, int (*cb)(void *arg, const char *serial),
                             void *arg)
{
    struct local_ca *l = impl(ca);
    sqlite3_stmt *st = NULL;
    int rc = CMS_OK, step = SQLITE_DONE;
    if (sqlite3_prepare_v2(l->reg, "SELECT serial FROM issued WHERE key_sha256 = ? ORDER BY rowid DESC", -1, &st,
                           NULL) != SQLITE_OK)
        return cms_ca_fail(ca, CMS_ERR, "register: %s", sqlite3_errmsg(l->reg));
    sqlite3_bind_text(st, 1, key_sha256, -1, SQLITE_STATIC);
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, (const char *)sqlite3_column_text(st, 0));
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_ca_fail(ca, CMS_ERR, "register: %s", sqlite3_errmsg(l->reg));
    sqlite3_finalize(st);
    return rc;
}

static int local_crl(struct cms_ca *ca, X509_CRL **out)
{
    return publish_crl(ca, out);
}

static int local_certificate(struct cms_ca *ca, X509 **out)
{
    *out = X509_dup(impl(ca)->cert);
    return *out ? CMS_OK : cms_ca_fail(ca, CMS_ERR, "out of memory");
}

static void local_close(struct cms_ca *ca)
{
    struct local_ca *l = impl(ca);
    if (l) {
        EVP_PKEY_free(l->key);
        X509_free(l->cert);
        sqlite3_close(l->reg);
        free(l);
    }
    free(ca);
}

static const struct cms_ca_ops local_ops = {
    .kind = "local",
    .lifts_hold = true,
    .enroll = local_enroll,
    .revoke = local_revoke,
    .find_by_key = local_find_by_key,
    .crl = local_crl,
    .certificate = local_certificate,
    .close = local_close,
};

int cms_ca_local_open(struct cms_db *db, struct cms_ca **out)
{
    struct cms_ca *ca = calloc(1, sizeof(*ca));
    struct local_ca *l = calloc(1, sizeof(*l));
    char path[4300], err[512], *url = cms_meta_get(db, "ca.crl-url"), subject[96];
    FILE *f = NULL;
    int rc = CMS_ERR;

    *out = NULL;
    if (!ca || !l) {
        free(ca);
        free(l);
        free(url);
        return cms_fail(db, CMS_ERR, "out of memory");
    }
    ca->ops = &local_ops;
    ca->impl = l;
    cms_ca_local_dir(db, l->dir, sizeof(l->dir));
    snprintf(l->crl_url, sizeof(l->crl_url), "%s", url ? url : "");
    path_in(l, "ca.key", path, sizeof(path));
    if ((f = fopen(path, "r")))
        l->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    if (f)
        fclose(f);
    path_in(l, "ca.crt", path, sizeof(path));
    if ((f = fopen(path, "r")))
        l->cert = PEM_read_X509(f, NULL, NULL, NULL);
    if (f)
        fclose(f);
    if (!l->key || !l->cert || X509_check_private_key(l->cert, l->key) != 1) {
        rc = cms_fail(db, CMS_ERR, "the embedded CA's key or certificate in %s is missing or does not match", l->dir);
        goto out;
    }
    if (open_register(l, err, sizeof(err))) {
        rc = cms_fail(db, CMS_ERR, "%s", err);
        goto out;
    }
    X509_NAME_oneline(X509_get_subject_name(l->cert), subject, sizeof(subject));
    snprintf(ca->name, sizeof(ca->name), "local:%s", subject);
    *out = ca;
    ca = NULL;
    rc = CMS_OK;
out:
    free(url);
    if (ca)
        local_close(ca);
    return rc;
}
