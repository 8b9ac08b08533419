/* The hash-chained audit trail. */
#include "config.h"
#include "audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "../util.h"

#define HASH_LEN 32
static const char DOMAIN[] = "tessera-audit-v1";

/* SHA-256 over the domain, the previous hash, the id and each field with
 * its length (absent fields marked apart from empty ones), so no two
 * different records can serialise alike. */
static int record_hash(EVP_MD_CTX *ctx, const uint8_t prev[HASH_LEN], const struct cms_audit_rec *r,
                       uint8_t out[HASH_LEN])
{
    const char *fields[] = { r->at, r->operator, r->action, r->result, r->holder, r->card, r->device, r->detail };
    uint8_t id[8];
    for (int i = 0; i < 8; i++)
        id[i] = (uint8_t)((uint64_t)r->id >> (56 - 8 * i));
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) || !EVP_DigestUpdate(ctx, DOMAIN, sizeof(DOMAIN)) ||
        !EVP_DigestUpdate(ctx, prev, HASH_LEN) || !EVP_DigestUpdate(ctx, id, sizeof(id)))
        return -1;
    for (size_t i = 0; i < TESS_ARRAY_SIZE(fields); i++) {
        uint32_t len = fields[i] ? (uint32_t)strlen(fields[i]) : UINT32_MAX;
        uint8_t l[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len };
        if (!EVP_DigestUpdate(ctx, l, 4) || (fields[i] && !EVP_DigestUpdate(ctx, fields[i], len)))
            return -1;
    }
    unsigned int n = 0;
    return EVP_DigestFinal_ex(ctx, out, &n) && n == HASH_LEN ? 0 : -1;
}

static void head_text(int64_t id, const uint8_t hash[HASH_LEN], char out[80])
{
    char hex[2 * HASH_LEN + 1];
    tess_hex(hex, hash, HASH_LEN);
    snprintf(out, 80, "%" PRId64 " %s", id, hex);
}

