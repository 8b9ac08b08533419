/* The audit trail: every operation appends one record carrying the hash of
 * the record before it, so an edited, removed or reordered record shows.
 * Records name the operator, the action, its result and the holder, card
 * and device it concerned, as text; never a PIN, key or collection code. */
#ifndef TESSERA_CMS_AUDIT_H
#define TESSERA_CMS_AUDIT_H

#include <stdint.h>

#include "db.h"

struct cms_audit_rec {
    int64_t id;
    char at[32];
    const char *operator;      /* who: an operator, or "holder:UID" collecting with a code */
    const char *action;        /* what: "holder.import", "card.request", ... */
    const char *result;        /* "ok", "denied", "failed: ..." */
    const char *holder;        /* holder uid, card serial, device name, or NULL */
    const char *card;
    const char *device;
    const char *detail;        /* free text: counts, profile and version, reasons */
};

/* Append rec (its id and at are filled) inside the caller's transaction. */
int cms_audit_append(struct cms_db *db, struct cms_audit_rec *rec);
/* Append in a transaction of its own: for refusals and failures recorded
 * after the step itself was rolled back. */
int cms_audit_record(struct cms_db *db, struct cms_audit_rec *rec);

struct cms_audit_check {
    int64_t records;           /* records read */
    int64_t bad_id;            /* first record that does not verify (0: none) */
    char reason[256];
    char head[80];             /* "ID HASH" of the last good record */
};
/* Walk the whole trail; CMS_TAMPERED with the first break in check. */
int cms_audit_verify(struct cms_db *db, struct cms_audit_check *check);

struct cms_audit_query {
    const char *holder, *card, *device, *operator, *action;
    const char *since, *until; /* UTC text bounds, inclusive / exclusive */
    int64_t limit;             /* 0: all */
};
typedef int (*cms_audit_cb)(void *arg, const struct cms_audit_rec *rec);
/* Records matching every given field, oldest first. */
int cms_audit_search(struct cms_db *db, const struct cms_audit_query *q, cms_audit_cb cb, void *arg);

#endif
