/* Enrolments in flight (enrolment.h). */
#include "config.h"
#include "enrolment.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"

int cms_enrolment_begin(struct cms_db *db, const struct cms_card *card, const char *key_name, const char *ca_name,
                        X509_REQ *csr, int64_t *id)
{
    char key[65], now[32], owner[400];
    sqlite3_stmt *st = NULL;
    int rc;

    cms_owner_self(owner, sizeof(owner));
    if (cms_key_sha256(X509_REQ_get0_pubkey(csr), key))
        return cms_fail(db, CMS_ERR, "key %s: cannot read the request's public key", key_name);
    cms_now(now);
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if (!(st = cms_prepare(db, "INSERT INTO enrolments (card_id, key_name, ca, key_sha256, owner, created) "
                               "VALUES (?, ?, ?, ?, ?, ?)")))
        rc = CMS_ERR;
    if (rc == CMS_OK) {
        sqlite3_bind_int64(st, 1, card->id);
        sqlite3_bind_text(st, 2, key_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, ca_name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "enrolments");
        *id = sqlite3_last_insert_rowid(db->db);
    }
    sqlite3_finalize(st);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_enrolment_drop(struct cms_db *db, int64_t id)
{
    return cms_exec_bind(db, "DELETE FROM enrolments WHERE id = ?1", "enrolments", id, NULL, NULL);
}

int cms_enrolment_end(struct cms_db *db, const struct cms_card *card, X509 *x)
{
    char key[65];
    if (cms_key_sha256(X509_get0_pubkey(x), key))
        return cms_fail(db, CMS_ERR, "cannot read the certificate's public key");
    return cms_exec_bind(db, "DELETE FROM enrolments WHERE card_id = ?1 AND key_sha256 = ?2", "enrolments", card->id,
                         key, NULL);
}

struct enrolment {
    int64_t id;
    char key_name[64], ca[160], key[65];
};

/* The card's oldest open enrolment after id `after` (CMS_NOTFOUND: none);
 * *live when its process is still running (a renewal under way while a
 * change ends the card): not this settle's to touch. */
static int next_open(struct cms_db *db, int64_t card_id, int64_t after, struct enrolment *e, bool *live)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id, key_name, ca, key_sha256, owner FROM enrolments"
                                       " WHERE card_id = ? AND id > ? ORDER BY id LIMIT 1");
    int rc, step;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, card_id);
    sqlite3_bind_int64(st, 2, after);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        e->id = sqlite3_column_int64(st, 0);
        cms_column_text(st, 1, e->key_name, sizeof(e->key_name));
        cms_column_text(st, 2, e->ca, sizeof(e->ca));
        cms_column_text(st, 3, e->key, sizeof(e->key));
        *live = cms_owner_alive((const char *)sqlite3_column_text(st, 4));
        rc = CMS_OK;
    } else {
        rc = step == SQLITE_DONE ? CMS_NOTFOUND : cms_sql_fail(db, "enrolments");
    }
    sqlite3_finalize(st);
    return rc;
}

struct found {
    char (*serial)[80];
    int n, cap;
    bool oom;
};

static int found_one(void *arg, const char *serial)
{
    struct found *f = arg;
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        char(*grown)[80] = realloc(f->serial, (size_t)cap * sizeof(*grown));
        if (!grown) {
            f->oom = true;
            return CMS_ERR;
        }
        f->serial = grown;
        f->cap = cap;
    }
    snprintf(f->serial[f->n++], sizeof(f->serial[0]), "%s", serial);
    return CMS_OK;
}

/* Is the certificate in the database (any card, any state)? */
static int recorded(struct cms_db *db, const char *ca_name, const char *serial, bool *yes)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT 1 FROM certificates WHERE ca = ? AND serial = ?");
    int step;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, ca_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
    step = sqlite3_step(st);
    *yes = step == SQLITE_ROW;
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "certificates");
}

/* The unrecorded certificates of e's key revoked at the CA: their serials
 * left in f (the recorded ones taken out). */
static int revoke_unrecorded(struct cms_db *db, struct cms_ca *ca, const struct enrolment *e, int reason,
                             struct found *f)
{
    int kept = 0, rc = ca->ops->find_by_key(ca, e->key, found_one, f);
    if (rc != CMS_OK)
        return cms_fail(db, CMS_ERR, "cannot ask %s for the certificates of key %s: %s", ca->name, e->key_name,
                        f->oom ? "out of memory" : ca->err);
    for (int i = 0; i < f->n; i++) {
        bool known;
        if ((rc = recorded(db, e->ca, f->serial[i], &known)) != CMS_OK)
            return rc;
        if (known)
            continue;
        if (ca->ops->revoke(ca, f->serial[i], reason) != CMS_OK)
            return cms_fail(db, CMS_ERR, "the CA did not revoke certificate %s (key %s, never recorded): %s",
                            f->serial[i], e->key_name, ca->err);
        if (kept != i)
            memcpy(f->serial[kept], f->serial[i], sizeof(f->serial[0]));
        kept++;
    }
    f->n = kept;
    return CMS_OK;
}

/* The enrolment is closed and the trail says what was found; *closed
 * false when another settle closed it first (nothing recorded twice). */
static int close_one(struct cms_db *db, const struct cms_card *card, const char *who, const struct enrolment *e,
                     bool searched, int reason, const struct found *f, bool *closed)
{
    char detail[512];
    int rc = cms_begin(db);
    *closed = false;
    if (rc == CMS_OK &&
        (rc = cms_exec_bind(db, "DELETE FROM enrolments WHERE id = ?1", "enrolments", e->id, NULL, NULL)) == CMS_OK &&
        sqlite3_changes(db->db) != 1) {
        cms_rollback(db);
        return CMS_OK;
    }
    *closed = true;
    for (int i = 0; i < f->n && rc == CMS_OK; i++) {
        snprintf(detail, sizeof(detail), "key %s: certificate %s from %s, issued but never recorded (the run that "
                 "asked for it was cut short): revoked, reason %d", e->key_name, f->serial[i], e->ca, reason);
        rc = cms_card_audit(db, who, "cert.revoke", "ok", card, detail);
    }
    if (rc == CMS_OK && !searched) {
        snprintf(detail, sizeof(detail), "key %s: %s may have issued a certificate that was never recorded (the run "
                 "that asked for it was cut short); it cannot be searched by key: look for public key sha256:%s "
                 "there and revoke what it issued for it", e->key_name, e->ca, e->key);
        rc = cms_card_audit(db, who, "cert.unrecorded", "unchecked", card, detail);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_enrolments_settle(struct cms_db *db, struct cms_ca *ca, const struct cms_card *card, const char *who,
                          int reason, struct cms_enrolments_settled *out)
{
    struct enrolment e = { .id = 0 };
    bool live = false, closed = false;
    int rc;

    memset(out, 0, sizeof(*out));
    while ((rc = next_open(db, card->id, e.id, &e, &live)) == CMS_OK) {
        struct found f = { .n = 0 };
        bool searched = ca && ca->ops->find_by_key && !strcmp(e.ca, ca->name);
        if (live) {
            out->live++;
            continue;
        }
        if (searched)
            rc = revoke_unrecorded(db, ca, &e, reason, &f);
        if (rc == CMS_OK)
            rc = close_one(db, card, who, &e, searched, reason, &f, &closed);
        free(f.serial);
        if (rc != CMS_OK)
            return rc;
        if (closed) {
            out->revoked += f.n;
            out->unchecked += !searched;
        }
    }
    return rc == CMS_NOTFOUND ? CMS_OK : rc;
}
