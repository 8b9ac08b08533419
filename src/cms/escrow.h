/* Key escrow: encryption keys that must stay recoverable (a profile key
 * with `escrow = yes`) are made off the card, archived encrypted to an
 * escrow key, then loaded to the card; a key-recovery officer can later
 * open the archive for a replacement card or as a PKCS#12.
 *
 * An archive is CMS EnvelopedData (RFC 5652): the key as PKCS#8, under
 * AES-256-CBC with a fresh content key, that key encrypted to the escrow
 * key's certificate with RSAES-OAEP (RFC 8017, RFC 4055), SHA-256 and
 * MGF1-SHA-256 — or SHA-1 for an escrow key in an HSM that does OAEP only
 * with SHA-1 (SoftHSM 2.6), which OAEP's security allows. So `openssl cms
 * -decrypt` opens one too: archives outlive Tessera. The database holds only escrow keys' certificates; their
 * private halves stay in a file or an HSM kept by the key-recovery
 * officers, never on an issuing device. An opened archive is believed only
 * when its key is the one its certificate certifies (a changed archive
 * shows). */
#ifndef TESSERA_CMS_ESCROW_H
#define TESSERA_CMS_ESCROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "db.h"
#include "roles.h"

/* ---- escrow keys ---- */

struct cms_escrow_key {
    int64_t id;
    char name[64];
    char fingerprint[65];       /* SHA-256 of the public key (SubjectPublicKeyInfo), hex */
    char kept[16];              /* where its private half was made: file, hsm, elsewhere */
    char oaep[8];               /* the OAEP hash archives to it use: sha256, sha1 */
    char created[32];
    char created_by[128];
    bool current;               /* the one new archives are made for */
};

/* Record an escrow key by its certificate (an RSA key of 2048 bits or more)
 * and the OAEP hash it takes ("sha256", "sha1"), and make it the current
 * one; audited. */
int cms_escrow_key_add(struct cms_db *db, const struct cms_actor *by, const char *name, X509 *cert,
                       const char *kept, const char *oaep);
/* The current escrow key (CMS_NOTFOUND when none) and its OAEP hash;
 * caller frees *cert. */
int cms_escrow_key_current(struct cms_db *db, int64_t *id, X509 **cert, const EVP_MD **oaep);
typedef int (*cms_escrow_key_cb)(void *arg, const struct cms_escrow_key *k);
int cms_escrow_key_list(struct cms_db *db, cms_escrow_key_cb cb, void *arg);
/* The SHA-256 hex of a certificate's public key. */
int cms_escrow_fingerprint(X509 *cert, char out[65]);

/* ---- archives ---- */

/* Seal key to the escrow certificate: the archive in *der (OPENSSL_free). */
int cms_escrow_seal(X509 *escrow_cert, const EVP_MD *oaep, EVP_PKEY *key, unsigned char **der, size_t *len,
                    char *err, size_t errlen);
/* Open an archive with the escrow private key in memory: the key in *key,
 * checked whole (EVP_PKEY_check) and against cert (the certificate the
 * archived key was issued): CMS_TAMPERED when it is not. */
int cms_escrow_open(const unsigned char *der, size_t len, EVP_PKEY *escrow_key, X509 *cert, EVP_PKEY **key,
                    char *err, size_t errlen);
/* The same when the escrow key cannot leave its HSM: unwrap decrypts the
 * content key there (RSAES-OAEP with hash_nid, NID_sha256 or NID_sha1, for
 * the hash and MGF1); the rest is done here. */
typedef int (*cms_escrow_unwrap_fn)(void *arg, int hash_nid, const unsigned char *wrapped, size_t wrapped_len,
                                    unsigned char *cek, size_t *cek_len);
int cms_escrow_open_unwrap(const unsigned char *der, size_t len, cms_escrow_unwrap_fn unwrap, void *arg, X509 *cert,
                           EVP_PKEY **key, char *err, size_t errlen);

/* An archive to record with the certificate it belongs to (cms_cert_record). */
struct cms_escrow_archive {
    int64_t escrow_key_id;
    const unsigned char *der;
    size_t len;
};
/* Inside the caller's transaction: the archive of certificate cert_id. */
int cms_escrow_insert(struct cms_db *db, int64_t cert_id, const struct cms_escrow_archive *a);

/* An archived key, as the officers see it. */
struct cms_escrowed {
    int64_t id, card_id, holder_id, escrow_key_id;
    char holder[128];           /* uid */
    char card_serial[40];
    char card_state[16];
    char key_name[64];
    char cert_serial[80];
    char cert_state[16];
    char not_after[32];
    char escrow_key[64];
    char created[32];
};
typedef int (*cms_escrowed_cb)(void *arg, const struct cms_escrowed *e);
/* The archives of one card (card_id) or of one holder's cards (holder uid),
 * newest first. */
int cms_escrowed_list(struct cms_db *db, int64_t card_id, const char *holder, cms_escrowed_cb cb, void *arg);
/* One archive with its bytes (caller frees with OPENSSL_free) and the
 * newest certificate recorded for its key (caller frees): the one it was
 * archived with, or one a PIV card's in-place renewal issued for the same
 * key since and did not roll back (e names that one too). */
int cms_escrowed_get(struct cms_db *db, int64_t id, struct cms_escrowed *e, unsigned char **der, size_t *len,
                     X509 **cert);
/* A recovery (to = "pkcs12 FILE" or "card SERIAL") in the trail: recorded
 * as "ok" before the key is handed out, and again with a "failed: ..."
 * result when it could not be. */
int cms_escrow_recovered(struct cms_db *db, const struct cms_actor *by, const struct cms_escrowed *e, const char *to,
                         const char *result);

#endif
