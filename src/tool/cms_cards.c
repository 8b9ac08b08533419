/* tessera device add|list, card request (one, or a batch)|code|list|show, job list: the
 * inventory and the issuance job (src/cms/cards.c; collect.c does the
 * card's side of collecting). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cms/cards.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"


/* ---- devices ---- */

static int cmd_device_add(int argc, char **argv)
{
    static const char usage[] = "usage: tessera device add NAME   (the machine's full name, as hostname -f)";
    struct cms_ctx c = { 0 };
    int rc = cms_parse_opts(&c, argc, argv, NULL, 0, NULL, NULL, usage);
    if (rc == EX_OK && (optind != argc - 1 || !argv[optind][0] || strlen(argv[optind]) > 253))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    const char *name = argv[optind];
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "device.add", NULL, NULL, name))) == EX_OK &&
        (rc = cms_report(&c, cms_device_add(c.db, &c.actor, name))) == EX_OK && !tool_json)
        printf("device %s added\n", name);
out:
    cms_ctx_close(&c);
    return rc;
}

static int print_device(void *arg, const char *name, const char *created, int cards)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"name\":", *first ? "" : ",");
        tool_json_str(name);
        printf(",\"created\":\"%s\",\"cards\":%d}", created, cards);
    } else {
        printf("%-40s %s  %d card(s)\n", name, created, cards);
    }
    *first = false;
    return CMS_OK;
}

