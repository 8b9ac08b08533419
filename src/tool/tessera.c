/* tessera: the command-line tool. This slice manages TPM virtual cards and
 * the TPM itself; card management verbs arrive with the vendor interface. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sys/stat.h>

#include <openssl/evp.h>

#include "../../drivers/tpm2/tpm2.h"
#include "../code.h"
#include "../kdf.h"
#include "../log.h"
#include "../settings.h"
#include "../util.h"

/* Exit codes (documented in tessera(1)). */
enum { EX_OK = 0, EX_FAIL = 1, EX_USAGE = 2, EX_NOTPM = 3, EX_PIN = 4, EX_NOTFOUND = 5 };

static struct tess_settings settings;
static bool json;

static void usage(FILE *f)
{
    fputs("usage: tessera [--json] COMMAND ...\n"
          "\n"
          "  vsc create [--label L] [--so-pin P | --so-pin-file F] [--pin P | --pin-file F]\n"
          "             [--slot N] [--pin-min N] [--pin-max N]\n"
          "             [--pin-digits R] [--pin-uppercase R] [--pin-lowercase R] [--pin-special R]\n"
          "                 R is optional, mandatory or forbidden\n"
          "  vsc list\n"
          "  vsc delete (--serial S | --slot N) --yes\n"
          "  tpm status\n"
          "  tpm da (--windows | --max-tries N --recovery SECONDS --lockout-recovery SECONDS | --clear)\n"
          "  admin-key derive --master-file F --serial S [--alg 3des|aes128|aes192|aes256]\n"
          "                   [--prf cmac-aes256|cmac-aes128|hmac-sha256]\n"
          "  unblock response --challenge CODE (--admin-key HEX | --master-file F --serial S [--prf P])\n"
          "                 the helpdesk's answer to a card's unblock challenge (Windows VSC compatible:\n"
          "                 3DES-ECB of the 8-byte challenge under the card's 24-byte admin key)\n"
          "\n"
          "Settings: TESSERA_HOME (config + store), TESSERA_TCTI (TPM connection).\n",
          f);
}

static int exit_for(CK_RV rv)
{
    switch (rv) {
    case CKR_OK: return EX_OK;
    case CKR_DEVICE_ERROR: return tpm2_conn_available() ? EX_FAIL : EX_NOTPM;
    case CKR_PIN_INCORRECT: case CKR_PIN_INVALID: case CKR_PIN_LEN_RANGE: case CKR_PIN_LOCKED: return EX_PIN;
    case CKR_TOKEN_NOT_PRESENT: return EX_NOTFOUND;
    default: return EX_FAIL;
    }
}

