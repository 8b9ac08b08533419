/* The shared PKCS#11 test suite (p11suite.c); see there. */
#ifndef TESSERA_P11SUITE_H
#define TESSERA_P11SUITE_H

#include <openssl/evp.h>

#include "p11util.h"

struct keypair {
    CK_OBJECT_HANDLE pub, priv;
    EVP_PKEY *ossl;   /* the public key, rebuilt by OpenSSL from the attributes */
};

extern const uint8_t P256[10], P384[7];
extern CK_BBOOL yes, no;
extern const uint8_t msg[38];

CK_RV get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, uint8_t *buf, CK_ULONG *len);
EVP_PKEY *ossl_public(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, bool rsa);
CK_RV gen_rsa(CK_SESSION_HANDLE s, CK_ULONG bits, const char *id, struct keypair *kp);
CK_RV gen_ec(CK_SESSION_HANDLE s, const uint8_t *params, size_t plen, const char *id, struct keypair *kp);
CK_RV sign(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_OBJECT_HANDLE k, const uint8_t *d, size_t dl, uint8_t *sig,
           CK_ULONG *sl);

void test_rsa_signatures(CK_SESSION_HANDLE s, struct keypair *kp);
void test_rsa_decrypt(CK_SESSION_HANDLE s, struct keypair *kp);
void test_ec(CK_SESSION_HANDLE s, struct keypair *kp, const char *md, size_t field);
void test_ecdh(CK_SESSION_HANDLE s, struct keypair *kp);
void test_attributes(CK_SESSION_HANDLE s, struct keypair *kp);
/* cert_id: the CKA_ID the test certificate is stored under (a PIV card
 * needs one naming a key slot, e.g. "\x01"). */
void test_objects(CK_SESSION_HANDLE s, struct keypair *kp, const char *cert_id);
void test_threads(CK_SLOT_ID slot, struct keypair *rsa, struct keypair *ec);

#endif
