/* tessera card collect: the holder, on the device, turns a collection code
 * into a card: a new TPM virtual card, or the PIV card in a reader. Every
 * step is recorded in the database before the next (src/cms/cards.c):
 *
 *   claimed        the code was right; the job runs
 *   serial         the card's serial, chosen before the card is touched
 *   created        the card, made or initialised in one call with that
 *                  serial, its PIN, PIN policy (TPM), tries and diversified
 *                  admin key (T_InitCardWithSerial; a PIV card is reset
 *                  first, authorised by its PUK, and gets a CHUID with the
 *                  serial, a PUK nobody is told and the admin key)
 *   key:NAME       for each key of the profile: made on the card, a request
 *                  signed by it, a certificate from the CA, recorded, loaded
 *   done           the card is active, the code gone
 *
 * A collect that fails, or one killed at any point (the next collect finds
 * its job running with a dead owner), is undone before anything else: the
 * card with the recorded serial is erased by its admin key (a challenge
 * answered with the key diversified again; a PIV card cut short before it
 * had one, by the PUK it was given), the certificates recorded for it
 * revoked, and the job starts over. A PIV card pulled out after it was
 * made must come back to be undone; the job waits for it (or an operator
 * cancels the card). So there is never a card the database does not know
 * (but for a PIV card pulled out during its init, before "created": it
 * holds no key, and the next collect it comes to erases it, knowing it by
 * its admin key), nor a card row that speaks of a card that is not there.
 * TESSERA_TEST_KILL_AT=STEP makes the process kill itself with
 * SIGKILL just after STEP: how the tests prove it. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "../cms/ca.h"
#include "../cms/cards.h"
#include "../cms/enrolment.h"
#include "../cms/escrow.h"
#include "../cms/holders.h"
#include "../cms/profile.h"
#include "../kdf.h"
#include "../pin_policy.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

#define PIN_BUF (TESS_PIN_MAX_LEN + 2)
#define PIV_FACTORY_PUK "12345678"

struct collect {
    struct cms_ctx c;
    struct cms_job job;
    struct cms_card card;
    struct cms_profile prof;
    struct cms_holder holder;
    struct cms_ca *ca;
    struct tool_p11 p;
    struct tool_key_source ks;
    char device[256];
    char pin[PIN_BUF];
    char puk[16];              /* a PIV card's PUK before it is issued (the factory one) */
    long slot_wanted;          /* --slot, or -1 */
    bool piv;
    int certs;
    int64_t escrow_key_id;     /* when a key of the profile is escrowed */
    X509 *escrow_cert;
    const EVP_MD *escrow_oaep;
};

/* ---- undoing ---- */

static int revoke_one(void *arg, int64_t id, const char *ca_name, const char *serial, const char *key_name,
                      const char *state)
{
    struct collect *k = arg;
    (void)key_name;
    if (!strcmp(state, "revoked"))
        return CMS_OK;
    if (strcmp(ca_name, k->ca->name)) {
        fprintf(stderr, "tessera: certificate %s is from %s, not this database's CA: revoke it there\n", serial,
                ca_name);
    } else if (k->ca->ops->revoke(k->ca, serial, CMS_REVOKE_CESSATION) != CMS_OK) {
        return cms_fail(k->c.db, CMS_ERR, "cannot revoke certificate %s: %s", serial, k->ca->err);
    }
    k->certs++;
    return cms_cert_withdraw(k->c.db, id);
}

/* Undo what a collect did: pending = true after a failure here (the holder
 * may try again), false when this collect goes on to issue. */
