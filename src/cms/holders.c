/* Holders: import from CSV or LDIF, lookup. */
#include "config.h"
#include "holders.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "../util.h"
#include "audit.h"

void cms_holder_clear(struct cms_holder *h)
{
    free(h->uid);
    free(h->name);
    free(h->email);
    for (size_t i = 0; i < h->nattrs; i++) {
        free(h->attrs[i].name);
        free(h->attrs[i].value);
    }
    memset(h, 0, sizeof(*h));
}

const char *cms_holder_attr(const struct cms_holder *h, const char *name)
{
    if (strcmp(name, "uid") == 0)
        return h->uid;
    if (strcmp(name, "name") == 0)
        return h->name;
    if (strcmp(name, "email") == 0)
        return h->email;
    for (size_t i = 0; i < h->nattrs; i++)
        if (strcasecmp(h->attrs[i].name, name) == 0)
            return h->attrs[i].value;
    return NULL;
}

/* Set one field of a holder being read: the three columns by their import
 * names, anything else as an attribute (its first value only). */
static int holder_set(struct cms_holder *h, const char *name, const char *value, bool ldif)
{
    char **slot = NULL;
    if (strcasecmp(name, "uid") == 0 || (ldif && strcasecmp(name, "sAMAccountName") == 0 && !h->uid))
        slot = &h->uid;
    else if (strcasecmp(name, "name") == 0 || (ldif && (strcasecmp(name, "cn") == 0 ||
                                                        strcasecmp(name, "displayName") == 0)))
        slot = &h->name;
    else if (strcasecmp(name, "email") == 0 || strcasecmp(name, "mail") == 0)
        slot = &h->email;
    if (slot) {
        if (*slot)        /* a second value (cn after displayName ...): keep the first */
            return 0;
        return (*slot = strdup(value)) ? 0 : -1;
    }
    if (ldif && strcasecmp(name, "objectClass") == 0)
        return 0;
    if (cms_holder_attr(h, name))
        return 0;
    if (h->nattrs == CMS_HOLDER_MAX_ATTRS)
        return -2;
    h->attrs[h->nattrs].name = strdup(name);
    h->attrs[h->nattrs].value = strdup(value);
    h->nattrs++;
    return h->attrs[h->nattrs - 1].name && h->attrs[h->nattrs - 1].value ? 0 : -1;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20)
            return false;
    return true;
}

/* ---- CSV (RFC 4180: quoted fields may hold commas, quotes as "", newlines) */

struct csv {
    FILE *f;
    long line;
    char **fields;
    size_t nfields, cap;
};

static void csv_free_fields(struct csv *c)
{
    for (size_t i = 0; i < c->nfields; i++)
        free(c->fields[i]);
    c->nfields = 0;
}

/* The next record's fields; 1 read, 0 end of file, -1 malformed. */
static int csv_record(struct csv *c)
{
    size_t len = 0, cap = 64;
    char *buf = NULL;
    bool quoted = false, any = false, was_quoted = false;
    int ch;
    csv_free_fields(c);
    c->line++;
    if (!(buf = malloc(cap)))
        return -1;
    for (;;) {
        ch = fgetc(c->f);
        if (ch == EOF && !any) {
            free(buf);
            return 0;
        }
        any = true;
        if (ch == EOF && quoted) {
            free(buf);
            return -1;
        }
        if (quoted) {
            if (ch == '"') {
                int next = fgetc(c->f);
                if (next == '"') {
                    ch = '"';
                } else {
                    quoted = false;
                    if (next != EOF)
                        ungetc(next, c->f);
                    continue;
                }
            } else if (ch == '\n') {
                c->line++;
            }
        } else if (ch == '"' && len == 0 && !was_quoted) {
            quoted = was_quoted = true;
            continue;
        } else if (ch == ',' || ch == '\n' || ch == EOF) {
            if (len && buf[len - 1] == '\r' && ch != ',')
                len--;
            buf[len] = '\0';
            if (c->nfields == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 16;
                char **nf = realloc(c->fields, ncap * sizeof(*nf));
                if (!nf) {
                    free(buf);
                    return -1;
                }
                c->fields = nf;
                c->cap = ncap;
            }
            c->fields[c->nfields++] = buf;
            if (ch != ',')
                return 1;
            len = 0;
            cap = 64;
            was_quoted = false;
            if (!(buf = malloc(cap)))
                return -1;
            continue;
        } else if (was_quoted && ch != '\r') {
            free(buf);    /* text after a closing quote */
            return -1;
        }
        if (len + 2 > cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return -1;
            }
            buf = nb;
        }
        buf[len++] = (char)ch;
    }
}

