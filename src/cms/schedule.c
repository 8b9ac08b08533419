/* Jobs that wait for a time: PIN locks, their agent's side, the due-job
 * scan and the helpdesk unlock that may schedule a relock (schedule.h). */
#include "config.h"
#include "schedule.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"

/* ---- wall-clock time in a named zone ---- */

/* An IANA zone name that names a zone file: letters, digits and _+-/ , no
 * ".." and no leading "/", so TZ cannot be pointed at an arbitrary file,
 * and the file exists (glibc silently takes an unknown TZ for UTC). */
static bool zone_known(const char *tz)
{
    const char *dir = getenv("TZDIR");
    char path[512], magic[4];
    FILE *f;
    bool ok;

    if (!tz[0] || tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 64)
        return false;
    for (const char *p = tz; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("_+-/", *p)))
            return false;
    snprintf(path, sizeof(path), "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", tz);
    if (!(f = fopen(path, "rb")))
        return false;
    ok = fread(magic, 1, sizeof(magic), f) == sizeof(magic) && !memcmp(magic, "TZif", 4);
    fclose(f);
    return ok;
}

/* mktime in zone tz with the DST flag given; true when the result reads
 * back as the same wall-clock time with that flag (a real local time). */
static bool local_with_dst(const struct tm *want, int isdst, time_t *out)
{
    struct tm tm = *want, back;
    tm.tm_isdst = isdst;
    *out = mktime(&tm);
    if (*out == (time_t)-1 || !localtime_r(out, &back))
        return false;
    return back.tm_year == want->tm_year && back.tm_mon == want->tm_mon && back.tm_mday == want->tm_mday &&
           back.tm_hour == want->tm_hour && back.tm_min == want->tm_min && back.tm_sec == want->tm_sec &&
           back.tm_isdst == isdst;
}

static int month_days(int year, int month)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[(month - 1) % 12];
}

int cms_local_to_utc(struct cms_db *db, const char *local, const char *tz, char utc[32])
{
    struct tm want = { 0 };
    char *old = NULL;
    const char *env;
    time_t t0 = 0, t1 = 0;
    bool std_ok, dst_ok;
    int n, used = 0;

    if (!zone_known(tz))
        return cms_fail(db, CMS_INVALID, "no timezone %s (a name such as Europe/Berlin or America/New_York)", tz);
    /* YYYY-MM-DD HH:MM, then optionally :SS; nothing after. */
    n = sscanf(local, "%4d-%2d-%2d%*1[ T]%2d:%2d%n:%2d%n", &want.tm_year, &want.tm_mon, &want.tm_mday,
               &want.tm_hour, &want.tm_min, &used, &want.tm_sec, &used);
    if ((n != 5 && n != 6) || local[used] || want.tm_mon < 1 || want.tm_mon > 12 || want.tm_mday < 1 ||
        want.tm_mday > month_days(want.tm_year, want.tm_mon) || want.tm_hour > 23 || want.tm_min > 59 || want.tm_sec > 59 || want.tm_year < 1970)
        return cms_fail(db, CMS_INVALID, "'%s' is not a time as YYYY-MM-DD HH:MM", local);
    want.tm_year -= 1900;
    want.tm_mon -= 1;

    /* The tool is one thread; TZ is put back as it was. */
    env = getenv("TZ");
    if (env && !(old = strdup(env)))
        return cms_fail(db, CMS_ERR, "out of memory");
    setenv("TZ", tz, 1);
    tzset();
    std_ok = local_with_dst(&want, 0, &t0);
    dst_ok = local_with_dst(&want, 1, &t1);
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old);

    if (!std_ok && !dst_ok)
        return cms_fail(db, CMS_INVALID, "%s does not happen in %s (the clocks skip it)", local, tz);
    /* Both: the hour the clocks go back repeats it; the first comes first. */
    cms_time_text(std_ok && dst_ok ? (t0 < t1 ? t0 : t1) : std_ok ? t0 : t1, utc);
    return CMS_OK;
}

/* ---- lock jobs ---- */

/* The pending lock of a card (0: none; -1: the database failed). */
static int64_t pending_lock(struct cms_db *db, int64_t card_id, char due[32])
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id, coalesce(due, '') FROM jobs WHERE card_id = ? AND kind = 'lock'"
                                       " AND state = 'pending'");
    int64_t id = 0;
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, card_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        snprintf(due, 32, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return id;
}

static void lock_params(char *out, size_t outlen, const char *local, const char *tz, const char *note)
{
    char line[256];
    cms_one_line(note, line, sizeof(line));
    snprintf(out, outlen, "local=%s\ntz=%s\nnote=%s", local ? local : "", tz ? tz : "", line);
}

