/* tessera: the command-line tool. This file: the verbs for TPM virtual
 * cards and the TPM itself, the shared helpers, and the dispatch; admin.c
 * has the admin-key, unblock and card verbs, client.c the PKCS#11 side. */
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
#include "tool.h"

struct tess_settings tool_settings;
bool tool_json;

void tool_usage(FILE *f)
{
    fputs("usage: tessera [--json] COMMAND ...\n"
          "\n"
          "Virtual cards and the TPM\n"
          "  vsc create [--label L] [--so-pin P | --so-pin-file F] [--pin P | --pin-file F]\n"
          "             [--slot N] [--pin-min N] [--pin-max N]\n"
          "             [--pin-digits R] [--pin-uppercase R] [--pin-lowercase R] [--pin-special R]\n"
          "                 R is optional, mandatory or forbidden\n"
          "             [--pin-tries N] [--so-pin-tries N]\n"
          "             [--admin-key HEX|default | MASTER] [--prf P] [--admin-alg A]\n"
          "  vsc list\n"
          "  vsc delete (--serial S | --slot N) (--so-pin-file F | --response CODE) --yes\n"
          "  tpm status\n"
          "  tpm da (--windows | --max-tries N --recovery SECONDS --lockout-recovery SECONDS | --clear)\n"
          "\n"
          "Card administration (CARD is --slot N or --serial S)\n"
          "  card info CARD\n"
          "  card init (CARD | --new) (--so-pin-file F | --puk-file F) [--new-so-pin-file F] [--pin-file F]\n"
          "            [--label L] [policy options as vsc create] [--pin-tries N] [--so-pin-tries N]\n"
          "            [--admin-key HEX|default | MASTER] [--prf P] [--alg A] [--yes]\n"
          "                                            erase, then a known state; --new: a new TPM card\n"
          "  card erase CARD (--so-pin-file F | --puk-file F | --response CODE) [--yes]\n"
          "  unblock challenge CARD [--new]            the user's side: a one-time challenge to read out\n"
          "  unblock response --challenge CODE (--admin-key HEX|default | MASTER --serial S)\n"
          "                   [--prf P] [--alg A]      the helpdesk's side: no card or TPM needed\n"
          "  unblock complete CARD --response CODE [--pin-file F]\n"
          "  admin-key derive MASTER --serial S [--prf P] [--alg A]\n"
          "  admin-key set CARD [--so-pin-file F] (--admin-key HEX|default | MASTER) [--prf P] [--alg A]\n"
          "  admin-key rotate CARD (--old-admin-key HEX|default | --old-master-file F | --old-master-uri U)\n"
          "                   [--old-prf P] [--old-alg A] (--admin-key HEX | MASTER) [--prf P] [--alg A]\n"
          "\n"
          "Keys and certificates (the user PIN from --pin-file F or the terminal)\n"
          "  key generate CARD [--type rsa2048|rsa3072|p256|p384] [--id HEX] [--label L]\n"
          "                   [--csr FILE --subject /CN=...]  a key made on the card, and a request it signed\n"
          "  cert load CARD [--label L] CERT         next to the card's key with the same public key\n"
          "  cert import-ca CARD CERT...\n"
          "  key import CARD --p12 FILE [--p12-pass-file F] [--id HEX] [--label L]\n"
          "\n"
          "Card management (a database: --db PATH, default TESSERA_HOME/cms.db; root may add --as OPERATOR)\n"
          "  db init [--admin NAME]                   a new database and its first administrator\n"
          "  db status\n"
          "  operator add|roles NAME --roles R[,R]    R: administrator, issuer, helpdesk, key-recovery, auditor\n"
          "  operator disable NAME | operator list\n"
          "  holder import FILE [--format csv|ldif]   CSV with a header (uid,name,email,...) or LDIF\n"
          "  holder list [--limit N] | holder find QUERY | holder show UID\n"
          "  profile import FILE | profile list | profile show NAME [--version N]\n"
          "  audit [--holder U] [--card S] [--device D] [--operator O] [--action A] [--since T] [--until T] [--last N]\n"
          "  audit verify                             is the hash chain whole?\n"
          "  ca init --subject /CN=... [--type p256|p384|rsa3072|rsa4096] [--days N] [--crl-url URL]\n"
          "  ca connect cfssl --url URL [--profile NAME,...] [--auth-key-file F] [--crl-url URL]\n"
          "                   [--tls-ca-file F] [--tls-client-cert F --tls-client-key F] [--label L]\n"
          "                                           a cfssl server as the CA\n"
          "  ca show | ca certificate | ca crl [--out FILE|-]\n"
          "  device add NAME | device list\n"
          "  card request --holder UID --profile NAME [--type tpm|piv] [--device NAME] [--valid-days N]\n"
          "  card collect [--code CODE] [--pin-file F] [--puk-file F] [--slot N]\n"
          "                                           the holder, on the device: the card made (TPM) or the PIV\n"
          "                                           card in the reader initialised, and issued\n"
          "  card list [--holder UID] | card show ID|SERIAL | job list [--state S]\n"
          "  card request --holders FILE --out CODES --profile NAME [--type T] [--valid-days N]\n"
          "                                           a batch, all or none; the codes to a new 0600 file\n"
          "  card code ID                             a new collection code for a requested card\n"
          "  card suspend|enable|cancel ID|SERIAL [--note TEXT]   certificates held, released, revoked\n"
          "  card replace ID|SERIAL --reason lost|stolen|damaged|forgotten [--type T] [--device NAME]\n"
          "               [--valid-days N] [--note TEXT]   forgotten: a temporary card, the original suspended\n"
          "  card erase|reprovision ID|SERIAL [--note TEXT]   on the card's device: erased by its admin key;\n"
          "                                           reprovision: then a new card to the latest profile\n"
          "  job resume ID                            finish a change that was interrupted\n"
          "  card lock ID|SERIAL [--at 'YYYY-MM-DD HH:MM' --tz ZONE] [--note TEXT]\n"
          "                                           the PIN locked by the device's agent, then or at its next run\n"
          "  job move ID --at 'YYYY-MM-DD HH:MM' --tz ZONE | job cancel ID [--note TEXT]   a pending lock\n"
          "  card unlock ID|SERIAL --challenge CODE --note REASON [--hours N]\n"
          "                                           the helpdesk's response; with --hours, locked again then\n"
          "  agent                                    on a device: lock the cards whose lock is due, then exit\n"
          "  scan [--dry-run] [--at 'YYYY-MM-DD HH:MM']  renewals whose window opened, holders told, temporary\n"
          "                                           cards past their end ended (from cron)\n"
          "  notify set [--sendmail 'CMD'] [--from ADDR] [--webhook URL] | notify show   how holders are told\n"
          "  card renew [ID|SERIAL] [--pin-file F]    the holder, on the device: new keys and certificates for a\n"
          "                                           card whose renewal is due, the old ones removed (PIV:\n"
          "                                           new certificates for the keys it has)\n"
          "  escrow create NAME (--key-out FILE [--pass-file F] | --hsm-uri URI ...) | escrow add NAME --cert F\n"
          "                                           an escrow key for escrowed keys (profile: escrow = yes)\n"
          "  escrow list | escrow archives [--card C] [--holder UID]\n"
          "  key recover (--archive N | --card C [--key NAME] [--all] | --holder UID --all)\n"
          "              (--p12 FILE | --to-card C [--pin-file F])\n"
          "              (--escrow-key FILE [--escrow-pass-file F] | --hsm-uri URI ...)   key recovery only\n"
          "\n"
          "  MASTER: --master-file F (hex, mode 0600), or --master-uri 'pkcs11:token=...;object=...' (a key\n"
          "          in an HSM, which computes the KDF) [--hsm-module SO] [--hsm-pin-file F]\n"
          "  P: cmac-aes256 (default), cmac-aes128, hmac-sha256   A: 3des (default), aes128, aes192, aes256\n"
          "Settings: TESSERA_HOME (config + store), TESSERA_TCTI (TPM connection).\n",
          f);
}