/* ---- LDIF (RFC 2849: "attr: value", "attr:: base64", folded lines) */

struct ldif {
    FILE *f;
    long line;
    char *pending;     /* a line read ahead to see whether the next one folds into it */
};

static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

/* One logical line (folds joined); NULL at end of file. */
static char *ldif_line(struct ldif *l)
{
    char *line = l->pending ? l->pending : read_line(l->f);
    l->pending = NULL;
    if (!line)
        return NULL;
    l->line++;
    for (;;) {
        char *next = read_line(l->f);
        if (!next)
            break;
        if (next[0] != ' ') {
            l->pending = next;
            break;
        }
        l->line++;
        size_t a = strlen(line), b = strlen(next + 1);
        char *joined = realloc(line, a + b + 1);
        if (!joined) {
            free(next);
            free(line);
            return NULL;
        }
        memcpy(joined + a, next + 1, b + 1);
        line = joined;
        free(next);
    }
    return line;
}

static char *base64_decode(const char *in)
{
    size_t len = strlen(in);
    unsigned char *out = malloc(len / 4 * 3 + 4);
    if (!out || len % 4) {
        free(out);
        return NULL;
    }
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    out[n] = '\0';
    if (strlen((char *)out) != (size_t)n) {   /* a NUL inside: not a text value */
        free(out);
        return NULL;
    }
    return (char *)out;
}

/* The next LDIF entry into h; 1 read, 0 end, -1 malformed (message in err). */
static int ldif_entry(struct ldif *l, struct cms_holder *h, char *err, size_t errlen)
{
    char *line;
    bool any = false;
    while ((line = ldif_line(l))) {
        if (line[0] == '\0') {
            free(line);
            if (any)
                return 1;
            continue;
        }
        if (line[0] == '#' || strncasecmp(line, "version:", 8) == 0) {
            free(line);
            continue;
        }
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            snprintf(err, errlen, "line %ld: not \"attribute: value\"", l->line);
            free(line);
            return -1;
        }
        *colon = '\0';
        char *value = colon + 1, *decoded = NULL;
        if (*value == ':') {
            for (value++; *value == ' '; value++)
                ;
            if (!(decoded = base64_decode(value))) {
                snprintf(err, errlen, "line %ld: %s: bad base64 value", l->line, line);
                free(line);
                return -1;
            }
            value = decoded;
        } else if (*value == '<') {
            snprintf(err, errlen, "line %ld: %s: values from URLs are not read", l->line, line);
            free(line);
            return -1;
        } else {
            while (*value == ' ')
                value++;
        }
        any = true;
        int rc = holder_set(h, line, value, true);
        if (rc)
            snprintf(err, errlen, "line %ld: %s", l->line,
                     rc == -2 ? "more attributes than a holder keeps" : "out of memory");
        free(decoded);
        free(line);
        if (rc)
            return -1;
    }
    return any ? 1 : 0;
}

/* ---- storing */

struct importer {
    struct cms_db *db;
    sqlite3_stmt *find, *ins, *upd, *attrs, *del_attrs, *ins_attr;
    struct cms_import_counts *counts;
    char now[32];
};

static bool same_text(const char *a, const unsigned char *b)
{
    return (!a && !b) || (a && b && strcmp(a, (const char *)b) == 0);
}

