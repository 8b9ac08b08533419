/* Enrolments in flight (src/cms/enrolment.h): a request recorded before it
 * goes to the CA, closed by the certificate's record; settled, the
 * certificates the embedded CA issued for an open one's key and the
 * database never recorded are revoked, the recorded ones left alone; a CA
 * that cannot be searched leaves an audited "unchecked". The embedded CA's
 * register from before key hashes gets the column. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include <openssl/evp.h>

#include "src/cms/audit.h"
#include "src/cms/ca.h"
#include "src/cms/cards.h"
#include "src/cms/enrolment.h"
#include "tests/tap.h"
#include "tests/unit/cms-fixture.h"

static X509_REQ *csr_for(EVP_PKEY *key)
{
    X509_REQ *csr = X509_REQ_new();
    X509_REQ_set_pubkey(csr, key);
    X509_REQ_sign(csr, key, EVP_sha256());
    return csr;
}

/* The CA's answer to a request for key (caller frees). */
static X509 *enroll(struct cms_ca *ca, X509_REQ *csr)
{
    X509_NAME *subject = cms_parse_dn("/CN=Jane Doe");
    struct cms_cert_request req = { .csr = csr, .subject = subject, .lifetime_days = 30, .sign = true };
    X509 *x = NULL;
    if (ca->ops->enroll(ca, &req, &x) != CMS_OK)
        x = NULL;
    X509_NAME_free(subject);
    return x;
}

static bool in_crl(struct cms_ca *ca, X509 *x)
{
    X509_CRL *crl = NULL;
    X509_REVOKED *r = NULL;
    bool found = ca->ops->crl(ca, &crl) == CMS_OK && X509_CRL_get0_by_serial(crl, &r,
                                                                            X509_get0_serialNumber(x)) == 1;
    X509_CRL_free(crl);
    return found;
}

