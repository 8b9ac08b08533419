/* The card-management database at scale (issue 5): for each size of a
 * ladder (cards; the audit trail ten times as long), a fresh database is
 * filled the way Tessera fills it, then the lookups and scans an operator
 * or the agent waits for, and the renewal scan cron runs (`tessera scan`),
 * are timed, each the median of several repetitions. What grows with the
 * size is a scan; what does not is an index lookup. At the largest size the
 * renewal scan's query plans are printed after the tables.
 *
 *   bench-cms [--reps N] [--keep] [SIZES]    SIZES: cards, comma-separated (1k, 10k, 1M)
 *
 * Databases are made under TMPDIR and removed (--keep: left there, to look
 * at their query plans). Nothing here needs a TPM or a card reader. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "src/cms/audit.h"
#include "src/cms/cards.h"
#include "src/cms/db.h"
#include "src/cms/holders.h"
#include "src/cms/lifecycle.h"
#include "src/cms/profile.h"
#include "src/cms/renewal.h"
#include "src/cms/roles.h"
#include "src/cms/schedule.h"

#define MAX_SIZES 8
#define SAMPLES 1024          /* keys looked up, chosen before the clock starts */
#define BATCH 500             /* cards per request batch, as `card request --holders` sends them */
#define AUDIT_PER_CARD 10
#define AUDIT_TX 10000        /* filler records per transaction */
#define COLLECTED_PCT 90      /* cards collected; the rest wait with a pending issue job */
#define LOCKED_PCT 5          /* collected TPM cards with a pending PIN lock, half of them overdue */
#define STATIONS 20           /* enrolment stations where PIV cards are collected */
#define FIND_LIMIT 20         /* a search box shows the first 20 */
#define TEMPORARY_PCT 2       /* collected PIV cards left at home, a temporary card standing in (1 % of cards) */
#define TEMPORARY_DAYS 7      /* the profile's temporary-card-days */
#define TEMPORARY_SPREAD 14   /* days over which the temporary cards were issued: half have ended */
#define RENEWAL_WINDOW 30     /* the profile's renewal-window-days */
#define UID_LEN 24

static bool keep;
static struct cms_actor admin = { "admin", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_AUDITOR, true };
static struct cms_actor issuer = { "issuer1", CMS_ROLE_ISSUER, true };

static const char *const given[] = {
    "Jane", "Bob", "Amara", "Chen", "Dmitri", "Fatima", "Giulia", "Hiroshi", "Ines", "Jonas", "Kwame", "Lena",
    "Mateo", "Nadia", "Olga", "Pavel", "Quentin", "Rosa", "Sven", "Tariq", "Ursula", "Viktor", "Wen", "Yara",
    "Zoltan", "Aino", "Bruno", "Carmen", "Dario", "Elif", "Farid", "Greta", "Hugo", "Ivana", "Jamal", "Kirsi",
    "Luca", "Maren", "Nils", "Oona",
};
static const char *const family[] = {
    "Doe", "Smith", "Okafor", "Wang", "Ivanov", "Haddad", "Rossi", "Tanaka", "Silva", "Berg", "Mensah", "Keller",
    "Garcia", "Novak", "Petrova", "Horvat", "Dubois", "Moreno", "Lind", "Khan", "Weber", "Popescu", "Liu", "Cohen",
    "Nagy", "Virtanen", "Costa", "Ruiz", "Conti", "Yilmaz", "Rahimi", "Jensen", "Laurent", "Kovac", "Bakr",
    "Nieminen", "Ricci", "Hansen", "Eriksen", "Koskinen", "Fischer", "Schulz", "Wagner", "Becker", "Hoffmann",
    "Kaya", "Demir", "Sahin", "Celik", "Arslan", "Nowak", "Kowalski", "Wisniewski", "Wojcik", "Kaminski",
    "Murphy", "Kelly", "Walsh", "Byrne", "Ryan", "Jansen", "Visser", "Smit", "Bakker", "Janssen", "Peeters",
    "Maes", "Jacobs", "Mertens", "Willems", "Gruber", "Huber", "Bauer", "Pichler", "Moser", "Santos", "Ferreira",
    "Pereira", "Oliveira", "Rodrigues", "Papadopoulos", "Georgiou", "Dimitriou", "Nikolaou", "Andersson",
    "Johansson", "Karlsson", "Nilsson", "Larsson", "Olsen", "Pedersen", "Nielsen", "Kristensen", "Halvorsen",
    "Magnusson", "Sigurdsson", "Jonsson", "Gunnarsson", "Stefansson", "Thorsen",
};
static const char *const departments[] = { "Finance", "Engineering", "Sales", "Legal", "Operations", "Research" };

/* One database of one size, and the keys the measurements look up. */
struct bench {
    size_t ncards, nholders;
    char dir[256], path[300];
    struct cms_db *db;
    char (*serials)[17];      /* of collected cards ("" while requested) */
    char (*lock_devices)[40]; /* devices with a card that has a pending lock */
    size_t nlocks, ndue;
    /* what the trail and the file came to */
    int64_t naudit, ndevices, pending_issue;
    int64_t clashes;          /* request batches refused for a collection code clash */
    int64_t ntemporary;       /* temporary cards standing in for forgotten ones */
    int64_t ncerts, nwindow;  /* active certificates; of them, expiring within the renewal window */
    char now[32];             /* the renewal scan's time, set before the measurements */
    char *plans;              /* the renewal scan's query plans (the largest size only) */
    double populate_s;
    int64_t file_bytes;
    /* samples */
    char uids[SAMPLES][UID_LEN];
    char card_serials[SAMPLES][17];
    char devices[SAMPLES][40];
    char surnames[SAMPLES][24];
    char full_names[SAMPLES][48];
};

static uint64_t rng = 0x9e3779b97f4a7c15u;
/* xorshift64, started again for each size: the same holders, cards, locks
 * and samples every run (only serials and codes are random), so runs compare. */
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void holder_uid(size_t i, char out[UID_LEN])
{
    snprintf(out, UID_LEN, "u%07zu", i);
}

