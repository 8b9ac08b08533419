/* Enrolments in flight: a certificate request about to go to the CA is
 * recorded first (the card, the key's name, the CA, the SHA-256 of the
 * request's public key as DER SubjectPublicKeyInfo, as OpenSSL encodes
 * it; the process), and recording the certificate closes it in the
 * same transaction (cms_cert_record). A process killed between the CA's
 * answer and that record leaves a certificate the CA issued and the
 * database does not have; the open enrolment is how the undo finds it.
 *
 * Settling a card's open enrolments (a collect undone, a renewal rolled
 * back, a card ended by a change), but for those whose process still runs
 * (a renewal under way: it settles its own, or records its certificate):
 * every certificate the CA issued for one
 * of those keys that the database does not know is revoked and audited
 * (cert.revoke, "issued but never recorded"). A CA that cannot be searched
 * by key (cfssl) or another CA than the enrolment's: audited as
 * cert.unrecorded, result "unchecked", with the key's hash, for an operator
 * to look up at the CA. Either way the enrolment is closed. */
#ifndef TESSERA_CMS_ENROLMENT_H
#define TESSERA_CMS_ENROLMENT_H

#include <openssl/x509.h>

#include "ca.h"
#include "cards.h"
#include "db.h"

/* Record the request about to go to ca_name for the card's key, in a
 * transaction of its own; its id in *id. */
int cms_enrolment_begin(struct cms_db *db, const struct cms_card *card, const char *key_name, const char *ca_name,
                        X509_REQ *csr, int64_t *id);

/* The CA answered that it issued nothing valid (cms_ca.none_valid): the
 * enrolment is closed without a certificate. */
int cms_enrolment_drop(struct cms_db *db, int64_t id);

/* Close an enrolment in the caller's transaction: its certificate x is
 * being recorded. */
int cms_enrolment_end(struct cms_db *db, const struct cms_card *card, X509 *x);

struct cms_enrolments_settled {
    int revoked;       /* certificates found at the CA and revoked */
    int unchecked;     /* enrolments the CA could not be asked about */
    int live;          /* left alone: their process still runs (a renewal) */
};

/* Settle the card's open enrolments (ca may be NULL: none reachable, each
 * unchecked); who is the actor of the audit records, reason the CRL reason
 * (CMS_REVOKE_*). Each enrolment in a transaction of its own, after its
 * revocations, so a process killed meanwhile settles it again. */
int cms_enrolments_settle(struct cms_db *db, struct cms_ca *ca, const struct cms_card *card, const char *who,
                          int reason, struct cms_enrolments_settled *out);

#endif
