/* Credential profiles: parsing, canonical form, versions. */
#include "config.h"
#include "profile.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "../util.h"
#include "audit.h"
#include "holders.h"

static const char *const key_types[] = { "rsa2048", "rsa3072", "p256", "p384" };
static const uint8_t piv_slots[] = { 0x9a, 0x9c, 0x9d, 0x9e };
static const struct {
    const char *name;
    unsigned eku;
} ekus[] = { { "client-auth", CMS_EKU_CLIENT_AUTH }, { "email", CMS_EKU_EMAIL },
             { "smartcard-logon", CMS_EKU_SMARTCARD_LOGON } };

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int bad(char *err, size_t errlen, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad(char *err, size_t errlen, int line, const char *fmt, ...)
{
    va_list ap;
    int n = line ? snprintf(err, errlen, "line %d: ", line) : 0;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return CMS_INVALID;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

static int parse_yes(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"))
        *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0"))
        *out = false;
    else
        return -1;
    return 0;
}

static bool name_ok(const char *s, size_t max)
{
    if (!*s || strlen(s) >= max)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

/* A subject template: "/A=v/B=v" whose ${...} placeholders close. */
static bool subject_ok(const char *s)
{
    if (s[0] != '/' || strlen(s) < 4)
        return false;
    for (const char *p = strstr(s, "${"); p; p = strstr(p + 2, "${")) {
        const char *close = strchr(p, '}');
        if (!close || close == p + 2)
            return false;
        for (const char *q = p + 2; q < close; q++)
            if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_')
                return false;
    }
    return true;
}

static int set_profile(struct cms_profile *p, const char *k, const char *v, int line, char *err, size_t errlen)
{
    if (!strcmp(k, "name")) {
        if (!name_ok(v, sizeof(p->name)))
            return bad(err, errlen, line, "name: letters, digits, '-', '_', '.' only");
        strcpy(p->name, v);
    } else if (!strcmp(k, "description")) {
        snprintf(p->description, sizeof(p->description), "%s", v);
    } else if (!strcmp(k, "card-types")) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", v);
        p->card_types = 0;
        for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (!strcasecmp(t, "tpm"))
                p->card_types |= CMS_CARD_TPM;
            else if (!strcasecmp(t, "piv"))
                p->card_types |= CMS_CARD_PIV;
            else
                return bad(err, errlen, line, "card-types: tpm, piv (not %s)", t);
        }
    } else {
        return bad(err, errlen, line, "[profile] has no setting %s", k);
    }
    return CMS_OK;
}

static int set_pin(struct cms_profile *p, const char *k, const char *v, int line, char *err, size_t errlen)
{
    char msg[160];
    if (!strcmp(k, "tries")) {
        if (parse_int(v, 1, 15, &p->pin_tries))
            return bad(err, errlen, line, "tries: 1 to 15");
    } else if (!strcmp(k, "set-by")) {
        if (!strcasecmp(v, "user"))
            p->pin_generated = false;
        else if (!strcasecmp(v, "generated"))
            p->pin_generated = true;
        else
            return bad(err, errlen, line, "set-by: user or generated");
    } else {
        /* min-length -> min_length: the names the PIN policy takes */
        char name[32];
        snprintf(name, sizeof(name), "%s", k);
        for (char *c = name; *c; c++)
            if (*c == '-')
                *c = '_';
        if (tess_pin_policy_set(&p->pin, name, v, msg, sizeof(msg)))
            return bad(err, errlen, line, "%s", msg);
    }
    return CMS_OK;
}

static int set_admin(struct cms_profile *p, const char *k, const char *v, int line, char *err, size_t errlen)
{
    if (!strcmp(k, "master-file")) {
        if (v[0] != '/' || strlen(v) >= sizeof(p->master_file))
            return bad(err, errlen, line, "master-file: an absolute path");
        strcpy(p->master_file, v);
    } else if (!strcmp(k, "master-uri")) {
        if (strncmp(v, "pkcs11:", 7) || strlen(v) >= sizeof(p->master_uri))
            return bad(err, errlen, line, "master-uri: a pkcs11: URI");
        strcpy(p->master_uri, v);
    } else if (!strcmp(k, "prf")) {
        if (tess_prf_parse(v, &p->prf))
            return bad(err, errlen, line, "prf: cmac-aes256, cmac-aes128 or hmac-sha256");
    } else if (!strcmp(k, "alg")) {
        if (tess_key_alg_parse(v, &p->alg))
            return bad(err, errlen, line, "alg: 3des, aes128, aes192 or aes256");
    } else {
        return bad(err, errlen, line, "[admin-key] has no setting %s", k);
    }
    return CMS_OK;
}

static int set_key(struct cms_key_spec *key, const char *k, const char *v, int line, char *err, size_t errlen)
{
    if (!strcmp(k, "type")) {
        size_t i;
        for (i = 0; i < TESS_ARRAY_SIZE(key_types) && strcmp(v, key_types[i]); i++)
            ;
        if (i == TESS_ARRAY_SIZE(key_types))
            return bad(err, errlen, line, "type: rsa2048, rsa3072, p256 or p384");
        strcpy(key->type, v);
    } else if (!strcmp(k, "piv-slot")) {
        unsigned long s = strtoul(v, NULL, 16);
        size_t i;
        for (i = 0; i < sizeof(piv_slots) && piv_slots[i] != s; i++)
            ;
        if (i == sizeof(piv_slots) || strlen(v) != 2)
            return bad(err, errlen, line, "piv-slot: 9a, 9c, 9d or 9e");
        key->piv_slot = (uint8_t)s;
    } else if (!strcmp(k, "usage")) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", v);
        key->sign = key->decrypt = false;
        for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (!strcmp(t, "sign"))
                key->sign = true;
            else if (!strcmp(t, "decrypt"))
                key->decrypt = true;
            else
                return bad(err, errlen, line, "usage: sign, decrypt (not %s)", t);
        }
    } else if (!strcmp(k, "certificate")) {
        char buf[128];
        snprintf(buf, sizeof(buf), "%s", v);
        key->eku = 0;
        if (strcmp(v, "none") != 0) {
            for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
                size_t i;
                for (i = 0; i < TESS_ARRAY_SIZE(ekus) && strcmp(t, ekus[i].name); i++)
                    ;
                if (i == TESS_ARRAY_SIZE(ekus))
                    return bad(err, errlen, line, "certificate: client-auth, email, smartcard-logon or none (not %s)", t);
                key->eku |= ekus[i].eku;
            }
        }
    } else if (!strcmp(k, "subject")) {
        if (!subject_ok(v) || strlen(v) >= sizeof(key->subject))
            return bad(err, errlen, line, "subject: /CN=... with ${attribute} placeholders");
        strcpy(key->subject, v);
    } else if (!strcmp(k, "lifetime-days")) {
        if (parse_int(v, 1, 3650, &key->lifetime_days))
            return bad(err, errlen, line, "lifetime-days: 1 to 3650");
    } else if (!strcmp(k, "escrow")) {
        if (parse_yes(v, &key->escrow))
            return bad(err, errlen, line, "escrow: yes or no");
    } else {
        return bad(err, errlen, line, "[key] has no setting %s", k);
    }
    return CMS_OK;
}