/* Does a verb's command line name a card by --slot or --serial? */
static bool names_card(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "--slot", 6) || !strncmp(argv[i], "--serial", 8))
            return true;
    return false;
}

int tool_exit_for(CK_RV rv)
{
    switch (rv) {
    case CKR_OK: return EX_OK;
    case CKR_DEVICE_ERROR: return tpm2_conn_available() ? EX_FAIL : EX_NOTPM;
    case CKR_PIN_INCORRECT: case CKR_PIN_INVALID: case CKR_PIN_LEN_RANGE: case CKR_TESSERA_RESPONSE_INCORRECT:
    case CKR_TESSERA_NO_CHALLENGE:
        return EX_PIN;
    case CKR_PIN_LOCKED: case CKR_TESSERA_UNBLOCK_LOCKED: case CKR_TESSERA_NO_CHALLENGES_LEFT:
    case CKR_TESSERA_NO_ADMIN_KEY:
        return EX_LOCKED;
    case CKR_TOKEN_NOT_PRESENT: case CKR_SLOT_ID_INVALID: return EX_NOTFOUND;
    default: return EX_FAIL;
    }
}

int tool_unhex(const char *hex, uint8_t *out, size_t max, size_t *len)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        unsigned v;
        if (*p == ' ' || *p == '\n' || *p == ':' || *p == '\t' || *p == '\r') {
            p++;
            continue;
        }
        if (n == max || !isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) || sscanf(p, "%2x", &v) != 1)
            return -1;
        out[n++] = (uint8_t)v;
        p += 2;
    }
    *len = n;
    return 0;
}

