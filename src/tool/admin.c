/* tessera admin-key ... / unblock ... / card info: the helpdesk's and the
 * card administrator's verbs. The helpdesk side (admin-key derive, unblock
 * response) needs no card and no TPM; the card side goes through the
 * module's Tessera Management interface. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "../code.h"
#include "../kdf.h"
#include "../util.h"
#include "tool.h"

#define KEY_SOURCE_OPTIONS TOOL_KEY_SOURCE_OPTIONS

int tool_key_source_opt(struct tool_key_source *ks, int c, const char *arg)
{
    switch (c) {
    case 'k':
        if (!strcmp(arg, "default"))
            ks->use_default = true;
        else
            ks->hex = arg;
        return 0;
    case 'm': ks->master_file = arg; return 0;
    case 'u': ks->master_uri = arg; return 0;
    case 'H': ks->hsm_module = arg; return 0;
    case 'q': ks->hsm_pin_file = arg; return 0;
    case 'p': return tess_prf_parse(arg, &ks->prf) ? 1 : 0;
    case 'a': return tess_key_alg_parse(arg, &ks->alg) ? 1 : 0;
    default: return -1;
    }
}

bool tool_key_source_given(const struct tool_key_source *ks)
{
    return ks->hex || ks->use_default || ks->master_file || ks->master_uri;
}

/* The master key from a file that only its owner can read: hex text. */
static int read_master(const char *path, uint8_t *key, size_t max, size_t *len)
{
    char text[512];
    struct stat st;
    FILE *f = fopen(path, "r");
    int rc = EX_USAGE;
    if (!f) {
        fprintf(stderr, "tessera: cannot read %s: %s\n", path, strerror(errno));
        return EX_USAGE;
    }
    if (fstat(fileno(f), &st) || (st.st_mode & 077)) {
        fprintf(stderr, "tessera: %s is readable by others (mode %03o): a master key file must be 0600\n", path,
                (unsigned)(st.st_mode & 0777));
        goto out;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    if (tool_unhex(text, key, max, len) || *len < 16) {
        fprintf(stderr, "tessera: %s must hold the master key as hex (16 to 64 bytes)\n", path);
        goto out;
    }
    rc = EX_OK;
out:
    tess_wipe(text, sizeof(text));
    fclose(f);
    return rc;
}

int tool_key_source_key(const struct tool_key_source *ks, const char *serial, uint8_t *key, size_t *len)
{
    uint8_t master[64];
    size_t mlen = 0, want = tess_key_alg_len(ks->alg);
    int rc;

    if (ks->use_default) {
        if (ks->alg != TESS_KEY_3DES) {
            fprintf(stderr, "tessera: the default admin key is a 3DES key\n");
            return EX_USAGE;
        }
        memcpy(key, tess_admin_default_key, sizeof(tess_admin_default_key));
        *len = sizeof(tess_admin_default_key);
        return EX_OK;
    }
    if (ks->hex) {
        if (tool_unhex(ks->hex, key, 32, len) || *len != want) {
            fprintf(stderr, "tessera: the admin key must be %zu bytes of hex\n", want);
            return EX_USAGE;
        }
        return EX_OK;
    }
    if ((!ks->master_file && !ks->master_uri) || !serial) {
        fprintf(stderr, "tessera: give --admin-key HEX|default, --master-file F or --master-uri URI\n");
        return EX_USAGE;
    }
    if (ks->master_uri)
        return tool_hsm_diversify(ks, serial, key, len);
    rc = read_master(ks->master_file, master, sizeof(master), &mlen);
    if (rc == EX_OK) {
        *len = 32;
        CK_RV rv = tess_admin_key_diversify(ks->prf, master, mlen, serial, ks->alg, key, len);
        if (rv == CKR_KEY_SIZE_RANGE)
            fprintf(stderr, "tessera: a %s master key must be %s bytes\n",
                    ks->prf == TESS_PRF_CMAC_AES128 ? "CMAC-AES128" : "CMAC-AES256",
                    ks->prf == TESS_PRF_CMAC_AES128 ? "16" : "32");
        rc = rv == CKR_OK ? EX_OK : EX_FAIL;
    }
    tess_wipe(master, sizeof(master));
    return rc;
}

/* A code read out over the phone (or the hex Windows tools show) into
 * exactly len bytes; a typo is caught before anything reaches the card. */
int tool_read_code(const char *text, const char *what, uint8_t *out, size_t len)
{
    size_t got = 0;
    switch (tess_code_parse(text, out, len)) {
    case TESS_CODE_OK:
        return EX_OK;
    case TESS_CODE_MISTYPED:
        fprintf(stderr, "tessera: the %s was mistyped (its check symbol does not match): read it again\n", what);
        return EX_USAGE;
    default:
        if (!tool_unhex(text, out, len, &got) && got == len)
            return EX_OK;
        fprintf(stderr, "tessera: '%s' is not a %s of this card (%zu bytes: a code, or %zu hex digits)\n", text,
                what, len, 2 * len);
        return EX_USAGE;
    }
}

int cmd_admin_key_derive(int argc, char **argv)
{
    static const struct option opts[] = { { "serial", required_argument, 0, 's' }, KEY_SOURCE_OPTIONS, { 0, 0, 0, 0 } };
    struct tool_key_source ks = TOOL_KEY_SOURCE_INIT;
    const char *serial = NULL;
    uint8_t key[32];
    size_t len = sizeof(key);
    char hex[65];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            serial = optarg;
        else if (tool_key_source_opt(&ks, c, optarg)) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    if ((!ks.master_file && !ks.master_uri) || ks.hex || ks.use_default || !serial) {
        fprintf(stderr, "tessera: admin-key derive needs --master-file or --master-uri, and --serial\n");
        return EX_USAGE;
    }
    rc = tool_key_source_key(&ks, serial, key, &len);
    if (rc == EX_OK) {
        tess_hex(hex, key, len);
        if (tool_json) {
            printf("{\"serial\":");
            tool_json_str(serial);
            printf(",\"admin_key\":\"%s\"}\n", hex);
        } else {
            puts(hex);
        }
    }
    tess_wipe(key, sizeof(key));
    tess_wipe(hex, sizeof(hex));
    return rc;
}

int cmd_unblock_response(int argc, char **argv)
{
    static const struct option opts[] = {
        { "challenge", required_argument, 0, 'c' }, { "serial", required_argument, 0, 's' }, KEY_SOURCE_OPTIONS,
        { 0, 0, 0, 0 },
    };
    struct tool_key_source ks = TOOL_KEY_SOURCE_INIT;
    const char *challenge = NULL, *serial = NULL;
    uint8_t key[32], chal[16], resp[16];
    size_t klen = sizeof(key), blk;
    char code[TESS_CODE_MAX], rhex[2 * sizeof(resp) + 1];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            challenge = optarg;
        else if (c == 's')
            serial = optarg;
        else if (tool_key_source_opt(&ks, c, optarg)) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    if (!challenge || !tool_key_source_given(&ks) || ((ks.master_file || ks.master_uri) && !serial)) {
        fprintf(stderr, "tessera: unblock response needs --challenge, and --admin-key, or --master-file or "
                        "--master-uri with --serial\n");
        return EX_USAGE;
    }
    blk = tess_admin_block_len(ks.alg);
    /* The code the user reads out, or the hex digits Windows shows. */
    rc = tool_read_code(challenge, "challenge", chal, blk);
    if (rc == EX_OK)
        rc = tool_key_source_key(&ks, serial, key, &klen);
    if (rc == EX_OK && tess_admin_response(ks.alg, key, klen, chal, blk, resp) != CKR_OK)
        rc = EX_FAIL;
    if (rc == EX_OK) {
        tess_code_format(resp, blk, code, sizeof(code));
        if (tool_json) {
            tess_hex(rhex, resp, blk);
            printf("{\"response\":\"%s\",\"response_hex\":\"%s\"}\n", code, rhex);
        } else {
            printf("%s\n", code);
        }
    }
    /* The response unblocks the card once: nothing of it stays behind. */
    tess_wipe(key, sizeof(key));
    tess_wipe(resp, sizeof(resp));
    tess_wipe(code, sizeof(code));
    tess_wipe(rhex, sizeof(rhex));
    return rc;
}

static const char *alg_name(const CK_TESSERA_CARD_INFO *info)
{
    if (info->adminKeyType == CKK_DES3)
        return "3des";
    switch (info->adminKeyLen) {
    case 16: return "aes128";
    case 24: return "aes192";
    default: return "aes256";
    }
}

int cmd_card_info(int argc, char **argv)
{
    static const struct option opts[] = { TOOL_CARD_OPTIONS, { 0, 0, 0, 0 } };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    struct tool_p11 p;
    CK_TESSERA_CARD_INFO info;
    CK_SLOT_ID slot;
    char serial[40];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (tool_card_opt(&ca, c, optarg)) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    rc = tool_open_card(&p, &ca, &slot, &info);
    if (rc != EX_OK)
        goto out;
    tool_card_serial(&info, serial, sizeof(serial));
    bool set = info.flags & CKF_TESSERA_ADMIN_KEY_SET;
    const char *type = info.cardType == CKT_TESSERA_TPM_VSC ? "tpm-vsc" : info.cardType == CKT_TESSERA_PIV ? "piv" : "other";
    char kcv[7] = "";
    if (set)
        tess_hex(kcv, info.adminKeyCheck, 3);
    if (tool_json) {
        printf("{\"slot\":%lu,\"serial\":", (unsigned long)slot);
        tool_json_str(serial);
        printf(",\"type\":\"%s\",\"admin_key\":", type);
        if (set)
            printf("{\"alg\":\"%s\",\"kcv\":\"%s\",\"default\":%s}", alg_name(&info), kcv,
                   info.flags & CKF_TESSERA_ADMIN_KEY_DEFAULT ? "true" : "false");
        else
            printf("null");
        printf(",\"challenge_len\":%lu,\"challenge_pending\":%s,\"unblock_locked\":%s",
               (unsigned long)info.challengeLen, info.flags & CKF_TESSERA_CHALLENGE_PENDING ? "true" : "false",
               info.flags & CKF_TESSERA_UNBLOCK_LOCKED ? "true" : "false");
        if (info.challengesLeft != CK_UNAVAILABLE_INFORMATION)
            printf(",\"challenges_left\":%lu", (unsigned long)info.challengesLeft);
        if (info.unblockTriesMax != CK_UNAVAILABLE_INFORMATION)
            printf(",\"unblock_tries_left\":%lu,\"unblock_tries_max\":%lu", (unsigned long)info.unblockTriesLeft,
                   (unsigned long)info.unblockTriesMax);
        puts("}");
        goto out;
    }
    printf("slot:             %lu\n", (unsigned long)slot);
    printf("serial:           %s\n", serial);
    printf("type:             %s\n", type);
    if (set)
        printf("admin key:        %s, check value %s%s\n", alg_name(&info), kcv,
               info.flags & CKF_TESSERA_ADMIN_KEY_DEFAULT ? " (the well-known DEFAULT key: rotate it)" : "");
    else
        printf("admin key:        none (the SO can set one: tessera admin-key set)\n");
    if (set && info.challengesLeft != CK_UNAVAILABLE_INFORMATION)
        printf("challenges left:  %lu%s\n", (unsigned long)info.challengesLeft,
               info.flags & CKF_TESSERA_CHALLENGE_PENDING ? " (one pending)" : "");
    if (set && info.unblockTriesMax != CK_UNAVAILABLE_INFORMATION)
        printf("unblock tries:    %lu of %lu%s\n", (unsigned long)info.unblockTriesLeft,
               (unsigned long)info.unblockTriesMax, info.flags & CKF_TESSERA_UNBLOCK_LOCKED ? " (LOCKED)" : "");
out:
    tool_p11_close(&p);
    return rc;
}

int cmd_unblock_challenge(int argc, char **argv)
{
    static const struct option opts[] = { TOOL_CARD_OPTIONS, { "new", no_argument, 0, 'N' }, { 0, 0, 0, 0 } };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    struct tool_p11 p;
    CK_TESSERA_CARD_INFO info;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot;
    CK_BYTE chal[64];
    CK_ULONG len = sizeof(chal);
    CK_FLAGS flags = 0;
    char serial[40], code[TESS_CODE_MAX], hex[2 * sizeof(chal) + 1];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'N')
            flags |= CKF_TESSERA_NEW_CHALLENGE;
        else if (tool_card_opt(&ca, c, optarg)) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    rc = tool_open_card(&p, &ca, &slot, &info);
    if (rc != EX_OK)
        goto out;
    CK_RV rv = p.f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK)
        rv = p.t->T_GetChallenge(h, flags, chal, &len);
    rc = tool_report(rv, "no challenge");
    if (rc != EX_OK)
        goto out;
    tool_card_serial(&info, serial, sizeof(serial));
    tess_code_format(chal, len, code, sizeof(code));
    tess_hex(hex, chal, len);
    if (tool_json) {
        printf("{\"serial\":");
        tool_json_str(serial);
        printf(",\"challenge\":\"%s\",\"challenge_hex\":\"%s\",\"alg\":\"%s\"}\n", code, hex, alg_name(&info));
    } else {
        printf("card serial:  %s\nchallenge:    %s\n", serial, code);
        fprintf(stderr, "Read both to the helpdesk; type their answer with 'tessera unblock complete'.\n");
    }
