/* CloudFlare's cfssl as the CA (ca.h), over the REST API of `cfssl serve`:
 *
 *   enroll       POST /api/v1/cfssl/authsign (a "standard" auth key: the
 *                request under HMAC-SHA256), or /sign when cfssl asks none
 *   revoke       POST /api/v1/cfssl/revoke (cfssl serve with -db-config)
 *   crl          GET of the CRL the CA publishes (--crl-url): cfssl 1.2
 *                serves none from its database, a CA operator publishes it
 *   certificate  the CA's, fetched from /api/v1/cfssl/info at connect and
 *                kept: every certificate and CRL must verify under it
 *
 * What cfssl 1.2 puts in a certificate comes from its signing profile
 * (usages, lifetime), not from the request, and it ignores requested
 * extensions. So the connector picks, among the profiles it was connected
 * with, one whose usages cover the key's (the longest lifetime not over the
 * one asked for, else the shortest), and checks what comes back: the key,
 * subject, usages and e-mail address asked for, signed by the kept CA. A
 * certificate that falls short is revoked at once and refused. A
 * Microsoft UPN or the smart-card logon usage cannot be had from it:
 * refused before anything is asked. A hold cannot be lifted (its revoke
 * only revokes): lifts_hold is false and the lifecycle refuses to suspend.
 *
 * The database's meta table holds the settings (ca.cfssl.*); the auth key
 * stays in its own file (mode 0600 or tighter), read at each opening. */
#include "config.h"
#include "ca.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../private_file.h"
#include "../util.h"
#include "audit.h"
#include "http.h"
#include "profile.h"

#define CFSSL_TIMEOUT 30L
#define CFSSL_MAX_PROFILES 8

/* Usages, as cfssl's profiles name them and as a key needs them. */
enum {
    U_SIGN = 1u,        /* "digital signature" (or "signing") */
    U_KEY_ENC = 2u,     /* "key encipherment" */
    U_KEY_AGREE = 4u,   /* "key agreement" */
    U_CLIENT = 8u,      /* "client auth" */
    U_EMAIL = 16u,      /* "email protection" (or "s/mime") */
};

static const struct {
    const char *name;
    unsigned bit;
} usage_names[] = {
    { "digital signature", U_SIGN }, { "signing", U_SIGN },          { "key encipherment", U_KEY_ENC },
    { "key agreement", U_KEY_AGREE }, { "client auth", U_CLIENT },    { "email protection", U_EMAIL },
    { "s/mime", U_EMAIL },
};

struct cfssl_profile {
    char name[64];
    unsigned usages;
    long long expiry_seconds;
};

struct cfssl_ca {
    char url[512], crl_url[512], tls_ca_file[PATH_MAX], label[64], client_cert[PATH_MAX], client_key[PATH_MAX];
    char auth_key_file[PATH_MAX];   /* "": /sign, no auth */
    unsigned char auth_key[64];     /* read from it when first needed (enroll) */
    size_t auth_key_len;
    X509 *cert;                     /* kept at connect */
    struct cfssl_profile profiles[CFSSL_MAX_PROFILES];
    int nprofiles;
    bool profiles_known;            /* asked the server this opening */
};

static struct cfssl_ca *impl(struct cms_ca *ca)
{
    return ca->impl;
}

/* ---- the settings ---- */

/* "a,b,c" into names (the default profile when empty). */
static int split_profiles(const char *list, struct cfssl_profile *p, int *n)
{
    const char *s = list && list[0] ? list : "";
    *n = 0;
    do {
        size_t len = strcspn(s, ",");
        if (*n == CFSSL_MAX_PROFILES || len >= sizeof(p->name))
            return -1;
        memset(&p[*n], 0, sizeof(p[*n]));
        memcpy(p[*n].name, s, len);
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                return -1;
        (*n)++;
        s += len;
    } while (*s++ == ',');
    return 0;
}

/* The auth key: hex in a file no one else may read (cfssl's config holds
 * the same key, as "key" of a "standard" auth key). */
