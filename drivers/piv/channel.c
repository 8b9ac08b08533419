#include "config.h"
#include "channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "piv_parse.h"

static CK_RV pcsc_rv(LONG rc, const char *what)
{
    switch (rc) {
    case SCARD_S_SUCCESS:
        return CKR_OK;
    case SCARD_W_REMOVED_CARD:
    case SCARD_E_NO_SMARTCARD:
    case SCARD_E_READER_UNAVAILABLE:
    case SCARD_E_UNKNOWN_READER:
        TESS_INFO("pcsc: %s: card or reader gone (%s)", what, pcsc_stringify_error(rc));
        return CKR_DEVICE_REMOVED;
    case SCARD_E_NO_SERVICE:
    case SCARD_E_INVALID_HANDLE:
        TESS_WARN("pcsc: %s: %s", what, pcsc_stringify_error(rc));
        return CKR_DEVICE_REMOVED;
    default:
        TESS_ERR("pcsc: %s: %s", what, pcsc_stringify_error(rc));
        return CKR_DEVICE_ERROR;
    }
}

CK_RV channel_connect(struct channel *ch, SCARDCONTEXT ctx, const char *reader)
{
    LONG rc;
    memset(ch, 0, sizeof(*ch));
    snprintf(ch->reader, sizeof(ch->reader), "%s", reader);
    rc = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &ch->card,
                      &ch->protocol);
    if (rc != SCARD_S_SUCCESS)
        return pcsc_rv(rc, "connect");
    ch->connected = true;
    {
        char name[256];
        DWORD namelen = sizeof(name), state, proto, atrlen = MAX_ATR_SIZE;
        BYTE atr[MAX_ATR_SIZE];
        if (SCardStatus(ch->card, name, &namelen, &state, &proto, atr, &atrlen) == SCARD_S_SUCCESS)
            ch->ext_len = piv_parse_atr_ext_len(atr, atrlen);
    }
    return CKR_OK;
}

void channel_disconnect(struct channel *ch)
{
    if (ch->connected)
        SCardDisconnect(ch->card, SCARD_LEAVE_CARD);
    ch->connected = false;
}

/* Someone else reset the card (another process, a power glitch): reconnect
 * and tell the application layer, which must select and log in again. */
static CK_RV reconnect(struct channel *ch)
{
    LONG rc = SCardReconnect(ch->card, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                             SCARD_LEAVE_CARD, &ch->protocol);
    if (rc != SCARD_S_SUCCESS)
        return pcsc_rv(rc, "reconnect");
    ch->was_reset = true;
    return CKR_OK;
}

CK_RV channel_begin(struct channel *ch)
{
    LONG rc;
    if (!ch->connected)
        return CKR_DEVICE_REMOVED;
    if (ch->tx_depth++)
        return CKR_OK;
    rc = SCardBeginTransaction(ch->card);
    if (rc == SCARD_W_RESET_CARD) {
        CK_RV rv = reconnect(ch);
        if (rv == CKR_OK)
            rc = SCardBeginTransaction(ch->card);
    }
    if (rc != SCARD_S_SUCCESS) {
        ch->tx_depth = 0;
        return pcsc_rv(rc, "begin transaction");
    }
    return CKR_OK;
}

void channel_end(struct channel *ch)
{
    if (ch->tx_depth > 0 && --ch->tx_depth == 0 && ch->connected)
        SCardEndTransaction(ch->card, SCARD_LEAVE_CARD);
}