out:
    if (h != CK_INVALID_HANDLE)
        p.f->C_CloseSession(h);
    tool_p11_close(&p);
    return rc;
}

int cmd_unblock_complete(int argc, char **argv)
{
    static const struct option opts[] = {
        TOOL_CARD_OPTIONS, { "response", required_argument, 0, 'r' }, { "pin-file", required_argument, 0, 'P' },
        { 0, 0, 0, 0 },
    };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    struct tool_p11 p;
    CK_TESSERA_CARD_INFO info;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot;
    const char *response = NULL, *pin_file = NULL;
    uint8_t resp[64];
    char pin[TESS_PIN_MAX_LEN + 2] = "", again[TESS_PIN_MAX_LEN + 2] = "";
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            response = optarg;
        else if (c == 'P')
            pin_file = optarg;
        else if (tool_card_opt(&ca, c, optarg)) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    if (!response) {
        fprintf(stderr, "tessera: unblock complete needs --response (the helpdesk's answer)\n");
        return EX_USAGE;
    }
    rc = tool_open_card(&p, &ca, &slot, &info);
    if (rc != EX_OK)
        goto out;
    if (!(info.flags & CKF_TESSERA_ADMIN_KEY_SET) || !info.challengeLen) {
        rc = tool_report(CKR_TESSERA_NO_ADMIN_KEY, "cannot unblock");
        goto out;
    }
    rc = tool_read_code(response, "response", resp, info.challengeLen);
    if (rc != EX_OK)
        goto out;
    if (tool_read_secret(pin_file, "new PIN", pin, sizeof(pin))) {
        rc = EX_USAGE;
        goto out;
    }
    if (!pin_file) {
        if (tool_read_secret(NULL, "new PIN again", again, sizeof(again))) {
            rc = EX_USAGE;
            goto out;
        }
        if (strcmp(pin, again)) {
            fprintf(stderr, "tessera: the two PINs differ; nothing was changed\n");
            rc = EX_USAGE;
            goto out;
        }
    }
    CK_RV rv = p.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK)
        rv = p.t->T_UnblockPIN(h, resp, info.challengeLen, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    rc = tool_report(rv, "not unblocked");
    if (rc == EX_OK) {
        if (tool_json)
            puts("{\"unblocked\":true}");
        else
            puts("PIN unblocked and set");
    }
out:
    if (h != CK_INVALID_HANDLE)
        p.f->C_CloseSession(h);
    tool_p11_close(&p);
    tess_wipe(pin, sizeof(pin));
    tess_wipe(again, sizeof(again));
    tess_wipe(resp, sizeof(resp));
    return rc;
}

