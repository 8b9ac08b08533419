/* Changes to a card after it is requested, as jobs (lifecycle.h). */
#include "config.h"
#include "lifecycle.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "audit.h"
#include "profile.h"

/* The guards: each change, the states it starts from and what it does.
 * A hold (certificateHold) can be lifted; every other reason is final, and
 * a held certificate revoked later takes the final reason. */
static const struct cms_change changes[] = {
    { "suspend", "card.suspend", "active locked", "suspended", "active", CMS_REVOKE_HOLD, "suspended", false,
      CMS_REPLACE_NONE },
    { "enable", "card.enable", "suspended", "active", "suspended", CMS_HOLD_LIFT, "active", false,
      CMS_REPLACE_NONE },
    { "cancel", "card.cancel", "requested issued active suspended locked", "revoked", "active suspended",
      CMS_REVOKE_CESSATION, "revoked", false, CMS_REPLACE_NONE },
    { "lost", "card.replace", "issued active suspended locked", "revoked", "active suspended",
      CMS_REVOKE_KEY_COMPROMISE, "revoked", false, CMS_REPLACE_CARD },
    { "stolen", "card.replace", "issued active suspended locked", "revoked", "active suspended",
      CMS_REVOKE_KEY_COMPROMISE, "revoked", false, CMS_REPLACE_CARD },
    { "damaged", "card.replace", "issued active suspended locked", "revoked", "active suspended",
      CMS_REVOKE_SUPERSEDED, "revoked", false, CMS_REPLACE_CARD },
    { "forgotten", "card.replace", "active locked", "suspended", "active", CMS_REVOKE_HOLD, "suspended", false,
      CMS_REPLACE_TEMPORARY },
    { "erase", "card.erase", "issued active suspended locked revoked cancelled", "erased", "active suspended",
      CMS_REVOKE_CESSATION, "revoked", true, CMS_REPLACE_NONE },
    { "reprovision", "card.reprovision", "active locked", "erased", "active suspended", CMS_REVOKE_SUPERSEDED,
      "revoked", true, CMS_REPLACE_REISSUE },
    /* A temporary card's end has come (the renewal scan, renewal.h). */
    { "expire", "card.expire", "requested issued active suspended locked", "revoked", "active suspended",
      CMS_REVOKE_CESSATION, "revoked", false, CMS_REPLACE_NONE },
};


const struct cms_change *cms_change_find(const char *name)
{
    for (size_t i = 0; name && i < TESS_ARRAY_SIZE(changes); i++)
        if (!strcmp(changes[i].name, name))
            return &changes[i];
    return NULL;
}

static bool in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; n && (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

/* "a b c" as "a, b or c". */
static void list_text(const char *list, char *out, size_t outlen)
{
    const char *last = strrchr(list, ' ');
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = list; *p && n + 4 < outlen; p++) {
        if (*p == ' ') {
            n += (size_t)snprintf(out + n, outlen - n, "%s", p == last ? " or " : ", ");
            continue;
        }
        out[n++] = *p;
        out[n] = '\0';
    }
}

static void job_fill(struct cms_job *job, int64_t id, const char *kind, const char *step, int64_t card_id,
                     const char *created_by)
{
    memset(job, 0, sizeof(*job));
    job->id = id;
    snprintf(job->kind, sizeof(job->kind), "%s", kind);
    snprintf(job->state, sizeof(job->state), "running");
    snprintf(job->step, sizeof(job->step), "%s", step);
    job->card_id = card_id;
    snprintf(job->created_by, sizeof(job->created_by), "%s", created_by);
}

/* Why the card cannot change now, when a job of it is running. A PIN lock
 * or a renewal under way does not hold a change up (a stolen laptop's agent
 * may never run again); what runs them finds the card changed. A collect
 * that no process runs any more (a PIV card pulled out half made, that
 * never came back) may be cancelled. */
static int running_job(struct cms_db *db, const struct cms_card *card, const char *change)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id, kind, owner FROM jobs WHERE card_id = ? AND state = 'running'"
                                       " AND kind NOT IN ('lock', 'renew')");
    int rc = CMS_OK;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, card->id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        bool alive = cms_owner_alive((const char *)sqlite3_column_text(st, 2));
        if (!strcmp(kind, "issue") && !alive && !strcmp(change, "cancel"))
            rc = CMS_OK;
        else if (!strcmp(kind, "issue"))
            rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is being collected, or its collect was interrupted: the "
                          "holder's next `tessera card collect` finishes it (or, once none runs, `tessera card "
                          "cancel` ends it)", card->id);
        else if (alive)
            rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is being changed now by another process (job %" PRId64
                          ": %s)", card->id, id, kind);
        else
            rc = cms_fail(db, CMS_STATE, "card %" PRId64 " has an interrupted change (job %" PRId64 ": %s): finish it "
                          "first with `tessera job resume %" PRId64 "`", card->id, id, kind, id);
    }
    sqlite3_finalize(st);
    return rc;
}