/* A JSON string value: quotes, backslashes and control characters escaped. */
void tool_json_str(const char *s)
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
int tool_read_secret(const char *file, const char *prompt, char *out, size_t outlen)
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
        puts(tool_json ? "[]" : "no virtual cards");
        return EX_OK;
    }
    if (rv == CKR_OK)
        rv = tess_store_card_list(store, TPM2_DRIVER_NAME, &recs, &n);
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: cannot read the store %s\n", tool_settings.store_path);
        return tool_exit_for(rv);
    }
    if (tool_json)
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
        if (tool_json) {
            printf("%s{\"slot\":%d,\"serial\":\"%s\",\"label\":", i ? "," : "", r->slot_index, r->serial);
            tool_json_str(r->label);
            printf(",\"user_pin_set\":%s,\"user_tries_left\":%d,\"user_tries_max\":%d,\"so_tries_left\":%d,"
                   "\"so_tries_max\":%d,\"policy\":\"%s\"}",
                   r->user_pin_set ? "true" : "false", r->user_tries_left, r->user_tries_max, r->so_tries_left,
                   r->so_tries_max, r->policy);
        } else
            printf("%-4d %-16s %-32s %-10s %d/%-8d %s\n", r->slot_index, r->serial, r->label, user,
                   r->so_tries_left, r->so_tries_max, r->policy);
        tess_card_rec_clear(&recs[i]);
    }
    if (tool_json)
        puts("]");
    free(recs);
    return EX_OK;
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
    if (tool_json) {
        printf("{\"tcti\":");
        tool_json_str(tool_settings.tcti);
        printf(",\"present\":%s,\"ready\":%s,\"why\":", st.reachable ? "true" : "false", ready ? "true" : "false");
        tool_json_str(st.why);
        printf(",\"manufacturer\":");
        tool_json_str(st.manufacturer);
        printf(",\"vendor\":");
        tool_json_str(st.vendor);
        printf(",\"firmware\":\"%u.%u.%u.%u\",\"in_lockout\":%s,\"lockout_counter\":%u,"
               "\"max_tries\":%u,\"recovery_time\":%u,\"lockout_recovery\":%u,\"vsc_count\":%zu,\"vsc_max\":%d}\n",
               st.fw1 >> 16, st.fw1 & 0xffff, st.fw2 >> 16, st.fw2 & 0xffff,
               st.in_lockout ? "true" : "false", st.lockout_counter, st.max_tries, st.recovery_time,
               st.lockout_recovery, n, tool_settings.max_vsc);
        return rv == CKR_OK ? EX_OK : EX_NOTPM;
    }
    printf("TPM connection:   %s\n", tool_settings.tcti);
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
    printf("virtual cards:    %zu of %d\n", n, tool_settings.max_vsc);
    if (st.max_tries <= (uint32_t)tool_settings.user_retries)
        printf("advice:           the TPM locks out before a card's own PIN counter (%d) does;\n"
               "                  run 'tessera tpm da --windows' to use 32 tries, one forgiven per 10 minutes\n",
               tool_settings.user_retries);
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
        default: tool_usage(stderr); return EX_USAGE;
        }
    }
    if (clear) {
        rv = tpm2_clear_da_lockout();
        if (rv == CKR_OK)
            puts("dictionary-attack lockout cleared");
        return tool_exit_for(rv);
    }
    if (tries < 1 || recovery < 1 || lockout < 0) {
        fprintf(stderr, "tessera: tpm da needs --windows, or --max-tries (>=1), --recovery (>=1: 0 would switch\n"
                        "         dictionary-attack protection off) and --lockout-recovery\n");
        return EX_USAGE;
    }
    if (tries <= tool_settings.user_retries)
        fprintf(stderr, "tessera: warning: %ld tries is not above the cards' own limit of %d\n", tries,
                tool_settings.user_retries);
    rv = tpm2_set_da((uint32_t)tries, (uint32_t)recovery, (uint32_t)lockout);
    if (rv == CKR_OK)
        printf("TPM locks out after %ld failures, forgives one every %ld s; lockout-auth retry after %ld s\n", tries,
               recovery, lockout);
    else
        fprintf(stderr, "tessera: could not change the dictionary-attack settings (is the lockout hierarchy's "
                        "password set, or the TPM in lockout?)\n");
    return tool_exit_for(rv);
}

