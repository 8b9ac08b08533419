/* The changes after a request (lifecycle.c) without a card: the guard
 * table and the roles it names, suspend and enable through the embedded CA
 * (holds in the CRL), a change interrupted and taken up, a temporary card
 * and its end, a new collection code, cancel. The card side (erase,
 * collect) is test-cms-lifecycle.sh's. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "src/cms/audit.h"
#include "src/cms/ca.h"
#include "src/cms/cards.h"
#include "src/cms/holders.h"
#include "src/cms/lifecycle.h"
#include "src/cms/profile.h"
#include "tests/tap.h"
#include "tests/unit/cms-fixture.h"

static struct cms_actor helpdesk = { "olga", CMS_ROLE_HELPDESK, true };

/* A change from begin to finish, as the tool runs it (no erase). */
static int change(struct cms_db *db, struct cms_ca *ca, const char *name, int64_t card_id, char code[CMS_CODE_LEN],
                  int64_t *new_card)
{
    struct cms_change_args args = { "test", NULL, NULL, 14 };
    struct cms_card card;
    struct cms_job job;
    bool done = false;
    int rc = cms_card_get(db, card_id, NULL, &card);
    if (rc == CMS_OK)
        rc = cms_change_begin(db, &admin, cms_change_find(name), &card, &args, &job);
    while (rc == CMS_OK && !done)
        rc = cms_change_next_cert(db, ca, &job, &card, &done);
    return rc == CMS_OK ? cms_change_finish(db, &job, &card, code, new_card) : rc;
}

static const char *state_of(struct cms_db *db, int64_t id)
{
    static struct cms_card card;
    return cms_card_get(db, id, NULL, &card) == CMS_OK ? card.state : "?";
}

