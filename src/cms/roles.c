/* Operators, roles and the check every action goes through. */
#include "config.h"
#include "roles.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util.h"
#include "audit.h"

static const struct {
    const char *name;
    unsigned role;
} role_names[] = {
    { "administrator", CMS_ROLE_ADMINISTRATOR }, { "issuer", CMS_ROLE_ISSUER },
    { "helpdesk", CMS_ROLE_HELPDESK },           { "key-recovery", CMS_ROLE_KEY_RECOVERY },
    { "auditor", CMS_ROLE_AUDITOR },
};

#define ANY_ROLE (CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK | CMS_ROLE_KEY_RECOVERY | CMS_ROLE_AUDITOR)

/* Which roles may do what: the one place that says it. Reading the
 * inventory needs any role; changing it needs the role whose work it is. */
static const struct {
    const char *action;
    unsigned roles;
} action_roles[] = {
    { "operator.add", CMS_ROLE_ADMINISTRATOR },
    { "operator.roles", CMS_ROLE_ADMINISTRATOR },
    { "operator.disable", CMS_ROLE_ADMINISTRATOR },
    { "operator.list", ANY_ROLE },
    { "profile.import", CMS_ROLE_ADMINISTRATOR },
    { "profile.list", ANY_ROLE },
    { "profile.show", ANY_ROLE },
    { "holder.import", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER },
    { "holder.list", ANY_ROLE },
    { "holder.show", ANY_ROLE },
    { "device.add", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER },
    { "device.list", ANY_ROLE },
    { "card.list", ANY_ROLE },
    { "card.show", ANY_ROLE },
    { "card.request", CMS_ROLE_ISSUER },
    { "card.code", CMS_ROLE_ISSUER },
    { "card.suspend", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK },
    { "card.enable", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK },
    { "card.cancel", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER },
    { "card.replace", CMS_ROLE_ISSUER },
    { "card.erase", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER },
    { "card.reprovision", CMS_ROLE_ISSUER },
    { "card.lock", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK },
    { "card.unlock", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_HELPDESK },
    { "card.expire", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER },
    { "renewal.scan", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER },
    { "notify.set", CMS_ROLE_ADMINISTRATOR },
    { "notify.show", ANY_ROLE },
    { "escrow.add", CMS_ROLE_ADMINISTRATOR },
    { "escrow.show", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_KEY_RECOVERY | CMS_ROLE_AUDITOR },
    /* Not the administrator's: recovering a holder's key is its own duty. */
    { "key.recover", CMS_ROLE_KEY_RECOVERY },
    { "job.list", ANY_ROLE },
    { "job.resume", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK },
    { "ca.init", CMS_ROLE_ADMINISTRATOR },
    { "ca.connect", CMS_ROLE_ADMINISTRATOR },
    { "ca.show", ANY_ROLE },
    { "ca.crl", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_ISSUER | CMS_ROLE_AUDITOR },
    { "audit.search", CMS_ROLE_AUDITOR | CMS_ROLE_ADMINISTRATOR },
    { "audit.verify", CMS_ROLE_AUDITOR | CMS_ROLE_ADMINISTRATOR },
};

unsigned cms_role_parse(const char *name)
{
    for (size_t i = 0; i < TESS_ARRAY_SIZE(role_names); i++)
        if (strcmp(name, role_names[i].name) == 0)
            return role_names[i].role;
    return 0;
}

int cms_roles_parse(const char *list, unsigned *mask)
{
    char buf[256];
    *mask = 0;
    if (strlen(list) >= sizeof(buf))
        return -1;
    strcpy(buf, list);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        unsigned r = cms_role_parse(tok);
        if (!r)
            return -1;
        *mask |= r;
    }
    return *mask ? 0 : -1;
}

void cms_roles_text(unsigned mask, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < TESS_ARRAY_SIZE(role_names); i++)
        if (mask & role_names[i].role)
            n += (size_t)snprintf(out + n, n < outlen ? outlen - n : 0, "%s%s", n ? "," : "", role_names[i].name);
}

static unsigned roles_for(const char *action)
{
    for (size_t i = 0; i < TESS_ARRAY_SIZE(action_roles); i++)
        if (strcmp(action, action_roles[i].action) == 0)
            return action_roles[i].roles;
    return 0;   /* an action nobody listed is allowed to nobody */
}

