/* Cards, certificates and the issuance job in the database (cards.h). */
#include "config.h"
#include "cards.h"
#include "escrow.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../util.h"
#include "audit.h"
#include "ca.h"
#include "enrolment.h"
#include "profile.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define CODE_CHARS 20
#define CODE_ID_CHARS 5    /* the first group: it finds the job (code_id) */
static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* ---- collection codes ---- */

static void code_make(char code[CMS_CODE_LEN], const uint8_t raw[13])
{
    size_t n = 0;
    for (int i = 0; i < CODE_CHARS; i++) {
        int bit = i * 5, v = 0;
        for (int b = 0; b < 5; b++, bit++)
            v = (v << 1) | ((raw[bit / 8] >> (7 - bit % 8)) & 1);
        if (i && i % 5 == 0)
            code[n++] = '-';
        code[n++] = crockford[v];
    }
    code[n] = '\0';
}

/* What was typed, as stored: dashes and spaces dropped, upper case, and
 * Crockford's look-alikes (O for 0, I and L for 1) read as meant. */
static int code_normalize(const char *in, char out[CODE_CHARS + 1])
{
    size_t n = 0;
    for (; *in; in++) {
        int c = toupper((unsigned char)*in);
        if (c == '-' || c == ' ')
            continue;
        if (c == 'O')
            c = '0';
        else if (c == 'I' || c == 'L')
            c = '1';
        if (!strchr(crockford, c) || c == 0 || n == CODE_CHARS)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n == CODE_CHARS ? 0 : -1;
}

static int code_hash(const uint8_t salt[SALT_LEN], const char *norm, uint8_t out[HASH_LEN])
{
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) && EVP_DigestUpdate(ctx, "tessera-collect-v1", 18) &&
             EVP_DigestUpdate(ctx, salt, SALT_LEN) && EVP_DigestUpdate(ctx, norm, CODE_CHARS) &&
             EVP_DigestFinal_ex(ctx, out, &n) && n == HASH_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

#define CODE_CLASH_TRIES 8   /* first groups taken by other codes, in a row: never, short of a full table */

/* A new code: random, shown once; the database keeps its first group (to
 * find the job: norm's first 5 characters) and a salted hash of the whole. */
int cms_code_random(char code[CMS_CODE_LEN])
{
    uint8_t raw[13];
    int rc = RAND_bytes(raw, sizeof(raw)) == 1 ? CMS_OK : CMS_ERR;
    if (rc == CMS_OK)
        code_make(code, raw);
    tess_wipe(raw, sizeof(raw));
    return rc;
}

static int code_new(struct cms_db *db, char code[CMS_CODE_LEN], char norm[CODE_CHARS + 1],
                    uint8_t secret[SALT_LEN + HASH_LEN])
{
    int rc = CMS_OK;
    if (cms_code_random(code) != CMS_OK || RAND_bytes(secret, SALT_LEN) != 1)
        rc = cms_fail(db, CMS_ERR, "no random numbers");
    if (rc == CMS_OK && (code_normalize(code, norm) || code_hash(secret, norm, secret + SALT_LEN)))
        rc = cms_fail(db, CMS_ERR, "cannot make a collection code");
    return rc;
}

/* Run st, which stores a code's secret and first group (bound at
 * secret_col and norm_col, code_id): two codes sharing a first group (25 bits,
 * among the codes not yet spent) make another code. SQLite undoes only
 * the failed statement. */
static int step_with_code(struct cms_db *db, sqlite3_stmt *st, int secret_col, int norm_col,
                          char code[CMS_CODE_LEN], char norm[CODE_CHARS + 1], uint8_t secret[SALT_LEN + HASH_LEN])
{
    int rc;
    for (int tries = 0; sqlite3_step(st) != SQLITE_DONE; tries++) {
        if (sqlite3_extended_errcode(db->db) != SQLITE_CONSTRAINT_UNIQUE || tries == CODE_CLASH_TRIES)
            return cms_sql_fail(db, "jobs");
        sqlite3_reset(st);
        if ((rc = code_new(db, code, norm, secret)) != CMS_OK)
            return rc;
        sqlite3_bind_blob(st, secret_col, secret, SALT_LEN + HASH_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, norm_col, norm, CODE_ID_CHARS, SQLITE_STATIC);
    }
    return CMS_OK;
}

/* ---- rows ---- */

#define CARD_COLS                                                                                              \
    "c.id, c.type, coalesce(c.serial, ''), c.state, h.uid, coalesce(d.name, ''), p.name, p.version, c.created, " \
    "c.updated, c.temporary, coalesce(c.expires, ''), coalesce(c.replaces_id, 0)"
#define CARD_FROM                                                                                              \
    " FROM cards c JOIN holders h ON h.id = c.holder_id JOIN profiles p ON p.id = c.profile_id"              \
    " LEFT JOIN devices d ON d.id = c.device_id"

static void card_row(sqlite3_stmt *st, int base, struct cms_card *c)
{
    memset(c, 0, sizeof(*c));
    c->id = sqlite3_column_int64(st, base);
    cms_column_text(st, base + 1, c->type, sizeof(c->type));
    cms_column_text(st, base + 2, c->serial, sizeof(c->serial));
    cms_column_text(st, base + 3, c->state, sizeof(c->state));
    cms_column_text(st, base + 4, c->holder, sizeof(c->holder));
    cms_column_text(st, base + 5, c->device, sizeof(c->device));
    cms_column_text(st, base + 6, c->profile, sizeof(c->profile));
    c->profile_version = sqlite3_column_int(st, base + 7);
    cms_column_text(st, base + 8, c->created, sizeof(c->created));
    cms_column_text(st, base + 9, c->updated, sizeof(c->updated));
    c->temporary = sqlite3_column_int(st, base + 10) != 0;
    cms_column_text(st, base + 11, c->expires, sizeof(c->expires));
    c->replaces = sqlite3_column_int64(st, base + 12);
}

#define JOB_COLS                                                                                               \
    "j.id, j.kind, j.state, coalesce(j.step, ''), coalesce(j.card_id, 0), j.created_by, "                     \
    "coalesce(j.code_expires, ''), j.created, j.updated, coalesce(j.error, ''), coalesce(j.due, '')"
#define JOB_NCOLS 11

static void job_row(sqlite3_stmt *st, int base, struct cms_job *j)
{
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(st, base);
    cms_column_text(st, base + 1, j->kind, sizeof(j->kind));
    cms_column_text(st, base + 2, j->state, sizeof(j->state));
    cms_column_text(st, base + 3, j->step, sizeof(j->step));
    j->card_id = sqlite3_column_int64(st, base + 4);
    cms_column_text(st, base + 5, j->created_by, sizeof(j->created_by));
    cms_column_text(st, base + 6, j->code_expires, sizeof(j->code_expires));
    cms_column_text(st, base + 7, j->created, sizeof(j->created));
    cms_column_text(st, base + 8, j->updated, sizeof(j->updated));
    cms_column_text(st, base + 9, j->error, sizeof(j->error));
    cms_column_text(st, base + 10, j->due, sizeof(j->due));
}

void cms_holder_actor(const struct cms_card *card, char *out, size_t outlen)
{
    snprintf(out, outlen, "holder:%s", card->holder);
}

int cms_card_audit(struct cms_db *db, const char *who, const char *action, const char *result,
                   const struct cms_card *card, const char *detail)
{
    struct cms_audit_rec rec = {
        .operator = who, .action = action, .result = result, .holder = card->holder,
        .card = card->serial[0] ? card->serial : NULL, .device = card->device[0] ? card->device : NULL,
        .detail = detail,
    };
    return cms_audit_append(db, &rec);
}

static int device_id(struct cms_db *db, const char *name, bool create, int64_t *id)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id FROM devices WHERE name = ?");
    char now[32];
    int rc = CMS_NOTFOUND;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = CMS_OK;
    }
    sqlite3_finalize(st);
    if (rc == CMS_OK || !create)
        return rc == CMS_OK ? rc : cms_fail(db, rc, "no device %s (tessera device add)", name);
    cms_now(now);
    st = cms_prepare(db, "INSERT INTO devices (name, created) VALUES (?, ?)");
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "devices");
    sqlite3_finalize(st);
    *id = sqlite3_last_insert_rowid(db->db);
    return rc;
}

