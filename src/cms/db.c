/* The card-management database: opening, migrations, transactions, time. */
#include "config.h"
#include "db.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../private_file.h"

/* Ordered migrations: entry i takes the schema from version i to i+1, in the
 * same transaction as the version bump, so a killed process leaves the old
 * schema whole. Audit rows name holders, cards, devices and operators by
 * text, not by foreign key: the trail outlives what it speaks of. */
static const char *const migrations[] = {
    /* 0 -> 1: who and what, and the trail */
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE operators ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created TEXT NOT NULL,"
    "  disabled INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE operator_roles ("
    "  operator_id INTEGER NOT NULL REFERENCES operators(id) ON DELETE CASCADE,"
    "  role TEXT NOT NULL CHECK (role IN ('administrator','issuer','helpdesk','key-recovery','auditor')),"
    "  PRIMARY KEY (operator_id, role));"
    "CREATE TABLE holders ("
    "  id INTEGER PRIMARY KEY,"
    "  uid TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  email TEXT,"
    "  created TEXT NOT NULL,"
    "  updated TEXT NOT NULL);"
    "CREATE INDEX holders_name ON holders(name);"
    "CREATE INDEX holders_email ON holders(email COLLATE NOCASE);"
    "CREATE TABLE holder_attrs ("
    "  holder_id INTEGER NOT NULL REFERENCES holders(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (holder_id, name));"
    "CREATE TABLE devices ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
    "  created TEXT NOT NULL);"
    "CREATE TABLE profiles ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  created TEXT NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  UNIQUE (name, version));"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  at TEXT NOT NULL,"
    "  operator TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  result TEXT NOT NULL,"
    "  holder TEXT,"
    "  card TEXT,"
    "  device TEXT,"
    "  detail TEXT,"
    "  prev BLOB NOT NULL,"
    "  hash BLOB NOT NULL);"
    "CREATE INDEX audit_at ON audit(at);"
    "CREATE INDEX audit_holder ON audit(holder) WHERE holder IS NOT NULL;"
    "CREATE INDEX audit_card ON audit(card) WHERE card IS NOT NULL;"
    "CREATE INDEX audit_device ON audit(device) WHERE device IS NOT NULL;"
    "CREATE INDEX audit_operator ON audit(operator);",
    /* 1 -> 2: cards, their certificates, and the jobs that change them */
    "CREATE TABLE cards ("
    "  id INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL CHECK (type IN ('tpm','piv')),"
    "  serial TEXT UNIQUE,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('requested','issued','active','suspended','locked','revoked','erased','cancelled')),"
    "  holder_id INTEGER NOT NULL REFERENCES holders(id),"
    "  device_id INTEGER REFERENCES devices(id),"
    "  profile_id INTEGER NOT NULL REFERENCES profiles(id),"
    "  replaces_id INTEGER REFERENCES cards(id),"
    "  temporary INTEGER NOT NULL DEFAULT 0,"
    "  expires TEXT,"
    "  created TEXT NOT NULL,"
    "  updated TEXT NOT NULL);"
    "CREATE INDEX cards_holder ON cards(holder_id);"
    "CREATE INDEX cards_device ON cards(device_id) WHERE device_id IS NOT NULL;"
    "CREATE TABLE certificates ("
    "  id INTEGER PRIMARY KEY,"
    "  card_id INTEGER NOT NULL REFERENCES cards(id),"
    "  key_name TEXT NOT NULL,"
    "  ca TEXT NOT NULL,"
    "  serial TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  not_before TEXT NOT NULL,"
    "  not_after TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('active','suspended','revoked','superseded')),"
    "  der BLOB NOT NULL,"
    "  notified TEXT,"
    "  UNIQUE (ca, serial));"
    "CREATE INDEX certificates_card ON certificates(card_id);"
    "CREATE INDEX certificates_expiry ON certificates(not_after) WHERE state = 'active';"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  state TEXT NOT NULL CHECK (state IN ('pending','running','done','failed','cancelled')),"
    "  card_id INTEGER REFERENCES cards(id),"
    "  holder_id INTEGER REFERENCES holders(id),"
    "  device_id INTEGER REFERENCES devices(id),"
    "  due TEXT,"
    "  step TEXT,"
    "  params TEXT,"
    "  secret BLOB,"
    "  created TEXT NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  updated TEXT NOT NULL,"
    "  error TEXT);"
    "CREATE INDEX jobs_due ON jobs(due) WHERE state = 'pending';"
    "CREATE INDEX jobs_card ON jobs(card_id);",
    /* 2 -> 3: collection codes (found by their first group, checked by
     * salted hash in `secret`), and which process runs a job */
    "ALTER TABLE jobs ADD COLUMN code_id TEXT;"
    "ALTER TABLE jobs ADD COLUMN code_expires TEXT;"
    "ALTER TABLE jobs ADD COLUMN code_tries INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN owner TEXT;"
    "CREATE UNIQUE INDEX jobs_code ON jobs(code_id) WHERE code_id IS NOT NULL;",
    /* 3 -> 4: a card has at most one pending PIN lock (schedule.c) */
    "CREATE UNIQUE INDEX jobs_one_lock ON jobs(card_id) WHERE kind = 'lock' AND state = 'pending';",
    /* 4 -> 5: audit search by device compares without case (device names
     * are), which an index of the default collation cannot serve */
    "DROP INDEX audit_device;"
    "CREATE INDEX audit_device ON audit(device COLLATE NOCASE) WHERE device IS NOT NULL;",
    /* 5 -> 6: the renewal scan (renewal.c): one open renewal per card, and
     * temporary cards by their end */
    "CREATE UNIQUE INDEX jobs_one_renewal ON jobs(card_id) WHERE kind = 'renew' AND state IN ('pending','running');"
    "CREATE INDEX cards_temporary ON cards(expires) WHERE temporary = 1;",
    /* 6 -> 7: key escrow (escrow.c): the escrow keys' certificates, and
     * each escrowed key's archive next to the certificate it was issued */
    "CREATE TABLE escrow_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  fingerprint TEXT NOT NULL UNIQUE,"
    "  cert BLOB NOT NULL,"
    "  kept TEXT NOT NULL CHECK (kept IN ('file','hsm','elsewhere')),"
    "  oaep TEXT NOT NULL CHECK (oaep IN ('sha256','sha1')),"
    "  created TEXT NOT NULL,"
    "  created_by TEXT NOT NULL);"
    "CREATE TABLE escrowed_keys ("
    "  id INTEGER PRIMARY KEY,"
    "  certificate_id INTEGER NOT NULL UNIQUE REFERENCES certificates(id),"
    "  escrow_key_id INTEGER NOT NULL REFERENCES escrow_keys(id),"
    "  archive BLOB NOT NULL,"
    "  created TEXT NOT NULL);",
    /* 7 -> 8: a request about to go to the CA, recorded first, by its
     * process (enrolment.h); a certificate revoked by an undo or roll-back
     * before it was ever in use is marked withdrawn */
    "CREATE TABLE enrolments ("
    "  id INTEGER PRIMARY KEY,"
    "  card_id INTEGER NOT NULL REFERENCES cards(id),"
    "  key_name TEXT NOT NULL,"
    "  ca TEXT NOT NULL,"
    "  key_sha256 TEXT NOT NULL,"
    "  owner TEXT NOT NULL,"
    "  created TEXT NOT NULL);"
    "CREATE INDEX enrolments_card ON enrolments(card_id);"
    "ALTER TABLE certificates ADD COLUMN withdrawn TEXT;",
};

