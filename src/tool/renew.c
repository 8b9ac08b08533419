/* tessera card renew: the holder, on the device, renews the certificates of
 * a card whose renewal the scan opened (src/cms/renewal.h). With the card's
 * PIN only: no admin key, no code. For each key of the card's profile that
 * has a certificate, a new key is made on the card under a new CKA_ID
 * (KEY-NUMBER 'R' JOB), certified, recorded and loaded next to the old one;
 * then, past the step "switched", the old keys and certificates leave the
 * card and the old certificates are revoked as superseded.
 *
 * A PIV card has one key per slot, and a new key would destroy the old one
 * before its certificate exists: its certificates are renewed for the keys
 * it has (the request signed by each slot's key), each stored in place of
 * the old one. Undone, the old certificates go back into their slots. A
 * new key for a PIV card is a reprovisioning.
 *
 * Killed before "switched": the next run removes what it made and revokes
 * the certificates it got, then starts again. Killed after: the next run
 * finishes. TESSERA_TEST_KILL_AT=renew:key:NAME|renew:enrolled:NAME|
 * renew:recorded:NAME|renew:loaded:NAME|renew:switched|renew:removed|
 * renew:revoked kills the process after that step, for the tests. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cms/ca.h"
#include "../cms/escrow.h"
#include "../cms/holders.h"
#include "../cms/profile.h"
#include "../cms/renewal.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

#define NEW_ID_LEN 6
#define OBJECTS_MAX 64

struct renew {
    struct cms_ctx c;
    struct cms_card card;
    struct cms_job job;
    struct cms_profile prof;
    struct cms_holder holder;
    struct cms_ca *ca;
    struct tool_card_session cs;
    int64_t certs_before;
    int certified, removed, superseded;
    int64_t escrow_key_id;     /* when a key of the profile is escrowed */
    X509 *escrow_cert;
    const EVP_MD *escrow_oaep;
    bool piv;                  /* renewed in place: the same keys, new certificates */
};

/* The new key's CKA_ID: its place in the profile, 'R', the job. */
static void new_id(const struct renew *r, int index, uint8_t id[NEW_ID_LEN])
{
    uint32_t job = (uint32_t)r->job.id;
    id[0] = (uint8_t)(index + 1);
    id[1] = 'R';
    for (int i = 0; i < 4; i++)
        id[2 + i] = (uint8_t)(job >> (24 - 8 * i));
}

static bool renewed_key(const struct cms_key_spec *spec)
{
    return spec->eku != 0;
}

/* The profile key this object belongs to, by its label (-1: none), and
 * whether its CKA_ID is the new one. */
static int object_key(struct renew *r, CK_OBJECT_HANDLE o, bool *is_new)
{
    char label[64] = "";
    uint8_t id[TOOL_MAX_ID];
    CK_ATTRIBUTE q[2] = { { CKA_LABEL, label, sizeof(label) - 1 }, { CKA_ID, id, sizeof(id) } };
    *is_new = false;
    if (r->cs.p.f->C_GetAttributeValue(r->cs.h, o, q, 2) != CKR_OK || q[0].ulValueLen >= sizeof(label))
        return -1;
    label[q[0].ulValueLen] = '\0';
    for (int i = 0; i < r->prof.nkeys; i++) {
        uint8_t want[NEW_ID_LEN];
        if (!renewed_key(&r->prof.keys[i]) || strcmp(label, r->prof.keys[i].name))
            continue;
        new_id(r, i, want);
        *is_new = q[1].ulValueLen == NEW_ID_LEN && !memcmp(id, want, NEW_ID_LEN);
        return i;
    }
    return -1;
}

/* Remove the keys and certificates of the renewed profile keys: the new
 * ones (rolling back) or the old ones (switching over). */
