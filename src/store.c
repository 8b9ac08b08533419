#include "config.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "private_file.h"
#include "util.h"

struct tess_store {
    sqlite3 *db;
};

/* Ordered migrations: entry i takes the schema from version i to i+1. Each
 * runs inside the same transaction as the version bump, so a killed process
 * leaves the old schema intact. */
static const char *migrations[] = {
    "CREATE TABLE cards ("
    "  id INTEGER PRIMARY KEY,"
    "  driver TEXT NOT NULL,"
    "  slot_index INTEGER NOT NULL,"
    "  label TEXT NOT NULL,"
    "  serial TEXT NOT NULL UNIQUE,"
    "  policy TEXT NOT NULL,"
    "  user_tries_left INTEGER NOT NULL, user_tries_max INTEGER NOT NULL,"
    "  so_tries_left INTEGER NOT NULL, so_tries_max INTEGER NOT NULL,"
    "  user_pin_set INTEGER NOT NULL DEFAULT 0,"
    "  drv_data BLOB,"
    "  created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now')),"
    "  UNIQUE(driver, slot_index));"
    "CREATE TABLE objects ("
    "  id INTEGER PRIMARY KEY,"
    "  card_id INTEGER NOT NULL REFERENCES cards(id) ON DELETE CASCADE,"
    "  attrs BLOB NOT NULL,"
    "  drv_data BLOB);"
    "CREATE INDEX objects_card ON objects(card_id);",
    /* 1 -> 2: public data of cards Tessera does not keep itself (PIV):
     * public keys of slots without a certificate, cached certificates. */
    "CREATE TABLE card_cache ("
    "  driver TEXT NOT NULL,"
    "  card TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value BLOB NOT NULL,"
    "  PRIMARY KEY (driver, card, name));",
    /* 2 -> 3: a card's administration state (admin key check value, the
     * unblock counter, the driver's challenge blobs), apart from the card
     * row so the counter can be spent in a transaction of its own. */
    "CREATE TABLE card_admin ("
    "  card_id INTEGER PRIMARY KEY REFERENCES cards(id) ON DELETE CASCADE,"
    "  tries_left INTEGER NOT NULL,"
    "  tries_max INTEGER NOT NULL,"
    "  data BLOB NOT NULL);",
};

static CK_RV sql_err(struct tess_store *s, const char *what)
{
    int code = sqlite3_errcode(s->db);
    TESS_ERR("store: %s: %s", what, sqlite3_errmsg(s->db));
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return CKR_FUNCTION_FAILED;
    return CKR_DEVICE_ERROR;
}

static int exec(struct tess_store *s, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        TESS_ERR("store: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
    }
    return rc;
}

