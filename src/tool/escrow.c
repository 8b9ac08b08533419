/* tessera escrow create|add|list|archives, tessera key recover: the escrow
 * keys (an administrator's) and the recovery of escrowed keys (the
 * key-recovery officer's), over src/cms/escrow.c.
 *
 * An escrow key is made in a file (PEM, PKCS#8, under a passphrase when
 * one is given, mode 0600) or in an HSM (never leaving it), certified by the
 * database's CA for key encipherment, and recorded by its certificate. A
 * recovery opens one archive with that key (the file, or the HSM doing the
 * RSA step), records it in the trail first, then hands the key out: as a
 * PKCS#12 under a one-time password printed once and kept nowhere, or
 * straight into another card of the same holder on this machine. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <p11-kit/uri.h>

#include "../cms/ca.h"
#include "../cms/escrow.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

#define P12_ITER 100000

struct escrow_opts {
    const char *key_out, *pass_file, *hsm_uri, *hsm_module, *hsm_pin_file, *cert;
    const char *card, *holder, *key_name, *p12, *to_card, *pin_file, *escrow_key, *escrow_pass_file, *oaep;
    long archive;
    int days;
    bool all;
};

static int opt_escrow(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct escrow_opts *o = arg;
    (void)c;
    switch (ch) {
    case 'o': o->key_out = v; break;
    case 'w': o->pass_file = v; break;
    case 'u': o->hsm_uri = v; break;
    case 'H': o->hsm_module = v; break;
    case 'q': o->hsm_pin_file = v; break;
    case 'C': o->cert = v; break;
    case 'c': o->card = v; break;
    case 'h': o->holder = v; break;
    case 'k': o->key_name = v; break;
    case 'f': o->p12 = v; break;
    case 't': o->to_card = v; break;
    case 'P': o->pin_file = v; break;
    case 'e': o->escrow_key = v; break;
    case 'W': o->escrow_pass_file = v; break;
    case 'a': o->archive = strtol(v, NULL, 10); return o->archive < 1;
    case 'd': o->days = atoi(v); return o->days < 1 || o->days > 36500;
    case 'O': o->oaep = v; return strcmp(v, "sha256") && strcmp(v, "sha1");
    case 'L': o->all = true; break;
    default: return -1;
    }
    return 0;
}

/* A new file only, 0600: never over a file that is there. */
static FILE *new_private_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        fprintf(stderr, "tessera: cannot make %s: %s\n", path, errno == EEXIST ? "it is already there" : strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return f;
}

static int close_file(FILE *f, const char *path, int rc)
{
    if (fclose(f) != 0 && rc == EX_OK) {
        fprintf(stderr, "tessera: cannot write %s\n", path);
        rc = EX_FAIL;
    }
    if (rc != EX_OK)
        unlink(path);
    return rc;
}

/* ---- escrow create | add ---- */

/* The escrow key's certificate from the database's CA: encipherment only. */
static int certify(struct cms_ctx *c, const char *name, X509_REQ *csr, const X509_NAME *subject, int days,
                   X509 **cert)
{
    struct cms_ca *ca = NULL;
    struct cms_cert_request req = { .csr = csr, .subject = subject, .lifetime_days = days, .decrypt = true };
    int rc = cms_report(c, cms_ca_open(c->db, &ca));
    if (rc == EX_OK && ca->ops->enroll(ca, &req, cert) != CMS_OK) {
        fprintf(stderr, "tessera: escrow key %s: the CA issued no certificate: %s\n", name, ca->err);
        rc = EX_FAIL;
    }
    cms_ca_close(ca);
    return rc;
}