static const char *cert_state(struct cms_db *db, int64_t card_id)
{
    static char out[16];
    sqlite3_stmt *st = cms_prepare(db, "SELECT state FROM certificates WHERE card_id = ?");
    snprintf(out, sizeof(out), "?");
    sqlite3_bind_int64(st, 1, card_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

int main(void)
{
    char code[CMS_CODE_LEN], code2[CMS_CODE_LEN], code3[CMS_CODE_LEN];
    struct cms_ca *ca = NULL;
    struct cms_card card;
    struct cms_job job;
    int64_t a, temp = 0, none;

    plan_lazy();
    struct cms_db *db = fixture_open("cms-lifecycle-unit", &ca);

    /* The table and the roles it names. */
    static const char *const names[] = { "suspend", "enable", "cancel", "lost", "stolen", "damaged", "forgotten",
                                          "erase", "reprovision" };
    struct cms_actor all = { "root", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK, true };
    int known = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        known += cms_change_find(names[i]) && cms_authorize(db, &all, cms_change_find(names[i])->action, NULL, NULL,
                                                            NULL) == CMS_OK;
    ok(known == 9, "nine changes, each with an action roles.c knows");
    ok(cms_change_find("bored") == NULL, "  and no other");
    ok(cms_authorize(db, &helpdesk, "card.suspend", NULL, NULL, NULL) == CMS_OK &&
           cms_authorize(db, &helpdesk, "card.enable", NULL, NULL, NULL) == CMS_OK,
       "the helpdesk may suspend and enable");
    ok(cms_authorize(db, &helpdesk, "card.cancel", NULL, NULL, NULL) == CMS_DENIED &&
           cms_authorize(db, &helpdesk, "card.replace", NULL, NULL, NULL) == CMS_DENIED,
       "  not cancel or replace");

    a = active_card(db, ca, "00aa00aa00aa00aa");
    ok(a > 0 && !strcmp(state_of(db, a), "active"), "an active card with a certificate");
    ok(cms_card_get(db, a, NULL, &card) == CMS_OK && cms_change_check(db, cms_change_find("enable"), &card) == CMS_STATE,
       "enable an active card: %s", db->err);
    ok(change(db, ca, "suspend", a, code, &none) == CMS_OK && !strcmp(state_of(db, a), "suspended") &&
           !strcmp(cert_state(db, a), "suspended"),
       "suspended, its certificate on hold");
    ok(crl_count(ca) == 1 && none == 0, "  in the CRL; no replacement");
    ok(change(db, ca, "enable", a, code, &none) == CMS_OK && !strcmp(state_of(db, a), "active") &&
           !strcmp(cert_state(db, a), "active") && crl_count(ca) == 0,
       "enabled: active, the hold lifted, the CRL empty");

    /* Interrupted: begun by a process that is gone. */
    struct cms_change_args args = { NULL, NULL, NULL, 14 };
    ok(cms_card_get(db, a, NULL, &card) == CMS_OK &&
           cms_change_begin(db, &admin, cms_change_find("suspend"), &card, &args, &job) == CMS_OK,
       "a suspend begun");
    ok(cms_exec_bind(db, "UPDATE jobs SET owner = 'nowhere.example 1 1' WHERE id = ?1", "jobs", job.id, NULL, NULL) ==
           CMS_OK,
       "  its process gone (another host's)");
    ok(cms_change_begin(db, &admin, cms_change_find("cancel"), &card, &args, &job) == CMS_STATE &&
           strstr(db->err, "interrupted"),
       "  a cancel waits for it: %s", db->err);
    ok(cms_change_take(db, &admin, a, 0, &job, &card) == CMS_OK && !strcmp(job.kind, "suspend"), "  taken up");
    bool done = false;
    int rc = CMS_OK;
    while (rc == CMS_OK && !done)
        rc = cms_change_next_cert(db, ca, &job, &card, &done);
    ok(rc == CMS_OK && cms_change_finish(db, &job, &card, code, &none) == CMS_OK &&
           !strcmp(state_of(db, a), "suspended"),
       "  and finished");
    ok(cms_change_take(db, &admin, a, 0, &job, &card) == CMS_NOTFOUND, "  nothing left to take up");
    ok(change(db, ca, "enable", a, code, &none) == CMS_OK, "enabled again");

    /* Forgotten: a temporary card; the original back ends it. */
    ok(change(db, ca, "forgotten", a, code, &temp) == CMS_OK && temp > 0 && strlen(code) == 23,
       "forgotten: a temporary card requested, its code %s", code);
    rc = cms_card_get(db, temp, NULL, &card);
    ok(rc == CMS_OK && card.temporary && card.replaces == a && card.expires[0], "  temporary until %s, replacing card "
       "%lld", card.expires, (long long)card.replaces);
    ok(!strcmp(state_of(db, a), "suspended") && crl_count(ca) == 1, "  the original suspended, on hold");
    ok(cms_card_new_code(db, &admin, temp, 30, code2) == CMS_OK && strcmp(code, code2), "a new code for it");
    ok(cms_collect_claim(db, code, "laptop.example", &job, &card) == CMS_DENIED, "  the old one is void");
    ok(cms_card_new_code(db, &admin, a, 14, code3) == CMS_STATE, "no code for a card that waits for no collect");
    ok(change(db, ca, "enable", a, code, &none) == CMS_OK && !strcmp(state_of(db, a), "active"), "the original back");
    ok(!strcmp(state_of(db, temp), "cancelled"), "  the temporary card, never collected, cancelled");
    ok(cms_collect_claim(db, code2, "laptop.example", &job, &card) == CMS_DENIED, "  its code is gone: %s", db->err);

    ok(change(db, ca, "cancel", a, code, &none) == CMS_OK && !strcmp(state_of(db, a), "revoked") &&
           !strcmp(cert_state(db, a), "revoked") && crl_count(ca) == 1,
       "cancelled: revoked, in the CRL");
    ok(change(db, ca, "lost", a, code, &none) == CMS_STATE, "  a revoked card is not replaced: %s", db->err);
    struct cms_audit_check check = { 0 };
    rc = cms_audit_verify(db, &check);
    ok(rc == CMS_OK && check.records > 20, "the trail verifies (%lld records)", (long long)check.records);

    cms_ca_close(ca);
    cms_close(db);
    return done_testing();
}