static int schema_version(struct tess_store *s)
{
    sqlite3_stmt *st = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT version FROM schema", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct tess_store *s, char *err, size_t errlen)
{
    int target = (int)TESS_ARRAY_SIZE(migrations);
    int rc = -1;

    if (exec(s, "BEGIN IMMEDIATE") != SQLITE_OK) {
        snprintf(err, errlen, "store is busy or unreadable: %s", sqlite3_errmsg(s->db));
        return -1;
    }
    if (exec(s, "CREATE TABLE IF NOT EXISTS schema (version INTEGER NOT NULL)") != SQLITE_OK)
        goto out;
    int v = schema_version(s);
    if (v > target) {
        snprintf(err, errlen, "store schema %d is newer than this Tessera (%d)", v, target);
        goto out;
    }
    for (; v < target; v++) {
        char bump[96];
        if (exec(s, migrations[v]) != SQLITE_OK)
            goto out;
        snprintf(bump, sizeof(bump), "DELETE FROM schema; INSERT INTO schema VALUES (%d)", v + 1);
        if (exec(s, bump) != SQLITE_OK)
            goto out;
    }
    rc = 0;
out:
    if (rc == 0 && exec(s, "COMMIT") == SQLITE_OK)
        return 0;
    exec(s, "ROLLBACK");
    if (!err[0])
        snprintf(err, errlen, "store migration failed: %s", sqlite3_errmsg(s->db));
    return -1;
}

int tess_store_open(const char *path, struct tess_store **out, char *err, size_t errlen)
{
    struct tess_store *s = calloc(1, sizeof(*s));

    err[0] = '\0';
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (tess_private_file_create(path, err, errlen))
        goto fail;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "?");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL: readers never block the writer; synchronous=FULL: a commit survives
     * power loss; foreign keys: objects go with their card. */
    if (exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON") != SQLITE_OK) {
        snprintf(err, errlen, "cannot set up store %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (migrate(s, err, errlen))
        goto fail;
    *out = s;
    return 0;
fail:
    tess_store_close(s);
    return -1;
}

void tess_store_close(struct tess_store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

CK_RV tess_store_begin(struct tess_store *s)
{
    return exec(s, "BEGIN IMMEDIATE") == SQLITE_OK ? CKR_OK : sql_err(s, "begin");
}

CK_RV tess_store_commit(struct tess_store *s)
{
    if (exec(s, "COMMIT") == SQLITE_OK)
        return CKR_OK;
    CK_RV rv = sql_err(s, "commit");
    exec(s, "ROLLBACK");
    return rv;
}

void tess_store_rollback(struct tess_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        exec(s, "ROLLBACK");
}

int64_t tess_store_data_version(struct tess_store *s)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

void tess_card_rec_clear(struct tess_card_rec *r)
{
    free(r->drv_data);
    memset(r, 0, sizeof(*r));
}

void tess_object_rec_clear(struct tess_object_rec *r)
{
    free(r->attrs);
    free(r->drv_data);
    memset(r, 0, sizeof(*r));
}

static int dup_blob(sqlite3_stmt *st, int col, uint8_t **out, size_t *len)
{
    int n = sqlite3_column_bytes(st, col);
    const void *p = sqlite3_column_blob(st, col);
    *out = NULL;
    *len = 0;
    if (n <= 0 || !p)
        return 0;
    *out = malloc((size_t)n);
    if (!*out)
        return -1;
    memcpy(*out, p, (size_t)n);
    *len = (size_t)n;
    return 0;
}

static void text_col(sqlite3_stmt *st, int col, char *out, size_t outlen)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", t ? (const char *)t : "");
}

#define CARD_COLS "id, driver, slot_index, label, serial, policy, user_tries_left, user_tries_max, " \
                  "so_tries_left, so_tries_max, user_pin_set, drv_data"

static int card_from_row(sqlite3_stmt *st, struct tess_card_rec *r)
{
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(st, 0);
    text_col(st, 1, r->driver, sizeof(r->driver));
    r->slot_index = sqlite3_column_int(st, 2);
    text_col(st, 3, r->label, sizeof(r->label));
    text_col(st, 4, r->serial, sizeof(r->serial));
    text_col(st, 5, r->policy, sizeof(r->policy));
    r->user_tries_left = sqlite3_column_int(st, 6);
    r->user_tries_max = sqlite3_column_int(st, 7);
    r->so_tries_left = sqlite3_column_int(st, 8);
    r->so_tries_max = sqlite3_column_int(st, 9);
    r->user_pin_set = sqlite3_column_int(st, 10);
    return dup_blob(st, 11, &r->drv_data, &r->drv_len);
}

CK_RV tess_store_card_list(struct tess_store *s, const char *driver, struct tess_card_rec **recs, size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct tess_card_rec *out = NULL;
    size_t count = 0;
    CK_RV rv = CKR_OK;
    int rc;

    if (sqlite3_prepare_v2(s->db, "SELECT " CARD_COLS " FROM cards WHERE driver = ? ORDER BY slot_index", -1,
                           &st, NULL) != SQLITE_OK)
        return sql_err(s, "list cards");
    sqlite3_bind_text(st, 1, driver, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tess_card_rec *nr = realloc(out, (count + 1) * sizeof(*out));
        if (!nr) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        out = nr;
        if (card_from_row(st, &out[count])) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        count++;
    }
    if (rc != SQLITE_DONE)
        rv = sql_err(s, "list cards");
out:
    sqlite3_finalize(st);
    if (rv != CKR_OK) {
        for (size_t i = 0; i < count; i++)
            tess_card_rec_clear(&out[i]);
        free(out);
        return rv;
    }
    *recs = out;
    *n = count;
    return CKR_OK;
}

CK_RV tess_store_card_get(struct tess_store *s, int64_t id, struct tess_card_rec *rec)
{
    sqlite3_stmt *st = NULL;
    CK_RV rv;
    int rc;

    if (sqlite3_prepare_v2(s->db, "SELECT " CARD_COLS " FROM cards WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "get card");
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rv = card_from_row(st, rec) ? CKR_HOST_MEMORY : CKR_OK;
    else if (rc == SQLITE_DONE)
        rv = CKR_TOKEN_NOT_PRESENT;
    else
        rv = sql_err(s, "get card");
    sqlite3_finalize(st);
    return rv;
}

static void bind_blob(sqlite3_stmt *st, int idx, const uint8_t *p, size_t len)
{
    if (p && len)
        sqlite3_bind_blob(st, idx, p, (int)len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, idx);
}

static void bind_card(sqlite3_stmt *st, const struct tess_card_rec *r)
{
    sqlite3_bind_text(st, 1, r->driver, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, r->slot_index);
    sqlite3_bind_text(st, 3, r->label, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, r->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, r->policy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, r->user_tries_left);
    sqlite3_bind_int(st, 7, r->user_tries_max);
    sqlite3_bind_int(st, 8, r->so_tries_left);
    sqlite3_bind_int(st, 9, r->so_tries_max);
    sqlite3_bind_int(st, 10, r->user_pin_set);
    bind_blob(st, 11, r->drv_data, r->drv_len);
}

static CK_RV step_done(struct tess_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    CK_RV rv = rc == SQLITE_DONE ? CKR_OK : sql_err(s, what);
    sqlite3_finalize(st);
    return rv;
}

/* An UPDATE or DELETE of one row: the row may have gone (another process
 * deleted the card), and the caller must hear it. */
static CK_RV step_one_row(struct tess_store *s, sqlite3_stmt *st, const char *what, CK_RV missing)
{
    CK_RV rv = step_done(s, st, what);
    if (rv == CKR_OK && sqlite3_changes(s->db) == 0)
        rv = missing;
    return rv;
}

CK_RV tess_store_card_insert(struct tess_store *s, struct tess_card_rec *rec)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO cards (driver, slot_index, label, serial, policy, user_tries_left, "
                           "user_tries_max, so_tries_left, so_tries_max, user_pin_set, drv_data) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "insert card");
    bind_card(st, rec);
    CK_RV rv = step_done(s, st, "insert card");
    if (rv == CKR_OK)
        rec->id = sqlite3_last_insert_rowid(s->db);
    return rv;
}

CK_RV tess_store_card_update(struct tess_store *s, const struct tess_card_rec *rec)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE cards SET driver=?, slot_index=?, label=?, serial=?, policy=?, "
                           "user_tries_left=?, user_tries_max=?, so_tries_left=?, so_tries_max=?, "
                           "user_pin_set=?, drv_data=? WHERE id=?",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "update card");
    bind_card(st, rec);
    sqlite3_bind_int64(st, 12, rec->id);
    return step_one_row(s, st, "update card", CKR_TOKEN_NOT_PRESENT);
}

CK_RV tess_store_card_set_tries(struct tess_store *s, int64_t id, int user_left, int so_left)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "UPDATE cards SET user_tries_left=?, so_tries_left=? WHERE id=?", -1, &st,
                           NULL) != SQLITE_OK)
        return sql_err(s, "update tries");
    sqlite3_bind_int(st, 1, user_left);
    sqlite3_bind_int(st, 2, so_left);
    sqlite3_bind_int64(st, 3, id);
    return step_one_row(s, st, "update tries", CKR_TOKEN_NOT_PRESENT);
}

