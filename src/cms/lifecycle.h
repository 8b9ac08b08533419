/* What happens to a card after it is requested: suspend and enable, cancel,
 * replace (lost, stolen, damaged, forgotten), erase and reprovision. Each
 * change is one row of a table (lifecycle.c) that says which card states it
 * may start from (its guard), which role may make it (roles.c, by its
 * action), what it does to the card's certificates at the CA, the state the
 * card ends in, and whether it erases the card itself or requests another.
 *
 * A change is a job, recorded before anything is done: begin (guard checked,
 * job running, owned by this process), then each certificate at the CA, one
 * at a time and each recorded as done, then (erase, reprovision) the card
 * erased on its device by the tool, then finish (the card's new state, the
 * job done, a replacement requested) in one transaction. The CA's operations
 * repeat safely, so a change killed at any point is finished, not undone, by
 * whoever next takes its job up: a later change of the same card, or
 * `tessera job resume`. */
#ifndef TESSERA_CMS_LIFECYCLE_H
#define TESSERA_CMS_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "ca.h"
#include "cards.h"
#include "db.h"
#include "roles.h"

enum cms_replacement {
    CMS_REPLACE_NONE,
    CMS_REPLACE_CARD,        /* a new card for the holder (lost, stolen, damaged) */
    CMS_REPLACE_TEMPORARY,   /* a temporary card while the original is suspended (forgotten) */
    CMS_REPLACE_REISSUE,     /* the same kind of card on the same device, to the latest profile */
};

/* States in which a temporary card still stands in for its original (SQL). */
#define CMS_TEMPORARY_LIVE "('requested','issued','active','suspended','locked')"

#define CMS_CERTS_KEEP (-2)  /* a change that leaves certificates as they are */
#define CMS_HOLD_LIFT (-1)   /* the CA lifts a hold (cms_ca_ops.revoke) */

struct cms_change {
    const char *name;        /* suspend, enable, cancel, lost, stolen, damaged, forgotten, erase, reprovision,
                                expire (a temporary card) */
    const char *action;      /* what roles.c and the trail call it */
    const char *from;        /* the card states it may start from, space-separated */
    const char *to;          /* the state it leaves the card in */
    const char *certs_from;  /* the certificate states it acts on, space-separated */
    int reason;              /* CMS_REVOKE_*, CMS_HOLD_LIFT or CMS_CERTS_KEEP */
    const char *certs_to;
    bool erases;             /* the card itself is erased, on its device */
    enum cms_replacement replace;
};

/* The change of that name (NULL when there is none). */
const struct cms_change *cms_change_find(const char *name);

/* What the operator said: a note for the trail, and for a replacement its
 * type (NULL: the original's), device (NULL: any, or the original's for a
 * reissue) and how long its collection code is good. */
struct cms_change_args {
    const char *note;
    const char *type;
    const char *device;
    int valid_days;
};

/* Does the card's state allow the change? CMS_STATE with the reason in
 * db->err when not (the tool asks before it looks for the card; begin asks
 * again under the write lock). */
int cms_change_check(struct cms_db *db, const struct cms_change *ch, const struct cms_card *card);

/* Check the guard and record the change as a running job of this process.
 * CMS_STATE (with the reason in db->err) when the card's state does not
 * allow it, when a collect or another change of the card is under way, or
 * when an interrupted change must be finished first. */
int cms_change_begin(struct cms_db *db, const struct cms_actor *by, const struct cms_change *ch,
                     const struct cms_card *card, const struct cms_change_args *args, struct cms_job *job);

/* An interrupted change (its process gone): of card_id (job_id 0) or the job
 * job_id; taken over by this process, the card re-read. CMS_NOTFOUND when
 * there is none, CMS_STATE when its process is still running. */
int cms_change_take(struct cms_db *db, const struct cms_actor *by, int64_t card_id, int64_t job_id,
                    struct cms_job *job, struct cms_card *card);

/* The next certificate the change acts on, done at the CA and recorded
 * (with its audit record); *done when none is left. For enable that
 * includes the certificates of temporary cards standing in for the card,
 * which are revoked. */
int cms_change_next_cert(struct cms_db *db, struct cms_ca *ca, const struct cms_job *job,
                         const struct cms_card *card, bool *done);

/* The tool erased the card (erased false: it was not there any more, the
 * earlier run having erased it). */
int cms_change_erased(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, bool erased);

/* The card in its new state and the job done, in one transaction; a
 * replacement requested when the change makes one (its id in *new_card,
 * its collection code in code, shown once), else *new_card = 0. */
int cms_change_finish(struct cms_db *db, const struct cms_job *job, const struct cms_card *card,
                      char code[CMS_CODE_LEN], int64_t *new_card);

#endif
