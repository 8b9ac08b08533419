#include "config.h"
#include "settings.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>

#include "log.h"

#ifndef TESS_SYSCONFDIR
#define TESS_SYSCONFDIR "/etc"
#endif

static void set_defaults(struct tess_settings *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->tcti, sizeof(s->tcti), "device:/dev/tpmrm0");
    s->max_vsc = 10;
    s->user_retries = 5;
    s->so_retries = 5;
    s->spare_slot = true;
    s->spare_index = -1;
    s->tpm_enabled = true;
    s->pcsc_enabled = true;
    snprintf(s->piv_mgmt_alg, sizeof(s->piv_mgmt_alg), "3des");
    s->log_level = -1;
    tess_pin_policy_default(&s->pin_policy);
}

static int resolve_home(struct tess_settings *s)
{
    const char *home = getenv("TESSERA_HOME");
    if (home && *home) {
        snprintf(s->home, sizeof(s->home), "%s", home);
        return 0;
    }
    const char *xdg = getenv("XDG_DATA_HOME");
    if (xdg && *xdg) {
        snprintf(s->home, sizeof(s->home), "%s/tessera", xdg);
        return 0;
    }
    /* Never a shared folder like /tmp: another user could plant the store. */
    const char *h = getenv("HOME");
    if (!h || !*h) {
        struct passwd *pw = getpwuid(geteuid());
        h = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
    }
    if (!h)
        return -1;
    snprintf(s->home, sizeof(s->home), "%s/.local/share/tessera", h);
    return 0;
}

static char *trim(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    char *e = p + strlen(p);
    while (e > p && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return p;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "off")) {
        *out = false;
        return 0;
    }
    return -1;
}

static int parse_int(const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || end == v || n < lo || n > hi)
        return -1;
    *out = (int)n;
    return 0;
}

static int apply(struct tess_settings *s, const char *key, const char *val, char *err, size_t errlen)
{
    int rc = 0;
    if (!strcmp(key, "tcti"))
        snprintf(s->tcti, sizeof(s->tcti), "%s", val);
    else if (!strcmp(key, "max_vsc"))
        rc = parse_int(val, 1, 64, &s->max_vsc);
    else if (!strcmp(key, "user_pin_retries"))
        rc = parse_int(val, 1, 15, &s->user_retries);
    else if (!strcmp(key, "so_pin_retries"))
        rc = parse_int(val, 1, 15, &s->so_retries);
    else if (!strcmp(key, "spare_slot"))
        rc = parse_bool(val, &s->spare_slot);
    else if (!strcmp(key, "tpm"))
        rc = parse_bool(val, &s->tpm_enabled);
    else if (!strcmp(key, "pcsc"))
        rc = parse_bool(val, &s->pcsc_enabled);
    else if (!strcmp(key, "piv_management_key")) {
        size_t n = strlen(val);
        rc = (n == 32 || n == 48 || n == 64) && strspn(val, "0123456789abcdefABCDEF") == n ? 0 : -1;
        if (!rc)
            snprintf(s->piv_mgmt_key, sizeof(s->piv_mgmt_key), "%s", val);
    } else if (!strcmp(key, "piv_management_alg")) {
        rc = !strcmp(val, "3des") || !strcmp(val, "aes128") || !strcmp(val, "aes192") || !strcmp(val, "aes256") ? 0 : -1;
        if (!rc)
            snprintf(s->piv_mgmt_alg, sizeof(s->piv_mgmt_alg), "%s", val);
    } else if (!strcmp(key, "log_level"))
        rc = parse_int(val, 0, 4, &s->log_level);
    else if (!strncmp(key, "pin_", 4))
        rc = tess_pin_policy_set(&s->pin_policy, key + 4, val, err, errlen) ? -1 : 0;
    else {
        snprintf(err, errlen, "unknown setting '%s'", key);
        return -1;
    }
    if (rc && !err[0])
        snprintf(err, errlen, "bad value '%s' for '%s'", val, key);
    return rc;
}

static int read_file(struct tess_settings *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int lineno = 0, rc = 0;

    if (!f)
        return errno == ENOENT ? 1 : -1;
    snprintf(s->config_path, sizeof(s->config_path), "%s", path);
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = trim(line);
        if (!*p || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            rc = -1;
            goto out;
        }
        *eq = '\0';
        char *key = trim(p), *val = trim(eq + 1);
        char why[256] = "";
        if (apply(s, key, val, why, sizeof(why))) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = -1;
            goto out;
        }
    }
out:
    fclose(f);
    return rc;
}

int tess_settings_load(struct tess_settings *s, char *err, size_t errlen)
{
    char path[TESS_PATH_MAX + 32];
    int rc;

    err[0] = '\0';
    set_defaults(s);
    if (resolve_home(s)) {
        snprintf(err, errlen, "no home folder for the store: set TESSERA_HOME");
        return -1;
    }

    const char *cfg = getenv("TESSERA_CONF");
    if (cfg && *cfg) {
        rc = read_file(s, cfg, err, errlen);
        if (rc > 0) {
            snprintf(err, errlen, "TESSERA_CONF names %s, which does not exist", cfg);
            return -1;
        }
    } else {
        snprintf(path, sizeof(path), "%s/tessera.conf", s->home);
        rc = read_file(s, path, err, errlen);
        if (rc > 0)
            rc = read_file(s, TESS_SYSCONFDIR "/tessera/tessera.conf", err, errlen);
    }
    if (rc < 0) {
        if (!err[0])
            snprintf(err, errlen, "cannot read the configuration file");
        return -1;
    }
    snprintf(s->store_path, sizeof(s->store_path), "%s/tessera.db", s->home);

    const char *tcti = getenv("TESSERA_TCTI");
    if (tcti && *tcti) {
        snprintf(s->tcti, sizeof(s->tcti), "%s", tcti);
        s->tcti_from_env = true;
    }
    /* A management tool's request (tessera vsc create): a spare slot even
     * where tessera.conf hides it, at a chosen index. */
    const char *spare = getenv("TESSERA_SPARE_SLOT");
    if (spare && *spare) {
        char *end;
        long idx = strtol(spare, &end, 10);
        if (!*end && idx >= 0 && idx < s->max_vsc) {
            s->spare_slot = true;
            s->spare_index = (int)idx;
        } else if (parse_bool(spare, &s->spare_slot)) {
            snprintf(err, errlen, "TESSERA_SPARE_SLOT must be yes, no or a slot index below max_vsc (%d)", s->max_vsc);
            return -1;
        }
    }
    if (s->log_level >= 0 && !getenv("TESSERA_LOG"))
        tess_log_set_level(s->log_level);
    return 0;
}
