/* The renewal scan: what `tessera scan` does, from cron, on the machine
 * with the database.
 *
 * 1. Renewal jobs. A card in use (active or locked, not temporary) whose
 *    earliest active certificate expires within its profile's
 *    renewal-window-days gets one pending "renew" job (at most one open per
 *    card: a partial unique index). A pending renewal whose card left use or
 *    has no active certificate left is cancelled.
 * 2. Notices. For each pending renewal the holder is told — first at once,
 *    then again every notify-every-days (0: once) until the job is done —
 *    through the channels set up (notify.h). A notice is recorded only after
 *    it was sent, so a scan killed in between sends it again: at least once.
 *    Each notice carries an id that stays the same until it is recorded, for
 *    a receiver to drop repeats.
 * 3. Temporary cards past their end are ended by the "expire" change
 *    (lifecycle.h): their certificates revoked, the card revoked (or
 *    cancelled with its code, when never collected). The original stays as
 *    it is (suspended) until the helpdesk enables it. */
#ifndef TESSERA_CMS_RENEWAL_H
#define TESSERA_CMS_RENEWAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cards.h"
#include "db.h"
#include "roles.h"

/* Step 1 at now (stored form), in one transaction with an audit record per
 * job made or cancelled; dry: counted and rolled back. */
int cms_renewal_jobs(struct cms_db *db, const struct cms_actor *by, const char *now, bool dry, int *made,
                     int *cancelled);

/* What a holder is told about one card. */
struct cms_notice {
    int64_t job_id, card_id;
    char serial[40];
    char device[256];            /* "" when the card is not bound to one */
    char holder[128];            /* uid */
    char name[256];
    char email[256];             /* "" when the holder has none */
    char profile[64];
    char expires[32];            /* the earliest active certificate's not_after */
    int days_left;               /* whole days from now to expires (negative: expired) */
    char previous[32];           /* when the holder was last told ("" never) */
    char id[96];                 /* renewal-JOB-PREVIOUS: the same until recorded */
};
typedef int (*cms_notice_cb)(void *arg, const struct cms_notice *n);

/* Step 2: the notices due at now, soonest expiry first. Read only: the
 * callback may not change the database (gather, send, then record). */
int cms_renewal_notices_due(struct cms_db *db, const char *now, cms_notice_cb cb, void *arg);
/* The notice went out through channels (text for the trail), or (reached
 * false) could not reach the holder at all, channels saying why: recorded
 * on the card's active certificates (notified: tried again after
 * notify-every-days) with an audit record. */
int cms_renewal_notified(struct cms_db *db, const struct cms_actor *by, const struct cms_notice *n, const char *now,
                         const char *channels, bool reached);

/* Step 3: temporary cards whose end has come by now and which still stand
 * in (ids in *ids, caller frees), earliest end first. */
int cms_temporaries_expired(struct cms_db *db, const char *now, int64_t **ids, size_t *n);

/* The holder's side, on the device (`tessera card renew`, src/tool/renew.c).
 * A renewal makes a new key on the card for each key of the card's profile
 * that has a certificate, gets and records a certificate for it and loads
 * it next to the old one (step "key:NAME" each); then (step "switched", the
 * point of no return) the old keys and certificates leave the card, the old
 * certificates are revoked as superseded, and the job is done. A renewal
 * killed before "switched" is rolled back by the next run (the new objects
 * removed, the new certificates revoked); one killed after it is finished.
 *
 * The card's open renewal taken by this process: a pending one starts (the
 * card must be active), a running one whose process is gone is handed back
 * as it was left (*interrupted; job->step says where). *certs_before: the
 * card's certificates up to this id are the ones being renewed, those after
 * it the new ones. CMS_NOTFOUND when the card has no renewal open;
 * CMS_STATE when another live process has it or the card is not active. */
int cms_renew_take(struct cms_db *db, const struct cms_card *card, struct cms_job *job, bool *interrupted,
                   int64_t *certs_before);
/* A certificate of the card revoked at the CA by the renewal (the old ones
 * superseded, or new ones rolled back or held with the card): its new state
 * recorded with an audit record, in one transaction; withdrawn: a new one
 * rolled back, never in use (cms_cert_withdraw). */
int cms_renew_cert_state(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, int64_t cert_id,
                         const char *serial, const char *key_name, const char *to, bool withdrawn);
/* The renewal done, with its audit record (detail). */
int cms_renew_finish(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *detail);
/* A renewal rolled back (the caller removed the new objects and revoked the
 * new certificates): to "running" (this process starts it again), "pending"
 * (the holder may try again) or "cancelled" (the card left use). */
int cms_renew_undone(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *to,
                     const char *detail);

#endif