int cms_device_add(struct cms_db *db, const struct cms_actor *by, const char *name)
{
    int64_t id;
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    if (device_id(db, name, false, &id) == CMS_OK) {
        cms_rollback(db);
        return cms_fail(db, CMS_EXISTS, "device %s is known already", name);
    }
    rc = device_id(db, name, true, &id);
    if (rc == CMS_OK) {
        struct cms_audit_rec rec = { .operator = by->name, .action = "device.add", .result = "ok", .device = name };
        rc = cms_audit_append(db, &rec);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_device_list(struct cms_db *db, cms_device_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT d.name, d.created, count(c.id) FROM devices d LEFT JOIN cards c"
                                       " ON c.device_id = d.id GROUP BY d.id ORDER BY d.name");
    int rc = CMS_OK, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
                sqlite3_column_int(st, 2));
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "devices");
    sqlite3_finalize(st);
    return rc;
}

/* ---- request ---- */

int cms_card_request_in(struct cms_db *db, const struct cms_actor *by, const struct cms_request *r,
                        char code[CMS_CODE_LEN], int64_t *card_id, int64_t *job_id)
{
    struct cms_profile p;
    struct cms_card card = { 0 };
    uint8_t secret[SALT_LEN + HASH_LEN];
    char norm[CODE_CHARS + 1], now[32], expires[32], card_expires[32] = "", detail[400];
    int64_t holder_id = 0, dev_id = 0, t = (int64_t)time(NULL);
    sqlite3_stmt *st = NULL;
    const char *type = r->type;
    int valid_days = r->valid_days;
    unsigned want;
    int rc;

    code[0] = '\0';
    if (valid_days < 1 || valid_days > 365)
        return cms_fail(db, CMS_INVALID, "a collection code is valid for 1 to 365 days");
    if ((rc = cms_profile_get(db, r->profile, 0, &p)) != CMS_OK)
        goto out;
    if (!type)
        type = p.card_types == CMS_CARD_PIV ? "piv" : p.card_types == CMS_CARD_TPM ? "tpm" : NULL;
    want = !type ? 0 : !strcmp(type, "tpm") ? CMS_CARD_TPM : !strcmp(type, "piv") ? CMS_CARD_PIV : 0;
    if (!type) {
        rc = cms_fail(db, CMS_INVALID, "profile %s is for TPM and PIV cards: say which (--type tpm|piv)", r->profile);
        goto out;
    }
    if (!(p.card_types & want)) {
        rc = cms_fail(db, CMS_INVALID, "profile %s is not for %s cards", r->profile, type);
        goto out;
    }
    st = cms_prepare(db, "SELECT id, name FROM holders WHERE uid = ?");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_text(st, 1, r->holder, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = cms_fail(db, CMS_NOTFOUND, "no holder %s", r->holder);
        goto out;
    }
    holder_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (r->device && (rc = device_id(db, r->device, false, &dev_id)) != CMS_OK)
        goto out;
    /* A temporary card lives the profile's temporary-card-days from now,
     * and its code cannot outlive it. */
    if (r->temporary_days > 0) {
        cms_time_text(t + (int64_t)r->temporary_days * 86400, card_expires);
        if (valid_days > r->temporary_days)
            valid_days = r->temporary_days;
    }
    if ((rc = code_new(db, code, norm, secret)) != CMS_OK)
        goto out;
    cms_now(now);
    cms_time_text(t + (int64_t)valid_days * 86400, expires);
    st = cms_prepare(db, "INSERT INTO cards (type, state, holder_id, device_id, profile_id, replaces_id, temporary, "
                         "expires, created, updated) VALUES (?, 'requested', ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, holder_id);
    if (dev_id)
        sqlite3_bind_int64(st, 3, dev_id);
    sqlite3_bind_int64(st, 4, p.id);
    if (r->replaces)
        sqlite3_bind_int64(st, 5, r->replaces);
    sqlite3_bind_int(st, 6, card_expires[0] != '\0');
    if (card_expires[0])
        sqlite3_bind_text(st, 7, card_expires, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, now, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = cms_sql_fail(db, "cards");
        goto out;
    }
    *card_id = sqlite3_last_insert_rowid(db->db);
    sqlite3_finalize(st);
    st = cms_prepare(db, "INSERT INTO jobs (kind, state, card_id, holder_id, device_id, secret, code_id, "
                         "code_expires, created, created_by, updated) VALUES ('issue', 'pending', ?, ?, ?, ?, ?, ?, "
                         "?, ?, ?)");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, *card_id);
    sqlite3_bind_int64(st, 2, holder_id);
    if (dev_id)
        sqlite3_bind_int64(st, 3, dev_id);
    sqlite3_bind_blob(st, 4, secret, sizeof(secret), SQLITE_STATIC);
    sqlite3_bind_text(st, 5, norm, CODE_ID_CHARS, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, expires, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, by->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, now, -1, SQLITE_STATIC);
    if ((rc = step_with_code(db, st, 4, 5, code, norm, secret)) != CMS_OK)
        goto out;
    *job_id = sqlite3_last_insert_rowid(db->db);
    snprintf(card.holder, sizeof(card.holder), "%s", r->holder);
    snprintf(card.device, sizeof(card.device), "%s", r->device ? r->device : "");
    snprintf(detail, sizeof(detail), "card %" PRId64 " (%s%s), profile %s version %d, job %" PRId64 ", code until %s",
             *card_id, type, card_expires[0] ? ", temporary" : "", p.name, p.version, *job_id, expires);
    if (card_expires[0])
        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), ", card until %s", card_expires);
    if (r->replaces)
        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), ", replaces card %" PRId64, r->replaces);
    rc = cms_card_audit(db, by->name, "card.request", "ok", &card, detail);