static int read_auth_key(const char *path, unsigned char *key, size_t keymax, size_t *keylen, char *err,
                         size_t errlen)
{
    char text[300], why[600];
    unsigned char *raw = NULL;
    long rawlen = 0;
    size_t len;
    int rc = -1;

    if (tess_private_file_read(path, text, sizeof(text), &len, why, sizeof(why))) {
        snprintf(err, errlen, "cfssl auth key: %s", why);
        return -1;
    }
    raw = len ? OPENSSL_hexstr2buf(text, &rawlen) : NULL;
    if (!raw || rawlen < 16 || (size_t)rawlen > keymax) {
        snprintf(err, errlen, "the cfssl auth key in %s must be 16 to %zu bytes in hexadecimal", path, keymax);
        goto out;
    }
    memcpy(key, raw, (size_t)rawlen);
    *keylen = (size_t)rawlen;
    rc = 0;
out:
    if (raw)
        OPENSSL_clear_free(raw, (size_t)rawlen);
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* ---- talking to cfssl ---- */

/* POST a request to an endpoint; its "result" (owned by *root) when cfssl
 * says success, else CMS_INVALID (cfssl refused) or CMS_ERR (no answer). */
static int call(struct cms_ca *ca, const char *endpoint, const char *body, json_object **root, json_object **result)
{
    struct cfssl_ca *c = impl(ca);
    struct cms_http_answer a;
    char url[700], err[600];
    json_object *errors, *success;
    int rc;

    *root = *result = NULL;
    snprintf(url, sizeof(url), "%s/api/v1/cfssl/%s", c->url, endpoint);
    struct cms_http_request rq = { .url = url, .body = body, .body_len = strlen(body), .ca_file = c->tls_ca_file,
                                   .client_cert = c->client_cert, .client_key = c->client_key,
                                   .timeout_seconds = CFSSL_TIMEOUT };
    /* What a failed sign leaves (read by enroll): nothing, when the
     * request never reached cfssl or cfssl refused it. */
    ca->none_valid = false;
    if (cms_http_request(&rq, &a, err, sizeof(err))) {
        ca->none_valid = a.unsent;
        return cms_ca_fail(ca, CMS_ERR, "cfssl: %s", err);
    }
    *root = json_tokener_parse((const char *)a.body);
    if (!*root || !json_object_object_get_ex(*root, "success", &success)) {
        rc = cms_ca_fail(ca, CMS_ERR, "cfssl at %s answered HTTP %ld without its JSON", url, a.status);
        goto out;
    }
    if (!json_object_is_type(success, json_type_boolean) || !json_object_get_boolean(success)) {
        json_object *first = json_object_object_get_ex(*root, "errors", &errors) &&
                                     json_object_is_type(errors, json_type_array) && json_object_array_length(errors)
                                 ? json_object_array_get_idx(errors, 0)
                                 : NULL, *msg = NULL, *code = NULL;
        if (first) {
            json_object_object_get_ex(first, "message", &msg);
            json_object_object_get_ex(first, "code", &code);
        }
        ca->none_valid = true;
        rc = cms_ca_fail(ca, CMS_INVALID, "cfssl refused (%s %d): %s",
                         endpoint, code ? json_object_get_int(code) : 0, msg ? json_object_get_string(msg) : "?");
        goto out;
    }
    json_object_object_get_ex(*root, "result", result);
    rc = CMS_OK;
out:
    if (rc != CMS_OK) {
        json_object_put(*root);
        *root = NULL;
    }
    cms_http_answer_free(&a);
    return rc;
}

static const char *json_text(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* A Go duration ("8760h", "336h0m0s", "90m") in seconds; -1 when it is not one. */
static long long go_duration(const char *s)
{
    long long total = 0;
    if (!s || !*s)
        return -1;
    while (*s) {
        char *end;
        long long n = strtoll(s, &end, 10);
        if (end == s || n < 0)
            return -1;
        if (*end == 'h')
            total += n * 3600;
        else if (*end == 'm' && end[1] != 's')
            total += n * 60;
        else if (*end == 's')
            total += n;
        else
            return -1;
        s = end + 1;
    }
    return total;
}

/* What cfssl says a profile gives: usages and lifetime (/info). */
static int profile_info(struct cms_ca *ca, struct cfssl_profile *p, X509 **ca_cert)
{
    struct cfssl_ca *c = impl(ca);
    json_object *req = json_object_new_object(), *root = NULL, *result, *usages, *expiry, *pem;
    int rc;

    if (!req)
        return cms_ca_fail(ca, CMS_ERR, "out of memory");
    json_object_object_add(req, "label", json_object_new_string(c->label));
    json_object_object_add(req, "profile", json_object_new_string(p->name));
    if ((rc = call(ca, "info", json_text(req), &root, &result)) != CMS_OK)
        goto out;
    p->usages = 0;
    if (result && json_object_object_get_ex(result, "usages", &usages) &&
        json_object_is_type(usages, json_type_array))
        for (size_t i = 0; i < json_object_array_length(usages); i++) {
            const char *u = json_object_get_string(json_object_array_get_idx(usages, i));
            for (size_t k = 0; u && k < TESS_ARRAY_SIZE(usage_names); k++)
                if (!strcasecmp(u, usage_names[k].name))
                    p->usages |= usage_names[k].bit;
        }
    p->expiry_seconds = result && json_object_object_get_ex(result, "expiry", &expiry)
                            ? go_duration(json_object_get_string(expiry))
                            : -1;
    if (p->expiry_seconds <= 0) {
        rc = cms_ca_fail(ca, CMS_ERR, "cfssl's profile '%s' has no lifetime it could tell", p->name);
        goto out;
    }
    if (ca_cert) {
        const char *text = json_object_object_get_ex(result, "certificate", &pem) ? json_object_get_string(pem) : NULL;
        BIO *b = text ? BIO_new_mem_buf(text, -1) : NULL;
        *ca_cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (!*ca_cert)
            rc = cms_ca_fail(ca, CMS_ERR, "cfssl's info carries no CA certificate");
    }
out:
    json_object_put(req);
    json_object_put(root);
    return rc;
}

static int know_profiles(struct cms_ca *ca)
{
    struct cfssl_ca *c = impl(ca);
    int rc = CMS_OK;
    for (int i = 0; !c->profiles_known && rc == CMS_OK && i < c->nprofiles; i++)
        rc = profile_info(ca, &c->profiles[i], NULL);
    c->profiles_known = rc == CMS_OK;
    return rc;
}

/* ---- enrolment ---- */

static unsigned usages_needed(const struct cms_cert_request *req, EVP_PKEY *pub)
{
    unsigned need = 0;
    if (req->sign)
        need |= U_SIGN;
    if (req->decrypt)
        need |= EVP_PKEY_is_a(pub, "RSA") ? U_KEY_ENC : U_KEY_AGREE;
    if (req->eku & CMS_EKU_CLIENT_AUTH)
        need |= U_CLIENT;
    if (req->eku & CMS_EKU_EMAIL)
        need |= U_EMAIL;
    return need;
}

static void usage_text(unsigned bits, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t k = 0; k < TESS_ARRAY_SIZE(usage_names); k++)
        if ((bits & usage_names[k].bit) && !(k > 0 && usage_names[k - 1].bit == usage_names[k].bit) && n < outlen)
            n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? ", " : "", usage_names[k].name);
}

