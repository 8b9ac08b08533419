/* tessera card lock|unlock, job move|cancel, and tessera agent: PIN locks
 * asked for a date and time in a named timezone (src/cms/schedule.c) and
 * done by the agent on the card's device at its first run after that time;
 * the helpdesk's unlock, for good or for some hours (then locked again).
 * TESSERA_TEST_KILL_AT=agent:locked kills the agent after it locked a card
 * and before it recorded that, for the tests. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cms/profile.h"
#include "../cms/schedule.h"
#include "../code.h"
#include "../kdf.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

/* ---- when: --at and --tz ---- */

struct lock_opts {
    const char *at, *tz, *note, *challenge;
    int hours;
    char due[32];            /* --at in UTC; "" for the agent's next run */
};

static int opt_lock(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct lock_opts *o = arg;
    char *end;
    (void)c;
    switch (ch) {
    case 'a': o->at = v; return 0;
    case 'z': o->tz = v; return 0;
    case 'n': o->note = v; return 0;
    case 'c': o->challenge = v; return 0;
    case 'h':
        o->hours = (int)strtol(v, &end, 10);
        return *end || o->hours < 1;
    default: return -1;
    }
}

/* --at in --tz as UTC, once the database is open (it words the errors). */
static int due_of(struct cms_ctx *c, struct lock_opts *o)
{
    if (!o->at && !o->tz)
        return EX_OK;
    if (!o->at || !o->tz) {
        fprintf(stderr, "tessera: --at and --tz go together: the time, and the zone it is in (Europe/Berlin, "
                        "America/New_York, UTC ...)\n");
        return EX_USAGE;
    }
    return cms_report(c, cms_local_to_utc(c->db, o->at, o->tz, o->due));
}

static int job_arg(const char *text, int64_t *id)
{
    char *end;
    long long v = strtoll(text, &end, 10);
    *id = v;
    return *end || v <= 0;
}

/* ---- tessera card lock ---- */

static int cmd_card_lock(int argc, char **argv)
{
    static const char usage[] = "usage: tessera card lock ID|SERIAL [--at 'YYYY-MM-DD HH:MM' --tz ZONE] [--note TEXT]";
    static const struct option extra[] = {
        { "at", required_argument, 0, 'a' }, { "tz", required_argument, 0, 'z' }, { "note", required_argument, 0, 'n' },
    };
    struct lock_opts o = { 0 };
    struct cms_ctx c = { 0 };
    struct cms_card card;
    int64_t job = 0;
    int rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_lock, &o, usage);

    if (rc == EX_OK && optind != argc - 1)
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK || (rc = cms_card_arg(&c, argv[optind], &card)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "card.lock", card.holder,
                                           card.serial[0] ? card.serial : NULL,
                                           card.device[0] ? card.device : NULL))) != EX_OK ||
        (rc = due_of(&c, &o)) != EX_OK)
        goto out;
    rc = cms_report(&c, cms_lock_request(c.db, &c.actor, &card, o.due[0] ? o.due : NULL, o.at, o.tz, o.note, &job));
    if (rc != EX_OK)
        goto out;
    if (tool_json) {
        printf("{\"card\":%" PRId64 ",\"job\":%" PRId64 ",\"due\":", card.id, job);
        tool_json_str(o.due);
        printf("}\n");
    } else if (o.due[0]) {
        printf("card %" PRId64 ": PIN lock job %" PRId64 ", due %s (%s %s); the agent on %s locks it at its first run "
               "after that\n", card.id, job, o.due, o.at, o.tz, card.device);
    } else {
        printf("card %" PRId64 ": PIN lock job %" PRId64 "; the agent on %s locks it at its next run\n", card.id, job,
               card.device);
    }
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- tessera job move|cancel ---- */

static int cmd_job_lock(const char *verb, int argc, char **argv)
{
    static const char usage[] = "usage: tessera job move ID --at 'YYYY-MM-DD HH:MM' --tz ZONE\n"
                                "       tessera job cancel ID [--note TEXT]";
    static const struct option extra[] = {
        { "at", required_argument, 0, 'a' }, { "tz", required_argument, 0, 'z' }, { "note", required_argument, 0, 'n' },
    };
    bool move = !strcmp(verb, "move");
    struct lock_opts o = { 0 };
    struct cms_ctx c = { 0 };
    int64_t id = 0;
    int rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_lock, &o, usage);

    if (rc == EX_OK && (optind != argc - 1 || job_arg(argv[optind], &id) || (move && (!o.at || o.note)) ||
                        (!move && (o.at || o.tz))))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "card.lock", NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (move && (rc = due_of(&c, &o)) != EX_OK)
        goto out;
    rc = cms_report(&c, move ? cms_lock_move(c.db, &c.actor, id, o.due, o.at, o.tz)
                             : cms_lock_cancel(c.db, &c.actor, id, o.note));
    if (rc != EX_OK)
        goto out;
    if (tool_json)
        printf("{\"job\":%" PRId64 ",\"state\":\"%s\",\"due\":\"%s\"}\n", id, move ? "pending" : "cancelled", o.due);
    else if (move)
        printf("job %" PRId64 ": PIN lock now due %s (%s %s)\n", id, o.due, o.at, o.tz);
    else
        printf("job %" PRId64 ": PIN lock cancelled\n", id);
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- tessera card unlock ---- */