/* Does the stored holder id have exactly h's attributes? */
static int attrs_same(struct importer *im, sqlite3_int64 id, const struct cms_holder *h, bool *same)
{
    size_t n = 0;
    int step;
    *same = true;
    sqlite3_reset(im->attrs);
    sqlite3_bind_int64(im->attrs, 1, id);
    while ((step = sqlite3_step(im->attrs)) == SQLITE_ROW) {
        const char *v = NULL;
        for (size_t i = 0; i < h->nattrs; i++)
            if (strcmp(h->attrs[i].name, (const char *)sqlite3_column_text(im->attrs, 0)) == 0)
                v = h->attrs[i].value;
        if (!v || strcmp(v, (const char *)sqlite3_column_text(im->attrs, 1)) != 0)
            *same = false;
        n++;
    }
    if (n != h->nattrs)
        *same = false;
    return step == SQLITE_DONE ? CMS_OK : cms_sql_fail(im->db, "holder attributes");
}

static int store_holder(struct importer *im, const struct cms_holder *h)
{
    sqlite3_int64 id;
    bool same = false;
    int rc;
    sqlite3_reset(im->find);
    sqlite3_bind_text(im->find, 1, h->uid, -1, SQLITE_STATIC);
    int step = sqlite3_step(im->find);
    if (step == SQLITE_ROW) {
        id = sqlite3_column_int64(im->find, 0);
        if (same_text(h->name, sqlite3_column_text(im->find, 1)) &&
            same_text(h->email, sqlite3_column_text(im->find, 2)) &&
            (rc = attrs_same(im, id, h, &same)) != CMS_OK)
            return rc;
        if (same) {
            im->counts->unchanged++;
            return CMS_OK;
        }
        sqlite3_reset(im->upd);
        sqlite3_bind_text(im->upd, 1, h->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->upd, 2, h->email, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->upd, 3, im->now, -1, SQLITE_STATIC);
        sqlite3_bind_int64(im->upd, 4, id);
        if (sqlite3_step(im->upd) != SQLITE_DONE)
            return cms_sql_fail(im->db, "holders");
        sqlite3_reset(im->del_attrs);
        sqlite3_bind_int64(im->del_attrs, 1, id);
        if (sqlite3_step(im->del_attrs) != SQLITE_DONE)
            return cms_sql_fail(im->db, "holder attributes");
        im->counts->updated++;
    } else if (step == SQLITE_DONE) {
        sqlite3_reset(im->ins);
        sqlite3_bind_text(im->ins, 1, h->uid, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->ins, 2, h->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->ins, 3, h->email, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->ins, 4, im->now, -1, SQLITE_STATIC);
        if (sqlite3_step(im->ins) != SQLITE_DONE)
            return cms_sql_fail(im->db, "holders");
        id = sqlite3_last_insert_rowid(im->db->db);
        im->counts->created++;
    } else {
        return cms_sql_fail(im->db, "holders");
    }
    for (size_t i = 0; i < h->nattrs; i++) {
        sqlite3_reset(im->ins_attr);
        sqlite3_bind_int64(im->ins_attr, 1, id);
        sqlite3_bind_text(im->ins_attr, 2, h->attrs[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(im->ins_attr, 3, h->attrs[i].value, -1, SQLITE_STATIC);
        if (sqlite3_step(im->ins_attr) != SQLITE_DONE)
            return cms_sql_fail(im->db, "holder attributes");
    }
    return CMS_OK;
}

static int check_holder(struct cms_db *db, const struct cms_holder *h, long line)
{
    if (!h->uid || !h->uid[0])
        return cms_fail(db, CMS_INVALID, "line %ld: a holder without a uid", line);
    if (!h->name || !h->name[0])
        return cms_fail(db, CMS_INVALID, "line %ld: holder %s has no name", line, h->uid);
    if (!printable(h->uid) || !printable(h->name) || (h->email && !printable(h->email)))
        return cms_fail(db, CMS_INVALID, "line %ld: holder %s: control characters in a value", line, h->uid);
    return CMS_OK;
}

static int import_csv(struct importer *im, FILE *f)
{
    struct csv c = { .f = f };
    char **header = NULL;
    size_t ncols = 0;
    int rc = CMS_OK, r;
    bool has_uid = false, has_name = false;

    if ((r = csv_record(&c)) != 1) {
        rc = cms_fail(im->db, CMS_INVALID, "line 1: %s", r == 0 ? "empty file" : "malformed header");
        goto out;
    }
    header = c.fields;      /* keep the header's strings */
    ncols = c.nfields;
    c.fields = NULL;
    c.nfields = c.cap = 0;
    for (size_t i = 0; i < ncols; i++) {
        has_uid |= strcasecmp(header[i], "uid") == 0;
        has_name |= strcasecmp(header[i], "name") == 0;
    }
    if (!has_uid || !has_name) {
        rc = cms_fail(im->db, CMS_INVALID, "line 1: the header needs the columns uid and name (and may have email and more)");
        goto out;
    }
    while ((r = csv_record(&c)) == 1) {
        struct cms_holder h = { 0 };
        if (c.nfields == 1 && !c.fields[0][0])
            continue;        /* a blank line */
        if (c.nfields != ncols) {
            rc = cms_fail(im->db, CMS_INVALID, "line %ld: %zu fields where the header has %zu", c.line, c.nfields, ncols);
            goto out;
        }
        for (size_t i = 0; i < ncols && rc == CMS_OK; i++) {
            if (!c.fields[i][0])
                continue;    /* an empty cell: no such attribute */
            int e = holder_set(&h, header[i], c.fields[i], false);
            if (e)
                rc = cms_fail(im->db, e == -2 ? CMS_INVALID : CMS_ERR, "line %ld: %s", c.line,
                              e == -2 ? "more attributes than a holder keeps" : "out of memory");
        }
        if (rc == CMS_OK)
            rc = check_holder(im->db, &h, c.line);
        if (rc == CMS_OK)
            rc = store_holder(im, &h);
        cms_holder_clear(&h);
        if (rc != CMS_OK)
            goto out;
    }
    if (r < 0)
        rc = cms_fail(im->db, CMS_INVALID, "line %ld: malformed CSV (an unclosed quote?)", c.line);
out:
    csv_free_fields(&c);
    free(c.fields);
    for (size_t i = 0; i < ncols; i++)
        free(header[i]);
    free(header);
    return rc;
}

static int import_ldif(struct importer *im, FILE *f)
{
    struct ldif l = { .f = f };
    char err[256] = "";
    int rc = CMS_OK, r;
    for (;;) {
        struct cms_holder h = { 0 };
        long first = l.line + 1;
        r = ldif_entry(&l, &h, err, sizeof(err));
        if (r == 1 && (rc = check_holder(im->db, &h, first)) == CMS_OK)
            rc = store_holder(im, &h);
        cms_holder_clear(&h);
        if (r != 1 || rc != CMS_OK)
            break;
    }
    free(l.pending);
    if (r < 0)
        rc = cms_fail(im->db, CMS_INVALID, "%s", err);
    return rc;
}

int cms_holders_import(struct cms_db *db, const struct cms_actor *by, const char *path,
                       enum cms_holder_format fmt, struct cms_import_counts *counts)
{
    struct importer im = { .db = db, .counts = counts };
    char detail[4200];
    FILE *f = NULL;
    int rc = cms_authorize(db, by, "holder.import", NULL, NULL, NULL);
    memset(counts, 0, sizeof(*counts));
    if (rc != CMS_OK)
        return rc;
    if (!(f = fopen(path, "r")))
        return cms_fail(db, CMS_NOTFOUND, "%s: %s", path, strerror(errno));
    cms_now(im.now);
    if ((rc = cms_begin(db)) != CMS_OK)
        goto out;
    im.find = cms_prepare(db, "SELECT id, name, email FROM holders WHERE uid = ?");
    im.ins = cms_prepare(db, "INSERT INTO holders (uid, name, email, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)");
    im.upd = cms_prepare(db, "UPDATE holders SET name = ?, email = ?, updated = ? WHERE id = ?");
    im.attrs = cms_prepare(db, "SELECT name, value FROM holder_attrs WHERE holder_id = ?");
    im.del_attrs = cms_prepare(db, "DELETE FROM holder_attrs WHERE holder_id = ?");
    im.ins_attr = cms_prepare(db, "INSERT INTO holder_attrs (holder_id, name, value) VALUES (?, ?, ?)");
    if (!im.find || !im.ins || !im.upd || !im.attrs || !im.del_attrs || !im.ins_attr) {
        rc = CMS_ERR;
        goto out;
    }
    rc = fmt == CMS_HOLDERS_CSV ? import_csv(&im, f) : import_ldif(&im, f);
    if (rc != CMS_OK)
        goto out;
    snprintf(detail, sizeof(detail), "%s: %" PRId64 " new, %" PRId64 " updated, %" PRId64 " unchanged", path,
             counts->created, counts->updated, counts->unchanged);
    struct cms_audit_rec rec = { .operator = by->name, .action = "holder.import", .result = "ok", .detail = detail };
    if ((rc = cms_audit_append(db, &rec)) == CMS_OK)
        rc = cms_commit(db);
out:
    if (rc != CMS_OK) {
        cms_rollback(db);
        memset(counts, 0, sizeof(*counts));
    }
    sqlite3_finalize(im.find);
    sqlite3_finalize(im.ins);
    sqlite3_finalize(im.upd);
    sqlite3_finalize(im.attrs);
    sqlite3_finalize(im.del_attrs);
    sqlite3_finalize(im.ins_attr);
    fclose(f);
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static int load_attrs(struct cms_db *db, struct cms_holder *h)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT name, value FROM holder_attrs WHERE holder_id = ? ORDER BY name");
    int step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, h->id);
    while (h->nattrs < CMS_HOLDER_MAX_ATTRS && (step = sqlite3_step(st)) == SQLITE_ROW) {
        h->attrs[h->nattrs].name = col_dup(st, 0);
        h->attrs[h->nattrs].value = col_dup(st, 1);
        h->nattrs++;
    }
    sqlite3_finalize(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "holder attributes");
}

static void row_to_holder(sqlite3_stmt *st, struct cms_holder *h)
{
    h->id = sqlite3_column_int64(st, 0);
    h->uid = col_dup(st, 1);
    h->name = col_dup(st, 2);
    h->email = col_dup(st, 3);
}

int cms_holder_get(struct cms_db *db, const char *uid, struct cms_holder *h)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id, uid, name, email FROM holders WHERE uid = ?");
    int rc;
    memset(h, 0, sizeof(*h));
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        row_to_holder(st, h);
        rc = load_attrs(db, h);
    } else {
        rc = cms_fail(db, CMS_NOTFOUND, "no holder %s", uid);
    }
    sqlite3_finalize(st);
    if (rc != CMS_OK)
        cms_holder_clear(h);
    return rc;
}

int cms_holder_find(struct cms_db *db, const char *query, int64_t limit, cms_holder_cb cb, void *arg)
{
    /* uid and e-mail by their indexes; a name by a scan (instr, any case). */
    sqlite3_stmt *st = cms_prepare(db, query ? "SELECT id, uid, name, email FROM holders WHERE uid = ?1 "
                                               "UNION SELECT id, uid, name, email FROM holders WHERE email = ?1 COLLATE NOCASE "
                                               "UNION SELECT id, uid, name, email FROM holders WHERE instr(lower(name), lower(?1)) "
                                               "ORDER BY 2 LIMIT ?2"
                                             : "SELECT id, uid, name, email FROM holders ORDER BY uid LIMIT ?2");
    int rc = CMS_OK, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    if (query)
        sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit > 0 ? limit : -1);
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct cms_holder h = { 0 };
        row_to_holder(st, &h);
        rc = load_attrs(db, &h);
        if (rc == CMS_OK)
            rc = cb(arg, &h);
        cms_holder_clear(&h);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "holders");
    sqlite3_finalize(st);
    return rc;
}