static void due_text(const char *due, const char *local, const char *tz, char *out, size_t outlen)
{
    if (!due)
        snprintf(out, outlen, "at the agent's next run");
    else if (local && tz)
        snprintf(out, outlen, "due %s (%s %s)", due, local, tz);
    else
        snprintf(out, outlen, "due %s", due);
}

/* A new lock job of the card, due at due (NULL: now), inside a transaction. */
static int lock_insert(struct cms_db *db, const char *by, const struct cms_card *card, const char *due,
                       const char *params, int64_t *job_id)
{
    char now[32];
    sqlite3_stmt *st = cms_prepare(db, "INSERT INTO jobs (kind, state, card_id, holder_id, device_id, due, params,"
                                       " created, created_by, updated) SELECT 'lock', 'pending', id, holder_id,"
                                       " device_id, ?1, ?2, ?3, ?4, ?3 FROM cards WHERE id = ?5");
    int rc = CMS_OK;
    if (!st)
        return CMS_ERR;
    cms_now(now);
    sqlite3_bind_text(st, 1, due ? due : now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, params, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, card->id);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = cms_sql_fail(db, "jobs");
    else
        *job_id = sqlite3_last_insert_rowid(db->db);
    sqlite3_finalize(st);
    return rc;
}

int cms_lock_request(struct cms_db *db, const struct cms_actor *by, const struct cms_card *card_in, const char *due,
                     const char *local, const char *tz, const char *note, int64_t *job_id)
{
    struct cms_card card;
    char params[1024], when[160], detail[400], other_due[32] = "";
    int64_t other;
    int rc;

    *job_id = 0;
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, card_in->id, NULL, &card)) != CMS_OK)
        goto out;
    if (strcmp(card.state, "active")) {
        rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is %s: a lock applies to a card that is active", card.id,
                      card.state);
        goto out;
    }
    if ((other = pending_lock(db, card.id, other_due)) != 0) {
        rc = other < 0 ? CMS_ERR : cms_fail(db, CMS_STATE, "card %" PRId64 " has a pending lock already (job %" PRId64
                                            ", due %s): move it (tessera job move %" PRId64 ") or cancel it "
                                            "(tessera job cancel %" PRId64 ")", card.id, other, other_due, other,
                                            other);
        goto out;
    }
    lock_params(params, sizeof(params), local, tz, note);
    if ((rc = lock_insert(db, by->name, &card, due, params, job_id)) != CMS_OK)
        goto out;
    due_text(due, local, tz, when, sizeof(when));
    snprintf(detail, sizeof(detail), "job %" PRId64 ": PIN lock %s", *job_id, when);
    rc = cms_card_audit(db, by->name, "card.lock", "requested", &card, detail);
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

/* The lock job job_id, pending, and its card; inside a transaction. */
static int pending_lock_job(struct cms_db *db, int64_t job_id, struct cms_card *card)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT kind, state, card_id FROM jobs WHERE id = ?");
    int64_t card_id = 0;
    int rc = CMS_OK;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, job_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = cms_fail(db, CMS_NOTFOUND, "no job %" PRId64, job_id);
    } else if (strcmp((const char *)sqlite3_column_text(st, 0), "lock")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is a %s, not a PIN lock: only locks are moved or cancelled",
                      job_id, (const char *)sqlite3_column_text(st, 0));
    } else if (strcmp((const char *)sqlite3_column_text(st, 1), "pending")) {
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is %s: a lock is moved or cancelled only while it is pending",
                      job_id, (const char *)sqlite3_column_text(st, 1));
    } else {
        card_id = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc == CMS_OK ? cms_card_get(db, card_id, NULL, card) : rc;
}

/* A pending lock moved to due, or (due NULL) cancelled, with its audit record. */
static int lock_change(struct cms_db *db, const struct cms_actor *by, int64_t job_id, const char *due,
                       const char *local, const char *tz, const char *note)
{
    struct cms_card card;
    char now[32], params[1024], when[160], line[256], detail[400];
    int rc;

    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = pending_lock_job(db, job_id, &card)) != CMS_OK)
        goto out;
    cms_now(now);
    if (due) {
        lock_params(params, sizeof(params), local, tz, NULL);
        rc = cms_exec_bind(db, "UPDATE jobs SET due = ?2, params = ?3 WHERE id = ?1", "jobs", job_id, due, params);
        due_text(due, local, tz, when, sizeof(when));
        snprintf(detail, sizeof(detail), "job %" PRId64 ": PIN lock moved, now %s", job_id, when);
    } else {
        cms_one_line(note, line, sizeof(line));
        rc = cms_exec_bind(db, "UPDATE jobs SET state = 'cancelled' WHERE id = ?1", "jobs", job_id, NULL, NULL);
        snprintf(detail, sizeof(detail), "job %" PRId64 ": PIN lock cancelled%s%s", job_id, line[0] ? ": " : "",
                 line);
    }
    if (rc == CMS_OK)
        rc = cms_exec_bind(db, "UPDATE jobs SET updated = ?2 WHERE id = ?1", "jobs", job_id, now, NULL);
    if (rc == CMS_OK)
        rc = cms_card_audit(db, by->name, "card.lock", due ? "moved" : "cancelled", &card, detail);
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_lock_move(struct cms_db *db, const struct cms_actor *by, int64_t job_id, const char *due, const char *local,
                  const char *tz)
{
    char now[32];
    if (!due) {
        cms_now(now);
        due = now;
    }
    return lock_change(db, by, job_id, due, local, tz, NULL);
}