static int create_in_file(struct cms_ctx *c, const char *name, const struct escrow_opts *o, const X509_NAME *subject,
                          X509 **cert)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    X509_REQ *csr = X509_REQ_new();
    char pass[256] = "";
    FILE *f = NULL;
    int rc = EX_FAIL;

    if (o->pass_file && tool_read_secret(o->pass_file, "escrow key passphrase", pass, sizeof(pass))) {
        rc = EX_USAGE;
        goto out;
    }
    if (!pk || !csr || !X509_REQ_set_version(csr, 0) || !X509_REQ_set_subject_name(csr, subject) ||
        !X509_REQ_set_pubkey(csr, pk) || !X509_REQ_sign(csr, pk, EVP_sha256()))
        goto out;
    if ((rc = certify(c, name, csr, subject, o->days, cert)) != EX_OK)
        goto out;
    /* Written only once certified, and never over another file. */
    if (!(f = new_private_file(o->key_out))) {
        rc = EX_FAIL;
        goto out;
    }
    if (!(o->pass_file ? PEM_write_PKCS8PrivateKey(f, pk, EVP_aes_256_cbc(), pass, (int)strlen(pass), NULL, NULL)
                       : PEM_write_PKCS8PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL)))
        rc = EX_FAIL;
    rc = close_file(f, o->key_out, rc);
    if (rc == EX_OK && !o->pass_file)
        fprintf(stderr, "tessera: note: %s is not under a passphrase (--pass-file): keep it offline\n", o->key_out);
out:
    tess_wipe(pass, sizeof(pass));
    X509_REQ_free(csr);
    EVP_PKEY_free(pk);
    if (rc != EX_OK) {
        X509_free(*cert);
        *cert = NULL;
    }
    return rc;
}

static int create_in_hsm(struct cms_ctx *c, const char *name, const struct escrow_opts *o, const X509_NAME *subject,
                         X509 **cert, const char **oaep)
{
    struct tool_hsm hsm;
    X509_REQ *csr = NULL;
    char label[128];
    int rc = tool_hsm_open(&hsm, o->hsm_uri, o->hsm_module, o->hsm_pin_file, true);

    if (rc != EX_OK)
        return rc;
    /* The URI's object= names the key; the escrow key's name when it has none. */
    CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(hsm.uri, CKA_LABEL);
    if (a && a->ulValueLen < sizeof(label))
        snprintf(label, sizeof(label), "%.*s", (int)a->ulValueLen, (const char *)a->pValue);
    else
        snprintf(label, sizeof(label), "%s", name);
    rc = tool_hsm_escrow_generate(&hsm, label, subject, &csr);
    if (rc == EX_OK)
        rc = certify(c, name, csr, subject, o->days, cert);
    /* Tried once before it is trusted with any archive: which OAEP hash the
     * HSM decrypts with (SoftHSM 2.6 does only SHA-1). */
    if (rc == EX_OK && !(*oaep = tool_hsm_escrow_oaep(&hsm, X509_get0_pubkey(*cert)))) {
        fprintf(stderr, "tessera: the HSM's new key decrypts RSAES-OAEP with neither SHA-256 nor SHA-1\n");
        rc = EX_FAIL;
    }
    X509_REQ_free(csr);
    tool_hsm_close(&hsm);
    return rc;
}

