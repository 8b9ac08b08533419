/* The tessera tool's shared pieces: exit codes, output, secrets, and the
 * verbs each file provides. */
#ifndef TESSERA_TOOL_H
#define TESSERA_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/x509.h>

#include "../../pkcs11/pk11.h"
#include "../kdf.h"
#include "../settings.h"

/* Exit codes (documented in tessera(1)). */
enum {
    EX_OK = 0,
    EX_FAIL = 1,       /* anything not below */
    EX_USAGE = 2,      /* bad arguments, a mistyped code: nothing was tried */
    EX_NOTPM = 3,      /* no TPM reachable */
    EX_PIN = 4,        /* a PIN or response was wrong, or a new PIN refused by the policy */
    EX_NOTFOUND = 5,   /* no such card */
    EX_LOCKED = 6,     /* locked: PIN, unblock, no challenges left, no admin key */
    EX_DENIED = 7,     /* card management: the operator's roles do not allow it */
    EX_TAMPERED = 8,   /* card management: the audit trail does not verify */
    EX_STATE = 9,      /* card management: not allowed in the card's or job's state */
};

extern struct tess_settings tool_settings;
extern bool tool_json;

void tool_usage(FILE *f);
int tool_exit_for(CK_RV rv);
void tool_json_str(const char *s);
/* A secret from a file ('-' = standard input) or typed at the terminal. */
int tool_read_secret(const char *file, const char *prompt, char *out, size_t outlen);
/* Hex digits (spaces, colons, newlines ignored) into at most max bytes. */
int tool_unhex(const char *hex, uint8_t *out, size_t max, size_t *len);

/* Where an admin key comes from: --admin-key HEX|default, or a master key
 * (--master-file F, or --master-uri URI in an HSM) diversified by the
 * card's serial with --prf; of algorithm --alg. */
struct tool_key_source {
    const char *hex;
    bool use_default;
    const char *master_file;
    const char *master_uri;
    const char *hsm_module;      /* when the URI has no module-path */
    const char *hsm_pin_file;    /* when the URI has no pin-value or pin-source */
    enum tess_prf prf;
    enum tess_key_alg alg;
};
#define TOOL_KEY_SOURCE_INIT { NULL, false, NULL, NULL, NULL, NULL, TESS_PRF_CMAC_AES256, TESS_KEY_3DES }
bool tool_key_source_given(const struct tool_key_source *ks);
#define TOOL_KEY_SOURCE_OPTIONS                                                                                  \
    { "admin-key", required_argument, 0, 'k' }, { "master-file", required_argument, 0, 'm' },                 \
        { "master-uri", required_argument, 0, 'u' }, { "hsm-module", required_argument, 0, 'H' },             \
        { "hsm-pin-file", required_argument, 0, 'q' }, { "prf", required_argument, 0, 'p' },                  \
        { "alg", required_argument, 0, 'a' }
/* One of the key-source options above into ks: 0 taken, 1 bad value, -1 another option. */
int tool_key_source_opt(struct tool_key_source *ks, int c, const char *arg);
/* A challenge or response typed in (a phone code or hex) into len bytes. */
int tool_read_code(const char *text, const char *what, uint8_t *out, size_t len);
/* The key for the card with this serial, into key (32 bytes). */
int tool_key_source_key(const struct tool_key_source *ks, const char *serial, uint8_t *key, size_t *len);

/* hsm.c: a card's key diversified from a master key inside an HSM. */
int tool_hsm_diversify(const struct tool_key_source *ks, const char *serial, uint8_t *key, size_t *len);
/* A logged-in session (read-write when rw: to make keys) on the HSM token
 * a PKCS#11 URI (RFC 7512) names; module and pin_file when the URI names
 * none (else TESSERA_HSM_MODULE, the terminal). */
