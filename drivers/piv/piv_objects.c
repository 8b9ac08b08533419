/* From what a PIV card holds (certificates, public keys) to PKCS#11 objects:
 * for each key slot a certificate, a public key and a private key, with the
 * same CKA_ID (01 for 9A ... as OpenSC does, so tools agree). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "../../src/keyimport.h"
#include "../../src/log.h"
#include "../../src/mech.h"
#include "../../src/util.h"
#include "piv_card.h"
#include "piv_parse.h"
#include "tlv.h"

const struct piv_slot_info *piv_slot_by_ref(uint8_t key_ref)
{
    for (size_t i = 0; i < piv_nslots; i++)
        if (piv_slots[i].key_ref == key_ref)
            return &piv_slots[i];
    return NULL;
}

const struct piv_slot_info *piv_slot_by_id(const uint8_t *id, size_t len)
{
    if (len != 1)
        return NULL;
    for (size_t i = 0; i < piv_nslots; i++)
        if (piv_slots[i].id == id[0])
            return &piv_slots[i];
    return NULL;
}

/* uids: stable per slot and kind, so handles survive a reload. */
enum { KIND_CERT = 0, KIND_PUB = 1, KIND_PRIV = 2 };

static uint64_t uid_of(uint8_t key_ref, int kind)
{
    return ((uint64_t)key_ref << 2) | (uint64_t)kind;
}

/* A certificate's public key; the card makes P-256 and P-384 keys only. */
static CK_RV pub_from_pkey(EVP_PKEY *pk, struct tess_attrs *out)
{
    const CK_ATTRIBUTE *params;
    int nid;
    if (tess_pkey_public_attrs(pk, out) != CKR_OK)
        return CKR_DEVICE_ERROR;
    params = tess_attrs_get(out, CKA_EC_PARAMS);
    nid = params ? tess_ec_params_nid(params->pValue, params->ulValueLen) : NID_undef;
    if (params && nid != NID_X9_62_prime256v1 && nid != NID_secp384r1) {
        TESS_WARN("piv: a certificate on the card has a curve Tessera does not use (%s)", OBJ_nid2sn(nid));
        return CKR_CURVE_NOT_SUPPORTED;
    }
    return CKR_OK;
}

static CK_RV add(struct tess_token *tok, struct tess_object *o)
{
    CK_RV rv = tess_token_add_object(tok, o);
    if (rv != CKR_OK)
        tess_object_free(tok, o);
    return rv;
}

static CK_RV common(struct tess_object *o, CK_OBJECT_CLASS cls, const struct piv_slot_info *slot, const char *label)
{
    CK_RV rv = tess_attrs_set_ulong(&o->attrs, CKA_CLASS, cls);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_TOKEN, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set(&o->attrs, CKA_ID, &slot->id, 1);
    if (rv == CKR_OK)
        rv = tess_attrs_set(&o->attrs, CKA_LABEL, label, strlen(label));
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_MODIFIABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&o->attrs, CKA_DESTROYABLE, cls == CKO_CERTIFICATE);
    o->token_object = true;
    return rv;
}