static int cmd_device_list(int argc, char **argv)
{
    static const char usage[] = "usage: tessera device list";
    struct cms_ctx c = { 0 };
    bool first = true;
    int rc = cms_parse_opts(&c, argc, argv, NULL, 0, NULL, NULL, usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "device.list", NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (tool_json)
        putchar('[');
    rc = cms_report(&c, cms_device_list(c.db, print_device, &first));
    if (tool_json)
        puts("]");
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- cards ---- */

struct request_args {
    const char *holder, *profile, *type, *device;
    int days;
    const char *holders, *out;   /* a batch: holders' uids from a file, codes to a new file */
};

static int opt_request(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct request_args *a = arg;
    (void)c;
    switch (ch) {
    case 'h': a->holder = v; return 0;
    case 'p': a->profile = v; return 0;
    case 't': a->type = v; return 0;
    case 'd': a->device = v; return 0;
    case 'v': a->days = atoi(v); return a->days < 1;
    case 'H': a->holders = v; return 0;
    case 'o': a->out = v; return 0;
    default: return -1;
    }
}

/* The uids of a batch: one a line ("-": standard input); blank lines and
 * lines from '#' are skipped. NULL with a message when it cannot be read. */
static char **read_uids(const char *path, size_t *n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    char line[512], **uids = NULL;
    size_t cap = 0;
    *n = 0;
    if (!f) {
        fprintf(stderr, "tessera: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    while (fgets(line, sizeof(line), f)) {
        char *p = line + strspn(line, " \t"), *end = p + strcspn(p, "#\r\n");
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *end = '\0';
        if (!*p)
            continue;
        if (*n == cap) {
            char **more = realloc(uids, (cap = cap ? 2 * cap : 64) * sizeof(*uids));
            if (!more)
                goto fail;
            uids = more;
        }
        if (!(uids[*n] = strdup(p)))
            goto fail;
        (*n)++;
    }
    if (ferror(f))
        goto fail;
    if (f != stdin)
        fclose(f);
    if (*n == 0)
        fprintf(stderr, "tessera: %s names no holder\n", path);
    return *n ? uids : NULL;
fail:
    fprintf(stderr, "tessera: %s: cannot read it\n", path);
    if (f != stdin)
        fclose(f);
    while (*n)
        free(uids[--*n]);
    free(uids);
    return NULL;
}

/* A batch: every holder of the file gets a card, or none does; the codes
 * go to a new file only its owner may read (uid,card,job,code). */
static int request_batch(struct cms_ctx *c, const struct request_args *a)
{
    size_t n = 0;
    char **uids = read_uids(a->holders, &n);
    struct cms_request *reqs = uids ? calloc(n, sizeof(*reqs)) : NULL;
    char (*codes)[CMS_CODE_LEN] = uids ? calloc(n, CMS_CODE_LEN) : NULL;
    int64_t *cards = uids ? calloc(n, sizeof(*cards)) : NULL, *jobs = uids ? calloc(n, sizeof(*jobs)) : NULL;
    FILE *out = NULL;
    int fd = -1, rc = EX_FAIL;
    bool requested = false;

    if (!uids || !reqs || !codes || !cards || !jobs)
        goto out;
    /* The file first: codes that could not be written would be lost. */
    fd = open(a->out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || !(out = fdopen(fd, "w"))) {
        fprintf(stderr, "tessera: %s: %s (the codes go to a new file)\n", a->out, strerror(errno));
        goto out;
    }
    fd = -1;
    for (size_t i = 0; i < n; i++)
        reqs[i] = (struct cms_request){ uids[i], a->profile, a->type, NULL, a->days, 0, 0 };
    rc = cms_report(c, cms_card_request_batch(c->db, &c->actor, reqs, n, codes, cards, jobs));
    if (rc != EX_OK)
        goto out;
    requested = true;
    fprintf(out, "uid,card,job,code\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s,%" PRId64 ",%" PRId64 ",%s\n", uids[i], cards[i], jobs[i], codes[i]);
    if (fflush(out) || fsync(fileno(out))) {
        fprintf(stderr, "tessera: %s: %s; the cards are requested: give them new codes (tessera card code)\n",
                a->out, strerror(errno));
        rc = EX_FAIL;
    } else if (tool_json) {
        printf("{\"cards\":%zu,\"first\":%" PRId64 ",\"last\":%" PRId64 ",\"codes\":", n, cards[0], cards[n - 1]);
        tool_json_str(a->out);
        printf("}\n");
    } else {
        printf("%zu cards requested (%" PRId64 " to %" PRId64 "); their collection codes are in %s\n", n, cards[0],
               cards[n - 1], a->out);
    }
out:
    if (out)
        fclose(out);
    if (out && !requested)
        unlink(a->out);   /* ours, and holds no code */
    if (fd >= 0)
        close(fd);
    if (codes)
        tess_wipe(codes, n * CMS_CODE_LEN);
    for (size_t i = 0; uids && i < n; i++)
        free(uids[i]);
    free(uids);
    free(reqs);
    free(codes);
    free(cards);
    free(jobs);
    return rc;
}

static int cmd_card_request(int argc, char **argv)
{
    static const char usage[] = "usage: tessera card request --holder UID --profile NAME [--type tpm|piv] "
                                "[--device NAME] [--valid-days N]\n"
                                "       tessera card request --holders FILE --out FILE --profile NAME [--type tpm|piv] "
                                "[--valid-days N]";
    static const struct option extra[] = {
        { "holder", required_argument, 0, 'h' }, { "profile", required_argument, 0, 'p' },
        { "type", required_argument, 0, 't' },   { "device", required_argument, 0, 'd' },
        { "valid-days", required_argument, 0, 'v' }, { "holders", required_argument, 0, 'H' },
        { "out", required_argument, 0, 'o' },
    };
    struct request_args a = { NULL, NULL, NULL, NULL, 14, NULL, NULL };
    struct cms_ctx c = { 0 };
    char code[CMS_CODE_LEN] = "";
    int64_t card_id = 0, job_id = 0;
    int rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_request, &a, usage);
    bool batch = a.holders != NULL;
    if (rc == EX_OK && (!a.profile || optind != argc || (batch ? a.holder || a.device || !a.out : !a.holder || a.out)))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "card.request", a.holder, NULL, a.device))) != EX_OK)
        goto out;
    if (batch) {
        rc = request_batch(&c, &a);
        goto out;
    }
    rc = cms_report(&c, cms_card_request(c.db, &c.actor,
                                         &(struct cms_request){ a.holder, a.profile, a.type, a.device, a.days, 0, 0 },
                                         code, &card_id, &job_id));
    if (rc != EX_OK)
        goto out;
    if (tool_json) {
        printf("{\"card\":%" PRId64 ",\"job\":%" PRId64 ",\"code\":\"%s\"}\n", card_id, job_id, code);
    } else {
        printf("card %" PRId64 " requested for %s (job %" PRId64 ")\n", card_id, a.holder, job_id);
        printf("collection code (give it to the holder; it is not shown again): %s\n", code);
    }
out:
    tess_wipe(code, sizeof(code));
    cms_ctx_close(&c);
    return rc;
}

int cms_card_arg(struct cms_ctx *c, const char *arg, struct cms_card *card)
{
    char *end;
    long long id = strtoll(arg, &end, 10);
    /* A database id is short; a serial is 16 hex digits (or a PIV GUID). */
    bool by_id = !*end && strlen(arg) < 12 && id > 0;
    return cms_report(c, cms_card_get(c->db, by_id ? id : 0, by_id ? NULL : arg, card));
}