static CK_RV exchange(struct channel *ch, const uint8_t *apdu, size_t len, uint8_t *resp, DWORD *rlen)
{
    const SCARD_IO_REQUEST *pci = ch->protocol == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
    DWORD cap = *rlen;
    LONG rc;
    ch->apdus++;
    rc = SCardTransmit(ch->card, pci, apdu, (DWORD)len, NULL, resp, rlen);
    /* After a reset we must reconnect; a card just put in can refuse its
     * first exchanges while pcscd still powers it up (SCARD_E_NOT_TRANSACTED):
     * wait a little and try again, a few times. */
    for (int retry = 0; retry < 5 && (rc == SCARD_W_RESET_CARD || rc == SCARD_E_NOT_TRANSACTED); retry++) {
        if (rc == SCARD_E_NOT_TRANSACTED) {
            struct timespec ts = { 0, (retry + 1) * 40 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        if (reconnect(ch) != CKR_OK)
            break;
        *rlen = cap;
        rc = SCardTransmit(ch->card, pci, apdu, (DWORD)len, NULL, resp, rlen);
    }
    if (rc == SCARD_S_SUCCESS && *rlen < 2) {
        TESS_ERR("pcsc: response without a status word");
        return CKR_DEVICE_ERROR;
    }
    return pcsc_rv(rc, "transmit");
}

/* One extended-length APDU (ISO 7816-4 5.1: Lc and Le of 2 bytes after a
 * 00), for a card whose ATR offers it: no chaining, and the whole answer
 * at once (Le 0000 = up to 65536 bytes). */
static CK_RV transmit_extended(struct channel *ch, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
                               const uint8_t *data, size_t len, struct buf *resp, uint16_t *sw, bool whole)
{
    size_t n = 0;
    DWORD rlen = 65536 + 2;
    uint8_t *apdu = malloc(4 + 3 + len + 2), *r = malloc(rlen);
    CK_RV rv = CKR_HOST_MEMORY;

    if (!apdu || !r || len > 65535)
        goto out;
    apdu[n++] = cla;
    apdu[n++] = ins;
    apdu[n++] = p1;
    apdu[n++] = p2;
    apdu[n++] = 0x00;
    apdu[n++] = (uint8_t)(len >> 8);
    apdu[n++] = (uint8_t)len;
    memcpy(apdu + n, data, len);
    n += len;
    apdu[n++] = 0x00;
    apdu[n++] = 0x00;
    rv = exchange(ch, apdu, n, r, &rlen);
    if (rv != CKR_OK)
        goto out;
    *sw = (uint16_t)(r[rlen - 2] << 8 | r[rlen - 1]);
    if (resp && buf_append(resp, r, rlen - 2)) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (whole)
        rv = channel_continue(ch, resp, sw);
out:
    if (apdu)
        tess_free_secret(apdu, 4 + 3 + len + 2);
    if (r)
        tess_free_secret(r, 65536 + 2);
    return rv;
}

static CK_RV transmit(struct channel *ch, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data,
                      size_t len, struct buf *resp, uint16_t *sw, bool whole)
{
    uint8_t apdu[5 + 255 + 1], r[258];
    DWORD rlen;
    size_t off = 0, last_n = 0;
    CK_RV rv;

    if (!ch->connected)
        return CKR_DEVICE_REMOVED;
    if (ch->ext_len && len > 255)
        return transmit_extended(ch, cla, ins, p1, p2, data, len, resp, sw, whole);
    /* Command chaining (ISO 7816-4 5.1.1): 255-byte pieces, CLA b5 set on
     * all but the last. */
    do {
        size_t piece = len - off > 255 ? 255 : len - off;
        bool last = off + piece == len;
        size_t n = 0;
        apdu[n++] = (uint8_t)(last ? cla : cla | 0x10);
        apdu[n++] = ins;
        apdu[n++] = p1;
        apdu[n++] = p2;
        if (piece) {
            apdu[n++] = (uint8_t)piece;
            memcpy(apdu + n, data + off, piece);
            n += piece;
        }
        if (last)
            apdu[n++] = 0x00;   /* Le: up to 256 bytes */
        rlen = sizeof(r);
        rv = exchange(ch, apdu, n, r, &rlen);
        if (rv != CKR_OK)
            goto out;
        *sw = (uint16_t)(r[rlen - 2] << 8 | r[rlen - 1]);
        off += piece;
        last_n = n;
        if (!last && *sw != 0x9000)
            goto out;   /* the card refused a piece: that is the answer */
    } while (off < len);

    for (int retries = 0;; retries++) {
        if ((*sw >> 8) == 0x6c && retries < 2) {
            /* Wrong Le: send the last piece again with the length the card wants. */
            apdu[last_n - 1] = (uint8_t)*sw;
            rlen = sizeof(r);
            rv = exchange(ch, apdu, last_n, r, &rlen);
            if (rv != CKR_OK)
                goto out;
            *sw = (uint16_t)(r[rlen - 2] << 8 | r[rlen - 1]);
            continue;
        }
        break;
    }
    if (resp && buf_append(resp, r, rlen - 2))
        rv = CKR_HOST_MEMORY;
    else if (whole)
        rv = channel_continue(ch, resp, sw);
out:
    /* Commands carry PINs and imported keys, responses decrypted data. */
    tess_wipe(r, sizeof(r));
    tess_wipe(apdu, sizeof(apdu));
    return rv;
}

CK_RV channel_continue(struct channel *ch, struct buf *resp, uint16_t *sw)
{
    uint8_t r[258];
    DWORD rlen;
    CK_RV rv;
    while ((*sw >> 8) == 0x61) {
        /* More data waits: GET RESPONSE until the card says 9000. */
        uint8_t get[5] = { 0x00, 0xc0, 0x00, 0x00, (uint8_t)*sw };
        rlen = sizeof(r);
        rv = exchange(ch, get, sizeof(get), r, &rlen);
        if (rv != CKR_OK)
            return rv;
        *sw = (uint16_t)(r[rlen - 2] << 8 | r[rlen - 1]);
        if (resp && buf_append(resp, r, rlen - 2))
            return CKR_HOST_MEMORY;
    }
    tess_wipe(r, sizeof(r));
    return CKR_OK;
}

CK_RV channel_transmit(struct channel *ch, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data,
                       size_t len, struct buf *resp, uint16_t *sw)
{
    return transmit(ch, cla, ins, p1, p2, data, len, resp, sw, true);
}

CK_RV channel_transmit_first(struct channel *ch, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
                             const uint8_t *data, size_t len, struct buf *resp, uint16_t *sw)
{
    return transmit(ch, cla, ins, p1, p2, data, len, resp, sw, false);
}

CK_RV sw_to_rv(uint16_t sw, const char *what)
{
    if (sw == 0x9000)
        return CKR_OK;
    if ((sw & 0xfff0) == 0x63c0)
        return CKR_PIN_INCORRECT;          /* x tries left */
    switch (sw) {
    case 0x6983: return CKR_PIN_LOCKED;    /* authentication method blocked */
    case 0x6982:                           /* security status not satisfied */
        TESS_INFO("piv: %s: the card wants a PIN or the management key first", what);
        return CKR_USER_NOT_LOGGED_IN;
    case 0x6a82: return CKR_OBJECT_HANDLE_INVALID;   /* file or object not found */
    case 0x6a80:                           /* incorrect parameters in the data field */
        TESS_WARN("piv: %s: the card refused the data (6A80)", what);
        return CKR_DATA_INVALID;
    case 0x6a81: case 0x6d00: case 0x6e00: /* function / instruction / class not supported */
        TESS_WARN("piv: %s: not supported by this card (%04X)", what, sw);
        return CKR_FUNCTION_NOT_SUPPORTED;
    case 0x6a86: case 0x6b00:              /* incorrect P1/P2: e.g. a slot or algorithm it lacks */
        TESS_WARN("piv: %s: the card does not know this key slot or algorithm (%04X)", what, sw);
        return CKR_KEY_HANDLE_INVALID;
    case 0x6700: return CKR_DATA_LEN_RANGE;
    case 0x6984: case 0x6985: return CKR_FUNCTION_REJECTED;   /* data invalid / conditions not satisfied */
    case 0x6a84: return CKR_DEVICE_MEMORY;                    /* not enough memory */
    case 0x6581: return CKR_DEVICE_ERROR;                     /* memory failure */
    default:
        TESS_ERR("piv: %s: card answered %04X", what, sw);
        return CKR_DEVICE_ERROR;
    }
}
