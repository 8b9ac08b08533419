/* The renewal scan's database side (renewal.h). */
#include "config.h"
#include "renewal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cards.h"
#include "lifecycle.h"
#include "profile.h"

#define DAY 86400

/* The lifecycle numbers of every profile version, by its row id: a card
 * follows the version it was issued to. Profiles are few. */
struct windows {
    struct window {
        int64_t profile_id;
        int renewal_days, notify_days;
    } *w;
    size_t n;
    int widest;
};

static int windows_load(struct cms_db *db, struct windows *ws)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id, body FROM profiles ORDER BY id");
    struct cms_profile *p = calloc(1, sizeof(*p));
    char err[256];
    int rc = CMS_OK, step;

    memset(ws, 0, sizeof(*ws));
    if (!st || !p) {
        rc = st ? cms_fail(db, CMS_ERR, "out of memory") : CMS_ERR;
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct window *grown = realloc(ws->w, (ws->n + 1) * sizeof(*ws->w));
        if (!grown) {
            rc = cms_fail(db, CMS_ERR, "out of memory");
            goto out;
        }
        ws->w = grown;
        if (cms_profile_parse((const char *)sqlite3_column_text(st, 1), p, err, sizeof(err)) != CMS_OK) {
            rc = cms_fail(db, CMS_ERR, "profile row %" PRId64 " does not parse: %s", (int64_t)sqlite3_column_int64(st, 0),
                          err);
            goto out;
        }
        ws->w[ws->n++] = (struct window){ sqlite3_column_int64(st, 0), p->renewal_window_days,
                                          p->notify_every_days };
        if (p->renewal_window_days > ws->widest)
            ws->widest = p->renewal_window_days;
    }
    if (step != SQLITE_DONE)
        rc = cms_sql_fail(db, "profiles");
out:
    sqlite3_finalize(st);
    free(p);
    return rc;
}

static const struct window *window_of(const struct windows *ws, int64_t profile_id)
{
    for (size_t i = 0; i < ws->n; i++)
        if (ws->w[i].profile_id == profile_id)
            return &ws->w[i];
    return NULL;
}

/* now + seconds in the stored form, and now as a time (CMS_INVALID when
 * now does not parse). */
static int shifted(struct cms_db *db, const char *now, int64_t seconds, int64_t *t, char out[32])
{
    if (cms_time_parse(now, t) != 0)
        return cms_fail(db, CMS_INVALID, "not a time: %s", now);
    cms_time_text(*t + seconds, out);
    return CMS_OK;
}

struct candidate {
    int64_t card_id, profile_id;
    char expires[32];
};

/* Cards in use whose earliest active certificate expires by cutoff and
 * that have no open renewal: over certificates_expiry (active, by
 * not_after) and jobs_one_renewal. */
static int candidates(struct cms_db *db, const char *cutoff, struct candidate **out, size_t *n)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT k.id, k.profile_id, min(c.not_after) FROM certificates c"
                                       " JOIN cards k ON k.id = c.card_id"
                                       " WHERE c.state = 'active' AND c.not_after <= ?1 AND k.temporary = 0"
                                       " AND k.state IN ('active','locked') AND NOT EXISTS (SELECT 1 FROM jobs j"
                                       "   WHERE j.card_id = k.id AND j.kind = 'renew'"
                                       "   AND j.state IN ('pending','running'))"
                                       " GROUP BY k.id");
    int rc = CMS_OK, step;
    *out = NULL;
    *n = 0;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct candidate *grown = realloc(*out, (*n + 1) * sizeof(**out));
        if (!grown) {
            rc = cms_fail(db, CMS_ERR, "out of memory");
            break;
        }
        *out = grown;
        grown[*n].card_id = sqlite3_column_int64(st, 0);
        grown[*n].profile_id = sqlite3_column_int64(st, 1);
        snprintf(grown[*n].expires, sizeof(grown[*n].expires), "%s", (const char *)sqlite3_column_text(st, 2));
        (*n)++;
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "certificates");
    sqlite3_finalize(st);
    return rc;
}

static int make_job(struct cms_db *db, const struct cms_actor *by, const struct candidate *cand, int window,
                    const char *now)
{
    struct cms_card card;
    char params[64], detail[200];
    sqlite3_stmt *st;
    int rc = cms_card_get(db, cand->card_id, NULL, &card);
    if (rc != CMS_OK)
        return rc;
    snprintf(params, sizeof(params), "expires=%s", cand->expires);
    st = cms_prepare(db, "INSERT INTO jobs (kind, state, card_id, holder_id, params, created, created_by, updated)"
                         " SELECT 'renew', 'pending', id, holder_id, ?2, ?3, ?4, ?3 FROM cards WHERE id = ?1");
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, card.id);
    sqlite3_bind_text(st, 2, params, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, by->name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "jobs");
    sqlite3_finalize(st);
    if (rc != CMS_OK)
        return rc;
    snprintf(detail, sizeof(detail), "job %" PRId64 ": certificates expire %s, within the %d-day renewal window",
             (int64_t)sqlite3_last_insert_rowid(db->db), cand->expires, window);
    return cms_card_audit(db, by->name, "card.renewal", "requested", &card, detail);
}

