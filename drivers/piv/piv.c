#include "config.h"
#include "piv.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "piv_parse.h"
#include "tlv.h"

static const uint8_t piv_aid[] = { 0xa0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00 };

const struct piv_slot_info piv_slots[] = {
    { 0x9a, 0x5fc105, 1, "PIV Authentication" },
    { 0x9c, 0x5fc10a, 2, "Digital Signature" },
    { 0x9d, 0x5fc10b, 3, "Key Management" },
    { 0x9e, 0x5fc101, 4, "Card Authentication" },
    { 0x82, 0x5fc10d, 5, "Retired Key Management 1" },
    { 0x83, 0x5fc10e, 6, "Retired Key Management 2" },
    { 0x84, 0x5fc10f, 7, "Retired Key Management 3" },
    { 0x85, 0x5fc110, 8, "Retired Key Management 4" },
    { 0x86, 0x5fc111, 9, "Retired Key Management 5" },
    { 0x87, 0x5fc112, 10, "Retired Key Management 6" },
    { 0x88, 0x5fc113, 11, "Retired Key Management 7" },
    { 0x89, 0x5fc114, 12, "Retired Key Management 8" },
    { 0x8a, 0x5fc115, 13, "Retired Key Management 9" },
    { 0x8b, 0x5fc116, 14, "Retired Key Management 10" },
    { 0x8c, 0x5fc117, 15, "Retired Key Management 11" },
    { 0x8d, 0x5fc118, 16, "Retired Key Management 12" },
    { 0x8e, 0x5fc119, 17, "Retired Key Management 13" },
    { 0x8f, 0x5fc11a, 18, "Retired Key Management 14" },
    { 0x90, 0x5fc11b, 19, "Retired Key Management 15" },
    { 0x91, 0x5fc11c, 20, "Retired Key Management 16" },
    { 0x92, 0x5fc11d, 21, "Retired Key Management 17" },
    { 0x93, 0x5fc11e, 22, "Retired Key Management 18" },
    { 0x94, 0x5fc11f, 23, "Retired Key Management 19" },
    { 0x95, 0x5fc120, 24, "Retired Key Management 20" },
};
const size_t piv_nslots = TESS_ARRAY_SIZE(piv_slots);

CK_RV piv_select(struct channel *ch)
{
    uint16_t sw = 0;
    CK_RV rv = channel_transmit(ch, 0x00, 0xa4, 0x04, 0x00, piv_aid, sizeof(piv_aid), NULL, &sw);
    if (rv != CKR_OK)
        return rv;
    return sw == 0x9000 ? CKR_OK : CKR_TOKEN_NOT_RECOGNIZED;
}

static uint16_t pending_sw;   /* the 61xx of the last head left unread (under the module lock) */

CK_RV piv_get_data_head(struct channel *ch, uint32_t tag, struct buf *resp, bool *more)
{
    uint8_t cmd[5] = { 0x5c }, t[3];
    size_t tn = tlv_tag(t, tag);
    uint16_t sw = 0;
    CK_RV rv;
    cmd[1] = (uint8_t)tn;
    memcpy(cmd + 2, t, tn);
    rv = channel_transmit_first(ch, 0x00, 0xcb, 0x3f, 0xff, cmd, 2 + tn, resp, &sw);
    if (rv != CKR_OK)
        return rv;
    *more = (sw >> 8) == 0x61;
    pending_sw = sw;
    return *more ? CKR_OK : sw_to_rv(sw, "GET DATA");
}

CK_RV piv_get_data_rest(struct channel *ch, struct buf *resp)
{
    uint16_t sw = pending_sw;
    CK_RV rv = channel_continue(ch, resp, &sw);
    return rv == CKR_OK ? sw_to_rv(sw, "GET DATA") : rv;
}

CK_RV piv_get_data(struct channel *ch, uint32_t tag, struct buf *out)
{
    uint8_t cmd[5] = { 0x5c };
    uint8_t t[3];
    size_t tn = tlv_tag(t, tag);
    struct buf resp = { 0 };
    struct tlv content;
    uint16_t sw = 0;
    CK_RV rv;

    cmd[1] = (uint8_t)tn;
    memcpy(cmd + 2, t, tn);
    rv = channel_transmit(ch, 0x00, 0xcb, 0x3f, 0xff, cmd, 2 + tn, &resp, &sw);
    if (rv == CKR_OK)
        rv = sw_to_rv(sw, "GET DATA");
    if (rv != CKR_OK)
        goto out;
    rv = piv_parse_data_object(resp.p, resp.len, tag, &content);
    if (rv != CKR_OK)
        goto out;
    if (buf_append(out, content.value, content.len))
        rv = CKR_HOST_MEMORY;
out:
    buf_free(&resp);
    return rv;
}

