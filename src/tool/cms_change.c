/* tessera card suspend|enable|cancel|erase|reprovision|replace, card code
 * and job resume: the operator's side of a card's life after it is
 * requested. Each change is a job (src/cms/lifecycle.c): begun under its
 * guard, its certificates changed at the CA one by one, the card erased
 * here when the change erases it, then finished. A change killed at any
 * point is finished by the next change of the same card or by `job resume`:
 * the CA's operations and the erase repeat safely.
 * TESSERA_TEST_KILL_AT=change:certificate|change:erased|change:done kills
 * the process after that step, for the tests. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../cms/ca.h"
#include "../cms/lifecycle.h"
#include "../cms/profile.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

struct change_run {
    struct cms_ctx c;
    struct cms_card card;
    struct cms_job job;
    const struct cms_change *ch;
    struct cms_ca *ca;
    struct tool_p11 p;
    char code[CMS_CODE_LEN];
    int64_t new_card;
    int certs;
};

static int p11_ready(struct change_run *r)
{
    return r->p.initialized ? EX_OK : tool_p11_open(&r->p);
}

/* Is the card in this machine (a TPM card on its TPM, a PIV card in one of
 * its readers)? A change that erases it is made where it is. */
static int card_here(struct change_run *r)
{
    CK_TESSERA_CARD_INFO info;
    CK_SLOT_ID slot;
    char here[256];
    int rc;
    if ((rc = p11_ready(r)) != EX_OK)
        return rc;
    if (r->card.serial[0] && tool_p11_find(&r->p, -1, r->card.serial, &slot, &info) == EX_OK)
        return EX_OK;
    cms_device_name(here, sizeof(here));
    fprintf(stderr, "tessera: card %" PRId64 " (%s) is not in this machine (%s)%s%s: %s it there\n", r->card.id,
            r->card.serial[0] ? r->card.serial : "no serial", here, r->card.device[0] ? "; it is on " : "",
            r->card.device, r->ch->name);
    return EX_NOTFOUND;
}

static int erase_here(struct change_run *r, bool resumed)
{
    struct cms_profile prof;
    struct tool_key_source ks;
    char here[256];
    bool erased = false;
    int rc = cms_report(&r->c, cms_profile_get(r->c.db, r->card.profile, r->card.profile_version, &prof));
    if (rc == EX_OK)
        rc = cms_key_source(&prof, &ks);
    if (rc == EX_OK)
        rc = p11_ready(r);
    /* A PIV card's reset takes its serial (its CHUID) with it: "erasing" is
     * recorded first, so that only a card gone after that step counts as
     * erased by the interrupted run; before it, it is out of its reader. */
    bool piv = !strcmp(r->card.type, "piv"), was_erasing = !strcmp(r->job.step, "erasing");
    if (rc == EX_OK && piv && r->card.serial[0] && !was_erasing) {
        CK_SLOT_ID slot;
        CK_TESSERA_CARD_INFO info;
        if (tool_p11_find(&r->p, -1, r->card.serial, &slot, &info) == EX_OK &&
            (rc = cms_report(&r->c, cms_job_step(r->c.db, &r->job, &r->card, "erasing", NULL, NULL, NULL))) == EX_OK)
            snprintf(r->job.step, sizeof(r->job.step), "erasing");
    }
    if (rc == EX_OK && r->card.serial[0])
        rc = cms_card_admin(&r->p, &ks, r->card.serial, CMS_ADMIN_ERASE, NULL, &erased);
    if (rc != EX_OK)
        return rc;
    /* Not here: the interrupted run erased it, if this is its machine. */
    cms_device_name(here, sizeof(here));
    if (!erased && (!resumed || (piv && !was_erasing) || (r->card.device[0] && strcasecmp(r->card.device, here)))) {
        fprintf(stderr, "tessera: card %" PRId64 " is not in this machine (%s): take job %" PRId64 " up on %s\n",
                r->card.id, here, r->job.id, r->card.device[0] ? r->card.device : "the machine that has it");
        return EX_NOTFOUND;
    }
    rc = cms_report(&r->c, cms_change_erased(r->c.db, &r->job, &r->card, erased));
    if (rc == EX_OK)
        cms_kill_point("change:erased");
    return rc;
}

