/* The embedded CA behind the connector table (enrol from a request, what a
 * certificate carries, revoke, holds, the CRL) and the database side of
 * request and collect (codes, wrong tries, expiry, devices, undo). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "src/cms/ca.h"
#include "src/cms/cards.h"
#include "src/cms/holders.h"
#include "src/cms/profile.h"
#include "tests/tap.h"
#include "tests/unit/cms-fixture.h"

static struct cms_db *fresh(const char *name)
{
    char path[320], err[256];
    struct cms_db *db = NULL;
    snprintf(path, sizeof(path), "%s/%s/cms.db", dir, name);
    if (cms_open(path, true, &db, err, sizeof(err)) != CMS_OK)
        bail_out(err);
    return db;
}

/* A request signed by a software key, as a card would sign one. */
static X509_REQ *make_csr(EVP_PKEY *key, const char *cn)
{
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_REQ_get_subject_name(req);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    X509_REQ_sign(req, key, EVP_sha256());
    return req;
}

static bool has_eku(X509 *x, int nid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(x, NID_ext_key_usage, NULL, NULL);
    bool found = false;
    for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku); i++)
        found |= OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) == nid;
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

static void test_ca(void)
{
    struct cms_db *db = fresh("ca");
    struct cms_ca *ca = NULL;
    char err[512], serial[80];
    ok(cms_ca_open(db, &ca) == CMS_NOTFOUND, "no CA before ca init: %s", db->err);
    ok(cms_ca_local_create(db, &admin, "CN=no slash", "p256", 365, NULL, err, sizeof(err)) == CMS_INVALID,
       "a subject that is not /TYPE=value is refused");
    ok(cms_ca_local_create(db, &admin, "/CN=Test CA", "ed448", 365, NULL, err, sizeof(err)) == CMS_INVALID,
       "an unknown key type is refused");
    ok(cms_ca_local_create(db, &admin, "/CN=Test CA/O=Example", "p384", 365, "http://crl.example/ca.crl", err,
                           sizeof(err)) == CMS_OK,
       "an embedded CA (P-384)");
    ok(cms_ca_local_create(db, &admin, "/CN=Other", "p256", 365, NULL, err, sizeof(err)) == CMS_EXISTS,
       "  a second one is refused");
    ok(cms_ca_open(db, &ca) == CMS_OK && !strcmp(ca->ops->kind, "local"), "opened through the connector");

    X509 *ca_cert = NULL;
    ok(ca->ops->certificate(ca, &ca_cert) == CMS_OK && X509_check_ca(ca_cert) > 0, "  its certificate is a CA's");

    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509_REQ *csr = make_csr(key, "ignored");
    X509_NAME *subject = cms_parse_dn("/CN=Jane Doe/O=Example");
    struct cms_cert_request req = {
        .csr = csr, .subject = subject, .lifetime_days = 30, .eku = CMS_EKU_CLIENT_AUTH | CMS_EKU_SMARTCARD_LOGON,
        .sign = true, .email = "jane@example.org", .upn = "jane@example.org",
    };
    X509 *cert = NULL;
    ok(ca->ops->enroll(ca, &req, &cert) == CMS_OK, "enrol from a request");
    EVP_PKEY *ca_key = X509_get0_pubkey(ca_cert);
    ok(cert && X509_verify(cert, ca_key) == 1, "  the certificate is signed by the CA");
    ok(X509_NAME_cmp(X509_get_subject_name(cert), subject) == 0, "  with the profile's subject, not the request's");
    ok(EVP_PKEY_eq(X509_get0_pubkey(cert), key) == 1, "  and the request's key");
    ok(has_eku(cert, NID_client_auth) && has_eku(cert, NID_ms_smartcard_login) && !has_eku(cert, NID_email_protect),
       "  client auth and smart-card logon");
    ok((X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE) && !(X509_get_key_usage(cert) & KU_KEY_AGREEMENT),
       "  key usage: digital signature only");
    ok(X509_check_ca(cert) == 0, "  not a CA");
    STACK_OF(DIST_POINT) *cdp = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
    ok(cdp && sk_DIST_POINT_num(cdp) == 1, "  the CRL distribution point");
    sk_DIST_POINT_pop_free(cdp, DIST_POINT_free);
    ASN1_TIME *in31 = X509_time_adj_ex(NULL, 31, 0, NULL);
    ok(ASN1_TIME_compare(X509_get0_notAfter(cert), in31) < 0, "  for 30 days");
    ASN1_TIME_free(in31);

    /* A request whose signature does not match its key proves nothing. */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509_REQ *forged = make_csr(key, "x");
    X509_REQ_set_pubkey(forged, other);
    struct cms_cert_request bad = req;
    bad.csr = forged;
    X509 *none = NULL;
    ok(ca->ops->enroll(ca, &bad, &none) == CMS_INVALID && !none, "a request that does not verify is refused: %s",
       ca->err);

    cms_ca_serial(cert, serial, sizeof(serial));
    ok(crl_count(ca) == 0, "the CRL lists nothing yet");
    ok(ca->ops->revoke(ca, serial, CMS_REVOKE_HOLD) == CMS_OK && crl_count(ca) == 1, "a hold lists it");
    ok(ca->ops->revoke(ca, serial, -1) == CMS_OK && crl_count(ca) == 0, "  released, it is gone again");
    ok(ca->ops->revoke(ca, serial, CMS_REVOKE_KEY_COMPROMISE) == CMS_OK && crl_count(ca) == 1, "revoked");
    ok(ca->ops->revoke(ca, serial, CMS_REVOKE_KEY_COMPROMISE) == CMS_OK && crl_count(ca) == 1,
       "  revoking again is no error (a job may repeat its step)");
    ok(ca->ops->revoke(ca, serial, -1) == CMS_OK && crl_count(ca) == 1, "  a revocation is not lifted as a hold is");
    ok(ca->ops->revoke(ca, "0123", CMS_REVOKE_CESSATION) == CMS_NOTFOUND, "a serial the CA never issued: not found");

    X509_CRL *crl = NULL;
    ok(ca->ops->crl(ca, &crl) == CMS_OK && X509_CRL_verify(crl, ca_key) == 1, "the CRL is signed by the CA");
    ASN1_INTEGER *n1 = crl ? X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL) : NULL;
    X509_CRL *crl2 = NULL;
    ca->ops->crl(ca, &crl2);
    ASN1_INTEGER *n2 = crl2 ? X509_CRL_get_ext_d2i(crl2, NID_crl_number, NULL, NULL) : NULL;
    ok(n1 && n2 && ASN1_INTEGER_get(n2) == ASN1_INTEGER_get(n1) + 1, "  each CRL has the next number");
    char crl_path[400];
    cms_ca_local_dir(db, crl_path, sizeof(crl_path));
    strcat(crl_path, "/crl.pem");
    ok(access(crl_path, R_OK) == 0, "  published as crl.pem");

    ASN1_INTEGER_free(n1);
    ASN1_INTEGER_free(n2);
    X509_CRL_free(crl);
    X509_CRL_free(crl2);
    X509_free(cert);
    X509_free(ca_cert);
    X509_REQ_free(csr);
    X509_REQ_free(forged);
    X509_NAME_free(subject);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    cms_ca_close(ca);
    cms_close(db);
}