/* The public and private key objects of a slot, from its public key. */
CK_RV piv_objects_for_pubkey(struct tess_token *tok, const struct piv_slot_info *slot, const struct tess_attrs *pub,
                             bool local)
{
    struct tess_object *po = tess_object_new(), *ko = tess_object_new();
    struct piv_key *key = calloc(1, sizeof(*key));
    char label[64];
    CK_ULONG kt = 0;
    CK_RV rv = CKR_HOST_MEMORY;

    if (!po || !ko || !key)
        goto fail;
    tess_attrs_get_ulong(pub, CKA_KEY_TYPE, &kt);
    bool rsa = kt == CKK_RSA;
    snprintf(label, sizeof(label), "%s key", slot->name);
    po->uid = uid_of(slot->key_ref, KIND_PUB);
    ko->uid = uid_of(slot->key_ref, KIND_PRIV);
    rv = common(po, CKO_PUBLIC_KEY, slot, label);
    if (rv == CKR_OK)
        rv = tess_attrs_copy(&po->attrs, pub);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&po->attrs, CKA_PRIVATE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&po->attrs, CKA_VERIFY, true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&po->attrs, CKA_ENCRYPT, rsa);
    /* What PIV keys never do, said explicitly (clients ask). */
    static const CK_ATTRIBUTE_TYPE pub_off[] = { CKA_WRAP, CKA_DERIVE, CKA_VERIFY_RECOVER, CKA_TRUSTED };
    static const CK_ATTRIBUTE_TYPE priv_off[] = { CKA_UNWRAP, CKA_SIGN_RECOVER, CKA_WRAP_WITH_TRUSTED };
    for (size_t i = 0; i < TESS_ARRAY_SIZE(pub_off) && rv == CKR_OK; i++)
        rv = tess_attrs_set_bool(&po->attrs, pub_off[i], false);
    for (size_t i = 0; i < TESS_ARRAY_SIZE(priv_off) && rv == CKR_OK; i++)
        rv = tess_attrs_set_bool(&ko->attrs, priv_off[i], false);
    /* PIV does not record whether a key was made on the card; Tessera knows
     * for the keys it generated (local), not for a certificate's. */
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&po->attrs, CKA_LOCAL, local);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&ko->attrs, CKA_LOCAL, local);
    if (rv == CKR_OK)
        rv = common(ko, CKO_PRIVATE_KEY, slot, label);
    if (rv == CKR_OK) {
        /* The private key carries the public values a signer needs (modulus
         * or curve), never the point: PKCS#11 private EC keys have none. */
        for (size_t i = 0; i < pub->n && rv == CKR_OK; i++)
            if (pub->v[i].type != CKA_EC_POINT && pub->v[i].type != CKA_MODULUS_BITS)
                rv = tess_attrs_set(&ko->attrs, pub->v[i].type, pub->v[i].pValue, pub->v[i].ulValueLen);
    }
    static const CK_ATTRIBUTE_TYPE on[] = { CKA_PRIVATE, CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE, CKA_SIGN };
    for (size_t i = 0; i < TESS_ARRAY_SIZE(on) && rv == CKR_OK; i++)
        rv = tess_attrs_set_bool(&ko->attrs, on[i], true);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&ko->attrs, CKA_EXTRACTABLE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&ko->attrs, CKA_DECRYPT, rsa);
    if (rv == CKR_OK)   /* ECDH, but not with the digital signature key */
        rv = tess_attrs_set_bool(&ko->attrs, CKA_DERIVE, !rsa && slot->key_ref != PIV_KEY_SIGN);
    /* The digital signature key asks for the PIN before every use. */
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&ko->attrs, CKA_ALWAYS_AUTHENTICATE, slot->key_ref == PIV_KEY_SIGN);
    if (rv != CKR_OK)
        goto fail;
    key->key_ref = slot->key_ref;
    if (rsa) {
        /* SP 800-78 and the YubiKey's later additions: 05 RSA-3072, 16 RSA-4096 */
        const CK_ATTRIBUTE *m = tess_attrs_get(pub, CKA_MODULUS);
        size_t bytes = m ? m->ulValueLen : 0;
        key->alg = bytes <= 128 ? PIV_ALG_RSA1024 : bytes <= 256 ? PIV_ALG_RSA2048 : bytes <= 384 ? 0x05 : 0x16;
    } else {
        const CK_ATTRIBUTE *p = tess_attrs_get(pub, CKA_EC_PARAMS);
        key->alg = p && p->ulValueLen == sizeof(piv_p384_oid) ? PIV_ALG_ECC384 : PIV_ALG_ECC256;
    }
    ko->drv = key;
    key = NULL;
    rv = add(tok, po);
    po = NULL;
    if (rv == CKR_OK)
        rv = add(tok, ko);
    return rv;
fail:
    free(key);
    tess_object_free(tok, po);
    tess_object_free(tok, ko);
    return rv;
}

CK_RV piv_objects_for_cert(struct tess_token *tok, const struct piv_slot_info *slot, const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    struct tess_object *co = NULL;
    struct tess_attrs pub = { 0 };
    unsigned char *enc = NULL;
    char label[64];
    int n;
    CK_RV rv;

    if (!x) {
        TESS_WARN("piv: the certificate in slot %02X does not parse; skipped", slot->key_ref);
        return CKR_OK;
    }
    co = tess_object_new();
    if (!co) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    snprintf(label, sizeof(label), "Certificate for %s", slot->name);
    co->uid = uid_of(slot->key_ref, KIND_CERT);
    rv = common(co, CKO_CERTIFICATE, slot, label);
    if (rv == CKR_OK)
        rv = tess_attrs_set_ulong(&co->attrs, CKA_CERTIFICATE_TYPE, CKC_X_509);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&co->attrs, CKA_PRIVATE, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set_bool(&co->attrs, CKA_TRUSTED, false);
    if (rv == CKR_OK)
        rv = tess_attrs_set(&co->attrs, CKA_VALUE, der, len);
    if (rv == CKR_OK && (n = i2d_X509_NAME(X509_get_subject_name(x), &enc)) > 0) {
        rv = tess_attrs_set(&co->attrs, CKA_SUBJECT, enc, (CK_ULONG)n);
        OPENSSL_free(enc);
        enc = NULL;
    }
    if (rv == CKR_OK && (n = i2d_X509_NAME(X509_get_issuer_name(x), &enc)) > 0) {
        rv = tess_attrs_set(&co->attrs, CKA_ISSUER, enc, (CK_ULONG)n);
        OPENSSL_free(enc);
        enc = NULL;
    }
    if (rv == CKR_OK && (n = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &enc)) > 0) {
        rv = tess_attrs_set(&co->attrs, CKA_SERIAL_NUMBER, enc, (CK_ULONG)n);
        OPENSSL_free(enc);
        enc = NULL;
    }
    if (rv != CKR_OK)
        goto out;
    rv = add(tok, co);
    co = NULL;
    if (rv == CKR_OK && pub_from_pkey(X509_get0_pubkey(x), &pub) == CKR_OK)
        rv = piv_objects_for_pubkey(tok, slot, &pub, false);
out:
    tess_attrs_free(&pub);
    tess_object_free(tok, co);
    X509_free(x);
    return rv;
}