out:
    sqlite3_finalize(st);
    tess_wipe(norm, sizeof(norm));
    tess_wipe(secret, sizeof(secret));
    if (rc != CMS_OK)
        tess_wipe(code, CMS_CODE_LEN);
    return rc;
}

int cms_card_request(struct cms_db *db, const struct cms_actor *by, const struct cms_request *r,
                     char code[CMS_CODE_LEN], int64_t *card_id, int64_t *job_id)
{
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    rc = cms_card_request_in(db, by, r, code, card_id, job_id);
    if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
        return CMS_OK;
    cms_rollback(db);
    tess_wipe(code, CMS_CODE_LEN);
    return rc;
}

int cms_card_request_batch(struct cms_db *db, const struct cms_actor *by, const struct cms_request *reqs, size_t n,
                           char (*codes)[CMS_CODE_LEN], int64_t *card_ids, int64_t *job_ids)
{
    char detail[200];
    int rc = cms_begin(db);
    size_t i;
    if (rc != CMS_OK)
        return rc;
    for (i = 0; i < n && rc == CMS_OK; i++)
        rc = cms_card_request_in(db, by, &reqs[i], codes[i], &card_ids[i], &job_ids[i]);
    if (rc != CMS_OK) {
        char why[sizeof(db->err)];
        snprintf(why, sizeof(why), "%s", db->err);
        cms_fail(db, rc, "holder %zu of the batch (%s): %s; no card of the batch was requested", i,
                 reqs[i - 1].holder, why);
    } else {
        struct cms_audit_rec rec = { .operator = by->name, .action = "card.request", .result = "ok", .detail = detail };
        snprintf(detail, sizeof(detail), "a batch of %zu cards of profile %s, cards %" PRId64 " to %" PRId64, n,
                 n ? reqs[0].profile : "-", n ? card_ids[0] : 0, n ? card_ids[n - 1] : 0);
        rc = cms_audit_append(db, &rec);
    }
    if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
        return CMS_OK;
    cms_rollback(db);
    tess_wipe(codes, n * CMS_CODE_LEN);
    return rc;
}