/* The response to the card's challenge, by its diversified admin key, as
 * the code the helpdesk reads out. */
static int unlock_response(struct cms_ctx *c, const struct cms_card *card, const char *challenge,
                           char code[TESS_CODE_MAX])
{
    struct cms_profile prof;
    struct tool_key_source ks;
    uint8_t key[32], chal[16], resp[16];
    size_t klen = sizeof(key), blk;
    int rc = cms_report(c, cms_profile_get(c->db, card->profile, card->profile_version, &prof));

    if (rc == EX_OK)
        rc = cms_key_source(&prof, &ks);
    if (rc != EX_OK)
        return rc;
    blk = tess_admin_block_len(ks.alg);
    rc = tool_read_code(challenge, "challenge", chal, blk);
    if (rc == EX_OK)
        rc = tool_key_source_key(&ks, card->serial, key, &klen);
    if (rc == EX_OK && tess_admin_response(ks.alg, key, klen, chal, blk, resp) != CKR_OK)
        rc = EX_FAIL;
    if (rc == EX_OK)
        tess_code_format(resp, blk, code, TESS_CODE_MAX);
    tess_wipe(key, sizeof(key));
    tess_wipe(resp, sizeof(resp));
    return rc;
}

static int cmd_card_unlock(int argc, char **argv)
{
    static const char usage[] = "usage: tessera card unlock ID|SERIAL --challenge CODE --note REASON [--hours N]";
    static const struct option extra[] = {
        { "challenge", required_argument, 0, 'c' }, { "hours", required_argument, 0, 'h' },
        { "note", required_argument, 0, 'n' },
    };
    struct lock_opts o = { 0 };
    struct cms_ctx c = { 0 };
    struct cms_card card;
    char code[TESS_CODE_MAX] = "";
    int64_t relock = 0;
    int rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_lock, &o, usage);

    if (rc == EX_OK && (optind != argc - 1 || !o.challenge || !o.note || !o.note[0]))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK || (rc = cms_card_arg(&c, argv[optind], &card)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "card.unlock", card.holder,
                                           card.serial[0] ? card.serial : NULL,
                                           card.device[0] ? card.device : NULL))) != EX_OK)
        goto out;
    if (!card.serial[0]) {
        fprintf(stderr, "tessera: card %" PRId64 " is not collected: an unlock is for a collected card\n", card.id);
        rc = EX_STATE;
        goto out;
    }
    /* The response first, recorded second: a challenge that does not read
     * records nothing; an unlock the database refuses shows no response. */
    if ((rc = unlock_response(&c, &card, o.challenge, code)) != EX_OK ||
        (rc = cms_report(&c, cms_card_unlock(c.db, &c.actor, &card, o.hours, o.note, &relock))) != EX_OK)
        goto out;
    if (tool_json) {
        printf("{\"card\":%" PRId64 ",\"response\":\"%s\",\"hours\":%d,\"relock_job\":%" PRId64 "}\n", card.id, code,
               o.hours, relock);
    } else {
        printf("response:     %s\n", code);
        if (relock)
            printf("card %" PRId64 " unlocked for %d hours: PIN lock job %" PRId64 " locks it again then\n", card.id,
                   o.hours, relock);
        else
            printf("card %" PRId64 " unlocked for good\n", card.id);
        fprintf(stderr, "Read the response to the holder, who types it with `tessera unblock complete` and sets a "
                        "new PIN.\n");
    }
out:
    tess_wipe(code, sizeof(code));
    cms_ctx_close(&c);
    return rc;
}

/* ---- tessera agent ---- */

struct agent {
    struct cms_ctx c;
    struct tool_p11 p;
    char device[256], who[300];
    int64_t *ids;
    size_t n, cap;
    int locked, skipped, failed, shown;
};

static int collect_id(void *arg, const struct cms_job *job, const struct cms_card *card)
{
    struct agent *a = arg;
    (void)card;
    for (size_t i = 0; i < a->n; i++)
        if (a->ids[i] == job->id)
            return CMS_OK;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        int64_t *ids = realloc(a->ids, cap * sizeof(*ids));
        if (!ids)
            return cms_fail(a->c.db, CMS_ERR, "out of memory");
        a->ids = ids;
        a->cap = cap;
    }
    a->ids[a->n++] = job->id;
    return CMS_OK;
}

