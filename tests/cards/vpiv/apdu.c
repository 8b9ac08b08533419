/* The APDU layer: parses C-APDUs (short and extended), joins command
 * chains (CLA bit 0x10), and hands out long responses in pieces through
 * 61xx / GET RESPONSE, as ISO 7816-4 cards do. The PIV commands below it
 * see one complete command and build one complete response.
 */
#include "card.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Largest chained command: an 8 KiB object plus its tags. */
#define MAX_CHAIN (VPIV_MAX_OBJECT + 64)

#define INS_GET_RESPONSE 0xC0

void vlog(const struct vpiv_card *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->verbose)
        return;
    va_start(ap, fmt);
    fputs("vpiv: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void card_reset(struct vpiv_card *c)
{
    c->pin_verified = 0;
    c->pin_fresh = 0;
    c->pin_always_ok = 0;
    c->mgmt_authed = 0;
    c->auth_kind = AUTH_NONE;
    OPENSSL_cleanse(c->auth_data, sizeof(c->auth_data));
    c->chaining = 0;
    vbuf_reset(&c->chain);
    c->resp_pending = 0;
    c->resp_off = 0;
    vbuf_reset(&c->resp);
}

static int parse_apdu(const uint8_t *in, size_t n, struct apdu *a)
{
    size_t lc;

    memset(a, 0, sizeof(*a));
    if (n < 4)
        return -1;
    a->cla = in[0];
    a->ins = in[1];
    a->p1 = in[2];
    a->p2 = in[3];
    if (n == 4) /* case 1 */
        return 0;
    if (n == 5) { /* case 2 short */
        a->has_le = 1;
        a->le = in[4] ? in[4] : 256;
        return 0;
    }
    if (in[4] != 0) { /* case 3 or 4 short */
        lc = in[4];
        a->data = in + 5;
        a->lc = lc;
        if (n == 5 + lc)
            return 0;
        if (n == 6 + lc) {
            a->has_le = 1;
            a->le = in[5 + lc] ? in[5 + lc] : 256;
            return 0;
        }
        return -1;
    }
    /* Extended length: 00 then two bytes. */
    if (n == 7) { /* case 2 extended */
        a->has_le = 1;
        a->le = ((size_t)in[5] << 8 | in[6]) ? ((size_t)in[5] << 8 | in[6]) : 65536;
        return 0;
    }
    lc = (size_t)in[5] << 8 | in[6];
    if (lc == 0)
        return -1;
    a->data = in + 7;
    a->lc = lc;
    if (n == 7 + lc)
        return 0;
    if (n == 9 + lc) {
        a->has_le = 1;
        a->le = ((size_t)in[7 + lc] << 8 | in[8 + lc]) ? ((size_t)in[7 + lc] << 8 | in[8 + lc]) : 65536;
        return 0;
    }
    return -1;
}

static int put_sw(struct vbuf *r, uint16_t sw)
{
    return vbuf_put_byte(r, (uint8_t)(sw >> 8)) < 0 || vbuf_put_byte(r, (uint8_t)sw) < 0 ? -1 : 0;
}

/* Sends the next piece of the pending response: at most max bytes, then
 * 61xx while more remains. */
static int send_pending(struct vpiv_card *c, size_t max, struct vbuf *r)
{
    size_t left = c->resp.len - c->resp_off;
    size_t n = left < max ? left : max;

    if (vbuf_put(r, c->resp.data + c->resp_off, n) < 0)
        return -1;
    c->resp_off += n;
    left -= n;
    if (left)
        return put_sw(r, SW_MORE(left));
    c->resp_pending = 0;
    c->resp_off = 0;
    vbuf_reset(&c->resp);
    return put_sw(r, SW_OK);
}

/* A command's full response: in one R-APDU when it fits Le (no Le counts
 * as 256: clients on T=1 leave Le out of case 4 commands), otherwise Le
 * bytes now and 61xx for the rest. Not 6Cxx for a short Le: OpenSC reads
 * an object's first 8 bytes (Le 8) to learn its length and expects the
 * data with 61xx, as from a T=1 card. */
static int respond(struct vpiv_card *c, const struct apdu *a, struct vbuf *data, uint16_t sw,
                   struct vbuf *r)
{
    size_t max = a->has_le ? a->le : 256;

    if (sw != SW_OK || data->len == 0)
        return put_sw(r, sw);
    if (data->len <= max) {
        if (vbuf_put(r, data->data, data->len) < 0)
            return -1;
        return put_sw(r, sw);
    }
    /* Keep the whole response; the first piece goes out now. */
    vbuf_reset(&c->resp);
    if (vbuf_put(&c->resp, data->data, data->len) < 0)
        return -1;
    c->resp_off = 0;
    c->resp_pending = 1;
    return send_pending(c, max, r);
}

/* Commands whose data is a PIN, PUK or key: never logged. */
static int secret_ins(uint8_t ins)
{
    return ins == 0x20 || ins == 0x24 || ins == 0x2C || ins == 0xFE || ins == 0xFF;
}

int card_process(struct vpiv_card *c, const uint8_t *in, size_t n, struct vbuf *r)
{
    int rc = -1;
    uint16_t sw;
    struct apdu a, whole;
    struct vbuf data = { 0 };

    if (parse_apdu(in, n, &a) < 0) {
        vlog(c, "malformed APDU (%zu bytes)", n);
        rc = put_sw(r, SW_WRONG_LENGTH);
        goto out;
    }
    vlog(c, "> %02X %02X %02X %02X lc=%zu%s le=%zu", a.cla, a.ins, a.p1, a.p2, a.lc,
         secret_ins(a.ins) ? " (secret)" : "", a.le);
    if (a.cla & ~0x10) {
        /* No secure messaging, no logical channels, no proprietary class. */
        rc = put_sw(r, SW_CLA);
        goto out;
    }
    if (a.ins == INS_GET_RESPONSE) {
        if (a.p1 || a.p2)
            rc = put_sw(r, SW_WRONG_P1P2);
        else if (!c->resp_pending)
            rc = put_sw(r, SW_CONDITIONS);
        else
            rc = send_pending(c, a.has_le ? a.le : 256, r);
        goto out;
    }
    /* Any other command abandons an unread response. */
    c->resp_pending = 0;
    vbuf_reset(&c->resp);

    if (c->chaining && (a.ins != c->chain_ins || a.p1 != c->chain_p1 || a.p2 != c->chain_p2)) {
        /* A command that does not continue the chain abandons it and runs
         * on its own: OpenSC's PIV driver sends GET DATA (discovery
         * object) whenever it takes the card lock, even mid-chain. */
        vlog(c, "chain of %02X abandoned", c->chain_ins);
        c->chaining = 0;
        vbuf_reset(&c->chain);
    }
    if (a.cla & 0x10) {
        if (!c->chaining) {
            c->chaining = 1;
            c->chain_ins = a.ins;
            c->chain_p1 = a.p1;
            c->chain_p2 = a.p2;
            vbuf_reset(&c->chain);
        }
        if (c->chain.len + a.lc > MAX_CHAIN) {
            c->chaining = 0;
            vbuf_reset(&c->chain);
            rc = put_sw(r, SW_WRONG_LENGTH);
            goto out;
        }
        if (vbuf_put(&c->chain, a.data, a.lc) < 0)
            goto out;
        rc = put_sw(r, SW_OK);
        goto out;
    }
    whole = a;
    if (c->chaining) {
        if (c->chain.len + a.lc > MAX_CHAIN || vbuf_put(&c->chain, a.data, a.lc) < 0) {
            c->chaining = 0;
            vbuf_reset(&c->chain);
            rc = put_sw(r, SW_WRONG_LENGTH);
            goto out;
        }
        whole.data = c->chain.data;
        whole.lc = c->chain.len;
        c->chaining = 0;
    }
    sw = piv_command(c, &whole, &data);
    vbuf_reset(&c->chain);
    vlog(c, "< %04X (%zu bytes)", sw, sw == SW_OK ? data.len : (size_t)0);
    rc = respond(c, &a, &data, sw, r);
out:
    vbuf_free(&data);
    return rc;
}
