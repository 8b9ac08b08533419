/* The virtual PIV card: persistent state, volatile security state, and the
 * interfaces between its parts (transport -> APDU layer -> PIV commands ->
 * crypto and state).
 */
#ifndef VPIV_CARD_H
#define VPIV_CARD_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "tlv.h"

/* Status words (ISO 7816-4, SP 800-73-4 part 2 section 5.6). */
#define SW_OK 0x9000
#define SW_MORE(n) (0x6100 | ((n) > 0xFF ? 0 : (n)))
#define SW_MEMORY 0x6581          /* state could not be written */
#define SW_WRONG_LENGTH 0x6700
#define SW_SECURITY 0x6982        /* security status not satisfied */
#define SW_BLOCKED 0x6983         /* authentication method blocked */
#define SW_CONDITIONS 0x6985      /* conditions of use not satisfied */
#define SW_WRONG_DATA 0x6A80
#define SW_NOT_FOUND 0x6A82       /* data object or application not found */
#define SW_NO_SPACE 0x6A84
#define SW_WRONG_P1P2 0x6A86
#define SW_REF_NOT_FOUND 0x6A88   /* referenced key or PIN not found */
#define SW_INS 0x6D00
#define SW_CLA 0x6E00
#define SW_UNKNOWN 0x6F00

/* Key references. */
#define REF_PIN 0x80
#define REF_PUK 0x81
#define SLOT_MGMT 0x9B
#define SLOT_AUTH 0x9A
#define SLOT_SIGN 0x9C
#define SLOT_KEYMGMT 0x9D
#define SLOT_CARDAUTH 0x9E
#define SLOT_RETIRED1 0x82
#define SLOT_RETIRED20 0x95
#define SLOT_ATTEST 0xF9

/* YubiKey key policies (IMPORT / GENERATE tags AA, AB; GET METADATA). */
#define PIN_POLICY_DEFAULT 0
#define PIN_POLICY_NEVER 1
#define PIN_POLICY_ONCE 2
#define PIN_POLICY_ALWAYS 3
#define TOUCH_POLICY_NEVER 1
#define ORIGIN_GENERATED 1
#define ORIGIN_IMPORTED 2

/* 9A 9C 9D 9E, the 20 retired key management slots, F9 (attestation). */
#define VPIV_NSLOTS 25

/* Card version reported by GET VERSION: a YubiKey 5.4.3 PIV applet, the
 * first with AES management keys and GET METADATA. */
#define VPIV_VERSION_MAJOR 5
#define VPIV_VERSION_MINOR 4
#define VPIV_VERSION_PATCH 3

/* Largest data object PUT DATA accepts (a YubiKey takes 3052 bytes; a
 * little more room lets tests store bigger certificates). */
#define VPIV_MAX_OBJECT 8192

struct vpiv_key {
    EVP_PKEY *pkey; /* NULL: empty slot */
    uint8_t alg;
    uint8_t origin;
    uint8_t pin_policy;
    uint8_t touch_policy;
};

struct vpiv_obj {
    uint32_t tag; /* 0x7E, 0x7F61, 0x5FC1xx, 0x5FFFxx */
    uint8_t *data; /* the value inside the 53 (or 7E / 7F61) template */
    size_t len;
    struct vpiv_obj *next;
};

/* Everything that survives a power cycle: kept in the state folder. */
struct vpiv_state {
    uint32_t serial;
    uint8_t pin[8]; /* padded with FF, as VERIFY sends it */
    uint8_t puk[8];
    uint8_t pin_max, pin_left;
    uint8_t puk_max, puk_left;
    uint8_t mgmt_alg;
    uint8_t mgmt_key[32];
    struct vpiv_key keys[VPIV_NSLOTS];
    struct vpiv_obj *objs;
};

/* Kinds of a pending card-administration (9B) authentication step. */
enum { AUTH_NONE, AUTH_WITNESS, AUTH_CHALLENGE };

struct vpiv_card {
    const char *dir; /* state folder */
    int verbose;
    int plain;         /* --plain: no YubiKey extensions (INS F7 and up) */
    int no_history;    /* --no-key-history: no key history object unless written (as a YubiKey) */
    uint8_t atr[33];
    size_t atr_len;
    struct vpiv_state st;

    /* Security state: lost on reset and power-off. */
    int pin_verified;
    int pin_fresh;     /* the last command was a successful VERIFY */
    int pin_always_ok; /* ... and the one running now follows it ("PIN always") */
    int mgmt_authed;
    int auth_kind;         /* AUTH_WITNESS / AUTH_CHALLENGE pending */
    uint8_t auth_data[16]; /* the witness or challenge, one block */

