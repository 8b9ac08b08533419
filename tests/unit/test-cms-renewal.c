/* The renewal scan's database side (renewal.c) and the notifier's checks
 * and failures (notify.c) without a card: each card follows the window of
 * the profile version it was issued to, a dry run keeps nothing, one open
 * renewal per card, notices again every N days (0: once), days left
 * rounded as people count them, renewals of cards out of use cancelled,
 * temporary cards found by their end; mail commands that refuse, are
 * missing or hang, a webhook nobody answers. The real SMTP server and
 * webhook receiver are test-cms-renewal.sh's. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/cms/notify.h"
#include "src/cms/renewal.h"
#include "tests/tap.h"
#include "tests/unit/cms-fixture.h"

static char t0[32];

/* t0 + days (and seconds), stored form. */
static const char *later(double days)
{
    static char out[4][32];
    static int i;
    int64_t t;
    cms_time_parse(t0, &t);
    i = (i + 1) % 4;
    cms_time_text(t + (int64_t)(days * 86400), out[i]);
    return out[i];
}

struct seen {
    int n;
    struct cms_notice last[4];
};

static int see(void *arg, const struct cms_notice *n)
{
    struct seen *s = arg;
    if (s->n < 4)
        s->last[s->n] = *n;
    s->n++;
    return CMS_OK;
}

static struct seen due_at(struct cms_db *db, const char *now)
{
    struct seen s = { 0 };
    if (cms_renewal_notices_due(db, now, see, &s) != CMS_OK)
        s.n = -1;
    return s;
}

