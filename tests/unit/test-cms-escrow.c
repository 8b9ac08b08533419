/* Key escrow (escrow.c) without a card or an HSM: archives sealed and
 * opened with the escrow key in memory and through an unwrap callback (as
 * an HSM would, done here in software), with SHA-256 and SHA-1 OAEP; the
 * archives that must not open (another escrow key, another certificate, a
 * changed or cut archive, an unwrap that fails or gives a wrong key);
 * escrow keys in the database (what is refused, the current one, the list,
 * the fingerprint, the trail); archives recorded with their certificate
 * and found again by card and by holder. The tool's side (escrow create,
 * key recover, an HSM) is test-cms-escrow.sh's. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rsa.h>

#include "src/cms/escrow.h"
#include "tests/tap.h"
#include "tests/unit/cms-fixture.h"

static EVP_PKEY *rsa(size_t bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
    if (!k)
        bail_out("cannot make an RSA key");
    return k;
}

/* A self-signed certificate of key: escrow keys are recorded by any
 * certificate, whoever issued it. */
static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    int good = x && name && X509_set_version(x, X509_VERSION_3) && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
               X509_gmtime_adj(X509_getm_notBefore(x), 0) && X509_gmtime_adj(X509_getm_notAfter(x), 86400) &&
               X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
               X509_set_subject_name(x, name) && X509_set_issuer_name(x, name) && X509_set_pubkey(x, key) &&
               X509_sign(x, key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    if (!good) {
        X509_free(x);
        bail_out("cannot make a certificate");
    }
    return x;
}

/* The HSM's part done in software: RSAES-OAEP with the hash it is given
 * for both the hash and MGF1, as C_Decrypt with CKM_RSA_PKCS_OAEP would. */
struct unwrapper {
    EVP_PKEY *key;
    int hash_nid;       /* as last called */
    int calls;
    bool fail;          /* an HSM that refuses */
    size_t give;        /* when set, claim a content key of this length */
};