static CK_RV delete_by_id(struct tess_store *s, const char *sql, int64_t id, CK_RV missing)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "delete");
    sqlite3_bind_int64(st, 1, id);
    return missing == CKR_OK ? step_done(s, st, "delete") : step_one_row(s, st, "delete", missing);
}

CK_RV tess_store_card_delete(struct tess_store *s, int64_t id)
{
    return delete_by_id(s, "DELETE FROM cards WHERE id = ?", id, CKR_TOKEN_NOT_PRESENT);
}

CK_RV tess_store_object_list(struct tess_store *s, int64_t card_id, struct tess_object_rec **recs, size_t *n)
{
    sqlite3_stmt *st = NULL;
    struct tess_object_rec *out = NULL;
    size_t count = 0;
    CK_RV rv = CKR_OK;
    int rc;

    if (sqlite3_prepare_v2(s->db, "SELECT id, card_id, attrs, drv_data FROM objects WHERE card_id = ? ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "list objects");
    sqlite3_bind_int64(st, 1, card_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct tess_object_rec *nr = realloc(out, (count + 1) * sizeof(*out));
        if (!nr) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        out = nr;
        struct tess_object_rec *r = &out[count];
        memset(r, 0, sizeof(*r));
        r->id = sqlite3_column_int64(st, 0);
        r->card_id = sqlite3_column_int64(st, 1);
        count++;
        if (dup_blob(st, 2, &r->attrs, &r->attrs_len) || dup_blob(st, 3, &r->drv_data, &r->drv_len)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        rv = sql_err(s, "list objects");
out:
    sqlite3_finalize(st);
    if (rv != CKR_OK) {
        for (size_t i = 0; i < count; i++)
            tess_object_rec_clear(&out[i]);
        free(out);
        return rv;
    }
    *recs = out;
    *n = count;
    return CKR_OK;
}

CK_RV tess_store_object_insert(struct tess_store *s, struct tess_object_rec *rec)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO objects (card_id, attrs, drv_data) VALUES (?,?,?)", -1, &st,
                           NULL) != SQLITE_OK)
        return sql_err(s, "insert object");
    sqlite3_bind_int64(st, 1, rec->card_id);
    sqlite3_bind_blob(st, 2, rec->attrs ? (const void *)rec->attrs : "", (int)rec->attrs_len, SQLITE_TRANSIENT);
    bind_blob(st, 3, rec->drv_data, rec->drv_len);
    CK_RV rv = step_done(s, st, "insert object");
    if (rv == CKR_OK)
        rec->id = sqlite3_last_insert_rowid(s->db);
    return rv;
}

CK_RV tess_store_object_update_attrs(struct tess_store *s, int64_t id, const uint8_t *attrs, size_t len)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "UPDATE objects SET attrs = ? WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "update object");
    sqlite3_bind_blob(st, 1, attrs ? (const void *)attrs : "", (int)len, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, id);
    return step_one_row(s, st, "update object", CKR_OBJECT_HANDLE_INVALID);
}