static void test_jobs_and_notices(struct cms_db *db, struct cms_ca *ca)
{
    char path[400];
    int made, cancelled, version;
    bool unchanged;

    cms_now(t0);
    int64_t a = active_card(db, ca, "aaaa000000000001");
    ok(a > 0, "card A, issued to profile vsc 1 (30-day certificates, the default 30-day window)");
    write_file("p2.ini",
               "[profile]\nname = vsc\ncard-types = tpm\n[admin-key]\nmaster-file = /nonexistent\n[key auth]\n"
               "type = p256\nusage = sign\ncertificate = client-auth\nsubject = /CN=${name}\nlifetime-days = 30\n"
               "[lifecycle]\nrenewal-window-days = 10\nnotify-every-days = 0\ntemporary-card-days = 3\n",
               path, sizeof(path));
    ok(cms_profile_import(db, &admin, path, &version, &unchanged) == CMS_OK && version == 2,
       "vsc 2: a 10-day window, holders told once");
    int64_t b = active_card(db, ca, "bbbb000000000002");
    ok(b > 0, "card B, issued to vsc 2");

    ok(cms_renewal_jobs(db, &admin, later(0.01), true, &made, &cancelled) == CMS_OK && made == 1,
       "a dry run finds one renewal (A's window is open)");
    ok(sql_count(db, "SELECT count(*) FROM jobs WHERE kind = 'renew'") == 0, "  and keeps nothing");
    ok(cms_renewal_jobs(db, &admin, later(0.01), false, &made, &cancelled) == CMS_OK && made == 1 && cancelled == 0,
       "the scan makes A's renewal");
    ok(sql_count(db, "SELECT count(*) FROM jobs WHERE kind = 'renew' AND state = 'pending' AND card_id = 1") == 1,
       "  a pending job of card A");
    ok(cms_renewal_jobs(db, &admin, later(0.02), false, &made, &cancelled) == CMS_OK && made == 0,
       "  made once: the next scan makes none");
    ok(cms_renewal_jobs(db, &admin, later(19.9), false, &made, &cancelled) == CMS_OK && made == 0,
       "B's 10-day window is not open 19.9 days on");
    ok(cms_renewal_jobs(db, &admin, later(20.01), false, &made, &cancelled) == CMS_OK && made == 1,
       "  it is 20 days on");
    ok(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'card.renewal' AND result = 'requested'") == 2,
       "  each renewal in the trail");

    struct seen s = due_at(db, later(20.01));
    ok(s.n == 2 && s.last[0].card_id == a && s.last[1].card_id == b, "both holders are due a notice, soonest first");
    ok(!strcmp(s.last[0].email, "jane@example.org") && !strcmp(s.last[0].holder, "jdoe") &&
           !strcmp(s.last[0].serial, "aaaa000000000001") && !strcmp(s.last[0].profile, "vsc"),
       "  with the holder's address and the card");
    ok(s.last[0].days_left == 9, "  9 whole days left (%d)", s.last[0].days_left);
    ok(!s.last[0].previous[0] && strstr(s.last[0].id, "-first"), "  a first notice: %s", s.last[0].id);
    ok(cms_renewal_notified(db, &admin, &s.last[0], later(20.01), "mail to jane@example.org", true) == CMS_OK &&
           cms_renewal_notified(db, &admin, &s.last[1], later(20.01), "webhook", true) == CMS_OK,
       "both recorded as told");
    ok(sql_count(db, "SELECT count(*) FROM certificates WHERE notified IS NOT NULL") == 2, "  on their certificates");
    ok(due_at(db, later(26)).n == 0, "no one is due again 6 days on");
    s = due_at(db, later(27.02));
    ok(s.n == 1 && s.last[0].card_id == a, "A's holder is again 7 days on; B's (told once) is not");
    ok(!strcmp(s.last[0].previous, later(20.01)) && strstr(s.last[0].id, later(20.01)),
       "  the notice names the one before: %s", s.last[0].id);
    struct seen again = due_at(db, later(27.02));
    ok(again.n == 1 && !strcmp(again.last[0].id, s.last[0].id), "  unrecorded, the same notice has the same id");
    s = due_at(db, later(31));
    ok(s.n == 1 && s.last[0].days_left == -1, "a day after expiry: -1 days left (%d)", s.n ? s.last[0].days_left : 0);
    ok(cms_renewal_notified(db, &admin, &s.last[0], later(31), "no way to reach them: no address", false) == CMS_OK,
       "a notice that reached no one");
    ok(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'card.renewal' AND result = 'unreachable'") == 1,
       "  is in the trail as unreachable");

    ok(cms_exec_bind(db, "UPDATE cards SET state = 'suspended' WHERE id = ?1", "cards", a, NULL, NULL) == CMS_OK,
       "card A suspended (by hand here)");
    ok(cms_renewal_jobs(db, &admin, later(31), false, &made, &cancelled) == CMS_OK && cancelled == 1 && made == 0,
       "the scan cancels its renewal");
    ok(sql_count(db, "SELECT count(*) FROM jobs WHERE kind = 'renew' AND state = 'cancelled'"
                 " AND error = 'the card is suspended'") == 1,
       "  saying why");
    ok(cms_exec_bind(db, "UPDATE certificates SET state = 'revoked' WHERE card_id = ?1", "certificates", b, NULL,
                     NULL) == CMS_OK &&
           cms_renewal_jobs(db, &admin, later(31), false, &made, &cancelled) == CMS_OK && cancelled == 1,
       "a renewal of a card with no active certificate left is cancelled");
    ok(cms_exec_bind(db, "UPDATE certificates SET state = 'suspended' WHERE card_id = ?1", "certificates", a, NULL,
                     NULL) == CMS_OK &&
           cms_exec_bind(db, "UPDATE cards SET state = 'active' WHERE id = ?1", "cards", a, NULL, NULL) == CMS_OK &&
           cms_renewal_jobs(db, &admin, later(31), false, &made, &cancelled) == CMS_OK && made == 0,
       "a card whose certificates are held is not renewed");
    ok(cms_exec_bind(db, "UPDATE certificates SET state = 'active' WHERE card_id = ?1", "certificates", a, NULL,
                     NULL) == CMS_OK &&
           cms_exec_bind(db, "UPDATE cards SET state = 'locked' WHERE id = ?1", "cards", a, NULL, NULL) == CMS_OK &&
           cms_renewal_jobs(db, &admin, later(31), false, &made, &cancelled) == CMS_OK && made == 1,
       "a locked card's active certificates are");
    ok(cms_renewal_jobs(db, &admin, "yesterday", false, &made, &cancelled) == CMS_INVALID,
       "a time that is not one is refused");
}