    /* APDU layer: command chaining and GET RESPONSE. */
    int chaining;
    uint8_t chain_ins, chain_p1, chain_p2;
    struct vbuf chain;
    struct vbuf resp;
    size_t resp_off;
    int resp_pending;
};

/* A parsed command APDU (short or extended). */
struct apdu {
    uint8_t cla, ins, p1, p2;
    const uint8_t *data;
    size_t lc;
    size_t le; /* 0 when absent; 256 / 65536 for a zero Le */
    int has_le;
};

/* apdu.c: the APDU layer. */
void card_reset(struct vpiv_card *c);
/* Handles one C-APDU; the R-APDU (data and status word) goes to rapdu. */
int card_process(struct vpiv_card *c, const uint8_t *in, size_t n, struct vbuf *rapdu);

/* piv.c: one complete (unchained) command; returns the status word. */
uint16_t piv_command(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);

/* piv_data.c: data objects. */
uint16_t piv_get_data(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t piv_put_data(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
/* Fresh-card objects: CHUID (random GUID and FASC-N), CCC, discovery. */
int piv_factory_objects(struct vpiv_state *st);

/* piv_pin.c: PIN and PUK. */
uint16_t piv_verify(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t piv_change_reference(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t piv_reset_retry(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
/* Parses a PIN as sent (1..8 bytes, FF padded) into its 8-byte form;
 * -1 when its length (without padding) is outside min..8. */
int pin_normalize(const uint8_t *in, size_t n, size_t min, uint8_t out[8]);

/* piv_auth.c: GENERAL AUTHENTICATE. */
uint16_t piv_general_authenticate(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);

/* piv_keys.c: key generation and the YubiKey key-management commands. */
uint16_t piv_generate(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_import_key(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_get_metadata(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_attest(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
/* Makes the attestation key (F9) and its self-signed certificate. */
int piv_factory_attestation(struct vpiv_state *st);
/* Whether the key in slot may be used now (PIN policy); SW_OK if so. */
uint16_t key_use_allowed(struct vpiv_card *c, const struct vpiv_key *k, uint8_t slot);

/* piv_yk.c: the other YubiKey extensions. */
uint16_t yk_get_version(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_get_serial(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_set_mgmt_key(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_set_pin_retries(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);
uint16_t yk_reset(struct vpiv_card *c, const struct apdu *a, struct vbuf *out);

/* state.c: the state folder. Every change is saved before the card
 * answers, each file replaced atomically (temporary file + rename). */
struct factory_opts {
    const char *pin, *puk;
    const uint8_t *mgmt_key;
    size_t mgmt_len;
    int mgmt_alg; /* -1: 3DES */
    int have_serial;
    uint32_t serial;
};
/* 0 loaded, 1 no state in dir, -1 error. */
int state_load(const char *dir, struct vpiv_state *st);
/* A factory-fresh card (credentials from o), saved to dir. */
int state_factory(const char *dir, struct vpiv_state *st, const struct factory_opts *o);
int state_save_conf(const char *dir, const struct vpiv_state *st);
int state_save_key(const char *dir, const struct vpiv_state *st, uint8_t slot);
int state_save_obj(const char *dir, const struct vpiv_state *st, uint32_t tag);
void state_free(struct vpiv_state *st);
/* Slot index for keys[], -1 for a reference that is not a key slot. */
int slot_index(uint8_t slot);
uint8_t slot_of_index(int i);
struct vpiv_key *state_key(struct vpiv_state *st, uint8_t slot);
struct vpiv_obj *state_obj(struct vpiv_state *st, uint32_t tag);
/* Replaces (or with n == 0 deletes) an object in memory. */
int state_obj_set(struct vpiv_state *st, uint32_t tag, const uint8_t *d, size_t n);
/* Whether tag names a data object the card can hold. */
int object_tag_valid(uint32_t tag);
/* Default PIN policy of a slot (9C always, 9E never, others once). */
uint8_t slot_default_pin_policy(uint8_t slot);

/* The factory management key: 01 02 .. 08, three times (3DES). */
extern const uint8_t vpiv_default_mgmt_key[24];

/* Saves after a change: SW_OK, or SW_MEMORY when the write failed. */
uint16_t card_save_conf(struct vpiv_card *c);
uint16_t card_save_key(struct vpiv_card *c, uint8_t slot);
uint16_t card_save_obj(struct vpiv_card *c, uint32_t tag);

void vlog(const struct vpiv_card *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
