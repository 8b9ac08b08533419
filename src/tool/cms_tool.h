/* What the tool's card-management verbs share (cms_ctx.c): the database
 * they work on, who runs them, their options and how results become exit
 * codes and messages. */
#ifndef TESSERA_TOOL_CMS_H
#define TESSERA_TOOL_CMS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "../cms/cards.h"
#include "../cms/db.h"
#include "../cms/roles.h"
#include "tool.h"

struct cms_ctx {
    const char *db_path;       /* --db, else TESSERA_CMS_DB, else TESSERA_HOME/cms.db */
    const char *as;            /* --as (root only) */
    char path[4096 + 16];
    struct cms_db *db;
    struct cms_actor actor;
};

/* A CMS result as the tool's exit code. */
int cms_exit_for(int rc);
/* Say db->err on stderr when rc is not CMS_OK; the exit code. */
int cms_report(struct cms_ctx *c, int rc);
/* Open the database (creating it when asked) and resolve the operator. */
int cms_ctx_open(struct cms_ctx *c, bool create);
void cms_ctx_close(struct cms_ctx *c);

/* Parse argv with --db and --as plus extra; each extra option calls
 * take(c, ch, optarg, arg), which returns 0 or non-zero for a usage error.
 * Positional arguments are left at argv[optind..]. */
typedef int (*opt_fn)(struct cms_ctx *c, int ch, const char *optarg_, void *arg);
int cms_parse_opts(struct cms_ctx *c, int argc, char **argv, const struct option *extra, size_t nextra, opt_fn take,
                   void *arg, const char *usage);

/* cms_device.c: this machine, as card management sees it. */
struct cms_profile;
/* TESSERA_TEST_KILL_AT=STEP: the process kills itself (SIGKILL) at STEP. */
void cms_kill_point(const char *step);
/* This machine's full name: the canonical name of its host name where the
 * resolver knows one, else the host name. */
void cms_device_name(char *out, size_t outlen);
/* The CKA_ID that names a profile's PIV key slot (drivers/piv: 01 9A,
 * 02 9C, 03 9D, 04 9E). */
uint8_t cms_piv_key_id(uint8_t piv_slot);
/* The admin-key master the profile names, as a key source. */
int cms_key_source(const struct cms_profile *prof, struct tool_key_source *ks);
/* Erase the card with this serial, or lock its user PIN, when it is in
 * this machine, by a challenge answered with its diversified admin key
 * (*done: it was). puk (or NULL): a PIV card without an admin key yet (an
 * init cut short) is erased with it as the SO. */
enum cms_admin_op { CMS_ADMIN_ERASE, CMS_ADMIN_LOCK };
int cms_card_admin(struct tool_p11 *p, const struct tool_key_source *ks, const char *serial, enum cms_admin_op op,
                   const char *puk, bool *done);
/* A card named on the command line: a database id (a short number) or a serial. */
int cms_card_arg(struct cms_ctx *c, const char *arg, struct cms_card *card);

/* cms_ca.c, cms_cards.c: the verbs of those nouns; -1 when not theirs. */
int cmd_cms_ca(const char *verb, int argc, char **argv);
int cmd_cms_cards(const char *noun, const char *verb, int argc, char **argv);
/* collect.c, cms_change.c */
int cmd_card_collect(int argc, char **argv);
/* One key of a profile made on the card under id, its request signed
 * there, a certificate from the CA recorded (before it is loaded) and
 * loaded next to it; then the job's step "key:NAME". An escrowed key is
 * made here instead, sealed to the escrow key, certified, recorded with its
 * archive, then put on the card. For collect and renew; kill points PREFIX
 * then key:, enrolled:, recorded:, loaded:NAME. */
struct cms_ca;
struct cms_holder;
struct cms_key_spec;
struct cms_key_issue {
    struct cms_ctx *c;
    struct tool_p11 *p;
    CK_SESSION_HANDLE h;
    struct cms_ca *ca;
    const struct cms_job *job;
    const struct cms_card *card;
    const struct cms_holder *holder;
    const char *pin;           /* for a key that wants it again to sign its request */
    int lifetime_days;
    const char *kill_prefix;   /* "" (collect), "renew:" */
    int64_t escrow_key_id;     /* for a profile key with escrow = yes: the */
    X509 *escrow_cert;         /* current escrow key (cms_escrow_key_current) */
    const EVP_MD *escrow_oaep;
    bool same_key;             /* certify the key the card has under id (a PIV
                                  slot's, renewed): none made, none escrowed */
};
int cms_issue_key(const struct cms_key_issue *ki, const struct cms_key_spec *spec, const uint8_t *id,
                  CK_ULONG idlen);
/* The card's enrolments left open by a run cut short (enrolment.h):
 * certificates the CA issued and the database never recorded, revoked for
 * reason and counted in *revoked; who (NULL: the card's holder) in the
 * trail. A CA that cannot be searched gets a warning on stderr. */
int cms_settle_enrolments(struct cms_ctx *c, struct cms_ca *ca, const struct cms_card *card, const char *who,
                          int reason, int *revoked);
/* renew.c: tessera card renew, the holder on the device. */
int cmd_card_renew(int argc, char **argv);
int cmd_card_change(const char *verb, int argc, char **argv);
int cmd_job_resume(int argc, char **argv);
/* The change `name` of the card (finishing an interrupted change of it
 * first), by c's operator through ca; the card's state after it in state.
 * How the renewal scan ends temporary cards. */
int cms_change_card(struct cms_ctx *c, struct cms_ca *ca, int64_t card_id, const char *name, const char *note,
                    char state[16]);
/* cms_scan.c: tessera scan, tessera notify set|show; -1 when not theirs. */
int cmd_cms_scan(const char *noun, int argc, char **argv);
/* escrow.c: escrow create|add|list|archives, key recover; -1 when not theirs. */
int cmd_cms_escrow(const char *noun, const char *verb, int argc, char **argv);
/* cms_lock.c: card lock|unlock, job move|cancel, agent; -1 when not theirs. */
int cmd_cms_lock(const char *noun, const char *verb, int argc, char **argv);

#endif
