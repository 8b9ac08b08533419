/* The channel to a card in a PC/SC reader: connection, transactions, and
 * APDU exchange with command chaining, GET RESPONSE (61xx) and wrong-Le
 * retry (6Cxx), so the card application above sees whole commands and
 * whole responses. Status words are mapped to CK_RV here, once. */
#ifndef TESSERA_PIV_CHANNEL_H
#define TESSERA_PIV_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <PCSC/winscard.h>

#include "../../pkcs11/pk11.h"
#include "buf.h"


struct channel {
    SCARDHANDLE card;
    DWORD protocol;
    char reader[256];
    bool connected;
    bool was_reset;            /* the card was reset by someone else: state lost */
    bool ext_len;              /* the card's ATR offers extended Lc/Le: long commands go whole */
    int tx_depth;              /* nested channel_begin calls */
    unsigned long apdus;       /* APDUs sent, for the measures in bench/ */
};

CK_RV channel_connect(struct channel *ch, SCARDCONTEXT ctx, const char *reader);
void channel_disconnect(struct channel *ch);
/* Exclusive use of the card for a multi-APDU operation (PC/SC transaction). */
CK_RV channel_begin(struct channel *ch);
void channel_end(struct channel *ch);

/* Send one command (chained if longer than 255 bytes); the response data (all
 * of it, gathered over 61xx) goes to resp and the final status word to *sw.
 * Returns CKR_OK when the exchange worked, whatever the status word. */
CK_RV channel_transmit(struct channel *ch, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data,
                       size_t len, struct buf *resp, uint16_t *sw);

/* The same, but only the first chunk of a long response: *sw stays 61xx
 * when more waits. channel_continue fetches the rest into resp. */
CK_RV channel_transmit_first(struct channel *ch, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
                             const uint8_t *data, size_t len, struct buf *resp, uint16_t *sw);
CK_RV channel_continue(struct channel *ch, struct buf *resp, uint16_t *sw);

/* What a status word means for PKCS#11 (and a log line for the unusual). */
CK_RV sw_to_rv(uint16_t sw, const char *what);

#endif