static int cmd_escrow_create(const char *verb, int argc, char **argv)
{
    static const char usage[] =
        "usage: tessera escrow create NAME --key-out FILE [--pass-file F] [--days N]\n"
        "       tessera escrow create NAME --hsm-uri URI [--hsm-module M] [--hsm-pin-file F] [--days N]\n"
        "       tessera escrow add NAME --cert FILE [--oaep sha256|sha1]";
    static const struct option extra[] = {
        { "key-out", required_argument, 0, 'o' },  { "pass-file", required_argument, 0, 'w' },
        { "hsm-uri", required_argument, 0, 'u' },  { "hsm-module", required_argument, 0, 'H' },
        { "hsm-pin-file", required_argument, 0, 'q' }, { "cert", required_argument, 0, 'C' },
        { "days", required_argument, 0, 'd' },     { "oaep", required_argument, 0, 'O' },
    };
    struct escrow_opts o = { .days = 3650 };
    struct cms_ctx c;
    X509_NAME *subject = NULL;
    X509 *cert = NULL;
    char fp[65], dn[160];
    const char *name, *kept, *oaep = "sha256";
    bool add = !strcmp(verb, "add");
    int rc;

    memset(&c, 0, sizeof(c));
    rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_escrow, &o, usage);
    if (rc == EX_OK && (optind != argc - 1 || (add ? !o.cert || o.key_out || o.hsm_uri
                                                   : o.cert || o.oaep || !o.key_out == !o.hsm_uri)))
        rc = tool_usage_error(usage);
    if (rc != EX_OK)
        return rc;
    name = argv[optind];
    kept = add ? "elsewhere" : o.hsm_uri ? "hsm" : "file";
    if ((rc = cms_ctx_open(&c, false)) != EX_OK ||
        (rc = cms_report(&c, cms_authorize(c.db, &c.actor, "escrow.add", NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (add) {
        FILE *f = fopen(o.cert, "r");
        cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
            fclose(f);
        if (!cert) {
            fprintf(stderr, "tessera: %s is not a PEM certificate\n", o.cert);
            rc = EX_USAGE;
            goto out;
        }
    } else {
        snprintf(dn, sizeof(dn), "/CN=Tessera escrow key %s", name);
        if (!(subject = cms_parse_dn(dn))) {
            rc = tool_usage_error(usage);
            goto out;
        }
        rc = o.hsm_uri ? create_in_hsm(&c, name, &o, subject, &cert, &oaep)
                       : create_in_file(&c, name, &o, subject, &cert);
        if (rc != EX_OK)
            goto out;
    }
    if (o.oaep)
        oaep = o.oaep;
    rc = cms_report(&c, cms_escrow_key_add(c.db, &c.actor, name, cert, kept, oaep));
    if (rc != EX_OK) {
        if (!add)
            fprintf(stderr, "tessera: the key made is not recorded: %s\n",
                    o.hsm_uri ? "delete it from the HSM" : "delete its file");
        goto out;
    }
    cms_escrow_fingerprint(cert, fp);
    if (tool_json) {
        printf("{\"name\":");
        tool_json_str(name);
        printf(",\"fingerprint\":\"%s\",\"kept\":\"%s\",\"oaep\":\"%s\"}\n", fp, kept, oaep);
    } else {
        printf("escrow key %s (%s, OAEP with %s), now the current one: sha256 %s\n", name, kept, oaep, fp);
    }
out:
    X509_free(cert);
    X509_NAME_free(subject);
    cms_ctx_close(&c);
    return rc;
}

/* ---- escrow list | archives ---- */

static int print_key(void *arg, const struct cms_escrow_key *k)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"id\":%" PRId64 ",\"name\":", *first ? "" : ",", k->id);
        tool_json_str(k->name);
        printf(",\"fingerprint\":\"%s\",\"kept\":\"%s\",\"created\":\"%s\",\"created_by\":", k->fingerprint, k->kept,
               k->created);
        tool_json_str(k->created_by);
        printf(",\"oaep\":\"%s\",\"current\":%s}", k->oaep, k->current ? "true" : "false");
    } else {
        printf("%-3" PRId64 " %-20s %-9s %-6s %s %s %s\n", k->id, k->name, k->kept, k->oaep, k->created,
               k->fingerprint, k->current ? "(current)" : "");
    }
    *first = false;
    return CMS_OK;
}