static int opt_days(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 'v')
        return -1;
    *(int *)arg = atoi(v);
    return *(int *)arg < 1 || *(int *)arg > 365;
}

static int cmd_card_code(int argc, char **argv)
{
    static const char usage[] = "usage: tessera card code ID|SERIAL [--valid-days N]";
    static const struct option extra[] = { { "valid-days", required_argument, 0, 'v' } };
    struct cms_ctx c = { 0 };
    struct cms_card k;
    char code[CMS_CODE_LEN];
    int days = 14;
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_days, &days, usage);
    if (rc == EX_OK && optind != argc - 1)
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK || (rc = cms_card_arg(&c, argv[optind], &k)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "card.code", k.holder, NULL, NULL))) != EX_OK ||
        (rc = cms_report(&c, cms_card_new_code(c.db, &c.actor, k.id, days, code))) != EX_OK)
        goto out;
    if (tool_json)
        printf("{\"card\":%" PRId64 ",\"code\":\"%s\"}\n", k.id, code);
    else
        printf("card %" PRId64 ": new collection code (the old one is void; it is not shown again): %s\n", k.id, code);
out:
    tess_wipe(code, sizeof(code));
    cms_ctx_close(&c);
    return rc;
}

/* leave_open: the JSON object stays open for more fields. */
static void print_card(const struct cms_card *k, bool first, bool leave_open)
{
    if (tool_json) {
        printf("%s{\"id\":%" PRId64 ",\"type\":\"%s\",\"serial\":", first ? "" : ",", k->id, k->type);
        tool_json_str(k->serial);
        printf(",\"state\":\"%s\",\"holder\":", k->state);
        tool_json_str(k->holder);
        printf(",\"device\":");
        tool_json_str(k->device);
        printf(",\"profile\":");
        tool_json_str(k->profile);
        printf(",\"version\":%d,\"created\":\"%s\",\"updated\":\"%s\"", k->profile_version, k->created, k->updated);
        if (k->temporary)
            printf(",\"temporary\":true,\"expires\":\"%s\"", k->expires);
        if (k->replaces)
            printf(",\"replaces\":%" PRId64, k->replaces);
        printf("%s", leave_open ? "" : "}");
    } else {
        printf("%-5" PRId64 " %-4s %-17s %-10s %-16s %-12s v%-3d %s\n", k->id, k->type, k->serial[0] ? k->serial : "-",
               k->state, k->holder, k->profile, k->profile_version, k->device[0] ? k->device : "-");
        if (!leave_open)
            return;   /* a list: one line a card */
        if (k->temporary)
            printf("      temporary until %s\n", k->expires);
        if (k->replaces)
            printf("      replaces card %" PRId64 "\n", k->replaces);
    }
}

struct list_state {
    bool first;
};

static int list_card(void *arg, const struct cms_card *k)
{
    struct list_state *s = arg;
    print_card(k, s->first, false);
    s->first = false;
    return CMS_OK;
}

static int opt_holder(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 'h')
        return -1;
    *(const char **)arg = v;
    return 0;
}

static int print_cert(void *arg, int64_t id, const char *ca, const char *serial, const char *key_name,
                      const char *state)
{
    bool *first = arg;
    (void)id;
    if (tool_json) {
        printf("%s{\"key\":", *first ? "" : ",");
        tool_json_str(key_name);
        printf(",\"serial\":\"%s\",\"state\":\"%s\",\"ca\":", serial, state);
        tool_json_str(ca);
        printf("}");
    } else {
        printf("  certificate %-34s %-12s %-10s %s\n", serial, key_name, state, ca);
    }
    *first = false;
    return CMS_OK;
}

static int cmd_card_read(int argc, char **argv, const char *verb)
{
    static const char usage[] = "usage: tessera card list [--holder UID] | card show ID|SERIAL";
    static const struct option extra[] = { { "holder", required_argument, 0, 'h' } };
    struct cms_ctx c = { 0 };
    struct list_state s = { true };
    const char *holder = NULL;
    bool show = !strcmp(verb, "show");
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_holder, &holder, usage);
    if (rc == EX_OK && (show ? optind != argc - 1 || holder : optind != argc))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, show ? "card.show" : "card.list", holder, NULL, NULL))) !=
        EX_OK)
        goto out;
    if (!show) {
        if (tool_json)
            putchar('[');
        rc = cms_report(&c, cms_card_list(c.db, holder, list_card, &s));
        if (tool_json)
            puts("]");
        goto out;
    }
    struct cms_card k;
    if ((rc = cms_card_arg(&c, argv[optind], &k)) != EX_OK)
        goto out;
    bool first = true;
    print_card(&k, true, true);
    if (tool_json)
        printf(",\"certificates\":[");
    rc = cms_report(&c, cms_card_certs(c.db, k.id, print_cert, &first));
    if (tool_json)
        puts("]}");