/* The operator's roles, or 0 for an unknown or disabled one. */
static int operator_roles(struct cms_db *db, const char *name, unsigned *roles, bool *known)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT o.disabled, r.role FROM operators o "
                                       "LEFT JOIN operator_roles r ON r.operator_id = o.id WHERE o.name = ?");
    int step;
    *roles = 0;
    *known = false;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        *known = true;
        if (!sqlite3_column_int(st, 0) && sqlite3_column_text(st, 1))
            *roles |= cms_role_parse((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "operators");
}

int cms_actor_resolve(struct cms_db *db, const char *as, struct cms_actor *a)
{
    memset(a, 0, sizeof(*a));
    uid_t uid = getuid();
    struct passwd *pw = getpwuid(uid);
    const char *sudo_user = getenv("SUDO_USER");
    if (as && (uid != 0 || (sudo_user && *sudo_user)))
        return cms_fail(db, CMS_DENIED, "only root's own session may act as another operator (--as)");
    if (as)
        snprintf(a->name, sizeof(a->name), "%s", as);
    else if (sudo_user && *sudo_user)   /* sudo -u <database owner> tessera ...: the person who ran sudo */
        snprintf(a->name, sizeof(a->name), "%s", sudo_user);
    else if (pw)
        snprintf(a->name, sizeof(a->name), "%s", pw->pw_name);
    else
        snprintf(a->name, sizeof(a->name), "uid:%u", (unsigned)uid);
    return operator_roles(db, a->name, &a->roles, &a->known);
}

int cms_authorize(struct cms_db *db, const struct cms_actor *a, const char *action, const char *holder,
                  const char *card, const char *device)
{
    unsigned need = roles_for(action);
    char roles[128], result[192];
    if (need & a->roles)
        return CMS_OK;
    cms_roles_text(need, roles, sizeof(roles));
    snprintf(result, sizeof(result), "denied: needs %s", need ? roles : "a role no one has");
    for (char *comma = strchr(roles, ','); comma; comma = strchr(comma, ','))
        *comma = '/';
    struct cms_audit_rec rec = { .operator = a->name, .action = action, .result = result,
                                 .holder = holder, .card = card, .device = device };
    if (cms_audit_record(db, &rec) != CMS_OK)
        return CMS_ERR;
    return cms_fail(db, CMS_DENIED, "%s may not do %s: it needs the role %s%s", a->name, action,
                    need ? roles : "(none defined)", a->known ? "" : ", and this is not an operator of the database");
}

static int set_roles(struct cms_db *db, sqlite3_int64 op, unsigned roles)
{
    sqlite3_stmt *del = cms_prepare(db, "DELETE FROM operator_roles WHERE operator_id = ?");
    sqlite3_stmt *ins = cms_prepare(db, "INSERT INTO operator_roles (operator_id, role) VALUES (?, ?)");
    int rc = CMS_ERR;
    if (!del || !ins)
        goto out;
    sqlite3_bind_int64(del, 1, op);
    if (sqlite3_step(del) != SQLITE_DONE) {
        rc = cms_sql_fail(db, "roles");
        goto out;
    }
    for (size_t i = 0; i < TESS_ARRAY_SIZE(role_names); i++) {
        if (!(roles & role_names[i].role))
            continue;
        sqlite3_reset(ins);
        sqlite3_bind_int64(ins, 1, op);
        sqlite3_bind_text(ins, 2, role_names[i].name, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            rc = cms_sql_fail(db, "roles");
            goto out;
        }
    }
    rc = CMS_OK;
out:
    sqlite3_finalize(del);
    sqlite3_finalize(ins);
    return rc;
}

static int operator_id(struct cms_db *db, const char *name, sqlite3_int64 *id)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT id FROM operators WHERE name = ?");
    int rc;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        rc = CMS_OK;
    } else {
        rc = cms_fail(db, CMS_NOTFOUND, "no operator %s", name);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Insert an operator with roles (inside a transaction). */
static int insert_operator(struct cms_db *db, const char *name, unsigned roles)
{
    char now[32];
    sqlite3_stmt *st = cms_prepare(db, "INSERT INTO operators (name, created) VALUES (?, ?)");
    int rc;
    if (!st)
        return CMS_ERR;
    cms_now(now);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT)
        return cms_fail(db, CMS_EXISTS, "operator %s exists", name);
    if (rc != SQLITE_DONE)
        return cms_sql_fail(db, "operators");
    return set_roles(db, sqlite3_last_insert_rowid(db->db), roles);
}