int cms_card_new_code(struct cms_db *db, const struct cms_actor *by, int64_t card_id, int valid_days,
                      char code[CMS_CODE_LEN])
{
    struct cms_card card;
    uint8_t secret[SALT_LEN + HASH_LEN];
    char norm[CODE_CHARS + 1], now[32], expires[32], detail[200];
    sqlite3_stmt *st = NULL;
    int64_t job_id = 0;
    int rc;

    code[0] = '\0';
    if (valid_days < 1 || valid_days > 365)
        return cms_fail(db, CMS_INVALID, "a collection code is valid for 1 to 365 days");
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, card_id, NULL, &card)) != CMS_OK)
        goto out;
    if (!(st = cms_prepare(db, "SELECT id FROM jobs WHERE card_id = ? AND kind = 'issue' AND state = 'pending'"))) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, card_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        job_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (!job_id || strcmp(card.state, "requested")) {
        rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is %s and waits for no collect%s", card_id, card.state,
                      strcmp(card.state, "requested") ? "" : " (it is being collected now)");
        goto out;
    }
    if ((rc = code_new(db, code, norm, secret)) != CMS_OK)
        goto out;
    cms_now(now);
    cms_time_text((int64_t)time(NULL) + (int64_t)valid_days * 86400, expires);
    if (card.expires[0] && strcmp(expires, card.expires) > 0)
        snprintf(expires, sizeof(expires), "%s", card.expires);   /* not beyond a temporary card's life */
    if (!(st = cms_prepare(db, "UPDATE jobs SET secret = ?, code_id = ?, code_expires = ?, code_tries = 0, "
                               "updated = ? WHERE id = ?"))) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_blob(st, 1, secret, sizeof(secret), SQLITE_STATIC);
    sqlite3_bind_text(st, 2, norm, CODE_ID_CHARS, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, expires, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, job_id);
    if ((rc = step_with_code(db, st, 1, 2, code, norm, secret)) != CMS_OK)
        goto out;
    snprintf(detail, sizeof(detail), "job %" PRId64 ": a new collection code until %s; the old one is void", job_id,
             expires);
    rc = cms_card_audit(db, by->name, "card.code", "ok", &card, detail);