int cms_lock_cancel(struct cms_db *db, const struct cms_actor *by, int64_t job_id, const char *note)
{
    return lock_change(db, by, job_id, NULL, NULL, NULL, note);
}

/* ---- the due-job scan and the agent ---- */

int cms_jobs_due(struct cms_db *db, const char *device, const char *now, cms_job_cb cb, void *arg)
{
    char at[32];
    if (!now) {
        cms_now(at);
        now = at;
    }
    /* j.due <= ?1 over the partial index jobs_due (pending jobs only). */
    return cms_job_select(db, device ? "WHERE j.state = 'pending' AND j.due <= ?1 AND d.name = ?2 ORDER BY j.due, j.id"
                                     : "WHERE j.state = 'pending' AND j.due <= ?1 ORDER BY j.due, j.id",
                          now, device, cb, arg);
}

int cms_locks_interrupted(struct cms_db *db, const char *device, cms_job_cb cb, void *arg)
{
    return cms_job_select(db, "WHERE j.kind = 'lock' AND j.state = 'running' AND d.name = ?1 ORDER BY j.id", device,
                          NULL, cb, arg);
}

int cms_lock_take(struct cms_db *db, const char *agent, int64_t job_id, struct cms_job *job, struct cms_card *card)
{
    sqlite3_stmt *st = NULL;
    char now[32], owner[400], detail[300];
    const char *state, *due;
    int rc;

    memset(job, 0, sizeof(*job));
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if (!(st = cms_prepare(db, "SELECT kind, state, coalesce(due, ''), owner, card_id, created_by, coalesce(step, '')"
                               " FROM jobs WHERE id = ?"))) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_int64(st, 1, job_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = cms_fail(db, CMS_NOTFOUND, "no job %" PRId64, job_id);
        goto out;
    }
    cms_now(now);
    state = (const char *)sqlite3_column_text(st, 1);
    due = (const char *)sqlite3_column_text(st, 2);
    if (strcmp((const char *)sqlite3_column_text(st, 0), "lock"))
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is not a PIN lock", job_id);
    else if (!strcmp(state, "pending") && strcmp(due, now) > 0)
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is not due before %s", job_id, due);
    else if (!strcmp(state, "running") && cms_owner_alive((const char *)sqlite3_column_text(st, 3)))
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is being done now by another process", job_id);
    else if (strcmp(state, "pending") && strcmp(state, "running"))
        rc = cms_fail(db, CMS_STATE, "job %" PRId64 " is %s", job_id, state);
    if (rc != CMS_OK)
        goto out;
    job->id = job_id;
    snprintf(job->kind, sizeof(job->kind), "lock");
    snprintf(job->state, sizeof(job->state), "running");
    snprintf(job->step, sizeof(job->step), "%s", (const char *)sqlite3_column_text(st, 6));
    snprintf(job->due, sizeof(job->due), "%s", due);
    snprintf(job->created_by, sizeof(job->created_by), "%s", (const char *)sqlite3_column_text(st, 5));
    job->card_id = sqlite3_column_int64(st, 4);
    bool resumed = !strcmp(state, "running");
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = cms_card_get(db, job->card_id, NULL, card)) != CMS_OK)
        goto out;
    if (strcmp(card->state, "active") && strcmp(card->state, "locked")) {
        /* Suspended, revoked, erased since it was asked for: nothing to lock. */
        snprintf(detail, sizeof(detail), "job %" PRId64 ": PIN lock not done: the card is %s", job->id, card->state);
        if ((rc = cms_exec_bind(db, "UPDATE jobs SET state = 'cancelled', updated = ?2, error = ?3 WHERE id = ?1",
                                "jobs", job->id, now, detail)) == CMS_OK &&
            (rc = cms_card_audit(db, agent, "card.lock", "cancelled", card, detail)) == CMS_OK &&
            (rc = cms_commit(db)) == CMS_OK)
            return cms_fail(db, CMS_STATE, "%s", detail);
        goto out;
    }
    cms_owner_self(owner, sizeof(owner));
    if ((rc = cms_exec_bind(db, "UPDATE jobs SET state = 'running', step = 'taken', owner = ?3, updated = ?2"
                                " WHERE id = ?1", "jobs", job->id, now, owner)) != CMS_OK)
        goto out;
    if (resumed) {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": PIN lock, interrupted, taken up", job->id);
        rc = cms_card_audit(db, agent, "job.resume", "ok", card, detail);
    }
