/* Key escrow: escrow keys, archives (CMS EnvelopedData to an escrow key),
 * and the record of recoveries. See escrow.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "../util.h"
#include "audit.h"
#include "escrow.h"

#define ESCROW_MIN_BITS 2048

static int say(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char ossl[160] = "";
    if (e)
        ERR_error_string_n(e, ossl, sizeof(ossl));
    ERR_clear_error();
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", ossl);
    return CMS_INVALID;
}

/* ---- escrow keys ---- */

int cms_escrow_fingerprint(X509 *cert, char out[65])
{
    unsigned char *spki = NULL, md[32];
    int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
    bool ok = len > 0 && EVP_Digest(spki, (size_t)len, md, NULL, EVP_sha256(), NULL);
    OPENSSL_free(spki);
    if (ok)
        tess_hex(out, md, sizeof(md));
    return ok ? CMS_OK : CMS_ERR;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (!n || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(name[i] >= 'a' && name[i] <= 'z') && !(name[i] >= 'A' && name[i] <= 'Z') &&
            !(name[i] >= '0' && name[i] <= '9') && !strchr("._-", name[i]))
            return false;
    return true;
}

int cms_escrow_key_add(struct cms_db *db, const struct cms_actor *by, const char *name, X509 *cert, const char *kept,
                       const char *oaep)
{
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    unsigned char *der = NULL;
    char fp[65], now[32], detail[300];
    sqlite3_stmt *st = NULL;
    int len, rc;

    if (!name_ok(name))
        return cms_fail(db, CMS_INVALID, "an escrow key's name is 1 to 63 letters, digits, '.', '_' or '-'");
    if (!pub || !EVP_PKEY_is_a(pub, "RSA") || EVP_PKEY_get_bits(pub) < ESCROW_MIN_BITS)
        return cms_fail(db, CMS_INVALID, "an escrow key is RSA of %d bits or more", ESCROW_MIN_BITS);
    if (!kept || (strcmp(kept, "file") && strcmp(kept, "hsm") && strcmp(kept, "elsewhere")))
        return cms_fail(db, CMS_INVALID, "an escrow key is kept in a file, an hsm, or elsewhere");
    if (!oaep || (strcmp(oaep, "sha256") && strcmp(oaep, "sha1")))
        return cms_fail(db, CMS_INVALID, "an escrow key takes OAEP with sha256 or sha1");
    if (cms_escrow_fingerprint(cert, fp) != CMS_OK || (len = i2d_X509(cert, &der)) <= 0)
        return cms_fail(db, CMS_INVALID, "cannot read the escrow key's certificate");
    cms_now(now);
    rc = cms_begin(db);
    if (rc == CMS_OK && !(st = cms_prepare(db, "INSERT INTO escrow_keys (name, fingerprint, cert, kept, oaep, "
                                               "created, created_by) VALUES (?,?,?,?,?,?,?)")))
        rc = CMS_ERR;
    if (rc == CMS_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, fp, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, der, len, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, kept, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, oaep, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, by->name, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_CONSTRAINT)
            rc = cms_fail(db, CMS_EXISTS, "an escrow key named %s, or with this key, is already recorded", name);
        else if (step != SQLITE_DONE)
            rc = cms_sql_fail(db, "escrow_keys");
    }
    if (rc == CMS_OK)
        rc = cms_meta_set(db, "escrow.current", name);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "escrow key %s (sha256 %s), kept in %s, OAEP with %s; now the current one",
                 name, fp, kept, oaep);
        struct cms_audit_rec rec = { .operator = by->name, .action = "escrow.add", .result = "ok", .detail = detail };
        rc = cms_audit_append(db, &rec);
    }
    sqlite3_finalize(st);
    OPENSSL_free(der);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

static X509 *cert_of(sqlite3_stmt *st, int col)
{
    const unsigned char *p = sqlite3_column_blob(st, col);
    return p ? d2i_X509(NULL, &p, sqlite3_column_bytes(st, col)) : NULL;
}

