/* vpiv: a virtual PIV card for tests. It plugs into pcscd through vpcd's
 * virtual reader and answers as a NIST SP 800-73-4 PIV card application
 * with the YubiKey extensions yubico-piv-tool needs. See
 * tests/cards/README.md.
 *
 *   vpiv --port PORT --state DIR [--host 127.0.0.1] [--pid-file FILE]
 *        [--pin PIN] [--puk PUK] [--mgmt-key HEX] [--mgmt-alg ALG]
 *        [--serial N] [--atr HEX] [--reset] [-v]
 */
#include "card.h"
#include "crypto.h"
#include "vpcd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

/* T=1 only; historical bytes in compact-TLV: category 80, then the PIV
 * AID as "application identifier" (tag F, 11 bytes); TCK. OpenSC's PIV
 * driver recognises a PIV card by this (card type "PIV-II (hist)"): no
 * vendor quirks switched on. */
static const uint8_t default_atr[] = { 0x3B, 0x8D, 0x01, 0x80, 0xFB, 0xA0, 0x00, 0x00, 0x03,
                                       0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x4D };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fputs("usage: vpiv --port PORT --state DIR [options]\n"
          "  --host HOST       vpcd's address (default 127.0.0.1)\n"
          "  --pid-file FILE   write the process id there\n"
          "  --reset           start from a factory-fresh card even if DIR has one\n"
          "  --pull-after N    leave the reader after N commands (a pulled card)\n"
          "  --plain           a PIV card without the YubiKey commands (INS F7 to FF)\n"
          "  --no-key-history  no key history object until one is written, as a YubiKey\n"
          "for a new card (fresh DIR, or --reset):\n"
          "  --pin PIN         user PIN (default 123456)\n"
          "  --puk PUK         PUK (default 12345678)\n"
          "  --mgmt-key HEX    management key (default 0102..08 three times)\n"
          "  --mgmt-alg ALG    3des (default), aes128, aes192, aes256\n"
          "  --serial N        serial number (default random)\n"
          "  --atr HEX         answer to reset (default PIV AID in historical bytes)\n"
          "  -v, --verbose     log APDUs (not their secrets) to stderr\n",
          f);
}

static int parse_hex_arg(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t i, len = strlen(s);
    unsigned v;

    if (len % 2 || len / 2 > cap || len == 0)
        return -1;
    for (i = 0; i < len / 2; i++) {
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    *n = len / 2;
    return 0;
}

static int parse_alg(const char *s)
{
    if (!strcmp(s, "3des"))
        return ALG_3DES;
    if (!strcmp(s, "aes128"))
        return ALG_AES128;
    if (!strcmp(s, "aes192"))
        return ALG_AES192;
    if (!strcmp(s, "aes256"))
        return ALG_AES256;
    return -1;
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "we");

    if (!f)
        return -1;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0 ? 0 : -1;
}

/* Removes the PID file if it still names this process. */
static void remove_pid_file(const char *path)
{
    FILE *f = fopen(path, "re");
    long pid = 0;

    if (!f)
        return;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid == (long)getpid())
        unlink(path);
}

/* Serves one connection to vpcd until it drops or a stop is requested. */
static void serve(struct vpiv_card *c, int fd, const struct vpcd_wait *w, uint8_t *msg, unsigned long *pull_after)
{
    size_t n;
    struct vbuf r = { 0 };

    while (vpcd_recv(fd, msg, VPCD_MAX_MSG, &n, w) == 0) {
        vbuf_reset(&r);
        if (n == 1) {
            switch (msg[0]) {
            case VPCD_CTRL_OFF:
            case VPCD_CTRL_ON:
            case VPCD_CTRL_RESET:
                /* Power and reset lose the security state (PIN verified,
                 * management key authenticated), like a real card. */
                vlog(c, "%s", msg[0] == VPCD_CTRL_OFF ? "power off" : msg[0] == VPCD_CTRL_ON ? "power on" : "reset");
                card_reset(c);
                continue;
            case VPCD_CTRL_ATR:
                if (vpcd_send(fd, c->atr, c->atr_len) < 0)
                    goto out;
                continue;
            default:
                vlog(c, "unknown control message %02X", msg[0]);
                continue;
            }
        }
        if (card_process(c, msg, n, &r) < 0)
            break; /* out of memory: drop the connection, the reader sees a removal */
        OPENSSL_cleanse(msg, n);
        if (vpcd_send(fd, r.data, r.len) < 0)
            break;
        /* --pull-after: the card leaves the reader after this many commands,
         * to test what a pulled card leaves behind at every step. */
        if (*pull_after && --*pull_after == 0) {
            vlog(c, "pulled out (--pull-after)");
            stop_requested = 1;
            break;
        }
    }
out:
    vbuf_free(&r);
}