/* A JSON string value: quotes, backslashes and control characters escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* A secret from a file ('-' = standard input) or typed at the terminal. */
static int read_secret(const char *file, const char *prompt, char *out, size_t outlen)
{
    FILE *f = NULL;
    struct termios old, quiet;
    bool tty = false;

    if (file) {
        f = strcmp(file, "-") ? fopen(file, "r") : stdin;
        if (!f) {
            fprintf(stderr, "tessera: cannot read %s: %s\n", file, strerror(errno));
            return -1;
        }
    } else {
        if (!isatty(STDIN_FILENO)) {
            fprintf(stderr, "tessera: %s needed (give a file, or run on a terminal)\n", prompt);
            return -1;
        }
        f = stdin;
        tty = true;
        fprintf(stderr, "%s: ", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(out, (int)outlen, f);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (f != stdin)
        fclose(f);
    if (!got)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int cmd_vsc_create(int argc, char **argv)
{
    static const struct option opts[] = {
        { "label", required_argument, 0, 'l' },        { "so-pin", required_argument, 0, 's' },
        { "so-pin-file", required_argument, 0, 'S' }, { "pin", required_argument, 0, 'p' },
        { "pin-file", required_argument, 0, 'P' },    { "slot", required_argument, 0, 'n' },
        { "pin-min", required_argument, 0, 1 },       { "pin-max", required_argument, 0, 2 },
        { "pin-digits", required_argument, 0, 3 },    { "pin-uppercase", required_argument, 0, 4 },
        { "pin-lowercase", required_argument, 0, 5 }, { "pin-special", required_argument, 0, 6 },
        { 0, 0, 0, 0 },
    };
    static const char *policy_fields[] = { "", "min_length", "max_length", "digits", "uppercase", "lowercase", "special" };
    struct tess_pin_policy policy = settings.pin_policy;
    char so_pin[TESS_PIN_MAX_LEN + 2] = "", pin[TESS_PIN_MAX_LEN + 2] = "", err[512];
    const char *label = NULL, *so_file = NULL, *pin_file = NULL;
    bool have_so = false, have_pin = false;
    int slot = -1, c, rc = EX_USAGE;
    int64_t id;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'l': label = optarg; break;
        case 's': snprintf(so_pin, sizeof(so_pin), "%s", optarg); have_so = true; break;
        case 'S': so_file = optarg; break;
        case 'p': snprintf(pin, sizeof(pin), "%s", optarg); have_pin = true; break;
        case 'P': pin_file = optarg; break;
        case 'n':
            slot = atoi(optarg);
            if (slot < 0 || slot >= settings.max_vsc) {
                fprintf(stderr, "tessera: --slot must be 0 to %d (max_vsc)\n", settings.max_vsc - 1);
                goto out;
            }
            break;
        case 1: case 2: case 3: case 4: case 5: case 6:
            if (tess_pin_policy_set(&policy, policy_fields[c], optarg, err, sizeof(err))) {
                fprintf(stderr, "tessera: %s\n", err);
                goto out;
            }
            break;
        default: usage(stderr); goto out;
        }
    }
    if (!have_so && read_secret(so_file, "SO PIN (administrator)", so_pin, sizeof(so_pin)))
        goto out;
    if (!have_pin && pin_file) {
        if (read_secret(pin_file, "user PIN", pin, sizeof(pin)))
            goto out;
        have_pin = true;
    }
    struct tpm2_vsc_params p = {
        .label = label, .so_pin = so_pin, .so_pin_len = strlen(so_pin),
        .user_pin = have_pin ? pin : NULL, .user_pin_len = strlen(pin), .policy = &policy, .slot_index = slot,
    };
    CK_RV rv = tpm2_vsc_create(&p, &id, err, sizeof(err));
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: %s\n", err);
        rc = exit_for(rv);
        goto out;
    }
    struct tpm2_vsc *v = NULL;
    if (tpm2_vsc_open(id, &v) == CKR_OK) {
        if (json) {
            printf("{\"serial\":\"%s\",\"label\":", v->rec.serial);
            json_str(v->rec.label);
            printf(",\"slot\":%d}\n", v->rec.slot_index);
        } else
            printf("created virtual card %s \"%s\" in slot %d%s\n", v->rec.serial, v->rec.label, v->rec.slot_index,
                   have_pin ? "" : " (user PIN not set yet: C_InitPIN as SO)");
        tpm2_vsc_free(v);
    }
    struct tpm2_status st;
    if (tpm2_get_status(&st) == CKR_OK && st.max_tries <= (uint32_t)settings.user_retries)
        fprintf(stderr,
                "tessera: warning: the TPM locks out after %u wrong PINs, before this card's own limit of %d;\n"
                "         every card on this TPM would stop. Run 'tessera tpm da --windows' (see tessera(1)).\n",
                st.max_tries, settings.user_retries);
    rc = EX_OK;
out:
    tess_wipe(so_pin, sizeof(so_pin));
    tess_wipe(pin, sizeof(pin));
    return rc;
}

static const char *pin_state(int left, int max)
{
    return left <= 0 ? "locked" : left < max ? "count low" : "ok";
}

