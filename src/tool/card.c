/* tessera card init / card erase, and vsc create / vsc delete, which are the
 * same on the TPM: all through T_InitCard and T_EraseCard. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../../drivers/tpm2/tpm2.h"
#include "../util.h"
#include "tool.h"

#define SECRET_MAX (TESS_PIN_MAX_LEN + 2)

struct init_args {
    struct tool_card_args ca;
    bool new_card;                   /* the TPM's spare slot: a new virtual card */
    bool yes;
    const char *label;
    const char *so_file, *new_so_file, *pin_file;
    char so_pin[SECRET_MAX], new_so_pin[SECRET_MAX], pin[SECRET_MAX];
    bool have_so, have_pin, have_new_so;
    struct tess_pin_policy policy;
    bool policy_given;
    long pin_tries, so_tries;
    struct tool_key_source ks;
};

static void init_args_wipe(struct init_args *a)
{
    tess_wipe(a->so_pin, sizeof(a->so_pin));
    tess_wipe(a->new_so_pin, sizeof(a->new_so_pin));
    tess_wipe(a->pin, sizeof(a->pin));
}

static int parse_tries(const char *arg, long *out)
{
    char *end;
    *out = strtol(arg, &end, 10);
    return *end || *out < 1 || *out > 255;
}

static int parse_init(int argc, char **argv, bool vsc, struct init_args *a)
{
    static const struct option opts[] = {
        TOOL_CARD_OPTIONS, TOOL_KEY_SOURCE_OPTIONS,
        { "new", no_argument, 0, 'N' },               { "label", required_argument, 0, 'l' },
        { "so-pin", required_argument, 0, 1 },        { "so-pin-file", required_argument, 0, 2 },
        { "puk-file", required_argument, 0, 2 },      { "new-so-pin-file", required_argument, 0, 3 },
        { "pin", required_argument, 0, 4 },           { "pin-file", required_argument, 0, 5 },
        { "pin-min", required_argument, 0, 11 },      { "pin-max", required_argument, 0, 12 },
        { "pin-digits", required_argument, 0, 13 },   { "pin-uppercase", required_argument, 0, 14 },
        { "pin-lowercase", required_argument, 0, 15 }, { "pin-special", required_argument, 0, 16 },
        { "pin-tries", required_argument, 0, 20 },    { "so-pin-tries", required_argument, 0, 21 },
        { "admin-alg", required_argument, 0, 'a' },   { "yes", no_argument, 0, 'y' },
        { 0, 0, 0, 0 },
    };
    static const char *policy_fields[] = { "min_length", "max_length", "digits", "uppercase", "lowercase", "special" };
    char err[256];
    int c;

    a->ca = (struct tool_card_args)TOOL_CARD_ARGS_INIT;
    a->ks = (struct tool_key_source)TOOL_KEY_SOURCE_INIT;
    a->policy = tool_settings.pin_policy;
    a->new_card = vsc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'N': a->new_card = true; break;
        case 'y': a->yes = true; break;
        case 'l': a->label = optarg; break;
        case 1: snprintf(a->so_pin, sizeof(a->so_pin), "%s", optarg); a->have_so = true; break;
        case 2: a->so_file = optarg; break;
        case 3: a->new_so_file = optarg; break;
        case 4: snprintf(a->pin, sizeof(a->pin), "%s", optarg); a->have_pin = true; break;
        case 5: a->pin_file = optarg; break;
        case 11: case 12: case 13: case 14: case 15: case 16:
            if (tess_pin_policy_set(&a->policy, policy_fields[c - 11], optarg, err, sizeof(err)))
                return tool_usage_error(err);
            a->policy_given = true;
            break;
        case 20: if (parse_tries(optarg, &a->pin_tries)) return tool_usage_error("--pin-tries must be 1 to 255"); break;
        case 21: if (parse_tries(optarg, &a->so_tries)) return tool_usage_error("--so-pin-tries must be 1 to 255"); break;
        default:
            if (tool_card_opt(&a->ca, c, optarg) == 0)
                break;
            if (c != 'n' && c != 's' && tool_key_source_opt(&a->ks, c, optarg) == 0)
                break;
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    if (vsc && a->ca.serial)
        return tool_usage_error("vsc create makes a new card: --slot names the free slot to put it in");
    if (vsc && a->ca.slot >= tool_settings.max_vsc) {
        fprintf(stderr, "tessera: --slot must be 0 to %d (max_vsc)\n", tool_settings.max_vsc - 1);
        return EX_USAGE;
    }
    if (!vsc && a->new_card == (a->ca.slot >= 0 || a->ca.serial != NULL))
        return tool_usage_error("card init needs the card: --slot N, --serial S, or --new (a new TPM virtual card)");
    if (!a->have_so && tool_read_secret(a->so_file, a->new_card ? "SO PIN (administrator)" : "SO PIN or PUK",
                                        a->so_pin, sizeof(a->so_pin)))
        return EX_USAGE;
    if (a->new_so_file) {
        if (tool_read_secret(a->new_so_file, "new SO PIN", a->new_so_pin, sizeof(a->new_so_pin)))
            return EX_USAGE;
        a->have_new_so = true;
    }
    if (!a->have_pin && a->pin_file) {
        if (tool_read_secret(a->pin_file, "user PIN", a->pin, sizeof(a->pin)))
            return EX_USAGE;
        a->have_pin = true;
    }
    return EX_OK;
}

