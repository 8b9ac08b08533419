/* Unit tests for src/pin_policy.c: a card's PIN rules, their text form (kept
 * in the store) and the messages a user sees when a PIN is refused. */
#include "config.h"

#include <string.h>

#include "../../src/pin_policy.h"
#include "../tap.h"

static const char *class_name[TESS_PIN_NCLASSES] = { "digits", "uppercase", "lowercase", "special" };
static const char *rule_name[] = { "optional", "mandatory", "forbidden" };

/* check() on a C string; err is left in the caller's buffer. */
static int check(const struct tess_pin_policy *p, const char *pin, char *err, size_t errlen)
{
    err[0] = '\0';
    return tess_pin_policy_check(p, (const unsigned char *)pin, strlen(pin), err, errlen);
}

/* validate() and parse() with err cleared first, so a passing test does not
 * show a stale message from an earlier one. */
static int validate(const struct tess_pin_policy *p, char *err, size_t errlen)
{
    err[0] = '\0';
    return tess_pin_policy_validate(p, err, errlen);
}

static int parse(struct tess_pin_policy *p, const char *text, char *err, size_t errlen)
{
    err[0] = '\0';
    return tess_pin_policy_parse(p, text, err, errlen);
}

static void test_defaults(void)
{
    struct tess_pin_policy p;
    char err[256] = "";

    memset(&p, 0x5a, sizeof(p));
    tess_pin_policy_default(&p);
    ok(p.min_len == 6 && p.max_len == 64, "default bounds are 6..64 (got %d..%d)", p.min_len, p.max_len);
    int all_optional = 1;
    for (int c = 0; c < TESS_PIN_NCLASSES; c++)
        all_optional &= p.rule[c] == TESS_PIN_OPTIONAL;
    ok(all_optional, "default makes every class optional");
    ok(validate(&p, err, sizeof(err)) == 0, "the default policy is valid (%s)", err);
}

static void test_set(void)
{
    struct tess_pin_policy p;
    char err[256];

    tess_pin_policy_default(&p);
    ok(tess_pin_policy_set(&p, "min_length", "8", err, sizeof(err)) == 0 && p.min_len == 8, "min_length=8");
    ok(tess_pin_policy_set(&p, "max_length", "20", err, sizeof(err)) == 0 && p.max_len == 20, "max_length=20");
    /* Short names are what format() writes, so parse() depends on them. */
    ok(tess_pin_policy_set(&p, "min", "4", err, sizeof(err)) == 0 && p.min_len == 4 && p.max_len == 20,
       "min=4 sets only the minimum");
    ok(tess_pin_policy_set(&p, "max", "127", err, sizeof(err)) == 0 && p.max_len == 127 && p.min_len == 4,
       "max=127 sets only the maximum");
    ok(tess_pin_policy_set(&p, "min", "1", err, sizeof(err)) == 0 && p.min_len == 1, "min=1 is the lowest allowed");

    /* Every class name with every rule name, and nothing else moves. */
    int all = 1;
    for (int c = 0; c < TESS_PIN_NCLASSES; c++) {
        for (int r = 0; r < 3; r++) {
            struct tess_pin_policy q;
            tess_pin_policy_default(&q);
            int good = tess_pin_policy_set(&q, class_name[c], rule_name[r], err, sizeof(err)) == 0 &&
                       q.min_len == 6 && q.max_len == 64;
            for (int o = 0; o < TESS_PIN_NCLASSES; o++)
                good &= q.rule[o] == (o == c ? (enum tess_pin_class_rule)r : TESS_PIN_OPTIONAL);
            if (!good)
                printf("# set %s=%s went wrong\n", class_name[c], rule_name[r]);
            all &= good;
        }
    }
    ok(all, "each of digits/uppercase/lowercase/special takes optional/mandatory/forbidden, alone");

    static const char *bad_len[] = { "0", "128", "-3", "abc", "", "8x", "1000000000000000000000" };
    for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
        tess_pin_policy_default(&p);
        err[0] = '\0';
        int rc = tess_pin_policy_set(&p, "min_length", bad_len[i], err, sizeof(err));
        ok(rc == -1 && p.min_len == 6 && strstr(err, "1 to 127") != NULL,
           "min_length='%s' refused, policy unchanged, message gives the range (%s)", bad_len[i], err);
    }
    tess_pin_policy_default(&p);
    err[0] = '\0';
    ok(tess_pin_policy_set(&p, "max", "200", err, sizeof(err)) == -1 && p.max_len == 64 && strstr(err, "'200'"),
       "max=200 refused and the message quotes the value (%s)", err);

    err[0] = '\0';
    ok(tess_pin_policy_set(&p, "digits", "required", err, sizeof(err)) == -1 && p.rule[TESS_PIN_DIGITS] == 0 &&
           strstr(err, "digits") && strstr(err, "'required'"),
       "digits=required refused; message names the class and the value (%s)", err);
    err[0] = '\0';
    ok(tess_pin_policy_set(&p, "special", "Mandatory", err, sizeof(err)) == -1,
       "rule names are case-sensitive (%s)", err);
    err[0] = '\0';
    ok(tess_pin_policy_set(&p, "symbols", "optional", err, sizeof(err)) == -1 && strstr(err, "'symbols'"),
       "unknown field refused; message names it (%s)", err);
}