static int set_lifecycle(struct cms_profile *p, const char *k, const char *v, int line, char *err, size_t errlen)
{
    int *field = !strcmp(k, "renewal-window-days") ? &p->renewal_window_days
               : !strcmp(k, "notify-every-days")   ? &p->notify_every_days
               : !strcmp(k, "temporary-card-days") ? &p->temporary_days
                                                   : NULL;
    if (!field)
        return bad(err, errlen, line, "[lifecycle] has no setting %s", k);
    /* notify-every-days = 0: a holder is told once. */
    int least = field == &p->notify_every_days ? 0 : 1;
    if (parse_int(v, least, 365, field))
        return bad(err, errlen, line, "%s: %d to 365", k, least);
    return CMS_OK;
}

/* Rules across settings, once the whole file is read. */
static int check_profile(struct cms_profile *p, char *err, size_t errlen)
{
    char msg[160];
    if (!p->name[0])
        return bad(err, errlen, 0, "[profile] needs a name");
    if (!p->card_types)
        return bad(err, errlen, 0, "[profile] needs card-types");
    if (tess_pin_policy_validate(&p->pin, msg, sizeof(msg)))
        return bad(err, errlen, 0, "[pin]: %s", msg);
    if (p->master_file[0] && p->master_uri[0])
        return bad(err, errlen, 0, "[admin-key]: master-file or master-uri, not both");
    if (!p->nkeys)
        return bad(err, errlen, 0, "a profile needs at least one [key NAME]");
    for (int i = 0; i < p->nkeys; i++) {
        struct cms_key_spec *k = &p->keys[i];
        if (!k->type[0])
            return bad(err, errlen, 0, "[key %s] needs a type", k->name);
        if (!k->sign && !k->decrypt)
            return bad(err, errlen, 0, "[key %s] needs a usage", k->name);
        if ((p->card_types & CMS_CARD_PIV) && !k->piv_slot)
            return bad(err, errlen, 0, "[key %s] needs a piv-slot: the profile is for PIV cards", k->name);
        if ((p->card_types & CMS_CARD_PIV) && !strcmp(k->type, "rsa3072"))
            return bad(err, errlen, 0, "[key %s]: a PIV card's keys are rsa2048, p256 or p384", k->name);
        for (int j = 0; j < i; j++)
            if (k->piv_slot && p->keys[j].piv_slot == k->piv_slot)
                return bad(err, errlen, 0, "[key %s] and [key %s] share PIV slot %02x", p->keys[j].name, k->name,
                           k->piv_slot);
        if (k->eku && !k->subject[0])
            return bad(err, errlen, 0, "[key %s] has a certificate but no subject", k->name);
        if (k->escrow && (k->sign || !k->decrypt))
            return bad(err, errlen, 0, "[key %s]: only decryption keys are escrowed (usage = decrypt)", k->name);
        if (k->escrow && !k->eku)
            return bad(err, errlen, 0, "[key %s]: an escrowed key has a certificate (eku)", k->name);
        if (k->escrow && strncmp(k->type, "rsa", 3) != 0)
            return bad(err, errlen, 0, "[key %s]: escrowed keys are RSA", k->name);
    }
    /* A PIV card's own rule (SP 800-73): a PIN of 6 to 8 characters. */
    if ((p->card_types & CMS_CARD_PIV) && (p->pin.min_len < 6 || p->pin.max_len > 8))
        return bad(err, errlen, 0, "[pin]: a PIV card's PIN is 6 to 8 characters: min-length 6 or more, "
                   "max-length 8 or less");
    return CMS_OK;
}