int main(int argc, char **argv)
{
    char err[512];
    int rc;

    if (argc > 1 && !strcmp(argv[1], "--json")) {
        tool_json = true;
        argv++;
        argc--;
    }
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
        tool_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE : EX_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        puts(PACKAGE_STRING);
        return EX_OK;
    }
    if (tess_settings_load(&tool_settings, err, sizeof(err))) {
        fprintf(stderr, "tessera: %s\n", err);
        return EX_USAGE;
    }
    if (tess_log_level() < TESS_LOG_WARN && !getenv("TESSERA_LOG"))
        tess_log_set_level(TESS_LOG_ERROR);
    tpm2_set_settings(&tool_settings);

    const char *noun = argv[1], *verb = argc > 2 ? argv[2] : "";
    if (!strcmp(noun, "vsc") && !strcmp(verb, "create"))
        rc = cmd_card_init(argc - 2, argv + 2, true);
    else if (!strcmp(noun, "vsc") && !strcmp(verb, "list"))
        rc = cmd_vsc_list();
    else if (!strcmp(noun, "vsc") && !strcmp(verb, "delete"))
        rc = cmd_card_erase(argc - 2, argv + 2, true);
    else if (!strcmp(noun, "tpm") && !strcmp(verb, "status"))
        rc = cmd_tpm_status();
    else if (!strcmp(noun, "tpm") && !strcmp(verb, "da"))
        rc = cmd_tpm_da(argc - 2, argv + 2);
    else if (!strcmp(noun, "admin-key") && !strcmp(verb, "derive"))
        rc = cmd_admin_key_derive(argc - 2, argv + 2);
    else if (!strcmp(noun, "admin-key") && !strcmp(verb, "set"))
        rc = cmd_admin_key_set(argc - 2, argv + 2);
    else if (!strcmp(noun, "admin-key") && !strcmp(verb, "rotate"))
        rc = cmd_admin_key_rotate(argc - 2, argv + 2);
    else if (!strcmp(noun, "unblock") && !strcmp(verb, "challenge"))
        rc = cmd_unblock_challenge(argc - 2, argv + 2);
    else if (!strcmp(noun, "unblock") && !strcmp(verb, "response"))
        rc = cmd_unblock_response(argc - 2, argv + 2);
    else if (!strcmp(noun, "unblock") && !strcmp(verb, "complete"))
        rc = cmd_unblock_complete(argc - 2, argv + 2);
    else if (!strcmp(noun, "cert") && !strcmp(verb, "load"))
        rc = cmd_cert_load(argc - 2, argv + 2);
    else if (!strcmp(noun, "cert") && !strcmp(verb, "import-ca"))
        rc = cmd_cert_import_ca(argc - 2, argv + 2);
    else if (!strcmp(noun, "key") && !strcmp(verb, "import"))
        rc = cmd_key_import(argc - 2, argv + 2);
    else if (!strcmp(noun, "key") && !strcmp(verb, "generate"))
        rc = cmd_key_generate(argc - 2, argv + 2);
    else if (!strcmp(noun, "card") && !strcmp(verb, "info"))
        rc = cmd_card_info(argc - 2, argv + 2);
    else if (!strcmp(noun, "card") && !strcmp(verb, "init"))
        rc = cmd_card_init(argc - 2, argv + 2, false);
    else if (!strcmp(noun, "card") && !strcmp(verb, "erase") && names_card(argc - 2, argv + 2))
        rc = cmd_card_erase(argc - 2, argv + 2, false);   /* by hand; without --slot/--serial: card management's */
    else if ((rc = cmd_cms(noun, argc - 1, argv + 1)) >= 0)
        ;
    else {
        tool_usage(stderr);
        rc = EX_USAGE;
    }
    tpm2_conn_close(false);
    tess_store_shared_close(false);
    return rc;
}
