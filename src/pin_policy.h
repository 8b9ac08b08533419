/* PIN policy of one card: length bounds and four character classes, each
 * optional, mandatory or forbidden (as Windows VSC and MyID define them). */
#ifndef TESSERA_PIN_POLICY_H
#define TESSERA_PIN_POLICY_H

#include <stddef.h>

enum tess_pin_class_rule { TESS_PIN_OPTIONAL = 0, TESS_PIN_MANDATORY, TESS_PIN_FORBIDDEN };
enum tess_pin_class { TESS_PIN_DIGITS = 0, TESS_PIN_UPPER, TESS_PIN_LOWER, TESS_PIN_SPECIAL, TESS_PIN_NCLASSES };

#define TESS_PIN_MAX_LEN 127

struct tess_pin_policy {
    int min_len;
    int max_len;
    enum tess_pin_class_rule rule[TESS_PIN_NCLASSES];
};

void tess_pin_policy_default(struct tess_pin_policy *p);

/* Set one field by name ("min_length", "max_length", "digits", "uppercase",
 * "lowercase", "special"). Returns 0, or -1 with a message. */
int tess_pin_policy_set(struct tess_pin_policy *p, const char *name, const char *value,
                        char *err, size_t errlen);

/* Is the policy itself coherent (bounds, at least one class allowed)? */
int tess_pin_policy_validate(const struct tess_pin_policy *p, char *err, size_t errlen);

/* Is the length within the policy's bounds? (PKCS#11 tells a length refusal,
 * CKR_PIN_LEN_RANGE, from any other, CKR_PIN_INVALID.) */
int tess_pin_policy_length_ok(const struct tess_pin_policy *p, size_t len);

/* Check a PIN; on refusal returns -1 and says which rule failed. */
int tess_pin_policy_check(const struct tess_pin_policy *p, const unsigned char *pin, size_t len,
                          char *err, size_t errlen);

/* Compact text form for storage and display:
 * "min=8 max=24 digits=mandatory uppercase=optional lowercase=optional special=forbidden" */
void tess_pin_policy_format(const struct tess_pin_policy *p, char *out, size_t outlen);
int tess_pin_policy_parse(struct tess_pin_policy *p, const char *text, char *err, size_t errlen);

#endif
