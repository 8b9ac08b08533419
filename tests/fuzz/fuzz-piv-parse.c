/* libFuzzer target: everything Tessera parses out of a PIV card's answers
 * (drivers/piv/piv_parse.c and the BER-TLV reader under it). The first byte
 * picks the parser, so one corpus reaches them all.
 *   make tests/fuzz/fuzz-piv-parse && tests/fuzz/fuzz-piv-parse -max_total_time=600 CORPUS */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "../../drivers/piv/piv.h"
#include "../../drivers/piv/piv_parse.h"
#include "../../src/log.h"

/* Every constructed TLV, recursively, as a card might nest them. */
static void walk(const uint8_t *p, const uint8_t *end, int depth)
{
    struct tlv t;
    while (p < end && tlv_next(&p, end, &t) == 0) {
        uint8_t first = (uint8_t)(t.tag >> (t.tag > 0xffff ? 16 : t.tag > 0xff ? 8 : 0));
        if ((first & 0x20) && depth < 8)
            walk(t.value, t.value + t.len, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t algs[] = { PIV_ALG_RSA2048, PIV_ALG_RSA1024, PIV_ALG_ECC256, PIV_ALG_ECC384 };
    struct tlv t;
    struct buf der = { 0 };
    struct tess_attrs attrs = { 0 };
    uint8_t guid[8];

    tess_log_set_level(TESS_LOG_NONE);
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    switch (data[0] % 6) {
    case 0:
        if (piv_parse_data_object(in, len, 0x5fc105, &t) == CKR_OK)
            piv_parse_cert(t.value, t.len, &der);
        break;
    case 1:
        piv_parse_cert(in, len, &der);
        break;
    case 2:
        piv_parse_auth_response(in, len, 0x82, &t);
        piv_parse_auth_response(in, len, 0x80, &t);
        break;
    case 3:
        piv_parse_retired_count(in, len);
        piv_parse_guid(in, len, guid);
        piv_parse_atr_ext_len(in, len);
        break;
    case 4:
        if (len >= 1)
            piv_pub_from_7f49(algs[in[0] % 4], in + 1, len - 1, &attrs);
        break;
    default:
        walk(in, in + len, 0);
        break;
    }
    buf_free(&der);
    tess_attrs_free(&attrs);
    return 0;
}