int cms_fail(struct cms_db *db, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof(db->err), fmt, ap);
    va_end(ap);
    return rc;
}

int cms_sql_fail(struct cms_db *db, const char *what)
{
    return cms_fail(db, CMS_ERR, "%s: %s", what, sqlite3_errmsg(db->db));
}

sqlite3_stmt *cms_prepare(struct cms_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK) {
        cms_sql_fail(db, "prepare");
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

static int exec(struct cms_db *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return CMS_OK;
    cms_fail(db, CMS_ERR, "%s", msg ? msg : sqlite3_errmsg(db->db));
    sqlite3_free(msg);
    return CMS_ERR;
}

int cms_exec_bind(struct cms_db *db, const char *sql, const char *what, int64_t a, const char *b, const char *c)
{
    sqlite3_stmt *st = cms_prepare(db, sql);
    int rc;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, a);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (c)
        sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, what);
    sqlite3_finalize(st);
    return rc;
}

int cms_begin(struct cms_db *db)
{
    return exec(db, "BEGIN IMMEDIATE");
}

int cms_commit(struct cms_db *db)
{
    if (exec(db, "COMMIT") == CMS_OK)
        return CMS_OK;
    cms_rollback(db);
    return CMS_ERR;
}

void cms_rollback(struct cms_db *db)
{
    if (!sqlite3_get_autocommit(db->db))
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
}