/* A temporary card standing in for this one: its id, 0 when none. */
static int64_t live_temporary(struct cms_db *db, int64_t card_id, bool collecting)
{
    sqlite3_stmt *st = cms_prepare(db, collecting ? "SELECT k.id FROM cards k JOIN jobs j ON j.card_id = k.id"
                                                    " WHERE k.replaces_id = ? AND k.temporary = 1"
                                                    " AND j.kind = 'issue' AND j.state = 'running'"
                                                  : "SELECT id FROM cards WHERE replaces_id = ? AND temporary = 1"
                                                    " AND state IN " CMS_TEMPORARY_LIVE);
    int64_t id = 0;
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, card_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return id;
}

int cms_change_check(struct cms_db *db, const struct cms_change *ch, const struct cms_card *card)
{
    char states[128];
    /* Cancelled before a collect made it, or its half-made card undone. */
    if (ch->erases && !card->serial[0] && in_list(ch->from, card->state))
        return cms_fail(db, CMS_STATE, "card %" PRId64 " was never made (no collect finished it, or what one began "
                        "was undone): there is nothing to erase", card->id);
    if (in_list(ch->from, card->state))
        return CMS_OK;
    list_text(ch->from, states, sizeof(states));
    return cms_fail(db, CMS_STATE, "card %" PRId64 " is %s: %s%s applies to a card that is %s", card->id, card->state,
                    ch->replace == CMS_REPLACE_CARD || ch->replace == CMS_REPLACE_TEMPORARY ? "replacing a card as "
                                                                                            : "",
                    ch->name, states);
}

int cms_change_begin(struct cms_db *db, const struct cms_actor *by, const struct cms_change *ch,
                     const struct cms_card *card_in, const struct cms_change_args *args, struct cms_job *job)
{
    struct cms_card card;
    char now[32], owner[400], note[256], params[1024], detail[400];
    sqlite3_stmt *st = NULL;
    int64_t other;
    int rc;

    memset(job, 0, sizeof(*job));
    cms_one_line(args->note, note, sizeof(note));
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    /* Read again under the write lock: what the guard sees is what is changed. */
    if ((rc = cms_card_get(db, card_in->id, NULL, &card)) != CMS_OK || (rc = running_job(db, &card, ch->name)) != CMS_OK)
        goto out;
    if ((rc = cms_change_check(db, ch, &card)) != CMS_OK)
        goto out;
    if (!strcmp(ch->name, "expire") && !card.temporary) {
        rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is not a temporary card: it does not expire", card.id);
        goto out;
    }
    if (ch->replace == CMS_REPLACE_TEMPORARY) {
        struct cms_profile p;
        if (card.temporary) {
            rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is a temporary card: it is not replaced by another; "
                          "replace its original", card.id);
            goto out;
        }
        if ((other = live_temporary(db, card.id, false)) != 0) {
            rc = other < 0 ? CMS_ERR : cms_fail(db, CMS_STATE, "card %" PRId64 " has temporary card %" PRId64
                                                " already", card.id, other);
            goto out;
        }
        if ((rc = cms_profile_get(db, card.profile, 0, &p)) != CMS_OK)
            goto out;
        if (p.temporary_days < 1) {
            rc = cms_fail(db, CMS_INVALID, "profile %s gives temporary cards no life ([lifecycle] "
                          "temporary-card-days)", p.name);
            goto out;
        }
    }
    if (!strcmp(ch->name, "enable") && (other = live_temporary(db, card.id, true)) != 0) {
        rc = other < 0 ? CMS_ERR : cms_fail(db, CMS_STATE, "temporary card %" PRId64 " is being collected: enable "
                                            "the original after", other);
        goto out;
    }
    snprintf(params, sizeof(params), "type=%s\ndevice=%s\ndays=%d\nnote=%s", args->type ? args->type : "",
             args->device ? args->device : "", args->valid_days, note);
    cms_now(now);
    cms_owner_self(owner, sizeof(owner));
    st = cms_prepare(db, "INSERT INTO jobs (kind, state, card_id, holder_id, step, params, owner, created, created_by,"
                         " updated) SELECT ?1, 'running', id, holder_id, 'begun', ?2, ?3, ?4, ?5, ?4 FROM cards"
                         " WHERE id = ?6");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_text(st, 1, ch->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, params, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, by->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, card.id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = cms_sql_fail(db, "jobs");
        goto out;
    }
    job_fill(job, sqlite3_last_insert_rowid(db->db), ch->name, "begun", card.id, by->name);
    snprintf(detail, sizeof(detail), "job %" PRId64 ": %s card %" PRId64 " (%s)%s%s", job->id, ch->name, card.id,
             card.state, note[0] ? ": " : "", note);
    rc = cms_card_audit(db, by->name, ch->action, "started", &card, detail);
