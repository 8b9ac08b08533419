/* The CA connector: how card management gets certificates issued and
 * revoked, whatever the CA is. The lifecycle code speaks only to this
 * table; behind it are the embedded CA (ca_local.c: OpenSSL, its key and
 * register beside the database) and, later, CA servers over their own
 * protocols: cfssl's REST API (ca_cfssl.c) and, later, CMP, EST, a
 * Microsoft or Entrust gateway.
 *
 * Which CA a database uses is in its meta table ("ca.kind", and what that
 * kind needs), set by `tessera ca init` (the embedded one) or `tessera ca
 * connect`. Every operation may be repeated: enrolling twice makes two
 * certificates (the lifecycle records each before it is loaded), revoking
 * a revoked certificate succeeds, so a job killed half-way can redo its
 * step. */
#ifndef TESSERA_CMS_CA_H
#define TESSERA_CMS_CA_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "db.h"
#include "roles.h"

/* What the lifecycle asks for: the request the card signed with its new
 * key, and what the profile and holder say the certificate carries. */
struct cms_cert_request {
    X509_REQ *csr;                   /* its signature is checked by the CA */
    const X509_NAME *subject;        /* the profile's subject for the holder */
    int lifetime_days;
    unsigned eku;                    /* CMS_EKU_* (profile.h) */
    bool sign, decrypt;              /* key usage */
    const char *email;               /* rfc822Name in the alternative name (NULL: none) */
    const char *upn;                 /* Microsoft UPN otherName, for smart-card logon (NULL: none) */
};

/* RFC 5280 CRLReason values the lifecycle uses. */
enum cms_revoke_reason {
    CMS_REVOKE_UNSPECIFIED = 0,
    CMS_REVOKE_KEY_COMPROMISE = 1,   /* lost or stolen */
    CMS_REVOKE_SUPERSEDED = 4,       /* renewed, replaced */
    CMS_REVOKE_CESSATION = 5,        /* cancelled, erased */
    CMS_REVOKE_HOLD = 6,             /* suspended: may come back */
};

struct cms_ca;

struct cms_ca_ops {
    const char *kind;
    /* Can revoke(-1) lift a hold? When it cannot, the tool's changes
     * (src/tool/cms_change.c) refuse to suspend (a suspended card could
     * never come back) and to enable a card with held certificates. */
    bool lifts_hold;
    /* A certificate for the request (CMS_INVALID when the request does not
     * verify or the CA refuses it). Failed, it sets none_valid when the CA
     * certainly holds no valid certificate from it (refused, never reached,
     * or what it gave revoked at once); else the CA may have issued one
     * (an answer lost) and the enrolment stays open (enrolment.h). */
    int (*enroll)(struct cms_ca *ca, const struct cms_cert_request *req, X509 **out);
    /* Revoke by serial (hexadecimal, as cms_ca_serial gives it); a
     * revoked certificate stays revoked (CMS_OK again), except that a hold
     * is lifted by reason -1. */
    int (*revoke)(struct cms_ca *ca, const char *serial, int reason);
    /* Every certificate this CA issued for a public key (key_sha256 as
     * cms_key_sha256 gives it), newest first, serial each; NULL when the CA
     * cannot be searched so (cfssl's API finds certificates by serial
     * only). How a certificate issued to a process killed before it was
     * recorded is found (enrolment.h). */
    int (*find_by_key)(struct cms_ca *ca, const char *key_sha256,
                       int (*cb)(void *arg, const char *serial), void *arg);
    /* The CA's current CRL (the embedded CA makes and publishes a new one). */
    int (*crl)(struct cms_ca *ca, X509_CRL **out);
    /* The CA's own certificate (caller frees). */
    int (*certificate)(struct cms_ca *ca, X509 **out);
    void (*close)(struct cms_ca *ca);
};

struct cms_ca {
    const struct cms_ca_ops *ops;
    char name[128];                  /* recorded with each certificate: "local:CN=..." */
    char err[512];
    bool none_valid;                 /* after a failed enroll (see enroll) */
    void *impl;
};

/* The CA the database is set up to use (CMS_NOTFOUND: none yet; the
 * message says how to make one). */
int cms_ca_open(struct cms_db *db, struct cms_ca **out);
void cms_ca_close(struct cms_ca *ca);
int cms_ca_fail(struct cms_ca *ca, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A certificate's serial as the connector names it: upper-case hex. */
void cms_ca_serial(const X509 *x, char *out, size_t outlen);

/* The embedded CA: a new key and self-signed certificate beside the
 * database (TESSERA_HOME/ca/), and the database set to use it. subject as
 * "/CN=.../O=..."; key type p256, p384, rsa3072 or rsa4096; crl_url (NULL:
 * none) goes into each certificate's CRL distribution point. */
int cms_ca_local_create(struct cms_db *db, const struct cms_actor *by, const char *subject, const char *key_type,
                        int days, const char *crl_url, char *err, size_t errlen);
int cms_ca_local_open(struct cms_db *db, struct cms_ca **out);
/* Where the embedded CA keeps its files, and publishes its CRL (crl.pem). */
void cms_ca_local_dir(const struct cms_db *db, char *out, size_t outlen);

/* cfssl (`cfssl serve`) as the CA: where it is, which of its signing
 * profiles to use (comma-separated; NULL or "": its default), the file
 * holding its auth key in hex (NULL: none, /sign instead of /authsign),
 * where its CRL is published (NULL: none), the certificates its https
 * must chain to (NULL: the system's), a multirootca label (NULL: none),
 * the client certificate and key (PEM; the key 0600) for mutual TLS.
 * Connecting fetches and keeps the CA's certificate; summary says what
 * was found (the CA, its fingerprint, each profile's lifetime and usages). */
struct cms_cfssl_settings {
    const char *url, *profiles, *auth_key_file, *crl_url, *tls_ca_file, *label;
    const char *tls_client_cert, *tls_client_key;   /* mutual TLS (cfssl serve -mutual-tls-ca) */
};
int cms_ca_cfssl_connect(struct cms_db *db, const struct cms_actor *by, const struct cms_cfssl_settings *s,
                         char *summary, size_t summarylen, char *err, size_t errlen);
int cms_ca_cfssl_open(struct cms_db *db, struct cms_ca **out);

/* SHA-256 of a public key's SubjectPublicKeyInfo, in lower-case hex
 * (-1 when it cannot be encoded). */
int cms_key_sha256(const EVP_PKEY *key, char out[65]);

/* A certificate time as the database keeps times: "2027-11-22T06:22:13Z". */
int cms_asn1_time_text(const ASN1_TIME *t, char out[32]);

/* "/CN=Jane Doe/O=Example" into a name (NULL when it does not parse). */
X509_NAME *cms_parse_dn(const char *text);

#endif