int cms_escrow_key_current(struct cms_db *db, int64_t *id, X509 **cert, const EVP_MD **oaep)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT k.id, k.cert, k.oaep FROM escrow_keys k JOIN meta m "
                                       "ON m.key = 'escrow.current' AND m.value = k.name");
    int rc;
    *cert = NULL;
    if (!st)
        return CMS_ERR;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *cert = cert_of(st, 1);
        *oaep = strcmp((const char *)sqlite3_column_text(st, 2), "sha1") ? EVP_sha256() : EVP_sha1();
        rc = *cert ? CMS_OK : cms_fail(db, CMS_ERR, "the current escrow key's certificate does not read");
    } else {
        rc = step == SQLITE_DONE ? cms_fail(db, CMS_NOTFOUND, "there is no escrow key: an administrator makes one "
                                                              "(tessera escrow create) or records one (escrow add)")
                                 : cms_sql_fail(db, "escrow_keys");
    }
    sqlite3_finalize(st);
    return rc;
}

int cms_escrow_key_list(struct cms_db *db, cms_escrow_key_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT k.id, k.name, k.fingerprint, k.kept, k.created, k.created_by, "
                                       "m.value IS NOT NULL, k.oaep FROM escrow_keys k LEFT JOIN meta m "
                                       "ON m.key = 'escrow.current' AND m.value = k.name ORDER BY k.id");
    int rc = CMS_OK, step;
    if (!st)
        return CMS_ERR;
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct cms_escrow_key k = { .id = sqlite3_column_int64(st, 0), .current = sqlite3_column_int(st, 6) };
        cms_column_text(st, 1, k.name, sizeof(k.name));
        cms_column_text(st, 2, k.fingerprint, sizeof(k.fingerprint));
        cms_column_text(st, 3, k.kept, sizeof(k.kept));
        cms_column_text(st, 4, k.created, sizeof(k.created));
        cms_column_text(st, 5, k.created_by, sizeof(k.created_by));
        cms_column_text(st, 7, k.oaep, sizeof(k.oaep));
        rc = cb(arg, &k);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "escrow_keys");
    sqlite3_finalize(st);
    return rc;
}

/* ---- archives ---- */

int cms_escrow_seal(X509 *escrow_cert, const EVP_MD *oaep, EVP_PKEY *key, unsigned char **der, size_t *len,
                    char *err, size_t errlen)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *plain = NULL;
    int plain_len = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &plain) : -1;
    CMS_ContentInfo *cms = NULL;
    CMS_RecipientInfo *ri;
    EVP_PKEY_CTX *pctx;
    BIO *in = NULL;
    int out_len, rc = CMS_INVALID;

    *der = NULL;
    if (plain_len <= 0) {
        rc = say(err, errlen, "the key does not encode as PKCS#8");
        goto out;
    }
    in = BIO_new_mem_buf(plain, plain_len);
    cms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL);
    ri = cms ? CMS_add1_recipient_cert(cms, escrow_cert, CMS_KEY_PARAM) : NULL;
    pctx = ri ? CMS_RecipientInfo_get0_pkey_ctx(ri) : NULL;
    if (!in || !pctx || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, oaep) <= 0 || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, oaep) <= 0 ||
        !CMS_final(cms, in, NULL, CMS_BINARY)) {
        rc = say(err, errlen, "cannot seal the key to the escrow key");
        goto out;
    }
    out_len = i2d_CMS_ContentInfo(cms, der);
    if (out_len <= 0) {
        rc = say(err, errlen, "cannot encode the archive");
        goto out;
    }
    *len = (size_t)out_len;
    rc = CMS_OK;
out:
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    if (plain)
        OPENSSL_clear_free(plain, (size_t)plain_len);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return rc;
}

/* The opened PKCS#8 as a key, believed only when cert certifies it. */
static int key_from_plain(const unsigned char *plain, size_t len, X509 *cert, EVP_PKEY **key, char *err,
                          size_t errlen)
{
    const unsigned char *p = plain;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    EVP_PKEY *pk = p8 ? EVP_PKCS82PKEY(p8) : NULL;
    EVP_PKEY_CTX *check = pk ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (!pk)
        return say(err, errlen, "the archive does not hold a key");
    /* The public half alone would let a changed private part (a CRT
     * value) through: the whole key is checked. */
    bool whole = check && EVP_PKEY_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    ERR_clear_error();
    if (!whole || (cert && EVP_PKEY_eq(pk, X509_get0_pubkey(cert)) != 1)) {
        EVP_PKEY_free(pk);
        snprintf(err, errlen, "the archived key is %s: the archive was changed",
                 whole ? "not the one its certificate certifies" : "not a whole key");
        return CMS_TAMPERED;
    }
    *key = pk;
    return CMS_OK;
}

