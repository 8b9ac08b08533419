/* Jobs that wait for a time: PIN locks scheduled for a date and time in a
 * named timezone, the relock that ends a time-limited unlock, and the
 * due-job scan that finds what is due.
 *
 * A lock job is pending with its due time in UTC (the local time and zone
 * it was asked in are kept in its params, for people). `tessera agent`, run
 * on the device at any interval, takes each due job of its cards: running
 * and owned by it, the card's user PIN locked through the management
 * interface by a challenge answered with its diversified admin key, then
 * the card `locked` and the job done in one transaction. Locking is
 * idempotent, so an agent killed in between is finished by its next run.
 * A card has at most one pending lock; it can be moved or cancelled until
 * an agent takes it. */
#ifndef TESSERA_CMS_SCHEDULE_H
#define TESSERA_CMS_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "cards.h"
#include "db.h"
#include "roles.h"

/* "YYYY-MM-DD HH:MM[:SS]" read as a wall-clock time in the IANA zone tz
 * (e.g. Europe/Berlin; "UTC"), as UTC in the stored form (cms_now). A time
 * the zone skips (clocks going forward) is CMS_INVALID; one it repeats
 * (clocks going back) is the first of the two. An unknown zone is
 * CMS_INVALID. */
int cms_local_to_utc(struct cms_db *db, const char *local, const char *tz, char utc[32]);

/* Ask for the card's user PIN to be locked at due (UTC, stored form; NULL:
 * at the agent's next run), asked as local in tz (both for the record; may
 * be NULL). The card must be a TPM card in use (active); CMS_STATE when it
 * has a pending lock already (db->err names it). */
int cms_lock_request(struct cms_db *db, const struct cms_actor *by, const struct cms_card *card, const char *due,
                     const char *local, const char *tz, const char *note, int64_t *job_id);
/* A pending lock to another time, or cancelled. CMS_STATE once an agent
 * took it (running) or it is over. */
int cms_lock_move(struct cms_db *db, const struct cms_actor *by, int64_t job_id, const char *due, const char *local,
                  const char *tz);
int cms_lock_cancel(struct cms_db *db, const struct cms_actor *by, int64_t job_id, const char *note);

/* The due-job scan: pending jobs whose due time has come (now NULL: the
 * current time), of cards bound to device (NULL: any device), oldest due
 * first. The callback may not change the database (collect what is due,
 * then act). */
int cms_jobs_due(struct cms_db *db, const char *device, const char *now, cms_job_cb cb, void *arg);

/* The agent's side of a lock job: taken (running, this process; or an
 * interrupted one whose process is gone), then done with the card locked
 * (locked false: the card is not on this device any more — the job fails
 * and the card is left as it is), in one transaction with its audit record.
 * CMS_STATE when the job is not due, not a lock, or another live process
 * has it. */
int cms_lock_take(struct cms_db *db, const char *agent, int64_t job_id, struct cms_job *job, struct cms_card *card);
int cms_lock_done(struct cms_db *db, const char *agent, const struct cms_job *job, const struct cms_card *card,
                  bool locked, const char *why);

/* Interrupted lock jobs of device (running, their process gone), for the
 * agent to finish first. */
int cms_locks_interrupted(struct cms_db *db, const char *device, cms_job_cb cb, void *arg);

/* A helpdesk unlock: the card (locked, or active with its PIN blocked by
 * wrong tries) is active again once its holder types the response the
 * tool computed; any pending lock is cancelled, and with hours > 0 a new
 * one is due then (its id in *relock_job, else 0). */
int cms_card_unlock(struct cms_db *db, const struct cms_actor *by, const struct cms_card *card, int hours,
                    const char *note, int64_t *relock_job);

#endif