CK_RV tess_store_object_update(struct tess_store *s, const struct tess_object_rec *rec)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "UPDATE objects SET attrs = ?, drv_data = ? WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return sql_err(s, "update object");
    sqlite3_bind_blob(st, 1, rec->attrs ? (const void *)rec->attrs : "", (int)rec->attrs_len, SQLITE_TRANSIENT);
    bind_blob(st, 2, rec->drv_data, rec->drv_len);
    sqlite3_bind_int64(st, 3, rec->id);
    return step_one_row(s, st, "update object", CKR_OBJECT_HANDLE_INVALID);
}

CK_RV tess_store_object_delete(struct tess_store *s, int64_t id)
{
    return delete_by_id(s, "DELETE FROM objects WHERE id = ?", id, CKR_OBJECT_HANDLE_INVALID);
}

CK_RV tess_store_cache_get(struct tess_store *s, const char *driver, const char *card, const char *name,
                           uint8_t **value, size_t *len)
{
    sqlite3_stmt *st = NULL;
    CK_RV rv;
    int rc;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM card_cache WHERE driver = ? AND card = ? AND name = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return sql_err(s, "read cache");
    sqlite3_bind_text(st, 1, driver, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, card, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rv = dup_blob(st, 0, value, len) ? CKR_HOST_MEMORY : CKR_OK;
    else if (rc == SQLITE_DONE)
        rv = CKR_OBJECT_HANDLE_INVALID;
    else
        rv = sql_err(s, "read cache");
    sqlite3_finalize(st);
    return rv;
}

CK_RV tess_store_cache_put(struct tess_store *s, const char *driver, const char *card, const char *name,
                           const uint8_t *value, size_t len)
{
    sqlite3_stmt *st = NULL;
    const char *sql = value ? "INSERT OR REPLACE INTO card_cache (driver, card, name, value) VALUES (?,?,?,?)"
                            : "DELETE FROM card_cache WHERE driver = ? AND card = ? AND name = ?";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "write cache");
    sqlite3_bind_text(st, 1, driver, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, card, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    if (value)
        sqlite3_bind_blob(st, 4, len ? (const void *)value : "", (int)len, SQLITE_TRANSIENT);
    return step_done(s, st, "write cache");
}

CK_RV tess_store_cache_forget(struct tess_store *s, const char *driver, const char *card)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM card_cache WHERE driver = ? AND card = ?", -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "write cache");
    sqlite3_bind_text(st, 1, driver, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, card, -1, SQLITE_TRANSIENT);
    return step_done(s, st, "write cache");
}