static int undo(struct collect *k, bool pending)
{
    char detail[256], serial[40];
    bool erased = false;
    int rc = EX_OK;

    snprintf(serial, sizeof(serial), "%s", k->card.serial);
    /* A TPM card not found was never made. A PIV card may be out of its
     * reader: once it was made (the step after "serial"), it must come back.
     * Its reset takes its CHUID, and so its serial, with it: "erasing" is
     * recorded first, and a card not found after that step was reset. */
    if (serial[0] && k->piv && strcmp(k->job.step, "erasing")) {
        CK_SLOT_ID slot;
        CK_TESSERA_CARD_INFO info;
        if (tool_p11_find(&k->p, -1, serial, &slot, &info) == EX_OK) {
            rc = cms_report(&k->c, cms_job_step(k->c.db, &k->job, &k->card, "erasing", NULL, NULL, NULL));
            if (rc == EX_OK)
                snprintf(k->job.step, sizeof(k->job.step), "erasing");
        } else if (strcmp(k->job.step, "serial")) {
            fprintf(stderr, "tessera: PIV card %s, half issued by an earlier collect, is not in a reader: insert it "
                            "to undo that collect (or an operator cancels the card)\n", serial);
            return EX_NOTFOUND;
        }
    }
    if (rc == EX_OK && serial[0])
        rc = cms_card_admin(&k->p, &k->ks, serial, CMS_ADMIN_ERASE, k->piv ? k->puk : NULL, &erased);
    if (erased && k->piv)   /* reset: its PUK is the factory one now */
        snprintf(k->puk, sizeof(k->puk), "%s", PIV_FACTORY_PUK);
    k->certs = 0;
    if (rc == EX_OK)
        rc = cms_report(&k->c, cms_card_certs(k->c.db, k->card.id, revoke_one, k));
    if (rc == EX_OK)
        rc = cms_settle_enrolments(&k->c, k->ca, &k->card, NULL, CMS_REVOKE_CESSATION, &k->certs);
    if (rc != EX_OK)
        return rc;
    snprintf(detail, sizeof(detail), "after step %s: %s, %d certificate(s) revoked", k->job.step,
             erased ? "card erased" : "no card to erase", k->certs);
    rc = cms_report(&k->c, cms_collect_undone(k->c.db, &k->job, &k->card, pending, detail));
    if (rc == EX_OK)
        k->card.serial[0] = '\0';
    return rc;
}

/* ---- issuing ---- */

static int choose_pin(struct collect *k, const char *pin_file)
{
    char err[256];
    const struct tess_pin_policy *pol = &k->prof.pin;
    if (k->prof.pin_generated) {
        /* Digits only, unless the policy forbids them or wants more. */
        static const char *sets[TESS_PIN_NCLASSES] = { "0123456789", "ABCDEFGHJKLMNPQRSTUVWXYZ",
                                                      "abcdefghijkmnopqrstuvwxyz", "#$%&*+-=?@" };
        int len = pol->min_len > 8 ? pol->min_len : (pol->max_len >= 8 ? 8 : pol->max_len);
        for (int attempt = 0; attempt < 100; attempt++) {
            char alphabet[128] = "";
            for (int c = 0; c < TESS_PIN_NCLASSES; c++)
                if (pol->rule[c] == TESS_PIN_MANDATORY || (c == 0 && pol->rule[c] != TESS_PIN_FORBIDDEN))
                    strcat(alphabet, sets[c]);
            size_t n = strlen(alphabet);
            uint8_t r[TESS_PIN_MAX_LEN];
            if (!n || RAND_bytes(r, len) != 1)
                break;
            for (int i = 0; i < len; i++)
                k->pin[i] = alphabet[r[i] % n];
            k->pin[len] = '\0';
            tess_wipe(r, sizeof(r));
            if (tess_pin_policy_check(pol, (const unsigned char *)k->pin, (size_t)len, err, sizeof(err)) == 0)
                return EX_OK;
        }
        fprintf(stderr, "tessera: cannot make a PIN to profile %s's policy\n", k->prof.name);
        return EX_FAIL;
    }
    if (tool_read_secret(pin_file, "choose the card's PIN", k->pin, sizeof(k->pin)))
        return EX_USAGE;
    if (tess_pin_policy_check(pol, (const unsigned char *)k->pin, strlen(k->pin), err, sizeof(err))) {
        fprintf(stderr, "tessera: this PIN is not allowed: %s\n", err);
        return EX_PIN;
    }
    return EX_OK;
}