/* Holder i's name: given names and surnames repeat as in a real directory
 * (one holder in a hundred shares a surname), a full name with its middle
 * initial seldom; scattered over the uids. */
static uint32_t holder_hash(size_t i)
{
    uint32_t x = (uint32_t)i;
    x = ((x >> 16) ^ x) * 0x45d9f3bu;
    x = ((x >> 16) ^ x) * 0x45d9f3bu;
    return (x >> 16) ^ x;
}

static void holder_name(size_t i, char out[48])
{
    uint32_t h = holder_hash(i);
    snprintf(out, 48, "%s %c. %s", given[h % (sizeof(given) / sizeof(given[0]))], 'A' + (int)(h / 64 % 26),
             family[h / 4096 % (sizeof(family) / sizeof(family[0]))]);
}

static const char *holder_family(size_t i)
{
    return family[holder_hash(i) / 4096 % (sizeof(family) / sizeof(family[0]))];
}

static void tpm_device(size_t holder, char out[40])
{
    snprintf(out, 40, "pc-%07zu.corp.example", holder);
}

static int fail(struct bench *b, const char *what)
{
    fprintf(stderr, "bench-cms: %s: %s\n", what, b->db ? b->db->err : "");
    return -1;
}

/* ---- population ---- */

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f))
        rc = -1;
    return rc;
}

static int import_profile(struct bench *b)
{
    char path[320];
    int version;
    bool unchanged;
    snprintf(path, sizeof(path), "%s/staff.ini", b->dir);
    if (write_text(path, "[profile]\nname = staff\ncard-types = tpm, piv\n"
                         "[pin]\nmin-length = 6\nmax-length = 8\ndigits = mandatory\ntries = 5\n"
                         "[admin-key]\nmaster-file = /etc/tessera/master.key\n"
                         "[key authentication]\ntype = p256\npiv-slot = 9a\nusage = sign\n"
                         "certificate = client-auth, smartcard-logon\nsubject = /CN=${name}/O=Example/UID=${uid}\n"
                         "lifetime-days = 365\n"
                         "[key encryption]\ntype = rsa2048\npiv-slot = 9d\nusage = decrypt\ncertificate = email\n"
                         "subject = /CN=${name}/O=Example/emailAddress=${email}\nlifetime-days = 730\n"
                         "[lifecycle]\nrenewal-window-days = 30\nnotify-every-days = 7\ntemporary-card-days = 7\n"))
        return fail(b, "cannot write the profile");
    return cms_profile_import(b->db, &admin, path, &version, &unchanged) == CMS_OK ? 0 : fail(b, "profile import");
}

/* A directory export of every holder, imported as `tessera holder import` does. */
static int import_holders(struct bench *b)
{
    struct cms_import_counts counts;
    char path[320], uid[UID_LEN], name[48];
    snprintf(path, sizeof(path), "%s/holders.csv", b->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return fail(b, "cannot write the holders file");
    fprintf(f, "uid,name,email,department,employeeNumber,upn\n");
    for (size_t i = 0; i < b->nholders; i++) {
        holder_uid(i, uid);
        holder_name(i, name);
        fprintf(f, "%s,%s,%s.%zu@example.org,%s,%zu,%s@corp.example\n", uid, name, holder_family(i), i,
                departments[i % (sizeof(departments) / sizeof(departments[0]))], 100000 + i, uid);
    }
    if (fclose(f))
        return fail(b, "cannot write the holders file");
    if (cms_holders_import(b->db, &admin, path, CMS_HOLDERS_CSV, &counts) != CMS_OK)
        return fail(b, "holder import");
    return counts.created == (int64_t)b->nholders ? 0 : fail(b, "holder import: not every holder is new");
}

/* Cards first..first+n of the ladder (card i is holder i/2's; even a TPM
 * virtual card for their laptop, odd a PIV card), requested in one batch;
 * their codes come back for the collects. A batch that meets a collection
 * code clash is requested again, as the tool tells its operator to. */
static int request_batch(struct bench *b, size_t first, size_t n, char (*codes)[CMS_CODE_LEN])
{
    struct cms_request reqs[BATCH];
    int64_t card_ids[BATCH], job_ids[BATCH];
    char uids[BATCH][UID_LEN];
    for (size_t i = 0; i < n; i++) {
        size_t card = first + i;
        holder_uid(card / 2, uids[i]);
        reqs[i] = (struct cms_request){ .holder = uids[i], .profile = "staff", .type = card % 2 ? "piv" : "tpm",
                                        .valid_days = 14 };
    }
    for (int tries = 0; tries < 100; tries++) {
        if (cms_card_request_batch(b->db, &issuer, reqs, n, codes, card_ids, job_ids) == CMS_OK)
            return 0;
        if (!strstr(b->db->err, "collection code clash"))
            break;
        b->clashes++;
    }
    return fail(b, "card request");
}

/* A certificate as the CA would have issued it for a key of the card,
 * age seconds ago. */
static X509 *make_cert(EVP_PKEY *ca_key, EVP_PKEY *subject_key, const char *cn, int lifetime_days, int64_t age)
{
    X509 *x = X509_new();
    X509_NAME *subject = X509_NAME_new(), *issuer_name = X509_NAME_new();
    uint8_t serial[16];
    BIGNUM *bn = NULL;
    bool ok = x && subject && issuer_name && RAND_bytes(serial, sizeof(serial)) == 1 &&
              (bn = BN_bin2bn(serial, sizeof(serial), NULL)) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
              X509_set_version(x, 2) &&
              X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) &&
              X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, (const unsigned char *)"Example", -1, -1, 0) &&
              X509_NAME_add_entry_by_txt(issuer_name, "CN", MBSTRING_UTF8, (const unsigned char *)"Bench CA", -1,
                                         -1, 0) &&
              X509_set_subject_name(x, subject) && X509_set_issuer_name(x, issuer_name) &&
              X509_gmtime_adj(X509_getm_notBefore(x), -(long)age) &&
              X509_gmtime_adj(X509_getm_notAfter(x), (long)((int64_t)lifetime_days * 86400 - age)) &&
              X509_set_pubkey(x, subject_key) && X509_sign(x, ca_key, EVP_sha256()) > 0;
    BN_free(bn);
    X509_NAME_free(subject);
    X509_NAME_free(issuer_name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* The database side of a collect, call for call as src/tool/collect.c
 * makes it (claim, serial, card made, a certificate and a step per key,
 * finish): only the card itself is missing. Holder's PIV card (else TPM
 * card); its serial in serial.
 *
 * The certificates' validity is what the renewal scan reads: a card's
 * certificates were issued when it was collected, and a fleet is collected
 * over years, so each key's certificate is given an age spread uniformly
 * over its lifetime (not_after uniform over the next 365 or 730 days: 30/365
 * = 8 % of the authentication and 4 % of the encryption certificates, 12 %
 * of the cards, within the 30-day renewal window). A temporary card's
 * (temporary_age >= 0) were issued temporary_age seconds ago, for its life. */