static void defaults(struct cms_profile *p)
{
    memset(p, 0, sizeof(*p));
    tess_pin_policy_default(&p->pin);
    p->pin_tries = 5;
    p->prf = TESS_PRF_CMAC_AES256;
    p->alg = TESS_KEY_AES256;
    p->renewal_window_days = 30;
    p->notify_every_days = 7;
    p->temporary_days = 7;
}

int cms_profile_parse(const char *text, struct cms_profile *p, char *err, size_t errlen)
{
    char *copy = strdup(text);
    enum { NONE, PROFILE, PIN, ADMIN, KEY, LIFECYCLE } section = NONE;
    int line = 0, rc = CMS_OK;
    struct cms_key_spec *key = NULL;

    defaults(p);
    if (!copy)
        return bad(err, errlen, 0, "out of memory");
    /* strsep, not strtok: empty lines still count for the line numbers */
    for (char *next = copy, *raw; rc == CMS_OK && (raw = strsep(&next, "\n"));) {
        line++;
        char *l = trim(raw);
        if (!*l || *l == '#' || *l == ';')
            continue;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close || close[1]) {
                rc = bad(err, errlen, line, "a section is [name]");
                break;
            }
            *close = '\0';
            char *name = trim(l + 1);
            key = NULL;
            if (!strcmp(name, "profile"))
                section = PROFILE;
            else if (!strcmp(name, "pin"))
                section = PIN;
            else if (!strcmp(name, "admin-key"))
                section = ADMIN;
            else if (!strcmp(name, "lifecycle"))
                section = LIFECYCLE;
            else if (!strncmp(name, "key ", 4)) {
                char *kn = trim(name + 4);
                section = KEY;
                if (p->nkeys == CMS_PROFILE_MAX_KEYS)
                    rc = bad(err, errlen, line, "at most %d keys", CMS_PROFILE_MAX_KEYS);
                else if (!name_ok(kn, sizeof(key->name)))
                    rc = bad(err, errlen, line, "a key's name: letters, digits, '-', '_', '.' only");
                for (int i = 0; rc == CMS_OK && i < p->nkeys; i++)
                    if (!strcmp(p->keys[i].name, kn))
                        rc = bad(err, errlen, line, "[key %s] twice", kn);
                if (rc == CMS_OK) {
                    key = &p->keys[p->nkeys++];
                    strcpy(key->name, kn);
                    key->lifetime_days = 365;
                }
            } else {
                rc = bad(err, errlen, line, "unknown section [%s]", name);
            }
            continue;
        }
        char *eq = strchr(l, '=');
        if (!eq) {
            rc = bad(err, errlen, line, "not \"setting = value\"");
            break;
        }
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        switch (section) {
        case PROFILE: rc = set_profile(p, k, v, line, err, errlen); break;
        case PIN: rc = set_pin(p, k, v, line, err, errlen); break;
        case ADMIN: rc = set_admin(p, k, v, line, err, errlen); break;
        case KEY: rc = set_key(key, k, v, line, err, errlen); break;
        case LIFECYCLE: rc = set_lifecycle(p, k, v, line, err, errlen); break;
        default: rc = bad(err, errlen, line, "%s outside a section", k); break;
        }
    }
    free(copy);
    return rc == CMS_OK ? check_profile(p, err, errlen) : rc;
}