out:
    cms_ctx_close(&c);
    return rc;
}

/* ---- jobs ---- */

static int print_job(void *arg, const struct cms_job *j, const struct cms_card *k)
{
    bool *first = arg;
    if (tool_json) {
        printf("%s{\"id\":%" PRId64 ",\"kind\":\"%s\",\"state\":\"%s\",\"step\":", *first ? "" : ",", j->id, j->kind,
               j->state);
        tool_json_str(j->step);
        printf(",\"card\":%" PRId64 ",\"holder\":", k->id);
        tool_json_str(k->holder);
        printf(",\"created_by\":");
        tool_json_str(j->created_by);
        printf(",\"updated\":\"%s\",\"due\":\"%s\",\"error\":", j->updated, j->due);
        tool_json_str(j->error);
        printf("}");
    } else {
        /* A job that waits for a time shows when it is due, others when they last moved. */
        bool waits = j->due[0] && !strcmp(j->state, "pending");
        printf("%-5" PRId64 " %-6s %-9s %-16s card %-5" PRId64 " %-16s %s%s%s%s\n", j->id, j->kind, j->state,
               j->step[0] ? j->step : "-", k->id, k->holder, waits ? "due " : "", waits ? j->due : j->updated,
               j->error[0] ? "  " : "", j->error);
    }
    *first = false;
    return CMS_OK;
}

static int opt_state(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 's')
        return -1;
    *(const char **)arg = v;
    return 0;
}

static int cmd_job_list(int argc, char **argv)
{
    static const char usage[] = "usage: tessera job list [--state pending|running|done|failed|cancelled]";
    static const struct option extra[] = { { "state", required_argument, 0, 's' } };
    struct cms_ctx c = { 0 };
    const char *state = NULL;
    bool first = true;
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_state, &state, usage);
    if (rc == EX_OK && optind != argc)
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "job.list", NULL, NULL, NULL))) != EX_OK)
        goto out;
    if (tool_json)
        putchar('[');
    rc = cms_report(&c, cms_job_list(c.db, state, print_job, &first));
    if (tool_json)
        puts("]");
out:
    cms_ctx_close(&c);
    return rc;
}

int cmd_cms_cards(const char *noun, const char *verb, int argc, char **argv)
{
    int rc = cmd_cms_lock(noun, verb, argc, argv);
    if (rc >= 0)
        return rc;
    if (!strcmp(noun, "device") && !strcmp(verb, "add"))
        return cmd_device_add(argc, argv);
    if (!strcmp(noun, "device") && !strcmp(verb, "list"))
        return cmd_device_list(argc, argv);
    if (!strcmp(noun, "card") && !strcmp(verb, "request"))
        return cmd_card_request(argc, argv);
    if (!strcmp(noun, "card") && (!strcmp(verb, "list") || !strcmp(verb, "show")))
        return cmd_card_read(argc, argv, verb);
    if (!strcmp(noun, "card") && !strcmp(verb, "collect"))
        return cmd_card_collect(argc, argv);
    if (!strcmp(noun, "card") && !strcmp(verb, "code"))
        return cmd_card_code(argc, argv);
    if (!strcmp(noun, "card") && !strcmp(verb, "renew"))
        return cmd_card_renew(argc, argv);
    if (!strcmp(noun, "card") && (!strcmp(verb, "suspend") || !strcmp(verb, "enable") || !strcmp(verb, "cancel") ||
                                  !strcmp(verb, "erase") || !strcmp(verb, "reprovision") || !strcmp(verb, "replace")))
        return cmd_card_change(verb, argc, argv);
    if (!strcmp(noun, "job") && !strcmp(verb, "resume"))
        return cmd_job_resume(argc, argv);
    if (!strcmp(noun, "job") && !strcmp(verb, "list"))
        return cmd_job_list(argc, argv);
    return -1;
}