static int print_archive(void *arg, const struct cms_escrowed *e)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"id\":%" PRId64 ",\"holder\":", *first ? "" : ",", e->id);
        tool_json_str(e->holder);
        printf(",\"card\":%" PRId64 ",\"serial\":\"%s\",\"card_state\":\"%s\",\"key\":", e->card_id, e->card_serial,
               e->card_state);
        tool_json_str(e->key_name);
        printf(",\"certificate\":\"%s\",\"cert_state\":\"%s\",\"not_after\":\"%s\",\"escrow_key\":", e->cert_serial,
               e->cert_state, e->not_after);
        tool_json_str(e->escrow_key);
        printf(",\"created\":\"%s\"}", e->created);
    } else {
        printf("%-5" PRId64 " %-16s card %-5" PRId64 " %-10s %-12s cert %s (%s, until %s) escrow key %s\n", e->id,
               e->holder, e->card_id, e->card_state, e->key_name, e->cert_serial, e->cert_state, e->not_after,
               e->escrow_key);
    }
    *first = false;
    return CMS_OK;
}

static int cmd_escrow_list(const char *verb, int argc, char **argv)
{
    static const char usage[] = "usage: tessera escrow list\n"
                                "       tessera escrow archives [--card ID|SERIAL] [--holder UID]";
    static const struct option extra[] = { { "card", required_argument, 0, 'c' },
                                           { "holder", required_argument, 0, 'h' } };
    bool archives = !strcmp(verb, "archives"), first = true;
    struct escrow_opts o = { 0 };
    struct cms_card card = { 0 };
    struct cms_ctx c;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = cms_parse_opts(&c, argc, argv, archives ? extra : NULL, archives ? TESS_ARRAY_SIZE(extra) : 0, opt_escrow,
                        &o, usage);
    if (rc == EX_OK && optind != argc)
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if (o.card && (rc = cms_card_arg(&c, o.card, &card)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "escrow.show", o.holder, o.card, NULL))) != EX_OK)
        goto out;
    if (tool_json)
        printf("[");
    rc = cms_report(&c, archives ? cms_escrowed_list(c.db, card.id, o.holder, print_archive, &first)
                                 : cms_escrow_key_list(c.db, print_key, &first));
    if (tool_json)
        printf("]\n");
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- key recover ---- */

/* The archives a recovery takes: one (the newest of a card, of --key when
 * given), or with --all every one of the card or holder (of --key), oldest
 * first, so a replacement gets the holder's whole key history. */
struct pick {
    const char *key_name;
    bool all;
    int64_t ids[64];
    int n;
    bool mixed;                /* one asked for, but keys of two names */
    bool too_many;             /* more than ids holds */
    char first_name[64];
};

static int pick_archives(void *arg, const struct cms_escrowed *e)
{
    struct pick *p = arg;
    if (p->key_name && strcmp(p->key_name, e->key_name))
        return CMS_OK;
    if (!p->all) {
        if (!p->n++) {
            snprintf(p->first_name, sizeof(p->first_name), "%s", e->key_name);
            p->ids[0] = e->id;
        } else if (strcmp(p->first_name, e->key_name)) {
            p->mixed = true;
        }
        return CMS_OK;
    }
    if (p->n == (int)TESS_ARRAY_SIZE(p->ids)) {
        p->too_many = true;
        return CMS_OK;
    }
    memmove(p->ids + 1, p->ids, sizeof(p->ids[0]) * (size_t)p->n);   /* listed newest first */
    p->ids[0] = e->id;
    p->n++;
    return CMS_OK;
}

/* The escrow private key: from its file (read once), or its HSM (opened
 * once, for every archive of the run). */
struct escrow_src {
    EVP_PKEY *file_key;
    struct tool_hsm hsm;
    bool hsm_open;
};

static int escrow_src_open(const struct escrow_opts *o, struct escrow_src *src)
{
    char pass[256] = "";
    memset(src, 0, sizeof(*src));
    if (o->hsm_uri) {
        int rc = tool_hsm_open(&src->hsm, o->hsm_uri, o->hsm_module, o->hsm_pin_file, false);
        src->hsm_open = rc == EX_OK;
        return rc;
    }
    FILE *f = fopen(o->escrow_key, "r");
    if (!f) {
        fprintf(stderr, "tessera: cannot read %s\n", o->escrow_key);
        return EX_USAGE;
    }
    if (o->escrow_pass_file && tool_read_secret(o->escrow_pass_file, "escrow key passphrase", pass, sizeof(pass))) {
        fclose(f);
        return EX_USAGE;
    }
    src->file_key = PEM_read_PrivateKey(f, NULL, NULL, o->escrow_pass_file ? pass : NULL);
    fclose(f);
    tess_wipe(pass, sizeof(pass));
    if (!src->file_key) {
        fprintf(stderr, "tessera: %s is not a private key, or its passphrase is wrong\n", o->escrow_key);
        return EX_PIN;
    }
    return EX_OK;
}