static int cmd_vsc_list(void)
{
    struct tess_store *store;
    struct tess_card_rec *recs = NULL;
    size_t n = 0;
    CK_RV rv = tpm2_store(&store, false);
    if (rv == CKR_TOKEN_NOT_PRESENT) {
        puts(json ? "[]" : "no virtual cards");
        return EX_OK;
    }
    if (rv == CKR_OK)
        rv = tess_store_card_list(store, TPM2_DRIVER_NAME, &recs, &n);
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: cannot read the store %s\n", settings.store_path);
        return exit_for(rv);
    }
    if (json)
        putchar('[');
    else if (n)
        printf("%-4s %-16s %-32s %-10s %-10s %s\n", "SLOT", "SERIAL", "LABEL", "USER PIN", "SO PIN", "POLICY");
    else
        puts("no virtual cards");
    for (size_t i = 0; i < n; i++) {
        const struct tess_card_rec *r = &recs[i];
        char user[32];
        snprintf(user, sizeof(user), "%s %d/%d", r->user_pin_set ? pin_state(r->user_tries_left, r->user_tries_max) : "unset",
                 r->user_tries_left, r->user_tries_max);
        if (json) {
            printf("%s{\"slot\":%d,\"serial\":\"%s\",\"label\":", i ? "," : "", r->slot_index, r->serial);
            json_str(r->label);
            printf(",\"user_pin_set\":%s,\"user_tries_left\":%d,\"user_tries_max\":%d,\"so_tries_left\":%d,"
                   "\"so_tries_max\":%d,\"policy\":\"%s\"}",
                   r->user_pin_set ? "true" : "false", r->user_tries_left, r->user_tries_max, r->so_tries_left,
                   r->so_tries_max, r->policy);
        } else
            printf("%-4d %-16s %-32s %-10s %d/%-8d %s\n", r->slot_index, r->serial, r->label, user,
                   r->so_tries_left, r->so_tries_max, r->policy);
        tess_card_rec_clear(&recs[i]);
    }
    if (json)
        puts("]");
    free(recs);
    return EX_OK;
}

static int cmd_vsc_delete(int argc, char **argv)
{
    static const struct option opts[] = {
        { "serial", required_argument, 0, 's' }, { "slot", required_argument, 0, 'n' },
        { "yes", no_argument, 0, 'y' }, { 0, 0, 0, 0 },
    };
    const char *serial = NULL;
    int slot = -1, c;
    bool yes = false;
    struct tess_store *store;
    struct tess_card_rec *recs = NULL;
    size_t n = 0;
    int rc = EX_NOTFOUND;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': serial = optarg; break;
        case 'n': slot = atoi(optarg); break;
        case 'y': yes = true; break;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if ((!serial && slot < 0) || !yes) {
        fprintf(stderr, "tessera: vsc delete needs --serial or --slot, and --yes: it erases the card's keys\n");
        return EX_USAGE;
    }
    if (tpm2_store(&store, false) != CKR_OK || tess_store_card_list(store, TPM2_DRIVER_NAME, &recs, &n) != CKR_OK) {
        fprintf(stderr, "tessera: no virtual cards\n");
        return EX_NOTFOUND;
    }
    for (size_t i = 0; i < n; i++) {
        if (rc == EX_NOTFOUND && ((serial && !strcmp(serial, recs[i].serial)) || recs[i].slot_index == slot)) {
            CK_RV rv = tpm2_vsc_delete(recs[i].id);
            rc = exit_for(rv);
            if (rv == CKR_OK && !json)
                printf("deleted virtual card %s \"%s\" (slot %d) and its keys\n", recs[i].serial, recs[i].label,
                       recs[i].slot_index);
        }
        tess_card_rec_clear(&recs[i]);
    }
    free(recs);
    if (rc == EX_NOTFOUND)
        fprintf(stderr, "tessera: no such virtual card\n");
    return rc;
}

