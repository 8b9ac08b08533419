/* The vpcd transport (vsmartcard's virtual reader driver for pcscd): the
 * reader listens, the card connects; every message in either direction is
 * a 2-byte big-endian length and a payload. A 1-byte payload from the
 * reader is a control message (below); anything longer is a C-APDU,
 * answered with the R-APDU. Only VPCD_CTRL_ATR gets an answer (the ATR).
 */
#ifndef VPIV_VPCD_H
#define VPIV_VPCD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define VPCD_CTRL_OFF 0x00
#define VPCD_CTRL_ON 0x01
#define VPCD_CTRL_RESET 0x02
#define VPCD_CTRL_ATR 0x04

/* Largest message: an extended APDU. */
#define VPCD_MAX_MSG 65545

/* Waits in ppoll() with the signals of *wait_mask deliverable, so a
 * SIGTERM ends any wait: when *stop becomes non-zero these return -1. */
struct vpcd_wait {
    const sigset_t *wait_mask;
    volatile sig_atomic_t *stop;
};

/* Connects to host:port, retrying until it succeeds or *stop is set.
 * Returns the socket, or -1 when stopped. */
int vpcd_connect(const char *host, const char *port, const struct vpcd_wait *w);
/* Receives one message. Returns 0, or -1 when the reader went away (or
 * on a stop request). */
int vpcd_recv(int fd, uint8_t *buf, size_t cap, size_t *len, const struct vpcd_wait *w);
int vpcd_send(int fd, const uint8_t *buf, size_t len);

#endif
