/* The tessera tool's shared pieces: exit codes, output, secrets, and the
 * verbs each file provides. */
#ifndef TESSERA_TOOL_H
#define TESSERA_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
/* The key for the card with this serial, into key (32 bytes). */
int tool_key_source_key(const struct tool_key_source *ks, const char *serial, uint8_t *key, size_t *len);

/* hsm.c: a card's key diversified from a master key inside an HSM. */
int tool_hsm_diversify(const struct tool_key_source *ks, const char *serial, uint8_t *key, size_t *len);

/* client.c: the tool as a client of the module's interfaces. */
struct tool_p11 {
    CK_FUNCTION_LIST *f;
    CK_TESSERA_FUNCTION_LIST *t;
    bool initialized;
};
int tool_p11_open(struct tool_p11 *p);
void tool_p11_close(struct tool_p11 *p);
/* The card named by slot id (slot >= 0) or serial; its info when found. */
int tool_p11_find(struct tool_p11 *p, long slot, const char *serial, CK_SLOT_ID *out, CK_TESSERA_CARD_INFO *info);
/* The card's serial from its info, unpadded. */
void tool_card_serial(const CK_TESSERA_CARD_INFO *info, char *out, size_t outlen);
const char *tool_rv_text(CK_RV rv);
/* Log the SO in on a new R/W session on slot and set the admin key. */
int tool_set_admin_key_as_so(struct tool_p11 *p, CK_SLOT_ID slot, const char *so_pin, const struct tool_key_source *ks,
                             const char *serial);

/* admin.c: admin keys, unblock, card information. */
int cmd_admin_key_derive(int argc, char **argv);
int cmd_admin_key_set(int argc, char **argv);
int cmd_admin_key_rotate(int argc, char **argv);
int cmd_unblock_challenge(int argc, char **argv);
int cmd_unblock_response(int argc, char **argv);
int cmd_unblock_complete(int argc, char **argv);
int cmd_card_info(int argc, char **argv);

#endif
