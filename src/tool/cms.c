/* tessera's card-management verbs: the database, operators, holders,
 * credential profiles and the audit trail (src/cms/ does the work). Every
 * verb takes --db PATH (default TESSERA_HOME/cms.db) and, for root only,
 * --as OPERATOR. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../cms/audit.h"
#include "../cms/db.h"
#include "../cms/holders.h"
#include "../cms/profile.h"
#include "../cms/roles.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

/* ---- db */

static int opt_admin(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 'a')
        return -1;
    *(const char **)arg = v;
    return 0;
}

static int cmd_db_init(int argc, char **argv)
{
    static const char usage[] = "usage: tessera db init [--db PATH] [--admin NAME]";
    static const struct option extra[] = { { "admin", required_argument, 0, 'a' } };
    struct cms_ctx c = { 0 };
    const char *admin = NULL;
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_admin, &admin, usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, true)) != EX_OK)
        goto out;
    rc = cms_report(&c, cms_bootstrap(c.db, admin ? admin : c.actor.name));
    if (rc == EX_OK && tool_json) {
        printf("{\"database\":");
        tool_json_str(c.path);
        printf(",\"administrator\":");
        tool_json_str(admin ? admin : c.actor.name);
        printf("}\n");
    } else if (rc == EX_OK) {
        printf("database %s; administrator %s\n", c.path, admin ? admin : c.actor.name);
    }
out:
    cms_ctx_close(&c);
    return rc;
}

static int count_rows(struct cms_db *db, const char *table, int64_t *n)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st = cms_prepare(db, sql);
    int rc = st && sqlite3_step(st) == SQLITE_ROW ? CMS_OK : CMS_ERR;
    *n = rc == CMS_OK ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return rc;
}

static int cmd_db_status(int argc, char **argv)
{
    static const char *const tables[] = { "operators", "holders", "devices", "profiles", "cards", "certificates",
                                          "jobs", "audit" };
    struct cms_ctx c = { 0 };
    int rc = cms_parse_opts(&c, argc, argv, NULL, 0, NULL, NULL, "usage: tessera db status [--db PATH]");
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    char *head = cms_meta_get(c.db, "audit.head");
    if (tool_json) {
        printf("{\"database\":");
        tool_json_str(c.path);
        printf(",\"schema\":%d,\"operator\":", cms_schema_version(c.db));
        tool_json_str(c.actor.name);
    } else {
        char roles[128];
        cms_roles_text(c.actor.roles, roles, sizeof(roles));
        printf("database %s\nschema %d\nyou are %s (%s)\n", c.path, cms_schema_version(c.db), c.actor.name,
               c.actor.known ? (roles[0] ? roles : "disabled") : "not an operator");
    }
    for (size_t i = 0; i < TESS_ARRAY_SIZE(tables); i++) {
        int64_t n = 0;
        count_rows(c.db, tables[i], &n);
        printf(tool_json ? ",\"%s\":%" PRId64 : "%s %" PRId64 "\n", tables[i], n);
    }
    printf(tool_json ? ",\"audit_head\":\"%s\"}\n" : "audit head %s\n", head ? head : "");
    free(head);
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- operators */

static int opt_roles(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 'r' || cms_roles_parse(v, (unsigned *)arg)) {
        fprintf(stderr, "tessera: roles are administrator, issuer, helpdesk, key-recovery, auditor\n");
        return -1;
    }
    return 0;
}

