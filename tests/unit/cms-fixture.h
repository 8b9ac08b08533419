/* What the card-management unit tests share: a scratch directory, files
 * written into it, a database with the embedded CA, a holder (jdoe) and a
 * TPM profile (vsc), an active card as collect leaves it, and the CA's CRL
 * counted. Static inline: each test includes what it uses. */
#ifndef TESSERA_TESTS_CMS_FIXTURE_H
#define TESSERA_TESTS_CMS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "src/cms/ca.h"
#include "src/cms/cards.h"
#include "src/cms/holders.h"
#include "src/cms/profile.h"
#include "tests/tap.h"

static char dir[256];
static struct cms_actor admin = { "alice", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER, true };

/* A new scratch directory, under TESSERA_TEST_DIR when set. */
static inline void fixture_dir(const char *name)
{
    const char *base = getenv("TESSERA_TEST_DIR") ? getenv("TESSERA_TEST_DIR") : "/tmp";
    snprintf(dir, sizeof(dir), "%s/%s-XXXXXX", base, name);
    if (!mkdtemp(dir))
        bail_out("mkdtemp");
}

static inline void write_file(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f))
        bail_out("cannot write a file");
}

/* A database in a new scratch directory with the embedded CA, holder jdoe
 * and profile vsc (TPM cards, one P-256 key, temporary cards for 3 days). */
static inline struct cms_db *fixture_open(const char *name, struct cms_ca **ca)
{
    char path[400], err[256];
    struct cms_import_counts counts;
    struct cms_db *db = NULL;
    int version;
    bool unchanged;

    fixture_dir(name);
    snprintf(path, sizeof(path), "%s/cms.db", dir);
    if (cms_open(path, true, &db, err, sizeof(err)) != CMS_OK ||
        cms_ca_local_create(db, &admin, "/CN=Test CA", "p256", 365, NULL, err, sizeof(err)) != CMS_OK ||
        cms_ca_open(db, ca) != CMS_OK)
        bail_out("no database or CA");
    write_file("h.csv", "uid,name,email\njdoe,Jane Doe,jane@example.org\n", path, sizeof(path));
    ok(cms_holders_import(db, &admin, path, CMS_HOLDERS_CSV, &counts) == CMS_OK, "a holder");
    write_file("p.ini",
               "[profile]\nname = vsc\ncard-types = tpm\n[admin-key]\nmaster-file = /nonexistent\n[key auth]\n"
               "type = p256\nusage = sign\ncertificate = client-auth\nsubject = /CN=${name}\nlifetime-days = 30\n"
               "[lifecycle]\ntemporary-card-days = 3\n",
               path, sizeof(path));
    ok(cms_profile_import(db, &admin, path, &version, &unchanged) == CMS_OK, "a profile");
    return db;
}

/* The first column of the first row of a query (-1: none). */
static inline int64_t sql_count(struct cms_db *db, const char *sql)
{
    sqlite3_stmt *st = cms_prepare(db, sql);
    int64_t n = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static inline int crl_count(struct cms_ca *ca)
{
    X509_CRL *crl = NULL;
    int n = -1;
    if (ca->ops->crl(ca, &crl) == CMS_OK) {
        STACK_OF(X509_REVOKED) *r = X509_CRL_get_REVOKED(crl);
        n = r ? sk_X509_REVOKED_num(r) : 0;
    }
    X509_CRL_free(crl);
    return n;
}

/* An active card of jdoe whose key (given) the CA certified, recorded with
 * its archive when one is given (as collect does for an escrowed key), as
 * collect leaves it on device laptop.example (serial given); the
 * certificate in *cert (caller frees). */
static inline int64_t active_card_of(struct cms_db *db, struct cms_ca *ca, const char *serial, EVP_PKEY *key,
                                     const struct cms_escrow_archive *archive, X509 **cert)
{
    struct cms_request r = { "jdoe", "vsc", "tpm", NULL, 14, 0, 0 };
    char code[CMS_CODE_LEN];
    int64_t card_id = 0, job_id;
    struct cms_job job;
    struct cms_card card;
    X509_REQ *csr = X509_REQ_new();
    X509_NAME *subject = cms_parse_dn("/CN=Jane Doe");
    X509_REQ_set_pubkey(csr, key);
    X509_REQ_sign(csr, key, EVP_sha256());
    struct cms_cert_request req = { .csr = csr, .subject = subject, .lifetime_days = 30, .eku = CMS_EKU_CLIENT_AUTH,
                                    .sign = true };
    *cert = NULL;
    if (cms_card_request(db, &admin, &r, code, &card_id, &job_id) != CMS_OK ||
        cms_collect_claim(db, code, "laptop.example", &job, &card) != CMS_OK ||
        cms_job_step(db, &job, &card, "serial", serial, NULL, NULL) != CMS_OK ||
        cms_card_get(db, card_id, NULL, &card) != CMS_OK || ca->ops->enroll(ca, &req, cert) != CMS_OK ||
        cms_cert_record(db, &card, "auth", ca->name, *cert, archive) != CMS_OK ||
        cms_collect_finish(db, &job, &card, "test") != CMS_OK)
        card_id = 0;
    X509_NAME_free(subject);
    X509_REQ_free(csr);
    return card_id;
}

/* The same with a P-256 key of its own and no archive. */
static inline int64_t active_card(struct cms_db *db, struct cms_ca *ca, const char *serial)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = NULL;
    int64_t card_id = active_card_of(db, ca, serial, key, NULL, &cert);
    X509_free(cert);
    EVP_PKEY_free(key);
    return card_id;
}

#endif
