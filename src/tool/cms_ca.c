/* tessera ca init | connect | show | crl | certificate: the CA the
 * card-management database issues certificates from (src/cms/ca.h). */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "../cms/ca.h"
#include "../util.h"
#include "cms_tool.h"
#include "tool.h"

struct ca_init_args {
    const char *subject, *type, *crl_url;
    int days;
};

static int opt_ca_init(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct ca_init_args *a = arg;
    (void)c;
    switch (ch) {
    case 's': a->subject = v; return 0;
    case 't': a->type = v; return 0;
    case 'u': a->crl_url = v; return 0;
    case 'd': a->days = atoi(v); return a->days < 1;
    default: return -1;
    }
}

static int cmd_ca_init(int argc, char **argv)
{
    static const char usage[] = "usage: tessera ca init --subject /CN=.../O=... [--type p256|p384|rsa3072|rsa4096] "
                                "[--days N] [--crl-url URL]";
    static const struct option extra[] = {
        { "subject", required_argument, 0, 's' }, { "type", required_argument, 0, 't' },
        { "days", required_argument, 0, 'd' },    { "crl-url", required_argument, 0, 'u' },
    };
    struct ca_init_args a = { NULL, "p256", NULL, 3650 };
    struct cms_ctx c = { 0 };
    char err[600], dir[4200];
    int rc = cms_parse_opts(&c, argc, argv, extra, 4, opt_ca_init, &a, usage);
    if (rc == EX_OK && (!a.subject || optind != argc))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "ca.init", NULL, NULL, NULL))) != EX_OK)
        goto out;
    int r = cms_ca_local_create(c.db, &c.actor, a.subject, a.type, a.days, a.crl_url, err, sizeof(err));
    if (r != CMS_OK) {
        fprintf(stderr, "tessera: %s\n", err);
        rc = cms_exit_for(r);
        goto out;
    }
    cms_ca_local_dir(c.db, dir, sizeof(dir));
    if (tool_json) {
        printf("{\"kind\":\"local\",\"directory\":");
        tool_json_str(dir);
        printf("}\n");
    } else {
        printf("embedded CA %s made in %s (certificate ca.crt, CRL crl.pem)\n", a.subject, dir);
    }
out:
    cms_ctx_close(&c);
    return rc;
}

static int opt_ca_connect(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    struct cms_cfssl_settings *s = arg;
    (void)c;
    switch (ch) {
    case 'u': s->url = v; return 0;
    case 'p': s->profiles = v; return 0;
    case 'k': s->auth_key_file = v; return 0;
    case 'c': s->crl_url = v; return 0;
    case 't': s->tls_ca_file = v; return 0;
    case 'l': s->label = v; return 0;
    case 'C': s->tls_client_cert = v; return 0;
    case 'K': s->tls_client_key = v; return 0;
    default: return -1;
    }
}

/* connect cfssl: a cfssl server as the CA (its certificate kept from now on). */
static int cmd_ca_connect(int argc, char **argv)
{
    static const char usage[] = "usage: tessera ca connect cfssl --url URL [--profile NAME[,NAME...]] "
                                "[--auth-key-file FILE]\n"
                                "                          [--crl-url URL] [--tls-ca-file FILE] [--label LABEL]\n"
                                "                          [--tls-client-cert FILE --tls-client-key FILE]";
    static const struct option extra[] = {
        { "url", required_argument, 0, 'u' },         { "profile", required_argument, 0, 'p' },
        { "auth-key-file", required_argument, 0, 'k' }, { "crl-url", required_argument, 0, 'c' },
        { "tls-ca-file", required_argument, 0, 't' }, { "label", required_argument, 0, 'l' },
        { "tls-client-cert", required_argument, 0, 'C' }, { "tls-client-key", required_argument, 0, 'K' },
    };
    struct cms_cfssl_settings s = { 0 };
    struct cms_ctx c = { 0 };
    char err[700] = "", summary[1400], paths[4][PATH_MAX];
    int rc = cms_parse_opts(&c, argc, argv, extra, TESS_ARRAY_SIZE(extra), opt_ca_connect, &s, usage);
    if (rc == EX_OK && (optind != argc - 1 || strcmp(argv[optind], "cfssl") || !s.url))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto out;
    /* Files by absolute path: the database is used from other directories. */
    const char **files[] = { &s.auth_key_file, &s.tls_ca_file, &s.tls_client_cert, &s.tls_client_key };
    for (size_t i = 0; i < TESS_ARRAY_SIZE(files); i++) {
        if (!*files[i])
            continue;
        if (!realpath(*files[i], paths[i])) {
            fprintf(stderr, "tessera: cannot find %s\n", *files[i]);
            rc = EX_FAIL;
            goto out;
        }
        *files[i] = paths[i];
    }
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, "ca.connect", NULL, NULL, NULL))) != EX_OK)
        goto out;
    int r = cms_ca_cfssl_connect(c.db, &c.actor, &s, summary, sizeof(summary), err, sizeof(err));
    if (r != CMS_OK) {
        fprintf(stderr, "tessera: %s\n", err);
        rc = cms_exit_for(r);
        goto out;
    }
    if (tool_json) {
        printf("{\"kind\":\"cfssl\",\"summary\":");
        tool_json_str(summary);
        printf("}\n");
    } else {
        printf("connected: %s\n", summary);
    }
