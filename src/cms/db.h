/* The card-management database: holders, devices, operators and their
 * roles, credential profiles, cards, certificates, jobs and the audit
 * trail, in one SQLite file (TESSERA_HOME/cms.db unless a path is given).
 * Schema versioned by ordered migrations; WAL, foreign keys, a busy
 * timeout; each lifecycle step is one transaction that includes its audit
 * record. Used by the tool, never by the PKCS#11 module. */
#ifndef TESSERA_CMS_DB_H
#define TESSERA_CMS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* Results of the CMS layer; the tool maps them to exit codes. */
enum cms_rc {
    CMS_OK = 0,
    CMS_ERR,          /* the database failed (message in the error buffer) */
    CMS_INVALID,      /* bad input: a file that does not parse, a value out of range */
    CMS_NOTFOUND,     /* no such holder, card, profile, operator ... */
    CMS_EXISTS,       /* already there */
    CMS_DENIED,       /* the operator's roles do not allow it */
    CMS_STATE,        /* not allowed in the object's current state */
    CMS_TAMPERED,     /* the audit trail does not verify */
};

struct cms_db {
    sqlite3 *db;
    char path[4096 + 16];
    char err[512];    /* what went wrong last, for the caller to show */
};

#define CMS_SCHEMA_VERSION 8

/* Open (creating when create is true) the database at path. */
int cms_open(const char *path, bool create, struct cms_db **out, char *err, size_t errlen);
/* The same with the schema brought to version target only: how the tests
 * make an older database and watch it be upgraded. */
int cms_open_at(const char *path, bool create, int target, struct cms_db **out, char *err, size_t errlen);
void cms_close(struct cms_db *db);
/* Schema version of the file, and the one this Tessera writes. */
int cms_schema_version(struct cms_db *db);

/* One transaction per lifecycle step: BEGIN IMMEDIATE takes the write lock
 * at once, so two operators never both read a state and then both change it. */
int cms_begin(struct cms_db *db);
int cms_commit(struct cms_db *db);
void cms_rollback(struct cms_db *db);

/* Say what failed in db->err (printf-style); returns rc. */
int cms_fail(struct cms_db *db, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A failed SQLite call: its message in db->err; CMS_ERR. */
int cms_sql_fail(struct cms_db *db, const char *what);
/* Prepare a statement (NULL and db->err set on failure). */
sqlite3_stmt *cms_prepare(struct cms_db *db, const char *sql);

/* One statement bound to ?1 = a, ?2 = b and ?3 = c (text, when not NULL),
 * run to completion; what names it in the error. */
int cms_exec_bind(struct cms_db *db, const char *sql, const char *what, int64_t a, const char *b, const char *c);

/* Now, as stored: UTC, "2026-11-22T05:40:09.123Z" (sorts as text). */
void cms_now(char out[32]);
/* The UTC text form of a time_t, and back (0 on success). */
void cms_time_text(int64_t t, char out[32]);
int cms_time_parse(const char *text, int64_t *t);

/* An operator's note as one line of printable text (controls as spaces),
 * cut to fit out. in may be NULL. */
void cms_one_line(const char *in, char *out, size_t outlen);

/* A text column into out ("" when NULL), cut to fit. */
void cms_column_text(sqlite3_stmt *st, int col, char *out, size_t outlen);

/* One line of a job's params ("name=value\n..."), "" when absent. */
void cms_param(const char *params, const char *name, char *out, size_t outlen);

/* A value of the meta table (NULL when absent; caller frees) and setting one. */
char *cms_meta_get(struct cms_db *db, const char *key);
int cms_meta_set(struct cms_db *db, const char *key, const char *value);

#endif