out:
    sqlite3_finalize(st);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_change_take(struct cms_db *db, const struct cms_actor *by, int64_t card_id, int64_t job_id,
                    struct cms_job *job, struct cms_card *card)
{
    char now[32], owner[400], detail[200];
    sqlite3_stmt *st = NULL;
    int rc;

    memset(job, 0, sizeof(*job));
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    st = cms_prepare(db, "SELECT id, kind, state, card_id, owner, coalesce(step, ''), created_by FROM jobs"
                         " WHERE (?1 != 0 AND card_id = ?1 AND state = 'running' AND kind NOT IN ('issue', 'lock', 'renew'))"
                         " OR id = ?2"
                         " ORDER BY id LIMIT 1");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, card_id);
    sqlite3_bind_int64(st, 2, job_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = job_id ? cms_fail(db, CMS_NOTFOUND, "no job %" PRId64, job_id)
                    : cms_fail(db, CMS_NOTFOUND, "card %" PRId64 " has no interrupted change", card_id);
        goto out;
    }
    const char *kind = (const char *)sqlite3_column_text(st, 1), *state = (const char *)sqlite3_column_text(st, 2);
    int64_t id = sqlite3_column_int64(st, 0);
    if (!strcmp(kind, "issue")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is a collect: the holder's next `tessera card collect` takes it "
                      "up", id);
        goto out;
    }
    if (!strcmp(kind, "lock")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is a PIN lock: `tessera agent` on the card's device takes it "
                      "up", id);
        goto out;
    }
    if (!strcmp(kind, "renew")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is a certificate renewal: it is done on the card's device",
                      id);
        goto out;
    }
    if (strcmp(state, "running")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is %s, not interrupted", id, state);
        goto out;
    }
    if (cms_owner_alive((const char *)sqlite3_column_text(st, 4))) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is running now, in another process", id);
        goto out;
    }
    job_fill(job, id, kind, (const char *)sqlite3_column_text(st, 5), sqlite3_column_int64(st, 3),
             (const char *)sqlite3_column_text(st, 6));
    sqlite3_finalize(st);
    st = NULL;
    if (!cms_change_find(job->kind)) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is a %s, which this version does not know", id, job->kind);
        goto out;
    }
    cms_now(now);
    cms_owner_self(owner, sizeof(owner));
    if ((rc = cms_exec_bind(db, "UPDATE jobs SET owner = ?3, updated = ?2 WHERE id = ?1", "jobs", job->id, now,
                            owner)) != CMS_OK ||
        (rc = cms_card_get(db, job->card_id, NULL, card)) != CMS_OK)
        goto out;
    snprintf(detail, sizeof(detail), "job %" PRId64 ": %s, interrupted after step %s, taken up", job->id, job->kind,
             job->step);
    rc = cms_card_audit(db, by->name, "job.resume", "ok", card, detail);