/* ---- card administration state ---- */

void tess_admin_rec_clear(struct tess_admin_rec *r)
{
    if (r->data)
        tess_wipe(r->data, r->data_len);
    free(r->data);
    memset(r, 0, sizeof(*r));
}

CK_RV tess_store_admin_get(struct tess_store *s, int64_t card_id, struct tess_admin_rec *rec)
{
    sqlite3_stmt *st = NULL;
    CK_RV rv;
    int rc;
    memset(rec, 0, sizeof(*rec));
    rec->card_id = card_id;
    if (sqlite3_prepare_v2(s->db, "SELECT tries_left, tries_max, data FROM card_admin WHERE card_id = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return sql_err(s, "read card admin state");
    sqlite3_bind_int64(st, 1, card_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rec->present = true;
        rec->tries_left = sqlite3_column_int(st, 0);
        rec->tries_max = sqlite3_column_int(st, 1);
        rv = dup_blob(st, 2, &rec->data, &rec->data_len) ? CKR_HOST_MEMORY : CKR_OK;
    } else if (rc == SQLITE_DONE) {
        rv = CKR_OK;
    } else {
        rv = sql_err(s, "read card admin state");
    }
    sqlite3_finalize(st);
    return rv;
}

CK_RV tess_store_admin_put(struct tess_store *s, const struct tess_admin_rec *rec)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO card_admin (card_id, tries_left, tries_max, data) VALUES (?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "write card admin state");
    sqlite3_bind_int64(st, 1, rec->card_id);
    sqlite3_bind_int(st, 2, rec->tries_left);
    sqlite3_bind_int(st, 3, rec->tries_max);
    sqlite3_bind_blob(st, 4, rec->data_len ? (const void *)rec->data : "", (int)rec->data_len, SQLITE_TRANSIENT);
    return step_done(s, st, "write card admin state");
}

CK_RV tess_store_admin_delete(struct tess_store *s, int64_t card_id)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM card_admin WHERE card_id = ?", -1, &st, NULL) != SQLITE_OK)
        return sql_err(s, "delete card admin state");
    sqlite3_bind_int64(st, 1, card_id);
    return step_done(s, st, "delete card admin state");
}

/* ---- one connection per process, shared by the drivers ---- */

static struct tess_store *shared_store;

CK_RV tess_store_shared(const char *path, bool create, struct tess_store **out)
{
    char err[512];
    if (!shared_store) {
        if (!create && access(path, F_OK) != 0)
            return CKR_TOKEN_NOT_PRESENT;
        if (tess_store_open(path, &shared_store, err, sizeof(err))) {
            TESS_ERR("store: %s", err);
            return CKR_DEVICE_ERROR;
        }
    }
    *out = shared_store;
    return CKR_OK;
}

void tess_store_shared_close(bool in_child)
{
    /* A SQLite connection must not cross fork(): the child forgets it. */
    if (!in_child)
        tess_store_close(shared_store);
    shared_store = NULL;
}

CK_RV tess_store_objects_delete_card(struct tess_store *s, int64_t card_id)
{
    return delete_by_id(s, "DELETE FROM objects WHERE card_id = ?", card_id, CKR_OK);
}