/* One lock job: taken, the card's PIN locked here, recorded. A card the
 * TPM or the module could not reach leaves the job running for the next
 * run; a card that is not here fails it. */
static void agent_lock(struct agent *a, int64_t id)
{
    struct cms_job job;
    struct cms_card card;
    struct cms_profile prof;
    struct tool_key_source ks;
    bool done = false;
    int rc = cms_lock_take(a->c.db, a->who, id, &job, &card);

    if (rc != CMS_OK) {
        fprintf(stderr, "tessera: agent: %s\n", a->c.db->err);
        if (rc != CMS_STATE)
            a->failed++;
        else
            a->skipped++;
        return;
    }
    rc = cms_report(&a->c, cms_profile_get(a->c.db, card.profile, card.profile_version, &prof));
    if (rc == EX_OK)
        rc = cms_key_source(&prof, &ks);
    if (rc == EX_OK && !a->p.initialized)
        rc = tool_p11_open(&a->p);
    if (rc == EX_OK)
        rc = cms_card_admin(&a->p, &ks, card.serial, CMS_ADMIN_LOCK, NULL, &done);
    if (rc != EX_OK) {
        fprintf(stderr, "tessera: agent: job %" PRId64 " stays to be done at the next run\n", job.id);
        a->failed++;
        return;
    }
    /* A PIV card out of its reader comes back: the lock waits for it. */
    if (!done && !strcmp(card.type, "piv")) {
        fprintf(stderr, "tessera: agent: PIV card %s is not in a reader: job %" PRId64 " stays to be done at the next "
                        "run\n", card.serial, job.id);
        a->failed++;
        return;
    }
    if (done)
        cms_kill_point("agent:locked");
    rc = cms_lock_done(a->c.db, a->who, &job, &card, done, done ? NULL : "the card is not in this machine");
    if (rc != CMS_OK) {
        fprintf(stderr, "tessera: agent: %s\n", a->c.db->err);
        a->failed++;
        return;
    }
    if (done)
        a->locked++;
    else
        a->failed++;
    if (tool_json)
        printf("%s{\"job\":%" PRId64 ",\"card\":%" PRId64 ",\"serial\":\"%s\",\"locked\":%s}",
               a->shown++ ? "," : "", job.id, card.id, card.serial, done ? "true" : "false");
    else
        printf("job %" PRId64 ": card %" PRId64 " (%s) %s\n", job.id, card.id, card.serial,
               done ? "PIN locked" : "not in this machine: job failed");
}

static int cmd_agent(int argc, char **argv)
{
    static const char usage[] = "usage: tessera agent   (on a device: the due jobs of its cards, then exit)";
    struct agent a;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = cms_parse_opts(&a.c, argc, argv, NULL, 0, NULL, NULL, usage);
    if (rc == EX_OK && optind != argc)
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&a.c, false)) != EX_OK)
        goto out;
    cms_device_name(a.device, sizeof(a.device));
    snprintf(a.who, sizeof(a.who), "agent:%s", a.device);
    /* What an interrupted run left first, then what is due; gathered
     * before anything changes. */
    if ((rc = cms_report(&a.c, cms_locks_interrupted(a.c.db, a.device, collect_id, &a))) != EX_OK ||
        (rc = cms_report(&a.c, cms_jobs_due(a.c.db, a.device, NULL, collect_id, &a))) != EX_OK)
        goto out;
    if (tool_json)
        printf("{\"device\":\"%s\",\"jobs\":[", a.device);
    for (size_t i = 0; i < a.n; i++)
        agent_lock(&a, a.ids[i]);
    if (tool_json)
        printf("],\"locked\":%d,\"skipped\":%d,\"failed\":%d}\n", a.locked, a.skipped, a.failed);
    else
        printf("agent on %s: %d locked, %d skipped, %d failed\n", a.device, a.locked, a.skipped, a.failed);
    rc = a.failed ? EX_FAIL : EX_OK;
out:
    free(a.ids);
    tool_p11_close(&a.p);
    cms_ctx_close(&a.c);
    return rc;
}

int cmd_cms_lock(const char *noun, const char *verb, int argc, char **argv)
{
    if (!strcmp(noun, "card") && !strcmp(verb, "lock"))
        return cmd_card_lock(argc, argv);
    if (!strcmp(noun, "card") && !strcmp(verb, "unlock"))
        return cmd_card_unlock(argc, argv);
    if (!strcmp(noun, "job") && (!strcmp(verb, "move") || !strcmp(verb, "cancel")))
        return cmd_job_lock(verb, argc, argv);
    if (!strcmp(noun, "agent"))
        return cmd_agent(argc, argv);
    return -1;
}