int tool_find_spare(struct tool_p11 *p, long want, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[128];
    CK_ULONG n = TESS_ARRAY_SIZE(slots);
    CK_TOKEN_INFO ti;

    if (p->f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        n = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || (ti.flags & CKF_TOKEN_INITIALIZED) ||
            memcmp(ti.model, "TPM2 VSC", 8))
            continue;
        if (want >= 0 && slots[i] != (CK_SLOT_ID)want)
            continue;
        *out = slots[i];
        return EX_OK;
    }
    if (want >= 0) {
        fprintf(stderr, "tessera: slot %ld already holds a virtual card\n", want);
        return EX_FAIL;
    }
    fprintf(stderr, "tessera: no free virtual-card slot: no TPM reachable, or max_vsc (%d) cards already\n",
            tool_settings.max_vsc);
    return EX_NOTFOUND;
}

/* Initialising a card erases it: the operator says so with --yes, or types
 * the card's serial at the terminal. */
static int confirm(const char *what, const char *serial, bool yes)
{
    char typed[64] = "";
    if (yes)
        return EX_OK;
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, "tessera: %s erases card %s (keys, certificates, PINs): add --yes\n", what, serial);
        return EX_USAGE;
    }
    fprintf(stderr, "%s erases card %s: its keys, certificates and PINs.\nType its serial to go on: ", what, serial);
    if (!fgets(typed, sizeof(typed), stdin))
        typed[0] = '\0';
    typed[strcspn(typed, "\r\n")] = '\0';
    if (strcasecmp(typed, serial)) {
        fprintf(stderr, "tessera: not confirmed; nothing was changed\n");
        return EX_USAGE;
    }
    return EX_OK;
}

static void print_card(struct tool_p11 *p, CK_SLOT_ID slot, const char *serial, bool vsc, bool have_pin)
{
    CK_TOKEN_INFO ti;
    char label[33] = "";
    if (p->f->C_GetTokenInfo(slot, &ti) == CKR_OK)
        tess_unpad_copy(label, sizeof(label), ti.label, sizeof(ti.label));
    if (tool_json) {
        printf("{\"serial\":\"%s\",\"label\":", serial);
        tool_json_str(label);
        printf(",\"slot\":%lu}\n", (unsigned long)slot);
    } else if (vsc) {
        printf("created virtual card %s \"%s\" in slot %lu%s\n", serial, label, (unsigned long)slot,
               have_pin ? "" : " (user PIN not set yet: C_InitPIN as SO)");
    } else {
        printf("initialised card %s \"%s\" in slot %lu%s\n", serial, label, (unsigned long)slot,
               have_pin ? "" : " (user PIN not set yet: C_InitPIN as SO)");
    }
}

/* The TPM counts wrong PINs of every card together; if it locks out before
 * a card's own counter does, one user's typos stop every card on it. */