int cms_escrow_open(const unsigned char *der, size_t len, EVP_PKEY *escrow_key, X509 *cert, EVP_PKEY **key,
                    char *err, size_t errlen)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    BIO *out = BIO_new(BIO_s_secmem());   /* wiped when freed */
    BUF_MEM *plain = NULL;
    int rc;

    *key = NULL;
    if (!cms || OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped) {
        rc = say(err, errlen, "the archive is not CMS enveloped data");
        goto out;
    }
    if (!out || !CMS_decrypt_set1_pkey(cms, escrow_key, NULL) || !CMS_decrypt(cms, NULL, NULL, NULL, out, CMS_BINARY)) {
        rc = say(err, errlen, "this escrow key does not open the archive");
        goto out;
    }
    BIO_get_mem_ptr(out, &plain);
    rc = key_from_plain((const unsigned char *)plain->data, plain->length, cert, key, err, errlen);
out:
    BIO_free(out);
    CMS_ContentInfo_free(cms);
    return rc;
}

/* ---- opening with an HSM: the archive taken apart ----
 * OpenSSL opens ktri recipients only with a key it holds, so for a key in
 * an HSM the DER is walked to the two values needed: the wrapped content
 * key (KeyTransRecipientInfo.encryptedKey) and the encrypted content with
 * its algorithm (EncryptedContentInfo). Definite lengths only, as
 * i2d_CMS_ContentInfo writes them. */

struct der_elem {
    int tag, cls;
    bool constructed;
    const unsigned char *start, *body;   /* the whole element, its contents */
    long body_len;
};

/* The next element of [*p, end), stepping over it. */
static bool der_next(const unsigned char **p, const unsigned char *end, struct der_elem *e)
{
    const unsigned char *q = *p;
    long len;
    if (q >= end)
        return false;
    int flags = ASN1_get_object(&q, &len, &e->tag, &e->cls, end - *p);
    if (flags & 0x80 || flags == 0x21)   /* an error, or an indefinite length */
        return false;
    e->constructed = flags & V_ASN1_CONSTRUCTED;
    e->start = *p;
    e->body = q;
    e->body_len = len;
    *p = q + len;
    return true;
}

static bool der_want(const unsigned char **p, const unsigned char *end, int tag, int cls, struct der_elem *e)
{
    return der_next(p, end, e) && e->tag == tag && e->cls == cls;
}

struct archive_parts {
    const unsigned char *kea;            /* keyEncryptionAlgorithm, whole */
    long kea_len;
    const unsigned char *wrapped;
    long wrapped_len;
    const unsigned char *alg;            /* contentEncryptionAlgorithm, whole */
    long alg_len;
    const unsigned char *content;
    long content_len;
};