CK_RV piv_put_data(struct channel *ch, uint32_t tag, const uint8_t *data, size_t len)
{
    struct buf cmd = { 0 };
    uint8_t hdr[8], t[3];
    size_t tn = tlv_tag(t, tag), hn;
    uint16_t sw = 0;
    CK_RV rv = CKR_HOST_MEMORY;

    hdr[0] = 0x5c;
    hdr[1] = (uint8_t)tn;
    if (buf_append(&cmd, hdr, 2) || buf_append(&cmd, t, tn))
        goto out;
    hn = tlv_header(hdr, 0x53, len);
    if (buf_append(&cmd, hdr, hn) || buf_append(&cmd, data, len))
        goto out;
    rv = channel_transmit(ch, 0x00, 0xdb, 0x3f, 0xff, cmd.p, cmd.len, NULL, &sw);
    if (rv == CKR_OK)
        rv = sw_to_rv(sw, "PUT DATA");
out:
    buf_free(&cmd);
    return rv;
}

/* PINs are padded with FF to 8 bytes (SP 800-73-4 part 2, 3.2.1). */
static CK_RV pad_pin(const uint8_t *pin, size_t len, uint8_t out[8])
{
    if (len < 1 || len > 8)
        return CKR_PIN_LEN_RANGE;
    memset(out, 0xff, 8);
    memcpy(out, pin, len);
    return CKR_OK;
}

static void tries_from(uint16_t sw, int *tries)
{
    if (!tries)
        return;
    if ((sw & 0xfff0) == 0x63c0)
        *tries = sw & 0x0f;
    else if (sw == 0x6983)
        *tries = 0;
}

CK_RV piv_verify(struct channel *ch, const uint8_t *pin, size_t len, int *tries)
{
    uint8_t padded[8];
    uint16_t sw = 0;
    CK_RV rv = pad_pin(pin, len, padded);
    if (rv == CKR_OK)
        rv = channel_transmit(ch, 0x00, 0x20, 0x00, PIV_PIN, padded, 8, NULL, &sw);
    tess_wipe(padded, sizeof(padded));
    if (rv != CKR_OK)
        return rv;
    tries_from(sw, tries);
    return sw_to_rv(sw, "VERIFY");
}

CK_RV piv_pin_status(struct channel *ch, int *tries)
{
    uint16_t sw = 0;
    /* VERIFY without data: 9000 when verified, 63Cx for x tries left. */
    CK_RV rv = channel_transmit(ch, 0x00, 0x20, 0x00, PIV_PIN, NULL, 0, NULL, &sw);
    if (rv != CKR_OK)
        return rv;
    *tries = -1;
    tries_from(sw, tries);
    return CKR_OK;
}

/* CHANGE REFERENCE DATA and RESET RETRY COUNTER: two padded PINs in one command. */
static CK_RV two_pins(struct channel *ch, uint8_t ins, uint8_t ref, const uint8_t *a, size_t a_len, const uint8_t *b,
                      size_t b_len, int *tries, const char *what)
{
    uint8_t data[16];
    uint16_t sw = 0;
    CK_RV rv = pad_pin(a, a_len, data);
    if (rv == CKR_OK)
        rv = pad_pin(b, b_len, data + 8);
    if (rv == CKR_OK)
        rv = channel_transmit(ch, 0x00, ins, 0x00, ref, data, 16, NULL, &sw);
    tess_wipe(data, sizeof(data));
    if (rv != CKR_OK)
        return rv;
    tries_from(sw, tries);
    return sw_to_rv(sw, what);
}

CK_RV piv_change_reference(struct channel *ch, uint8_t ref, const uint8_t *old_pin, size_t old_len,
                           const uint8_t *new_pin, size_t new_len, int *tries)
{
    return two_pins(ch, 0x24, ref, old_pin, old_len, new_pin, new_len, tries, "CHANGE REFERENCE DATA");
}

CK_RV piv_reset_retry_counter(struct channel *ch, const uint8_t *puk, size_t puk_len, const uint8_t *new_pin,
                              size_t new_len, int *tries)
{
    return two_pins(ch, 0x2c, PIV_PIN, puk, puk_len, new_pin, new_len, tries, "RESET RETRY COUNTER");
}

static const EVP_CIPHER *mgmt_cipher(uint8_t alg, size_t key_len, size_t *block)
{
    switch (alg) {
    case PIV_ALG_3DES: *block = 8; return key_len == 24 ? EVP_des_ede3_ecb() : NULL;
    case PIV_ALG_AES128: *block = 16; return key_len == 16 ? EVP_aes_128_ecb() : NULL;
    case PIV_ALG_AES192: *block = 16; return key_len == 24 ? EVP_aes_192_ecb() : NULL;
    case PIV_ALG_AES256: *block = 16; return key_len == 32 ? EVP_aes_256_ecb() : NULL;
    default: return NULL;
    }
}

