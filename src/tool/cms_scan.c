/* tessera scan: the renewal scan (src/cms/renewal.h), run from cron where
 * the database is: renewal jobs for certificates whose window opened,
 * temporary cards past their end ended, holders told (again every N days)
 * through the channels `tessera notify set` chose. --dry-run says what it
 * would do and changes nothing; --at scans as at another time (UTC).
 * TESSERA_TEST_KILL_AT=scan:sent kills the process after a notice went
 * out and before it is recorded, for the tests. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cms/audit.h"
#include "../cms/ca.h"
#include "../cms/notify.h"
#include "../cms/renewal.h"
#include "../cms/schedule.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

/* A channel that failed this many times in a row is taken as down: the
 * remaining notices wait for the next scan instead of each timing out. */
#define NOTIFY_GIVE_UP 3
/* A PIN lock this long past its time is reported at each scan: its
 * device's agent has not run, or (a PIV card) no agent has found the card
 * in a reader since. */
#define LOCK_OVERDUE_HOURS 24

struct scan {
    struct cms_ctx c;
    char now[32];
    bool dry;
    struct cms_notice *notices;
    size_t nnotices;
    int made, cancelled, ended, end_failed, sent, unreachable, failed, waiting, locks_overdue;
};

static int gather_notice(void *arg, const struct cms_notice *n)
{
    struct scan *s = arg;
    struct cms_notice *grown = realloc(s->notices, (s->nnotices + 1) * sizeof(*grown));
    if (!grown)
        return cms_fail(s->c.db, CMS_ERR, "out of memory");
    s->notices = grown;
    grown[s->nnotices++] = *n;
    return CMS_OK;
}

static int overdue_lock(void *arg, const struct cms_job *job, const struct cms_card *card)
{
    struct scan *s = arg;
    s->locks_overdue++;
    fprintf(stderr, "tessera: scan: card %" PRId64 " (%s, %s card, %s): its PIN lock, job %" PRId64 ", was due %s and "
            "is still waiting for %s\n", card->id, card->holder, card->type,
            card->device[0] ? card->device : "no device", job->id, job->due,
            !strcmp(card->type, "piv") ? "an agent to find the card in a reader" : "its device's agent to run");
    return CMS_OK;
}

/* Pending, or running with an agent that died on it (a PIV card pulled
 * out): read only, reported each scan until an agent locks or an operator
 * cancels. */
static int overdue_locks(struct scan *s)
{
    char before[32];
    int64_t now;
    if (cms_time_parse(s->now, &now))
        return cms_report(&s->c, cms_fail(s->c.db, CMS_ERR, "bad time %s", s->now));
    cms_time_text(now - LOCK_OVERDUE_HOURS * 3600, before);
    return cms_report(&s->c, cms_job_select(s->c.db, "WHERE j.kind = 'lock' AND j.state IN ('pending', 'running')"
                                                     " AND j.due <= ?1 ORDER BY j.due, j.id",
                                            before, NULL, overdue_lock, s));
}