static bool archive_split(const unsigned char *der, size_t len, struct archive_parts *a)
{
    const unsigned char *p = der, *end = der + len, *q, *qend, *r, *rend;
    struct der_elem e, ed, ri, eci;

    /* ContentInfo { contentType, [0] EXPLICIT EnvelopedData } */
    if (!der_want(&p, end, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &e))
        return false;
    q = e.body, qend = e.body + e.body_len;
    if (!der_want(&q, qend, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &e) || !der_want(&q, qend, 0, V_ASN1_CONTEXT_SPECIFIC, &e))
        return false;
    q = e.body, qend = e.body + e.body_len;
    /* EnvelopedData { version, originatorInfo [0] OPTIONAL, recipientInfos SET,
     * encryptedContentInfo, ... } */
    if (!der_want(&q, qend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &ed))
        return false;
    q = ed.body, qend = ed.body + ed.body_len;
    if (!der_want(&q, qend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &e) || !der_next(&q, qend, &e))
        return false;
    if (e.cls == V_ASN1_CONTEXT_SPECIFIC && e.tag == 0 && !der_next(&q, qend, &e))
        return false;
    if (e.tag != V_ASN1_SET || e.cls != V_ASN1_UNIVERSAL)
        return false;
    /* KeyTransRecipientInfo { version, rid, keyEncryptionAlgorithm, encryptedKey } */
    r = e.body, rend = e.body + e.body_len;
    if (!der_want(&r, rend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &ri) || r != rend)
        return false;   /* archives have exactly one recipient */
    r = ri.body, rend = ri.body + ri.body_len;
    if (!der_want(&r, rend, V_ASN1_INTEGER, V_ASN1_UNIVERSAL, &e) || !der_next(&r, rend, &e) ||
        !der_want(&r, rend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &e))
        return false;
    a->kea = e.start;
    a->kea_len = (e.body + e.body_len) - e.start;
    if (!der_want(&r, rend, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL, &e))
        return false;
    a->wrapped = e.body;
    a->wrapped_len = e.body_len;
    /* EncryptedContentInfo { contentType, contentEncryptionAlgorithm,
     * encryptedContent [0] IMPLICIT OCTET STRING } */
    if (!der_want(&q, qend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &eci))
        return false;
    r = eci.body, rend = eci.body + eci.body_len;
    if (!der_want(&r, rend, V_ASN1_OBJECT, V_ASN1_UNIVERSAL, &e) ||
        !der_want(&r, rend, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL, &e))
        return false;
    a->alg = e.start;
    a->alg_len = (e.body + e.body_len) - e.start;
    if (!der_want(&r, rend, 0, V_ASN1_CONTEXT_SPECIFIC, &e) || e.constructed)
        return false;
    a->content = e.body;
    a->content_len = e.body_len;
    return true;
}

/* The hash of an RSAES-OAEP AlgorithmIdentifier (the same for MGF1, no
 * label, as Tessera seals): NID_sha256 or NID_sha1; NID_undef otherwise. */
static int oaep_hash(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    X509_ALGOR *alg = d2i_X509_ALGOR(NULL, &p, len), *mgf_hash = NULL;
    RSA_OAEP_PARAMS *oaep = NULL;
    int hash = NID_undef, mgf = NID_undef;

    if (!alg || OBJ_obj2nid(alg->algorithm) != NID_rsaesOaep)
        goto out;
    if (!alg->parameter || alg->parameter->type == V_ASN1_NULL) {
        hash = mgf = NID_sha1;   /* all defaults: SHA-1, MGF1 with SHA-1 */
        goto out;
    }
    oaep = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_OAEP_PARAMS), alg->parameter);
    if (!oaep || oaep->pSourceFunc)
        goto out;
    hash = oaep->hashFunc ? OBJ_obj2nid(oaep->hashFunc->algorithm) : NID_sha1;
    if (!oaep->maskGenFunc) {
        mgf = NID_sha1;
    } else if (OBJ_obj2nid(oaep->maskGenFunc->algorithm) == NID_mgf1 && oaep->maskGenFunc->parameter &&
               (mgf_hash = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR), oaep->maskGenFunc->parameter))) {
        mgf = OBJ_obj2nid(mgf_hash->algorithm);
    }
out:
    X509_ALGOR_free(mgf_hash);
    RSA_OAEP_PARAMS_free(oaep);
    X509_ALGOR_free(alg);
    return hash == mgf && (hash == NID_sha256 || hash == NID_sha1) ? hash : NID_undef;
}