static int remove_objects(struct renew *r, bool new_ones)
{
    static const CK_OBJECT_CLASS classes[] = { CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
    for (size_t c = 0; c < TESS_ARRAY_SIZE(classes); c++) {
        CK_OBJECT_HANDLE objs[OBJECTS_MAX];
        CK_ULONG n = tool_find_objects(&r->cs.p, r->cs.h, classes[c], NULL, 0, objs, OBJECTS_MAX);
        for (CK_ULONG i = 0; i < n; i++) {
            bool is_new;
            if (object_key(r, objs[i], &is_new) < 0 || is_new != new_ones)
                continue;
            CK_RV rv = r->cs.p.f->C_DestroyObject(r->cs.h, objs[i]);
            if (rv != CKR_OK)
                return tool_report(rv, "an object was not removed from the card");
            r->removed++;
        }
    }
    return EX_OK;
}

struct cert_pass {
    struct renew *r;
    bool new_ones;           /* certificates after certs_before, else up to it */
    int reason;              /* CMS_REVOKE_* */
    const char *to;
    bool withdraw;           /* rolled back: never in use (cms_cert_withdraw) */
};

static int revoke_cert(void *arg, int64_t id, const char *ca_name, const char *serial, const char *key_name,
                       const char *state)
{
    struct cert_pass *cp = arg;
    struct renew *r = cp->r;
    bool is_new = id > r->certs_before, ours = false;
    for (int i = 0; i < r->prof.nkeys; i++)
        ours |= renewed_key(&r->prof.keys[i]) && !strcmp(key_name, r->prof.keys[i].name);
    if (!ours || is_new != cp->new_ones || !strcmp(state, "superseded") || !strcmp(state, cp->to))
        return CMS_OK;
    if (strcmp(ca_name, r->ca->name))
        return cms_fail(r->c.db, CMS_ERR, "certificate %s is from %s, not this database's CA: it cannot be revoked "
                        "here", serial, ca_name);
    if (r->ca->ops->revoke(r->ca, serial, cp->reason) != CMS_OK)
        return cms_fail(r->c.db, CMS_ERR, "the CA did not revoke certificate %s: %s", serial, r->ca->err);
    r->superseded++;
    return cms_renew_cert_state(r->c.db, &r->job, &r->card, id, serial, key_name, cp->to, cp->withdraw);
}

static int revoke_certs(struct renew *r, bool new_ones, int reason, const char *to, bool withdraw)
{
    struct cert_pass cp = { r, new_ones, reason, to, withdraw };
    return cms_report(&r->c, cms_card_certs(r->c.db, r->card.id, revoke_cert, &cp));
}

struct old_certs {
    struct renew *r;
    int64_t id[CMS_PROFILE_MAX_KEYS];   /* each renewed key's latest certificate before the renewal */
};

static int find_old(void *arg, int64_t id, const char *ca_name, const char *serial, const char *key_name,
                    const char *state)
{
    struct old_certs *o = arg;
    (void)ca_name;
    (void)serial;
    /* active, or on hold if the card was suspended meanwhile */
    if (id > o->r->certs_before || (strcmp(state, "active") && strcmp(state, "suspended")))
        return CMS_OK;
    for (int i = 0; i < o->r->prof.nkeys; i++)
        if (renewed_key(&o->r->prof.keys[i]) && !strcmp(key_name, o->r->prof.keys[i].name))
            o->id[i] = id;
    return CMS_OK;
}

/* A PIV card's slots get their old certificates back. */
static int restore_old(struct renew *r)
{
    struct old_certs o = { .r = r };
    int rc = cms_report(&r->c, cms_card_certs(r->c.db, r->card.id, find_old, &o));
    for (int i = 0; i < r->prof.nkeys && rc == EX_OK; i++) {
        uint8_t id[1] = { cms_piv_key_id(r->prof.keys[i].piv_slot) };
        CK_OBJECT_HANDLE added;
        X509 *cert = NULL;
        CK_RV rv;
        if (!o.id[i])
            continue;
        rc = cms_report(&r->c, cms_cert_get(r->c.db, o.id[i], &cert));
        if (rc == EX_OK && (rv = tool_store_cert(&r->cs.p, r->cs.h, cert, id, 1, r->prof.keys[i].name, 1, &added)) !=
                               CKR_OK)
            rc = tool_report(rv, "the old certificate was not put back");
        X509_free(cert);
    }
    return rc;
}

/* Undo a renewal that did not reach "switched". */
static int roll_back(struct renew *r, const char *to, const char *why)
{
    char detail[300];
    int rc = r->piv ? restore_old(r) : remove_objects(r, true);
    if (rc == EX_OK)
        rc = revoke_certs(r, true, CMS_REVOKE_CESSATION, "revoked", true);
    if (rc == EX_OK)
        rc = cms_settle_enrolments(&r->c, r->ca, &r->card, NULL, CMS_REVOKE_CESSATION, &r->superseded);
    if (rc != EX_OK)
        return rc;
    snprintf(detail, sizeof(detail), "job %" PRId64 ": after step %s (%s): %d object(s) removed from the card, %d "
             "new certificate(s) revoked", r->job.id, r->job.step, why, r->removed, r->superseded);
    r->removed = r->superseded = 0;
    rc = cms_report(&r->c, cms_renew_undone(r->c.db, &r->job, &r->card, to, detail));
    if (rc == EX_OK)
        snprintf(r->job.step, sizeof(r->job.step), "begun");
    return rc;
}

/* From "switched" on: the old keys leave the card, their certificates are
 * superseded, the job is done. */
static int switch_over(struct renew *r)
{
    char detail[300];
    int rc = r->piv ? EX_OK : remove_objects(r, false);   /* a PIV card's were replaced in place */
    if (rc == EX_OK) {
        cms_kill_point("renew:removed");
        rc = revoke_certs(r, false, CMS_REVOKE_SUPERSEDED, "superseded", false);
    }
    if (rc == EX_OK) {
        cms_kill_point("renew:revoked");
        rc = cms_report(&r->c, cms_card_get(r->c.db, r->card.id, NULL, &r->card));
    }
    /* Suspended or ended while this ran: the new certificates follow the
     * card (the change held or revoked the ones it found). */
    if (rc == EX_OK && strcmp(r->card.state, "active") && strcmp(r->card.state, "locked"))
        rc = !strcmp(r->card.state, "suspended") ? revoke_certs(r, true, CMS_REVOKE_HOLD, "suspended", false)
                                                 : revoke_certs(r, true, CMS_REVOKE_CESSATION, "revoked", false);
    if (rc != EX_OK)
        return rc;
    snprintf(detail, sizeof(detail), "job %" PRId64 ": %d key(s) renewed, %d old object(s) removed from the card, "
             "%d old certificate(s) superseded", r->job.id, r->certified, r->removed, r->superseded);
    return cms_report(&r->c, cms_renew_finish(r->c.db, &r->job, &r->card, detail));
}

static int renew_keys(struct renew *r)
{
    int rc = EX_OK;
    for (int i = 0; i < r->prof.nkeys && rc == EX_OK; i++) {
        uint8_t id[NEW_ID_LEN];
        CK_ULONG idlen = NEW_ID_LEN;
        if (!renewed_key(&r->prof.keys[i]))
            continue;
        if (r->piv) {
            id[0] = cms_piv_key_id(r->prof.keys[i].piv_slot);
            idlen = 1;
        } else {
            new_id(r, i, id);
        }
        struct cms_key_issue ki = { &r->c, &r->cs.p, r->cs.h, r->ca, &r->job, &r->card, &r->holder, r->cs.pin,
                                    r->prof.keys[i].lifetime_days, "renew:", r->escrow_key_id, r->escrow_cert,
                                    r->escrow_oaep, r->piv };
        if ((rc = cms_issue_key(&ki, &r->prof.keys[i], id, idlen)) == EX_OK)
            r->certified++;
    }
    if (rc == EX_OK)
        rc = cms_report(&r->c, cms_job_step(r->c.db, &r->job, &r->card, "switched", NULL, NULL, NULL));
    if (rc == EX_OK) {
        snprintf(r->job.step, sizeof(r->job.step), "switched");
        cms_kill_point("renew:switched");
    }
    return rc;
}

struct pick {
    int64_t card_id;
    int n;
};

static int pick_card(void *arg, const struct cms_job *job, const struct cms_card *card)
{
    struct pick *p = arg;
    (void)job;
    if (!tool_json)
        printf("card %" PRId64 " (%s) of %s: renewal due\n", card->id, card->serial, card->holder);
    p->card_id = card->id;
    p->n++;
    return CMS_OK;
}

/* The card named, or the only card of this machine with a renewal open. */
static int find_card(struct renew *r, const char *arg)
{
    struct pick p = { 0, 0 };
    char here[256];
    int rc;
    if (arg)
        return cms_card_arg(&r->c, arg, &r->card);
    cms_device_name(here, sizeof(here));
    rc = cms_report(&r->c, cms_job_select(r->c.db, "WHERE j.kind = 'renew' AND j.state IN ('pending','running')"
                                                   " AND d.name = ?1 ORDER BY j.id", here, NULL, pick_card, &p));
    if (rc != EX_OK)
        return rc;
    if (p.n == 0) {
        fprintf(stderr, "tessera: no card of this machine (%s) has a renewal due\n", here);
        return EX_NOTFOUND;
    }
    if (p.n > 1) {
        fprintf(stderr, "tessera: %d cards of this machine have a renewal due: name one (tessera card renew ID)\n",
                p.n);
        return EX_USAGE;
    }
    return cms_report(&r->c, cms_card_get(r->c.db, p.card_id, NULL, &r->card));
}

static int prepare(struct renew *r, const char *pin_file)
{
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    int rc;
    r->piv = !strcmp(r->card.type, "piv");
    if (!r->card.serial[0]) {
        fprintf(stderr, "tessera: card %" PRId64 " was never collected\n", r->card.id);
        return EX_STATE;
    }
    if ((rc = cms_report(&r->c, cms_profile_get(r->c.db, r->card.profile, r->card.profile_version, &r->prof))) !=
            EX_OK ||
        (rc = cms_report(&r->c, cms_holder_get(r->c.db, r->card.holder, &r->holder))) != EX_OK ||
        (rc = cms_report(&r->c, cms_ca_open(r->c.db, &r->ca))) != EX_OK)
        return rc;
    /* A renewed escrowed key is escrowed too, to today's escrow key (a
     * PIV card's keeps its key, escrowed when it was made). */
    for (int i = 0; i < r->prof.nkeys && !r->escrow_cert && !r->piv; i++)
        if (r->prof.keys[i].escrow &&
            (rc = cms_report(&r->c, cms_escrow_key_current(r->c.db, &r->escrow_key_id, &r->escrow_cert, &r->escrow_oaep))) != EX_OK)
            return rc;
    /* The holder's PIN opens the card before anything is recorded: a wrong
     * one leaves the renewal as it was. */
    ca.serial = r->card.serial;
    return tool_card_login(&r->cs, &ca, pin_file);
}

static int opt_renew(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 'P')
        return -1;
    *(const char **)arg = v;
    return 0;
}