struct tool_hsm {
    CK_FUNCTION_LIST *f;
    CK_SESSION_HANDLE session;
    struct p11_kit_uri *uri;
    bool initialized;
};
int tool_hsm_open(struct tool_hsm *h, const char *uri, const char *module, const char *pin_file, bool rw);
void tool_hsm_close(struct tool_hsm *h);
/* The one object of class cls the URI's label and id name (*found: how
 * many matched, up to 2). */
int tool_hsm_find(struct tool_hsm *h, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out, CK_ULONG *found);
/* hsm_escrow.c: an escrow key made in the HSM (RSA-3072, sensitive, never
 * extractable; decryption only, once it signed its certification request
 * for subject), labelled label; and the unwrap of an archive's content
 * key there (a cms_escrow_unwrap_fn; arg: the struct tool_hsm, opened,
 * whose URI names the key). */
int tool_hsm_escrow_generate(struct tool_hsm *h, const char *label, const X509_NAME *subject, X509_REQ **csr);
int tool_hsm_escrow_unwrap(void *hsm, int hash_nid, const unsigned char *wrapped, size_t wrapped_len,
                           unsigned char *cek, size_t *cek_len);
/* Which OAEP hash the HSM's escrow key (of public key pub) decrypts with:
 * "sha256" when it can, else "sha1"; NULL when neither works. */
const char *tool_hsm_escrow_oaep(struct tool_hsm *h, EVP_PKEY *pub);

/* client.c: the tool as a client of the module's interfaces. */
struct tool_p11 {
    CK_FUNCTION_LIST *f;
    CK_TESSERA_FUNCTION_LIST *t;
    bool initialized;
};
int tool_p11_open(struct tool_p11 *p);
void tool_p11_close(struct tool_p11 *p);
/* --slot N | --serial S: which card a verb works on. */
struct tool_card_args {
    long slot;
    const char *serial;
};
#define TOOL_CARD_ARGS_INIT { -1, NULL }
#define TOOL_CARD_OPTIONS { "slot", required_argument, 0, 'n' }, { "serial", required_argument, 0, 's' }
/* One of the card options into ca: 0 taken, 1 bad value, -1 another option. */
int tool_card_opt(struct tool_card_args *ca, int c, const char *arg);
/* Initialise the module and find the card the arguments name. */
int tool_open_card(struct tool_p11 *p, const struct tool_card_args *ca, CK_SLOT_ID *slot, CK_TESSERA_CARD_INFO *info);
/* The card named by slot id (slot >= 0) or serial; its info when found. */
int tool_p11_find(struct tool_p11 *p, long slot, const char *serial, CK_SLOT_ID *out, CK_TESSERA_CARD_INFO *info);
/* The card's serial from its info, unpadded. */
void tool_card_serial(const CK_TESSERA_CARD_INFO *info, char *out, size_t outlen);
const char *tool_rv_text(CK_RV rv);
/* Say on stderr why `what` failed; the exit code for rv (EX_OK for CKR_OK). */
int tool_report(CK_RV rv, const char *what);
/* Log the SO in on a new R/W session on slot and set the admin key. */
int tool_set_admin_key_as_so(struct tool_p11 *p, CK_SLOT_ID slot, const char *so_pin, const struct tool_key_source *ks,
                             const char *serial);

/* Say msg (a usage line) on stderr; EX_USAGE. */
int tool_usage_error(const char *msg);
/* A card with its user logged in on a R/W session: the verbs that write
 * keys and certificates. The PIN (from --pin-file or the terminal) stays in
 * pin while the session is open, for a key that wants it again. */
struct tool_card_session {
    struct tool_p11 p;
    CK_TESSERA_CARD_INFO info;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE h;
    char pin[256];
};
int tool_card_login(struct tool_card_session *cs, const struct tool_card_args *ca, const char *pin_file);
/* Wipe the PIN, finalize the module (safe after a failed tool_card_login). */
void tool_card_logout(struct tool_card_session *cs);
struct tess_attrs;
/* Append one attribute of object o to a (skipped when the object has none). */
void tool_fetch_attr(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                     struct tess_attrs *a);
/* Objects of a class (and CKA_ID, when id is given); how many went to out. */
CK_ULONG tool_find_objects(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const uint8_t *id,
                           CK_ULONG idlen, CK_OBJECT_HANDLE *out, CK_ULONG max);