static void escrow_src_close(struct escrow_src *src)
{
    EVP_PKEY_free(src->file_key);
    if (src->hsm_open)
        tool_hsm_close(&src->hsm);
    memset(src, 0, sizeof(*src));
}

static int open_archive(struct escrow_src *src, const unsigned char *der, size_t len, X509 *cert, EVP_PKEY **key)
{
    char err[256];
    int rc = src->file_key ? cms_escrow_open(der, len, src->file_key, cert, key, err, sizeof(err))
                           : cms_escrow_open_unwrap(der, len, tool_hsm_escrow_unwrap, &src->hsm, cert, key, err,
                                                    sizeof(err));
    if (rc != CMS_OK) {
        fprintf(stderr, "tessera: %s\n", err);
        return rc == CMS_TAMPERED ? EX_TAMPERED : EX_FAIL;
    }
    return EX_OK;
}

static int to_pkcs12(struct cms_ctx *c, const struct cms_escrowed *e, EVP_PKEY *key, X509 *cert, const char *path)
{
    STACK_OF(X509) *cas = sk_X509_new_null();
    struct cms_ca *ca = NULL;
    X509 *ca_cert = NULL;
    PKCS12 *p12 = NULL;
    char otp[CMS_CODE_LEN], name[sizeof(e->holder) + sizeof(e->key_name) + 16], to[4200];
    FILE *f = NULL;
    /* 100 bits, written as collection codes are; printed once, kept nowhere. */
    int rc = cms_code_random(otp) == CMS_OK ? EX_OK : EX_FAIL;

    /* The CA's certificate too, when the CA is there to give it. */
    if (rc == EX_OK && cms_ca_open(c->db, &ca) == CMS_OK && ca->ops->certificate(ca, &ca_cert) == CMS_OK && cas &&
        sk_X509_push(cas, ca_cert))
        ca_cert = NULL;
    snprintf(name, sizeof(name), "%s %s (recovered)", e->holder, e->key_name);
    if (rc == EX_OK)
        p12 = PKCS12_create_ex(otp, name, key, cert, cas, NID_aes_256_cbc, NID_aes_256_cbc, P12_ITER, -1, 0, NULL,
                               NULL);
    if (!p12 || !PKCS12_set_mac(p12, otp, -1, NULL, 0, P12_ITER, EVP_sha256())) {
        fprintf(stderr, "tessera: cannot make the PKCS#12\n");
        rc = EX_FAIL;
        goto out;
    }
    snprintf(to, sizeof(to), "pkcs12 %s", path);
    if ((rc = cms_report(c, cms_escrow_recovered(c->db, &c->actor, e, to, "ok"))) != EX_OK)
        goto out;
    if (!(f = new_private_file(path))) {
        rc = EX_FAIL;
    } else {
        rc = i2d_PKCS12_fp(f, p12) ? EX_OK : EX_FAIL;
        rc = close_file(f, path, rc);
    }
    if (rc != EX_OK) {
        cms_escrow_recovered(c->db, &c->actor, e, to, "failed: the file was not written");
        goto out;
    }
    if (tool_json)
        printf("{\"archive\":%" PRId64 ",\"pkcs12\":\"%s\",\"password\":\"%s\"}\n", e->id, path, otp);
    else
        printf("key %s of %s written to %s\none-time password (shown once, kept nowhere): %s\n", e->key_name, e->holder,
               path, otp);
out:
    tess_wipe(otp, sizeof(otp));
    PKCS12_free(p12);
    X509_free(ca_cert);
    sk_X509_pop_free(cas, X509_free);
    cms_ca_close(ca);
    return rc;
}