/* The profile for a key: usages covering it, the longest lifetime not over
 * the one asked for, else the shortest there is. */
static const struct cfssl_profile *choose_profile(struct cms_ca *ca, unsigned need, int lifetime_days)
{
    struct cfssl_ca *c = impl(ca);
    const struct cfssl_profile *within = NULL, *shortest = NULL;
    long long asked = (long long)lifetime_days * 86400;
    for (int i = 0; i < c->nprofiles; i++) {
        const struct cfssl_profile *p = &c->profiles[i];
        if ((p->usages & need) != need)
            continue;
        if (p->expiry_seconds <= asked && (!within || p->expiry_seconds > within->expiry_seconds))
            within = p;
        if (!shortest || p->expiry_seconds < shortest->expiry_seconds)
            shortest = p;
    }
    return within ? within : shortest;
}

static char *b64(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* The body for /authsign ({"token": HMAC, "request": the request}) or, with
 * no auth key, for /sign (the request itself); caller frees. */
static char *sign_body(struct cfssl_ca *c, const char *request)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    char *token = NULL, *wrapped = NULL, *body = NULL;
    json_object *o = NULL;

    if (!c->auth_key_file[0])
        return strdup(request);
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, c->auth_key, c->auth_key_len, (const unsigned char *)request,
                   strlen(request), mac, sizeof(mac), &maclen))
        return NULL;
    token = b64(mac, maclen);
    wrapped = b64((const unsigned char *)request, strlen(request));
    if (token && wrapped && (o = json_object_new_object())) {
        json_object_object_add(o, "token", json_object_new_string(token));
        json_object_object_add(o, "request", json_object_new_string(wrapped));
        body = strdup(json_text(o));
    }
    json_object_put(o);
    free(token);
    free(wrapped);
    return body;
}

/* Do two names hold the same attributes and values, in whatever order?
 * (cfssl writes a subject in Go's order: C, ST, L, O, OU, CN.) */