#define TOOL_MAX_ID 64
/* "WHAT: id HEX", or {"WHAT":"HEX"} with --json. */
void tool_print_id(const char *what, const uint8_t *id, CK_ULONG idlen);

/* certs.c, csr.c: certificates and keys onto a card. */
/* A certificate object on the card (unless it is there already). category:
 * 1 the holder's, 2 an authority's. */
CK_RV tool_store_cert(struct tool_p11 *p, CK_SESSION_HANDLE h, X509 *x, const uint8_t *id, CK_ULONG idlen,
                      const char *label, CK_ULONG category, CK_OBJECT_HANDLE *out);
/* CA certificates: category "authority", CKA_ID their subject key
 * identifier (so a chain can be found by the issuer's key id); a PIV card
 * has no place for them (said, not an error). */
int tool_load_ca_certs(struct tool_p11 *p, CK_SESSION_HANDLE h, const CK_TESSERA_CARD_INFO *info,
                       STACK_OF(X509) *cas);
/* A key pair made on the card: type rsa2048, rsa3072, p256 or p384; id NULL
 * lets the card choose (a PIV card: its 9A slot). */
CK_RV tool_generate_pair(struct tool_p11 *p, CK_SESSION_HANDLE h, const char *type, const uint8_t *id, CK_ULONG idlen,
                         const char *label, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);
/* A PKCS#10 request for the key pair, signed on the card (with pin again
 * for a key that wants it each time); verified before it is handed out. */
int tool_make_csr(struct tool_p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                  const X509_NAME *subject, const char *pin, X509_REQ **csr);
/* A private key (with its certificate and CA certificates, when given)
 * put on the card under id_opt (else the card's choice; a PIV card: 9D)
 * and label_opt (else the certificate's name); a key the card already
 * holds is completed, not copied again. say_id: print the id it got. */
/* The CKA_ID of the card's private key whose public key is pk (0: none). */
CK_ULONG tool_key_on_card(struct tool_p11 *p, CK_SESSION_HANDLE h, EVP_PKEY *pk, uint8_t id[TOOL_MAX_ID]);
int tool_import_key(struct tool_p11 *p, CK_SESSION_HANDLE h, const CK_TESSERA_CARD_INFO *info, EVP_PKEY *pk,
                    X509 *cert, STACK_OF(X509) *cas, const uint8_t *id_opt, size_t id_opt_len, const char *label_opt,
                    bool say_id);
int cmd_cert_load(int argc, char **argv);
int cmd_cert_import_ca(int argc, char **argv);
int cmd_key_import(int argc, char **argv);
int cmd_key_generate(int argc, char **argv);

/* admin.c: admin keys, unblock, card information. */
int cmd_admin_key_derive(int argc, char **argv);
int cmd_admin_key_set(int argc, char **argv);
int cmd_admin_key_rotate(int argc, char **argv);
int cmd_unblock_challenge(int argc, char **argv);
int cmd_unblock_response(int argc, char **argv);
int cmd_unblock_complete(int argc, char **argv);
int cmd_card_info(int argc, char **argv);
/* card.c */
int cmd_card_init(int argc, char **argv, bool vsc_create);
int cmd_card_erase(int argc, char **argv, bool vsc_delete);
/* The TPM's spare slot (want >= 0: that one), with TESSERA_SPARE_SLOT set
 * before the module was opened. */
int tool_find_spare(struct tool_p11 *p, long want, CK_SLOT_ID *out);
/* cms.c: card management (db, operator, holder, profile, audit); argv[0] is
 * the noun. -1 when noun and verb are not card-management ones. */
int cmd_cms(const char *noun, int argc, char **argv);

#endif
