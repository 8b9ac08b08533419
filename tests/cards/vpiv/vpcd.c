/* The vpcd transport (see vpcd.h). */
#include "vpcd.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define RETRY_MS 100

/* Sleeps, or waits for fd to become readable (fd >= 0); a signal ends
 * the wait early. Returns 1 readable, 0 timeout or signal, -1 error. */
static int wait_for(int fd, int ms, const struct vpcd_wait *w)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    int r = ppoll(fd >= 0 ? &p : NULL, fd >= 0 ? 1 : 0, ms >= 0 ? &ts : NULL, w->wait_mask);

    if (r < 0)
        return errno == EINTR ? 0 : -1;
    return r > 0 ? 1 : 0;
}

static int try_connect(const char *host, const char *port)
{
    int fd = -1, one = 1;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;

    if (getaddrinfo(host, port, &hints, &res) != 0)
        goto out;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        goto out;
    /* Each APDU is one small write answered by the other side: Nagle
     * would hold it back waiting for an ACK. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
out:
    if (res)
        freeaddrinfo(res);
    return fd;
}

int vpcd_connect(const char *host, const char *port, const struct vpcd_wait *w)
{
    int fd = -1;

    while (!*w->stop) {
        fd = try_connect(host, port);
        if (fd >= 0)
            break;
        /* No reader yet: pcscd is not (or no longer) running. */
        wait_for(-1, RETRY_MS, w);
    }
    if (*w->stop && fd >= 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int recv_all(int fd, uint8_t *buf, size_t n, const struct vpcd_wait *w)
{
    size_t got = 0;
    ssize_t r;
    int one = 1, ready;

    while (got < n) {
        if (*w->stop)
            return -1;
        ready = wait_for(fd, -1, w);
        if (ready < 0)
            return -1;
        if (ready == 0)
            continue; /* a signal: look at *stop again */
        /* Delayed ACKs would add ~40 ms to every APDU; Linux turns quick
         * ACK mode off again by itself, so ask for it before each recv. */
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
        r = recv(fd, buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int vpcd_recv(int fd, uint8_t *buf, size_t cap, size_t *len, const struct vpcd_wait *w)
{
    uint8_t hdr[2];
    size_t n;

    if (recv_all(fd, hdr, 2, w) < 0)
        return -1;
    n = (size_t)hdr[0] << 8 | hdr[1];
    if (n > cap) {
        fprintf(stderr, "vpiv: message of %zu bytes is too long\n", n);
        return -1;
    }
    if (recv_all(fd, buf, n, w) < 0)
        return -1;
    *len = n;
    return 0;
}

int vpcd_send(int fd, const uint8_t *buf, size_t len)
{
    uint8_t msg[2 + VPCD_MAX_MSG];
    size_t off = 0, total = len + 2;
    ssize_t r;
    int rc = -1;

    if (len > 0xFFFF)
        return -1;
    /* One write for header and payload: one segment on the wire. */
    msg[0] = (uint8_t)(len >> 8);
    msg[1] = (uint8_t)len;
    memcpy(msg + 2, buf, len);
    while (off < total) {
        r = send(fd, msg + off, total - off, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        off += (size_t)r;
    }
    rc = 0;
out:
    /* The answer may be a shared secret or a decrypted key. */
    OPENSSL_cleanse(msg, total);
    return rc;
}