static int request(struct cms_db *db, const char *type, const char *device, int days, char *code, int64_t *card_id,
                   int64_t *job_id)
{
    struct cms_request r = { "jdoe", "both", type, device, days, 0, 0 };
    return cms_card_request(db, &admin, &r, code, card_id, job_id);
}

static void test_request_collect(void)
{
    struct cms_db *db = fresh("cards");
    char path[400], code[CMS_CODE_LEN], wrong[CMS_CODE_LEN];
    int64_t card_id, job_id;
    struct cms_import_counts counts;
    struct cms_job job;
    struct cms_card card;
    int version;
    bool unchanged;

    write_file("h.csv", "uid,name,email\njdoe,Jane Doe,jane@example.org\n", path, sizeof(path));
    ok(cms_holders_import(db, &admin, path, CMS_HOLDERS_CSV, &counts) == CMS_OK, "a holder");
    write_file("p.ini",
               "[profile]\nname = both\ncard-types = tpm, piv\n[pin]\nmin-length = 6\nmax-length = 8\n"
               "[admin-key]\nmaster-file = /nonexistent\n[key auth]\ntype = p256\npiv-slot = 9a\nusage = sign\n"
               "certificate = client-auth\nsubject = /CN=${name}/UID=${uid}\nlifetime-days = 30\n",
               path, sizeof(path));
    ok(cms_profile_import(db, &admin, path, &version, &unchanged) == CMS_OK, "a profile for TPM and PIV cards");
    ok(request(db, NULL, NULL, 14, code, &card_id, &job_id) == CMS_INVALID,
       "a profile for two card types wants the type named: %s", db->err);
    ok(request(db, "tpm", "nowhere.example", 14, code, &card_id, &job_id) ==
           CMS_NOTFOUND,
       "an unknown device: not found");
    ok(request(db, "tpm", NULL, 0, code, &card_id, &job_id) == CMS_INVALID,
       "a code valid for 0 days is refused");
    ok(request(db, "tpm", NULL, 14, code, &card_id, &job_id) == CMS_OK,
       "a TPM card requested");
    ok(strlen(code) == 23 && code[5] == '-' && code[11] == '-' && code[17] == '-', "  code %s", code);
    ok(cms_card_get(db, card_id, NULL, &card) == CMS_OK && !strcmp(card.state, "requested") && !card.serial[0],
       "  the card is requested, without a serial yet");

    snprintf(wrong, sizeof(wrong), "%s", code);
    wrong[22] = wrong[22] == 'Z' ? 'Y' : 'Z';
    ok(cms_collect_claim(db, wrong, "laptop.example", &job, &card) == CMS_DENIED, "a wrong code: %s", db->err);
    ok(cms_collect_claim(db, "ABC", "laptop.example", &job, &card) == CMS_INVALID, "a code of the wrong shape");

    /* Typed as a person might: lower case, O for 0, spaces for dashes. */
    char typed[CMS_CODE_LEN];
    for (size_t i = 0; i < strlen(code); i++)
        typed[i] = code[i] == '-' ? ' ' : code[i] == '0' ? 'o' : (char)(code[i] | 0x20);
    typed[strlen(code)] = '\0';
    ok(cms_collect_claim(db, typed, "laptop.example", &job, &card) == CMS_OK && !strcmp(job.state, "running") &&
           !strcmp(job.step, "claimed"),
       "the code typed loosely claims the job");
    ok(!strcmp(card.device, "laptop.example"), "  the card is bound to the device it is collected on");
    ok(cms_collect_claim(db, code, "laptop.example", &job, &card) == CMS_OK, "  a running job claimed again by "
       "this process (its owner: we are alive, but it is us)");
    ok(cms_job_step(db, &job, &card, "serial", "00aa00aa00aa00aa", NULL, NULL) == CMS_OK, "a step with a serial");
    ok(cms_card_get(db, 0, "00aa00aa00aa00aa", &card) == CMS_OK, "  the card is found by it");
    ok(cms_collect_undone(db, &job, &card, true, "test") == CMS_OK, "undone, back to pending");
    ok(cms_card_get(db, card_id, NULL, &card) == CMS_OK && !card.serial[0], "  the TPM card forgot its serial");
    ok(cms_collect_claim(db, code, "other.example", &job, &card) == CMS_DENIED,
       "  now bound to laptop.example: another device is refused");
    ok(cms_collect_claim(db, code, "LAPTOP.example", &job, &card) == CMS_OK, "  its name in any case is the same");
    ok(cms_collect_finish(db, &job, &card, "test") == CMS_OK, "finished");
    ok(cms_card_get(db, card_id, NULL, &card) == CMS_OK && !strcmp(card.state, "active"), "  the card is active");
    ok(cms_collect_claim(db, code, "laptop.example", &job, &card) == CMS_DENIED, "  the code is gone");

    ok(request(db, "piv", NULL, 14, code, &card_id, &job_id) == CMS_OK,
       "a PIV card requested");
    for (int i = 0; i < CMS_CODE_TRIES; i++) {
        snprintf(wrong, sizeof(wrong), "%s", code);
        wrong[22] = (char)(wrong[22] == 'Z' ? 'Y' : 'Z');
        wrong[21] = (char)('A' + i);
        cms_collect_claim(db, wrong, "laptop.example", &job, &card);
    }
    ok(strstr(db->err, "void") != NULL, "five wrong codes: %s", db->err);
    ok(cms_collect_claim(db, code, "laptop.example", &job, &card) == CMS_DENIED, "  the right one no longer works");
    ok(cms_card_get(db, card_id, NULL, &card) == CMS_OK && !strcmp(card.state, "cancelled"), "  the card is cancelled");

    struct cms_holder h = { 0 };
    char err[256];
    ok(cms_holder_get(db, "jdoe", &h) == CMS_OK, "the holder");
    X509_NAME *n = cms_subject_build("/CN=${name}/OU=A/B/UID=${uid}", &h, err, sizeof(err));
    char text[256] = "";
    if (n)
        X509_NAME_oneline(n, text, sizeof(text));
    ok(n == NULL, "a template whose RDN has no '=' is refused: %s", err);
    X509_NAME_free(n);
    n = cms_subject_build("/CN=${name}/UID=${uid}", &h, err, sizeof(err));
    if (n)
        X509_NAME_oneline(n, text, sizeof(text));
    ok(n && !strcmp(text, "/CN=Jane Doe/UID=jdoe"), "a subject built from her attributes: %s", text);
    X509_NAME_free(n);
    n = cms_subject_build("/CN=${name}/title=${title}", &h, err, sizeof(err));
    ok(!n && strstr(err, "title"), "  an attribute she lacks is named: %s", err);
    X509_NAME_free(n);
    cms_holder_clear(&h);
    cms_close(db);
}

int main(void)
{
    plan_lazy();
    fixture_dir("cms-ca-unit");
    test_ca();
    test_request_collect();
    return done_testing();
}