static void test_temporaries(struct cms_db *db)
{
    struct cms_request r = { "jdoe", "vsc", "tpm", NULL, 14, 1, 3 };
    char code[CMS_CODE_LEN];
    int64_t card_id, job_id, *ids = NULL;
    size_t n = 9;

    ok(cms_card_request(db, &admin, &r, code, &card_id, &job_id) == CMS_OK, "a temporary card for 3 days");
    ok(cms_temporaries_expired(db, later(2.9), &ids, &n) == CMS_OK && n == 0, "  not ended 2.9 days on");
    free(ids);
    ok(cms_temporaries_expired(db, later(3.1), &ids, &n) == CMS_OK && n == 1 && ids[0] == card_id,
       "  found 3.1 days on");
    free(ids);
    ok(sql_count(db, "SELECT count(*) FROM jobs WHERE kind = 'renew' AND card_id = 3") == 0, "  and never renewed");
}

static void test_notifier(struct cms_db *db)
{
    char path[400];
    struct cms_notifier nf;
    struct cms_notice n = { .job_id = 1, .card_id = 1, .serial = "aaaa", .holder = "jdoe", .name = "Jane Doe",
                            .email = "jane@example.org", .profile = "vsc", .expires = "2027-01-05T06:22:13Z",
                            .days_left = 9, .id = "renewal-1-first" };
    char channels[300];

    ok(cms_mail_address_ok("jane@example.org") && cms_mail_address_ok("a.b+c@x.y"), "mail addresses");
    ok(!cms_mail_address_ok("") && !cms_mail_address_ok("jane") && !cms_mail_address_ok("-oQ@x.y") &&
           !cms_mail_address_ok("a@b@c") && !cms_mail_address_ok("a b@c") && !cms_mail_address_ok("a@c\r\nBcc: x") &&
           !cms_mail_address_ok("<a@c>"),
       "  and what is not one (an option, a header, two @)");
    ok(cms_notifier_set(db, &admin, "notify.webhook", "file:///etc/passwd") == CMS_INVALID,
       "a webhook that is not http(s) is refused");
    ok(cms_notifier_set(db, &admin, "notify.sendmail", "sendmail -t") == CMS_INVALID,
       "a command not named by its path");
    ok(cms_notifier_set(db, &admin, "notify.sendmail", "/bin/x\n-t") == CMS_INVALID, "  or of two lines");
    ok(cms_notifier_set(db, &admin, "notify.colour", "red") == CMS_INVALID, "an unknown setting");
    cms_notifier_load(db, &nf);
    ok(!cms_notifier_any(&nf), "nothing set yet");
    ok(cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_INVALID, "  so nothing is sent");

    ok(cms_notifier_set(db, &admin, "notify.sendmail", "/bin/false") == CMS_OK, "a command that refuses");
    cms_notifier_load(db, &nf);
    ok(cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_ERR && strstr(nf.err, "refused the message (exit 1)"),
       "  fails: %s", nf.err);
    ok(cms_notifier_set(db, &admin, "notify.sendmail", "/nonexistent/sendmail -i") == CMS_OK,
       "a command that is not there");
    cms_notifier_load(db, &nf);
    ok(cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_ERR && strstr(nf.err, "could not be run"),
       "  fails: %s", nf.err);
    ok(cms_notifier_set(db, &admin, "notify.sendmail", "/usr/bin/tail -q -f /dev/null") == CMS_OK,
       "a command that hangs");
    cms_notifier_load(db, &nf);
    nf.timeout_seconds = 1;
    ok(cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_ERR && strstr(nf.err, "killed"),
       "  is killed after the timeout: %s", nf.err);
    struct cms_notice none = n;
    none.email[0] = '\0';
    ok(cms_notify_send(&nf, &none, channels, sizeof(channels)) == CMS_INVALID && strstr(nf.err, "no mail address"),
       "a holder without an address is not mailed: %s", nf.err);
    ok(cms_notifier_set(db, &admin, "notify.sendmail", "") == CMS_OK &&
           cms_notifier_set(db, &admin, "notify.webhook", "http://127.0.0.1:9/") == CMS_OK,
       "mail cleared, a webhook on a port nobody answers");
    cms_notifier_load(db, &nf);
    ok(!nf.sendmail[0] && cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_ERR &&
           strstr(nf.err, "webhook"),
       "  fails: %s", nf.err);
    ok(cms_notifier_set(db, &admin, "notify.webhook-secret-file", "hook.secret") == CMS_INVALID,
       "a webhook secret file not named by its path is refused");
    write_file("short.secret", "too short\n", path, sizeof(path));
    chmod(path, 0600);
    ok(cms_notifier_set(db, &admin, "notify.webhook-secret-file", path) == CMS_OK, "a secret file");
    cms_notifier_load(db, &nf);
    ok(cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_ERR && strstr(nf.err, "shorter than 16"),
       "  a short secret is refused before anything is posted: %s", nf.err);
    snprintf(path, sizeof(path), "%s/none.secret", dir);
    ok(cms_notifier_set(db, &admin, "notify.webhook-secret-file", path) == CMS_OK, "a secret file that is not there");
    cms_notifier_load(db, &nf);
    ok(cms_notify_send(&nf, &n, channels, sizeof(channels)) == CMS_ERR && strstr(nf.err, "No such file"),
       "  fails: %s", nf.err);
    ok(sql_count(db, "SELECT count(*) FROM audit WHERE action = 'notify.set'") == 7, "every setting is in the trail");
}