int cmd_admin_key_set(int argc, char **argv)
{
    static const struct option opts[] = {
        TOOL_CARD_OPTIONS, KEY_SOURCE_OPTIONS, { "so-pin-file", required_argument, 0, 'S' }, { 0, 0, 0, 0 },
    };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    struct tool_key_source ks = TOOL_KEY_SOURCE_INIT;
    struct tool_p11 p;
    CK_TESSERA_CARD_INFO info;
    CK_SLOT_ID slot;
    const char *so_file = NULL;
    char so_pin[TESS_PIN_MAX_LEN + 2] = "", serial[40];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'S')
            so_file = optarg;
        else if (tool_card_opt(&ca, c, optarg) > 0 || (c != 'n' && c != 's' && tool_key_source_opt(&ks, c, optarg))) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    if (!tool_key_source_given(&ks)) {
        fprintf(stderr, "tessera: admin-key set needs --admin-key HEX|default or --master-file F\n");
        return EX_USAGE;
    }
    rc = tool_open_card(&p, &ca, &slot, &info);
    if (rc != EX_OK)
        goto out;
    if (tool_read_secret(so_file, "SO PIN (administrator)", so_pin, sizeof(so_pin))) {
        rc = EX_USAGE;
        goto out;
    }
    tool_card_serial(&info, serial, sizeof(serial));
    rc = tool_set_admin_key_as_so(&p, slot, so_pin, &ks, serial);
    if (rc == EX_OK && !tool_json)
        printf("admin key of card %s set\n", serial);