static bool same_attributes(const X509_NAME *a, const X509_NAME *b)
{
    int n = X509_NAME_entry_count(a);
    bool used[64] = { false };
    if (n != X509_NAME_entry_count(b) || n > 64)
        return false;
    for (int i = 0; i < n; i++) {
        const X509_NAME_ENTRY *ea = X509_NAME_get_entry(a, i);
        bool found = false;
        for (int j = 0; j < n && !found; j++) {
            const X509_NAME_ENTRY *eb = X509_NAME_get_entry(b, j);
            const ASN1_STRING *va = X509_NAME_ENTRY_get_data(ea), *vb = X509_NAME_ENTRY_get_data(eb);
            if (used[j] || OBJ_cmp(X509_NAME_ENTRY_get_object(ea), X509_NAME_ENTRY_get_object(eb)) ||
                ASN1_STRING_length(va) != ASN1_STRING_length(vb) ||
                memcmp(ASN1_STRING_get0_data(va), ASN1_STRING_get0_data(vb), (size_t)ASN1_STRING_length(va)))
                continue;
            used[j] = found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

static bool has_email(X509 *x, const char *email)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !found; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        found = g->type == GEN_EMAIL && ASN1_STRING_length(g->d.rfc822Name) == (int)strlen(email) &&
                !strncasecmp((const char *)ASN1_STRING_get0_data(g->d.rfc822Name), email, strlen(email));
    }
    GENERAL_NAMES_free(names);
    return found;
}

/* What was issued is what was asked for, by the kept CA; else why not. */
static int check_issued(struct cms_ca *ca, const struct cms_cert_request *req, unsigned need, X509 *x, char *why,
                        size_t whylen)
{
    struct cfssl_ca *c = impl(ca);
    uint32_t ku = X509_get_key_usage(x), xku = X509_get_extended_key_usage(x);
    EVP_PKEY *ca_pub = X509_get0_pubkey(c->cert);

    if (X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(c->cert)) || !ca_pub ||
        X509_verify(x, ca_pub) != 1) {
        snprintf(why, whylen, "it is not signed by the CA this database was connected to");
        return CMS_TAMPERED;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(x), X509_REQ_get0_pubkey(req->csr)) != 1)
        snprintf(why, whylen, "it is for another key than the request's");
    else if (X509_check_ca(x) != 0)
        snprintf(why, whylen, "it is a CA's certificate");
    else if (!same_attributes(X509_get_subject_name(x), req->subject))
        snprintf(why, whylen, "its subject is not the profile's (cfssl keeps only C, ST, L, O, OU and CN)");
    else if (((need & U_SIGN) && !(ku & KU_DIGITAL_SIGNATURE)) || ((need & U_KEY_ENC) && !(ku & KU_KEY_ENCIPHERMENT)) ||
             ((need & U_KEY_AGREE) && !(ku & KU_KEY_AGREEMENT)) || ((need & U_CLIENT) && !(xku & XKU_SSL_CLIENT)) ||
             ((need & U_EMAIL) && !(xku & XKU_SMIME)))
        snprintf(why, whylen, "it lacks a usage the key needs");
    else if (req->email && !has_email(x, req->email))
        snprintf(why, whylen, "it does not name %s", req->email);
    else
        return CMS_OK;
    return CMS_INVALID;
}

static int cfssl_revoke(struct cms_ca *ca, const char *serial, int reason);

static int cfssl_enroll(struct cms_ca *ca, const struct cms_cert_request *req, X509 **out)
{
    struct cfssl_ca *c = impl(ca);
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req->csr);
    const struct cfssl_profile *p;
    json_object *o = json_object_new_object(), *hosts = NULL, *root = NULL, *result, *pem;
    char *csr_pem = NULL, *body = NULL, needed[128], why[700], serial[80];
    BIO *b = BIO_new(BIO_s_mem());
    X509 *x = NULL;
    unsigned need;
    bool asked = false;      /* the request went to cfssl */
    int rc;

    *out = NULL;
    if (!pub || X509_REQ_verify(req->csr, pub) != 1) {
        rc = cms_ca_fail(ca, CMS_INVALID, "the certification request's signature does not verify");
        goto out;
    }
    /* cfssl 1.2 writes neither: asked for, they could only be missing. */
    if (req->upn || (req->eku & CMS_EKU_SMARTCARD_LOGON)) {
        rc = cms_ca_fail(ca, CMS_INVALID, "cfssl cannot issue certificates for smart-card logon (the Microsoft "
                                          "usage and UPN name): use the embedded CA for this profile's key");
        goto out;
    }
    need = usages_needed(req, pub);
    if ((rc = know_profiles(ca)) != CMS_OK)
        goto out;
    if (!(p = choose_profile(ca, need, req->lifetime_days))) {
        usage_text(need, needed, sizeof(needed));
        rc = cms_ca_fail(ca, CMS_INVALID, "none of cfssl's profiles this database uses gives %s", needed);
        goto out;
    }
    /* The request: the CSR (its subject is the profile's), the signing
     * profile and the holder's address. */
    if (!o || !b || !PEM_write_bio_X509_REQ(b, req->csr) || BIO_write(b, "", 1) != 1 ||
        BIO_get_mem_data(b, &csr_pem) <= 0) {
        rc = cms_ca_fail(ca, CMS_ERR, "out of memory");
        goto out;
    }
    json_object_object_add(o, "certificate_request", json_object_new_string(csr_pem));
    json_object_object_add(o, "profile", json_object_new_string(p->name));
    json_object_object_add(o, "label", json_object_new_string(c->label));
    if (req->email) {
        hosts = json_object_new_array();
        json_object_array_add(hosts, json_object_new_string(req->email));
        json_object_object_add(o, "hosts", hosts);
    }
    if (c->auth_key_file[0] && !c->auth_key_len &&
        read_auth_key(c->auth_key_file, c->auth_key, sizeof(c->auth_key), &c->auth_key_len, why, sizeof(why))) {
        rc = cms_ca_fail(ca, CMS_ERR, "%s", why);
        goto out;
    }
    if (!(body = sign_body(c, json_text(o)))) {
        rc = cms_ca_fail(ca, CMS_ERR, "cannot make the request");
        goto out;
    }
    asked = true;
    if ((rc = call(ca, c->auth_key_file[0] ? "authsign" : "sign", body, &root, &result)) != CMS_OK)
        goto out;
    ca->none_valid = false;
    const char *text = result && json_object_object_get_ex(result, "certificate", &pem) ? json_object_get_string(pem)
                                                                                       : NULL;
    BIO *cb = text ? BIO_new_mem_buf(text, -1) : NULL;
    x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    BIO_free(cb);
    if (!x) {
        rc = cms_ca_fail(ca, CMS_ERR, "cfssl's answer holds no certificate");
        goto out;
    }
    if ((rc = check_issued(ca, req, need, x, why, sizeof(why))) != CMS_OK) {
        /* Ours but unusable: it must not stay valid unknown to anyone. */
        cms_ca_serial(x, serial, sizeof(serial));
        bool revoked = rc == CMS_INVALID && cfssl_revoke(ca, serial, CMS_REVOKE_CESSATION) == CMS_OK;
        if (rc == CMS_INVALID && !revoked) {
            char revoke_err[sizeof(ca->err)];
            snprintf(revoke_err, sizeof(revoke_err), "%s", ca->err);
            rc = cms_ca_fail(ca, CMS_INVALID, "cfssl (profile '%s') issued certificate %s, but %s; revoking it "
                                              "failed too (it stays valid at the CA): %s", p->name, serial, why,
                             revoke_err);
        }
        else
            rc = cms_ca_fail(ca, rc, "cfssl (profile '%s') issued certificate %s, but %s%s", p->name, serial, why,
                             revoked ? ": revoked it" : "");
        ca->none_valid = revoked;
        goto out;
    }
    *out = x;
    x = NULL;