/* From wherever the job is to its end. */
static int run(struct change_run *r, bool resumed)
{
    bool done = false;
    int rc = EX_OK;
    r->ch = cms_change_find(r->job.kind);
    r->certs = 0;
    while (rc == EX_OK && !done) {
        rc = cms_report(&r->c, cms_change_next_cert(r->c.db, r->ca, &r->job, &r->card, &done));
        if (rc == EX_OK && !done) {
            r->certs++;
            cms_kill_point("change:certificate");
        }
    }
    /* A card that ends takes with it what a collect or renewal cut short
     * had asked the CA for (a suspended one keeps it for its own undo). */
    if (rc == EX_OK && r->ch->reason >= 0 && r->ch->reason != CMS_REVOKE_HOLD)
        rc = cms_settle_enrolments(&r->c, r->ca, &r->card, r->job.created_by, r->ch->reason, &r->certs);
    if (rc == EX_OK && r->ch->erases && strcmp(r->job.step, "erased"))
        rc = erase_here(r, resumed);
    if (rc == EX_OK)
        rc = cms_report(&r->c, cms_change_finish(r->c.db, &r->job, &r->card, r->code, &r->new_card));
    if (rc == EX_OK)
        cms_kill_point("change:done");
    if (rc == EX_OK)
        rc = cms_report(&r->c, cms_card_get(r->c.db, r->card.id, NULL, &r->card));
    return rc;
}

static void report(const struct change_run *r, bool resumed)
{
    if (tool_json) {
        printf("{\"card\":%" PRId64 ",\"change\":\"%s\",\"job\":%" PRId64 ",\"state\":\"%s\",\"certificates\":%d",
               r->card.id, r->ch->name, r->job.id, r->card.state, r->certs);
        if (r->new_card)
            printf(",\"replacement\":%" PRId64 ",\"code\":\"%s\"", r->new_card, r->code);
        printf(",\"resumed\":%s}\n", resumed ? "true" : "false");
        return;
    }
    printf("card %" PRId64 "%s%s: %s%s, now %s (%d certificate(s) changed at the CA)\n", r->card.id,
           r->card.serial[0] ? " " : "", r->card.serial, r->ch->name, resumed ? " (interrupted, finished now)" : "",
           r->card.state, r->certs);
    if (r->new_card) {
        printf("%s card %" PRId64 " requested for %s\n", r->ch->replace == CMS_REPLACE_TEMPORARY ? "temporary"
               : "replacement", r->new_card, r->card.holder);
        printf("collection code (give it to the holder; it is not shown again): %s\n", r->code);
    }
}

/* May the operator make this change of r's card? (A refusal is audited.) */
static int authorize(struct change_run *r, const struct cms_change *ch)
{
    return cms_report(&r->c, cms_authorize(r->c.db, &r->c.actor, ch->action, r->card.holder,
                                           r->card.serial[0] ? r->card.serial : NULL,
                                           r->card.device[0] ? r->card.device : NULL));
}

static int run_close(struct change_run *r, int rc)
{
    tool_p11_close(&r->p);
    cms_ca_close(r->ca);
    cms_ctx_close(&r->c);
    tess_wipe(r->code, sizeof(r->code));
    return rc;
}

static int ca_ready(struct change_run *r)
{
    int rc = cms_ca_open(r->c.db, &r->ca);
    /* No CA yet: a change of a card without certificates needs none (and
     * one with certificates says so when it reaches them). */
    return rc == CMS_NOTFOUND ? EX_OK : cms_report(&r->c, rc);
}

static int count_held(void *arg, int64_t id, const char *ca, const char *serial, const char *key_name,
                      const char *state)
{
    (void)id, (void)ca, (void)serial, (void)key_name;
    *(int *)arg += !strcmp(state, "suspended");
    return CMS_OK;
}