int cmd_card_renew(int argc, char **argv)
{
    static const char usage[] = "usage: tessera card renew [ID|SERIAL] [--pin-file F]";
    static const struct option extra[] = { { "pin-file", required_argument, 0, 'P' } };
    struct renew r;
    const char *pin_file = NULL;
    bool interrupted = false;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = cms_parse_opts(&r.c, argc, argv, extra, 1, opt_renew, &pin_file, usage);
    if (rc == EX_OK && optind < argc - 1)
        rc = tool_usage_error(usage);
    if (rc != EX_OK)
        return rc;
    if ((rc = cms_ctx_open(&r.c, false)) != EX_OK || (rc = find_card(&r, optind < argc ? argv[optind] : NULL)) != EX_OK ||
        (rc = prepare(&r, pin_file)) != EX_OK)
        goto out;
    if ((rc = cms_report(&r.c, cms_renew_take(r.c.db, &r.card, &r.job, &interrupted, &r.certs_before))) != EX_OK)
        goto out;
    if (interrupted && !tool_json)
        printf("card %" PRId64 ": taking up the renewal interrupted after step %s\n", r.card.id, r.job.step);
    if (strcmp(r.job.step, "switched")) {
        /* An interrupted renewal of a card that has since left use ends here. */
        bool in_use = !strcmp(r.card.state, "active");
        if (interrupted && (rc = roll_back(&r, in_use ? "running" : "cancelled", "interrupted")) != EX_OK)
            goto out;
        if (!in_use) {
            fprintf(stderr, "tessera: card %" PRId64 " is %s: its renewal is cancelled\n", r.card.id, r.card.state);
            rc = EX_STATE;
            goto out;
        }
        if ((rc = renew_keys(&r)) != EX_OK) {
            if (roll_back(&r, "pending", "failed") != EX_OK)
                fprintf(stderr, "tessera: what the renewal made stays recorded; the next `tessera card renew` "
                        "%s\n", r.piv ? "puts the old certificates back" : "removes it");
            goto out;
        }
    }
    if ((rc = switch_over(&r)) != EX_OK) {
        fprintf(stderr, "tessera: the renewal is half switched over; the next `tessera card renew` finishes it\n");
        goto out;
    }
    if (tool_json)
        printf("{\"card\":\"%s\",\"id\":%" PRId64 ",\"job\":%" PRId64 ",\"renewed\":%d,\"removed\":%d,"
               "\"superseded\":%d,\"resumed\":%s}\n", r.card.serial, r.card.id, r.job.id, r.certified, r.removed,
               r.superseded, interrupted ? "true" : "false");
    else
        printf("card %s renewed: %d new certificate(s); %d old object(s) removed, %d old certificate(s) superseded\n",
               r.card.serial, r.certified, r.removed, r.superseded);
out:
    tool_card_logout(&r.cs);
    cms_ca_close(r.ca);
    X509_free(r.escrow_cert);
    cms_holder_clear(&r.holder);
    cms_ctx_close(&r.c);
    return rc;
}
