/* What the tool's card-management verbs share (cms_ctx.c): the database
 * they work on, who runs them, their options and how results become exit
 * codes and messages. */
#ifndef TESSERA_TOOL_CMS_H
#define TESSERA_TOOL_CMS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "../cms/db.h"
#include "../cms/roles.h"

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

/* cms_ca.c, cms_cards.c: the verbs of those nouns; -1 when not theirs. */
int cmd_cms_ca(const char *verb, int argc, char **argv);
int cmd_cms_cards(const char *noun, const char *verb, int argc, char **argv);

#endif