/* A CA that cannot lift a hold (cfssl's): refuse to suspend, since the card
 * could never come back, and to enable a card with held certificates. */
static int hold_possible(struct change_run *r, const struct cms_change *ch)
{
    int held = 0, rc;
    if (!r->ca || r->ca->ops->lifts_hold || (ch->reason != CMS_REVOKE_HOLD && ch->reason != CMS_HOLD_LIFT))
        return EX_OK;
    if (ch->reason == CMS_HOLD_LIFT) {
        if ((rc = cms_report(&r->c, cms_card_certs(r->c.db, r->card.id, count_held, &held))) != EX_OK)
            return rc;
        if (held == 0)
            return EX_OK;   /* nothing held: the guard and the job decide */
    }
    fprintf(stderr, "tessera: this database's CA (%s) cannot lift a hold, %s: cancel the card, or replace it "
                    "as lost, stolen or damaged\n", r->ca->name,
            ch->reason == CMS_HOLD_LIFT ? "so the card's held certificates stay revoked"
                                        : "so a suspended card could never come back");
    return cms_exit_for(CMS_STATE);
}

/* An interrupted change of the card, finished first (*finished: there was one). */
static int finish_interrupted(struct change_run *r, bool *finished)
{
    const struct cms_change *ch;
    int rc = cms_change_take(r->c.db, &r->c.actor, r->card.id, 0, &r->job, &r->card);
    *finished = false;
    if (rc == CMS_NOTFOUND)
        return EX_OK;
    if (rc != CMS_OK)
        return cms_report(&r->c, rc);
    ch = cms_change_find(r->job.kind);
    if ((rc = authorize(r, ch)) != EX_OK)
        return rc;
    if (!tool_json)
        printf("card %" PRId64 ": finishing the interrupted %s (job %" PRId64 ", after step %s)\n", r->card.id,
               r->job.kind, r->job.id, r->job.step);
    if ((rc = run(r, true)) != EX_OK)
        return rc;
    *finished = true;
    return EX_OK;
}

struct change_opts {
    struct cms_change_args a;
    const char *reason;
};

static int opt_change(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct change_opts *o = arg;
    (void)c;
    switch (ch) {
    case 'n': o->a.note = v; return 0;
    case 'r': o->reason = v; return 0;
    case 't': o->a.type = v; return strcmp(v, "tpm") && strcmp(v, "piv");
    case 'd': o->a.device = v; return 0;
    case 'v': o->a.valid_days = atoi(v); return o->a.valid_days < 1 || o->a.valid_days > 365;
    default: return -1;
    }
}

int cmd_card_change(const char *verb, int argc, char **argv)
{
    static const char usage[] =
        "usage: tessera card suspend|enable|cancel|erase|reprovision ID|SERIAL [--note TEXT]\n"
        "       tessera card replace ID|SERIAL --reason lost|stolen|damaged|forgotten [--type tpm|piv]\n"
        "                                  [--device NAME] [--valid-days N] [--note TEXT]";
    static const struct option extra[] = {
        { "note", required_argument, 0, 'n' },   { "reason", required_argument, 0, 'r' },
        { "type", required_argument, 0, 't' },   { "device", required_argument, 0, 'd' },
        { "valid-days", required_argument, 0, 'v' },
    };
    struct change_opts o = { { NULL, NULL, NULL, 14 }, NULL };
    struct change_run r;
    bool replace = !strcmp(verb, "replace"), finished = false;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = cms_parse_opts(&r.c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_change, &o, usage);
    if (rc == EX_OK && optind != argc - 1)
        rc = tool_usage_error(usage);
    if (rc != EX_OK)
        return rc;
    r.ch = cms_change_find(replace ? o.reason : verb);
    if (!r.ch || (replace != (r.ch->replace == CMS_REPLACE_CARD || r.ch->replace == CMS_REPLACE_TEMPORARY)) ||
        (!replace && (o.reason || o.a.type || o.a.device)))
        return tool_usage_error(usage);
    const struct cms_change *want = r.ch;
    if ((rc = cms_ctx_open(&r.c, false)) != EX_OK || (rc = cms_card_arg(&r.c, argv[optind], &r.card)) != EX_OK)
        goto out;
    if ((rc = authorize(&r, want)) != EX_OK)
        goto out;
    if ((rc = ca_ready(&r)) != EX_OK || (rc = finish_interrupted(&r, &finished)) != EX_OK)
        goto out;
    if (finished && !strcmp(r.job.kind, want->name)) {
        report(&r, true);   /* what was asked for was the change interrupted */
        goto out;
    }
    if (finished)
        report(&r, true);
    r.ch = want;
    r.new_card = 0;
    if ((rc = hold_possible(&r, want)) != EX_OK)
        goto out;
    if ((rc = cms_report(&r.c, cms_change_check(r.c.db, want, &r.card))) != EX_OK ||
        (want->erases && (rc = card_here(&r)) != EX_OK))
        goto out;
    if ((rc = cms_report(&r.c, cms_change_begin(r.c.db, &r.c.actor, want, &r.card, &o.a, &r.job))) != EX_OK)
        goto out;
    if ((rc = run(&r, false)) == EX_OK)
        report(&r, false);
    else
        fprintf(stderr, "tessera: job %" PRId64 " stays to be finished: `tessera job resume %" PRId64 "`\n", r.job.id,
                r.job.id);
out:
    return run_close(&r, rc);
}