/* The card recovered keys go into: the same holder's, active, in this
 * machine (a TPM card, or a PIV card in a reader), opened with its PIN
 * before anything is recorded. */
struct target {
    struct cms_card card;
    struct tool_card_session cs;
    int loaded;
};

static int target_open(struct cms_ctx *c, const char *arg, const char *holder, const char *pin_file,
                       struct target *t)
{
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    int rc = cms_card_arg(c, arg, &t->card);

    if (rc != EX_OK)
        return rc;
    /* Never into another holder's card, nor one not in use. */
    if (strcmp(t->card.holder, holder)) {
        fprintf(stderr, "tessera: card %" PRId64 " is %s's, not %s's\n", t->card.id, t->card.holder, holder);
        return EX_DENIED;
    }
    if (strcmp(t->card.state, "active") || !t->card.serial[0]) {
        fprintf(stderr, "tessera: card %" PRId64 " is %s: keys are recovered to an active card\n", t->card.id,
                t->card.state);
        return EX_STATE;
    }
    ca.serial = t->card.serial;
    return tool_card_login(&t->cs, &ca, pin_file);
}

/* Does the card hold this certificate under id? */
static bool holds_cert(struct target *t, uint8_t id, X509 *cert)
{
    CK_OBJECT_HANDLE o;
    unsigned char der[8192];
    const unsigned char *q = der;
    CK_ATTRIBUTE value = { CKA_VALUE, der, sizeof(der) };
    X509 *have;
    bool same;
    if (tool_find_objects(&t->cs.p, t->cs.h, CKO_CERTIFICATE, &id, 1, &o, 1) != 1 ||
        t->cs.p.f->C_GetAttributeValue(t->cs.h, o, &value, 1) != CKR_OK)
        return false;
    have = d2i_X509(NULL, &q, (long)value.ulValueLen);
    same = have && !X509_cmp(have, cert);
    X509_free(have);
    return same;
}

/* A PIV card keeps the keys its holder no longer uses in its retired key
 * management slots (82 to 95, CKA_ID 05 to 18, SP 800-73's key history):
 * a recovered key goes into the first that holds neither a certificate nor
 * a key. *there: the key is on the card already (in a slot of its own, as
 * the key a PIV renewal kept in 9D, or recovered before). */
static int retired_slot(struct target *t, EVP_PKEY *key, X509 *cert, uint8_t *id, bool *there)
{
    uint8_t have[TOOL_MAX_ID];
    CK_ULONG have_len = tool_key_on_card(&t->cs.p, t->cs.h, key, have);
    *there = false;
    if (have_len == 1) {
        *id = have[0];
        *there = true;
        return EX_OK;
    }
    for (uint8_t i = 0x05; i <= 0x18; i++)
        if (holds_cert(t, i, cert)) {
            *id = i;
            *there = true;
            return EX_OK;
        }
    for (uint8_t i = 0x05; i <= 0x18; i++) {
        CK_OBJECT_HANDLE o;
        if (tool_find_objects(&t->cs.p, t->cs.h, CKO_CERTIFICATE, &i, 1, &o, 1) == 0 &&
            tool_find_objects(&t->cs.p, t->cs.h, CKO_PRIVATE_KEY, &i, 1, &o, 1) == 0) {
            *id = i;
            return EX_OK;
        }
    }
    fprintf(stderr, "tessera: card %s has no free retired key slot (82 to 95) for another recovered key\n",
            t->card.serial);
    return EX_FAIL;
}