static int collect_card(struct bench *b, size_t holder, bool piv, const char *code, EVP_PKEY *ca_key,
                        EVP_PKEY *keys[2], int64_t temporary_age, char serial[17])
{
    static const char *const key_names[] = { "authentication", "encryption" };
    static const int lifetimes[] = { 365, 730 };
    char device[40], step[64], cn[48];
    uint8_t raw[8];
    struct cms_job job;
    struct cms_card card;
    int rc = -1;

    if (piv)
        snprintf(device, sizeof(device), "enrol-%02zu.corp.example", holder % STATIONS);
    else
        tpm_device(holder, device);
    if (cms_collect_claim(b->db, code, device, &job, &card) != CMS_OK)
        return fail(b, "collect claim");
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return fail(b, "no random numbers");
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(serial + 2 * i, 3, "%02x", raw[i]);
    if (cms_job_step(b->db, &job, &card, "serial", serial, NULL, NULL) != CMS_OK)
        return fail(b, "collect: serial");
    snprintf(card.serial, sizeof(card.serial), "%s", serial);
    if (cms_job_step(b->db, &job, &card, "created", NULL, "card.create", "bench card, PIN chosen by the holder") !=
        CMS_OK)
        return fail(b, "collect: created");
    holder_name(holder, cn);
    for (int k = 0; k < 2; k++) {
        int lifetime = temporary_age >= 0 ? TEMPORARY_DAYS : lifetimes[k];
        X509 *x = make_cert(ca_key, keys[k], cn, lifetime,
                            temporary_age >= 0 ? temporary_age : (int64_t)(rnd() % (uint64_t)lifetime) * 86400);
        if (!x)
            return fail(b, "cannot make a certificate");
        rc = cms_cert_record(b->db, &card, key_names[k], "Bench CA", x, NULL);
        X509_free(x);
        if (rc != CMS_OK)
            return fail(b, "collect: certificate");
        snprintf(step, sizeof(step), "key:%s", key_names[k]);
        if (cms_job_step(b->db, &job, &card, step, NULL, NULL, NULL) != CMS_OK)
            return fail(b, "collect: key step");
    }
    if (cms_collect_finish(b->db, &job, &card, "bench collect") != CMS_OK)
        return fail(b, "collect: finish");
    return 0;
}

/* Card card_no of the ladder (holder card_no / 2's; odd: PIV). */
static int collect_one(struct bench *b, size_t card_no, const char *code, EVP_PKEY *ca_key, EVP_PKEY *keys[2])
{
    return collect_card(b, card_no / 2, card_no % 2, code, ca_key, keys, -1, b->serials[card_no]);
}

/* The CA behind the "forgotten" change: it only has to put certificates
 * on hold, and says yes (the certificates are the bench's own, "Bench CA"). */
static int bench_ca_revoke(struct cms_ca *ca, const char *serial, int reason)
{
    (void)ca;
    (void)serial;
    (void)reason;
    return CMS_OK;
}

static const struct cms_ca_ops bench_ca_ops = { .kind = "bench", .revoke = bench_ca_revoke };

/* Temporary cards, for the renewal scan's third step: TEMPORARY_PCT of the
 * collected PIV cards were left at home, and the helpdesk replaced each as
 * `tessera card forgotten` does (the change begun, each certificate put on
 * hold, finished: the original suspended, a temporary card requested), and
 * the holder collected it at an enrolment station.
 *
 * They were issued over the last TEMPORARY_SPREAD days, so about half have
 * reached their end (TEMPORARY_DAYS) and wait for the scan, as on the
 * scan's first run. Their certificates are made with that age; the card's
 * end, which the request sets to TEMPORARY_DAYS from now, is moved back by
 * SQL after the collect (cards.expires is what cards_temporary orders). */
static int add_temporaries(struct bench *b, EVP_PKEY *ca_key, EVP_PKEY *keys[2])
{
    static const struct cms_actor helpdesk = { "helpdesk2", CMS_ROLE_HELPDESK, true };
    static const struct cms_change_args args = { .note = "bench: left at home", .valid_days = 1 };
    const struct cms_change *forgotten = cms_change_find("forgotten");
    struct cms_ca ca = { .ops = &bench_ca_ops, .name = "Bench CA" };
    int64_t t = (int64_t)time(NULL);

    for (size_t i = 1; i < b->ncards; i += 2) {
        struct cms_card card;
        struct cms_job job;
        char code[CMS_CODE_LEN], serial[17], expires[32];
        int64_t temp_id, age;
        bool done = false;
        int rc;
        if (!b->serials[i][0] || rnd() % 100 >= TEMPORARY_PCT)
            continue;
        if (cms_card_get(b->db, 0, b->serials[i], &card) != CMS_OK ||
            cms_change_begin(b->db, &helpdesk, forgotten, &card, &args, &job) != CMS_OK)
            return fail(b, "forgotten: begin");
        while (!done)
            if (cms_change_next_cert(b->db, &ca, &job, &card, &done) != CMS_OK)
                return fail(b, "forgotten: certificate on hold");
        if (cms_change_finish(b->db, &job, &card, code, &temp_id) != CMS_OK || !temp_id)
            return fail(b, "forgotten: finish");
        age = (int64_t)(rnd() % (TEMPORARY_SPREAD * 86400));
        rc = collect_card(b, i / 2, true, code, ca_key, keys, age, serial);
        OPENSSL_cleanse(code, sizeof(code));
        if (rc)
            return rc;
        cms_time_text(t - age + TEMPORARY_DAYS * 86400, expires);
        if (cms_exec_bind(b->db, "UPDATE cards SET expires = ?2 WHERE id = ?1", "cards", temp_id, expires, NULL) !=
            CMS_OK)
            return fail(b, "temporary card's end");
        b->ntemporary++;
    }
    return 0;
}