static int cmd_operator_change(int argc, char **argv, const char *verb)
{
    static const char usage[] = "usage: tessera operator add|roles NAME --roles R[,R...]; operator disable NAME";
    static const struct option extra[] = { { "roles", required_argument, 0, 'r' } };
    struct cms_ctx c = { 0 };
    unsigned roles = 0;
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_roles, &roles, usage);
    if (rc != EX_OK)
        return rc;
    bool disable = !strcmp(verb, "disable");
    if (optind != argc - 1 || (!disable && !roles) || (disable && roles))
        return tool_usage_error(usage);
    const char *name = argv[optind];
    if ((rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    rc = cms_report(&c, !strcmp(verb, "add")     ? cms_operator_add(c.db, &c.actor, name, roles)
                    : !strcmp(verb, "roles") ? cms_operator_set_roles(c.db, &c.actor, name, roles)
                                             : cms_operator_disable(c.db, &c.actor, name));
out:
    cms_ctx_close(&c);
    return rc;
}

static int print_operator(void *arg, const char *name, unsigned roles, bool disabled, const char *created)
{
    char text[128];
    bool *first = arg;
    cms_roles_text(roles, text, sizeof(text));
    if (tool_json) {
        printf("%s{\"name\":", *first ? "" : ",");
        tool_json_str(name);
        printf(",\"roles\":\"%s\",\"disabled\":%s,\"created\":\"%s\"}", text, disabled ? "true" : "false", created);
    } else {
        printf("%-20s %-40s %s%s\n", name, text, created, disabled ? " disabled" : "");
    }
    *first = false;
    return CMS_OK;
}

static int cmd_operator_list(int argc, char **argv)
{
    struct cms_ctx c = { 0 };
    bool first = true;
    int rc = cms_parse_opts(&c, argc, argv, NULL, 0, NULL, NULL, "usage: tessera operator list");
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "operator.list", NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (tool_json)
        printf("[");
    rc = cms_report(&c, cms_operator_list(c.db, print_operator, &first));
    if (tool_json)
        printf("]\n");
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- holders */

static int opt_format(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    int *fmt = arg;
    if (ch != 'f')
        return -1;
    if (!strcmp(v, "csv"))
        *fmt = CMS_HOLDERS_CSV;
    else if (!strcmp(v, "ldif"))
        *fmt = CMS_HOLDERS_LDIF;
    else
        return -1;
    return 0;
}

static int cmd_holder_import(int argc, char **argv)
{
    static const char usage[] = "usage: tessera holder import FILE [--format csv|ldif]";
    static const struct option extra[] = { { "format", required_argument, 0, 'f' } };
    struct cms_ctx c = { 0 };
    struct cms_import_counts n;
    int fmt = -1;
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_format, &fmt, usage);
    if (rc != EX_OK)
        return rc;
    if (optind != argc - 1)
        return tool_usage_error(usage);
    const char *file = argv[optind];
    if (fmt < 0) {
        const char *dot = strrchr(file, '.');
        fmt = dot && !strcasecmp(dot, ".ldif") ? CMS_HOLDERS_LDIF : CMS_HOLDERS_CSV;
    }
    if ((rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    rc = cms_report(&c, cms_holders_import(c.db, &c.actor, file, (enum cms_holder_format)fmt, &n));
    if (rc == EX_OK)
        printf(tool_json ? "{\"created\":%" PRId64 ",\"updated\":%" PRId64 ",\"unchanged\":%" PRId64 "}\n"
                         : "holders: %" PRId64 " new, %" PRId64 " updated, %" PRId64 " unchanged\n",
               n.created, n.updated, n.unchanged);
out:
    cms_ctx_close(&c);
    return rc;
}

static int print_holder(void *arg, const struct cms_holder *h)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"uid\":", *first ? "" : ",");
        tool_json_str(h->uid);
        printf(",\"name\":");
        tool_json_str(h->name);
        printf(",\"email\":");
        if (h->email)
            tool_json_str(h->email);
        else
            printf("null");
        printf(",\"attributes\":{");
        for (size_t i = 0; i < h->nattrs; i++) {
            printf(i ? "," : "");
            tool_json_str(h->attrs[i].name);
            printf(":");
            tool_json_str(h->attrs[i].value);
        }
        printf("}}");
    } else {
        printf("%-20s %-30s %s\n", h->uid, h->name, h->email ? h->email : "-");
        for (size_t i = 0; i < h->nattrs; i++)
            printf("    %s: %s\n", h->attrs[i].name, h->attrs[i].value);
    }
    *first = false;
    return CMS_OK;
}

static int opt_limit(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    char *end;
    if (ch != 'l')
        return -1;
    *(int64_t *)arg = strtoll(v, &end, 10);
    return *end || *(int64_t *)arg <= 0 ? -1 : 0;
}

