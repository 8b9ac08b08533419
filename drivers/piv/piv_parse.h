/* Parsing what a PIV card answers: pure functions over untrusted bytes, kept
 * apart from the I/O so a fuzzer can reach every one of them
 * (tests/fuzz/fuzz-piv-parse.c). */
#ifndef TESSERA_PIV_PARSE_H
#define TESSERA_PIV_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../src/attrs.h"
#include "../../pkcs11/pk11.h"
#include "buf.h"
#include "tlv.h"

/* GET DATA response: the object inside its 53 (or own-tag) wrapper. */
CK_RV piv_parse_data_object(const uint8_t *resp, size_t len, uint32_t tag, struct tlv *content);
/* Certificate object (70 cert, 71 CertInfo): DER out, gunzipped if flagged. */
CK_RV piv_parse_cert(const uint8_t *obj, size_t len, struct buf *der);
/* 7C dynamic authentication template: the element with this tag. */
CK_RV piv_parse_auth_response(const uint8_t *resp, size_t len, uint32_t tag, struct tlv *el);
/* Key history object: how many retired keys have certificates on the card. */
size_t piv_parse_retired_count(const uint8_t *obj, size_t len);
/* CHUID: the first 8 bytes of the GUID (34), or -1. */
int piv_parse_guid(const uint8_t *obj, size_t len, uint8_t guid[8]);
/* Does the ATR announce extended Lc/Le (ISO 7816-4 8.1.1.2.7: card
 * capabilities, compact-TLV tag 7, third byte bit 0x40)? */
bool piv_parse_atr_ext_len(const uint8_t *atr, size_t len);

/* Named-curve OIDs (CKA_EC_PARAMS). */
extern const uint8_t piv_p256_oid[10], piv_p384_oid[7];

/* 7F49 public key template (81/82 RSA, 86 EC point) to PKCS#11 attributes. */
CK_RV piv_pub_from_7f49(uint8_t alg, const uint8_t *tmpl, size_t len, struct tess_attrs *out);

#endif
