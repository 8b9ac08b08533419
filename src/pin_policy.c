#include "config.h"
#include "pin_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *class_names[TESS_PIN_NCLASSES] = { "digits", "uppercase", "lowercase", "special" };
static const char *rule_names[] = { "optional", "mandatory", "forbidden" };

void tess_pin_policy_default(struct tess_pin_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->min_len = 6;
    p->max_len = 64;
}

static int class_of(unsigned char c)
{
    if (isdigit(c))
        return TESS_PIN_DIGITS;
    if (isupper(c))
        return TESS_PIN_UPPER;
    if (islower(c))
        return TESS_PIN_LOWER;
    return TESS_PIN_SPECIAL;
}

int tess_pin_policy_set(struct tess_pin_policy *p, const char *name, const char *value,
                        char *err, size_t errlen)
{
    if (!strcmp(name, "min_length") || !strcmp(name, "max_length") || !strcmp(name, "min") ||
        !strcmp(name, "max")) {
        char *end;
        long n = strtol(value, &end, 10);
        if (*end || end == value || n < 1 || n > TESS_PIN_MAX_LEN) {
            snprintf(err, errlen, "PIN length '%s' must be a number from 1 to %d", value, TESS_PIN_MAX_LEN);
            return -1;
        }
        if (name[1] == 'i')
            p->min_len = (int)n;
        else
            p->max_len = (int)n;
        return 0;
    }
    for (int c = 0; c < TESS_PIN_NCLASSES; c++) {
        if (strcmp(name, class_names[c]))
            continue;
        for (int r = 0; r < 3; r++) {
            if (!strcmp(value, rule_names[r])) {
                p->rule[c] = (enum tess_pin_class_rule)r;
                return 0;
            }
        }
        snprintf(err, errlen, "PIN rule for %s must be optional, mandatory or forbidden, not '%s'",
                 name, value);
        return -1;
    }
    snprintf(err, errlen, "unknown PIN policy field '%s'", name);
    return -1;
}

int tess_pin_policy_validate(const struct tess_pin_policy *p, char *err, size_t errlen)
{
    int allowed = 0, mandatory = 0;
    if (p->min_len < 1 || p->max_len > TESS_PIN_MAX_LEN || p->min_len > p->max_len) {
        snprintf(err, errlen, "PIN length bounds %d..%d are not valid (1..%d)", p->min_len, p->max_len,
                 TESS_PIN_MAX_LEN);
        return -1;
    }
    for (int c = 0; c < TESS_PIN_NCLASSES; c++) {
        allowed += p->rule[c] != TESS_PIN_FORBIDDEN;
        mandatory += p->rule[c] == TESS_PIN_MANDATORY;
    }
    if (!allowed) {
        snprintf(err, errlen, "the PIN policy forbids every character class");
        return -1;
    }
    if (mandatory > p->max_len) {
        snprintf(err, errlen, "the PIN policy needs %d classes but allows only %d characters", mandatory,
                 p->max_len);
        return -1;
    }
    return 0;
}

int tess_pin_policy_length_ok(const struct tess_pin_policy *p, size_t len)
{
    return len >= (size_t)p->min_len && len <= (size_t)p->max_len;
}

int tess_pin_policy_check(const struct tess_pin_policy *p, const unsigned char *pin, size_t len,
                          char *err, size_t errlen)
{
    int seen[TESS_PIN_NCLASSES] = { 0 };

    if (len < (size_t)p->min_len) {
        snprintf(err, errlen, "the PIN is too short: at least %d characters", p->min_len);
        return -1;
    }
    if (len > (size_t)p->max_len) {
        snprintf(err, errlen, "the PIN is too long: at most %d characters", p->max_len);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (pin[i] < 0x20 || pin[i] > 0x7e) {
            snprintf(err, errlen, "the PIN may hold only printable ASCII characters");
            return -1;
        }
        seen[class_of(pin[i])] = 1;
    }
    for (int c = 0; c < TESS_PIN_NCLASSES; c++) {
        if (p->rule[c] == TESS_PIN_FORBIDDEN && seen[c]) {
            snprintf(err, errlen, "the PIN policy forbids %s", class_names[c]);
            return -1;
        }
        if (p->rule[c] == TESS_PIN_MANDATORY && !seen[c]) {
            snprintf(err, errlen, "the PIN policy requires %s", class_names[c]);
            return -1;
        }
    }
    return 0;
}

void tess_pin_policy_format(const struct tess_pin_policy *p, char *out, size_t outlen)
{
    snprintf(out, outlen, "min=%d max=%d digits=%s uppercase=%s lowercase=%s special=%s", p->min_len,
             p->max_len, rule_names[p->rule[0]], rule_names[p->rule[1]], rule_names[p->rule[2]],
             rule_names[p->rule[3]]);
}

int tess_pin_policy_parse(struct tess_pin_policy *p, const char *text, char *err, size_t errlen)
{
    char buf[512], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", text);
    tess_pin_policy_default(p);
    for (char *tok = strtok_r(buf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            snprintf(err, errlen, "PIN policy item '%s' is not name=value", tok);
            return -1;
        }
        *eq = '\0';
        if (tess_pin_policy_set(p, tok, eq + 1, err, errlen))
            return -1;
    }
    return tess_pin_policy_validate(p, err, errlen);
}