static int target_load(struct cms_ctx *c, struct target *t, const struct cms_escrowed *e, EVP_PKEY *key, X509 *cert)
{
    char to[80], label[128];
    uint8_t id[5] = { 'E' };   /* E and the archive's number: one id per recovered key */
    size_t idlen = sizeof(id);
    bool there = false;
    int rc;

    if (strcmp(t->card.holder, e->holder)) {
        fprintf(stderr, "tessera: escrowed key %" PRId64 " is %s's, not %s's\n", e->id, e->holder, t->card.holder);
        return EX_DENIED;
    }
    /* The card's own current key is on it already (a renewed-away one is
     * not: that one is brought back). */
    if (e->card_id == t->card.id && !strcmp(e->cert_state, "active")) {
        if (!tool_json)
            printf("key %s (certificate %s) is this card's own: on it already\n", e->key_name, e->cert_serial);
        return EX_OK;
    }
    for (int i = 0; i < 4; i++)
        id[1 + i] = (uint8_t)((uint64_t)e->id >> (24 - 8 * i));
    if (t->cs.info.cardType == CKT_TESSERA_PIV) {
        idlen = 1;
        if ((rc = retired_slot(t, key, cert, id, &there)) != EX_OK)
            return rc;
        if (there && !tool_json)
            printf("key %s (certificate %s) is on card %s already (id %02x)\n", e->key_name, e->cert_serial,
                   t->card.serial, id[0]);
    }
    snprintf(label, sizeof(label), "%s (recovered)", e->key_name);
    snprintf(to, sizeof(to), "card %s", t->card.serial);
    if ((rc = cms_report(c, cms_escrow_recovered(c->db, &c->actor, e, to, "ok"))) != EX_OK)
        return rc;
    rc = there ? EX_OK : tool_import_key(&t->cs.p, t->cs.h, &t->cs.info, key, cert, NULL, id, idlen, label, false);
    if (rc != EX_OK) {
        cms_escrow_recovered(c->db, &c->actor, e, to, "failed: the card did not take the key");
        return rc;
    }
    char hex[2 * sizeof(id) + 1];
    tess_hex(hex, id, idlen);
    if (tool_json)
        printf("%s{\"archive\":%" PRId64 ",\"card\":\"%s\",\"id\":\"%s\"}", t->loaded ? "," : "", e->id,
               t->card.serial, hex);
    else
        printf("key %s of %s (certificate %s) recovered to card %s (id %s%s)\n", e->key_name, e->holder,
               e->cert_serial, t->card.serial, hex, idlen == 1 && id[0] >= 5 ? ", a retired key slot" : "");
    t->loaded++;
    return EX_OK;
}

/* One archive opened and delivered: authorised first (a refusal is in the
 * trail), then opened, then recorded and handed out. */
static int recover_one(struct cms_ctx *c, const struct escrow_opts *o, struct escrow_src *src, struct target *t,
                       int64_t id)
{
    struct cms_escrowed e;
    unsigned char *der = NULL;
    size_t len = 0;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rc;

    if ((rc = cms_report(c, cms_escrowed_get(c->db, id, &e, &der, &len, &cert))) != EX_OK ||
        (rc = cms_report(c, cms_authorize(c->db, &c->actor, "key.recover", e.holder,
                                          e.card_serial[0] ? e.card_serial : NULL, NULL))) != EX_OK)
        goto out;
    if (!src->file_key && !src->hsm_open && (rc = escrow_src_open(o, src)) != EX_OK)
        goto out;
    if (o->to_card && !t->cs.p.f && (rc = target_open(c, o->to_card, e.holder, o->pin_file, t)) != EX_OK)
        goto out;
    if ((rc = open_archive(src, der, len, cert, &key)) != EX_OK)
        goto out;
    rc = o->p12 ? to_pkcs12(c, &e, key, cert, o->p12) : target_load(c, t, &e, key, cert);
out:
    EVP_PKEY_free(key);
    X509_free(cert);
    OPENSSL_free(der);
    return rc;
}