static int soft_unwrap(void *arg, int hash_nid, const unsigned char *wrapped, size_t wrapped_len, unsigned char *cek,
                       size_t *cek_len)
{
    struct unwrapper *u = arg;
    const EVP_MD *md = EVP_get_digestbynid(hash_nid);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(u->key, NULL);
    unsigned char buf[512];   /* OpenSSL wants room for a whole modulus */
    size_t n = sizeof(buf);
    int rc = CMS_ERR;

    u->hash_nid = hash_nid;
    u->calls++;
    if (!u->fail && md && ctx && EVP_PKEY_decrypt_init(ctx) > 0 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 && EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0 &&
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0 && EVP_PKEY_decrypt(ctx, buf, &n, wrapped, wrapped_len) > 0 &&
        n <= *cek_len) {
        memcpy(cek, buf, n);
        *cek_len = u->give ? u->give : n;
        rc = CMS_OK;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

static void test_round_trip(EVP_PKEY *escrow, X509 *escrow_cert, EVP_PKEY *key, X509 *key_cert)
{
    const EVP_MD *mds[] = { EVP_sha256(), EVP_sha1() };
    char err[256];

    for (size_t i = 0; i < 2; i++) {
        const char *h = EVP_MD_get0_name(mds[i]);
        unsigned char *der = NULL;
        size_t len = 0;
        EVP_PKEY *got = NULL;
        struct unwrapper u = { .key = escrow };

        int rc = cms_escrow_seal(escrow_cert, mds[i], key, &der, &len, err, sizeof(err));
        ok(rc == CMS_OK && der && len > 0, "%s: sealed (%zu bytes)", h, len);
        ok(cms_escrow_open(der, len, escrow, key_cert, &got, err, sizeof(err)) == CMS_OK && got &&
               EVP_PKEY_eq(got, key) == 1,
           "  opened with the escrow key: the same key");
        EVP_PKEY_free(got);
        got = NULL;
        ok(cms_escrow_open_unwrap(der, len, soft_unwrap, &u, key_cert, &got, err, sizeof(err)) == CMS_OK && got &&
               EVP_PKEY_eq(got, key) == 1,
           "  opened by an unwrap callback: the same key");
        ok(u.calls == 1 && u.hash_nid == EVP_MD_get_type(mds[i]), "  the callback was asked once, for %s (nid %d)",
           h, u.hash_nid);
        EVP_PKEY_free(got);
        OPENSSL_free(der);
    }

    /* Escrow is for any key a profile escrows, not RSA alone. */
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *got = NULL;
    unsigned char *der = NULL;
    size_t len = 0;
    ok(ec && cms_escrow_seal(escrow_cert, EVP_sha256(), ec, &der, &len, err, sizeof(err)) == CMS_OK &&
           cms_escrow_open(der, len, escrow, NULL, &got, err, sizeof(err)) == CMS_OK && EVP_PKEY_eq(got, ec) == 1,
       "an EC key goes through too (no certificate to check against)");
    EVP_PKEY_free(got);
    EVP_PKEY_free(ec);
    OPENSSL_free(der);
}

static void test_refusals(EVP_PKEY *escrow, X509 *escrow_cert, EVP_PKEY *other, X509 *other_cert, EVP_PKEY *key,
                          X509 *key_cert)
{
    unsigned char *der = NULL, *bad;
    size_t len = 0;
    char err[256] = "";
    EVP_PKEY *got = NULL;
    struct unwrapper u = { .key = escrow };
    int rc;

    if (cms_escrow_seal(escrow_cert, EVP_sha256(), key, &der, &len, err, sizeof(err)) != CMS_OK)
        bail_out(err);
    rc = cms_escrow_open(der, len, other, key_cert, &got, err, sizeof(err));
    ok(rc != CMS_OK && !got, "another escrow key does not open it (%d): %s", rc, err);
    EVP_PKEY_free(got);
    got = NULL;
    ok(cms_escrow_open(der, len, escrow, other_cert, &got, err, sizeof(err)) == CMS_TAMPERED && !got,
       "checked against another certificate: tampered: %s", err);
    EVP_PKEY_free(got);
    got = NULL;
    ok(cms_escrow_open_unwrap(der, len, soft_unwrap, &u, other_cert, &got, err, sizeof(err)) == CMS_TAMPERED && !got,
       "  the same through the callback");
    EVP_PKEY_free(got);
    got = NULL;

    /* 40 bytes from the end is in the third-last AES block: that block of
     * the key is garbled (the end of the last CRT value, qInv) and one byte
     * of the next flipped, while the padding in the last block stays valid
     * and the public half is untouched. Only the whole-key check sees it. */
    bad = OPENSSL_memdup(der, len);
    if (!bad)
        bail_out("out of memory");
    bad[len - 40] ^= 0x01;
    rc = cms_escrow_open(bad, len, escrow, key_cert, &got, err, sizeof(err));
    ok(rc == CMS_TAMPERED && !got, "a changed byte of the ciphertext: tampered (%d): %s", rc, err);
    EVP_PKEY_free(got);
    got = NULL;
    rc = cms_escrow_open_unwrap(bad, len, soft_unwrap, &u, key_cert, &got, err, sizeof(err));
    ok(rc == CMS_TAMPERED && !got, "  through the callback too (%d): %s", rc, err);
    EVP_PKEY_free(got);
    got = NULL;
    OPENSSL_free(bad);

    ok(cms_escrow_open_unwrap(der, len - 10, soft_unwrap, &u, key_cert, &got, err, sizeof(err)) == CMS_INVALID &&
           !got,
       "a cut archive is not taken apart: %s", err);
    EVP_PKEY_free(got);
    got = NULL;
    ok(cms_escrow_open(der, len - 10, escrow, key_cert, &got, err, sizeof(err)) != CMS_OK && !got,
       "  nor opened with the key in memory");
    EVP_PKEY_free(got);
    got = NULL;

    u.calls = 0;
    u.fail = true;
    rc = cms_escrow_open_unwrap(der, len, soft_unwrap, &u, key_cert, &got, err, sizeof(err));
    ok(rc != CMS_OK && !got && u.calls == 1, "an unwrap that fails is a failure (%d): %s", rc, err);
    EVP_PKEY_free(got);
    got = NULL;
    u.fail = false;
    u.give = 16;
    ok(cms_escrow_open_unwrap(der, len, soft_unwrap, &u, key_cert, &got, err, sizeof(err)) == CMS_INVALID && !got,
       "a 16-byte content key is refused: %s", err);
    EVP_PKEY_free(got);
    got = NULL;
    u.give = 0;
    u.key = other;
    rc = cms_escrow_open_unwrap(der, len, soft_unwrap, &u, key_cert, &got, err, sizeof(err));
    ok(rc != CMS_OK && !got, "an HSM holding another escrow key does not open it (%d)", rc);
    EVP_PKEY_free(got);
    OPENSSL_free(der);
}

/* ---- the database ---- */

struct keys {
    int n, current;
    struct cms_escrow_key k[4];
};

static int collect_key(void *arg, const struct cms_escrow_key *k)
{
    struct keys *ks = arg;
    if (ks->n < 4)
        ks->k[ks->n] = *k;
    ks->n++;
    ks->current += k->current;
    return CMS_OK;
}

/* Audit records of action whose detail holds text. */
static int audited(struct cms_db *db, const char *action, const char *text)
{
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM audit WHERE action = ?1 AND instr(detail, ?2) > 0", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, action, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* The fingerprint computed here, not by escrow.c. */
static void spki_sha256(X509 *cert, char out[65])
{
    unsigned char *spki = NULL, md[32];
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
    out[0] = '\0';
    if (len > 0 && EVP_Digest(spki, (size_t)len, md, NULL, EVP_sha256(), NULL))
        for (int i = 0; i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    OPENSSL_free(spki);
}

/* Escrow keys a (sha1, in a file) then b (sha256, in an HSM). */
static void test_keys(struct cms_db *db, X509 *a, X509 *b, X509 *spare)
{
    EVP_PKEY *small = rsa(1024), *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *small_cert = self_signed(small, "small"), *ec_cert = self_signed(ec, "ec"), *cur = NULL;
    const EVP_MD *md = NULL;
    int64_t id = 0, id_a = 0;
    char fp_a[65], fp_b[65], mine[65];

    ok(cms_escrow_key_current(db, &id, &cur, &md) == CMS_NOTFOUND && !cur, "no escrow key yet: %s", db->err);
    ok(cms_escrow_key_add(db, &admin, "a b", a, "file", "sha256") == CMS_INVALID &&
           cms_escrow_key_add(db, &admin, "", a, "file", "sha256") == CMS_INVALID,
       "names with a space or empty are refused");
    ok(cms_escrow_key_add(db, &admin, "small", small_cert, "file", "sha256") == CMS_INVALID,
       "an RSA-1024 key is refused: %s", db->err);
    ok(cms_escrow_key_add(db, &admin, "ec", ec_cert, "file", "sha256") == CMS_INVALID, "  an EC key too");
    ok(cms_escrow_key_add(db, &admin, "odd", a, "file", "sha512") == CMS_INVALID, "  OAEP with SHA-512 too");
    ok(cms_escrow_key_add(db, &admin, "odd", a, "usb", "sha256") == CMS_INVALID, "  kept anywhere but file, hsm, elsewhere too");

    ok(cms_escrow_key_add(db, &admin, "escrow-2025", a, "file", "sha1") == CMS_OK, "escrow key escrow-2025 (sha1)");
    ok(cms_escrow_key_current(db, &id_a, &cur, &md) == CMS_OK && cur && !X509_cmp(cur, a) && md == EVP_sha1(),
       "  is the current one, with SHA-1");
    X509_free(cur);
    cur = NULL;
    ok(cms_escrow_key_add(db, &admin, "escrow-2026", b, "hsm", "sha256") == CMS_OK, "escrow key escrow-2026 (sha256)");
    ok(cms_escrow_key_current(db, &id, &cur, &md) == CMS_OK && cur && !X509_cmp(cur, b) && md == EVP_sha256() &&
           id != id_a,
       "  takes over as the current one, with SHA-256");
    X509_free(cur);
    cur = NULL;
    ok(cms_escrow_key_add(db, &admin, "again", a, "file", "sha256") == CMS_EXISTS,
       "the same key under another name: exists: %s", db->err);
    ok(cms_escrow_key_add(db, &admin, "escrow-2025", spare, "file", "sha256") == CMS_EXISTS,
       "  another key under a name taken: exists");
    ok(cms_escrow_key_current(db, &id, &cur, &md) == CMS_OK && cur && !X509_cmp(cur, b),
       "  refused adds leave the current one as it was");
    X509_free(cur);

    struct keys ks = { 0 };
    ok(cms_escrow_key_list(db, collect_key, &ks) == CMS_OK && ks.n == 2 && ks.current == 1 && ks.k[1].current &&
           !strcmp(ks.k[1].name, "escrow-2026"),
       "two escrow keys listed, escrow-2026 the one current");
    ok(ks.n == 2 && !strcmp(ks.k[0].kept, "file") && !strcmp(ks.k[0].oaep, "sha1") && !strcmp(ks.k[1].kept, "hsm") &&
           !strcmp(ks.k[1].oaep, "sha256") && !strcmp(ks.k[0].created_by, "alice") && ks.k[0].created[0],
       "  with where each is kept, its OAEP hash, when and by whom");

    spki_sha256(a, mine);
    ok(cms_escrow_fingerprint(a, fp_a) == CMS_OK && !strcmp(fp_a, mine) && strlen(fp_a) == 64,
       "the fingerprint is the SHA-256 of the SubjectPublicKeyInfo: %s", fp_a);
    ok(cms_escrow_fingerprint(b, fp_b) == CMS_OK && ks.n == 2 && !strcmp(ks.k[0].fingerprint, fp_a) &&
           !strcmp(ks.k[1].fingerprint, fp_b),
       "  and the one listed");
    ok(audited(db, "escrow.add", "") == 2 && audited(db, "escrow.add", fp_a) == 1 &&
           audited(db, "escrow.add", fp_b) == 1,
       "each key added is in the trail once, with its fingerprint; refusals are not");

    X509_free(small_cert);
    X509_free(ec_cert);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}

struct found {
    int n;
    struct cms_escrowed e;
};

static int collect_escrowed(void *arg, const struct cms_escrowed *e)
{
    struct found *f = arg;
    if (!f->n)
        f->e = *e;
    f->n++;
    return CMS_OK;
}

/* Archives with their certificates, sealed to the current key (b). */
static void test_records(struct cms_db *db, struct cms_ca *ca, EVP_PKEY *escrow_b, EVP_PKEY *key)
{
    X509 *escrow_cert = NULL, *cert = NULL, *got_cert = NULL;
    const EVP_MD *md = NULL;
    unsigned char *der = NULL, *got_der = NULL;
    size_t len = 0, got_len = 0;
    char err[256];
    int64_t escrow_id = 0;
    EVP_PKEY *opened = NULL;

    if (cms_escrow_key_current(db, &escrow_id, &escrow_cert, &md) != CMS_OK ||
        cms_escrow_seal(escrow_cert, md, key, &der, &len, err, sizeof(err)) != CMS_OK)
        bail_out("no archive to record");
    struct cms_escrow_archive archive = { escrow_id, der, len };
    int64_t plain = active_card(db, ca, "cccc000000000001");
    int64_t card = active_card_of(db, ca, "eeee000000000002", key, &archive, &cert);
    ok(plain > 0 && card > 0, "a card without an escrowed key and one with");

    struct found f = { 0 };
    ok(cms_escrowed_list(db, card, NULL, collect_escrowed, &f) == CMS_OK && f.n == 1 && f.e.card_id == card &&
           f.e.escrow_key_id == escrow_id,
       "the card's archive is listed by card");
    ok(f.n == 1 && !strcmp(f.e.holder, "jdoe") && !strcmp(f.e.card_serial, "eeee000000000002") &&
           !strcmp(f.e.key_name, "auth") && !strcmp(f.e.escrow_key, "escrow-2026") &&
           !strcmp(f.e.cert_state, "active") && f.e.not_after[0] && f.e.created[0],
       "  with its holder, card, key, escrow key and certificate");
    struct found none = { 0 };
    ok(cms_escrowed_list(db, plain, NULL, collect_escrowed, &none) == CMS_OK && none.n == 0,
       "  the other card has none");
    struct found by_holder = { 0 };
    ok(cms_escrowed_list(db, 0, "jdoe", collect_escrowed, &by_holder) == CMS_OK && by_holder.n == 1 &&
           by_holder.e.id == f.e.id,
       "listed by holder too");
    none.n = 0;
    ok(cms_escrowed_list(db, 0, "nobody", collect_escrowed, &none) == CMS_OK && none.n == 0,
       "  an unknown holder has none");

    struct cms_escrowed e;
    ok(cms_escrowed_get(db, f.e.id, &e, &got_der, &got_len, &got_cert) == CMS_OK && got_len == len &&
           !memcmp(got_der, der, len) && got_cert && !X509_cmp(got_cert, cert) && e.id == f.e.id,
       "got back: the same archive bytes and the certificate");
    ok(got_der && cms_escrow_open(got_der, got_len, escrow_b, got_cert, &opened, err, sizeof(err)) == CMS_OK &&
           EVP_PKEY_eq(opened, key) == 1,
       "  which opens to the key its certificate certifies");
    ok(cms_escrow_insert(db, sql_count(db, "SELECT certificate_id FROM escrowed_keys"), &archive) != CMS_OK,
       "one archive per certificate: a second is refused");
    ok(cms_escrow_recovered(db, &admin, &e, "pkcs12 /dev/null", "ok") == CMS_OK &&
           audited(db, "key.recover", "pkcs12 /dev/null") == 1,
       "a recovery is in the trail");
    OPENSSL_free(got_der);
    X509_free(got_cert);

    ok(cms_escrowed_get(db, 9999, &e, &got_der, &got_len, &got_cert) == CMS_NOTFOUND && !got_der && !got_cert,
       "an unknown archive: not found");

    /* Renewed in place (a PIV slot): the same key, a newer certificate. */
    struct cms_card c;
    X509_REQ *csr = X509_REQ_new();
    X509_NAME *subject = cms_parse_dn("/CN=Jane Doe");
    X509_REQ_set_pubkey(csr, key);
    X509_REQ_sign(csr, key, EVP_sha256());
    struct cms_cert_request req = { .csr = csr, .subject = subject, .lifetime_days = 30, .sign = true };
    X509 *renewed = NULL, *rolled_back = NULL;
    ok(cms_card_get(db, card, NULL, &c) == CMS_OK && ca->ops->enroll(ca, &req, &renewed) == CMS_OK &&
           cms_cert_record(db, &c, "auth", ca->name, renewed, NULL) == CMS_OK,
       "the key renewed in place: a newer certificate for it");
    ok(cms_escrowed_get(db, f.e.id, &e, &got_der, &got_len, &got_cert) == CMS_OK && got_cert &&
           !X509_cmp(got_cert, renewed),
       "  handed out with the archive now");
    OPENSSL_free(got_der);
    X509_free(got_cert);
    ok(ca->ops->enroll(ca, &req, &rolled_back) == CMS_OK &&
           cms_cert_record(db, &c, "auth", ca->name, rolled_back, NULL) == CMS_OK &&
           cms_cert_withdraw(db, sql_count(db, "SELECT max(id) FROM certificates")) == CMS_OK,
       "another, withdrawn by a roll-back");
    ok(cms_escrowed_get(db, f.e.id, &e, &got_der, &got_len, &got_cert) == CMS_OK && got_cert &&
           !X509_cmp(got_cert, renewed) && !strcmp(e.cert_state, "active"),
       "  not handed out: the renewal's still is");
    OPENSSL_free(got_der);
    X509_free(got_cert);
    X509_free(renewed);
    X509_free(rolled_back);
    X509_NAME_free(subject);
    X509_REQ_free(csr);

    EVP_PKEY_free(opened);
    X509_free(cert);
    X509_free(escrow_cert);
    OPENSSL_free(der);
}

int main(void)
{
    struct cms_ca *ca = NULL;
    plan_lazy();
    struct cms_db *db = fixture_open("cms-escrow", &ca);
    EVP_PKEY *escrow_a = rsa(2048), *escrow_b = rsa(2048), *key = rsa(2048);
    X509 *cert_a = self_signed(escrow_a, "escrow a"), *cert_b = self_signed(escrow_b, "escrow b");
    X509 *key_cert = self_signed(key, "jdoe");

    test_round_trip(escrow_a, cert_a, key, key_cert);
    test_refusals(escrow_a, cert_a, escrow_b, cert_b, key, key_cert);
    test_keys(db, cert_a, cert_b, key_cert);
    test_records(db, ca, escrow_b, key);

    X509_free(key_cert);
    X509_free(cert_b);
    X509_free(cert_a);
    EVP_PKEY_free(key);
    EVP_PKEY_free(escrow_b);
    EVP_PKEY_free(escrow_a);
    cms_ca_close(ca);
    cms_close(db);
    return done_testing();
}