out:
    sqlite3_finalize(st);
    tess_wipe(norm, sizeof(norm));
    tess_wipe(secret, sizeof(secret));
    if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
        return CMS_OK;
    cms_rollback(db);
    tess_wipe(code, CMS_CODE_LEN);
    return rc;
}

/* ---- collect ---- */

/* A process's start time (field 22 of /proc/PID/stat, counted from after
 * the command name's ')'); 0 when it is gone. */
static unsigned long long start_time(const char *stat_path)
{
    char stat[1024] = "", *p;
    FILE *f = fopen(stat_path, "r");
    if (!f)
        return 0;
    if (!fgets(stat, sizeof(stat), f))
        stat[0] = '\0';
    fclose(f);
    p = strrchr(stat, ')');
    for (int field = 2; p && *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return p ? strtoull(p, NULL, 10) : 0;
}

void cms_owner_of(long pid, char *out, size_t outlen)
{
    char host[256] = "", path[64];
    gethostname(host, sizeof(host) - 1);
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    snprintf(out, outlen, "%s %ld %llu", host, pid, start_time(path));
}

void cms_owner_self(char *out, size_t outlen)
{
    cms_owner_of((long)getpid(), out, outlen);
}

/* Is the process that owner names still running here? */
bool cms_owner_alive(const char *owner)
{
    char host[256] = "", mine[400], path[64];
    long pid = 0;
    unsigned long long start = 0;
    if (!owner || sscanf(owner, "%255s %ld %llu", host, &pid, &start) != 3)
        return false;
    cms_owner_self(mine, sizeof(mine));
    if (strncmp(mine, host, strlen(host)) || mine[strlen(host)] != ' ' || pid == (long)getpid())
        return false;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    return start != 0 && start_time(path) == start;
}

int cms_collect_claim(struct cms_db *db, const char *code, const char *device, struct cms_job *job,
                      struct cms_card *card)
{
    char norm[CODE_CHARS + 1], now[32], who[160], detail[700], owner[400];
    uint8_t hash[HASH_LEN];
    sqlite3_stmt *st = NULL;
    int rc, tries;
    bool right;
    const char *job_owner;

    memset(job, 0, sizeof(*job));
    memset(card, 0, sizeof(*card));
    if (code_normalize(code, norm))
        return cms_fail(db, CMS_INVALID, "a collection code is 20 letters and digits, as XXXXX-XXXXX-XXXXX-XXXXX");
    rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    st = cms_prepare(db, "SELECT " JOB_COLS ", j.secret, j.code_tries, j.owner, " CARD_COLS
                         " FROM jobs j JOIN cards c ON c.id = j.card_id JOIN holders h ON h.id = c.holder_id"
                         " JOIN profiles p ON p.id = c.profile_id LEFT JOIN devices d ON d.id = c.device_id"
                         " WHERE j.code_id = ? AND j.kind = 'issue'");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_text(st, 1, norm, CODE_ID_CHARS, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        struct cms_audit_rec rec = { .operator = "holder:?", .action = "card.collect", .result = "denied",
                                     .device = device, .detail = "no job has this collection code" };
        rc = cms_audit_append(db, &rec);
        if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
            rc = cms_fail(db, CMS_DENIED, "no card waits for this collection code");
        goto out;
    }
    job_row(st, 0, job);
    card_row(st, JOB_NCOLS + 3, card);
    tries = sqlite3_column_int(st, JOB_NCOLS + 1);
    job_owner = (const char *)sqlite3_column_text(st, JOB_NCOLS + 2);
    cms_holder_actor(card, who, sizeof(who));
    right = sqlite3_column_bytes(st, JOB_NCOLS) == SALT_LEN + HASH_LEN &&
            code_hash(sqlite3_column_blob(st, JOB_NCOLS), norm, hash) == 0 &&
            CRYPTO_memcmp(hash, (const uint8_t *)sqlite3_column_blob(st, JOB_NCOLS) + SALT_LEN, HASH_LEN) == 0;
    bool alive = cms_owner_alive(job_owner);
    sqlite3_finalize(st);
    st = NULL;
    cms_now(now);
    if (!right) {
        tries++;
        bool void_now = tries >= CMS_CODE_TRIES;
        snprintf(detail, sizeof(detail), "wrong collection code for job %" PRId64 " (%d of %d)%s", job->id, tries,
                 CMS_CODE_TRIES, void_now ? ": code void, card cancelled" : "");
        rc = cms_exec_bind(db, void_now ? "UPDATE jobs SET code_tries = code_tries + 1, state = 'failed', code_id = NULL,"
                                      " secret = NULL, error = 'collection code void: too many wrong codes',"
                                      " updated = ?2 WHERE id = ?1"
                                    : "UPDATE jobs SET code_tries = code_tries + 1, updated = ?2 WHERE id = ?1",
                       "jobs", job->id, now, NULL);
        if (rc == CMS_OK && void_now)
            rc = cms_exec_bind(db, "UPDATE cards SET state = 'cancelled', updated = ?2 WHERE id = ?1", "cards", card->id,
                           now, NULL);
        if (rc == CMS_OK)
            rc = cms_card_audit(db, who, "card.collect", "denied", card, detail);
        if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
            rc = void_now ? cms_fail(db, CMS_DENIED, "wrong collection code: it is void now, ask for a new card")
                          : cms_fail(db, CMS_DENIED, "wrong collection code (%d tries left)", CMS_CODE_TRIES - tries);
        goto out;
    }
    if (strcmp(job->state, "pending") && strcmp(job->state, "running")) {
        rc = cms_fail(db, CMS_STATE, "this card was %s", !strcmp(job->state, "done") ? "collected already"
                                                          : !strcmp(job->state, "failed") ? "not issued: its job failed"
                                                                                          : "cancelled");
        goto out;
    }
    if (strcmp(now, job->code_expires) > 0) {
        snprintf(detail, sizeof(detail), "collection code of job %" PRId64 " expired at %s", job->id,
                 job->code_expires);
        rc = cms_card_audit(db, who, "card.collect", "denied", card, detail);
        if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
            rc = cms_fail(db, CMS_STATE, "this collection code expired at %s: ask for a new card", job->code_expires);
        goto out;
    }
    if (card->device[0] && strcasecmp(card->device, device)) {
        snprintf(detail, sizeof(detail), "job %" PRId64 " is for device %s, not %s", job->id, card->device, device);
        struct cms_audit_rec rec = { .operator = who, .action = "card.collect", .result = "denied",
                                     .holder = card->holder, .device = device, .detail = detail };
        rc = cms_audit_append(db, &rec);
        if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
            rc = cms_fail(db, CMS_DENIED, "this card is to be collected on %s, not here (%s)", card->device, device);
        goto out;
    }
    if (!strcmp(job->state, "running") && alive) {
        rc = cms_fail(db, CMS_STATE, "this card is being collected now, by another process");
        goto out;
    }
    if (!card->device[0]) {
        int64_t dev;
        if ((rc = device_id(db, device, true, &dev)) != CMS_OK)
            goto out;
        st = cms_prepare(db, "UPDATE cards SET device_id = ? WHERE id = ?");
        if (!st) {
            rc = CMS_ERR;
            goto out;
        }
        sqlite3_bind_int64(st, 1, dev);
        sqlite3_bind_int64(st, 2, card->id);
        rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "cards");
        sqlite3_finalize(st);
        st = NULL;
        if (rc != CMS_OK)
            goto out;
        snprintf(card->device, sizeof(card->device), "%s", device);
    }
    cms_owner_self(owner, sizeof(owner));
    bool resumed = !strcmp(job->state, "running");
    rc = cms_exec_bind(db, "UPDATE jobs SET state = 'running', owner = ?3, updated = ?2,"
                       " step = coalesce(step, 'claimed') WHERE id = ?1",
                   "jobs", job->id, now, owner);
    if (rc != CMS_OK)
        goto out;
    snprintf(detail, sizeof(detail), resumed ? "job %" PRId64 " taken up again after step %s"
                                             : "job %" PRId64 " started%s",
             job->id, resumed ? job->step : "");
    rc = cms_card_audit(db, who, "card.collect", "started", card, detail);
    if (rc == CMS_OK)
        rc = cms_commit(db);
    if (rc == CMS_OK) {
        snprintf(job->state, sizeof(job->state), "running");
        if (!job->step[0])
            snprintf(job->step, sizeof(job->step), "claimed");
    }
out:
    sqlite3_finalize(st);
    tess_wipe(norm, sizeof(norm));
    if (!sqlite3_get_autocommit(db->db))
        cms_rollback(db);
    return rc;
}

