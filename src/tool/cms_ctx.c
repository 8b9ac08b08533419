/* What the tool's card-management verbs share: opening the database as the
 * operator running the tool, the common options, and exit codes. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cms_tool.h"
#include "tool.h"

int cms_exit_for(int rc)
{
    switch (rc) {
    case CMS_OK: return EX_OK;
    case CMS_INVALID: return EX_USAGE;
    case CMS_NOTFOUND: return EX_NOTFOUND;
    case CMS_DENIED: return EX_DENIED;
    case CMS_TAMPERED: return EX_TAMPERED;
    case CMS_STATE: return EX_STATE;
    default: return EX_FAIL;
    }
}

int cms_report(struct cms_ctx *c, int rc)
{
    if (rc != CMS_OK)
        fprintf(stderr, "tessera: %s\n", c->db ? c->db->err : "failed");
    return cms_exit_for(rc);
}

/* The options every CMS verb takes; 0 taken, -1 not one of them. */
#define CMS_OPTIONS { "db", required_argument, 0, 'D' }, { "as", required_argument, 0, 'A' }
static int cms_opt(struct cms_ctx *c, int ch, const char *arg)
{
    if (ch == 'D')
        c->db_path = arg;
    else if (ch == 'A')
        c->as = arg;
    else
        return -1;
    return 0;
}

int cms_ctx_open(struct cms_ctx *c, bool create)
{
    char err[600];
    if (c->db_path)
        snprintf(c->path, sizeof(c->path), "%s", c->db_path);
    else if (getenv("TESSERA_CMS_DB"))
        snprintf(c->path, sizeof(c->path), "%s", getenv("TESSERA_CMS_DB"));
    else
        snprintf(c->path, sizeof(c->path), "%s/cms.db", tool_settings.home);
    int rc = cms_open(c->path, create, &c->db, err, sizeof(err));
    if (rc != CMS_OK) {
        fprintf(stderr, "tessera: %s\n", err);
        return cms_exit_for(rc);
    }
    rc = cms_actor_resolve(c->db, c->as, &c->actor);
    return rc == CMS_OK ? EX_OK : cms_report(c, rc);
}

void cms_ctx_close(struct cms_ctx *c)
{
    cms_close(c->db);
    c->db = NULL;
}

/* Parse argv with the CMS options plus extra; each extra option calls
 * take(c, ch, optarg, arg) which returns 0 or an exit code. Positional
 * arguments are left at argv[optind..]. */
int cms_parse_opts(struct cms_ctx *c, int argc, char **argv, const struct option *extra, size_t nextra,
                      opt_fn take, void *arg, const char *usage)
{
    struct option opts[16] = { CMS_OPTIONS };
    size_t n = 2;
    for (size_t i = 0; i < nextra && n < 15; i++)
        opts[n++] = extra[i];
    opts[n] = (struct option){ 0 };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (cms_opt(c, ch, optarg) == 0)
            continue;
        if (ch == '?' || !take || take(c, ch, optarg, arg) != 0)
            return tool_usage_error(usage);
    }
    return EX_OK;
}