int cms_audit_append(struct cms_db *db, struct cms_audit_rec *r)
{
    uint8_t prev[HASH_LEN] = { 0 }, hash[HASH_LEN];
    char head[80];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    sqlite3_stmt *last = cms_prepare(db, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1");
    sqlite3_stmt *ins = cms_prepare(db, "INSERT INTO audit (id, at, operator, action, result, holder, card, device,"
                                        " detail, prev, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    int rc = CMS_ERR;
    if (!ctx || !last || !ins)
        goto out;
    r->id = 1;
    if (sqlite3_step(last) == SQLITE_ROW) {
        if (sqlite3_column_bytes(last, 1) != HASH_LEN) {
            rc = cms_fail(db, CMS_TAMPERED, "the last audit record has no valid hash: run tessera audit verify");
            goto out;
        }
        r->id = sqlite3_column_int64(last, 0) + 1;
        memcpy(prev, sqlite3_column_blob(last, 1), HASH_LEN);
    }
    cms_now(r->at);
    if (record_hash(ctx, prev, r, hash)) {
        rc = cms_fail(db, CMS_ERR, "audit: hashing failed");
        goto out;
    }
    const char *text[] = { r->at, r->operator, r->action, r->result, r->holder, r->card, r->device, r->detail };
    sqlite3_bind_int64(ins, 1, r->id);
    for (int i = 0; i < 8; i++)
        sqlite3_bind_text(ins, 2 + i, text[i], -1, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 10, prev, HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 11, hash, HASH_LEN, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) {
        rc = cms_sql_fail(db, "audit");
        goto out;
    }
    /* The head: lets verify notice records cut from the end of the trail. */
    head_text(r->id, hash, head);
    rc = cms_meta_set(db, "audit.head", head);
out:
    sqlite3_finalize(last);
    sqlite3_finalize(ins);
    EVP_MD_CTX_free(ctx);
    return rc;
}

int cms_audit_record(struct cms_db *db, struct cms_audit_rec *r)
{
    int rc = cms_begin(db);
    if (rc == CMS_OK)
        rc = cms_audit_append(db, r);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static void row_to_rec(sqlite3_stmt *st, struct cms_audit_rec *r)
{
    r->id = sqlite3_column_int64(st, 0);
    snprintf(r->at, sizeof(r->at), "%s", col_text(st, 1) ? col_text(st, 1) : "");
    r->operator = col_text(st, 2);
    r->action = col_text(st, 3);
    r->result = col_text(st, 4);
    r->holder = col_text(st, 5);
    r->card = col_text(st, 6);
    r->device = col_text(st, 7);
    r->detail = col_text(st, 8);
}

#define AUDIT_COLUMNS "id, at, operator, action, result, holder, card, device, detail"

int cms_audit_verify(struct cms_db *db, struct cms_audit_check *c)
{
    uint8_t expect_prev[HASH_LEN] = { 0 }, hash[HASH_LEN];
    int64_t last_id = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* One read transaction: a consistent snapshot while others append. */
    sqlite3_stmt *st = cms_prepare(db, "SELECT " AUDIT_COLUMNS ", prev, hash FROM audit ORDER BY id");
    char *head = NULL;
    int rc = CMS_ERR;

    memset(c, 0, sizeof(*c));
    if (!ctx || !st)
        goto out;
    if (sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = cms_sql_fail(db, "audit verify");
        goto out;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct cms_audit_rec r;
        row_to_rec(st, &r);
        c->records++;
        const void *prev = sqlite3_column_blob(st, 9), *stored = sqlite3_column_blob(st, 10);
        if (sqlite3_column_bytes(st, 9) != HASH_LEN || memcmp(prev, expect_prev, HASH_LEN) != 0) {
            c->bad_id = r.id;
            snprintf(c->reason, sizeof(c->reason),
                     "record %" PRId64 " does not follow record %" PRId64 ": a record was removed or the order changed",
                     r.id, last_id);
            break;
        }
        if (r.id != last_id + 1) {
            c->bad_id = r.id;
            snprintf(c->reason, sizeof(c->reason), "record %" PRId64 " follows record %" PRId64 ": numbering broken",
                     r.id, last_id);
            break;
        }
        if (record_hash(ctx, expect_prev, &r, hash)) {
            rc = cms_fail(db, CMS_ERR, "audit: hashing failed");
            goto out;
        }
        if (sqlite3_column_bytes(st, 10) != HASH_LEN || memcmp(stored, hash, HASH_LEN) != 0) {
            c->bad_id = r.id;
            snprintf(c->reason, sizeof(c->reason), "record %" PRId64 " was changed after it was written", r.id);
            break;
        }
        memcpy(expect_prev, hash, HASH_LEN);
        last_id = r.id;
        head_text(last_id, hash, c->head);
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = cms_sql_fail(db, "audit verify");
        goto out;
    }
    if (!c->bad_id) {
        head = cms_meta_get(db, "audit.head");
        if (c->records && (!head || strcmp(head, c->head) != 0)) {
            c->bad_id = last_id;
            snprintf(c->reason, sizeof(c->reason),
                     "the trail ends at \"%s\" but its head says \"%s\": records were cut from the end", c->head,
                     head ? head : "(none)");
        } else if (!c->records && head) {
            c->bad_id = 1;
            snprintf(c->reason, sizeof(c->reason), "the trail is empty but its head says \"%s\"", head);
        }
    }
    rc = c->bad_id ? CMS_TAMPERED : CMS_OK;
out:
    sqlite3_finalize(st);
    if (!sqlite3_get_autocommit(db->db))
        sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
    free(head);
    EVP_MD_CTX_free(ctx);
    return rc;
}

int cms_audit_search(struct cms_db *db, const struct cms_audit_query *q, cms_audit_cb cb, void *arg)
{
    struct {
        const char *value, *cond;
    } filters[] = {
        { q->holder, " AND holder = ?" },   { q->card, " AND card = ?" },
        { q->device, " AND device = ? COLLATE NOCASE" }, { q->operator, " AND operator = ?" },
        { q->action, " AND action = ?" },   { q->since, " AND at >= ?" },
        { q->until, " AND at < ?" },
    };
    char sql[1300] = "SELECT " AUDIT_COLUMNS " FROM audit WHERE 1";
    for (size_t i = 0; i < TESS_ARRAY_SIZE(filters); i++)
        if (filters[i].value)
            strncat(sql, filters[i].cond, sizeof(sql) - strlen(sql) - 1);
    strncat(sql, " ORDER BY id", sizeof(sql) - strlen(sql) - 1);
    if (q->limit > 0) {
        /* The last N, still oldest first. */
        char wrapped[sizeof(sql)];
        snprintf(wrapped, sizeof(wrapped), "SELECT * FROM (%.1000s DESC LIMIT %" PRId64 ") ORDER BY id", sql, q->limit);
        memcpy(sql, wrapped, sizeof(sql));
    }
    sqlite3_stmt *st = cms_prepare(db, sql);
    int rc = CMS_ERR, n = 1, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    for (size_t i = 0; i < TESS_ARRAY_SIZE(filters); i++)
        if (filters[i].value)
            sqlite3_bind_text(st, n++, filters[i].value, -1, SQLITE_STATIC);
    rc = CMS_OK;
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct cms_audit_rec r;
        row_to_rec(st, &r);
        rc = cb(arg, &r);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "audit search");
    sqlite3_finalize(st);
    return rc;
}