int cms_job_step(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *step,
                 const char *serial, const char *action, const char *detail)
{
    char now[32], who[160];
    int rc = cms_begin(db);
    cms_now(now);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET step = ?3, updated = ?2 WHERE id = ?1", "jobs", job->id, now, step);
    if (rc == CMS_OK && serial)
        rc = cms_exec_bind(db, "UPDATE cards SET serial = nullif(?3, ''), updated = ?2 WHERE id = ?1", "cards", card->id,
                       now, serial);
    if (rc == CMS_OK && action) {
        struct cms_card c = *card;
        if (serial)
            snprintf(c.serial, sizeof(c.serial), "%s", serial);
        cms_holder_actor(card, who, sizeof(who));
        rc = cms_card_audit(db, who, action, "ok", &c, detail);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_cert_record(struct cms_db *db, const struct cms_card *card, const char *key_name, const char *ca_name, X509 *x,
                    const struct cms_escrow_archive *escrow)
{
    char serial[80], subject[512], nb[32], na[32], detail[700], who[160];
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der), rc;
    sqlite3_stmt *st = NULL;

    cms_ca_serial(x, serial, sizeof(serial));
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    if (len <= 0 || cms_asn1_time_text(X509_get0_notBefore(x), nb) || cms_asn1_time_text(X509_get0_notAfter(x), na)) {
        OPENSSL_free(der);
        return cms_fail(db, CMS_ERR, "cannot read the certificate");
    }
    rc = cms_begin(db);
    /* A card ended meanwhile (a change, while a renewal ran) gets no new
     * certificate: the renewal rolls back and revokes it. */
    if (rc == CMS_OK && (st = cms_prepare(db, "SELECT state FROM cards WHERE id = ?"))) {
        sqlite3_bind_int64(st, 1, card->id);
        if (sqlite3_step(st) != SQLITE_ROW)
            rc = cms_fail(db, CMS_NOTFOUND, "no card %" PRId64, card->id);
        else if (strstr(" revoked erased cancelled ", (const char *)sqlite3_column_text(st, 0)))
            rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is %s now: certificate %s is not recorded for it",
                          card->id, (const char *)sqlite3_column_text(st, 0), serial);
        sqlite3_finalize(st);
        st = NULL;
    } else if (rc == CMS_OK) {
        rc = CMS_ERR;
    }
    if (rc == CMS_OK && !(st = cms_prepare(db, "INSERT INTO certificates (card_id, key_name, ca, serial, subject, "
                                               "not_before, not_after, state, der) VALUES (?,?,?,?,?,?,?,'active',?)")))
        rc = CMS_ERR;
    if (rc == CMS_OK) {
        sqlite3_bind_int64(st, 1, card->id);
        sqlite3_bind_text(st, 2, key_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, ca_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, serial, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, subject, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, nb, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, na, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 8, der, len, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "certificates");
    }
    if (rc == CMS_OK && escrow)
        rc = cms_escrow_insert(db, sqlite3_last_insert_rowid(db->db), escrow);
    if (rc == CMS_OK)
        rc = cms_enrolment_end(db, card, x);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "key %s: certificate %s from %s, %s, until %s%s", key_name, serial, ca_name,
                 subject, na, escrow ? "; the key escrowed" : "");
        cms_holder_actor(card, who, sizeof(who));
        rc = cms_card_audit(db, who, "cert.issue", "ok", card, detail);
    }
    sqlite3_finalize(st);
    OPENSSL_free(der);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_card_certs(struct cms_db *db, int64_t card_id, cms_cert_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id, ca, serial, key_name, state FROM certificates "
                                       "WHERE card_id = ? ORDER BY id");
    int rc = CMS_OK, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, card_id);
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3),
                (const char *)sqlite3_column_text(st, 4));
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "certificates");
    sqlite3_finalize(st);
    return rc;
}