int main(int argc, char **argv)
{
    int rc = 1, opt, reset = 0, r, fd, personalised = 0;
    const char *host = "127.0.0.1", *port = NULL, *pid_file = NULL, *alg_name = NULL;
    uint8_t mgmt[32], *msg = NULL;
    size_t n;
    unsigned long serial, pull_after = 0;
    char *end;
    struct factory_opts fo = { .mgmt_alg = -1 };
    struct vpiv_card c = { 0 };
    struct sigaction sa = { 0 };
    sigset_t block, orig;
    struct vpcd_wait w = { .wait_mask = &orig, .stop = &stop_requested };
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },     { "host", required_argument, NULL, 'H' },
        { "state", required_argument, NULL, 's' },    { "pid-file", required_argument, NULL, 'P' },
        { "pin", required_argument, NULL, 'i' },      { "puk", required_argument, NULL, 'u' },
        { "mgmt-key", required_argument, NULL, 'k' }, { "mgmt-alg", required_argument, NULL, 'a' },
        { "serial", required_argument, NULL, 'S' },   { "atr", required_argument, NULL, 'A' },
        { "reset", no_argument, NULL, 'r' },          { "verbose", no_argument, NULL, 'v' },
        { "pull-after", required_argument, NULL, 'X' }, { "help", no_argument, NULL, 'h' },
        { "plain", no_argument, NULL, 'L' },           { "no-key-history", no_argument, NULL, 'K' },
        { NULL, 0, NULL, 0 }
    };

    memcpy(c.atr, default_atr, sizeof(default_atr));
    c.atr_len = sizeof(default_atr);
    while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (opt) {
        case 'p': port = optarg; break;
        case 'H': host = optarg; break;
        case 'L': c.plain = 1; break;
        case 'K': c.no_history = 1; break;
        case 's': c.dir = optarg; break;
        case 'P': pid_file = optarg; break;
        case 'i': fo.pin = optarg; personalised = 1; break;
        case 'u': fo.puk = optarg; personalised = 1; break;
        case 'k':
            if (parse_hex_arg(optarg, mgmt, sizeof(mgmt), &n) < 0) {
                fprintf(stderr, "vpiv: --mgmt-key: hexadecimal key expected\n");
                goto out;
            }
            fo.mgmt_key = mgmt;
            fo.mgmt_len = n;
            personalised = 1;
            break;
        case 'a': alg_name = optarg; personalised = 1; break;
        case 'S':
            errno = 0;
            serial = strtoul(optarg, &end, 10);
            if (errno || *end || serial > 0xFFFFFFFFul) {
                fprintf(stderr, "vpiv: --serial: number expected\n");
                goto out;
            }
            fo.serial = (uint32_t)serial;
            fo.have_serial = 1;
            personalised = 1;
            break;
        case 'A':
            if (parse_hex_arg(optarg, c.atr, sizeof(c.atr), &c.atr_len) < 0 || c.atr_len < 2) {
                fprintf(stderr, "vpiv: --atr: hexadecimal ATR expected\n");
                goto out;
            }
            break;
        case 'r': reset = 1; break;
        case 'X':
            errno = 0;
            pull_after = strtoul(optarg, &end, 10);
            if (errno || *end || !pull_after) {
                fprintf(stderr, "vpiv: --pull-after: a number of commands expected\n");
                goto out;
            }
            break;
        case 'v': c.verbose = 1; break;
        case 'h': usage(stdout); rc = 0; goto out;
        default: usage(stderr); goto out;
        }
    }
    if (!port || !c.dir || optind != argc) {
        usage(stderr);
        goto out;
    }
    if ((fo.pin && (strlen(fo.pin) < 6 || strlen(fo.pin) > 8)) ||
        (fo.puk && (strlen(fo.puk) < 6 || strlen(fo.puk) > 8))) {
        fprintf(stderr, "vpiv: --pin, --puk: 6 to 8 characters\n");
        goto out;
    }
    if (alg_name && (fo.mgmt_alg = parse_alg(alg_name)) < 0) {
        fprintf(stderr, "vpiv: --mgmt-alg: 3des, aes128, aes192 or aes256\n");
        goto out;
    }
    if (fo.mgmt_alg >= 0 && fo.mgmt_alg != ALG_3DES && !fo.mgmt_key) {
        fprintf(stderr, "vpiv: an AES management key needs --mgmt-key\n");
        goto out;
    }
    if (fo.mgmt_key && fo.mgmt_len != vc_sym_keylen(fo.mgmt_alg >= 0 ? (uint8_t)fo.mgmt_alg : ALG_3DES)) {
        fprintf(stderr, "vpiv: --mgmt-key: wrong length for the algorithm\n");
        goto out;
    }

    /* Signals are delivered only while waiting (ppoll), so a stop request
     * is never lost between checking the flag and blocking. */
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &orig);

    if (pid_file && write_pid_file(pid_file) < 0) {
        fprintf(stderr, "vpiv: %s: %s\n", pid_file, strerror(errno));
        goto out;
    }
    r = reset ? 1 : state_load(c.dir, &c.st);
    if (r < 0) {
        fprintf(stderr, "vpiv: %s: unreadable card state (--reset starts afresh)\n", c.dir);
        goto out;
    }
    if (r == 1) {
        if (state_factory(c.dir, &c.st, &fo) < 0) {
            fprintf(stderr, "vpiv: %s: could not create the card\n", c.dir);
            goto out;
        }
    } else if (personalised) {
        fprintf(stderr, "vpiv: %s holds a card already: --pin, --puk, --mgmt-*, --serial "
                        "ignored (--reset to start afresh)\n", c.dir);
    }
    msg = malloc(VPCD_MAX_MSG);
    if (!msg)
        goto out;
    card_reset(&c);
    vlog(&c, "card %u in %s, vpcd %s:%s", (unsigned)c.st.serial, c.dir, host, port);
    while (!stop_requested) {
        fd = vpcd_connect(host, port, &w);
        if (fd < 0)
            break;
        vlog(&c, "connected");
        serve(&c, fd, &w, msg, &pull_after);
        close(fd);
        /* The reader went away: for the card, a removal. */
        card_reset(&c);
        vlog(&c, "disconnected");
    }
    rc = 0;
out:
    OPENSSL_cleanse(mgmt, sizeof(mgmt));
    if (msg) {
        OPENSSL_cleanse(msg, VPCD_MAX_MSG);
        free(msg);
    }
    vbuf_free(&c.chain);
    vbuf_free(&c.resp);
    state_free(&c.st);
    if (pid_file)
        remove_pid_file(pid_file);
    return rc;
}
