/* The database side of renewing a card on its device (renewal.h). */
#include "config.h"
#include "renewal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cards.h"

static int max_cert_id(struct cms_db *db, int64_t card_id, int64_t *id)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT coalesce(max(id), 0) FROM certificates WHERE card_id = ?");
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, card_id);
    *id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return *id < 0 ? cms_sql_fail(db, "certificates") : CMS_OK;
}

int cms_renew_take(struct cms_db *db, const struct cms_card *card_in, struct cms_job *job, bool *interrupted,
                   int64_t *certs_before)
{
    struct cms_card card;
    sqlite3_stmt *st = NULL;
    char now[32], owner[400], params[1200], value[32], who[160], detail[200];
    int rc;

    memset(job, 0, sizeof(*job));
    *interrupted = false;
    *certs_before = 0;
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, card_in->id, NULL, &card)) != CMS_OK)
        goto out;
    /* Over jobs_one_renewal: its terms, as the index has them. */
    st = cms_prepare(db, "SELECT id, state, coalesce(owner, ''), coalesce(step, ''), coalesce(params, ''), created_by"
                         " FROM jobs WHERE card_id = ? AND kind = 'renew' AND state IN ('pending','running')");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, card.id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = cms_fail(db, CMS_NOTFOUND, "card %" PRId64 " has no renewal due (the renewal scan makes one when its "
                      "certificates near their end)", card.id);
        goto out;
    }
    job->id = sqlite3_column_int64(st, 0);
    job->card_id = card.id;
    snprintf(job->kind, sizeof(job->kind), "renew");
    snprintf(job->state, sizeof(job->state), "running");
    snprintf(job->step, sizeof(job->step), "%s", (const char *)sqlite3_column_text(st, 3));
    snprintf(job->created_by, sizeof(job->created_by), "%s", (const char *)sqlite3_column_text(st, 5));
    snprintf(params, sizeof(params), "%s", (const char *)sqlite3_column_text(st, 4));
    *interrupted = !strcmp((const char *)sqlite3_column_text(st, 1), "running");
    if (*interrupted && cms_owner_alive((const char *)sqlite3_column_text(st, 2))) {
        rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is being renewed now, by another process (job %" PRId64 ")",
                      card.id, job->id);
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    /* An interrupted renewal is taken up whatever the card's state: what it
     * left is undone or finished. A new one needs a card in use. */
    if (!*interrupted && strcmp(card.state, "active")) {
        rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is %s: only an active card is renewed%s", card.id, card.state,
                      !strcmp(card.state, "locked") ? " (the helpdesk unlocks it first)" : "");
        goto out;
    }
    cms_now(now);
    cms_owner_self(owner, sizeof(owner));
    if (*interrupted) {
        cms_param(params, "certs_before", value, sizeof(value));
        *certs_before = strtoll(value, NULL, 10);
        rc = cms_exec_bind(db, "UPDATE jobs SET owner = ?3, updated = ?2 WHERE id = ?1", "jobs", job->id, now, owner);
        snprintf(detail, sizeof(detail), "job %" PRId64 ": renewal interrupted after step %s, taken up", job->id,
                 job->step);
    } else {
        if ((rc = max_cert_id(db, card.id, certs_before)) != CMS_OK)
            goto out;
        snprintf(params + strlen(params), sizeof(params) - strlen(params), "%scerts_before=%" PRId64,
                 params[0] ? "\n" : "", *certs_before);
        snprintf(job->step, sizeof(job->step), "begun");
        st = cms_prepare(db, "UPDATE jobs SET state = 'running', step = 'begun', owner = ?2, params = ?3, updated = ?4"
                             " WHERE id = ?1");
        if (!st) {
            rc = CMS_ERR;
            goto out;
        }
        sqlite3_bind_int64(st, 1, job->id);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, params, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "jobs");
        snprintf(detail, sizeof(detail), "job %" PRId64 ": renewal started on the device", job->id);
    }
    if (rc == CMS_OK) {
        cms_holder_actor(&card, who, sizeof(who));
        rc = cms_card_audit(db, who, "card.renew", *interrupted ? "taken up" : "started", &card, detail);
    }
out:
    sqlite3_finalize(st);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

/* The job moved to state (and step), with an audit record of the holder's. */
static int renew_end(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *state,
                     const char *step, const char *result, const char *detail)
{
    sqlite3_stmt *st;
    char now[32], who[160];
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    cms_now(now);
    st = cms_prepare(db, "UPDATE jobs SET state = ?2, step = ?3, updated = ?4,"
                         " owner = CASE ?2 WHEN 'running' THEN owner END,"
                         " error = CASE ?2 WHEN 'cancelled' THEN ?5 END"
                         " WHERE id = ?1 AND kind = 'renew' AND state = 'running'");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, job->id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, step, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, detail, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = cms_sql_fail(db, "jobs");
    else if (sqlite3_changes(db->db) != 1)
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is not a running renewal", job->id);
    sqlite3_finalize(st);
    if (rc == CMS_OK) {
        cms_holder_actor(card, who, sizeof(who));
        rc = cms_card_audit(db, who, "card.renew", result, card, detail);
    }
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_renew_cert_state(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, int64_t cert_id,
                         const char *serial, const char *key_name, const char *to, bool withdrawn)
{
    char who[160], detail[300];
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    rc = withdrawn ? cms_cert_withdraw(db, cert_id)
                   : cms_exec_bind(db, "UPDATE certificates SET state = ?2 WHERE id = ?1", "certificates", cert_id,
                                   to, NULL);
    if (rc == CMS_OK) {
        cms_holder_actor(card, who, sizeof(who));
        snprintf(detail, sizeof(detail), "job %" PRId64 ": certificate %s (key %s) %s", job->id, serial, key_name, to);
        rc = cms_card_audit(db, who, !strcmp(to, "suspended") ? "cert.hold" : "cert.revoke", "ok", card, detail);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_renew_finish(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *detail)
{
    return renew_end(db, job, card, "done", "done", "ok", detail);
}

int cms_renew_undone(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *to,
                     const char *detail)
{
    if (strcmp(to, "running") && strcmp(to, "pending") && strcmp(to, "cancelled"))
        return cms_fail(db, CMS_INVALID, "a renewal does not go back to %s", to);
    return renew_end(db, job, card, to, !strcmp(to, "running") ? "begun" : "", "rolled back", detail);
}