static void say(const struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct scan *s, const char *fmt, ...)
{
    va_list ap;
    (void)s;
    if (tool_json)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* Temporary cards whose end has come: the "expire" change of each. */
static int end_temporaries(struct scan *s)
{
    struct cms_ca *ca = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    int rc = cms_report(&s->c, cms_temporaries_expired(s->c.db, s->now, &ids, &n));

    if (rc != EX_OK || n == 0)
        goto out;
    if (s->dry) {
        for (size_t i = 0; i < n; i++)
            say(s, "temporary card %" PRId64 ": its end has come, would be ended\n", ids[i]);
        s->ended = (int)n;
        goto out;
    }
    int carc = cms_ca_open(s->c.db, &ca);
    if (carc != CMS_OK && carc != CMS_NOTFOUND) {
        rc = cms_report(&s->c, carc);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char state[16];
        if (cms_change_card(&s->c, ca, ids[i], "expire", "its end has come (renewal scan)", state) == EX_OK) {
            say(s, "temporary card %" PRId64 ": ended, now %s\n", ids[i], state);
            s->ended++;
        } else {
            s->end_failed++;
        }
    }
out:
    cms_ca_close(ca);
    free(ids);
    return rc;
}

/* Each notice due: sent, then recorded. */
static int send_notices(struct scan *s)
{
    struct cms_notifier nf;
    int rc = cms_report(&s->c, cms_renewal_notices_due(s->c.db, s->now, gather_notice, s)), in_a_row = 0;

    if (rc != EX_OK || s->nnotices == 0)
        return rc;
    if (s->dry) {
        for (size_t i = 0; i < s->nnotices; i++)
            say(s, "card %" PRId64 " (%s): holder %s would be told (expires %s)\n", s->notices[i].card_id,
                s->notices[i].serial, s->notices[i].holder, s->notices[i].expires);
        s->waiting = (int)s->nnotices;
        return EX_OK;
    }
    cms_notifier_load(s->c.db, &nf);
    if (!cms_notifier_any(&nf)) {
        fprintf(stderr, "tessera: scan: %zu holder(s) to tell, and no way to tell them is set up: `tessera notify "
                "set --sendmail CMD` or `--webhook URL`\n", s->nnotices);
        s->waiting = (int)s->nnotices;
        return EX_OK;
    }
    for (size_t i = 0; i < s->nnotices; i++) {
        const struct cms_notice *n = &s->notices[i];
        char channels[600];
        if (in_a_row >= NOTIFY_GIVE_UP) {
            s->waiting++;
            continue;
        }
        int sent = cms_notify_send(&nf, n, channels, sizeof(channels));
        if (sent == CMS_ERR) {
            fprintf(stderr, "tessera: scan: card %" PRId64 ": holder %s not told: %s\n", n->card_id, n->holder,
                    nf.err);
            s->failed++;
            if (++in_a_row == NOTIFY_GIVE_UP)
                fprintf(stderr, "tessera: scan: %d notices failed in a row: the rest wait for the next scan\n",
                        NOTIFY_GIVE_UP);
            continue;
        }
        in_a_row = 0;
        cms_kill_point("scan:sent");
        if (sent == CMS_INVALID)
            snprintf(channels, sizeof(channels), "no way to reach them: %.500s", nf.err);
        if ((rc = cms_report(&s->c, cms_renewal_notified(s->c.db, &s->c.actor, n, s->now, channels,
                                                         sent == CMS_OK))) != EX_OK)
            return rc;
        if (sent == CMS_OK) {
            say(s, "card %" PRId64 " (%s): holder %s told (%s)\n", n->card_id, n->serial, n->holder, channels);
            s->sent++;
        } else {
            fprintf(stderr, "tessera: scan: card %" PRId64 ": %s\n", n->card_id, channels);
            s->unreachable++;
        }
    }
    return EX_OK;
}

static int opt_scan(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct scan *s = arg;
    if (ch == 'n') {
        s->dry = true;
        return 0;
    }
    (void)c;
    if (ch != 'a' || strlen(v) >= sizeof(s->now))
        return -1;
    snprintf(s->now, sizeof(s->now), "%s", v);
    return 0;
}

static int cmd_scan(int argc, char **argv)
{
    static const char usage[] = "usage: tessera scan [--dry-run] [--at 'YYYY-MM-DD HH:MM' (UTC)]";
    static const struct option extra[] = {
        { "dry-run", no_argument, 0, 'n' },
        { "at", required_argument, 0, 'a' },
    };
    struct scan s;
    char detail[400];
    int rc;

    memset(&s, 0, sizeof(s));
    rc = cms_parse_opts(&s.c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_scan, &s, usage);
    if (rc == EX_OK && optind != argc)
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&s.c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&s.c, cms_authorize(s.c.db, &s.c.actor, "renewal.scan", NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (s.now[0]) {
        char at[32];
        snprintf(at, sizeof(at), "%s", s.now);
        if ((rc = cms_report(&s.c, cms_local_to_utc(s.c.db, at, "UTC", s.now))) != EX_OK)
            goto out;
    } else {
        cms_now(s.now);
    }
    if ((rc = cms_report(&s.c, cms_renewal_jobs(s.c.db, &s.c.actor, s.now, s.dry, &s.made, &s.cancelled))) != EX_OK ||
        (rc = end_temporaries(&s)) != EX_OK || (rc = send_notices(&s)) != EX_OK || (rc = overdue_locks(&s)) != EX_OK)
        goto out;
    if (!s.dry) {
        struct cms_audit_rec rec = { .operator = s.c.actor.name, .action = "renewal.scan",
                                     .result = s.failed || s.end_failed ? "partly failed" : "ok", .detail = detail };
        snprintf(detail, sizeof(detail), "at %s: %d renewal(s) made, %d cancelled; %d temporary card(s) ended, %d "
                 "failed; %d holder(s) told, %d unreachable, %d failed, %d waiting; %d PIN lock(s) overdue", s.now,
                 s.made, s.cancelled, s.ended, s.end_failed, s.sent, s.unreachable, s.failed, s.waiting,
                 s.locks_overdue);
        if ((rc = cms_report(&s.c, cms_audit_record(s.c.db, &rec))) != EX_OK)
            goto out;
    }
    if (tool_json)
        printf("{\"at\":\"%s\",\"dry_run\":%s,\"renewals\":{\"made\":%d,\"cancelled\":%d},\"temporaries\":{\"ended\":%d,"
               "\"failed\":%d},\"notices\":{\"sent\":%d,\"unreachable\":%d,\"failed\":%d,\"waiting\":%d},"
               "\"locks\":{\"overdue\":%d}}\n", s.now, s.dry ? "true" : "false", s.made, s.cancelled, s.ended,
               s.end_failed, s.sent, s.unreachable, s.failed, s.waiting, s.locks_overdue);
    else
        printf("scan at %s%s: %d renewal(s) made, %d cancelled; %d temporary card(s) ended, %d failed; %d holder(s) "
               "told, %d unreachable, %d failed, %d waiting; %d PIN lock(s) overdue\n", s.now,
               s.dry ? " (dry run: nothing changed)" : "", s.made, s.cancelled, s.ended, s.end_failed, s.sent,
               s.unreachable, s.failed, s.waiting, s.locks_overdue);
    rc = s.failed || s.end_failed ? EX_FAIL : EX_OK;
out:
    free(s.notices);
    cms_ctx_close(&s.c);
    return rc;
}

static int opt_notify(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    const char **vals = arg;
    (void)c;
    if (ch < 's' || ch > 'v')
        return -1;
    vals[ch - 's'] = v;
    return 0;
}

static int cmd_notify(const char *verb, int argc, char **argv)
{
    static const char usage[] = "usage: tessera notify set [--sendmail 'CMD ARGS'] [--from ADDR] [--webhook URL]\n"
                                "                          [--webhook-secret-file FILE]   ('' clears one)\n"
                                "       tessera notify show";
    static const struct option extra[] = {
        { "sendmail", required_argument, 0, 's' },
        { "from", required_argument, 0, 't' },
        { "webhook", required_argument, 0, 'u' },
        { "webhook-secret-file", required_argument, 0, 'v' },
    };
    static const char *const keys[] = { "notify.sendmail", "notify.from", "notify.webhook",
                                         "notify.webhook-secret-file" };
    const char *vals[4] = { NULL, NULL, NULL, NULL };
    bool set = !strcmp(verb, "set");
    struct cms_ctx c;
    struct cms_notifier nf;
    int rc;

    memset(&c, 0, sizeof(c));
    if (!set && strcmp(verb, "show"))
        return tool_usage_error(usage);
    rc = cms_parse_opts(&c, argc, argv, set ? extra : NULL, set ? TESS_ARRAY_SIZE(extra) : 0, opt_notify, vals,
                        usage);
    if (rc == EX_OK && (optind != argc || (set && !vals[0] && !vals[1] && !vals[2] && !vals[3])))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, set ? "notify.set" : "notify.show", NULL, NULL, NULL))) !=
        EX_OK)
        goto out;
    for (size_t i = 0; set && i < TESS_ARRAY_SIZE(keys); i++)
        if (vals[i] && (rc = cms_report(&c, cms_notifier_set(c.db, &c.actor, keys[i], vals[i]))) != EX_OK)
            goto out;
    cms_notifier_load(c.db, &nf);
    if (tool_json) {
        printf("{\"sendmail\":");
        tool_json_str(nf.sendmail);
        printf(",\"from\":");
        tool_json_str(nf.from);
        printf(",\"webhook\":");
        tool_json_str(nf.webhook);
        printf(",\"webhook_secret_file\":");
        tool_json_str(nf.webhook_secret_file);
        printf("}\n");
    } else {
        printf("sendmail: %s\nfrom:     %s\nwebhook:  %s\nsigned:   %s\n", nf.sendmail[0] ? nf.sendmail : "(none)",
               nf.from[0] ? nf.from : "(none)", nf.webhook[0] ? nf.webhook : "(none)",
               nf.webhook_secret_file[0] ? nf.webhook_secret_file : "(no: no secret file)");
    }
out:
    cms_ctx_close(&c);
    return rc;
}

int cmd_cms_scan(const char *noun, int argc, char **argv)
{
    if (!strcmp(noun, "scan"))
        return cmd_scan(argc, argv);
    if (!strcmp(noun, "notify"))
        return cmd_notify(argc > 1 ? argv[1] : "", argc - 1, argv + 1);
    return -1;
}