/* The statements the scan runs, caught as SQLite runs them (the library's
 * own SQL), and their query plans. */
struct caught {
    char sql[8][2048];
    int n;
};

static int catch_sql(unsigned type, void *arg, void *stmt, void *text)
{
    struct caught *c = arg;
    (void)type;
    (void)stmt;
    if (c->n < 8)
        snprintf(c->sql[c->n++], sizeof(c->sql[0]), "%s", (const char *)text);
    return 0;
}

static void plan_of(struct cms_db *db, const struct caught *c, const char *marker, char *plan, size_t len)
{
    char sql[2100];
    plan[0] = '\0';
    for (int i = 0; i < c->n; i++) {
        sqlite3_stmt *st;
        if (!strstr(c->sql[i], marker))
            continue;
        snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", c->sql[i]);
        if (sqlite3_prepare_v2(db->db, sql, -1, &st, NULL) != SQLITE_OK)
            return;
        for (int k = 1; k <= 3; k++)
            sqlite3_bind_text(st, k, "2030-01-01T00:00:00Z", -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW)
            snprintf(plan + strlen(plan), len - strlen(plan), "%s; ", (const char *)sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
        return;
    }
}

static void test_plans(struct cms_db *db)
{
    struct caught c = { .n = 0 };
    char plan[1024];
    int made, cancelled;
    int64_t *ids = NULL;
    size_t n;

    sqlite3_trace_v2(db->db, SQLITE_TRACE_STMT, catch_sql, &c);
    due_at(db, later(1));
    cms_renewal_jobs(db, &admin, later(1), true, &made, &cancelled);
    cms_temporaries_expired(db, later(1), &ids, &n);
    free(ids);
    sqlite3_trace_v2(db->db, 0, NULL, NULL);
    plan_of(db, &c, "max(c.notified)", plan, sizeof(plan));
    ok(strstr(plan, "jobs_one_renewal") && strstr(plan, "certificates_card") && !strstr(plan, "SCAN c "),
       "notices start from the open renewals, not every active certificate: %s", plan);
    plan_of(db, &c, "GROUP BY k.id", plan, sizeof(plan));
    ok(strstr(plan, "certificates_expiry") != NULL, "renewal candidates by expiry: %s", plan);
    plan_of(db, &c, "temporary = 1", plan, sizeof(plan));
    ok(strstr(plan, "cards_temporary") != NULL, "temporary cards by their end: %s", plan);
}

int main(void)
{
    struct cms_ca *ca = NULL;
    struct cms_db *db = fixture_open("cms-renewal", &ca);
    test_jobs_and_notices(db, ca);
    test_temporaries(db);
    test_plans(db);
    test_notifier(db);
    cms_ca_close(ca);
    cms_close(db);
    return done_testing();
}
