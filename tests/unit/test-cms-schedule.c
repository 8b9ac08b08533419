/* Jobs that wait for a time (schedule.c) without a card: wall-clock times
 * in named zones (summer time, the hours the clocks skip and repeat, half
 * hours), one pending lock per card, the due-job scan by time and device,
 * an agent's take, interruption and finish, a lock let go when the card
 * changed, and the helpdesk's unlock with its relock. The card side is
 * test-cms-lock.sh's. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/cms/audit.h"
#include "src/cms/lifecycle.h"
#include "src/cms/schedule.h"
#include "tests/tap.h"
#include "tests/unit/cms-fixture.h"

static struct cms_actor helpdesk = { "olga", CMS_ROLE_HELPDESK, true };

static const char *utc_of(struct cms_db *db, const char *local, const char *tz)
{
    static char out[32];
    if (cms_local_to_utc(db, local, tz, out) != CMS_OK)
        snprintf(out, sizeof(out), "refused");
    return out;
}

static void test_zones(struct cms_db *db)
{
    ok(!strcmp(utc_of(db, "2026-03-10 09:30", "Asia/Tokyo"), "2026-03-10T00:30:00Z"), "Tokyo, 09:30 is 00:30 UTC");
    ok(!strcmp(utc_of(db, "2026-07-01 08:00", "America/New_York"), "2026-07-01T12:00:00Z"), "New York in summer");
    ok(!strcmp(utc_of(db, "2026-12-01 08:00", "America/New_York"), "2026-12-01T13:00:00Z"), "  and in winter");
    ok(!strcmp(utc_of(db, "2026-03-08 02:30", "America/New_York"), "refused") && strstr(db->err, "skip"),
       "a time the clocks skip: %s", db->err);
    ok(!strcmp(utc_of(db, "2026-11-01 01:30", "America/New_York"), "2026-11-01T05:30:00Z"),
       "a time they repeat: the first");
    ok(!strcmp(utc_of(db, "2026-01-15 12:00", "Asia/Kolkata"), "2026-01-15T06:30:00Z"), "a half-hour zone");
    ok(!strcmp(utc_of(db, "2026-10-04 02:15", "Australia/Lord_Howe"), "refused"),
       "a half-hour summer time skips half an hour");
    ok(!strcmp(utc_of(db, "2026-10-04 02:45", "Australia/Lord_Howe"), "2026-10-03T15:45:00Z"), "  and no more");
    ok(!strcmp(utc_of(db, "2028-02-29 00:00:30", "UTC"), "2028-02-29T00:00:30Z"), "29 February of a leap year");
    ok(!strcmp(utc_of(db, "2027-02-29 00:00", "UTC"), "refused"), "  not of another");
    ok(!strcmp(utc_of(db, "2026-12-01 08:00", "Mars/Olympus"), "refused") && strstr(db->err, "timezone"),
       "an unknown zone: %s", db->err);
    ok(!strcmp(utc_of(db, "2026-12-01 08:00", "../../etc/passwd"), "refused") &&
           !strcmp(utc_of(db, "2026-12-01 08:00", "/etc/localtime"), "refused") &&
           !strcmp(utc_of(db, "2026-12-01 08:00", ""), "refused"),
       "  a path, or nothing, is not a zone");
    ok(!strcmp(utc_of(db, "2026-12-01", "UTC"), "refused") && !strcmp(utc_of(db, "2026-12-01 8h", "UTC"), "refused") &&
           !strcmp(utc_of(db, "2026-12-01 08:00 ", "UTC"), "refused") &&
           !strcmp(utc_of(db, "2026-13-01 08:00", "UTC"), "refused") &&
           !strcmp(utc_of(db, "2026-12-01 24:00", "UTC"), "refused"),
       "  malformed times are refused");
    setenv("TZ", "Asia/Tokyo", 1);
    utc_of(db, "2026-12-01 08:00", "America/New_York");
    ok(getenv("TZ") && !strcmp(getenv("TZ"), "Asia/Tokyo"), "the process's TZ is put back");
    unsetenv("TZ");
    utc_of(db, "2026-12-01 08:00", "America/New_York");
    ok(!getenv("TZ"), "  and left unset when it was");
}

static const char *job_state(struct cms_db *db, int64_t id)
{
    static char out[16];
    sqlite3_stmt *st = cms_prepare(db, "SELECT state FROM jobs WHERE id = ?");
    snprintf(out, sizeof(out), "?");
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

static const char *card_state(struct cms_db *db, int64_t id)
{
    static struct cms_card card;
    return cms_card_get(db, id, NULL, &card) == CMS_OK ? card.state : "?";
}

struct seen {
    int64_t ids[8];
    int n;
};

static int seen_job(void *arg, const struct cms_job *job, const struct cms_card *card)
{
    struct seen *s = arg;
    (void)card;
    if (s->n < 8)
        s->ids[s->n++] = job->id;
    return CMS_OK;
}

static struct seen due(struct cms_db *db, const char *device, const char *now)
{
    struct seen s = { { 0 }, 0 };
    if (cms_jobs_due(db, device, now, seen_job, &s) != CMS_OK)
        s.n = -1;
    return s;
}

static void test_locks(struct cms_db *db, struct cms_ca *ca)
{
    struct cms_card a, b;
    struct cms_job job;
    int64_t ja = 0, jb = 0, j2 = 0, relock = 0, relock2 = 0;
    char utc[32];

    ok(cms_card_get(db, active_card(db, ca, "00aa00aa00aa00aa"), NULL, &a) == CMS_OK, "card A, active");
    ok(cms_card_get(db, active_card(db, ca, "00bb00bb00bb00bb"), NULL, &b) == CMS_OK, "card B, active");
    ok(cms_exec_bind(db, "INSERT INTO devices (name, created) VALUES (?2, 'x')", "devices", 0, "desk.example", NULL) ==
           CMS_OK &&
           cms_exec_bind(db, "UPDATE cards SET device_id = (SELECT id FROM devices WHERE name = ?2) WHERE id = ?1",
                         "cards", b.id, "desk.example", NULL) == CMS_OK,
       "  B on another device");

    cms_local_to_utc(db, "2027-01-04 09:00", "Europe/Berlin", utc);
    ok(cms_lock_request(db, &helpdesk, &a, utc, "2027-01-04 09:00", "Europe/Berlin", "leave", &ja) == CMS_OK && ja,
       "a lock of A for 2027-01-04 09:00 Berlin (%s)", utc);
    ok(cms_lock_request(db, &helpdesk, &a, NULL, NULL, NULL, NULL, &j2) == CMS_STATE && strstr(db->err, "pending"),
       "  a second is refused: %s", db->err);
    ok(cms_exec_bind(db, "INSERT INTO jobs (kind, state, card_id, created, created_by, updated)"
                         " VALUES ('lock', 'pending', ?1, 'x', 'x', 'x')", "jobs", a.id, NULL, NULL) == CMS_ERR,
       "  and the schema refuses one made by hand");
    ok(cms_lock_request(db, &helpdesk, &b, "2026-06-01T00:00:00Z", NULL, NULL, NULL, &jb) == CMS_OK,
       "a lock of B for 2026-06-01");

    struct seen s = due(db, NULL, "2026-01-01T00:00:00Z");
    ok(s.n == 0, "the scan before either is due: none");
    s = due(db, NULL, "2026-06-01T00:00:00Z");
    ok(s.n == 1 && s.ids[0] == jb, "  on B's time: B's (due is inclusive)");
    s = due(db, NULL, "2030-01-01T00:00:00Z");
    ok(s.n == 2 && s.ids[0] == jb && s.ids[1] == ja, "  later: both, the earliest first");
    s = due(db, "laptop.example", "2030-01-01T00:00:00Z");
    ok(s.n == 1 && s.ids[0] == ja, "  on A's device: A's only");
    s = due(db, "nowhere.example", "2030-01-01T00:00:00Z");
    ok(s.n == 0, "  on a device of none: none");

    ok(cms_lock_take(db, "agent:laptop.example", ja, &job, &a) == CMS_STATE && strstr(db->err, "not due"),
       "an agent cannot take a lock before it is due: %s", db->err);
    ok(cms_lock_move(db, &helpdesk, ja, "2020-01-01T00:00:00Z", NULL, NULL) == CMS_OK, "moved to the past");
    ok(cms_lock_take(db, "agent:laptop.example", ja, &job, &a) == CMS_OK && !strcmp(job_state(db, ja), "running"),
       "  taken: running");
    ok(cms_lock_move(db, &helpdesk, ja, NULL, NULL, NULL) == CMS_STATE && cms_lock_cancel(db, &helpdesk, ja, NULL) ==
           CMS_STATE,
       "  no longer moved or cancelled: %s", db->err);
    char other[400];
    cms_owner_of((long)getppid(), other, sizeof(other));   /* alive, and not this process */
    ok(cms_exec_bind(db, "UPDATE jobs SET owner = ?2 WHERE id = ?1", "jobs", ja, other, NULL) == CMS_OK &&
           cms_lock_take(db, "agent:laptop.example", ja, &job, &a) == CMS_STATE && strstr(db->err, "another process"),
       "  nor taken while the process that has it lives: %s", db->err);
    ok(cms_exec_bind(db, "UPDATE jobs SET owner = 'nowhere.example 1 1' WHERE id = ?1", "jobs", ja, NULL, NULL) ==
           CMS_OK,
       "its agent killed");
    s.n = 0;
    ok(cms_locks_interrupted(db, "laptop.example", seen_job, &s) == CMS_OK && s.n == 1 && s.ids[0] == ja,
       "  the next run finds it interrupted");
    ok(cms_lock_take(db, "agent:laptop.example", ja, &job, &a) == CMS_OK, "  and takes it up");
    struct cms_job other_job;
    struct cms_card other_card;
    ok(cms_change_take(db, &admin, 0, ja, &other_job, &other_card) == CMS_STATE && strstr(db->err, "agent"),
       "  job resume leaves it to the agent: %s", db->err);
    ok(cms_card_get(db, a.id, NULL, &a) == CMS_OK && cms_lock_done(db, "agent:laptop.example", &job, &a, true, NULL) ==
           CMS_OK,
       "  done");
    ok(!strcmp(job_state(db, ja), "done") && !strcmp(card_state(db, a.id), "locked"), "A locked, the job done");
    ok(cms_lock_request(db, &helpdesk, &a, NULL, NULL, NULL, NULL, &j2) == CMS_STATE, "a locked card is not locked "
       "again: %s", db->err);

    /* The helpdesk's unlock. */
    ok(cms_card_unlock(db, &helpdesk, &a, -1, "x", &relock) == CMS_INVALID, "an unlock of -1 hours is refused");
    ok(cms_card_unlock(db, &helpdesk, &a, 8, "card at home", &relock) == CMS_OK && relock &&
           !strcmp(card_state(db, a.id), "active") && !strcmp(job_state(db, relock), "pending"),
       "unlocked for 8 hours: active, a relock pending");
    char now[32], soon[32];
    cms_now(now);
    int64_t t;
    cms_time_parse(now, &t);
    cms_time_text(t + 8 * 3600 + 5, soon);
    s = due(db, "laptop.example", now);
    ok(s.n == 0, "  not due now");
    s = due(db, "laptop.example", soon);
    ok(s.n == 1 && s.ids[0] == relock, "  due in 8 hours");
    ok(cms_card_unlock(db, &helpdesk, &a, 24, "longer", &relock2) == CMS_OK && relock2 != relock &&
           !strcmp(job_state(db, relock), "cancelled") && !strcmp(job_state(db, relock2), "pending"),
       "unlocked again for 24 hours: the first relock replaced");
    ok(cms_card_unlock(db, &helpdesk, &a, 0, "for good", &relock) == CMS_OK && relock == 0 &&
           !strcmp(job_state(db, relock2), "cancelled"),
       "unlocked for good: no relock left");

    /* A lock of a card that changed since. */
    ok(cms_lock_request(db, &helpdesk, &a, NULL, NULL, NULL, NULL, &j2) == CMS_OK, "a lock of A at the next run");
    struct cms_change_args args = { NULL, NULL, NULL, 14 };
    bool done = false;
    int rc = cms_change_begin(db, &admin, cms_change_find("suspend"), &a, &args, &job);
    while (rc == CMS_OK && !done)
        rc = cms_change_next_cert(db, ca, &job, &a, &done);
    char code[CMS_CODE_LEN];
    int64_t none;
    ok(rc == CMS_OK && cms_change_finish(db, &job, &a, code, &none) == CMS_OK, "A suspended meanwhile");
    ok(cms_lock_take(db, "agent:laptop.example", j2, &job, &a) == CMS_STATE && strstr(db->err, "suspended") &&
           !strcmp(job_state(db, j2), "cancelled"),
       "  the agent lets the lock go: %s", db->err);
    ok(!strcmp(card_state(db, a.id), "suspended"), "  the card stays suspended");
    ok(cms_lock_request(db, &helpdesk, &a, NULL, NULL, NULL, NULL, &j2) == CMS_STATE, "a suspended card is not locked");
    ok(cms_card_unlock(db, &helpdesk, &a, 0, "x", &relock) == CMS_STATE, "  nor unlocked");

    /* B: cancelled while pending; a job that is not a lock is not moved. */
    ok(cms_lock_cancel(db, &helpdesk, jb, "not needed") == CMS_OK && !strcmp(job_state(db, jb), "cancelled"),
       "B's lock cancelled");
    s = due(db, NULL, "2030-01-01T00:00:00Z");
    ok(s.n == 0, "  nothing due any more");
    ok(cms_lock_cancel(db, &helpdesk, 1, NULL) == CMS_STATE && strstr(db->err, "not a PIN lock"),
       "an issue job is not cancelled as a lock: %s", db->err);
    ok(cms_lock_move(db, &helpdesk, 9999, NULL, NULL, NULL) == CMS_NOTFOUND, "  no job 9999");
}

int main(void)
{
    struct cms_ca *ca = NULL;
    plan_lazy();
    struct cms_db *db = fixture_open("cms-schedule-unit", &ca);
    test_zones(db);
    test_locks(db, ca);
    struct cms_audit_check check = { 0 };
    ok(cms_audit_verify(db, &check) == CMS_OK, "the trail verifies (%lld records)", (long long)check.records);
    cms_ca_close(ca);
    cms_close(db);
    return done_testing();
}