int cms_escrow_open_unwrap(const unsigned char *der, size_t len, cms_escrow_unwrap_fn unwrap, void *arg, X509 *cert,
                           EVP_PKEY **key, char *err, size_t errlen)
{
    struct archive_parts a = { 0 };
    const unsigned char *p;
    unsigned char cek[64], *plain = NULL;
    size_t cek_len = sizeof(cek);
    X509_ALGOR *alg = NULL;
    const ASN1_OBJECT *oid = NULL;
    const void *param = NULL;
    const ASN1_OCTET_STRING *iv;
    EVP_CIPHER_CTX *ctx = NULL;
    int ptype = 0, n1 = 0, n2 = 0, hash, rc;

    *key = NULL;
    if (!archive_split(der, len, &a)) {
        snprintf(err, errlen, "the archive is not CMS enveloped data to one escrow key");
        return CMS_INVALID;
    }
    if ((hash = oaep_hash(a.kea, a.kea_len)) == NID_undef) {
        snprintf(err, errlen, "the archive's key is not wrapped by RSAES-OAEP with SHA-256 or SHA-1");
        return CMS_INVALID;
    }
    p = a.alg;
    alg = d2i_X509_ALGOR(NULL, &p, a.alg_len);
    if (alg)
        X509_ALGOR_get0(&oid, &ptype, &param, alg);
    iv = param;
    if (!alg || OBJ_obj2nid(oid) != NID_aes_256_cbc || ptype != V_ASN1_OCTET_STRING ||
        ASN1_STRING_length(iv) != 16) {
        snprintf(err, errlen, "the archive is not encrypted with AES-256-CBC");
        rc = CMS_INVALID;
        goto out;
    }
    rc = unwrap(arg, hash, a.wrapped, (size_t)a.wrapped_len, cek, &cek_len);
    if (rc != CMS_OK) {
        snprintf(err, errlen, "the escrow key did not unwrap the archive's content key");
        goto out;
    }
    if (cek_len != 32) {
        snprintf(err, errlen, "the archive's content key is not an AES-256 key");
        rc = CMS_INVALID;
        goto out;
    }
    plain = OPENSSL_malloc((size_t)a.content_len + 16);
    ctx = EVP_CIPHER_CTX_new();
    if (!plain || !ctx || !EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, cek, ASN1_STRING_get0_data(iv)) ||
        !EVP_DecryptUpdate(ctx, plain, &n1, a.content, (int)a.content_len) ||
        !EVP_DecryptFinal_ex(ctx, plain + n1, &n2)) {
        rc = say(err, errlen, "the archive does not decrypt");
        goto out;
    }
    rc = key_from_plain(plain, (size_t)(n1 + n2), cert, key, err, errlen);
out:
    OPENSSL_cleanse(cek, sizeof(cek));
    if (plain)
        OPENSSL_clear_free(plain, (size_t)a.content_len + 16);
    EVP_CIPHER_CTX_free(ctx);
    X509_ALGOR_free(alg);
    return rc;
}

/* ---- records ---- */

int cms_escrow_insert(struct cms_db *db, int64_t cert_id, const struct cms_escrow_archive *a)
{
    sqlite3_stmt *st = cms_prepare(db, "INSERT INTO escrowed_keys (certificate_id, escrow_key_id, archive, created) "
                                       "VALUES (?,?,?,?)");
    char now[32];
    int rc;
    if (!st)
        return CMS_ERR;
    cms_now(now);
    sqlite3_bind_int64(st, 1, cert_id);
    sqlite3_bind_int64(st, 2, a->escrow_key_id);
    sqlite3_bind_blob(st, 3, a->der, (int)a->len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "escrowed_keys");
    sqlite3_finalize(st);
    return rc;
}

#define ESCROWED_SELECT                                                                                             \
    "SELECT e.id, c.id, h.id, e.escrow_key_id, h.uid, coalesce(c.serial, ''), c.state, x.key_name, x.serial, "     \
    "x.state, x.not_after, k.name, e.created, e.archive, x.der FROM escrowed_keys e "                               \
    "JOIN certificates x ON x.id = e.certificate_id JOIN cards c ON c.id = x.card_id "                             \
    "JOIN holders h ON h.id = c.holder_id JOIN escrow_keys k ON k.id = e.escrow_key_id "

static void escrowed_row(sqlite3_stmt *st, struct cms_escrowed *e)
{
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(st, 0);
    e->card_id = sqlite3_column_int64(st, 1);
    e->holder_id = sqlite3_column_int64(st, 2);
    e->escrow_key_id = sqlite3_column_int64(st, 3);
    cms_column_text(st, 4, e->holder, sizeof(e->holder));
    cms_column_text(st, 5, e->card_serial, sizeof(e->card_serial));
    cms_column_text(st, 6, e->card_state, sizeof(e->card_state));
    cms_column_text(st, 7, e->key_name, sizeof(e->key_name));
    cms_column_text(st, 8, e->cert_serial, sizeof(e->cert_serial));
    cms_column_text(st, 9, e->cert_state, sizeof(e->cert_state));
    cms_column_text(st, 10, e->not_after, sizeof(e->not_after));
    cms_column_text(st, 11, e->escrow_key, sizeof(e->escrow_key));
    cms_column_text(st, 12, e->created, sizeof(e->created));
}

