/* Operators and their roles, and which role may do what. An operator is
 * the person running the tool, by login name (root may act as a named
 * operator with --as, which the trail records). Every action is checked
 * here before it starts, and a refusal is itself audited. */
#ifndef TESSERA_CMS_ROLES_H
#define TESSERA_CMS_ROLES_H

#include <stdbool.h>

#include "db.h"

enum cms_role {
    CMS_ROLE_ADMINISTRATOR = 1 << 0,  /* operators, profiles, devices, holders, the database */
    CMS_ROLE_ISSUER = 1 << 1,         /* request, issue, replace, cancel, erase cards */
    CMS_ROLE_HELPDESK = 1 << 2,       /* unblock, lock and unlock, suspend and enable */
    CMS_ROLE_KEY_RECOVERY = 1 << 3,   /* recover escrowed keys */
    CMS_ROLE_AUDITOR = 1 << 4,        /* read and verify the audit trail */
};

/* "administrator" -> CMS_ROLE_ADMINISTRATOR; 0 when unknown. */
unsigned cms_role_parse(const char *name);
/* Comma-separated role names into a mask; -1 on an unknown name. */
int cms_roles_parse(const char *list, unsigned *mask);
/* The mask as "administrator,issuer" into out. */
void cms_roles_text(unsigned mask, char *out, size_t outlen);

struct cms_actor {
    char name[128];           /* as recorded in the trail */
    unsigned roles;
    bool known;               /* an operator in the database */
};

/* Who runs the tool: the login name of the real user, or `as` when root
 * gives one. Roles from the database (none when unknown or disabled). */
int cms_actor_resolve(struct cms_db *db, const char *as, struct cms_actor *actor);

/* May the actor do action? The roles each action needs are in roles.c.
 * A refusal is audited (with holder, card, device when given) and returns
 * CMS_DENIED with a message in db->err. */
int cms_authorize(struct cms_db *db, const struct cms_actor *actor, const char *action, const char *holder,
                  const char *card, const char *device);

int cms_operator_add(struct cms_db *db, const struct cms_actor *by, const char *name, unsigned roles);
int cms_operator_set_roles(struct cms_db *db, const struct cms_actor *by, const char *name, unsigned roles);
int cms_operator_disable(struct cms_db *db, const struct cms_actor *by, const char *name);
typedef int (*cms_operator_cb)(void *arg, const char *name, unsigned roles, bool disabled, const char *created);
int cms_operator_list(struct cms_db *db, cms_operator_cb cb, void *arg);

/* A new database's first administrator: only while there is no operator. */
int cms_bootstrap(struct cms_db *db, const char *admin);

#endif