static void test_check(void)
{
    struct tess_pin_policy p;
    char err[256];

    tess_pin_policy_default(&p);
    tess_pin_policy_set(&p, "min", "8", err, sizeof(err));
    tess_pin_policy_set(&p, "max", "12", err, sizeof(err));

    ok(check(&p, "12345678", err, sizeof(err)) == 0, "8 characters at min=8 pass (%s)", err);
    ok(check(&p, "123456789012", err, sizeof(err)) == 0, "12 characters at max=12 pass (%s)", err);
    ok(check(&p, "1234567", err, sizeof(err)) == -1 && strstr(err, "short") && strstr(err, "8"),
       "7 characters: too short, message names the minimum 8 (%s)", err);
    ok(check(&p, "1234567890123", err, sizeof(err)) == -1 && strstr(err, "long") && strstr(err, "12"),
       "13 characters: too long, message names the maximum 12 (%s)", err);
    ok(check(&p, "", err, sizeof(err)) == -1 && strstr(err, "short"), "empty PIN is too short (%s)", err);

    /* Forbidden classes, one at a time, each with a PIN containing one member. */
    static const char *one_of[TESS_PIN_NCLASSES] = { "abcdefg5", "abcdefgH", "ABCDEFGh", "abcdefg!" };
    for (int c = 0; c < TESS_PIN_NCLASSES; c++) {
        struct tess_pin_policy q = p;
        q.rule[c] = TESS_PIN_FORBIDDEN;
        ok(check(&q, one_of[c], err, sizeof(err)) == -1 && strstr(err, "forbids") && strstr(err, class_name[c]),
           "%s forbidden: '%s' refused, message names the class (%s)", class_name[c], one_of[c], err);
    }
    /* Space is printable and counts as special. */
    struct tess_pin_policy nospecial = p;
    nospecial.rule[TESS_PIN_SPECIAL] = TESS_PIN_FORBIDDEN;
    ok(check(&nospecial, "abcd efg", err, sizeof(err)) == -1 && strstr(err, "special"),
       "a space is a special character (%s)", err);
    ok(check(&nospecial, "abcDEF12", err, sizeof(err)) == 0, "no special: letters and digits pass (%s)", err);

    /* Mandatory classes missing: the message must name the class. */
    static const char *without[TESS_PIN_NCLASSES] = { "abcdEFG!", "abcd123!", "ABCD123!", "abcD1234" };
    for (int c = 0; c < TESS_PIN_NCLASSES; c++) {
        struct tess_pin_policy q = p;
        q.rule[c] = TESS_PIN_MANDATORY;
        ok(check(&q, without[c], err, sizeof(err)) == -1 && strstr(err, "requires") && strstr(err, class_name[c]),
           "%s mandatory: '%s' refused, message names \"%s\" (%s)", class_name[c], without[c], class_name[c], err);
    }
    struct tess_pin_policy all = p;
    for (int c = 0; c < TESS_PIN_NCLASSES; c++)
        all.rule[c] = TESS_PIN_MANDATORY;
    ok(check(&all, "aB3$aB3$", err, sizeof(err)) == 0, "all four mandatory: 'aB3$aB3$' passes (%s)", err);

    /* Non-printable bytes: control characters, DEL and high bytes. */
    static const unsigned char tab[] = "abc\tdefg", del[] = "abc\x7f" "defg", high[] = "abc\xe9" "defg";
    err[0] = '\0';
    ok(tess_pin_policy_check(&p, tab, 8, err, sizeof(err)) == -1 && strstr(err, "printable"),
       "a TAB is refused (%s)", err);
    err[0] = '\0';
    ok(tess_pin_policy_check(&p, del, 8, err, sizeof(err)) == -1 && strstr(err, "printable"),
       "DEL is refused (%s)", err);
    err[0] = '\0';
    ok(tess_pin_policy_check(&p, high, 8, err, sizeof(err)) == -1 && strstr(err, "printable"),
       "a non-ASCII byte is refused (%s)", err);
    static const unsigned char nul[] = { 'a', 'b', 'c', 0, 'd', 'e', 'f', 'g' };
    err[0] = '\0';
    ok(tess_pin_policy_check(&p, nul, sizeof(nul), err, sizeof(err)) == -1, "an embedded NUL is refused (%s)", err);
}