/* Pending renewals whose card left use or has nothing left to renew. */
static int cancel_stale(struct cms_db *db, const struct cms_actor *by, const char *now, int *cancelled)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT j.id, j.card_id, k.state FROM jobs j JOIN cards k ON k.id = j.card_id"
                                       " WHERE j.kind = 'renew' AND j.state IN ('pending','running')"
                                       " AND j.state = 'pending' AND (k.state NOT IN ('active','locked')"
                                       " OR NOT EXISTS (SELECT 1 FROM certificates c WHERE c.card_id = k.id"
                                       "   AND c.state = 'active'))");
    struct stale {
        int64_t job, card;
        char why[80];
    } *list = NULL;
    size_t n = 0;
    int rc = CMS_OK, step;

    if (!st)
        return CMS_ERR;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct stale *grown = realloc(list, (n + 1) * sizeof(*list));
        const char *state = (const char *)sqlite3_column_text(st, 2);
        if (!grown) {
            rc = cms_fail(db, CMS_ERR, "out of memory");
            break;
        }
        list = grown;
        list[n].job = sqlite3_column_int64(st, 0);
        list[n].card = sqlite3_column_int64(st, 1);
        if (!strcmp(state, "active") || !strcmp(state, "locked"))
            snprintf(list[n].why, sizeof(list[n].why), "no active certificate left to renew");
        else
            snprintf(list[n].why, sizeof(list[n].why), "the card is %s", state);
        n++;
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "jobs");
    sqlite3_finalize(st);
    for (size_t i = 0; rc == CMS_OK && i < n; i++) {
        struct cms_card card;
        char detail[200];
        rc = cms_exec_bind(db, "UPDATE jobs SET state = 'cancelled', error = ?3, updated = ?2 WHERE id = ?1", "jobs",
                           list[i].job, now, list[i].why);
        if (rc == CMS_OK)
            rc = cms_card_get(db, list[i].card, NULL, &card);
        if (rc == CMS_OK) {
            snprintf(detail, sizeof(detail), "job %" PRId64 ": %s", list[i].job, list[i].why);
            rc = cms_card_audit(db, by->name, "card.renewal", "cancelled", &card, detail);
        }
        if (rc == CMS_OK)
            (*cancelled)++;
    }
    free(list);
    return rc;
}

int cms_renewal_jobs(struct cms_db *db, const struct cms_actor *by, const char *now, bool dry, int *made,
                     int *cancelled)
{
    struct windows ws;
    struct candidate *cands = NULL;
    size_t n = 0;
    char cutoff[32], limit[32];
    int64_t t;
    int rc;

    *made = *cancelled = 0;
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = windows_load(db, &ws)) != CMS_OK || (rc = cancel_stale(db, by, now, cancelled)) != CMS_OK)
        goto out;
    /* One pass over the widest window; each card's own window decides. */
    if ((rc = shifted(db, now, (int64_t)ws.widest * DAY, &t, cutoff)) != CMS_OK ||
        (rc = candidates(db, cutoff, &cands, &n)) != CMS_OK)
        goto out;
    for (size_t i = 0; rc == CMS_OK && i < n; i++) {
        const struct window *w = window_of(&ws, cands[i].profile_id);
        if (!w)
            continue;
        cms_time_text(t + (int64_t)w->renewal_days * DAY, limit);
        if (strcmp(cands[i].expires, limit) > 0)
            continue;
        if ((rc = make_job(db, by, &cands[i], w->renewal_days, now)) == CMS_OK)
            (*made)++;
    }
out:
    free(cands);
    free(ws.w);
    if (rc == CMS_OK && !dry)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

/* Whole days from now to then, rounded towards the past (an expiry later
 * today is 0 days away; one an hour ago is -1). */
static int days_between(int64_t now, int64_t then)
{
    int64_t d = then - now;
    return (int)(d >= 0 ? d / DAY : -((-d + DAY - 1) / DAY));
}