/* Requests and collects interleaved, as a rollout runs: most cards of a
 * batch are collected before the next batch is requested, the rest wait. */
static int issue_cards(struct bench *b)
{
    EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *keys[2] = { EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
                          EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) };
    char codes[BATCH][CMS_CODE_LEN];
    int rc = -1;
    if (!ca_key || !keys[0] || !keys[1]) {
        fail(b, "no keys");
        goto out;
    }
    for (size_t first = 0; first < b->ncards; first += BATCH) {
        size_t n = b->ncards - first < BATCH ? b->ncards - first : BATCH;
        if (request_batch(b, first, n, codes))
            goto out;
        for (size_t i = 0; i < n; i++)
            if (rnd() % 100 < COLLECTED_PCT && collect_one(b, first + i, codes[i], ca_key, keys) != 0)
                goto out;
    }
    rc = add_temporaries(b, ca_key, keys);
out:
    OPENSSL_cleanse(codes, sizeof(codes));
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
    return rc;
}

/* Pending PIN locks on some collected TPM cards, asked for by the helpdesk
 * as `tessera card lock` does: half of them overdue (the laptop was off
 * when they fell due), half due within the next 30 days. */
static int add_locks(struct bench *b)
{
    static const struct cms_actor helpdesk = { "helpdesk1", CMS_ROLE_HELPDESK, true };
    char due[32];
    int64_t t = (int64_t)time(NULL), job;
    struct cms_card card;
    b->lock_devices = calloc(b->ncards / 2 + 1, sizeof(*b->lock_devices));
    if (!b->lock_devices)
        return fail(b, "locks");
    for (size_t i = 0; i < b->ncards; i += 2) {
        if (!b->serials[i][0] || rnd() % 100 >= LOCKED_PCT)
            continue;
        bool overdue = b->nlocks % 2 == 0;
        cms_time_text(overdue ? t - (int64_t)(rnd() % (30 * 86400)) - 60 : t + 60 + (int64_t)(rnd() % (30 * 86400)),
                      due);
        if (cms_card_get(b->db, 0, b->serials[i], &card) != CMS_OK ||
            cms_lock_request(b->db, &helpdesk, &card, due, NULL, NULL, "bench: leaves the company", &job) != CMS_OK)
            return fail(b, "lock request");
        tpm_device(i / 2, b->lock_devices[b->nlocks++]);
        b->ndue += overdue;
    }
    return 0;
}