static void test_validate(void)
{
    struct tess_pin_policy p;
    char err[256];

    tess_pin_policy_default(&p);
    p.min_len = 10;
    p.max_len = 9;
    ok(validate(&p, err, sizeof(err)) == -1 && strstr(err, "10..9"),
       "min > max is invalid; message gives the bounds (%s)", err);
    p.min_len = 9;
    ok(validate(&p, err, sizeof(err)) == 0, "min == max is valid (%s)", err);
    p.min_len = 0;
    ok(validate(&p, err, sizeof(err)) == -1, "min 0 is invalid");
    p.min_len = 4;
    p.max_len = TESS_PIN_MAX_LEN + 1;
    ok(validate(&p, err, sizeof(err)) == -1, "max above %d is invalid", TESS_PIN_MAX_LEN);

    tess_pin_policy_default(&p);
    for (int c = 0; c < TESS_PIN_NCLASSES; c++)
        p.rule[c] = TESS_PIN_FORBIDDEN;
    ok(validate(&p, err, sizeof(err)) == -1 && strstr(err, "forbids every"),
       "all classes forbidden is invalid (%s)", err);
    p.rule[TESS_PIN_LOWER] = TESS_PIN_OPTIONAL;
    ok(validate(&p, err, sizeof(err)) == 0, "one class allowed is enough (%s)", err);

    /* Three mandatory classes cannot fit in two characters. */
    tess_pin_policy_default(&p);
    p.min_len = 1;
    p.max_len = 2;
    p.rule[TESS_PIN_DIGITS] = p.rule[TESS_PIN_UPPER] = p.rule[TESS_PIN_LOWER] = TESS_PIN_MANDATORY;
    ok(validate(&p, err, sizeof(err)) == -1 && strstr(err, "3 classes") && strstr(err, "only 2"),
       "3 mandatory classes with max 2 is invalid (%s)", err);
    p.max_len = 3;
    ok(validate(&p, err, sizeof(err)) == 0, "3 mandatory classes with max 3 is valid (%s)", err);
}

static void test_format_parse(void)
{
    struct tess_pin_policy p, q;
    char text[256], err[256] = "";

    tess_pin_policy_default(&p);
    tess_pin_policy_format(&p, text, sizeof(text));
    ok(!strcmp(text, "min=6 max=64 digits=optional uppercase=optional lowercase=optional special=optional"),
       "default formats as documented (%s)", text);

    /* Round-trip every rule in every class position. */
    int all = 1;
    for (int r0 = 0; r0 < 3; r0++)
        for (int r1 = 0; r1 < 3; r1++)
            for (int r2 = 0; r2 < 3; r2++)
                for (int r3 = 0; r3 < 3; r3++) {
                    p.min_len = 4 + r0;
                    p.max_len = 30 + r3;
                    p.rule[0] = r0, p.rule[1] = r1, p.rule[2] = r2, p.rule[3] = r3;
                    if (validate(&p, err, sizeof(err)))
                        continue; /* all forbidden: parse would refuse it, rightly */
                    tess_pin_policy_format(&p, text, sizeof(text));
                    memset(&q, 0x5a, sizeof(q));
                    if (parse(&q, text, err, sizeof(err)) != 0 || memcmp(&p, &q, sizeof(p))) {
                        printf("# round trip failed for '%s': %s\n", text, err);
                        all = 0;
                    }
                }
    ok(all, "format then parse gives back the same policy for every rule combination");

    /* parse starts from the defaults and accepts commas and long names. */
    ok(parse(&q, "max_length=10,digits=mandatory", err, sizeof(err)) == 0 && q.min_len == 6 &&
           q.max_len == 10 && q.rule[TESS_PIN_DIGITS] == TESS_PIN_MANDATORY && q.rule[TESS_PIN_SPECIAL] == TESS_PIN_OPTIONAL,
       "partial text fills the rest from the defaults (%s)", err);
    ok(parse(&q, "", err, sizeof(err)) == 0 && q.min_len == 6 && q.max_len == 64,
       "empty text is the default policy");

    ok(parse(&q, "min=8 max", err, sizeof(err)) == -1 && strstr(err, "'max'"),
       "item without '=' refused, message quotes it (%s)", err);
    ok(parse(&q, "min=8 colour=blue", err, sizeof(err)) == -1 && strstr(err, "colour"),
       "unknown field refused by parse (%s)", err);
    ok(parse(&q, "min=20 max=10", err, sizeof(err)) == -1 && strstr(err, "20..10"),
       "parse validates the result: min > max refused (%s)", err);
    ok(parse(&q, "digits=forbidden uppercase=forbidden lowercase=forbidden special=forbidden", err, sizeof(err)) ==
           -1,
       "parse validates the result: all forbidden refused (%s)", err);
}

int main(void)
{
    plan_lazy();
    test_defaults();
    test_set();
    test_check();
    test_validate();
    test_format_parse();
    return done_testing();
}