/* ---- canonical text */

struct text {
    char *s;
    size_t len, cap;
    bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->oom || n < 0)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->oom = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static const char *rule_name(enum tess_pin_class_rule r)
{
    return r == TESS_PIN_MANDATORY ? "mandatory" : r == TESS_PIN_FORBIDDEN ? "forbidden" : "optional";
}

char *cms_profile_format(const struct cms_profile *p)
{
    struct text t = { 0 };
    put(&t, "[profile]\nname = %s\n", p->name);
    if (p->description[0])
        put(&t, "description = %s\n", p->description);
    put(&t, "card-types = %s%s%s\n", p->card_types & CMS_CARD_TPM ? "tpm" : "",
        p->card_types == (CMS_CARD_TPM | CMS_CARD_PIV) ? ", " : "", p->card_types & CMS_CARD_PIV ? "piv" : "");
    put(&t, "\n[pin]\nmin-length = %d\nmax-length = %d\ndigits = %s\nuppercase = %s\nlowercase = %s\n"
            "special = %s\ntries = %d\nset-by = %s\n",
        p->pin.min_len, p->pin.max_len, rule_name(p->pin.rule[TESS_PIN_DIGITS]),
        rule_name(p->pin.rule[TESS_PIN_UPPER]), rule_name(p->pin.rule[TESS_PIN_LOWER]),
        rule_name(p->pin.rule[TESS_PIN_SPECIAL]), p->pin_tries, p->pin_generated ? "generated" : "user");
    put(&t, "\n[admin-key]\n");
    if (p->master_file[0])
        put(&t, "master-file = %s\n", p->master_file);
    if (p->master_uri[0])
        put(&t, "master-uri = %s\n", p->master_uri);
    put(&t, "prf = %s\nalg = %s\n", tess_prf_name(p->prf), tess_key_alg_name(p->alg));
    for (int i = 0; i < p->nkeys; i++) {
        const struct cms_key_spec *k = &p->keys[i];
        put(&t, "\n[key %s]\ntype = %s\n", k->name, k->type);
        if (k->piv_slot)
            put(&t, "piv-slot = %02x\n", k->piv_slot);
        put(&t, "usage = %s%s%s\n", k->sign ? "sign" : "", k->sign && k->decrypt ? ", " : "",
            k->decrypt ? "decrypt" : "");
        put(&t, "certificate = ");
        if (!k->eku)
            put(&t, "none");
        for (size_t e = 0, n = 0; e < TESS_ARRAY_SIZE(ekus); e++)
            if (k->eku & ekus[e].eku)
                put(&t, "%s%s", n++ ? ", " : "", ekus[e].name);
        put(&t, "\n");
        if (k->subject[0])
            put(&t, "subject = %s\n", k->subject);
        put(&t, "lifetime-days = %d\nescrow = %s\n", k->lifetime_days, k->escrow ? "yes" : "no");
    }
    put(&t, "\n[lifecycle]\nrenewal-window-days = %d\nnotify-every-days = %d\ntemporary-card-days = %d\n",
        p->renewal_window_days, p->notify_every_days, p->temporary_days);
    if (t.oom) {
        free(t.s);
        return NULL;
    }
    return t.s;
}

