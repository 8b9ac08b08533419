/* Credential profiles: what a card of a kind receives. Versioned: importing
 * a changed file makes the next version, and a card remembers the version it
 * was issued to (reprovisioning moves it to the latest). Written as an INI
 * file (doc/examples/profile-staff.ini):
 *
 *   [profile]    name, description, card-types (tpm, piv)
 *   [pin]        min-length, max-length, digits/uppercase/lowercase/special
 *                (optional, mandatory, forbidden), tries, set-by (user, generated)
 *   [admin-key]  master-file or master-uri (the master key the card's admin
 *                key is diversified from), prf, alg
 *   [key NAME]   type (rsa2048, rsa3072, p256, p384), piv-slot (9a, 9c, 9d,
 *                9e), usage (sign, decrypt, or both), certificate (extended
 *                key usages: client-auth, email, smartcard-logon; or none),
 *                subject (/CN=${name}/... from holder attributes),
 *                lifetime-days, escrow (yes: made off the card and archived)
 *   [lifecycle]  renewal-window-days, notify-every-days (0: once), temporary-card-days */
#ifndef TESSERA_CMS_PROFILE_H
#define TESSERA_CMS_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "../kdf.h"
#include "../pin_policy.h"
#include "db.h"
#include "roles.h"

#define CMS_CARD_TPM 1u
#define CMS_CARD_PIV 2u
#define CMS_PROFILE_MAX_KEYS 4

enum cms_eku { CMS_EKU_CLIENT_AUTH = 1, CMS_EKU_EMAIL = 2, CMS_EKU_SMARTCARD_LOGON = 4 };

struct cms_key_spec {
    char name[32];
    char type[16];             /* rsa2048, rsa3072, p256, p384 */
    uint8_t piv_slot;          /* 0x9a ...; 0 when the profile is for TPM cards only */
    bool sign, decrypt;
    unsigned eku;              /* 0: no certificate */
    char subject[256];         /* template */
    int lifetime_days;
    bool escrow;
};

struct cms_profile {
    int64_t id;
    char name[64];
    int version;
    char description[128];
    unsigned card_types;
    struct tess_pin_policy pin;
    int pin_tries;
    bool pin_generated;
    char master_file[512];
    char master_uri[512];
    enum tess_prf prf;
    enum tess_key_alg alg;
    struct cms_key_spec keys[CMS_PROFILE_MAX_KEYS];
    int nkeys;
    int renewal_window_days;
    int notify_every_days;
    int temporary_days;
};

struct cms_holder;
/* A key's subject for a holder: each ${attribute} of the template replaced
 * by the holder's value (a value may hold '/' or '='); NULL with the
 * missing attribute named in err. */
X509_NAME *cms_subject_build(const char *tmpl, const struct cms_holder *h, char *err, size_t errlen);

/* Parse a profile's text; CMS_INVALID with "line N: ..." in err. */
int cms_profile_parse(const char *text, struct cms_profile *p, char *err, size_t errlen);
/* The canonical text of a profile (what is stored and hashed); caller frees. */
char *cms_profile_format(const struct cms_profile *p);

/* Import the file: a new profile (version 1), the next version of a
 * changed one, or nothing when it is unchanged (*version = the latest). */
int cms_profile_import(struct cms_db *db, const struct cms_actor *by, const char *path, int *version,
                       bool *unchanged);
/* A profile by name and version (0: the latest). */
int cms_profile_get(struct cms_db *db, const char *name, int version, struct cms_profile *p);
typedef int (*cms_profile_cb)(void *arg, const char *name, int version, const char *created, const char *by);
/* Every version of every profile, by name then version. */
int cms_profile_list(struct cms_db *db, cms_profile_cb cb, void *arg);

#endif