out:
    if (rc != CMS_OK && !asked)
        ca->none_valid = true;
    X509_free(x);
    json_object_put(root);
    json_object_put(o);
    free(body);
    BIO_free(b);
    return rc;
}

/* ---- revocation, CRL, certificate ---- */

static const char *reason_name(int reason)
{
    switch (reason) {
    case CMS_REVOKE_KEY_COMPROMISE: return "keyCompromise";
    case CMS_REVOKE_SUPERSEDED: return "superseded";
    case CMS_REVOKE_CESSATION: return "cessationOfOperation";
    case CMS_REVOKE_HOLD: return "certificateHold";
    default: return "unspecified";
    }
}

static void key_id_hex(const ASN1_OCTET_STRING *id, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; id && i < ASN1_STRING_length(id) && n + 3 <= outlen; i++)
        n += (size_t)snprintf(out + n, outlen - n, "%02x", ASN1_STRING_get0_data(id)[i]);
}

static int cfssl_revoke(struct cms_ca *ca, const char *serial, int reason)
{
    struct cfssl_ca *c = impl(ca);
    BIGNUM *bn = NULL;
    char *decimal = NULL, ids[2][130];
    int rc = CMS_ERR;

    if (reason < 0)
        return cms_ca_fail(ca, CMS_STATE, "cfssl cannot lift a hold: a held certificate stays revoked");
    if (!BN_hex2bn(&bn, serial) || !(decimal = BN_bn2dec(bn))) {
        rc = cms_ca_fail(ca, CMS_INVALID, "'%s' is not a serial number", serial);
        goto out;
    }
    /* cfssl finds a certificate by serial and authority key identifier: the
     * certificate's (the CA's subject key id), or, as cfssl 1.2 records it,
     * the CA certificate's own authority key id (empty for a root). */
    key_id_hex(X509_get0_subject_key_id(c->cert), ids[0], sizeof(ids[0]));
    key_id_hex(X509_get0_authority_key_id(c->cert), ids[1], sizeof(ids[1]));
    for (int i = 0; i < 2; i++) {
        json_object *o = json_object_new_object(), *root = NULL, *result;
        if (!o) {
            rc = cms_ca_fail(ca, CMS_ERR, "out of memory");
            goto out;
        }
        if (i == 1 && !strcmp(ids[0], ids[1])) {
            json_object_put(o);
            break;
        }
        json_object_object_add(o, "serial", json_object_new_string(decimal));
        json_object_object_add(o, "authority_key_id", json_object_new_string(ids[i]));
        json_object_object_add(o, "reason", json_object_new_string(reason_name(reason)));
        rc = call(ca, "revoke", json_text(o), &root, &result);
        json_object_put(o);
        json_object_put(root);
        if (rc != CMS_INVALID || !strstr(ca->err, "not found"))
            goto out;
    }
    rc = cms_ca_fail(ca, CMS_NOTFOUND, "cfssl's certificate database has no certificate %s (serial %s)", serial,
                     decimal);
out:
    OPENSSL_free(decimal);
    BN_free(bn);
    return rc;
}