/* A label of at most 32 bytes that does not cut a UTF-8 character. */
static void card_label(const char *name, char out[33])
{
    size_t n = strlen(name);
    if (n > 32) {
        n = 32;
        while (n && ((unsigned char)name[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, name, n);
    out[n] = '\0';
}

/* A PIV card the database does not know, administered by Tessera: one
 * whose admin key is the profile master's for its serial was left half made
 * by a collect cut short before it recorded the card (pulled out during its
 * init); it is erased by that key. Any other is refused untouched: its PUK
 * is nobody's, and a wrong one would cost a try. */
static int orphan(struct collect *k, const CK_TESSERA_CARD_INFO *info, const char *serial)
{
    uint8_t key[32], kcv[3];
    size_t klen = sizeof(key);
    bool erased = false;
    int rc = tool_key_source_key(&k->ks, serial, key, &klen);
    bool ours = rc == EX_OK && tess_admin_kcv(k->ks.alg, key, klen, kcv) == CKR_OK &&
                !memcmp(kcv, info->adminKeyCheck, 3);
    tess_wipe(key, sizeof(key));
    if (rc != EX_OK)
        return rc;
    if (!ours) {
        fprintf(stderr, "tessera: the PIV card in the reader (%s) has an admin key that is not this profile's: "
                        "erase it first ('tessera card erase' with its own authority)\n", serial);
        return EX_STATE;
    }
    rc = cms_card_admin(&k->p, &k->ks, serial, CMS_ADMIN_ERASE, NULL, &erased);
    if (rc == EX_OK && !erased)
        rc = EX_NOTFOUND;
    if (rc == EX_OK) {
        fprintf(stderr, "tessera: PIV card %s, left half made (or half erased) by a run that was cut short, was "
                        "erased\n", serial);
        snprintf(k->puk, sizeof(k->puk), "%s", PIV_FACTORY_PUK);
    }
    return rc;
}

/* The PIV card to issue: the one in the reader --slot names, or the only
 * one in a reader. A card this database knows and has not erased is
 * someone's: it is refused before it is touched. */
static int pick_piv(struct collect *k, CK_SLOT_ID *slot)
{
    CK_SLOT_ID slots[128];
    CK_ULONG n = TESS_ARRAY_SIZE(slots);
    CK_TESSERA_CARD_INFO info, card;
    struct cms_card known;
    char serial[40] = "";
    int found = 0, rc;

    if (k->p.f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        n = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        if ((k->slot_wanted >= 0 && slots[i] != (CK_SLOT_ID)k->slot_wanted) ||
            k->p.t->T_GetCardInfo(slots[i], &info) != CKR_OK || info.cardType != CKT_TESSERA_PIV)
            continue;
        *slot = slots[i];
        card = info;
        tool_card_serial(&card, serial, sizeof(serial));
        found++;
    }
    if (!found) {
        fprintf(stderr, "tessera: no PIV card %s: insert the card to issue\n",
                k->slot_wanted >= 0 ? "in that slot" : "in a reader");
        return EX_NOTFOUND;
    }
    if (found > 1)
        return tool_usage_error("there are several PIV cards: name the one to issue with --slot N");
    rc = cms_card_get(k->c.db, 0, serial, &known);
    /* Unknown, or erased in the database, yet with a Tessera admin object:
     * a card whose erase or init was cut short. */
    if (rc == CMS_NOTFOUND || (rc == CMS_OK && !strcmp(known.state, "erased")))
        return card.challengeLen ? orphan(k, &card, serial) : EX_OK;
    if (rc == CMS_OK) {
        fprintf(stderr, "tessera: the card in the reader (%s) is card %" PRId64 " of %s, %s: it is erased before it "
                        "is issued again\n", serial, known.id, known.holder, known.state);
        return EX_STATE;
    }
    return cms_report(&k->c, rc);
}

static int create_card(struct collect *k, CK_SLOT_ID *slot)
{
    CK_TESSERA_INIT init;
    CK_TESSERA_PIN_POLICY pol;
    uint8_t key[32], so_raw[12], serial_raw[8];
    size_t klen = sizeof(key);
    char label[33], so_pin[2 * sizeof(so_raw) + 1], serial[17], detail[256];
    CK_RV rv;
    int rc = k->piv ? pick_piv(k, slot) : tool_find_spare(&k->p, -1, slot);

    if (rc != EX_OK)
        return rc;
    /* The serial goes into the database before the card is touched. */
    if (RAND_bytes(serial_raw, sizeof(serial_raw)) != 1)
        return EX_FAIL;
    tess_hex(serial, serial_raw, sizeof(serial_raw));
    rc = cms_report(&k->c, cms_job_step(k->c.db, &k->job, &k->card, "serial", serial, NULL, NULL));
    if (rc != EX_OK)
        return rc;
    snprintf(k->card.serial, sizeof(k->card.serial), "%s", serial);
    snprintf(k->job.step, sizeof(k->job.step), "serial");
    cms_kill_point("serial");

    rc = tool_key_source_key(&k->ks, serial, key, &klen);
    /* The SO PIN: random and not kept. The admin key (diversified from the
     * profile's master) is the card's administrative authority. */
    if (rc == EX_OK && RAND_bytes(so_raw, sizeof(so_raw)) != 1)
        rc = EX_FAIL;
    if (rc != EX_OK)
        goto out;
    tess_hex(so_pin, so_raw, sizeof(so_raw));
    card_label(k->holder.name, label);
    pol = (CK_TESSERA_PIN_POLICY){
        (CK_ULONG)k->prof.pin.min_len, (CK_ULONG)k->prof.pin.max_len, k->prof.pin.rule[TESS_PIN_DIGITS],
        k->prof.pin.rule[TESS_PIN_UPPER], k->prof.pin.rule[TESS_PIN_LOWER], k->prof.pin.rule[TESS_PIN_SPECIAL],
    };
    init = (CK_TESSERA_INIT){
        .pLabel = (CK_UTF8CHAR_PTR)label, .ulLabelLen = strlen(label),
        .pSoPin = (CK_UTF8CHAR_PTR)so_pin, .ulSoPinLen = strlen(so_pin),
        .pUserPin = (CK_UTF8CHAR_PTR)k->pin, .ulUserPinLen = strlen(k->pin),
        .pPinPolicy = &pol, .ulUserPinTries = (CK_ULONG)k->prof.pin_tries,
        .adminKeyType = k->ks.alg == TESS_KEY_3DES ? CKK_DES3 : CKK_AES, .pAdminKey = key, .ulAdminKeyLen = klen,
    };
    if (k->piv) {
        /* A PIV card has no label, its own PIN rule (the profile's is
         * checked here), and its PUK as the authority: kept through the
         * reset, then replaced by one nobody is told once the admin key is
         * set (drivers/piv/piv_admin.c). */
        init.pLabel = NULL;
        init.ulLabelLen = 0;
        init.pSoPin = (CK_UTF8CHAR_PTR)k->puk;
        init.ulSoPinLen = strlen(k->puk);
        init.pPinPolicy = NULL;
    }
    rv = k->p.t->T_InitCardWithSerial(*slot, &init, (CK_UTF8CHAR_PTR)serial, 16);
    if (rv != CKR_OK) {
        rc = tool_report(rv, "the card was not made");
        if (k->piv && (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED))
            fprintf(stderr, "tessera: the PIV card's PUK is not %s: give its PUK with --puk-file\n",
                    strcmp(k->puk, PIV_FACTORY_PUK) ? "the one given" : "the factory one");
        goto out;
    }
    cms_kill_point("created");
    snprintf(detail, sizeof(detail), "%s, PIN %s, %d tries, admin key %s", k->piv ? "PIV card" : "TPM virtual card",
             k->prof.pin_generated ? "generated" : "chosen by the holder", k->prof.pin_tries,
             tess_key_alg_name(k->ks.alg));
    rc = cms_report(&k->c, cms_job_step(k->c.db, &k->job, &k->card, "created", NULL, "card.create", detail));
    if (rc == EX_OK)
        snprintf(k->job.step, sizeof(k->job.step), "created");
out:
    tess_wipe(key, sizeof(key));
    tess_wipe(so_raw, sizeof(so_raw));
    tess_wipe(so_pin, sizeof(so_pin));
    return rc;
}

/* A temporary card's certificates end when it does. */
static int lifetime_days(const struct collect *k, const struct cms_key_spec *spec)
{
    int64_t until, left;
    if (!k->card.temporary || cms_time_parse(k->card.expires, &until))
        return spec->lifetime_days;
    left = (until - (int64_t)time(NULL)) / 86400;
    return left < 1 ? 1 : left < spec->lifetime_days ? (int)left : spec->lifetime_days;
}

/* An escrowed key: made here (OpenSSL), sealed to the escrow key, and its
 * request signed here; the card gets it once it is certified and recorded. */
static int escrowed_key(const struct cms_key_issue *ki, const struct cms_key_spec *spec, const X509_NAME *subject,
                        EVP_PKEY **pk, X509_REQ **csr, unsigned char **archive, size_t *archive_len)
{
    int bits = !strcmp(spec->type, "rsa3072") ? 3072 : 2048;   /* the profile allows RSA only */
    char err[256];

    if (!ki->escrow_cert) {
        fprintf(stderr, "tessera: key %s is escrowed, but there is no escrow key\n", spec->name);
        return EX_FAIL;
    }
    *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    *csr = X509_REQ_new();
    if (!*pk || !*csr || !X509_REQ_set_version(*csr, 0) || !X509_REQ_set_subject_name(*csr, subject) ||
        !X509_REQ_set_pubkey(*csr, *pk) || !X509_REQ_sign(*csr, *pk, EVP_sha256())) {
        fprintf(stderr, "tessera: key %s: cannot make the key or its request\n", spec->name);
        return EX_FAIL;
    }
    if (cms_escrow_seal(ki->escrow_cert, ki->escrow_oaep, *pk, archive, archive_len, err, sizeof(err)) != CMS_OK) {
        fprintf(stderr, "tessera: key %s: %s\n", spec->name, err);
        return EX_FAIL;
    }
    return EX_OK;
}

/* The key pair the card has under id. */
static int card_pair(const struct cms_key_issue *ki, const struct cms_key_spec *spec, const uint8_t *id,
                     CK_ULONG idlen, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    if (tool_find_objects(ki->p, ki->h, CKO_PUBLIC_KEY, id, idlen, pub, 1) == 1 &&
        tool_find_objects(ki->p, ki->h, CKO_PRIVATE_KEY, id, idlen, priv, 1) == 1)
        return EX_OK;
    fprintf(stderr, "tessera: key %s is not on the card\n", spec->name);
    return EX_NOTFOUND;
}

int cms_settle_enrolments(struct cms_ctx *c, struct cms_ca *ca, const struct cms_card *card, const char *who,
                          int reason, int *revoked)
{
    struct cms_enrolments_settled settled;
    char holder[160];
    int rc;
    if (!who) {
        cms_holder_actor(card, holder, sizeof(holder));
        who = holder;
    }
    rc = cms_report(c, cms_enrolments_settle(c->db, ca, card, who, reason, &settled));
    if (rc != EX_OK)
        return rc;
    *revoked += settled.revoked;
    if (settled.unchecked)
        fprintf(stderr, "tessera: warning: card %" PRId64 ": %d certificate request(s) went to the CA and were cut "
                "short before their certificate was recorded; this CA cannot be searched by key: `tessera audit "
                "--holder %s --action cert.unrecorded` names the keys to look up and revoke there\n",
                card->id, settled.unchecked, card->holder);
    return EX_OK;
}

int cms_issue_key(const struct cms_key_issue *ki, const struct cms_key_spec *spec, const uint8_t *id, CK_ULONG idlen)
{
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE, added;
    bool escrow = spec->escrow && !ki->same_key;
    X509_NAME *subject = NULL;
    X509_REQ *csr = NULL;
    X509 *cert = NULL;
    EVP_PKEY *escrowed = NULL;
    unsigned char *archive = NULL;
    size_t archive_len = 0;
    char err[256], step[96];
    int64_t enrolment = 0;
    CK_RV rv;
    int rc;

    if (ki->same_key) {
        if ((rc = card_pair(ki, spec, id, idlen, &pub, &priv)) != EX_OK)
            return rc;
    } else if (!escrow) {
        rv = tool_generate_pair(ki->p, ki->h, spec->type, id, idlen, spec->name, &pub, &priv);
        if (rv != CKR_OK)
            return tool_report(rv, "no key was made");
    }
    snprintf(step, sizeof(step), "%skey:%s", ki->kill_prefix, spec->name);
    cms_kill_point(step);
    if (!spec->eku)
        goto recorded;   /* a key without a certificate */
    subject = cms_subject_build(spec->subject, ki->holder, err, sizeof(err));
    if (!subject) {
        fprintf(stderr, "tessera: key %s: %s\n", spec->name, err);
        rc = EX_FAIL;
        goto out;
    }
    if (escrow)
        rc = escrowed_key(ki, spec, subject, &escrowed, &csr, &archive, &archive_len);
    else
        rc = tool_make_csr(ki->p, ki->h, pub, priv, subject, ki->pin, &csr);
    if (rc != EX_OK)
        goto out;
    struct cms_cert_request req = {
        .csr = csr, .subject = subject, .lifetime_days = ki->lifetime_days, .eku = spec->eku,
        .sign = spec->sign, .decrypt = spec->decrypt,
        .email = (spec->eku & CMS_EKU_EMAIL) ? ki->holder->email : NULL,
        .upn = (spec->eku & CMS_EKU_SMARTCARD_LOGON) ? cms_holder_attr(ki->holder, "upn") : NULL,
    };
    /* Recorded first: a certificate issued to a process killed before it
     * was recorded is found by its key and revoked (enrolment.h). */
    rc = cms_report(ki->c, cms_enrolment_begin(ki->c->db, ki->card, spec->name, ki->ca->name, csr, &enrolment));
    if (rc != EX_OK)
        goto out;
    if (ki->ca->ops->enroll(ki->ca, &req, &cert) != CMS_OK) {
        fprintf(stderr, "tessera: key %s: the CA issued no certificate: %s\n", spec->name, ki->ca->err);
        if (ki->ca->none_valid)
            cms_report(ki->c, cms_enrolment_drop(ki->c->db, enrolment));
        rc = EX_FAIL;
        goto out;
    }
    snprintf(step, sizeof(step), "%senrolled:%s", ki->kill_prefix, spec->name);
    cms_kill_point(step);
    struct cms_escrow_archive esc = { ki->escrow_key_id, archive, archive_len };
    rc = cms_report(ki->c, cms_cert_record(ki->c->db, ki->card, spec->name, ki->ca->name, cert,
                                           escrow ? &esc : NULL));
    if (rc != EX_OK)
        goto out;
    snprintf(step, sizeof(step), "%srecorded:%s", ki->kill_prefix, spec->name);
    cms_kill_point(step);
    if (escrow) {
        CK_SESSION_INFO si;
        CK_TESSERA_CARD_INFO info;
        rv = ki->p->f->C_GetSessionInfo(ki->h, &si);
        if (rv == CKR_OK)
            rv = ki->p->t->T_GetCardInfo(si.slotID, &info);
        rc = rv == CKR_OK ? tool_import_key(ki->p, ki->h, &info, escrowed, cert, NULL, id, idlen, spec->name, false)
                          : tool_report(rv, "the card does not answer");
        if (rc != EX_OK)
            goto out;
    } else if ((rv = tool_store_cert(ki->p, ki->h, cert, id, idlen, spec->name, 1, &added)) != CKR_OK) {
        rc = tool_report(rv, "the certificate was not stored");
        goto out;
    }
    snprintf(step, sizeof(step), "%sloaded:%s", ki->kill_prefix, spec->name);
    cms_kill_point(step);
recorded:
    snprintf(step, sizeof(step), "key:%s", spec->name);
    rc = cms_report(ki->c, cms_job_step(ki->c->db, ki->job, ki->card, step, NULL, NULL, NULL));
out:
    EVP_PKEY_free(escrowed);
    OPENSSL_free(archive);
    X509_free(cert);
    X509_REQ_free(csr);
    X509_NAME_free(subject);
    return rc;
}

static int issue(struct collect *k)
{
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_TESSERA_CARD_INFO info;
    STACK_OF(X509) *chain = sk_X509_new_null();
    X509 *ca_cert = NULL;
    char detail[256];
    CK_RV rv;
    int rc = create_card(k, &slot);

    if (rc != EX_OK)
        goto out;
    rv = k->p.t->T_GetCardInfo(slot, &info);
    if (rv == CKR_OK)
        rv = k->p.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK)
        rv = k->p.f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)k->pin, (CK_ULONG)strlen(k->pin));
    if (rv != CKR_OK) {
        rc = tool_report(rv, "the new card does not open");
        goto out;
    }
    for (int i = 0; i < k->prof.nkeys && rc == EX_OK; i++) {
        uint8_t id[1] = { k->piv ? cms_piv_key_id(k->prof.keys[i].piv_slot) : (uint8_t)(i + 1) };
        struct cms_key_issue ki = { &k->c, &k->p, h, k->ca, &k->job, &k->card, &k->holder, k->pin,
                                    lifetime_days(k, &k->prof.keys[i]), "", k->escrow_key_id, k->escrow_cert,
                                    k->escrow_oaep, false };
        rc = cms_issue_key(&ki, &k->prof.keys[i], id, 1);
    }
    if (rc == EX_OK && (k->ca->ops->certificate(k->ca, &ca_cert) != CMS_OK || !chain || !sk_X509_push(chain, ca_cert)))
        rc = EX_FAIL;
    else if (rc == EX_OK)
        ca_cert = NULL;   /* the stack owns it */
    if (rc == EX_OK && !k->piv)   /* a PIV card has no place for them */
        rc = tool_load_ca_certs(&k->p, h, &info, chain);
    if (rc != EX_OK)
        goto out;
    cms_kill_point("loaded");
    snprintf(detail, sizeof(detail), "job %" PRId64 ": card %s, profile %s version %d, %d key(s)", k->job.id,
             k->card.serial, k->prof.name, k->prof.version, k->prof.nkeys);
    rc = cms_report(&k->c, cms_collect_finish(k->c.db, &k->job, &k->card, detail));
    if (rc == EX_OK)
        cms_kill_point("done");
out:
    if (h != CK_INVALID_HANDLE)
        k->p.f->C_CloseSession(h);
    X509_free(ca_cert);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

/* What collect needs before it touches anything: the profile, holder, CA
 * and admin-key master it names, and a PIN to its policy. */
static int prepare(struct collect *k, const char *pin_file, const char *puk_file)
{
    int rc = cms_report(&k->c, cms_profile_get(k->c.db, k->card.profile, k->card.profile_version, &k->prof));
    if (rc == EX_OK)
        rc = cms_report(&k->c, cms_holder_get(k->c.db, k->card.holder, &k->holder));
    if (rc == EX_OK)
        rc = cms_report(&k->c, cms_ca_open(k->c.db, &k->ca));
    if (rc != EX_OK)
        return rc;
    k->piv = !strcmp(k->card.type, "piv");
    /* What profile import checks now, again for a version stored before
     * it did: the card is not touched for a profile it cannot take. */
    for (int i = 0; k->piv && i < k->prof.nkeys; i++)
        if (!k->prof.keys[i].piv_slot || !strcmp(k->prof.keys[i].type, "rsa3072")) {
            fprintf(stderr, "tessera: profile %s version %d: key %s has no PIV slot, or a type a PIV card does not "
                            "take\n", k->prof.name, k->prof.version, k->prof.keys[i].name);
            return EX_FAIL;
        }
    if (k->piv && (k->prof.pin.min_len < 6 || k->prof.pin.max_len > 8)) {
        fprintf(stderr, "tessera: profile %s version %d: a PIV card's PIN is 6 to 8 characters\n", k->prof.name,
                k->prof.version);
        return EX_FAIL;
    }
    for (int i = 0; i < k->prof.nkeys && !k->escrow_cert; i++)
        if (k->prof.keys[i].escrow &&
            (rc = cms_report(&k->c, cms_escrow_key_current(k->c.db, &k->escrow_key_id, &k->escrow_cert, &k->escrow_oaep))) != EX_OK)
            return rc;
    if ((rc = cms_key_source(&k->prof, &k->ks)) != EX_OK)
        return rc;
    if (!k->piv && (puk_file || k->slot_wanted >= 0))
        return tool_usage_error("--puk-file and --slot are for a PIV card; this card is a TPM card");
    if (k->piv && puk_file && tool_read_secret(puk_file, "the PIV card's PUK", k->puk, sizeof(k->puk)))
        return EX_USAGE;
    if (k->piv && !puk_file)
        snprintf(k->puk, sizeof(k->puk), "%s", PIV_FACTORY_PUK);
    return choose_pin(k, pin_file);
}

static int opt_collect(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    const char **args = arg;
    (void)c;
    if (ch == 'c')
        args[0] = v;
    else if (ch == 'P')
        args[1] = v;
    else if (ch == 'U')
        args[2] = v;
    else if (ch == 's')
        args[3] = v;
    else
        return -1;
    return 0;
}

int cmd_card_collect(int argc, char **argv)
{
    static const char usage[] = "usage: tessera card collect [--code CODE] [--pin-file F] "
                                "[--puk-file F] [--slot N]";
    static const struct option extra[] = { { "code", required_argument, 0, 'c' },
                                           { "pin-file", required_argument, 0, 'P' },
                                           { "puk-file", required_argument, 0, 'U' },
                                           { "slot", required_argument, 0, 's' } };
    struct collect k;
    const char *args[4] = { NULL, NULL, NULL, NULL };
    char *end;
    char code[64] = "";
    int rc;

    memset(&k, 0, sizeof(k));
    k.ks = (struct tool_key_source)TOOL_KEY_SOURCE_INIT;
    k.slot_wanted = -1;
    rc = cms_parse_opts(&k.c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_collect, args, usage);
    if (rc == EX_OK && optind != argc)
        rc = tool_usage_error(usage);
    if (rc == EX_OK && args[3]) {
        k.slot_wanted = strtol(args[3], &end, 0);
        if (*end || end == args[3] || k.slot_wanted < 0)
            rc = tool_usage_error("--slot takes a slot number");
    }
    if (rc != EX_OK)
        return rc;
    if (args[0])
        snprintf(code, sizeof(code), "%s", args[0]);
    else if (tool_read_secret(NULL, "collection code", code, sizeof(code)))
        return EX_USAGE;
    cms_device_name(k.device, sizeof(k.device));
    if ((rc = cms_ctx_open(&k.c, false)) != EX_OK)
        goto done;
    rc = cms_report(&k.c, cms_collect_claim(k.c.db, code, k.device, &k.job, &k.card));
    if (rc != EX_OK)
        goto done;
    rc = prepare(&k, args[1], args[2]);
    if (rc == EX_OK) {
        setenv("TESSERA_SPARE_SLOT", "yes", 1);
        rc = tool_p11_open(&k.p);
    }
    /* A collect killed or failed before: undo what it did, then start over. */
    if (rc == EX_OK && strcmp(k.job.step, "claimed"))
        rc = undo(&k, false);
    if (rc != EX_OK) {
        /* Nothing touched: the code stays good. A card left by an earlier
         * collect that could not be undone stays for the next one. */
        if (!strcmp(k.job.step, "claimed"))
            cms_collect_undone(k.c.db, &k.job, &k.card, true, "stopped before the card was touched");
        else
            cms_collect_failed(k.c.db, &k.job, &k.card, "an earlier collect could not be undone");
        goto done;
    }
    rc = issue(&k);
    if (rc != EX_OK) {
        cms_collect_failed(k.c.db, &k.job, &k.card, "issuing the card failed");
        /* Undone now when possible; otherwise the next collect does it. */
        if (undo(&k, true) != EX_OK)
            fprintf(stderr, "tessera: the half-made card stays recorded; the next collect undoes it\n");
        goto done;
    }
    if (tool_json) {
        printf("{\"card\":\"%s\",\"holder\":", k.card.serial);
        tool_json_str(k.card.holder);
        printf(",\"profile\":");
        tool_json_str(k.prof.name);
        printf(",\"version\":%d,\"keys\":%d", k.prof.version, k.prof.nkeys);
        if (k.prof.pin_generated)
            printf(",\"pin\":\"%s\"", k.pin);
        printf("}\n");
    } else {
        printf("card %s collected for %s: profile %s version %d, %d key(s)\n", k.card.serial, k.holder.name,
               k.prof.name, k.prof.version, k.prof.nkeys);
        if (k.prof.pin_generated)
            printf("its PIN (shown once): %s\n", k.pin);
    }
done:
    tool_p11_close(&k.p);
    cms_ca_close(k.ca);
    X509_free(k.escrow_cert);
    cms_holder_clear(&k.holder);
    cms_ctx_close(&k.c);
    tess_wipe(k.pin, sizeof(k.pin));
    tess_wipe(k.puk, sizeof(k.puk));
    tess_wipe(code, sizeof(code));
    return rc;
}