out:
    sqlite3_finalize(st);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

int cms_lock_done(struct cms_db *db, const char *agent, const struct cms_job *job, const struct cms_card *card_in,
                  bool locked, const char *why)
{
    struct cms_card card;
    char now[32], detail[400];
    int rc;

    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, card_in->id, NULL, &card)) != CMS_OK)
        goto out;
    cms_now(now);
    if (locked) {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": user PIN locked (asked by %s, due %s)", job->id,
                 job->created_by, job->due);
        if ((rc = cms_exec_bind(db, "UPDATE jobs SET state = 'done', step = 'locked', updated = ?2 WHERE id = ?1",
                                "jobs", job->id, now, NULL)) != CMS_OK ||
            (rc = cms_exec_bind(db, "UPDATE cards SET state = 'locked', updated = ?2 WHERE id = ?1 AND state = 'active'",
                                "cards", card.id, now, NULL)) != CMS_OK)
            goto out;
        rc = cms_card_audit(db, agent, "card.lock", "ok", &card, detail);
    } else {
        snprintf(detail, sizeof(detail), "job %" PRId64 ": PIN lock failed: %s", job->id, why ? why : "unknown");
        if ((rc = cms_exec_bind(db, "UPDATE jobs SET state = 'failed', updated = ?2, error = ?3 WHERE id = ?1", "jobs",
                                job->id, now, detail)) != CMS_OK)
            goto out;
        rc = cms_card_audit(db, agent, "card.lock", "failed", &card, detail);
    }
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

/* ---- the helpdesk unlock ---- */

int cms_card_unlock(struct cms_db *db, const struct cms_actor *by, const struct cms_card *card_in, int hours,
                    const char *note, int64_t *relock_job)
{
    struct cms_card card;
    char now[32], due[32], line[256], params[1024], detail[400];
    int64_t pending;
    int rc;

    *relock_job = 0;
    if (hours < 0 || hours > 24 * 366)
        return cms_fail(db, CMS_INVALID, "an unlock lasts from 1 hour to a year (or without --hours, for good)");
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if ((rc = cms_card_get(db, card_in->id, NULL, &card)) != CMS_OK)
        goto out;
    if (strcmp(card.state, "locked") && strcmp(card.state, "active")) {
        rc = cms_fail(db, CMS_STATE, "card %" PRId64 " is %s: an unlock applies to a card that is locked (or active "
                      "with its PIN blocked)", card.id, card.state);
        goto out;
    }
    cms_now(now);
    cms_one_line(note, line, sizeof(line));
    if ((pending = pending_lock(db, card.id, due)) < 0) {
        rc = CMS_ERR;
        goto out;
    }
    if (pending && (rc = cms_exec_bind(db, "UPDATE jobs SET state = 'cancelled', updated = ?2, error = ?3"
                                           " WHERE id = ?1", "jobs", pending, now,
                                       "replaced by an unlock")) != CMS_OK)
        goto out;
    if ((rc = cms_exec_bind(db, "UPDATE cards SET state = 'active', updated = ?2 WHERE id = ?1", "cards", card.id, now,
                            NULL)) != CMS_OK)
        goto out;
    if (hours > 0) {
        int64_t t;
        cms_time_parse(now, &t);
        cms_time_text(t + (int64_t)hours * 3600, due);
        lock_params(params, sizeof(params), NULL, NULL, "relock after a time-limited unlock");
        if ((rc = lock_insert(db, by->name, &card, due, params, relock_job)) != CMS_OK)
            goto out;
        snprintf(detail, sizeof(detail), "for %d hours: locked again by job %" PRId64 " due %s%s%s", hours,
                 *relock_job, due, line[0] ? ": " : "", line);
    } else {
        snprintf(detail, sizeof(detail), "for good%s%s", line[0] ? ": " : "", line);
    }
    rc = cms_card_audit(db, by->name, "card.unlock", "ok", &card, detail);
out:
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}
