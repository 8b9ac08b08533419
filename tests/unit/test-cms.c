/* The card-management database: migrations, the audit chain and what
 * breaks it, roles, holder import (CSV, LDIF) and credential profiles. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "src/cms/audit.h"
#include "src/cms/db.h"
#include "src/cms/holders.h"
#include "src/cms/profile.h"
#include "src/cms/roles.h"
#include "tests/tap.h"

static char dir[256];
static int db_seq;

/* A new database in the test's folder, with the schema at target. */
static struct cms_db *fresh(int target)
{
    char path[320], err[256];
    struct cms_db *db = NULL;
    snprintf(path, sizeof(path), "%s/cms-%d.db", dir, ++db_seq);
    if (cms_open_at(path, true, target, &db, err, sizeof(err)) != CMS_OK)
        printf("# %s\n", err);
    return db;
}

static void write_file(const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static int exec(struct cms_db *db, const char *sql)
{
    return sqlite3_exec(db->db, sql, NULL, NULL, NULL);
}

static struct cms_actor admin = { "alice", CMS_ROLE_ADMINISTRATOR | CMS_ROLE_AUDITOR, true };
static struct cms_actor issuer = { "bob", CMS_ROLE_ISSUER, true };
static struct cms_actor nobody = { "mallory", 0, false };

static void test_migrations(void)
{
    struct cms_db *db = fresh(1);
    char path[sizeof(db->path)], err[256];
    ok(db && cms_schema_version(db) == 1, "a database at schema 1");
    ok(exec(db, "INSERT INTO holders (uid, name, created, updated) VALUES ('old', 'Old Holder', 'x', 'x')") ==
           SQLITE_OK, "  with a holder");
    snprintf(path, sizeof(path), "%s", db->path);
    cms_close(db);
    ok(cms_open(path, false, &db, err, sizeof(err)) == CMS_OK && cms_schema_version(db) == CMS_SCHEMA_VERSION,
       "opened again: migrated to schema %d", CMS_SCHEMA_VERSION);
    struct cms_holder h;
    ok(cms_holder_get(db, "old", &h) == CMS_OK && !strcmp(h.name, "Old Holder"), "  the holder is still there");
    cms_holder_clear(&h);
    ok(exec(db, "SELECT count(*) FROM cards") == SQLITE_OK, "  and the tables of schema 2 exist");
    ok(exec(db, "SELECT code_id, code_expires, code_tries, owner FROM jobs") == SQLITE_OK,
       "  and the columns of schema 3");
    sqlite3_stmt *q = NULL;
    int n = 0;
    if (sqlite3_prepare_v2(db->db, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs_one_lock'", -1, &q, NULL) ==
            SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    ok(n == 1, "  and schema 4's index of pending locks");
    char plan[256] = "";
    if (sqlite3_prepare_v2(db->db, "EXPLAIN QUERY PLAN SELECT id FROM audit WHERE device = 'X' COLLATE NOCASE",
                           -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        snprintf(plan, sizeof(plan), "%s", (const char *)sqlite3_column_text(q, 3));
    sqlite3_finalize(q);
    ok(strstr(plan, "audit_device") != NULL, "  and schema 5's: audit by device without case is a lookup (%s)", plan);
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the file is 0600");
    ok(exec(db, "PRAGMA user_version = 99") == SQLITE_OK, "a database from a newer Tessera");
    cms_close(db);
    ok(cms_open(path, false, &db, err, sizeof(err)) != CMS_OK && strstr(err, "newer"), "  is refused: %s", err);
    snprintf(path, sizeof(path), "%s/none.db", dir);
    ok(cms_open(path, false, &db, err, sizeof(err)) == CMS_NOTFOUND, "a missing database is not made unasked");
}

static struct cms_db *trail(int n)
{
    struct cms_db *db = fresh(CMS_SCHEMA_VERSION);
    for (int i = 0; i < n; i++) {
        char detail[32];
        snprintf(detail, sizeof(detail), "step %d", i + 1);
        struct cms_audit_rec r = { .operator = "alice", .action = "test.step", .result = "ok",
                                   .card = i % 2 ? "CARD1" : NULL, .detail = detail };
        cms_audit_record(db, &r);
    }
    return db;
}

static int verify(struct cms_db *db, struct cms_audit_check *c)
{
    int rc = cms_audit_verify(db, c);
    if (rc != CMS_OK)
        printf("# %s\n", c->reason);
    return rc;
}

static int count_cb(void *arg, const struct cms_audit_rec *r)
{
    (void)r;
    ++*(int *)arg;
    return CMS_OK;
}

static int count_holder(void *arg, const struct cms_holder *h)
{
    (void)h;
    ++*(int *)arg;
    return CMS_OK;
}

static void test_audit(void)
{
    struct cms_audit_check c;
    struct cms_db *db = trail(6);
    ok(verify(db, &c) == CMS_OK && c.records == 6, "six records verify");
    int n = 0;
    struct cms_audit_query q = { .card = "CARD1" };
    ok(cms_audit_search(db, &q, count_cb, &n) == CMS_OK && n == 3, "search by card: 3");
    n = 0;
    q = (struct cms_audit_query){ .limit = 2 };
    ok(cms_audit_search(db, &q, count_cb, &n) == CMS_OK && n == 2, "the last 2");
    cms_close(db);

    /* Each way to break the chain, on a fresh trail: what is done, the
     * first record that must be reported (0: any), words of the reason. */
    static const struct {
        int records;
        const char *sql, *what;
        int64_t bad_id;
        const char *reason;
    } breaks[] = {
        { 6, "UPDATE audit SET detail = 'step 33' WHERE id = 3", "an edited record", 3, "changed" },
        { 6, "UPDATE audit SET operator = 'eve' WHERE id = 5", "an operator name changed", 5, "changed" },
        { 6, "DELETE FROM audit WHERE id = 3", "a removed record", 4, "removed" },
        { 6, "UPDATE audit SET id = 100 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3;"
             "UPDATE audit SET id = 3 WHERE id = 100", "two records swapped", 2, "order" },
        { 6, "DELETE FROM audit WHERE id >= 5", "records cut from the end", 0, "cut from the end" },
        { 3, "INSERT INTO audit (id, at, operator, action, result, prev, hash) "
             "SELECT 4, at, 'eve', 'card.erase', 'ok', hash, hash FROM audit WHERE id = 3",
          "a forged record appended", 4, "changed" },
    };
    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        db = trail(breaks[i].records);
        exec(db, breaks[i].sql);
        ok(verify(db, &c) == CMS_TAMPERED && (!breaks[i].bad_id || c.bad_id == breaks[i].bad_id) &&
               strstr(c.reason, breaks[i].reason),
           "%s: found", breaks[i].what);
        cms_close(db);
    }

    db = trail(0);
    ok(verify(db, &c) == CMS_OK && c.records == 0, "an empty trail verifies");
    cms_close(db);
}

static void test_roles(void)
{
    struct cms_db *db = fresh(CMS_SCHEMA_VERSION);
    unsigned mask;
    ok(cms_roles_parse("issuer,helpdesk", &mask) == 0 && mask == (CMS_ROLE_ISSUER | CMS_ROLE_HELPDESK), "roles parse");
    ok(cms_roles_parse("issuer,wizard", &mask) != 0, "  an unknown role is refused");
    ok(cms_bootstrap(db, "alice") == CMS_OK, "the first administrator");
    ok(cms_bootstrap(db, "eve") == CMS_EXISTS, "  only once");
    ok(cms_operator_add(db, &admin, "bob", CMS_ROLE_ISSUER) == CMS_OK, "the administrator adds an issuer");
    ok(cms_operator_add(db, &issuer, "eve", CMS_ROLE_ADMINISTRATOR) == CMS_DENIED, "an issuer cannot add operators");
    ok(cms_authorize(db, &nobody, "holder.list", NULL, NULL, NULL) == CMS_DENIED, "an unknown person reads nothing");
    ok(cms_authorize(db, &issuer, "audit.verify", NULL, NULL, NULL) == CMS_DENIED, "an issuer does not audit");
    ok(cms_authorize(db, &admin, "no.such.action", NULL, NULL, NULL) == CMS_DENIED, "an unlisted action is no one's");
    ok(cms_operator_disable(db, &admin, "alice") == CMS_INVALID, "an administrator cannot disable themselves");
    ok(cms_operator_disable(db, &admin, "bob") == CMS_OK, "but can disable bob");
    struct cms_actor bob;
    setenv("SUDO_USER", "bob", 1);
    ok(cms_actor_resolve(db, NULL, &bob) == CMS_OK && !strcmp(bob.name, "bob") && bob.known && !bob.roles,
       "through sudo the operator is SUDO_USER; bob, disabled, has no roles");
    ok(cms_actor_resolve(db, "alice", &bob) == CMS_DENIED, "  and --as is refused under sudo");
    unsetenv("SUDO_USER");
    int n = 0;
    struct cms_audit_query q = { .operator = "bob" };
    cms_audit_search(db, &q, count_cb, &n);
    struct cms_audit_check c;
    ok(n == 2 && verify(db, &c) == CMS_OK, "refusals are in the trail too (bob: 2), which verifies");
    cms_close(db);
}

static void test_holders(void)
{
    struct cms_db *db = fresh(CMS_SCHEMA_VERSION);
    struct cms_import_counts n;
    struct cms_holder h;
    char path[320];
    write_file("h.csv",
               "uid,name,email,department,upn\r\n"
               "jdoe,\"Doe, Jane\",jane@example.org,Finance,jdoe@corp.example.org\r\n"
               "bsmith,Bob Smith,bob@example.org,,\r\n"
               "qq,\"Quote \"\"Q\"\" Quinn\",,\"Multi\nline\",\r\n",
               path, sizeof(path));
    ok(cms_holders_import(db, &issuer, path, CMS_HOLDERS_CSV, &n) == CMS_OK && n.created == 3, "CSV: 3 holders");
    ok(cms_holder_get(db, "jdoe", &h) == CMS_OK && !strcmp(h.name, "Doe, Jane") &&
           !strcmp(cms_holder_attr(&h, "upn"), "jdoe@corp.example.org"),
       "  a quoted comma, and other columns as attributes");
    cms_holder_clear(&h);
    ok(cms_holder_get(db, "qq", &h) == CMS_OK && !strcmp(h.name, "Quote \"Q\" Quinn") && !h.email &&
           !strcmp(cms_holder_attr(&h, "department"), "Multi\nline"),
       "  doubled quotes, an empty e-mail, a newline inside quotes");
    cms_holder_clear(&h);
    ok(cms_holder_get(db, "bsmith", &h) == CMS_OK && h.nattrs == 0, "  empty cells are no attributes");
    cms_holder_clear(&h);
    ok(cms_holders_import(db, &issuer, path, CMS_HOLDERS_CSV, &n) == CMS_OK && n.unchanged == 3 && !n.created,
       "the same file again: 3 unchanged");
    write_file("h2.csv", "uid,name,email\njdoe,Jane Doe,jane@example.org\nnew1,New One,\n", path, sizeof(path));
    ok(cms_holders_import(db, &issuer, path, CMS_HOLDERS_CSV, &n) == CMS_OK && n.updated == 1 && n.created == 1,
       "a changed name updates, a new uid adds");
    ok(cms_holder_get(db, "jdoe", &h) == CMS_OK && h.nattrs == 0 && !strcmp(h.name, "Jane Doe"),
       "  the update replaces the attributes too");
    cms_holder_clear(&h);
    write_file("bad.csv", "uid,name\nok1,One\nbad,Two,extra\n", path, sizeof(path));
    ok(cms_holders_import(db, &issuer, path, CMS_HOLDERS_CSV, &n) == CMS_INVALID && strstr(db->err, "line 3"),
       "a bad line is named (%s)", db->err);
    ok(cms_holder_get(db, "ok1", &h) == CMS_NOTFOUND, "  and nothing of that file was kept");
    write_file("nouid.csv", "name,email\nX,x@y\n", path, sizeof(path));
    ok(cms_holders_import(db, &issuer, path, CMS_HOLDERS_CSV, &n) == CMS_INVALID, "a header without uid is refused");
    write_file("h.ldif",
               "version: 1\n"
               "# people\n"
               "dn: uid=ldap1,ou=people,dc=example,dc=org\n"
               "objectClass: inetOrgPerson\n"
               "uid: ldap1\n"
               "cn: Lars\n"
               " Larsen\n"
               "mail: lars@example.org\n"
               "employeeNumber: 42\n"
               "\n"
               "dn: uid=ldap2,ou=people,dc=example,dc=org\n"
               "uid: ldap2\n"
               "cn:: w5hzdGVuIMOYcnN0ZWQ=\n",
               path, sizeof(path));
    ok(cms_holders_import(db, &issuer, path, CMS_HOLDERS_LDIF, &n) == CMS_OK && n.created == 2, "LDIF: 2 holders");
    ok(cms_holder_get(db, "ldap1", &h) == CMS_OK && !strcmp(h.name, "LarsLarsen") && !strcmp(h.email, "lars@example.org") &&
           !strcmp(cms_holder_attr(&h, "employeeNumber"), "42") && cms_holder_attr(&h, "dn"),
       "  a folded line, mail as e-mail, other attributes kept");
    cms_holder_clear(&h);
    ok(cms_holder_get(db, "ldap2", &h) == CMS_OK && !strcmp(h.name, "\xc3\x98sten \xc3\x98rsted"),
       "  a base64 value (UTF-8)");
    cms_holder_clear(&h);
    int found = 0;
    ok(cms_holder_find(db, "lars@EXAMPLE.org", 0, count_holder, &found) == CMS_OK && found == 1,
       "find by e-mail, any case");
    found = 0;
    ok(cms_holder_find(db, "doe", 0, count_holder, &found) == CMS_OK && found == 1, "find by part of a name");
    ok(cms_holders_import(db, &nobody, path, CMS_HOLDERS_LDIF, &n) == CMS_DENIED, "import needs a role");
    cms_close(db);
}

static const char profile_text[] =
    "# staff cards\n"
    "[profile]\nname = staff\ncard-types = tpm, piv\n"
    "[pin]\nmin-length = 6\nmax-length = 8\ndigits = mandatory\nspecial = forbidden\ntries = 3\n"
    "[admin-key]\nmaster-file = /etc/tessera/master.key\nprf = cmac-aes256\nalg = aes128\n"
    "[key auth]\ntype = p256\npiv-slot = 9a\nusage = sign\ncertificate = client-auth, smartcard-logon\n"
    "subject = /CN=${name}/UID=${uid}\nlifetime-days = 365\n"
    "[key enc]\ntype = rsa2048\npiv-slot = 9d\nusage = decrypt\ncertificate = email\n"
    "subject = /CN=${name}/emailAddress=${email}\nescrow = yes\n"
    "[lifecycle]\nrenewal-window-days = 30\nnotify-every-days = 5\n";

static void test_profiles(void)
{
    struct cms_profile p, q;
    char err[256];
    ok(cms_profile_parse(profile_text, &p, err, sizeof(err)) == CMS_OK, "a profile parses");
    ok(p.nkeys == 2 && p.keys[0].piv_slot == 0x9a && p.keys[1].escrow && p.pin_tries == 3 &&
           p.alg == TESS_KEY_AES128 && p.notify_every_days == 5 && p.temporary_days == 7,
       "  with its keys, PIN, admin key and lifecycle (defaults where silent)");
    char *canon = cms_profile_format(&p), *again = NULL;
    ok(canon && cms_profile_parse(canon, &q, err, sizeof(err)) == CMS_OK && (again = cms_profile_format(&q)) &&
           !strcmp(canon, again),
       "its canonical text parses to itself");
    free(canon);
    free(again);
    struct {
        const char *text, *want;
    } bad[] = {
        { "[profile]\nname = x\ncard-types = tpm\ncolour = red\n", "line 4" },
        { "[profile]\nname = x\ncard-types = tpm, smartwatch\n", "card-types" },
        { "[profile]\nname = x\ncard-types = piv\n[key a]\ntype = p256\nusage = sign\n", "piv-slot" },
        { "[profile]\nname = x\ncard-types = piv\n[key a]\ntype = p256\npiv-slot = 9a\nusage = sign\n", "6 to 8" },
        { "[profile]\nname = x\ncard-types = tpm, piv\n[pin]\nmin-length = 6\nmax-length = 8\n"
          "[key a]\ntype = rsa3072\npiv-slot = 9a\nusage = sign\n", "rsa2048, p256 or p384" },
        { "[profile]\nname = x\ncard-types = tpm\n[key a]\ntype = rsa2048\nusage = sign\nescrow = yes\n", "escrow" },
        { "[profile]\nname = x\ncard-types = tpm\n[key a]\ntype = p256\nusage = sign\ncertificate = email\n", "subject" },
        { "[profile]\nname = x\ncard-types = tpm\n", "at least one" },
        { "[profile]\nname = x\ncard-types = tpm\n[pin]\nmin-length = 9\nmax-length = 4\n", "[pin]" },
        { "[profile\n", "line 1" },
        { "[profile]\nname = x\ncard-types = tpm\n[key a]\ntype = p256\nusage = sign\nsubject = /CN=${name\n", "subject" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ok(cms_profile_parse(bad[i].text, &p, err, sizeof(err)) == CMS_INVALID && strstr(err, bad[i].want),
           "refused: %s", err);

    struct cms_db *db = fresh(CMS_SCHEMA_VERSION);
    char path[320];
    int version;
    bool unchanged;
    write_file("staff.ini", profile_text, path, sizeof(path));
    ok(cms_profile_import(db, &admin, path, &version, &unchanged) == CMS_OK && version == 1 && !unchanged,
       "imported: version 1");
    ok(cms_profile_import(db, &admin, path, &version, &unchanged) == CMS_OK && version == 1 && unchanged,
       "  again: unchanged");
    char *changed = strdup(profile_text);
    *strstr(changed, "tries = 3") = '\0';
    char text2[2048];
    snprintf(text2, sizeof(text2), "%stries = 4\n%s", changed, strstr(profile_text, "tries = 3") + 10);
    free(changed);
    write_file("staff.ini", text2, path, sizeof(path));
    ok(cms_profile_import(db, &admin, path, &version, &unchanged) == CMS_OK && version == 2, "  changed: version 2");
    ok(cms_profile_get(db, "staff", 0, &p) == CMS_OK && p.version == 2 && p.pin_tries == 4, "the latest is 2");
    ok(cms_profile_get(db, "staff", 1, &p) == CMS_OK && p.pin_tries == 3, "version 1 is kept");
    ok(cms_profile_import(db, &issuer, path, &version, &unchanged) == CMS_DENIED, "an issuer cannot import profiles");
    cms_close(db);
}

int main(void)
{
    plan_lazy();
    const char *base = getenv("TESSERA_TEST_DIR") ? getenv("TESSERA_TEST_DIR") : "/tmp";
    snprintf(dir, sizeof(dir), "%s/cms-unit-XXXXXX", base);
    if (!mkdtemp(dir))
        bail_out("mkdtemp");
    test_migrations();
    test_audit();
    test_roles();
    test_holders();
    test_profiles();
    return done_testing();
}
