/* Private keys given as attributes, and public keys as attributes. */
#ifndef TESSERA_KEYIMPORT_H
#define TESSERA_KEYIMPORT_H

#include <openssl/evp.h>

#include "attrs.h"

/* The private key in a CKO_PRIVATE_KEY template (RSA: CKA_MODULUS,
 * CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2; the CRT
 * parts are recomputed, not taken; EC: CKA_EC_PARAMS, CKA_VALUE), checked that its parts agree.
 * Whatever the outcome, the secret attributes are wiped from `a`; the public
 * ones stay. The caller owns *out (EVP_PKEY_free). */
CK_RV tess_import_take_private(struct tess_attrs *a, EVP_PKEY **out);

/* A public key as PKCS#11 attributes: CKA_KEY_TYPE and CKA_MODULUS,
 * CKA_PUBLIC_EXPONENT, CKA_MODULUS_BITS, or CKA_EC_PARAMS and CKA_EC_POINT
 * (DER OCTET STRING). */
CK_RV tess_pkey_public_attrs(EVP_PKEY *pk, struct tess_attrs *out);

#endif