static void test_settle(void)
{
    struct cms_ca *ca = NULL;
    struct cms_db *db = fixture_open("cms-enrolment-unit", &ca);
    EVP_PKEY *a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
             *c = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *b_cert = NULL;
    int64_t card_id = active_card_of(db, ca, "00aa00aa00aa00aa", b, NULL, &b_cert), id_a, id_b, id_c;
    struct cms_card card;
    struct cms_enrolments_settled settled;

    ok(card_id && cms_card_get(db, card_id, NULL, &card) == CMS_OK, "an active card, its key B certified");
    ok(sql_count(db, "SELECT count(*) FROM enrolments") == 0, "  no enrolment open: none was begun");

    /* Key A: asked, answered, never recorded (the process killed). */
    X509_REQ *csr_a = csr_for(a), *csr_b = csr_for(b), *csr_c = csr_for(c);
    ok(cms_enrolment_begin(db, &card, "enc", ca->name, csr_a, &id_a) == CMS_OK, "an enrolment for key A");
    X509 *a_cert = enroll(ca, csr_a);
    ok(a_cert != NULL, "  the CA answers it");
    /* Key B again (a PIV slot renewed in place): the new one not recorded. */
    ok(cms_enrolment_begin(db, &card, "auth", ca->name, csr_b, &id_b) == CMS_OK, "an enrolment for key B again");
    X509 *b_again = enroll(ca, csr_b);
    ok(b_again != NULL, "  the CA answers it");
    /* Key C: asked, then recorded: the record closes it. */
    ok(cms_enrolment_begin(db, &card, "sig", ca->name, csr_c, &id_c) == CMS_OK, "an enrolment for key C");
    X509 *c_cert = enroll(ca, csr_c);
    ok(c_cert && cms_cert_record(db, &card, "sig", ca->name, c_cert, NULL) == CMS_OK, "  answered and recorded");
    ok(sql_count(db, "SELECT count(*) FROM enrolments") == 2, "  two open: A's and B's");

    ok(cms_enrolments_settle(db, ca, &card, "holder:jdoe", CMS_REVOKE_CESSATION, &settled) == CMS_OK,
       "settled");
    ok(settled.revoked == 2 && settled.unchecked == 0, "  two certificates revoked (%d), none unchecked",
       settled.revoked);
    ok(in_crl(ca, a_cert) && in_crl(ca, b_again), "  A's and B's unrecorded ones are in the CRL");
    ok(!in_crl(ca, b_cert) && !in_crl(ca, c_cert), "  the recorded ones for the same keys are not");
    ok(sql_count(db, "SELECT count(*) FROM enrolments") == 0, "  no enrolment left open");
    ok(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'cert.revoke' AND operator = 'holder:jdoe'"
                 " AND detail LIKE '%never recorded%'") == 2, "  each revocation in the trail");
    ok(cms_enrolments_settle(db, ca, &card, "holder:jdoe", CMS_REVOKE_CESSATION, &settled) == CMS_OK &&
           settled.revoked == 0, "settled again: nothing more");

    /* The CA said it issued nothing: closed at once. */
    int64_t id_d;
    ok(cms_enrolment_begin(db, &card, "enc", ca->name, csr_a, &id_d) == CMS_OK && cms_enrolment_drop(db, id_d) == CMS_OK &&
           sql_count(db, "SELECT count(*) FROM enrolments") == 0, "an enrolment the CA refused is dropped");

    /* A CA that cannot be searched by key (as cfssl's API): the trail says
     * what to look for there. */
    struct cms_ca_ops blind_ops = *ca->ops;
    const struct cms_ca_ops *ops = ca->ops;
    blind_ops.find_by_key = NULL;
    ok(cms_enrolment_begin(db, &card, "enc", ca->name, csr_a, &id_d) == CMS_OK, "an enrolment at a CA that cannot "
       "be searched");
    ca->ops = &blind_ops;
    ok(cms_enrolments_settle(db, ca, &card, "bob", CMS_REVOKE_CESSATION, &settled) == CMS_OK &&
           settled.unchecked == 1 && settled.revoked == 0, "  settled unchecked");
    ca->ops = ops;
    char key[65], like[256];
    cms_key_sha256(a, key);
    snprintf(like, sizeof(like), "SELECT count(*) FROM audit WHERE action = 'cert.unrecorded' AND result = "
             "'unchecked' AND operator = 'bob' AND detail LIKE '%%sha256:%s%%'", key);
    ok(sql_count(db, like) == 1, "  the trail names the key's hash");
    ok(cms_enrolment_begin(db, &card, "enc", "cfssl:elsewhere", csr_a, &id_d) == CMS_OK &&
           cms_enrolments_settle(db, NULL, &card, "bob", CMS_REVOKE_CESSATION, &settled) == CMS_OK &&
           settled.unchecked == 1, "no CA to ask: unchecked too");
    /* A renewal still running when a change ends the card: its enrolment
     * is its own. */
    char live_owner[400], sql[600];
    cms_owner_of((long)getppid(), live_owner, sizeof(live_owner));
    ok(cms_enrolment_begin(db, &card, "enc", ca->name, csr_a, &id_d) == CMS_OK, "an enrolment of a process that runs");
    snprintf(sql, sizeof(sql), "UPDATE enrolments SET owner = '%s' WHERE id = %lld", live_owner, (long long)id_d);
    ok(sqlite3_exec(db->db, sql, NULL, NULL, NULL) == SQLITE_OK, "  (our parent's)");
    ok(cms_enrolments_settle(db, ca, &card, "bob", CMS_REVOKE_CESSATION, &settled) == CMS_OK && settled.live == 1 &&
           settled.revoked == 0 && sql_count(db, "SELECT count(*) FROM enrolments") == 1,
       "  left to it");
    ok(sqlite3_exec(db->db, "UPDATE enrolments SET owner = 'gone.example 1 1'", NULL, NULL, NULL) == SQLITE_OK &&
           cms_enrolments_settle(db, ca, &card, "bob", CMS_REVOKE_CESSATION, &settled) == CMS_OK &&
           settled.live == 0 && sql_count(db, "SELECT count(*) FROM enrolments") == 0,
       "  its process gone: settled");

    /* The card ended meanwhile: a certificate is not recorded for it. */
    X509 *late = enroll(ca, csr_a);
    ok(late && sqlite3_exec(db->db, "UPDATE cards SET state = 'revoked'", NULL, NULL, NULL) == SQLITE_OK &&
           cms_cert_record(db, &card, "enc", ca->name, late, NULL) == CMS_STATE,
       "a certificate for a card revoked meanwhile is refused: %s", db->err);
    X509_free(late);

    struct cms_audit_check check;
    ok(cms_audit_verify(db, &check) == CMS_OK, "the trail verifies");

    X509_free(a_cert);
    X509_free(b_again);
    X509_free(b_cert);
    X509_free(c_cert);
    X509_REQ_free(csr_a);
    X509_REQ_free(csr_b);
    X509_REQ_free(csr_c);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(c);
    cms_ca_close(ca);

    /* A register from before key hashes: opened, it has the column again
     * (its rows without a hash); new certificates are found by key. */
    char reg_path[400];
    sqlite3 *reg = NULL;
    cms_ca_local_dir(db, reg_path, sizeof(reg_path));
    strcat(reg_path, "/ca.db");
    ok(sqlite3_open(reg_path, &reg) == SQLITE_OK &&
           sqlite3_exec(reg, "DROP INDEX issued_key; ALTER TABLE issued DROP COLUMN key_sha256", NULL, NULL, NULL) ==
               SQLITE_OK,
       "a register as an older Tessera left it");
    sqlite3_close(reg);
    ok(cms_ca_open(db, &ca) == CMS_OK, "  the CA opens");
    EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509_REQ *csr_e = csr_for(e);
    ok(cms_enrolment_begin(db, &card, "enc", ca->name, csr_e, &id_d) == CMS_OK, "  an enrolment");
    X509 *e_cert = enroll(ca, csr_e);
    ok(e_cert && cms_enrolments_settle(db, ca, &card, "holder:jdoe", CMS_REVOKE_CESSATION, &settled) == CMS_OK &&
           settled.revoked == 1 && in_crl(ca, e_cert), "  its certificate found by key and revoked");
    X509_free(e_cert);
    X509_REQ_free(csr_e);
    EVP_PKEY_free(e);
    cms_ca_close(ca);
    cms_close(db);
}

int main(void)
{
    plan_lazy();
    test_settle();
    return done_testing();
}