int cms_schema_version(struct cms_db *db)
{
    sqlite3_stmt *st = cms_prepare(db, "PRAGMA user_version");
    int v = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Bring the schema to target (the file's user_version says where it is). */
static int migrate(struct cms_db *db, int target)
{
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    int v = cms_schema_version(db);
    if (v < 0) {
        rc = CMS_ERR;
        goto out;
    }
    if (v > (int)(sizeof(migrations) / sizeof(migrations[0]))) {
        rc = cms_fail(db, CMS_ERR, "%s has schema %d, newer than this Tessera knows (%d)", db->path, v,
                      CMS_SCHEMA_VERSION);
        goto out;
    }
    for (; v < target; v++) {
        char bump[48];
        if ((rc = exec(db, migrations[v])) != CMS_OK)
            goto out;
        snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
        if ((rc = exec(db, bump)) != CMS_OK)
            goto out;
    }
    rc = CMS_OK;
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_open_at(const char *path, bool create, int target, struct cms_db **out, char *err, size_t errlen)
{
    struct cms_db *db = calloc(1, sizeof(*db));
    int rc = CMS_ERR;
    *out = NULL;
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return CMS_ERR;
    }
    snprintf(db->path, sizeof(db->path), "%s", path);
    if (create) {
        if (tess_private_file_create(path, err, errlen))
            goto fail;
    } else if (access(path, F_OK) != 0) {
        snprintf(err, errlen, "no card-management database at %s (tessera db init makes one)", path);
        rc = CMS_NOTFOUND;
        goto fail;
    }
    if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s: %s", path, db->db ? sqlite3_errmsg(db->db) : "out of memory");
        goto fail;
    }
    /* Another tool run or the agent may hold the write lock for one step;
     * wait for it rather than fail. WAL: readers never wait for the writer;
     * synchronous=FULL: a committed step survives a power cut. */
    sqlite3_busy_timeout(db->db, 15000);
    if (exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON") != CMS_OK ||
        migrate(db, target) != CMS_OK) {
        snprintf(err, errlen, "%s: %s", path, db->err);
        goto fail;
    }
    *out = db;
    return CMS_OK;
fail:
    cms_close(db);
    return rc;
}

int cms_open(const char *path, bool create, struct cms_db **out, char *err, size_t errlen)
{
    return cms_open_at(path, create, CMS_SCHEMA_VERSION, out, err, errlen);
}

void cms_close(struct cms_db *db)
{
    if (!db)
        return;
    sqlite3_close(db->db);
    free(db);
}

void cms_time_text(int64_t t, char out[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void cms_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void cms_one_line(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (; in && *in && n + 1 < outlen; in++)
        out[n++] = (unsigned char)*in < 0x20 ? ' ' : *in;
    out[n] = '\0';
}

int cms_time_parse(const char *text, int64_t *t)
{
    struct tm tm = { 0 };
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return -1;
    if (*end == '.')     /* milliseconds: not kept */
        for (end++; *end >= '0' && *end <= '9'; end++)
            ;
    if (strcmp(end, "Z") != 0)
        return -1;
    *t = (int64_t)timegm(&tm);
    return 0;
}

/* One line of a job's params ("name=value\n..."), "" when absent. */
void cms_param(const char *params, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    out[0] = '\0';
    for (const char *p = params; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (!strncmp(p, name, n) && p[n] == '=') {
            const char *end = strchr(p + n + 1, '\n');
            size_t len = end ? (size_t)(end - p - n - 1) : strlen(p + n + 1);
            snprintf(out, outlen, "%.*s", (int)len, p + n + 1);
            return;
        }
    }
}

void cms_column_text(sqlite3_stmt *st, int col, char *out, size_t outlen)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(out, outlen, "%s", v ? (const char *)v : "");
}

char *cms_meta_get(struct cms_db *db, const char *key)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT value FROM meta WHERE key = ?");
    char *v = NULL;
    if (!st)
        return NULL;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v;
}

int cms_meta_set(struct cms_db *db, const char *key, const char *value)
{
    sqlite3_stmt *st = cms_prepare(db, "INSERT INTO meta (key, value) VALUES (?, ?) "
                                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    int rc;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "meta");
    sqlite3_finalize(st);
    return rc;
}