static int cmd_key_recover(int argc, char **argv)
{
    static const char usage[] =
        "usage: tessera key recover (--archive N | --card ID|SERIAL [--key NAME] [--all] |\n"
        "                            --holder UID [--key NAME] --all)\n"
        "                           (--p12 FILE | --to-card ID|SERIAL [--pin-file F])\n"
        "                           (--escrow-key FILE [--escrow-pass-file F] |\n"
        "                            --hsm-uri URI [--hsm-module M] [--hsm-pin-file F])\n"
        "  --all: every escrowed key of the card or holder, into the card (--to-card)";
    static const struct option extra[] = {
        { "archive", required_argument, 0, 'a' },     { "card", required_argument, 0, 'c' },
        { "key", required_argument, 0, 'k' },         { "p12", required_argument, 0, 'f' },
        { "to-card", required_argument, 0, 't' },     { "pin-file", required_argument, 0, 'P' },
        { "escrow-key", required_argument, 0, 'e' },  { "escrow-pass-file", required_argument, 0, 'W' },
        { "hsm-uri", required_argument, 0, 'u' },     { "hsm-module", required_argument, 0, 'H' },
        { "hsm-pin-file", required_argument, 0, 'q' }, { "holder", required_argument, 0, 'h' },
        { "all", no_argument, 0, 'L' },
    };
    struct escrow_opts o = { 0 };
    struct escrow_src src = { 0 };
    struct target t = { 0 };
    struct pick p = { 0 };
    struct cms_ctx c;
    struct cms_card card = { 0 };
    int rc, given;

    memset(&c, 0, sizeof(c));
    rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_escrow, &o, usage);
    given = !!o.archive + !!o.card + !!o.holder;
    if (rc == EX_OK && (optind != argc || given != 1 || !o.p12 == !o.to_card || !o.escrow_key == !o.hsm_uri ||
                        (o.archive && (o.key_name || o.all)) || (o.holder && !o.all) || (o.all && !o.to_card)))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if (o.archive) {
        p.ids[p.n++] = o.archive;
    } else {
        p.key_name = o.key_name;
        p.all = o.all;
        if ((o.card && (rc = cms_card_arg(&c, o.card, &card)) != EX_OK) ||
            (rc = cms_report(&c, cms_escrowed_list(c.db, card.id, o.holder, pick_archives, &p))) != EX_OK)
            goto out;
        if (p.too_many) {
            fprintf(stderr, "tessera: more than %zu escrowed keys: recover them by --key or --archive\n",
                    TESS_ARRAY_SIZE(p.ids));
            rc = EX_USAGE;
            goto out;
        }
        if (p.mixed || !p.n) {
            fprintf(stderr, "tessera: %s\n", p.mixed ? "escrowed keys of more than one name: say which (--key), or --all"
                                                     : "no such escrowed key");
            rc = p.mixed ? EX_USAGE : EX_NOTFOUND;
            goto out;
        }
    }
    if (tool_json && o.to_card)
        printf("[");
    for (int i = 0; i < p.n && rc == EX_OK; i++)
        rc = recover_one(&c, &o, &src, &t, p.ids[i]);
    if (tool_json && o.to_card)
        printf("]\n");
out:
    tool_card_logout(&t.cs);
    escrow_src_close(&src);
    cms_ctx_close(&c);
    return rc;
}

int cmd_cms_escrow(const char *noun, const char *verb, int argc, char **argv)
{
    if (!strcmp(noun, "key") && !strcmp(verb, "recover"))
        return cmd_key_recover(argc, argv);
    if (strcmp(noun, "escrow"))
        return -1;
    if (!strcmp(verb, "create") || !strcmp(verb, "add"))
        return cmd_escrow_create(verb, argc, argv);
    if (!strcmp(verb, "list") || !strcmp(verb, "archives"))
        return cmd_escrow_list(verb, argc, argv);
    return tool_usage_error("usage: tessera escrow create|add|list|archives ...; tessera key recover ...");
}
