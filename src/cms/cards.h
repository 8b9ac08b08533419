/* Cards, their certificates, and the issuance job: the database side of
 * request and collect. An issuer requests a card for a holder (optionally
 * for one named device); that makes a card in state "requested" and an
 * "issue" job with a single-use collection code, which the holder types on
 * the device to collect the card. The card side of collecting (making the
 * card, keys, certificates) is the tool's (src/tool/collect.c); each of its
 * steps is recorded here before it touches the card, so a process killed
 * at any point leaves a job that the next collect rolls back and redoes.
 *
 * Collection codes: 20 characters of Crockford's base32 (100 bits) read as
 * XXXXX-XXXXX-XXXXX-XXXXX; the first group finds the job, the whole code
 * is checked against a salted SHA-256 in constant time. Five wrong codes
 * void it (the job fails, the card is cancelled); a code expires after the
 * days the request gave; it is gone once the card is collected. */
#ifndef TESSERA_CMS_CARDS_H
#define TESSERA_CMS_CARDS_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "db.h"
#include "roles.h"

#define CMS_CODE_LEN 24              /* 20 characters and 3 dashes, and the NUL */
/* A fresh code of 100 random bits as collection codes are written: 20
 * Crockford base32 characters in groups of five (also the one-time
 * password of a recovered key's PKCS#12). */
int cms_code_random(char code[CMS_CODE_LEN]);
#define CMS_CODE_TRIES 5

struct cms_card {
    int64_t id;
    char type[8];                    /* tpm, piv */
    char serial[40];                 /* "" until collect chooses it */
    char state[16];
    char holder[128];                /* uid */
    char device[256];                /* "" when any */
    char profile[64];
    int profile_version;
    char created[32], updated[32];
    bool temporary;                  /* a temporary replacement, until expires */
    char expires[32];                /* "" when not temporary */
    int64_t replaces;                /* the card this one replaces (0: none) */
};

struct cms_job {
    int64_t id;
    char kind[16];                   /* issue, or a change (lifecycle.h) */
    char state[16];                  /* pending, running, done, failed, cancelled */
    char step[64];                   /* the last step recorded ("" before any) */
    int64_t card_id;
    char created_by[128];
    char code_expires[32];
    char created[32], updated[32];
    char error[256];
    char due[32];                    /* when a scheduled job is due ("" when not scheduled) */
};

/* A machine that holds TPM cards, by its full name (any case): recorded
 * with its audit record; CMS_EXISTS when known already. */
int cms_device_add(struct cms_db *db, const struct cms_actor *by, const char *name);
typedef int (*cms_device_cb)(void *arg, const char *name, const char *created, int cards);
/* Every device, by name, with how many cards are bound to it. */
int cms_device_list(struct cms_db *db, cms_device_cb cb, void *arg);

/* What an issuer asks for: a card of profile (its latest version) for the
 * holder; type "tpm" or "piv" (NULL: the profile's only type, else an
 * error); device NULL for any. A replacement names the card it replaces;
 * a temporary one lives temporary_days (and its code no longer). */
struct cms_request {
    const char *holder;              /* uid */
    const char *profile;
    const char *type;
    const char *device;
    int valid_days;                  /* of the collection code */
    int64_t replaces;
    int temporary_days;              /* 0: not temporary */
};

/* The card and its issue job; the collection code (CMS_CODE_LEN bytes) is
 * shown once and not kept. */
int cms_card_request(struct cms_db *db, const struct cms_actor *by, const struct cms_request *r,
                     char code[CMS_CODE_LEN], int64_t *card_id, int64_t *job_id);
/* The same inside the caller's transaction (a replacement, lifecycle.c). */
int cms_card_request_in(struct cms_db *db, const struct cms_actor *by, const struct cms_request *r,
                        char code[CMS_CODE_LEN], int64_t *card_id, int64_t *job_id);

/* Many requests, all or none, in one transaction: codes[i], card_ids[i]
 * and job_ids[i] for reqs[i]; the first that fails is named in db->err
 * (by its place, from 1) and nothing is kept. */
int cms_card_request_batch(struct cms_db *db, const struct cms_actor *by, const struct cms_request *reqs, size_t n,
                           char (*codes)[CMS_CODE_LEN], int64_t *card_ids, int64_t *job_ids);

/* A new collection code for a requested card (the holder lost the first,
 * or it expired): the old one is void, the wrong tries start again. */