static void warn_da(int card_tries)
{
    struct tpm2_status st;
    if (tpm2_get_status(&st) == CKR_OK && st.max_tries <= (uint32_t)card_tries)
        fprintf(stderr,
                "tessera: warning: the TPM locks out after %u wrong PINs, before this card's own limit of %d;\n"
                "         every card on this TPM would stop. Run 'tessera tpm da --windows' (see tessera(1)).\n",
                st.max_tries, card_tries);
}

int cmd_card_init(int argc, char **argv, bool vsc)
{
    struct init_args a;
    struct tool_p11 p = { 0 };
    CK_TESSERA_CARD_INFO info;
    CK_TESSERA_PIN_POLICY policy;
    CK_TESSERA_INIT init;
    CK_SLOT_ID slot;
    CK_RV rv;
    char serial[40] = "", spare[24];
    uint8_t key[32];
    size_t key_len = 0;
    bool diversify;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = parse_init(argc, argv, vsc, &a);
    if (rc != EX_OK)
        goto out;
    diversify = a.ks.master_file || a.ks.master_uri;
    /* A key given outright goes in with the card; a diversified one needs
     * the card's serial, so it is set just after, by the SO. */
    if ((a.ks.hex || a.ks.use_default) && (rc = tool_key_source_key(&a.ks, NULL, key, &key_len)) != EX_OK)
        goto out;
    if (a.new_card) {
        /* The module shows a spare slot to this tool, where asked. */
        snprintf(spare, sizeof(spare), "%ld", a.ca.slot);
        setenv("TESSERA_SPARE_SLOT", a.ca.slot >= 0 ? spare : "yes", 1);
        rc = tool_p11_open(&p);
        if (rc == EX_OK)
            rc = tool_find_spare(&p, a.ca.slot, &slot);
    } else {
        rc = tool_open_card(&p, &a.ca, &slot, &info);
        if (rc == EX_OK) {
            tool_card_serial(&info, serial, sizeof(serial));
            rc = confirm("card init", serial, a.yes);
        }
    }
    if (rc != EX_OK)
        goto out;

    memset(&init, 0, sizeof(init));
    init.pLabel = (CK_UTF8CHAR_PTR)a.label;
    init.ulLabelLen = a.label ? strlen(a.label) : 0;
    init.pSoPin = (CK_UTF8CHAR_PTR)a.so_pin;
    init.ulSoPinLen = strlen(a.so_pin);
    init.pNewSoPin = a.have_new_so ? (CK_UTF8CHAR_PTR)a.new_so_pin : NULL;
    init.ulNewSoPinLen = a.have_new_so ? strlen(a.new_so_pin) : 0;
    init.pUserPin = a.have_pin ? (CK_UTF8CHAR_PTR)a.pin : NULL;
    init.ulUserPinLen = a.have_pin ? strlen(a.pin) : 0;
    if (a.policy_given || vsc) {
        policy = (CK_TESSERA_PIN_POLICY){
            (CK_ULONG)a.policy.min_len, (CK_ULONG)a.policy.max_len, a.policy.rule[TESS_PIN_DIGITS],
            a.policy.rule[TESS_PIN_UPPER], a.policy.rule[TESS_PIN_LOWER], a.policy.rule[TESS_PIN_SPECIAL],
        };
        init.pPinPolicy = &policy;
    }
    init.ulUserPinTries = (CK_ULONG)a.pin_tries;
    init.ulSoPinTries = (CK_ULONG)a.so_tries;
    if (key_len) {
        init.adminKeyType = a.ks.alg == TESS_KEY_3DES ? CKK_DES3 : CKK_AES;
        init.pAdminKey = key;
        init.ulAdminKeyLen = key_len;
    }
    rv = p.t->T_InitCard(slot, &init);
    if (rv != CKR_OK) {
        rc = tool_report(rv, a.new_card ? "the card was not created" : "the card was not initialised");
        goto out;
    }
    /* The serial now (a new card's, or a PIV card's new CHUID). */
    rv = p.t->T_GetCardInfo(slot, &info);
    if (rv != CKR_OK) {
        rc = tool_report(rv, "the card was initialised, but cannot be read back");
        goto out;
    }
    tool_card_serial(&info, serial, sizeof(serial));
    if (diversify) {
        rc = tool_set_admin_key_as_so(&p, slot, a.have_new_so ? a.new_so_pin : a.so_pin, &a.ks, serial);
        if (rc != EX_OK) {
            fprintf(stderr, "tessera: card %s was initialised without an admin key: run 'tessera admin-key set'\n",
                    serial);
            goto out;
        }
    }
    print_card(&p, slot, serial, vsc, a.have_pin || info.cardType == CKT_TESSERA_PIV);
    rc = EX_OK;
    if (info.cardType == CKT_TESSERA_TPM_VSC)
        warn_da(a.pin_tries ? (int)a.pin_tries : tool_settings.user_retries);
out:
    tool_p11_close(&p);
    init_args_wipe(&a);
    tess_wipe(key, sizeof(key));
    return rc;
}