/* ---- stored versions */

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(65536 + 1);
    if (buf)
        len = fread(buf, 1, 65536 + 1, f);
    fclose(f);
    if (!buf || len > 65536 || memchr(buf, '\0', len)) {
        snprintf(err, errlen, "%s: %s", path, buf ? "not a profile (too long, or binary)" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static void digest_hex(const char *text, char out[65])
{
    uint8_t md[32];
    unsigned int n = 0;
    EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL);
    tess_hex(out, md, sizeof(md));
}

int cms_profile_import(struct cms_db *db, const struct cms_actor *by, const char *path, int *version,
                       bool *unchanged)
{
    struct cms_profile p;
    char err[256], digest[65], now[32], detail[200];
    char *text = NULL, *canon = NULL;
    sqlite3_stmt *latest = NULL, *ins = NULL;
    int rc = cms_authorize(db, by, "profile.import", NULL, NULL, NULL);
    *version = 0;
    *unchanged = false;
    if (rc != CMS_OK)
        return rc;
    if (!(text = read_file(path, err, sizeof(err))))
        return cms_fail(db, CMS_NOTFOUND, "%s", err);
    if ((rc = cms_profile_parse(text, &p, err, sizeof(err))) != CMS_OK) {
        rc = cms_fail(db, rc, "%s: %s", path, err);
        goto out;
    }
    if (!(canon = cms_profile_format(&p))) {
        rc = cms_fail(db, CMS_ERR, "out of memory");
        goto out;
    }
    digest_hex(canon, digest);
    if ((rc = cms_begin(db)) != CMS_OK)
        goto out;
    latest = cms_prepare(db, "SELECT version, digest FROM profiles WHERE name = ? ORDER BY version DESC LIMIT 1");
    ins = cms_prepare(db, "INSERT INTO profiles (name, version, body, digest, created, created_by) VALUES (?,?,?,?,?,?)");
    if (!latest || !ins) {
        rc = CMS_ERR;
        goto out;
    }
    sqlite3_bind_text(latest, 1, p.name, -1, SQLITE_STATIC);
    if (sqlite3_step(latest) == SQLITE_ROW) {
        *version = sqlite3_column_int(latest, 0);
        if (!strcmp((const char *)sqlite3_column_text(latest, 1), digest)) {
            *unchanged = true;
            goto out;   /* nothing to write; the transaction is rolled back */
        }
    }
    (*version)++;
    cms_now(now);
    sqlite3_bind_text(ins, 1, p.name, -1, SQLITE_STATIC);
    sqlite3_bind_int(ins, 2, *version);
    sqlite3_bind_text(ins, 3, canon, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, digest, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 5, now, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 6, by->name, -1, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) {
        rc = cms_sql_fail(db, "profiles");
        goto out;
    }
    snprintf(detail, sizeof(detail), "profile %s version %d (sha256 %.16s)", p.name, *version, digest);
    struct cms_audit_rec rec = { .operator = by->name, .action = "profile.import", .result = "ok", .detail = detail };
    if ((rc = cms_audit_append(db, &rec)) == CMS_OK)
        rc = cms_commit(db);
out:
    if (rc != CMS_OK || *unchanged)
        cms_rollback(db);
    sqlite3_finalize(latest);
    sqlite3_finalize(ins);
    free(text);
    free(canon);
    return rc;
}

int cms_profile_get(struct cms_db *db, const char *name, int version, struct cms_profile *p)
{
    sqlite3_stmt *st = cms_prepare(db, version ? "SELECT id, version, body FROM profiles WHERE name = ?1 AND version = ?2"
                                               : "SELECT id, version, body FROM profiles WHERE name = ?1 "
                                                 "ORDER BY version DESC LIMIT 1");
    char err[256];
    int rc;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (version)
        sqlite3_bind_int(st, 2, version);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = version ? cms_fail(db, CMS_NOTFOUND, "no profile %s version %d", name, version)
                     : cms_fail(db, CMS_NOTFOUND, "no profile %s", name);
    } else if ((rc = cms_profile_parse((const char *)sqlite3_column_text(st, 2), p, err, sizeof(err))) != CMS_OK) {
        rc = cms_fail(db, CMS_ERR, "stored profile %s does not parse: %s", name, err);
    } else {
        p->id = sqlite3_column_int64(st, 0);
        p->version = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

int cms_profile_list(struct cms_db *db, cms_profile_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT name, version, created, created_by FROM profiles ORDER BY name, version");
    int rc = CMS_OK, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
                (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 3));
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "profiles");
    sqlite3_finalize(st);
    return rc;
}