out:
    sqlite3_finalize(st);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_change_next_cert(struct cms_db *db, struct cms_ca *ca, const struct cms_job *job,
                         const struct cms_card *card, bool *done)
{
    const struct cms_change *ch = cms_change_find(job->kind);
    struct cms_card owner_card = *card;
    char serial[80], ca_name[160], key[64], now[32], detail[400];
    const char *to = ch ? ch->certs_to : "", *action;
    int64_t cert_id = 0;
    int reason = ch ? ch->reason : 0, rc;
    bool temporary = false;
    sqlite3_stmt *st;

    *done = false;
    if (!ch)
        return cms_fail(db, CMS_STATE, "job %" PRId64 " is not a change", job->id);
    if (ch->reason == CMS_CERTS_KEEP) {
        *done = true;
        return CMS_OK;
    }
    /* The card's own certificates first, then (enable) those of a
     * temporary card standing in for it, which end. */
    for (int pass = 0; pass < 2 && !cert_id; pass++) {
        if (pass == 1 && strcmp(ch->name, "enable"))
            break;
        st = cms_prepare(db, pass == 0 ? "SELECT c.id, c.ca, c.serial, c.key_name, coalesce(k.serial, '')"
                                         " FROM certificates c JOIN cards k ON k.id = c.card_id WHERE k.id = ?1"
                                         " AND instr(' ' || ?2 || ' ', ' ' || c.state || ' ') > 0 ORDER BY c.id LIMIT 1"
                                       : "SELECT c.id, c.ca, c.serial, c.key_name, coalesce(k.serial, '')"
                                         " FROM certificates c JOIN cards k ON k.id = c.card_id"
                                         " WHERE k.replaces_id = ?1 AND k.temporary = 1 AND k.state IN "
                                         CMS_TEMPORARY_LIVE " AND c.state IN ('active','suspended') ORDER BY c.id LIMIT 1");
        if (!st)
            return CMS_ERR;
        sqlite3_bind_int64(st, 1, card->id);
        if (pass == 0)
            sqlite3_bind_text(st, 2, ch->certs_from, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            cert_id = sqlite3_column_int64(st, 0);
            snprintf(ca_name, sizeof(ca_name), "%s", (const char *)sqlite3_column_text(st, 1));
            snprintf(serial, sizeof(serial), "%s", (const char *)sqlite3_column_text(st, 2));
            snprintf(key, sizeof(key), "%s", (const char *)sqlite3_column_text(st, 3));
            snprintf(owner_card.serial, sizeof(owner_card.serial), "%s", (const char *)sqlite3_column_text(st, 4));
            temporary = pass == 1;
        }
        sqlite3_finalize(st);
    }
    if (temporary) {
        reason = CMS_REVOKE_CESSATION;
        to = "revoked";
    }
    if (!cert_id) {
        *done = true;
        return CMS_OK;
    }
    if (!ca)
        return cms_fail(db, CMS_NOTFOUND, "certificate %s is from %s, and this database has no CA set up", serial,
                        ca_name);
    if (strcmp(ca_name, ca->name))
        return cms_fail(db, CMS_ERR, "certificate %s is from %s, not this database's CA (%s): it cannot be changed "
                        "here", serial, ca_name, ca->name);
    action = reason == CMS_HOLD_LIFT ? "cert.release" : reason == CMS_REVOKE_HOLD ? "cert.hold" : "cert.revoke";
    if (ca->ops->revoke(ca, serial, reason) != CMS_OK)
        return cms_fail(db, CMS_ERR, "the CA did not %s certificate %s: %s",
                        reason == CMS_HOLD_LIFT ? "release" : reason == CMS_REVOKE_HOLD ? "hold" : "revoke", serial,
                        ca->err);
    cms_now(now);
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    rc = cms_exec_bind(db, "UPDATE certificates SET state = ?2 WHERE id = ?1", "certificates", cert_id, to, NULL);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET step = 'certificates', updated = ?2 WHERE id = ?1", "jobs", job->id,
                           now, NULL);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": certificate %s (key %s)%s, reason %d", job->id, serial, key,
                 temporary ? " of the temporary card" : "",
                 reason);
        rc = cms_card_audit(db, job->created_by, action, "ok", &owner_card, detail);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_change_erased(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, bool erased)
{
    const struct cms_change *ch = cms_change_find(job->kind);
    char now[32], detail[200];
    int rc = cms_begin(db);
    cms_now(now);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET step = 'erased', updated = ?2 WHERE id = ?1", "jobs", job->id, now,
                           NULL);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": %s", job->id,
                 erased ? "the card erased by its admin key" : "the card was gone: erased by the interrupted run");
        rc = cms_card_audit(db, job->created_by, ch ? ch->action : "card.erase", "erased", card, detail);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

/* A temporary card's original is back: the temporary ends (revoked, or
 * cancelled with its code when it was never collected). */