static int cfssl_crl(struct cms_ca *ca, X509_CRL **out)
{
    struct cfssl_ca *c = impl(ca);
    struct cms_http_answer a;
    X509_CRL *crl = NULL;
    char err[600];
    int rc;

    *out = NULL;
    if (!c->crl_url[0])
        return cms_ca_fail(ca, CMS_NOTFOUND, "cfssl serves no CRL: connect with --crl-url where the CA publishes it");
    struct cms_http_request rq = { .url = c->crl_url, .ca_file = c->tls_ca_file, .timeout_seconds = CFSSL_TIMEOUT };
    if (cms_http_request(&rq, &a, err, sizeof(err)))
        return cms_ca_fail(ca, CMS_ERR, "CRL: %s", err);
    if (a.status != 200) {
        rc = cms_ca_fail(ca, CMS_ERR, "CRL: %s answered HTTP %ld", c->crl_url, a.status);
        goto out;
    }
    const unsigned char *p = a.body;
    if (!(crl = d2i_X509_CRL(NULL, &p, (long)a.len))) {
        BIO *b = BIO_new_mem_buf(a.body, (int)a.len);
        crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
    }
    if (!crl) {
        rc = cms_ca_fail(ca, CMS_ERR, "CRL: %s gave no CRL (DER or PEM)", c->crl_url);
        goto out;
    }
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(c->cert)) ||
        X509_CRL_verify(crl, X509_get0_pubkey(c->cert)) != 1) {
        rc = cms_ca_fail(ca, CMS_TAMPERED, "CRL: the one at %s is not signed by the CA", c->crl_url);
        goto out;
    }
    /* A signed CRL can be replayed: an old one would hide revocations. */
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    if (X509_cmp_current_time(X509_CRL_get0_lastUpdate(crl)) > 0 || !next || X509_cmp_current_time(next) < 0) {
        rc = cms_ca_fail(ca, CMS_TAMPERED, "CRL: the one at %s is not current (issued in the future, past its "
                                           "next update, or without one)", c->crl_url);
        goto out;
    }
    *out = crl;
    crl = NULL;
    rc = CMS_OK;
out:
    X509_CRL_free(crl);
    cms_http_answer_free(&a);
    return rc;
}

static int cfssl_certificate(struct cms_ca *ca, X509 **out)
{
    X509_up_ref(impl(ca)->cert);
    *out = impl(ca)->cert;
    return CMS_OK;
}

static void cfssl_close(struct cms_ca *ca)
{
    struct cfssl_ca *c = impl(ca);
    if (c) {
        X509_free(c->cert);
        OPENSSL_cleanse(c, sizeof(*c));
        free(c);
    }
    free(ca);
}

static const struct cms_ca_ops cfssl_ops = {
    .kind = "cfssl",
    .lifts_hold = false,
    .enroll = cfssl_enroll,
    .revoke = cfssl_revoke,
    .find_by_key = NULL,   /* its API finds a certificate by serial only */
    .crl = cfssl_crl,
    .certificate = cfssl_certificate,
    .close = cfssl_close,
};

/* ---- opening and connecting ---- */

static struct cms_ca *new_cfssl(void)
{
    struct cms_ca *ca = calloc(1, sizeof(*ca));
    struct cfssl_ca *c = calloc(1, sizeof(*c));
    if (!ca || !c) {
        free(ca);
        free(c);
        return NULL;
    }
    ca->ops = &cfssl_ops;
    ca->impl = c;
    return ca;
}

static void name_ca(struct cms_ca *ca)
{
    char subject[96];
    X509_NAME_oneline(X509_get_subject_name(impl(ca)->cert), subject, sizeof(subject));
    snprintf(ca->name, sizeof(ca->name), "cfssl:%s", subject);
}

/* Copy a setting; -1 when it does not fit (never stored cut short). */
static int set_text(char *dst, size_t dstlen, const char *v, const char *what, char *err, size_t errlen)
{
    if (snprintf(dst, dstlen, "%s", v ? v : "") >= (int)dstlen) {
        snprintf(err, errlen, "the %s is too long (at most %zu bytes)", what, dstlen - 1);
        return -1;
    }
    return 0;
}

static bool is_http_url(const char *v)
{
    return !strncmp(v, "http://", 7) || !strncmp(v, "https://", 8);
}