/* One administrative step on operators: check, change, audit, commit. */
static int operator_step(struct cms_db *db, const struct cms_actor *by, const char *action, const char *name,
                         unsigned roles)
{
    char detail[192], text[128];
    int rc = cms_authorize(db, by, action, NULL, NULL, NULL);
    sqlite3_int64 id = 0;
    if (rc != CMS_OK)
        return rc;
    if (strcmp(action, "operator.disable") == 0 && strcmp(name, by->name) == 0)
        return cms_fail(db, CMS_INVALID, "an administrator cannot disable themselves");
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    if (strcmp(action, "operator.add") == 0) {
        rc = insert_operator(db, name, roles);
    } else if ((rc = operator_id(db, name, &id)) == CMS_OK) {
        if (strcmp(action, "operator.roles") == 0) {
            rc = set_roles(db, id, roles);
        } else {
            sqlite3_stmt *st = cms_prepare(db, "UPDATE operators SET disabled = 1 WHERE id = ?");
            rc = CMS_ERR;
            if (st) {
                sqlite3_bind_int64(st, 1, id);
                rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "operators");
            }
            sqlite3_finalize(st);
        }
    }
    if (rc != CMS_OK)
        goto fail;
    cms_roles_text(roles, text, sizeof(text));
    snprintf(detail, sizeof(detail), "operator %s%s%s", name, roles ? " roles " : "", roles ? text : "");
    struct cms_audit_rec rec = { .operator = by->name, .action = action, .result = "ok", .detail = detail };
    if ((rc = cms_audit_append(db, &rec)) != CMS_OK)
        goto fail;
    return cms_commit(db);
fail:
    cms_rollback(db);
    return rc;
}

int cms_operator_add(struct cms_db *db, const struct cms_actor *by, const char *name, unsigned roles)
{
    return operator_step(db, by, "operator.add", name, roles);
}

int cms_operator_set_roles(struct cms_db *db, const struct cms_actor *by, const char *name, unsigned roles)
{
    return operator_step(db, by, "operator.roles", name, roles);
}

int cms_operator_disable(struct cms_db *db, const struct cms_actor *by, const char *name)
{
    return operator_step(db, by, "operator.disable", name, 0);
}

int cms_operator_list(struct cms_db *db, cms_operator_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT o.name, o.disabled, o.created, group_concat(r.role) FROM operators o "
                                       "LEFT JOIN operator_roles r ON r.operator_id = o.id GROUP BY o.id ORDER BY o.name");
    int rc = CMS_OK, step = SQLITE_DONE;
    if (!st)
        return CMS_ERR;
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        unsigned roles = 0;
        if (sqlite3_column_text(st, 3))
            cms_roles_parse((const char *)sqlite3_column_text(st, 3), &roles);
        rc = cb(arg, (const char *)sqlite3_column_text(st, 0), roles, sqlite3_column_int(st, 1) != 0,
                (const char *)sqlite3_column_text(st, 2));
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "operators");
    sqlite3_finalize(st);
    return rc;
}

int cms_bootstrap(struct cms_db *db, const char *admin)
{
    sqlite3_stmt *st = NULL;
    char detail[192];
    int rc = cms_begin(db);
    if (rc != CMS_OK)
        return rc;
    st = cms_prepare(db, "SELECT count(*) FROM operators");
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        rc = st ? cms_sql_fail(db, "operators") : CMS_ERR;
        goto fail;
    }
    if (sqlite3_column_int64(st, 0) > 0) {
        rc = cms_fail(db, CMS_EXISTS, "the database already has operators: an administrator adds more");
        goto fail;
    }
    if ((rc = insert_operator(db, admin, CMS_ROLE_ADMINISTRATOR | CMS_ROLE_AUDITOR)) != CMS_OK)
        goto fail;
    snprintf(detail, sizeof(detail), "first administrator %s (roles administrator,auditor)", admin);
    struct cms_audit_rec rec = { .operator = admin, .action = "db.init", .result = "ok", .detail = detail };
    if ((rc = cms_audit_append(db, &rec)) != CMS_OK)
        goto fail;
    sqlite3_finalize(st);
    return cms_commit(db);
fail:
    sqlite3_finalize(st);
    cms_rollback(db);
    return rc;
}