static int end_temporaries(struct cms_db *db, int64_t card_id, const char *now)
{
    int rc = cms_exec_bind(db, "UPDATE jobs SET state = 'cancelled', code_id = NULL, secret = NULL, updated = ?2"
                               " WHERE kind = 'issue' AND state = 'pending' AND card_id IN (SELECT id FROM cards"
                               " WHERE replaces_id = ?1 AND temporary = 1 AND state = 'requested')",
                           "jobs", card_id, now, NULL);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE cards SET state = CASE state WHEN 'requested' THEN 'cancelled' ELSE 'revoked'"
                               " END, updated = ?2 WHERE replaces_id = ?1 AND temporary = 1 AND state IN "
                               CMS_TEMPORARY_LIVE,
                           "cards", card_id, now, NULL);
    return rc;
}

int cms_change_finish(struct cms_db *db, const struct cms_job *job, const struct cms_card *card_in,
                      char code[CMS_CODE_LEN], int64_t *new_card)
{
    const struct cms_change *ch = cms_change_find(job->kind);
    struct cms_card card;
    char now[32], type[16] = "", device[256] = "", days[16] = "", detail[600];
    const char *to;
    sqlite3_stmt *st = NULL;
    int64_t new_job = 0;
    int rc;

    code[0] = '\0';
    *new_card = 0;
    if (!ch)
        return cms_fail(db, CMS_STATE, "job %" PRId64 " is not a change", job->id);
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, card_in->id, NULL, &card)) != CMS_OK)
        goto out;
    st = cms_prepare(db, "SELECT state, coalesce(params, '') FROM jobs WHERE id = ?");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, job->id);
    if (sqlite3_step(st) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 0), "running")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is not running", job->id);
        goto out;
    }
    const char *params = (const char *)sqlite3_column_text(st, 1);
    cms_param(params, "type", type, sizeof(type));
    cms_param(params, "device", device, sizeof(device));
    cms_param(params, "days", days, sizeof(days));
    sqlite3_finalize(st);
    st = NULL;
    cms_now(now);

    to = ch->to;
    if ((!strcmp(ch->name, "cancel") || !strcmp(ch->name, "expire")) && !strcmp(card.state, "requested")) {
        /* Never collected: its code goes (a collect left half done too: what
         * it had recorded was revoked above, its card keeps its serial). */
        to = "cancelled";
        rc = cms_exec_bind(db, "UPDATE jobs SET state = 'cancelled', code_id = NULL, secret = NULL, owner = NULL,"
                               " updated = ?2 WHERE card_id = ?1 AND kind = 'issue' AND state IN ('pending', 'running')",
                           "jobs", card.id, now, NULL);
    }
    if (rc == CMS_OK && !strcmp(ch->name, "enable"))
        rc = end_temporaries(db, card.id, now);
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE cards SET state = ?2, updated = ?3 WHERE id = ?1", "cards", card.id, to, now);
    if (rc == CMS_OK && ch->replace != CMS_REPLACE_NONE) {
        struct cms_actor by = { { 0 }, 0, true };
        struct cms_profile p;
        struct cms_request r = {
            .holder = card.holder, .profile = card.profile, .type = type[0] ? type : card.type,
            .device = device[0] ? device : NULL, .valid_days = atoi(days) > 0 ? atoi(days) : 14,
            .replaces = card.id,
        };
        snprintf(by.name, sizeof(by.name), "%s", job->created_by);
        if (ch->replace == CMS_REPLACE_REISSUE) {
            r.type = card.type;
            r.device = card.device[0] ? card.device : NULL;
        }
        if (ch->replace == CMS_REPLACE_TEMPORARY && (rc = cms_profile_get(db, card.profile, 0, &p)) == CMS_OK)
            r.temporary_days = p.temporary_days;
        if (rc == CMS_OK)
            rc = cms_card_request_in(db, &by, &r, code, new_card, &new_job);
    }
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET state = 'done', step = 'done', owner = NULL, updated = ?2 WHERE id = ?1",
                           "jobs", job->id, now, NULL);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": %s, card %" PRId64 " %s -> %s", job->id, ch->name, card.id,
                 card.state, to);
        if (*new_card)
            snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail), "; %scard %" PRId64 " requested (job %"
                     PRId64 ")", ch->replace == CMS_REPLACE_TEMPORARY ? "temporary " : "replacement ", *new_card,
                     new_job);
        rc = cms_card_audit(db, job->created_by, ch->action, "ok", &card, detail);
    }
out:
    sqlite3_finalize(st);
    if (rc == CMS_OK && (rc = cms_commit(db)) == CMS_OK)
        return CMS_OK;
    cms_rollback(db);
    tess_wipe(code, CMS_CODE_LEN);
    *new_card = 0;
    return rc;
}