static int cmd_tpm_status(void)
{
    struct tpm2_status st;
    struct tess_store *store;
    struct tess_card_rec *recs = NULL;
    size_t n = 0;
    CK_RV rv = tpm2_get_status(&st);

    if (tpm2_store(&store, false) == CKR_OK && tess_store_card_list(store, TPM2_DRIVER_NAME, &recs, &n) == CKR_OK) {
        for (size_t i = 0; i < n; i++)
            tess_card_rec_clear(&recs[i]);
        free(recs);
    }
    bool ready = rv == CKR_OK && !st.in_lockout && !st.owner_auth_set;
    if (json) {
        printf("{\"tcti\":");
        json_str(settings.tcti);
        printf(",\"present\":%s,\"ready\":%s,\"why\":", st.reachable ? "true" : "false", ready ? "true" : "false");
        json_str(st.why);
        printf(",\"manufacturer\":");
        json_str(st.manufacturer);
        printf(",\"vendor\":");
        json_str(st.vendor);
        printf(",\"firmware\":\"%u.%u.%u.%u\",\"in_lockout\":%s,\"lockout_counter\":%u,"
               "\"max_tries\":%u,\"recovery_time\":%u,\"lockout_recovery\":%u,\"vsc_count\":%zu,\"vsc_max\":%d}\n",
               st.fw1 >> 16, st.fw1 & 0xffff, st.fw2 >> 16, st.fw2 & 0xffff,
               st.in_lockout ? "true" : "false", st.lockout_counter, st.max_tries, st.recovery_time,
               st.lockout_recovery, n, settings.max_vsc);
        return rv == CKR_OK ? EX_OK : EX_NOTPM;
    }
    printf("TPM connection:   %s\n", settings.tcti);
    if (!st.reachable) {
        printf("present:          no (%s)\n", st.why);
        return EX_NOTPM;
    }
    printf("present:          yes\n");
    printf("manufacturer:     %s (%s)\n", st.manufacturer, st.vendor);
    printf("firmware:         %u.%u.%u.%u, TPM 2.0 level %u revision %u.%02u\n", st.fw1 >> 16, st.fw1 & 0xffff,
           st.fw2 >> 16, st.fw2 & 0xffff, st.spec_level, st.spec_revision / 100, st.spec_revision % 100);
    printf("ready:            %s%s%s\n", ready ? "yes" : "no", st.why[0] ? ": " : "", st.why);
    printf("lockout:          %s, %u failures counted, locks after %u, one forgiven every %u s,\n"
           "                  lockout-auth retry after %u s\n",
           st.in_lockout ? "LOCKED OUT" : "not locked out", st.lockout_counter, st.max_tries, st.recovery_time,
           st.lockout_recovery);
    printf("virtual cards:    %zu of %d\n", n, settings.max_vsc);
    if (st.max_tries <= (uint32_t)settings.user_retries)
        printf("advice:           the TPM locks out before a card's own PIN counter (%d) does;\n"
               "                  run 'tessera tpm da --windows' to use 32 tries, one forgiven per 10 minutes\n",
               settings.user_retries);
    return rv == CKR_OK ? EX_OK : EX_NOTPM;
}

static int cmd_tpm_da(int argc, char **argv)
{
    static const struct option opts[] = {
        { "windows", no_argument, 0, 'w' }, { "max-tries", required_argument, 0, 'm' },
        { "recovery", required_argument, 0, 'r' }, { "lockout-recovery", required_argument, 0, 'l' },
        { "clear", no_argument, 0, 'c' }, { 0, 0, 0, 0 },
    };
    long tries = -1, recovery = -1, lockout = -1;
    bool clear = false;
    int c;
    CK_RV rv;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w': tries = 32; recovery = 600; lockout = 600; break;
        case 'm': tries = atol(optarg); break;
        case 'r': recovery = atol(optarg); break;
        case 'l': lockout = atol(optarg); break;
        case 'c': clear = true; break;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (clear) {
        rv = tpm2_clear_da_lockout();
        if (rv == CKR_OK)
            puts("dictionary-attack lockout cleared");
        return exit_for(rv);
    }
    if (tries < 1 || recovery < 1 || lockout < 0) {
        fprintf(stderr, "tessera: tpm da needs --windows, or --max-tries (>=1), --recovery (>=1: 0 would switch\n"
                        "         dictionary-attack protection off) and --lockout-recovery\n");
        return EX_USAGE;
    }
    if (tries <= settings.user_retries)
        fprintf(stderr, "tessera: warning: %ld tries is not above the cards' own limit of %d\n", tries,
                settings.user_retries);
    rv = tpm2_set_da((uint32_t)tries, (uint32_t)recovery, (uint32_t)lockout);
    if (rv == CKR_OK)
        printf("TPM locks out after %ld failures, forgives one every %ld s; lockout-auth retry after %ld s\n", tries,
               recovery, lockout);
    else
        fprintf(stderr, "tessera: could not change the dictionary-attack settings (is the lockout hierarchy's "
                        "password set, or the TPM in lockout?)\n");
    return exit_for(rv);
}

static int unhex(const char *hex, uint8_t *out, size_t max, size_t *len)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        unsigned v;
        if (*p == ' ' || *p == '\n' || *p == ':' || *p == '\t' || *p == '\r') {
            p++;
            continue;
        }
        if (n == max || sscanf(p, "%2x", &v) != 1 || !isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
            return -1;
        out[n++] = (uint8_t)v;
        p += 2;
    }
    *len = n;
    return 0;
}