int cms_escrowed_list(struct cms_db *db, int64_t card_id, const char *holder, cms_escrowed_cb cb, void *arg)
{
    sqlite3_stmt *st = cms_prepare(db, ESCROWED_SELECT "WHERE (?1 = 0 OR c.id = ?1) AND (?2 IS NULL OR h.uid = ?2) "
                                                       "ORDER BY e.id DESC");
    int rc = CMS_OK, step;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, card_id);
    if (holder)
        sqlite3_bind_text(st, 2, holder, -1, SQLITE_STATIC);
    while (rc == CMS_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        struct cms_escrowed e;
        escrowed_row(st, &e);
        rc = cb(arg, &e);
    }
    if (rc == CMS_OK && step != SQLITE_DONE)
        rc = cms_sql_fail(db, "escrowed_keys");
    sqlite3_finalize(st);
    return rc;
}

/* A PIV key renewed in place has certificates newer than the one it was
 * archived with: the newest that was ever in use (not withdrawn by a
 * roll-back) becomes *cert. */
static int newest_for_key(struct cms_db *db, struct cms_escrowed *e, X509 **cert)
{
    sqlite3_stmt *st = cms_prepare(db, "SELECT serial, state, not_after, der FROM certificates WHERE card_id = ?1"
                                       " AND key_name = ?2 AND withdrawn IS NULL AND id > (SELECT certificate_id"
                                       " FROM escrowed_keys WHERE id = ?3) ORDER BY id DESC");
    int step;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, e->card_id);
    sqlite3_bind_text(st, 2, e->key_name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, e->id);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        X509 *x = cert_of(st, 3);
        if (x && EVP_PKEY_eq(X509_get0_pubkey(x), X509_get0_pubkey(*cert)) == 1) {
            X509_free(*cert);
            *cert = x;
            cms_column_text(st, 0, e->cert_serial, sizeof(e->cert_serial));
            cms_column_text(st, 1, e->cert_state, sizeof(e->cert_state));
            cms_column_text(st, 2, e->not_after, sizeof(e->not_after));
            step = SQLITE_DONE;
            break;
        }
        X509_free(x);
    }
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? CMS_OK : cms_sql_fail(db, "certificates");
}

int cms_escrowed_get(struct cms_db *db, int64_t id, struct cms_escrowed *e, unsigned char **der, size_t *len,
                     X509 **cert)
{
    sqlite3_stmt *st = cms_prepare(db, ESCROWED_SELECT "WHERE e.id = ?1");
    int rc, step;
    *der = NULL;
    *cert = NULL;
    if (!st)
        return CMS_ERR;
    sqlite3_bind_int64(st, 1, id);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        escrowed_row(st, e);
        *len = (size_t)sqlite3_column_bytes(st, 13);
        *der = OPENSSL_memdup(sqlite3_column_blob(st, 13), *len);
        *cert = cert_of(st, 14);
        rc = *der && *cert ? CMS_OK : cms_fail(db, CMS_ERR, "escrowed key %lld does not read", (long long)id);
        sqlite3_finalize(st);
        st = NULL;
        if (rc == CMS_OK)
            rc = newest_for_key(db, e, cert);
    } else {
        rc = step == SQLITE_DONE ? cms_fail(db, CMS_NOTFOUND, "no escrowed key %lld", (long long)id)
                                 : cms_sql_fail(db, "escrowed_keys");
    }
    sqlite3_finalize(st);
    if (rc != CMS_OK) {
        OPENSSL_free(*der);
        X509_free(*cert);
        *der = NULL;
        *cert = NULL;
    }
    return rc;
}

int cms_escrow_recovered(struct cms_db *db, const struct cms_actor *by, const struct cms_escrowed *e, const char *to,
                         const char *result)
{
    char detail[512];
    int rc = cms_begin(db);
    snprintf(detail, sizeof(detail), "escrowed key %lld (key %s, certificate %s, escrow key %s) recovered to %s",
             (long long)e->id, e->key_name, e->cert_serial, e->escrow_key, to);
    struct cms_audit_rec rec = { .operator = by->name, .action = "key.recover", .result = result, .holder = e->holder,
                                 .card = e->card_serial[0] ? e->card_serial : NULL, .detail = detail };
    if (rc == CMS_OK)
        rc = cms_audit_append(db, &rec);
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}