/* holder list [--limit N] | holder find QUERY | holder show UID */
static int cmd_holder_read(int argc, char **argv, const char *verb)
{
    static const char usage[] = "usage: tessera holder list [--limit N] | find QUERY | show UID";
    static const struct option extra[] = { { "limit", required_argument, 0, 'l' } };
    struct cms_ctx c = { 0 };
    int64_t limit = 0;
    bool first = true;
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_limit, &limit, usage);
    if (rc != EX_OK)
        return rc;
    bool list = !strcmp(verb, "list");
    if (optind != argc - (list ? 0 : 1))
        return tool_usage_error(usage);
    const char *arg = list ? NULL : argv[optind];
    if ((rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, list ? "holder.list" : "holder.show",
                                       !strcmp(verb, "show") ? arg : NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (!strcmp(verb, "show")) {
        struct cms_holder h;
        if ((rc = cms_report(&c, cms_holder_get(c.db, arg, &h))) == EX_OK) {
            print_holder(&first, &h);
            if (tool_json)
                printf("\n");
            cms_holder_clear(&h);
        }
        goto out;
    }
    if (tool_json)
        printf("[");
    rc = cms_report(&c, cms_holder_find(c.db, arg, limit, print_holder, &first));
    if (tool_json)
        printf("]\n");
    if (rc == EX_OK && first && !list)
        rc = EX_NOTFOUND;
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- profiles */

static int cmd_profile_import(int argc, char **argv)
{
    static const char usage[] = "usage: tessera profile import FILE";
    struct cms_ctx c = { 0 };
    int version = 0;
    bool unchanged = false;
    int rc = cms_parse_opts(&c, argc, argv, NULL, 0, NULL, NULL, usage);
    if (rc != EX_OK)
        return rc;
    if (optind != argc - 1)
        return tool_usage_error(usage);
    if ((rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    rc = cms_report(&c, cms_profile_import(c.db, &c.actor, argv[optind], &version, &unchanged));
    if (rc == EX_OK)
        printf(tool_json ? "{\"version\":%d,\"unchanged\":%s}\n" : "profile version %d%s\n", version,
               unchanged ? (tool_json ? "true" : " (unchanged)") : (tool_json ? "false" : ""));
out:
    cms_ctx_close(&c);
    return rc;
}

static int print_profile_row(void *arg, const char *name, int version, const char *created, const char *by)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"name\":", *first ? "" : ",");
        tool_json_str(name);
        printf(",\"version\":%d,\"created\":\"%s\",\"by\":", version, created);
        tool_json_str(by);
        printf("}");
    } else {
        printf("%-24s %4d  %s  %s\n", name, version, created, by);
    }
    *first = false;
    return CMS_OK;
}

static int opt_version(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    char *end;
    if (ch != 'v')
        return -1;
    *(int *)arg = (int)strtol(v, &end, 10);
    return *end || *(int *)arg <= 0 ? -1 : 0;
}

static int cmd_profile_read(int argc, char **argv, const char *verb)
{
    static const char usage[] = "usage: tessera profile list | show NAME [--version N]";
    static const struct option extra[] = { { "version", required_argument, 0, 'v' } };
    struct cms_ctx c = { 0 };
    int version = 0;
    bool first = true, list = !strcmp(verb, "list");
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_version, &version, usage);
    if (rc != EX_OK)
        return rc;
    if (optind != argc - (list ? 0 : 1))
        return tool_usage_error(usage);
    if ((rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, list ? "profile.list" : "profile.show", NULL, NULL, NULL))) !=
        EX_OK)
        goto out;
    if (list) {
        if (tool_json)
            printf("[");
        rc = cms_report(&c, cms_profile_list(c.db, print_profile_row, &first));
        if (tool_json)
            printf("]\n");
        goto out;
    }
    struct cms_profile p;
    if ((rc = cms_report(&c, cms_profile_get(c.db, argv[optind], version, &p))) != EX_OK)
        goto out;
    char *text = cms_profile_format(&p);
    if (!text) {
        rc = EX_FAIL;
        goto out;
    }
    printf("# %s version %d\n%s", p.name, p.version, text);
    free(text);
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- audit */

static int opt_audit(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    struct cms_audit_query *q = arg;
    char *end;
    switch (ch) {
    case 'h': q->holder = v; break;
    case 'c': q->card = v; break;
    case 'd': q->device = v; break;
    case 'o': q->operator = v; break;
    case 'a': q->action = v; break;
    case 's': q->since = v; break;
    case 'u': q->until = v; break;
    case 'n':
        q->limit = strtoll(v, &end, 10);
        return *end || q->limit <= 0 ? -1 : 0;
    default: return -1;
    }
    return 0;
}

static void json_field(const char *name, const char *v, bool comma)
{
    printf("%s\"%s\":", comma ? "," : "", name);
    if (v)
        tool_json_str(v);
    else
        printf("null");
}

static int print_audit(void *arg, const struct cms_audit_rec *r)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"id\":%" PRId64 ",\"at\":\"%s\"", *first ? "" : ",", r->id, r->at);
        json_field("operator", r->operator, true);
        json_field("action", r->action, true);
        json_field("result", r->result, true);
        json_field("holder", r->holder, true);
        json_field("card", r->card, true);
        json_field("device", r->device, true);
        json_field("detail", r->detail, true);
        printf("}");
    } else {
        printf("%" PRId64 " %s %s %s %s", r->id, r->at, r->operator, r->action, r->result);
        if (r->holder)
            printf(" holder=%s", r->holder);
        if (r->card)
            printf(" card=%s", r->card);
        if (r->device)
            printf(" device=%s", r->device);
        if (r->detail)
            printf(" -- %s", r->detail);
        printf("\n");
    }
    *first = false;
    return CMS_OK;
}

