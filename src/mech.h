/* Mechanisms: what the module offers, and the software half of every
 * operation (hashing, padding, public-key verify/encrypt) done with OpenSSL.
 * Private-key operations go to the driver; everything else stays here. */
#ifndef TESSERA_MECH_H
#define TESSERA_MECH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "attrs.h"

struct tess_mech_info {
    CK_MECHANISM_TYPE type;
    CK_ULONG min_bits, max_bits;
    CK_FLAGS flags;
};

/* The mechanisms a token with RSA + EC keys in hardware offers. */
const struct tess_mech_info *tess_mech_table(size_t *count);
const struct tess_mech_info *tess_mech_find(CK_MECHANISM_TYPE type);

/* Sign/verify mechanisms decomposed: base (CKM_RSA_PKCS, CKM_RSA_PKCS_PSS,
 * CKM_ECDSA, CKM_RSA_X_509) plus the hash the module computes first (0: none). */
bool tess_mech_split(CK_MECHANISM_TYPE mech, CK_MECHANISM_TYPE *base, CK_MECHANISM_TYPE *hash);
const EVP_MD *tess_md_for(CK_MECHANISM_TYPE hash);
CK_MECHANISM_TYPE tess_hash_for_mgf(CK_RSA_PKCS_MGF_TYPE mgf);

/* PKCS#1 v1.5 DigestInfo: build one, or recognise one (returns the hash). */
CK_RV tess_digestinfo_wrap(CK_MECHANISM_TYPE hash, const uint8_t *digest, size_t dlen, uint8_t *out, size_t *outlen);
CK_MECHANISM_TYPE tess_digestinfo_parse(const uint8_t *in, size_t len, const uint8_t **digest, size_t *dlen);

/* Encodings for a raw RSA private operation on k bytes of modulus. */
CK_RV tess_pad_pkcs1_sign(const uint8_t *in, size_t inlen, uint8_t *em, size_t k);
CK_RV tess_pad_pss(const uint8_t *modulus, size_t k, CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash,
                   size_t salt_len, const uint8_t *mhash, uint8_t *em);
CK_RV tess_unpad_pkcs1_decrypt(const uint8_t *em, size_t k, uint8_t *out, size_t *outlen);
CK_RV tess_unpad_oaep(const uint8_t *em, size_t k, CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash,
                      const uint8_t *label, size_t label_len, uint8_t *out, size_t *outlen);

/* Public keys from an object's attributes (RSA: modulus + exponent; EC:
 * params + point). Caller frees with EVP_PKEY_free. */
CK_RV tess_pkey_from_attrs(const struct tess_attrs *a, EVP_PKEY **out);

/* EC helpers. */
int tess_ec_params_nid(const uint8_t *der, size_t len);        /* NID or NID_undef */
size_t tess_ec_field_len(int nid);
/* A point given as raw 04|X|Y or as a DER OCTET STRING around it. */
CK_RV tess_ec_point_raw(const uint8_t *in, size_t len, size_t field_len, const uint8_t **point, size_t *plen);
/* CKA_EC_POINT from a raw 04|X|Y point: its DER OCTET STRING. */
CK_RV tess_ec_point_attr(struct tess_attrs *a, const uint8_t *point, size_t len);
/* r|s <-> DER ECDSA-Sig-Value */
CK_RV tess_ecdsa_rs_to_der(const uint8_t *rs, size_t len, uint8_t **der, size_t *derlen);

/* Key sizes in bytes from attributes: RSA modulus length, EC 2 * field. */
size_t tess_key_sig_len(const struct tess_attrs *a);

#endif