/* Settings into c (not the CA certificate); -1 with err. The auth key is
 * read now only with read_key (at connect: the one who connects must have
 * it); an opening reads it when it first signs, so that those who only
 * look (ca show, ca crl) need not be able to read it. */
static int settle(struct cfssl_ca *c, const struct cms_cfssl_settings *s, bool read_key, char *err, size_t errlen)
{
    if (!s->url || !is_http_url(s->url) || strlen(s->url) >= sizeof(c->url)) {
        snprintf(err, errlen, "cfssl's URL must be http://HOST:PORT or https://HOST:PORT");
        return -1;
    }
    snprintf(c->url, sizeof(c->url), "%s", s->url);
    c->url[strcspn(c->url, "?#")] = '\0';
    for (size_t n = strlen(c->url); n > 8 && c->url[n - 1] == '/'; n--)
        c->url[n - 1] = '\0';
    if (s->crl_url && !is_http_url(s->crl_url)) {
        snprintf(err, errlen, "the CRL URL must be http:// or https://");
        return -1;
    }
    if (set_text(c->crl_url, sizeof(c->crl_url), s->crl_url, "CRL URL", err, errlen) ||
        set_text(c->tls_ca_file, sizeof(c->tls_ca_file), s->tls_ca_file, "TLS CA file name", err, errlen) ||
        set_text(c->client_cert, sizeof(c->client_cert), s->tls_client_cert, "TLS client certificate file name", err,
                 errlen) ||
        set_text(c->client_key, sizeof(c->client_key), s->tls_client_key, "TLS client key file name", err, errlen) ||
        set_text(c->label, sizeof(c->label), s->label, "label", err, errlen) ||
        set_text(c->auth_key_file, sizeof(c->auth_key_file), s->auth_key_file, "auth key file name", err, errlen))
        return -1;
    if (!c->client_cert[0] != !c->client_key[0]) {
        snprintf(err, errlen, "mutual TLS needs both the client certificate and its key");
        return -1;
    }
    char why[600];
    if (c->client_key[0] && tess_private_file_check(c->client_key, why, sizeof(why))) {
        snprintf(err, errlen, "TLS client key: %s", why);
        return -1;
    }
    if (split_profiles(s->profiles, c->profiles, &c->nprofiles)) {
        snprintf(err, errlen, "profiles are up to %d names, comma-separated", CFSSL_MAX_PROFILES);
        return -1;
    }
    if (read_key && c->auth_key_file[0] &&
        read_auth_key(c->auth_key_file, c->auth_key, sizeof(c->auth_key), &c->auth_key_len, err, errlen))
        return -1;
    return 0;
}

int cms_ca_cfssl_open(struct cms_db *db, struct cms_ca **out)
{
    static const char *const keys[] = { "ca.cfssl.url", "ca.cfssl.profiles", "ca.cfssl.auth-key-file",
                                        "ca.cfssl.crl-url", "ca.cfssl.tls-ca-file", "ca.cfssl.label",
                                        "ca.cfssl.certificate", "ca.cfssl.tls-client-cert",
                                        "ca.cfssl.tls-client-key" };
    char *v[TESS_ARRAY_SIZE(keys)], err[600];
    struct cms_ca *ca = new_cfssl();
    int rc = CMS_ERR;

    *out = NULL;
    for (size_t i = 0; i < TESS_ARRAY_SIZE(keys); i++)
        v[i] = cms_meta_get(db, keys[i]);
    if (!ca) {
        rc = cms_fail(db, CMS_ERR, "out of memory");
        goto out;
    }
    struct cms_cfssl_settings s = { .url = v[0], .profiles = v[1], .auth_key_file = v[2],
                                    .crl_url = v[3] && v[3][0] ? v[3] : NULL, .tls_ca_file = v[4], .label = v[5],
                                    .tls_client_cert = v[7], .tls_client_key = v[8] };
    if (settle(impl(ca), &s, false, err, sizeof(err))) {
        rc = cms_fail(db, CMS_ERR, "cfssl CA: %s", err);
        goto out;
    }
    BIO *b = v[6] ? BIO_new_mem_buf(v[6], -1) : NULL;
    impl(ca)->cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!impl(ca)->cert) {
        rc = cms_fail(db, CMS_ERR, "cfssl CA: the CA certificate kept at connect is missing: `tessera ca connect "
                                   "cfssl` again");
        goto out;
    }
    name_ca(ca);
    *out = ca;
    ca = NULL;
    rc = CMS_OK;
out:
    for (size_t i = 0; i < TESS_ARRAY_SIZE(keys); i++)
        free(v[i]);
    if (ca)
        cfssl_close(ca);
    return rc;
}