int cmd_card_erase(int argc, char **argv, bool vsc)
{
    static const struct option opts[] = {
        TOOL_CARD_OPTIONS, { "so-pin-file", required_argument, 0, 'S' }, { "puk-file", required_argument, 0, 'S' },
        { "response", required_argument, 0, 'r' }, { "yes", no_argument, 0, 'y' }, { 0, 0, 0, 0 },
    };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    struct tool_p11 p = { 0 };
    CK_TESSERA_CARD_INFO info;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot;
    CK_RV rv;
    const char *so_file = NULL, *response = NULL;
    char so_pin[SECRET_MAX] = "", serial[40] = "";
    uint8_t resp[64];
    bool yes = false;
    int c, rc = EX_USAGE;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'S')
            so_file = optarg;
        else if (c == 'r')
            response = optarg;
        else if (c == 'y')
            yes = true;
        else if (tool_card_opt(&ca, c, optarg)) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    if (so_file && response)
        return tool_usage_error("card erase takes the SO PIN (--so-pin-file) or a response (--response), not both");
    if (ca.slot < 0 && !ca.serial)
        return tool_usage_error(vsc ? "vsc delete needs --serial or --slot, and --yes: it erases the card's keys"
                                    : "card erase needs the card: --slot N or --serial S");
    rc = tool_open_card(&p, &ca, &slot, &info);
    if (rc != EX_OK)
        goto out;
    tool_card_serial(&info, serial, sizeof(serial));
    if (vsc && info.cardType != CKT_TESSERA_TPM_VSC) {
        rc = tool_usage_error("vsc delete erases TPM virtual cards only: use card erase");
        goto out;
    }
    rc = confirm(vsc ? "vsc delete" : "card erase", serial, yes);
    if (rc == EX_OK && response) {
        if (!info.challengeLen) {
            rc = tool_report(CKR_TESSERA_NO_ADMIN_KEY, "cannot check a response");
            goto out;
        }
        rc = tool_read_code(response, "response", resp, info.challengeLen);
    }
    if (rc == EX_OK && so_file && tool_read_secret(so_file, "SO PIN or PUK", so_pin, sizeof(so_pin)))
        rc = EX_USAGE;
    if (rc != EX_OK)
        goto out;
    rv = p.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK && so_file)
        rv = p.f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)so_pin, (CK_ULONG)strlen(so_pin));
    if (rv == CKR_OK)
        rv = p.t->T_EraseCard(h, response ? resp : NULL, response ? info.challengeLen : 0);
    if (rv == CKR_OK)
        h = CK_INVALID_HANDLE;   /* ended with the card */
    if (rv == CKR_USER_NOT_LOGGED_IN) {
        fprintf(stderr, "tessera: card %s: erasing needs its SO PIN (--so-pin-file) or a response from the "
                        "helpdesk to its challenge (--response)\n", serial);
        rc = EX_USAGE;
        goto out;
    }
    rc = tool_report(rv, "the card was not erased");
    if (rc != EX_OK)
        goto out;
    if (tool_json)
        printf("{\"erased\":\"%s\"}\n", serial);
    else if (info.cardType == CKT_TESSERA_TPM_VSC)
        printf("erased virtual card %s: its keys, certificates, PINs and admin key are gone\n", serial);
    else
        printf("erased card %s: reset to its factory state (PIN 123456, PUK 12345678, factory management key)\n",
               serial);
out:
    if (h != CK_INVALID_HANDLE)
        p.f->C_CloseSession(h);
    tool_p11_close(&p);
    tess_wipe(so_pin, sizeof(so_pin));
    tess_wipe(resp, sizeof(resp));
    return rc;
}