int cms_renewal_notices_due(struct cms_db *db, const char *now, cms_notice_cb cb, void *arg)
{
    sqlite3_stmt *st = NULL;
    struct windows ws;
    struct cms_notice n;
    int64_t t_now, t;
    int rc, step = SQLITE_DONE;

    if ((rc = windows_load(db, &ws)) != CMS_OK)
        return rc;
    if (cms_time_parse(now, &t_now) != 0) {
        rc = cms_fail(db, CMS_INVALID, "not a time: %s", now);
        goto out;
    }
    /* From the open renewals (jobs_one_renewal, named: left to itself the
     * planner reads every job in id order to spare the GROUP BY a sort) to
     * their cards and their certificates (certificates_card), in that
     * order: CROSS JOIN keeps it from starting at the active certificates,
     * all of which it would read (the bench found it: 0.9 s at 100 000
     * cards). */
    st = cms_prepare(db, "SELECT j.id, k.id, coalesce(k.serial, ''), coalesce(d.name, ''), h.uid, h.name,"
                         " coalesce(h.email, ''), p.name, k.profile_id, min(c.not_after), coalesce(max(c.notified), '')"
                         " FROM jobs j INDEXED BY jobs_one_renewal CROSS JOIN cards k ON k.id = j.card_id"
                         " CROSS JOIN certificates c ON c.card_id = k.id AND c.state = 'active'"
                         " JOIN holders h ON h.id = k.holder_id"
                         " JOIN profiles p ON p.id = k.profile_id LEFT JOIN devices d ON d.id = k.device_id"
                         " WHERE j.kind = 'renew' AND j.state IN ('pending','running') AND j.state = 'pending'"
                         " GROUP BY j.id ORDER BY min(c.not_after), j.id");
    if (!st) {
        rc = CMS_ERR;
        goto out;
    }
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const struct window *w = window_of(&ws, sqlite3_column_int64(st, 8));
        memset(&n, 0, sizeof(n));
        snprintf(n.previous, sizeof(n.previous), "%s", (const char *)sqlite3_column_text(st, 10));
        /* Told before: again once notify-every-days have passed (0: never again). */
        if (n.previous[0] && (!w || w->notify_days <= 0 || cms_time_parse(n.previous, &t) != 0 ||
                              t + (int64_t)w->notify_days * DAY > t_now))
            continue;
        n.job_id = sqlite3_column_int64(st, 0);
        n.card_id = sqlite3_column_int64(st, 1);
        snprintf(n.serial, sizeof(n.serial), "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(n.device, sizeof(n.device), "%s", (const char *)sqlite3_column_text(st, 3));
        snprintf(n.holder, sizeof(n.holder), "%s", (const char *)sqlite3_column_text(st, 4));
        cms_one_line((const char *)sqlite3_column_text(st, 5), n.name, sizeof(n.name));
        cms_one_line((const char *)sqlite3_column_text(st, 6), n.email, sizeof(n.email));
        snprintf(n.profile, sizeof(n.profile), "%s", (const char *)sqlite3_column_text(st, 7));
        snprintf(n.expires, sizeof(n.expires), "%s", (const char *)sqlite3_column_text(st, 9));
        n.days_left = cms_time_parse(n.expires, &t) == 0 ? days_between(t_now, t) : 0;
        snprintf(n.id, sizeof(n.id), "renewal-%" PRId64 "-%s", n.job_id, n.previous[0] ? n.previous : "first");
        rc = cb(arg, &n);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "jobs");
out:
    sqlite3_finalize(st);
    free(ws.w);
    return rc;
}

int cms_renewal_notified(struct cms_db *db, const struct cms_actor *by, const struct cms_notice *n, const char *now,
                         const char *channels, bool reached)
{
    struct cms_card card;
    char detail[400];
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, n->card_id, NULL, &card)) != CMS_OK)
        goto out;
    rc = cms_exec_bind(db, "UPDATE certificates SET notified = ?2 WHERE card_id = ?1 AND state = 'active'",
                       "certificates", n->card_id, now, NULL);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": %s %s that certificates expire %s; notice %s",
                 n->job_id, reached ? "holder told by" : "holder not told:", channels, n->expires, n->id);
        rc = cms_card_audit(db, by->name, "card.renewal", reached ? "notified" : "unreachable", &card, detail);
    }
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_temporaries_expired(struct cms_db *db, const char *now, int64_t **ids, size_t *n)
{
    /* Over cards_temporary (temporary cards, by their end). */
    sqlite3_stmt *st = cms_prepare(db, "SELECT id FROM cards WHERE temporary = 1 AND expires <= ?1"
                                       " AND state IN " CMS_TEMPORARY_LIVE " ORDER BY expires, id");
    int rc = CMS_OK, step;
    *ids = NULL;
    *n = 0;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t *grown = realloc(*ids, (*n + 1) * sizeof(**ids));
        if (!grown) {
            rc = cms_fail(db, CMS_ERR, "out of memory");
            break;
        }
        *ids = grown;
        grown[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "cards");
    sqlite3_finalize(st);
    if (rc != CMS_OK) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return rc;
}