int cmd_job_resume(int argc, char **argv)
{
    static const char usage[] = "usage: tessera job resume ID";
    struct change_run r;
    char *end;
    long long id;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = cms_parse_opts(&r.c, argc, argv, NULL, 0, NULL, NULL, usage);
    if (rc == EX_OK && optind != argc - 1)
        rc = tool_usage_error(usage);
    if (rc != EX_OK)
        return rc;
    id = strtoll(argv[optind], &end, 10);
    if (*end || id <= 0)
        return tool_usage_error(usage);
    if ((rc = cms_ctx_open(&r.c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&r.c, cms_authorize(r.c.db, &r.c.actor, "job.resume", NULL, NULL, NULL))) != EX_OK ||
        (rc = ca_ready(&r)) != EX_OK)
        goto out;
    if ((rc = cms_report(&r.c, cms_change_take(r.c.db, &r.c.actor, 0, id, &r.job, &r.card))) != EX_OK)
        goto out;
    r.ch = cms_change_find(r.job.kind);
    if ((rc = authorize(&r, r.ch)) != EX_OK)
        goto out;
    if ((rc = run(&r, true)) == EX_OK)
        report(&r, true);
out:
    return run_close(&r, rc);
}

int cms_change_card(struct cms_ctx *c, struct cms_ca *ca, int64_t card_id, const char *name, const char *note,
                    char state[16])
{
    struct cms_change_args a = { note, NULL, NULL, 14 };
    struct change_run r;
    bool finished = false;
    int rc;

    memset(&r, 0, sizeof(r));
    r.c = *c;           /* borrowed: closed by the caller, not here */
    r.ca = ca;
    r.ch = cms_change_find(name);
    state[0] = '\0';
    if (!r.ch)
        return EX_FAIL;
    if ((rc = cms_report(&r.c, cms_card_get(r.c.db, card_id, NULL, &r.card))) != EX_OK ||
        (rc = authorize(&r, r.ch)) != EX_OK || (rc = finish_interrupted(&r, &finished)) != EX_OK)
        goto out;
    if (!finished || strcmp(r.job.kind, name)) {
        r.ch = cms_change_find(name);
        if ((rc = hold_possible(&r, r.ch)) != EX_OK)
            goto out;
        if ((rc = cms_report(&r.c, cms_change_begin(r.c.db, &r.c.actor, r.ch, &r.card, &a, &r.job))) != EX_OK)
            goto out;
        rc = run(&r, false);
    }
    if (rc == EX_OK)
        snprintf(state, 16, "%s", r.card.state);
out:
    tool_p11_close(&r.p);
    tess_wipe(r.code, sizeof(r.code));
    return rc;
}