/* The master key from a file that only its owner can read: hex text. */
static int read_master(const char *path, uint8_t *key, size_t max, size_t *len)
{
    char text[512];
    struct stat st;
    FILE *f = fopen(path, "r");
    int rc = -1;
    if (!f) {
        fprintf(stderr, "tessera: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) || (st.st_mode & 077)) {
        fprintf(stderr, "tessera: %s is readable by others (mode %03o): a master key file must be 0600\n", path,
                (unsigned)(st.st_mode & 0777));
        goto out;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    if (unhex(text, key, max, len) || *len < 16) {
        fprintf(stderr, "tessera: %s must hold the master key as hex (16 to 64 bytes)\n", path);
        goto out;
    }
    rc = 0;
out:
    tess_wipe(text, sizeof(text));
    fclose(f);
    return rc;
}

/* A card's admin key, given directly or diversified from the master key. */
static int admin_key(const char *hex, const char *master_file, const char *serial, enum tess_prf prf,
                     enum tess_key_alg alg, uint8_t *key, size_t *len)
{
    uint8_t master[64];
    size_t mlen = 0;
    int rc = EX_USAGE;
    if (hex) {
        if (unhex(hex, key, *len, len) || *len != tess_key_alg_len(alg)) {
            fprintf(stderr, "tessera: the admin key must be %zu bytes of hex\n", tess_key_alg_len(alg));
            return EX_USAGE;
        }
        return EX_OK;
    }
    if (!master_file || !serial) {
        fprintf(stderr, "tessera: give --admin-key, or --master-file and --serial\n");
        return EX_USAGE;
    }
    if (read_master(master_file, master, sizeof(master), &mlen))
        goto out;
    CK_RV rv = tess_admin_key_diversify(prf, master, mlen, serial, alg, key, len);
    if (rv == CKR_KEY_SIZE_RANGE)
        fprintf(stderr, "tessera: a %s master key must be %s bytes\n", prf == TESS_PRF_CMAC_AES128 ? "CMAC-AES128" : "CMAC-AES256",
                prf == TESS_PRF_CMAC_AES128 ? "16" : "32");
    rc = rv == CKR_OK ? EX_OK : EX_FAIL;
out:
    tess_wipe(master, sizeof(master));
    return rc;
}

static int cmd_admin_key_derive(int argc, char **argv)
{
    static const struct option opts[] = {
        { "master-file", required_argument, 0, 'm' }, { "serial", required_argument, 0, 's' },
        { "alg", required_argument, 0, 'a' },         { "prf", required_argument, 0, 'p' }, { 0, 0, 0, 0 },
    };
    const char *master = NULL, *serial = NULL;
    enum tess_key_alg alg = TESS_KEY_3DES;
    enum tess_prf prf = TESS_PRF_CMAC_AES256;
    uint8_t key[32];
    size_t len = sizeof(key);
    char hex[65];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'm': master = optarg; break;
        case 's': serial = optarg; break;
        case 'a': if (tess_key_alg_parse(optarg, &alg)) { usage(stderr); return EX_USAGE; } break;
        case 'p': if (tess_prf_parse(optarg, &prf)) { usage(stderr); return EX_USAGE; } break;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (!master || !serial) {
        fprintf(stderr, "tessera: admin-key derive needs --master-file and --serial\n");
        return EX_USAGE;
    }
    rc = admin_key(NULL, master, serial, prf, alg, key, &len);
    if (rc == EX_OK) {
        tess_hex(hex, key, len);
        if (json) {
            printf("{\"serial\":");
            json_str(serial);
            printf(",\"admin_key\":\"%s\"}\n", hex);
        } else {
            puts(hex);
        }
    }
    tess_wipe(key, sizeof(key));
    tess_wipe(hex, sizeof(hex));
    return rc;
}

static int cmd_unblock_response(int argc, char **argv)
{
    static const struct option opts[] = {
        { "challenge", required_argument, 0, 'c' }, { "admin-key", required_argument, 0, 'k' },
        { "master-file", required_argument, 0, 'm' }, { "serial", required_argument, 0, 's' },
        { "prf", required_argument, 0, 'p' }, { 0, 0, 0, 0 },
    };
    const char *challenge = NULL, *hex = NULL, *master = NULL, *serial = NULL;
    enum tess_prf prf = TESS_PRF_CMAC_AES256;
    uint8_t key[24], chal[8], resp[8];
    size_t klen = sizeof(key), clen = 0;
    char code[TESS_CODE_MAX], rhex[2 * sizeof(resp) + 1];
    int c, n = 0, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': challenge = optarg; break;
        case 'k': hex = optarg; break;
        case 'm': master = optarg; break;
        case 's': serial = optarg; break;
        case 'p': if (tess_prf_parse(optarg, &prf)) { usage(stderr); return EX_USAGE; } break;
        default: usage(stderr); return EX_USAGE;
        }
    }
    if (!challenge) {
        fprintf(stderr, "tessera: unblock response needs --challenge\n");
        return EX_USAGE;
    }
    /* The code the user reads out, or the 16 hex digits Windows shows. */
    switch (tess_code_parse(challenge, chal, sizeof(chal))) {
    case TESS_CODE_OK:
        break;
    case TESS_CODE_MISTYPED:
        fprintf(stderr, "tessera: the challenge was mistyped (its check symbol does not match): ask for it again\n");
        return EX_USAGE;
    default:
        if (unhex(challenge, chal, sizeof(chal), &clen) || clen != sizeof(chal)) {
            fprintf(stderr, "tessera: '%s' is neither a challenge code nor 16 hex digits\n", challenge);
            return EX_USAGE;
        }
    }
    rc = admin_key(hex, master, serial, prf, TESS_KEY_3DES, key, &klen);
    if (rc != EX_OK)
        goto out;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || !EVP_EncryptInit_ex(ctx, EVP_des_ede3_ecb(), NULL, key, NULL) || !EVP_CIPHER_CTX_set_padding(ctx, 0) ||
        !EVP_EncryptUpdate(ctx, resp, &n, chal, sizeof(chal)) || n != sizeof(resp)) {
        EVP_CIPHER_CTX_free(ctx);
        rc = EX_FAIL;
        goto out;
    }
    EVP_CIPHER_CTX_free(ctx);
    tess_code_format(resp, sizeof(resp), code, sizeof(code));
    if (json) {
        tess_hex(rhex, resp, sizeof(resp));
        printf("{\"response\":\"%s\",\"response_hex\":\"%s\"}\n", code, rhex);
    } else {
        printf("%s\n", code);
    }