int cms_ca_cfssl_connect(struct cms_db *db, const struct cms_actor *by, const struct cms_cfssl_settings *s,
                         char *summary, size_t summarylen, char *err, size_t errlen)
{
    struct cms_ca *ca = new_cfssl();
    char *kind = cms_meta_get(db, "ca.kind"), *pem = NULL, usages[128], dn[256], fp_hex[100] = "";
    unsigned char fp[EVP_MAX_MD_SIZE];
    unsigned fplen = 0;
    BIO *b = BIO_new(BIO_s_mem());
    int rc = CMS_ERR;
    size_t n = 0;

    if (!ca || !b) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (kind && strcmp(kind, "cfssl")) {
        snprintf(err, errlen, "this database has a CA already (%s): its certificates could no longer be revoked",
                 kind);
        rc = CMS_EXISTS;
        goto out;
    }
    if (settle(impl(ca), s, true, err, errlen)) {
        rc = CMS_INVALID;
        goto out;
    }
    /* The CA's certificate, kept from now on, and what each profile gives. */
    struct cfssl_profile first = impl(ca)->profiles[0];
    if ((rc = profile_info(ca, &first, &impl(ca)->cert)) != CMS_OK || (rc = know_profiles(ca)) != CMS_OK) {
        snprintf(err, errlen, "%s", ca->err);
        goto out;
    }
    rc = CMS_ERR;
    if (X509_check_ca(impl(ca)->cert) < 1) {
        snprintf(err, errlen, "cfssl's certificate is not a CA's");
        goto out;
    }
    X509_digest(impl(ca)->cert, EVP_sha256(), fp, &fplen);
    for (unsigned i = 0; i < fplen; i++)
        snprintf(fp_hex + 2 * i, sizeof(fp_hex) - 2 * i, "%02x", fp[i]);
    /* Connected before: the same CA only (new settings, not a new CA). */
    if (kind) {
        char *kept_pem = cms_meta_get(db, "ca.cfssl.certificate");
        BIO *kb = kept_pem ? BIO_new_mem_buf(kept_pem, -1) : NULL;
        X509 *kept = kb ? PEM_read_bio_X509(kb, NULL, NULL, NULL) : NULL;
        bool same = kept && !X509_cmp(kept, impl(ca)->cert);
        X509_free(kept);
        BIO_free(kb);
        free(kept_pem);
        if (!same) {
            snprintf(err, errlen, "the CA at %s (certificate SHA-256 %s) is not the one this database was "
                     "connected to: its certificates could no longer be checked or revoked", impl(ca)->url, fp_hex);
            rc = CMS_TAMPERED;
            goto out;
        }
    }
    X509_NAME_oneline(X509_get_subject_name(impl(ca)->cert), dn, sizeof(dn));
    n = (size_t)snprintf(summary, summarylen, "cfssl CA %s at %s, certificate SHA-256 %s", dn, impl(ca)->url, fp_hex);
    for (int i = 0; i < impl(ca)->nprofiles && n < summarylen; i++) {
        const struct cfssl_profile *p = &impl(ca)->profiles[i];
        usage_text(p->usages, usages, sizeof(usages));
        n += (size_t)snprintf(summary + n, summarylen - n, "; profile '%s': %lld days, %s", p->name[0] ? p->name : "default",
                              p->expiry_seconds / 86400, usages[0] ? usages : "no usage a card key needs");
    }
    if (!PEM_write_bio_X509(b, impl(ca)->cert) || BIO_write(b, "", 1) != 1 || BIO_get_mem_data(b, &pem) <= 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    const char *vals[][2] = {
        { "ca.kind", "cfssl" },
        { "ca.cfssl.url", impl(ca)->url },
        { "ca.cfssl.profiles", s->profiles ? s->profiles : "" },
        { "ca.cfssl.auth-key-file", s->auth_key_file ? s->auth_key_file : "" },
        { "ca.cfssl.crl-url", impl(ca)->crl_url },
        { "ca.cfssl.tls-ca-file", impl(ca)->tls_ca_file },
        { "ca.cfssl.tls-client-cert", impl(ca)->client_cert },
        { "ca.cfssl.tls-client-key", impl(ca)->client_key },
        { "ca.cfssl.label", impl(ca)->label },
        { "ca.cfssl.certificate", pem },
    };
    rc = cms_begin(db);
    for (size_t i = 0; rc == CMS_OK && i < TESS_ARRAY_SIZE(vals); i++)
        rc = cms_meta_set(db, vals[i][0], vals[i][1]);
    if (rc == CMS_OK) {
        struct cms_audit_rec rec = { .operator = by->name, .action = "ca.connect", .result = "ok", .detail = summary };
        rc = cms_audit_append(db, &rec);
    }
    if (rc == CMS_OK)
        rc = cms_commit(db);
    else
        cms_rollback(db);
    if (rc != CMS_OK)
        snprintf(err, errlen, "%s", db->err);
out:
    free(kind);
    BIO_free(b);
    if (ca)
        cfssl_close(ca);
    return rc;
}