int cms_cert_get(struct cms_db *db, int64_t cert_id, X509 **out)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT der FROM certificates WHERE id = ?");
    const unsigned char *der;
    int rc = CMS_NOTFOUND, step;
    *out = NULL;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, cert_id);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        der = sqlite3_column_blob(st, 0);
        *out = der ? d2i_X509(NULL, &der, sqlite3_column_bytes(st, 0)) : NULL;
        rc = *out ? CMS_OK : cms_fail(db, CMS_ERR, "certificate %" PRId64 " in the database does not parse", cert_id);
    } else if (step != SQLITE_DONE) {
        rc = cms_sql_fail(db, "certificates");
    } else {
        rc = cms_fail(db, CMS_NOTFOUND, "no certificate %" PRId64, cert_id);
    }
    sqlite3_finalize(st);
    return rc;
}

int cms_cert_withdraw(struct cms_db *db, int64_t cert_id)
{
    char now[32];
    cms_now(now);
    return cms_exec_bind(db, "UPDATE certificates SET state = 'revoked', withdrawn = coalesce(withdrawn, ?2) "
                             "WHERE id = ?1", "certificates", cert_id, now, NULL);
}

int cms_collect_finish(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *detail)
{
    char now[32], who[160];
    int rc = cms_begin(db);
    cms_now(now);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET state = 'done', step = 'done', code_id = NULL, secret = NULL, owner = NULL,"
                           " updated = ?2 WHERE id = ?1",
                       "jobs", job->id, now, NULL);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE cards SET state = 'active', updated = ?2 WHERE id = ?1", "cards", card->id, now,
                       NULL);
    if (rc == CMS_OK) {
        cms_holder_actor(card, who, sizeof(who));
        rc = cms_card_audit(db, who, "card.collect", "ok", card, detail);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_collect_failed(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *why)
{
    char now[32], who[160], result[300];
    int rc = cms_begin(db);
    cms_now(now);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET error = ?2, owner = NULL, updated = ?3 WHERE id = ?1", "jobs", job->id,
                       why, now);
    if (rc == CMS_OK) {
        cms_holder_actor(card, who, sizeof(who));
        snprintf(result, sizeof(result), "failed: %s", why);
        rc = cms_card_audit(db, who, "card.collect", result, card, job->step);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_collect_undone(struct cms_db *db, struct cms_job *job, const struct cms_card *card, bool pending,
                       const char *detail)
{
    char now[32], who[160];
    int rc = cms_begin(db);
    cms_now(now);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, pending ? "UPDATE jobs SET state = 'pending', step = NULL, owner = NULL, updated = ?2"
                                     " WHERE id = ?1"
                                   : "UPDATE jobs SET step = 'claimed', updated = ?2 WHERE id = ?1",
                       "jobs", job->id, now, NULL);
    /* The card is gone (a PIV card reset, its CHUID with it): the row
     * forgets its serial; the next collect chooses one anew. */
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE cards SET serial = NULL, updated = ?2 WHERE id = ?1", "cards", card->id, now,
                           NULL);
    if (rc == CMS_OK) {
        cms_holder_actor(card, who, sizeof(who));
        rc = cms_card_audit(db, who, "card.rollback", "ok", card, detail);
    }
    if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
        snprintf(job->step, sizeof(job->step), "%s", pending ? "" : "claimed");
    else
        cms_rollback(db);
    return rc;
}