out:
    tool_p11_close(&p);
    tess_wipe(so_pin, sizeof(so_pin));
    return rc;
}

/* From the current key (--old-*) to a new one, authorised by answering a
 * fresh challenge: no SO PIN needed, and the card holds one known key or the
 * other at every moment. */
int cmd_admin_key_rotate(int argc, char **argv)
{
    static const struct option opts[] = {
        TOOL_CARD_OPTIONS, KEY_SOURCE_OPTIONS,
        { "old-admin-key", required_argument, 0, 'K' }, { "old-master-file", required_argument, 0, 'M' },
        { "old-master-uri", required_argument, 0, 'V' },
        { "old-prf", required_argument, 0, 'R' }, { "old-alg", required_argument, 0, 'A' }, { 0, 0, 0, 0 },
    };
    struct tool_card_args ca = TOOL_CARD_ARGS_INIT;
    struct tool_key_source ks = TOOL_KEY_SOURCE_INIT, old = TOOL_KEY_SOURCE_INIT;
    struct tool_p11 p;
    CK_TESSERA_CARD_INFO info;
    CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
    CK_SLOT_ID slot;
    uint8_t okey[32], nkey[32], chal[16], resp[16], kcv[3];
    size_t olen = sizeof(okey), nlen = sizeof(nkey);
    CK_ULONG clen = sizeof(chal);
    char serial[40];
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad;
        switch (c) {
        case 'K': bad = tool_key_source_opt(&old, 'k', optarg); break;
        case 'M': bad = tool_key_source_opt(&old, 'm', optarg); break;
        case 'V':
            bad = tool_key_source_opt(&old, 'u', optarg);
            break;
        case 'R': bad = tool_key_source_opt(&old, 'p', optarg); break;
        case 'A': bad = tool_key_source_opt(&old, 'a', optarg); break;
        case 'n': case 's': bad = tool_card_opt(&ca, c, optarg); break;
        default: bad = tool_key_source_opt(&ks, c, optarg); break;
        }
        if (bad) {
            tool_usage(stderr);
            return EX_USAGE;
        }
    }
    /* One HSM serves both master keys unless told otherwise. */
    old.hsm_module = ks.hsm_module;
    old.hsm_pin_file = ks.hsm_pin_file;
    if (!tool_key_source_given(&ks) || !tool_key_source_given(&old)) {
        fprintf(stderr, "tessera: admin-key rotate needs the current key (--old-admin-key HEX|default, "
                        "--old-master-file F or --old-master-uri URI) and the new one (--admin-key, --master-file "
                        "or --master-uri)\n");
        return EX_USAGE;
    }
    rc = tool_open_card(&p, &ca, &slot, &info);
    if (rc != EX_OK)
        goto out;
    tool_card_serial(&info, serial, sizeof(serial));
    if (!(info.flags & CKF_TESSERA_ADMIN_KEY_SET)) {
        rc = tool_report(CKR_TESSERA_NO_ADMIN_KEY, "cannot rotate");
        goto out;
    }
    rc = tool_key_source_key(&old, serial, okey, &olen);
    if (rc == EX_OK)
        rc = tool_key_source_key(&ks, serial, nkey, &nlen);
    if (rc != EX_OK)
        goto out;
    /* Check the old key against the card's check value first: a wrong one
     * must not cost the card an unblock try. */
    if (tess_admin_kcv(old.alg, okey, olen, kcv) != CKR_OK ||
        (old.alg == TESS_KEY_3DES) != (info.adminKeyType == CKK_DES3) || olen != info.adminKeyLen ||
        memcmp(kcv, info.adminKeyCheck, 3)) {
        fprintf(stderr, "tessera: the old key given is not card %s's admin key (check value differs); "
                        "nothing was changed\n", serial);
        rc = EX_PIN;
        goto out;
    }
    CK_RV rv = p.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK)
        rv = p.t->T_GetChallenge(h, 0, chal, &clen);   /* the pending one: nothing thrown away */
    if (rv == CKR_OK && tess_admin_response(old.alg, okey, olen, chal, clen, resp) != CKR_OK)
        rv = CKR_FUNCTION_FAILED;
    if (rv == CKR_OK)
        rv = p.t->T_SetAdminKey(h, resp, clen, ks.alg == TESS_KEY_3DES ? CKK_DES3 : CKK_AES, nkey, nlen);
    rc = tool_report(rv, "admin key not changed");
    if (rc == EX_OK && !tool_json)
        printf("admin key of card %s rotated\n", serial);
out:
    if (h != CK_INVALID_HANDLE)
        p.f->C_CloseSession(h);
    tool_p11_close(&p);
    tess_wipe(okey, sizeof(okey));
    tess_wipe(nkey, sizeof(nkey));
    tess_wipe(resp, sizeof(resp));
    return rc;
}
