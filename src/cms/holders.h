/* Holders: the people cards are issued to, imported from a directory
 * export (CSV with a header line, or LDIF) and found again by uid, e-mail
 * address or name. Besides uid, name and e-mail a holder keeps any other
 * attribute of the import (department, employeeNumber, upn ...), which
 * credential profiles may use in certificate subjects. */
#ifndef TESSERA_CMS_HOLDERS_H
#define TESSERA_CMS_HOLDERS_H

#include <stdint.h>

#include "db.h"
#include "roles.h"

#define CMS_HOLDER_MAX_ATTRS 32

struct cms_holder {
    int64_t id;
    char *uid, *name, *email;
    size_t nattrs;
    struct {
        char *name, *value;
    } attrs[CMS_HOLDER_MAX_ATTRS];
};
void cms_holder_clear(struct cms_holder *h);
/* A holder's attribute by name ("uid", "name", "email" or another); NULL if absent. */
const char *cms_holder_attr(const struct cms_holder *h, const char *name);

enum cms_holder_format { CMS_HOLDERS_CSV, CMS_HOLDERS_LDIF };

struct cms_import_counts {
    int64_t created, updated, unchanged;
};

/* Parse the file and add or update every holder in it, in one transaction
 * with one audit record; a file with any bad record changes nothing (the
 * message names its line). */
int cms_holders_import(struct cms_db *db, const struct cms_actor *by, const char *path,
                       enum cms_holder_format fmt, struct cms_import_counts *counts);

/* The holder with this uid (CMS_NOTFOUND if none); clear it after use. */
int cms_holder_get(struct cms_db *db, const char *uid, struct cms_holder *h);
typedef int (*cms_holder_cb)(void *arg, const struct cms_holder *h);
/* Holders whose uid or e-mail address is `query`, or whose name contains
 * it (any case); all holders when query is NULL. Sorted by uid. */
int cms_holder_find(struct cms_db *db, const char *query, int64_t limit, cms_holder_cb cb, void *arg);

#endif