/* One RDN's value template with its placeholders filled in. */
static int expand_value(const char *v, const struct cms_holder *h, char *out, size_t outlen, char *err, size_t errlen)
{
    size_t n = 0;
    while (*v) {
        const char *val = NULL;
        size_t len;
        if (v[0] == '$' && v[1] == '{') {
            const char *close = strchr(v, '}');
            char name[64];
            if (!close || (size_t)(close - v - 2) >= sizeof(name)) {
                snprintf(err, errlen, "a placeholder does not close");
                return -1;
            }
            memcpy(name, v + 2, (size_t)(close - v - 2));
            name[close - v - 2] = '\0';
            val = cms_holder_attr(h, name);
            if (!val || !val[0]) {
                snprintf(err, errlen, "holder %s has no %s for the certificate's subject", h->uid, name);
                return -1;
            }
            len = strlen(val);
            v = close + 1;
        } else {
            val = v++;
            len = 1;
        }
        if (n + len >= outlen) {
            snprintf(err, errlen, "the subject is too long");
            return -1;
        }
        memcpy(out + n, val, len);
        n += len;
    }
    out[n] = '\0';
    return 0;
}

X509_NAME *cms_subject_build(const char *tmpl, const struct cms_holder *h, char *err, size_t errlen)
{
    X509_NAME *name = X509_NAME_new();
    char *copy = strdup(tmpl), *save = NULL, value[512];
    bool ok = name && copy && tmpl[0] == '/';
    /* Split the template, not the values: a holder's name may hold '/'. */
    for (char *rdn = ok ? strtok_r(copy, "/", &save) : NULL; rdn && ok; rdn = strtok_r(NULL, "/", &save)) {
        char *eq = strchr(rdn, '=');
        ok = eq && eq != rdn;
        if (!ok) {
            snprintf(err, errlen, "subject template '%s' is not /TYPE=value/...", tmpl);
            break;
        }
        *eq = '\0';
        ok = expand_value(eq + 1, h, value, sizeof(value), err, errlen) == 0;
        if (ok && X509_NAME_add_entry_by_txt(name, rdn, MBSTRING_UTF8, (const unsigned char *)value, -1, -1, 0) != 1) {
            snprintf(err, errlen, "subject attribute %s is unknown or its value does not fit", rdn);
            ok = false;
        }
    }
    free(copy);
    if (ok && X509_NAME_entry_count(name) > 0)
        return name;
    X509_NAME_free(name);
    return NULL;
}