static int64_t count(struct bench *b, const char *sql)
{
    sqlite3_stmt *st = cms_prepare(b->db, sql);
    int64_t n = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* The rest of the trail, through cms_audit_append as every step writes it:
 * what years of helpdesk calls, suspensions and searches leave behind. */
static int fill_audit(struct bench *b)
{
    static const struct {
        const char *operator, *action, *result;
    } kinds[] = {
        { "helpdesk1", "card.suspend", "ok" },  { "helpdesk1", "card.enable", "ok" },
        { "issuer1", "card.code", "ok" },       { "helpdesk2", "card.unlock", "ok" },
        { "holder:?", "card.collect", "denied" }, { "auditor1", "audit.search", "denied: needs auditor" },
        { "agent", "card.lock", "ok" },         { "helpdesk2", "card.lock", "ok" },
    };
    int64_t have = count(b, "SELECT count(*) FROM audit"), want = (int64_t)(b->ncards * AUDIT_PER_CARD);
    char uid[UID_LEN], device[40], detail[128];
    int rc = CMS_OK;
    while (have < want && rc == CMS_OK) {
        if ((rc = cms_begin(b->db)) != CMS_OK)
            break;
        for (int i = 0; i < AUDIT_TX && have < want && rc == CMS_OK; i++, have++) {
            size_t card = (size_t)(rnd() % b->ncards), k = (size_t)(rnd() % (sizeof(kinds) / sizeof(kinds[0])));
            holder_uid(card / 2, uid);
            tpm_device(card / 2, device);
            snprintf(detail, sizeof(detail), "bench record %" PRId64, have);
            struct cms_audit_rec rec = { .operator = kinds[k].operator, .action = kinds[k].action,
                                         .result = kinds[k].result, .holder = uid,
                                         .card = b->serials[card][0] ? b->serials[card] : NULL,
                                         .device = card % 2 || !b->serials[card][0] ? NULL : device,
                                         .detail = detail };
            rc = cms_audit_append(b->db, &rec);
        }
        if (rc == CMS_OK)
            rc = cms_commit(b->db);
    }
    if (rc == CMS_OK)
        return 0;
    cms_rollback(b->db);
    return fail(b, "audit");
}

static int open_db(struct bench *b, bool create)
{
    char err[512];
    if (cms_open(b->path, create, &b->db, err, sizeof(err)) != CMS_OK) {
        fprintf(stderr, "bench-cms: %s\n", err);
        return -1;
    }
    return 0;
}

static int populate(struct bench *b)
{
    struct stat st;
    double t0 = now_s();
    int rc = -1;

    b->serials = calloc(b->ncards, sizeof(*b->serials));
    if (!b->serials || open_db(b, true))
        goto out;
    /* Durability is not what is measured: without a sync per commit the
     * hundreds of thousands of small transactions of the population do not
     * wait on this machine's disk. The file is the same either way. */
    if (sqlite3_exec(b->db->db, "PRAGMA synchronous=OFF", NULL, NULL, NULL) != SQLITE_OK ||
        cms_bootstrap(b->db, admin.name) != CMS_OK || cms_operator_add(b->db, &admin, issuer.name, issuer.roles) ||
        cms_operator_add(b->db, &admin, "helpdesk1", CMS_ROLE_HELPDESK) ||
        cms_operator_add(b->db, &admin, "helpdesk2", CMS_ROLE_HELPDESK)) {
        fail(b, "operators");
        goto out;
    }
    if (import_profile(b) || import_holders(b) || issue_cards(b) || add_locks(b) || fill_audit(b))
        goto out;
    if (sqlite3_exec(b->db->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK) {
        fail(b, "checkpoint");
        goto out;
    }
    b->naudit = count(b, "SELECT count(*) FROM audit");
    b->ndevices = count(b, "SELECT count(*) FROM devices");
    b->pending_issue = count(b, "SELECT count(*) FROM jobs WHERE kind = 'issue' AND state = 'pending'");
    b->populate_s = now_s() - t0;
    b->file_bytes = stat(b->path, &st) == 0 ? (int64_t)st.st_size : -1;
    rc = 0;
out:
    /* Measured on a connection of its own, opened as the tool opens it. */
    cms_close(b->db);
    b->db = NULL;
    return rc;
}

/* The keys each measurement looks up, at random but the same every run. */
static void choose_samples(struct bench *b)
{
    for (size_t i = 0; i < SAMPLES; i++) {
        size_t h = (size_t)(rnd() % b->nholders), card;
        holder_uid(h, b->uids[i]);
        snprintf(b->surnames[i], sizeof(b->surnames[i]), "%s", holder_family(h));
        holder_name(h, b->full_names[i]);
        do
            card = (size_t)(rnd() % b->ncards);
        while (!b->serials[card][0]);
        snprintf(b->card_serials[i], sizeof(b->card_serials[i]), "%s", b->serials[card]);
        if (b->nlocks)
            snprintf(b->devices[i], sizeof(b->devices[i]), "%s", b->lock_devices[rnd() % b->nlocks]);
        else
            tpm_device(h, b->devices[i]);
    }
}

/* ---- measurements ---- */

static int count_holder(void *arg, const struct cms_holder *h)
{
    (void)h;
    ++*(int64_t *)arg;
    return CMS_OK;
}

static int count_card(void *arg, const struct cms_card *c)
{
    (void)c;
    ++*(int64_t *)arg;
    return CMS_OK;
}

static int count_audit(void *arg, const struct cms_audit_rec *r)
{
    (void)r;
    ++*(int64_t *)arg;
    return CMS_OK;
}

static int count_job(void *arg, const struct cms_job *j, const struct cms_card *c)
{
    (void)j;
    (void)c;
    ++*(int64_t *)arg;
    return CMS_OK;
}

static int m_holder_get(struct bench *b, size_t i, int64_t *rows)
{
    struct cms_holder h;
    int rc = cms_holder_get(b->db, b->uids[i], &h);
    *rows += rc == CMS_OK;
    cms_holder_clear(&h);
    return rc;
}

static int m_find_uid(struct bench *b, size_t i, int64_t *rows)
{
    return cms_holder_find(b->db, b->uids[i], FIND_LIMIT, count_holder, rows);
}

static int m_find_surname(struct bench *b, size_t i, int64_t *rows)
{
    return cms_holder_find(b->db, b->surnames[i], FIND_LIMIT, count_holder, rows);
}

static int m_find_full_name(struct bench *b, size_t i, int64_t *rows)
{
    return cms_holder_find(b->db, b->full_names[i], FIND_LIMIT, count_holder, rows);
}

static int m_card_list(struct bench *b, size_t i, int64_t *rows)
{
    return cms_card_list(b->db, b->uids[i], count_card, rows);
}

static int m_audit_card(struct bench *b, size_t i, int64_t *rows)
{
    struct cms_audit_query q = { .card = b->card_serials[i] };
    return cms_audit_search(b->db, &q, count_audit, rows);
}

static int m_audit_holder(struct bench *b, size_t i, int64_t *rows)
{
    struct cms_audit_query q = { .holder = b->uids[i] };
    return cms_audit_search(b->db, &q, count_audit, rows);
}

static int m_audit_device(struct bench *b, size_t i, int64_t *rows)
{
    struct cms_audit_query q = { .device = b->devices[i] };
    return cms_audit_search(b->db, &q, count_audit, rows);
}

static int m_due_all(struct bench *b, size_t i, int64_t *rows)
{
    (void)i;
    return cms_jobs_due(b->db, NULL, NULL, count_job, rows);
}

static int m_due_device(struct bench *b, size_t i, int64_t *rows)
{
    return cms_jobs_due(b->db, b->devices[i], NULL, count_job, rows);
}

static int m_verify(struct bench *b, size_t i, int64_t *rows)
{
    struct cms_audit_check check;
    int rc = cms_audit_verify(b->db, &check);
    (void)i;
    *rows += check.records;
    return rc;
}

/* The renewal scan (`tessera scan`), at b->now, by the administrator. Its
 * first step: the renewal jobs; dry, they are made (with their audit
 * records) and rolled back, so it repeats. */
static int renewal_jobs(struct bench *b, bool dry, int64_t *rows)
{
    int made, cancelled;
    int rc = cms_renewal_jobs(b->db, &admin, b->now, dry, &made, &cancelled);
    *rows += made + cancelled;
    return rc;
}

static int m_renewal_dry(struct bench *b, size_t i, int64_t *rows)
{
    (void)i;
    return renewal_jobs(b, true, rows);
}

static int m_renewal(struct bench *b, size_t i, int64_t *rows)
{
    (void)i;
    return renewal_jobs(b, false, rows);
}

static int count_notice(void *arg, const struct cms_notice *n)
{
    (void)n;
    ++*(int64_t *)arg;
    return CMS_OK;
}

static int m_notices(struct bench *b, size_t i, int64_t *rows)
{
    (void)i;
    return cms_renewal_notices_due(b->db, b->now, count_notice, rows);
}

static int m_temporaries(struct bench *b, size_t i, int64_t *rows)
{
    int64_t *ids;
    size_t n;
    int rc = cms_temporaries_expired(b->db, b->now, &ids, &n);
    (void)i;
    if (rc == CMS_OK)
        free(ids);
    *rows += (int64_t)n;
    return rc;
}

/* What is timed: calls per repetition (the time shown is per call). A
 * measurement that changes what the next finds runs ONCE: one call, no
 * untimed one before. One with a per label has a row of its time per item
 * under it: per row it returned, or (PER_WINDOW) per active certificate
 * within the renewal window, which the scan reads whatever it returns. */
enum { ONCE = 1, PER_WINDOW = 2 };
struct measure {
    const char *name;
    int (*run)(struct bench *b, size_t i, int64_t *rows);
    int calls;
    int how;
    const char *per;
};

static const struct measure measures[] = {
    { "holder by uid (cms_holder_get)", m_holder_get, 1000, 0, NULL },
    { "holder search, a uid (cms_holder_find)", m_find_uid, 20, 0, NULL },
    { "holder search, a full name, first 20", m_find_full_name, 20, 0, NULL },
    { "holder search, a surname, first 20", m_find_surname, 20, 0, NULL },
    { "cards of a holder (cms_card_list)", m_card_list, 1000, 0, NULL },
    { "audit search, one card", m_audit_card, 1000, 0, NULL },
    { "audit search, one holder", m_audit_holder, 1000, 0, NULL },
    { "audit search, one device", m_audit_device, 20, 0, NULL },
    { "due-job scan, all devices (cms_jobs_due)", m_due_all, 5, 0, NULL },
    { "due-job scan, one device", m_due_device, 1000, 0, NULL },
    /* The renewal scan, in the order it meets the database: the jobs it
     * would make (dry: made and rolled back), the first real scan making
     * them all (one audit record each), the hourly scan after it (every
     * card in the window has its job: none made), the notices due (every
     * new job's holder, none told yet), and the temporary cards past their
     * end. The audit verify below reads the first scan's records too. */
    { "renewal scan: jobs, dry run (cms_renewal_jobs)", m_renewal_dry, 1, 0, "per job found" },
    { "renewal scan: jobs, first run, all made", m_renewal, 1, ONCE, "per job made" },
    { "renewal scan: jobs, next run, none to make", m_renewal, 1, PER_WINDOW, "per certificate in the window" },
    { "renewal scan: notices due (cms_renewal_notices_due)", m_notices, 1, 0, "per notice" },
    { "renewal scan: temporary cards ended (cms_temporaries_expired)", m_temporaries, 20, 0, NULL },
    { "audit verify, whole trail", m_verify, 1, 0, NULL },
};
#define NMEASURES (sizeof(measures) / sizeof(measures[0]))

struct result {
    double per_call;          /* seconds, median of the repetitions */
    double rows;              /* per call */
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_measure(struct bench *b, const struct measure *m, int reps, struct result *out)
{
    double times[64];
    int64_t rows = 0;
    size_t next = 0;
    if (reps > 64)
        reps = 64;
    if (m->how & ONCE)
        reps = 1;
    /* One repetition before the clock: SQLite's page cache and the
     * statement paths warm, as in a tool that has run a while. */
    for (int r = m->how & ONCE ? 0 : -1; r < reps; r++) {
        double t0 = now_s();
        for (int c = 0; c < m->calls; c++, next++)
            if (m->run(b, next % SAMPLES, &rows) != CMS_OK)
                return fail(b, m->name);
        if (r < 0)
            rows = 0;
        else
            times[r] = (now_s() - t0) / m->calls;
    }
    qsort(times, (size_t)reps, sizeof(times[0]), cmp_double);
    out->per_call = times[reps / 2];
    out->rows = (double)rows / ((double)reps * m->calls);
    return 0;
}

static void fmt_time(double s, char out[24])
{
    if (s < 1e-3)
        snprintf(out, 24, "%.1f µs", s * 1e6);
    else if (s < 1)
        snprintf(out, 24, "%.2f ms", s * 1e3);
    else
        snprintf(out, 24, "%.2f s", s);
}

static void fmt_count(size_t n, char out[24])
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(out, 24, "%zuM", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(out, 24, "%zuk", n / 1000);
    else
        snprintf(out, 24, "%zu", n);
}

/* ---- the renewal scan's query plans ---- */

#define TRACED_MAX 32

/* The statements the library runs, each once, as it has them (no copy of
 * its SQL here to fall out of step). */
struct traced {
    char *sql[TRACED_MAX];
    size_t n;
};

static int trace_stmt(unsigned type, void *ctx, void *p, void *x)
{
    struct traced *t = ctx;
    const char *sql = sqlite3_sql(p);
    (void)type;
    (void)x;
    if (!sql || t->n == TRACED_MAX || (strncmp(sql, "SELECT", 6) && strncmp(sql, "INSERT", 6) &&
                                       strncmp(sql, "UPDATE", 6) && strncmp(sql, "DELETE", 6)))
        return 0;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->sql[i], sql))
            return 0;
    t->sql[t->n] = strdup(sql);
    t->n += t->sql[t->n] != NULL;
    return 0;
}

/* EXPLAIN QUERY PLAN of one statement, as the tree sqlite3 prints; a scan
 * of a whole table or index marked (of a partial index: all its rows, which
 * may be few). Whether the plan names index. */
static bool explain(struct bench *b, FILE *out, const char *sql, const char *index)
{
    char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st = q ? cms_prepare(b->db, q) : NULL;
    int ids[64], depths[64], nids = 0;
    bool used = false;
    fprintf(out, "\n    %s\n", sql);
    while (st && sqlite3_step(st) == SQLITE_ROW) {
        int id = sqlite3_column_int(st, 0), parent = sqlite3_column_int(st, 1), depth = 0;
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        for (int i = 0; i < nids; i++)
            if (ids[i] == parent)
                depth = depths[i] + 1;
        if (nids < 64) {
            ids[nids] = id;
            depths[nids++] = depth;
        }
        fprintf(out, "    %*s%s%s\n", 2 * depth + 2, "", detail,
                strncmp(detail, "SCAN ", 5) || strstr(detail, "CONSTANT ROW") ? ""
                : strstr(sql, " LIMIT ")                                     ? "   <- a scan, to its LIMIT"
                : strstr(detail, " INDEX ")                                  ? "   <- the whole index"
                                                                             : "   <- the whole table");
        used |= index && strstr(detail, index) != NULL;
    }
    if (!st)
        fprintf(out, "      (no plan: %s)\n", b->db->err);
    sqlite3_finalize(st);
    sqlite3_free(q);
    return used;
}

/* The plans of every statement one renewal scan runs (its jobs step, dry,
 * with the jobs it would make; the notices; the temporary cards), and
 * whether the two scans of the tables use their indexes: the candidates
 * (certificates by not_after) certificates_expiry, the temporary cards
 * cards_temporary. Left in b->plans for the report. */
static int explain_renewal(struct bench *b)
{
    struct traced t = { { NULL }, 0 };
    int64_t rows = 0;
    char *text = NULL, fmt[24];
    size_t len = 0;
    int rc;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return fail(b, "out of memory");
    sqlite3_trace_v2(b->db->db, SQLITE_TRACE_STMT, trace_stmt, &t);
    rc = renewal_jobs(b, true, &rows);
    if (rc == CMS_OK)
        rc = m_notices(b, 0, &rows);
    if (rc == CMS_OK)
        rc = m_temporaries(b, 0, &rows);
    sqlite3_trace_v2(b->db->db, 0, NULL, NULL);
    fmt_count(b->ncards, fmt);
    fprintf(out, "Query plans of the renewal scan at %s cards (EXPLAIN QUERY PLAN of each statement it ran):\n", fmt);
    for (size_t i = 0; i < t.n; i++) {
        const char *index = strstr(t.sql[i], "not_after <=")                 ? "certificates_expiry"
                            : strstr(t.sql[i], "temporary = 1 AND expires") ? "cards_temporary"
                                                                             : NULL;
        bool used = explain(b, out, t.sql[i], index);
        if (index)
            fprintf(out, "    -> %s %s\n", used ? "uses" : "DOES NOT USE", index);
        free(t.sql[i]);
    }
    if (fclose(out) || rc != CMS_OK) {
        free(text);
        return rc != CMS_OK ? fail(b, "renewal scan") : fail(b, "out of memory");
    }
    b->plans = text;
    return 0;
}

/* ---- one size, and the report ---- */

static int64_t count_at(struct bench *b, const char *sql, const char *at)
{
    sqlite3_stmt *st = cms_prepare(b->db, sql);
    int64_t n = -1;
    if (st && sqlite3_bind_text(st, 1, at, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int bench_size(size_t ncards, int reps, bool plans, struct bench *b, struct result res[NMEASURES])
{
    char cutoff[32];
    int64_t t;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int rc = -1;
    memset(b, 0, sizeof(*b));
    rng = 0x9e3779b97f4a7c15u;   /* each size is filled alike, whatever ran before */
    b->ncards = ncards;
    b->nholders = (ncards + 1) / 2;
    snprintf(b->dir, sizeof(b->dir), "%s/bench-cms-XXXXXX", tmp);
    if (!mkdtemp(b->dir)) {
        fprintf(stderr, "bench-cms: %s: %s\n", b->dir, strerror(errno));
        return -1;
    }
    snprintf(b->path, sizeof(b->path), "%s/cms.db", b->dir);
    fprintf(stderr, "bench-cms: %zu cards, %zu audit records: populating ...\n", ncards, ncards * AUDIT_PER_CARD);
    if (populate(b) || open_db(b, false))
        goto out;
    choose_samples(b);
    /* The renewal scan's time: now, as cron starts it after the population. */
    t = (int64_t)time(NULL);
    cms_time_text(t, b->now);
    cms_time_text(t + RENEWAL_WINDOW * 86400, cutoff);
    b->ncerts = count(b, "SELECT count(*) FROM certificates WHERE state = 'active'");
    b->nwindow = count_at(b, "SELECT count(*) FROM certificates WHERE state = 'active' AND not_after <= ?1", cutoff);
    if (plans && explain_renewal(b))
        goto out;
    fprintf(stderr, "bench-cms: %zu cards: populated in %.1f s, measuring ...\n", ncards, b->populate_s);
    for (size_t i = 0; i < NMEASURES; i++)
        if (run_measure(b, &measures[i], measures[i].calls == 1 ? (reps + 1) / 2 | 1 : reps, &res[i]))
            goto out;
    rc = 0;
out:
    cms_close(b->db);
    b->db = NULL;
    free(b->serials);
    free(b->lock_devices);
    b->serials = NULL;
    b->lock_devices = NULL;
    if (keep) {
        fprintf(stderr, "bench-cms: kept %s\n", b->path);
        return rc;
    }
    /* The database and its files go with the folder. */
    const char *const files[] = { "cms.db", "cms.db-wal", "cms.db-shm", "holders.csv", "staff.ini" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[320];
        snprintf(path, sizeof(path), "%s/%s", b->dir, files[i]);
        unlink(path);
    }
    rmdir(b->dir);
    return rc;
}

static void report(const struct bench *benches, size_t nsizes, struct result res[][NMEASURES])
{
    char a[24], t[24];
    printf("|");
    for (size_t s = 0; s < nsizes; s++) {
        fmt_count(benches[s].ncards, a);
        printf(" | %s cards", a);
    }
    printf(" |\n|---|");
    for (size_t s = 0; s < nsizes; s++)
        printf("---|");
    printf("\n");
#define ROW(label, ...)                                                                                        \
    do {                                                                                                       \
        printf("| %s |", label);                                                                              \
        for (size_t s = 0; s < nsizes; s++) {                                                                  \
            const struct bench *b = &benches[s];                                                               \
            printf(" ");                                                                                       \
            __VA_ARGS__;                                                                                       \
            printf(" |");                                                                                      \
        }                                                                                                      \
        printf("\n");                                                                                          \
    } while (0)
    ROW("holders", printf("%zu", b->nholders));
    ROW("audit records", printf("%" PRId64, b->naudit));
    ROW("devices", printf("%" PRId64, b->ndevices));
    ROW("pending jobs: issue / lock due / lock later",
        printf("%" PRId64 " / %zu / %zu", b->pending_issue, b->ndue, b->nlocks - b->ndue));
    ROW("request batches of 500 refused: code clash", printf("%" PRId64, b->clashes));
    ROW("temporary cards (forgotten PIV cards; issued over 14 days, 7-day life)", printf("%" PRId64, b->ntemporary));
    ROW("active certificates / expiring within 30 days", printf("%" PRId64 " / %" PRId64, b->ncerts, b->nwindow));
    ROW("population", printf("%.1f s", b->populate_s));
    ROW("database file", printf("%.1f MB", (double)b->file_bytes / 1e6));
#undef ROW

    printf("\n| operation (per call, median of the repetitions) |");
    for (size_t s = 0; s < nsizes; s++) {
        fmt_count(benches[s].ncards, a);
        printf(" %s |", a);
    }
    printf(" growth ×%.0f | rows per call |\n|---|", (double)benches[nsizes - 1].ncards / (double)benches[0].ncards);
    for (size_t s = 0; s < nsizes + 2; s++)
        printf("---|");
    printf("\n");
    for (size_t i = 0; i < NMEASURES; i++) {
        printf("| %s |", measures[i].name);
        for (size_t s = 0; s < nsizes; s++) {
            fmt_time(res[s][i].per_call, t);
            printf(" %s |", t);
        }
        printf(" %.1f | ", res[0][i].per_call > 0 ? res[nsizes - 1][i].per_call / res[0][i].per_call : 0.0);
        for (size_t s = 0; s < nsizes; s++)
            printf(res[s][i].rows < 100 ? "%s%.1f" : "%s%.0f", s ? " / " : "", res[s][i].rows);
        printf(" |\n");
        if (!measures[i].per)
            continue;
        /* The time per item: per row returned, or per certificate read. */
        double first = 0, last = 0;
        printf("| ↳ %s |", measures[i].per);
        for (size_t s = 0; s < nsizes; s++) {
            double items = measures[i].how & PER_WINDOW ? (double)benches[s].nwindow : res[s][i].rows;
            double each = items > 0 ? res[s][i].per_call / items : 0;
            if (s == 0)
                first = each;
            last = each;
            fmt_time(each, t);
            printf(" %s |", items > 0 ? t : "–");
        }
        printf(" %.1f | ", first > 0 ? last / first : 0.0);
        for (size_t s = 0; measures[i].how & PER_WINDOW && s < nsizes; s++)
            printf("%s%" PRId64, s ? " / " : "", benches[s].nwindow);
        printf(" |\n");
    }
    for (size_t s = 0; s < nsizes; s++)
        if (benches[s].plans)
            printf("\n%s", benches[s].plans);
}

static int parse_sizes(const char *arg, size_t sizes[MAX_SIZES], size_t *n)
{
    char *end;
    *n = 0;
    for (const char *p = arg; *p; p = *end == ',' ? end + 1 : end) {
        unsigned long long v = strtoull(p, &end, 10);
        if (*end == 'k' || *end == 'K')
            v *= 1000, end++;
        else if (*end == 'M')
            v *= 1000000, end++;
        /* From 100 cards: enough that some are collected, to be looked up. */
        if (end == p || (*end && *end != ',') || v < 100 || *n == MAX_SIZES)
            return -1;
        sizes[(*n)++] = (size_t)v;
    }
    return *n ? 0 : -1;
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES], nsizes = 0;
    struct bench *benches = NULL;
    struct result (*res)[NMEASURES] = NULL;
    const char *ladder = "1k,10k,100k";
    int reps = 5, rc = 1, arg = 1;

    for (; arg < argc && argv[arg][0] == '-'; arg++) {
        if (!strcmp(argv[arg], "--keep"))
            keep = true;
        else if (!strcmp(argv[arg], "--reps") && arg + 1 < argc)
            reps = atoi(argv[++arg]);
        else
            break;
    }
    if (arg < argc)
        ladder = argv[arg++];
    if (arg != argc || reps < 1 || parse_sizes(ladder, sizes, &nsizes)) {
        fprintf(stderr, "usage: bench-cms [--reps N] [--keep] [SIZES]   e.g. bench-cms 1k,10k,100k (cards)\n");
        return 2;
    }
    benches = calloc(nsizes, sizeof(*benches));
    res = calloc(nsizes, sizeof(*res));
    if (!benches || !res)
        goto out;
    size_t largest = 0;
    for (size_t s = 1; s < nsizes; s++)
        if (sizes[s] > sizes[largest])
            largest = s;
    for (size_t s = 0; s < nsizes; s++)
        if (bench_size(sizes[s], reps, s == largest, &benches[s], res[s]))
            goto out;
    printf("SQLite %s, %ld cores, %d repetitions\n\n", sqlite3_libversion(), sysconf(_SC_NPROCESSORS_ONLN), reps);
    report(benches, nsizes, res);
    rc = 0;
out:
    for (size_t s = 0; benches && s < nsizes; s++)
        free(benches[s].plans);
    free(benches);
    free(res);
    return rc;
}