static int cmd_audit(int argc, char **argv)
{
    static const char usage[] = "usage: tessera audit [--holder UID] [--card SERIAL] [--device NAME] [--operator NAME]\n"
                                "                     [--action A] [--since TIME] [--until TIME] [--last N]\n"
                                "       tessera audit verify";
    static const struct option extra[] = {
        { "holder", required_argument, 0, 'h' }, { "card", required_argument, 0, 'c' },
        { "device", required_argument, 0, 'd' }, { "operator", required_argument, 0, 'o' },
        { "action", required_argument, 0, 'a' }, { "since", required_argument, 0, 's' },
        { "until", required_argument, 0, 'u' },  { "last", required_argument, 0, 'n' },
    };
    struct cms_ctx c = { 0 };
    struct cms_audit_query q = { 0 };
    bool first = true;
    int rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_audit, &q, usage);
    if (rc != EX_OK)
        return rc;
    bool verify = optind == argc - 1 && !strcmp(argv[optind], "verify");
    if (optind != argc && !verify)
        return tool_usage_error(usage);
    if ((rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, verify ? "audit.verify" : "audit.search", q.holder, q.card,
                                       q.device))) != EX_OK)
        goto out;
    if (verify) {
        struct cms_audit_check check;
        int v = cms_audit_verify(c.db, &check);
        if (v == CMS_ERR) {
            rc = cms_report(&c, v);
            goto out;
        }
        if (tool_json) {
            printf("{\"records\":%" PRId64 ",\"intact\":%s,\"head\":\"%s\"", check.records,
                   v == CMS_OK ? "true" : "false", check.head);
            if (v != CMS_OK) {
                printf(",\"bad_record\":%" PRId64 ",\"reason\":", check.bad_id);
                tool_json_str(check.reason);
            }
            printf("}\n");
        } else if (v == CMS_OK) {
            printf("audit trail intact: %" PRId64 " records, head %s\n", check.records, check.head);
        } else {
            printf("audit trail BROKEN at record %" PRId64 ": %s\n", check.bad_id, check.reason);
        }
        rc = cms_exit_for(v);
        goto out;
    }
    if (tool_json)
        printf("[");
    rc = cms_report(&c, cms_audit_search(c.db, &q, print_audit, &first));
    if (tool_json)
        printf("]\n");
out:
    cms_ctx_close(&c);
    return rc;
}

int cmd_cms(const char *noun, int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    /* Each verb parses from its own name on (argv[0] for getopt). */
    int vargc = argc - 1;
    char **vargv = argv + 1;
    if (!strcmp(noun, "db") && !strcmp(verb, "init"))
        return cmd_db_init(vargc, vargv);
    if (!strcmp(noun, "db") && !strcmp(verb, "status"))
        return cmd_db_status(vargc, vargv);
    if (!strcmp(noun, "operator") && (!strcmp(verb, "add") || !strcmp(verb, "roles") || !strcmp(verb, "disable")))
        return cmd_operator_change(vargc, vargv, verb);
    if (!strcmp(noun, "operator") && !strcmp(verb, "list"))
        return cmd_operator_list(vargc, vargv);
    if (!strcmp(noun, "holder") && !strcmp(verb, "import"))
        return cmd_holder_import(vargc, vargv);
    if (!strcmp(noun, "holder") && (!strcmp(verb, "list") || !strcmp(verb, "find") || !strcmp(verb, "show")))
        return cmd_holder_read(vargc, vargv, verb);
    if (!strcmp(noun, "profile") && !strcmp(verb, "import"))
        return cmd_profile_import(vargc, vargv);
    if (!strcmp(noun, "profile") && (!strcmp(verb, "list") || !strcmp(verb, "show")))
        return cmd_profile_read(vargc, vargv, verb);
    if (!strcmp(noun, "audit"))
        return cmd_audit(argc, argv);
    if (!strcmp(noun, "agent"))
        return cmd_cms_lock(noun, "", argc, argv);
    if (!strcmp(noun, "ca"))
        return cmd_cms_ca(verb, vargc, vargv);
    if (!strcmp(noun, "scan") || !strcmp(noun, "notify"))
        return cmd_cms_scan(noun, argc, argv);
    if (!strcmp(noun, "escrow") || (!strcmp(noun, "key") && !strcmp(verb, "recover")))
        return cmd_cms_escrow(noun, verb, vargc, vargv);
    return cmd_cms_cards(noun, verb, vargc, vargv);
}