out:
    /* The response unblocks the card once: nothing of it stays behind. */
    tess_wipe(key, sizeof(key));
    tess_wipe(resp, sizeof(resp));
    tess_wipe(code, sizeof(code));
    tess_wipe(rhex, sizeof(rhex));
    return rc;
}

int main(int argc, char **argv)
{
    char err[512];
    int rc;

    if (argc > 1 && !strcmp(argv[1], "--json")) {
        json = true;
        argv++;
        argc--;
    }
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE : EX_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        puts(PACKAGE_STRING);
        return EX_OK;
    }
    if (tess_settings_load(&settings, err, sizeof(err))) {
        fprintf(stderr, "tessera: %s\n", err);
        return EX_USAGE;
    }
    if (tess_log_level() < TESS_LOG_WARN && !getenv("TESSERA_LOG"))
        tess_log_set_level(TESS_LOG_ERROR);
    tpm2_set_settings(&settings);

    const char *noun = argv[1], *verb = argc > 2 ? argv[2] : "";
    if (!strcmp(noun, "vsc") && !strcmp(verb, "create"))
        rc = cmd_vsc_create(argc - 2, argv + 2);
    else if (!strcmp(noun, "vsc") && !strcmp(verb, "list"))
        rc = cmd_vsc_list();
    else if (!strcmp(noun, "vsc") && !strcmp(verb, "delete"))
        rc = cmd_vsc_delete(argc - 2, argv + 2);
    else if (!strcmp(noun, "tpm") && !strcmp(verb, "status"))
        rc = cmd_tpm_status();
    else if (!strcmp(noun, "tpm") && !strcmp(verb, "da"))
        rc = cmd_tpm_da(argc - 2, argv + 2);
    else if (!strcmp(noun, "admin-key") && !strcmp(verb, "derive"))
        rc = cmd_admin_key_derive(argc - 2, argv + 2);
    else if (!strcmp(noun, "unblock") && !strcmp(verb, "response"))
        rc = cmd_unblock_response(argc - 2, argv + 2);
    else {
        usage(stderr);
        rc = EX_USAGE;
    }
    tpm2_conn_close(false);
    tess_store_shared_close(false);
    return rc;
}