static int ecb(const EVP_CIPHER *c, const uint8_t *key, bool enc, const uint8_t *in, size_t len, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok = ctx && EVP_CipherInit_ex(ctx, c, NULL, key, NULL, enc ? 1 : 0) &&
                    EVP_CIPHER_CTX_set_padding(ctx, 0) && EVP_CipherUpdate(ctx, out, &n, in, (int)len) &&
                    (size_t)n == len;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

CK_RV piv_mgmt_auth(struct channel *ch, uint8_t alg, const uint8_t *key, size_t key_len)
{
    size_t bs = 0;
    const EVP_CIPHER *c = mgmt_cipher(alg, key_len, &bs);
    uint8_t cmd[2 + 2 * (2 + 16)], witness[16], challenge[16], expect[16];
    struct buf resp = { 0 };
    struct tlv el;
    uint16_t sw = 0;
    CK_RV rv;

    if (!c)
        return CKR_KEY_SIZE_RANGE;
    rv = channel_begin(ch);
    if (rv != CKR_OK)
        return rv;
    /* Step 1: ask for a witness (7C 02 80 00). */
    static const uint8_t ask[] = { 0x7c, 0x02, 0x80, 0x00 };
    rv = channel_transmit(ch, 0x00, 0x87, alg, PIV_KEY_MGMT, ask, sizeof(ask), &resp, &sw);
    if (rv == CKR_OK)
        rv = sw_to_rv(sw, "management key: witness");
    if (rv == CKR_OK)
        rv = piv_parse_auth_response(resp.p, resp.len, 0x80, &el);
    if (rv == CKR_OK && el.len != bs)
        rv = CKR_DEVICE_ERROR;
    if (rv != CKR_OK)
        goto out;
    /* Step 2: decrypt the witness, send it back with a challenge of ours. */
    if (ecb(c, key, false, el.value, bs, witness) || RAND_bytes(challenge, (int)bs) != 1 ||
        ecb(c, key, true, challenge, bs, expect)) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    /* 7C { 80 witness, 81 challenge }: the form yubico-piv-tool and the
     * cards it serves use; the card answers 7C { 82 response }. */
    size_t n = 0;
    cmd[n++] = 0x7c;
    cmd[n++] = (uint8_t)(2 * (2 + bs));
    cmd[n++] = 0x80;
    cmd[n++] = (uint8_t)bs;
    memcpy(cmd + n, witness, bs);
    n += bs;
    cmd[n++] = 0x81;
    cmd[n++] = (uint8_t)bs;
    memcpy(cmd + n, challenge, bs);
    n += bs;
    buf_free(&resp);
    rv = channel_transmit(ch, 0x00, 0x87, alg, PIV_KEY_MGMT, cmd, n, &resp, &sw);
    if (rv == CKR_OK && sw != 0x9000) {
        TESS_WARN("piv: the card refused the management key (%04X)", sw);
        rv = (sw & 0xfff0) == 0x63c0 || sw == 0x6982 ? CKR_PIN_INCORRECT : sw_to_rv(sw, "management key");
    }
    if (rv == CKR_OK)
        rv = piv_parse_auth_response(resp.p, resp.len, 0x82, &el);
    /* Step 3: the card proves it too, by encrypting our challenge. */
    if (rv == CKR_OK && (el.len != bs || !tess_ct_equal(el.value, expect, bs))) {
        TESS_ERR("piv: the card did not prove knowledge of the management key");
        rv = CKR_DEVICE_ERROR;
    }
out:
    channel_end(ch);
    tess_wipe(witness, sizeof(witness));
    tess_wipe(expect, sizeof(expect));
    tess_wipe(cmd, sizeof(cmd));
    buf_free(&resp);
    return rv;
}

CK_RV piv_set_mgmt_key(struct channel *ch, uint8_t alg, const uint8_t *key, size_t key_len)
{
    size_t bs = 0;
    uint8_t cmd[3 + 32];
    uint16_t sw = 0;
    CK_RV rv;

    if (!mgmt_cipher(alg, key_len, &bs))
        return CKR_KEY_SIZE_RANGE;
    cmd[0] = alg;
    cmd[1] = PIV_KEY_MGMT;
    cmd[2] = (uint8_t)key_len;
    memcpy(cmd + 3, key, key_len);
    /* P2 FF: no touch needed to use it. */
    rv = channel_transmit(ch, 0x00, 0xff, 0xff, 0xff, cmd, 3 + key_len, NULL, &sw);
    tess_wipe(cmd, sizeof(cmd));
    if (rv == CKR_OK && sw == 0x6d00) {
        TESS_ERR("piv: this card cannot change its management key (no YubiKey SET MANAGEMENT KEY command)");
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return rv == CKR_OK ? sw_to_rv(sw, "SET MANAGEMENT KEY") : rv;
}

CK_RV piv_generate(struct channel *ch, uint8_t key_ref, uint8_t alg, struct buf *pub)
{
    const uint8_t cmd[] = { 0xac, 0x03, 0x80, 0x01, alg };
    struct buf resp = { 0 };
    struct tlv tmpl;
    uint16_t sw = 0;
    CK_RV rv = channel_transmit(ch, 0x00, 0x47, 0x00, key_ref, cmd, sizeof(cmd), &resp, &sw);
    if (rv == CKR_OK)
        rv = sw_to_rv(sw, "GENERATE ASYMMETRIC KEY PAIR");
    if (rv == CKR_OK)
        rv = piv_parse_data_object(resp.p, resp.len, 0x7f49, &tmpl);
    if (rv != CKR_OK)
        goto out;
    if (buf_append(pub, tmpl.value, tmpl.len))
        rv = CKR_HOST_MEMORY;
out:
    buf_free(&resp);
    return rv;
}

CK_RV piv_metadata(struct channel *ch, uint8_t key_ref, struct buf *out)
{
    uint16_t sw = 0;
    CK_RV rv = channel_transmit(ch, 0x00, 0xf7, 0x00, key_ref, NULL, 0, out, &sw);
    if (rv == CKR_OK && (sw == 0x6d00 || sw == 0x6a81 || sw == 0x6e00))
        return CKR_FUNCTION_NOT_SUPPORTED;
    return rv == CKR_OK ? sw_to_rv(sw, "GET METADATA") : rv;
}

CK_RV piv_import_key(struct channel *ch, uint8_t key_ref, uint8_t alg, const uint8_t *parts, size_t len)
{
    struct buf resp = { 0 };
    uint16_t sw = 0;
    CK_RV rv = channel_transmit(ch, 0x00, 0xfe, alg, key_ref, parts, len, &resp, &sw);
    if (rv == CKR_OK && sw == 0x6d00) {
        TESS_ERR("piv: this card does not take keys from outside (no YubiKey import command)");
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    } else if (rv == CKR_OK) {
        rv = sw_to_rv(sw, "IMPORT ASYMMETRIC KEY");
    }
    buf_free(&resp);
    return rv;
}

CK_RV piv_private_op(struct channel *ch, uint8_t alg, uint8_t key_ref, uint8_t what, const uint8_t *in, size_t len,
                     struct buf *out)
{
    struct buf cmd = { 0 }, resp = { 0 };
    uint8_t hdr[8];
    size_t inner = 2 + tlv_header(hdr, what, len) + len, hn;
    struct tlv el;
    uint16_t sw = 0;
    CK_RV rv = CKR_HOST_MEMORY;

    /* 7C { 82 00 (response wanted), 81 challenge | 85 exponentiation } */
    hn = tlv_header(hdr, 0x7c, inner);
    if (buf_append(&cmd, hdr, hn) || buf_append(&cmd, (const uint8_t *)"\x82\x00", 2))
        goto out;
    hn = tlv_header(hdr, what, len);
    if (buf_append(&cmd, hdr, hn) || buf_append(&cmd, in, len))
        goto out;
    rv = channel_transmit(ch, 0x00, 0x87, alg, key_ref, cmd.p, cmd.len, &resp, &sw);
    if (rv == CKR_OK)
        rv = sw_to_rv(sw, "GENERAL AUTHENTICATE");
    if (rv == CKR_OK)
        rv = piv_parse_auth_response(resp.p, resp.len, 0x82, &el);
    if (rv == CKR_OK && buf_append(out, el.value, el.len))
        rv = CKR_HOST_MEMORY;
out:
    buf_free(&cmd);
    buf_free(&resp);
    return rv;
}

CK_RV piv_yk_reset(struct channel *ch)
{
    uint16_t sw = 0;
    CK_RV rv = channel_transmit(ch, 0x00, 0xfb, 0x00, 0x00, NULL, 0, NULL, &sw);
    if (rv == CKR_OK && sw == 0x6d00) {
        TESS_ERR("piv: this card cannot be reset (no YubiKey RESET command)");
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return rv == CKR_OK ? sw_to_rv(sw, "RESET") : rv;
}

CK_RV piv_yk_set_pin_retries(struct channel *ch, uint8_t pin_tries, uint8_t puk_tries)
{
    uint16_t sw = 0;
    CK_RV rv = channel_transmit(ch, 0x00, 0xfa, pin_tries, puk_tries, NULL, 0, NULL, &sw);
    if (rv == CKR_OK && sw == 0x6d00) {
        TESS_ERR("piv: this card cannot change its PIN tries (no YubiKey SET PIN RETRIES command)");
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    return rv == CKR_OK ? sw_to_rv(sw, "SET PIN RETRIES") : rv;
}