int cms_card_new_code(struct cms_db *db, const struct cms_actor *by, int64_t card_id, int valid_days,
                      char code[CMS_CODE_LEN]);

/* The holder's side: the job the code opens, run on the device named
 * `device` (this machine's full name). A pending job starts running; a
 * running one (a collect killed before) is handed back as it was left, for
 * the caller to roll back. A wrong code counts (CMS_DENIED); an expired or
 * void one is CMS_STATE; a device other than the requested one, CMS_DENIED. */
int cms_collect_claim(struct cms_db *db, const char *code, const char *device, struct cms_job *job,
                      struct cms_card *card);

/* Record that the job reached step (and the card's serial when given),
 * with an audit record when action is not NULL. */
int cms_job_step(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *step,
                 const char *serial, const char *action, const char *detail);

/* A certificate the CA issued to the card, recorded before it is loaded;
 * with the archive of its key when the key is escrowed (escrow.h); it
 * closes the enrolment of its key (enrolment.h). CMS_STATE when the card
 * was ended (revoked, erased, cancelled) since. */
struct cms_escrow_archive;
int cms_cert_record(struct cms_db *db, const struct cms_card *card, const char *key_name, const char *ca_name,
                    X509 *x, const struct cms_escrow_archive *escrow);
/* The card's certificates that are not revoked: serial and CA name of each. */
typedef int (*cms_cert_cb)(void *arg, int64_t id, const char *ca, const char *serial, const char *key_name,
                           const char *state);
int cms_card_certs(struct cms_db *db, int64_t card_id, cms_cert_cb cb, void *arg);
/* Revoked (the caller did so at the CA) before it was ever in use: an undone
 * collect's, a rolled-back renewal's (cms_renew_cert_state). Withdrawn
 * certificates are never handed out with a recovered key. */
int cms_cert_withdraw(struct cms_db *db, int64_t cert_id);
/* A recorded certificate (X509_free). */
int cms_cert_get(struct cms_db *db, int64_t cert_id, X509 **out);

/* The card is made: active, the job done and its code gone. */
int cms_collect_finish(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *detail);
/* A collect that failed on the card: the job stays running for the next
 * collect to roll back; the failure is audited. */
int cms_collect_failed(struct cms_db *db, const struct cms_job *job, const struct cms_card *card, const char *why);

/* What a failed or killed collect did is undone (the caller erased the
 * card and revoked its certificates): the card forgets its serial, and the
 * job goes back to pending (pending = true: the holder may try again) or
 * to its first step (a collect taking it up again). */
int cms_collect_undone(struct cms_db *db, struct cms_job *job, const struct cms_card *card, bool pending,
                       const char *detail);

int cms_card_get(struct cms_db *db, int64_t id, const char *serial, struct cms_card *card);
typedef int (*cms_card_cb)(void *arg, const struct cms_card *card);
/* Cards of a holder (NULL: all), newest first. */
int cms_card_list(struct cms_db *db, const char *holder_uid, cms_card_cb cb, void *arg);
typedef int (*cms_job_cb)(void *arg, const struct cms_job *job, const struct cms_card *card);
/* Jobs in a state (NULL: all), oldest first. */
int cms_job_list(struct cms_db *db, const char *state, cms_job_cb cb, void *arg);
/* Jobs with their cards, chosen by where (SQL after the joins of jobs j,
 * cards c, holders h, profiles p and devices d: "WHERE ... ORDER BY ...")
 * with ?1 = a and ?2 = b (text, when not NULL). */
int cms_job_select(struct cms_db *db, const char *where, const char *a, const char *b, cms_job_cb cb, void *arg);

/* Who collects, in the trail: "holder:UID". */
void cms_holder_actor(const struct cms_card *card, char *out, size_t outlen);

/* An audit record about the card (its holder, serial and device). */
int cms_card_audit(struct cms_db *db, const char *who, const char *action, const char *result,
                   const struct cms_card *card, const char *detail);
/* This process as a job's owner: host, pid and the pid's start time (a pid
 * used again by another process does not look like the owner). */
void cms_owner_self(char *out, size_t outlen);
/* The same for another process of this host (how the tests name a live one). */
void cms_owner_of(long pid, char *out, size_t outlen);
/* Is the process an owner names still running on this host? */
bool cms_owner_alive(const char *owner);

#endif