out:
    cms_ctx_close(&c);
    return rc;
}

/* show: the CA and its certificate; certificate: its PEM; crl: a new CRL
 * published, and printed with --out -. */
static int opt_out(struct cms_ctx *c, int ch, const char *v, void *arg)
{
    (void)c;
    if (ch != 'o')
        return -1;
    *(const char **)arg = v;
    return 0;
}

static int cmd_ca_read(int argc, char **argv, const char *verb)
{
    static const char usage[] = "usage: tessera ca show | ca certificate | ca crl [--out FILE|-]";
    static const struct option extra[] = { { "out", required_argument, 0, 'o' } };
    struct cms_ctx c = { 0 };
    struct cms_ca *ca = NULL;
    const char *out_path = NULL;
    X509 *cert = NULL;
    X509_CRL *crl = NULL;
    FILE *out = NULL;
    char action[32];
    int rc = cms_parse_opts(&c, argc, argv, extra, 1, opt_out, &out_path, usage);
    if (rc == EX_OK && (optind != argc || (out_path && strcmp(verb, "crl"))))
        rc = tool_usage_error(usage);
    if (rc != EX_OK || (rc = cms_ctx_open(&c, false)) != EX_OK)
        goto done;
    snprintf(action, sizeof(action), "ca.%s", strcmp(verb, "crl") ? "show" : "crl");
    if ((rc = cms_report(&c, cms_authorize(c.db, &c.actor, action, NULL, NULL, NULL))) != EX_OK ||
        (rc = cms_report(&c, cms_ca_open(c.db, &ca))) != EX_OK)
        goto done;
    if (!strcmp(verb, "crl")) {
        char dir[4200];
        int r = ca->ops->crl(ca, &crl);
        if (r != CMS_OK) {
            fprintf(stderr, "tessera: %s\n", ca->err);
            rc = r == CMS_TAMPERED ? cms_exit_for(r) : EX_FAIL;
            goto done;
        }
        if (!strcmp(ca->ops->kind, "local"))
            cms_ca_local_dir(c.db, dir, sizeof(dir));
        if (out_path) {
            out = strcmp(out_path, "-") ? fopen(out_path, "w") : stdout;
            if (!out || !PEM_write_X509_CRL(out, crl)) {
                fprintf(stderr, "tessera: cannot write %s\n", out_path);
                rc = EX_FAIL;
                goto done;
            }
        }
        if (!out_path || strcmp(out_path, "-")) {
            ASN1_INTEGER *number = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
            STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
            int nrevoked = revoked ? sk_X509_REVOKED_num(revoked) : 0;
            if (!strcmp(ca->ops->kind, "local"))
                printf("CRL %ld published: %s/crl.pem, %d revoked\n", number ? ASN1_INTEGER_get(number) : 0L, dir,
                       nrevoked);
            else
                printf("CRL %ld of %s fetched and verified, %d revoked\n", number ? ASN1_INTEGER_get(number) : 0L,
                       ca->name, nrevoked);
            ASN1_INTEGER_free(number);
        }
        goto done;
    }
    if (ca->ops->certificate(ca, &cert) != CMS_OK) {
        fprintf(stderr, "tessera: %s\n", ca->err);
        rc = EX_FAIL;
        goto done;
    }
    if (!strcmp(verb, "certificate")) {
        PEM_write_X509(stdout, cert);
        goto done;
    }
    char subject[256], not_after[64] = "";
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(cert)) > 0)
        BIO_read(b, not_after, sizeof(not_after) - 1);
    BIO_free(b);
    if (tool_json) {
        printf("{\"kind\":\"%s\",\"name\":", ca->ops->kind);
        tool_json_str(ca->name);
        printf(",\"subject\":");
        tool_json_str(subject);
        printf(",\"not_after\":");
        tool_json_str(not_after);
        printf("}\n");
    } else {
        printf("kind:       %s\nsubject:    %s\nvalid to:   %s\n", ca->ops->kind, subject, not_after);
    }
done:
    if (out && out != stdout)
        fclose(out);
    X509_free(cert);
    X509_CRL_free(crl);
    cms_ca_close(ca);
    cms_ctx_close(&c);
    return rc;
}

int cmd_cms_ca(const char *verb, int argc, char **argv)
{
    if (!strcmp(verb, "init"))
        return cmd_ca_init(argc, argv);
    if (!strcmp(verb, "connect"))
        return cmd_ca_connect(argc, argv);
    if (!strcmp(verb, "show") || !strcmp(verb, "certificate") || !strcmp(verb, "crl"))
        return cmd_ca_read(argc, argv, verb);
    return -1;
}