int cms_card_get(struct cms_db *db, int64_t id, const char *serial, struct cms_card *card)
{
    sqlite3_stmt *st = cms_prepare(db, serial ? "SELECT " CARD_COLS CARD_FROM " WHERE c.serial = ?"
                                              : "SELECT " CARD_COLS CARD_FROM " WHERE c.id = ?");
    int rc;
    if (!st)
        return CMS_ERR;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        card_row(st, 0, card);
        rc = CMS_OK;
    } else {
        rc = serial ? cms_fail(db, CMS_NOTFOUND, "no card %s", serial)
                    : cms_fail(db, CMS_NOTFOUND, "no card %" PRId64, id);
    }
    sqlite3_finalize(st);
    return rc;
}

int cms_card_list(struct cms_db *db, const char *holder_uid, cms_card_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, holder_uid ? "SELECT " CARD_COLS CARD_FROM " WHERE h.uid = ? ORDER BY c.id DESC"
                                                  : "SELECT " CARD_COLS CARD_FROM " ORDER BY c.id DESC");
    struct cms_card c;
    int rc = CMS_OK, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    if (holder_uid)
        sqlite3_bind_text(st, 1, holder_uid, -1, SQLITE_STATIC);
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        card_row(st, 0, &c);
        rc = cb(arg, &c);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "cards");
    sqlite3_finalize(st);
    return rc;
}

int cms_job_select(struct cms_db *db, const char *where, const char *a, const char *b, cms_job_cb cb, void *arg)
{
    char sql[1024];
    sqlite3_stmt *st;
    struct cms_job j;
    struct cms_card c;
    int rc = CMS_OK, step = SQLITE_DONE;

    snprintf(sql, sizeof(sql), "SELECT " JOB_COLS ", " CARD_COLS " FROM jobs j JOIN cards c ON c.id = j.card_id"
             " JOIN holders h ON h.id = c.holder_id JOIN profiles p ON p.id = c.profile_id"
             " LEFT JOIN devices d ON d.id = c.device_id %s", where);
    if (!(st = cms_prepare(db, sql)))
        return CMS_ERR;
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        job_row(st, 0, &j);
        card_row(st, JOB_NCOLS, &c);
        rc = cb(arg, &j, &c);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "jobs");
    sqlite3_finalize(st);
    return rc;
}

int cms_job_list(struct cms_db *db, const char *state, cms_job_cb cb, void *arg)
{
    return cms_job_select(db, state ? "WHERE j.state = ?1 ORDER BY j.id" : "ORDER BY j.id", state, NULL, cb, arg);
}
