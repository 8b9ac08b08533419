/* Renewal notices by a sendmail-compatible command and an HTTP webhook
 * (notify.h). http.c does the HTTP; the command runs without a shell. */
#include "config.h"
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "../private_file.h"
#include "audit.h"
#include "http.h"

#define MESSAGE_MAX 4096
#define SENDMAIL_WORDS 32

static int nf_fail(struct cms_notifier *nf, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int nf_fail(struct cms_notifier *nf, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nf->err, sizeof(nf->err), fmt, ap);
    va_end(ap);
    return rc;
}

static void meta_copy(struct cms_db *db, const char *key, char *out, size_t outlen)
{
    char *v = cms_meta_get(db, key);
    snprintf(out, outlen, "%s", v ? v : "");
    free(v);
}

int cms_notifier_load(struct cms_db *db, struct cms_notifier *nf)
{
    memset(nf, 0, sizeof(*nf));
    meta_copy(db, "notify.sendmail", nf->sendmail, sizeof(nf->sendmail));
    meta_copy(db, "notify.from", nf->from, sizeof(nf->from));
    meta_copy(db, "notify.webhook", nf->webhook, sizeof(nf->webhook));
    meta_copy(db, "notify.webhook-secret-file", nf->webhook_secret_file, sizeof(nf->webhook_secret_file));
    nf->timeout_seconds = 30;
    return CMS_OK;
}

bool cms_notifier_any(const struct cms_notifier *nf)
{
    return nf->sendmail[0] || nf->webhook[0];
}

bool cms_mail_address_ok(const char *addr)
{
    const char *at = strchr(addr, '@');
    if (!at || at == addr || !at[1] || strchr(at + 1, '@') || addr[0] == '-' || strlen(addr) > 254)
        return false;
    for (const char *p = addr; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr("<>()[],;:\\\"", *p))
            return false;
    return true;
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return false;
    return true;
}

int cms_notifier_set(struct cms_db *db, const struct cms_actor *by, const char *key, const char *value)
{
    struct cms_audit_rec rec = { .operator = by->name, .action = "notify.set", .result = "ok" };
    char detail[1200];
    int rc;

    if (strlen(value) >= 1024 || !printable(value))
        return cms_fail(db, CMS_INVALID, "%s: too long, or not one line of text", key);
    if (!strcmp(key, "notify.webhook")) {
        if (value[0] && strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
            return cms_fail(db, CMS_INVALID, "a webhook is an http:// or https:// URL, not %s", value);
    } else if (!strcmp(key, "notify.sendmail")) {
        if (value[0] && value[0] != '/')
            return cms_fail(db, CMS_INVALID, "the mail command is run without a shell: name it by its absolute path "
                            "(e.g. /usr/sbin/sendmail -i), not %s", value);
    } else if (!strcmp(key, "notify.webhook-secret-file")) {
        if (value[0] && value[0] != '/')
            return cms_fail(db, CMS_INVALID, "name the secret file by its absolute path, not %s", value);
    } else if (!strcmp(key, "notify.from")) {
        if (value[0] && !cms_mail_address_ok(value))
            return cms_fail(db, CMS_INVALID, "not a mail address: %s", value);
    } else {
        return cms_fail(db, CMS_INVALID, "no setting %s", key);
    }
    if ((rc = cms_begin(db)) != CMS_OK)
        return rc;
    rc = value[0] ? cms_meta_set(db, key, value)
                  : cms_exec_bind(db, "DELETE FROM meta WHERE key = ?2", "meta", 0, key, NULL);
    if (rc == CMS_OK) {
        snprintf(detail, sizeof(detail), "%s = %s", key, value[0] ? value : "(none)");
        rec.detail = detail;
        rc = cms_audit_append(db, &rec);
    }
    if (rc == CMS_OK)
        return cms_commit(db);
    cms_rollback(db);
    return rc;
}

/* "2027-01-05T06:22:13Z" as "2027-01-05 06:22 UTC". */
static void when_text(const char *stored, char out[32])
{
    snprintf(out, 32, "%.10s %.5s UTC", stored, strlen(stored) > 11 ? stored + 11 : "");
}

static size_t put(char *buf, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static size_t put(char *buf, size_t at, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (at >= MESSAGE_MAX)
        return at;
    va_start(ap, fmt);
    n = vsnprintf(buf + at, MESSAGE_MAX - at, fmt, ap);
    va_end(ap);
    return n < 0 ? at : at + (size_t)n;
}

/* What the holder reads, in both channels. */
static size_t notice_text(const struct cms_notice *n, char *buf, size_t at)
{
    char when[32];
    when_text(n->expires, when);
    at = put(buf, at, "Hello %s,\n\n", n->name[0] ? n->name : n->holder);
    at = put(buf, at, "the certificates on your smart card %s%s%s%s %s %s", n->serial[0] ? n->serial : "",
             n->device[0] ? " (on " : "", n->device, n->device[0] ? ")" : "", n->days_left < 0 ? "expired on"
             : "expire on", when);
    if (n->days_left >= 0)
        at = put(buf, at, ", in %d day%s", n->days_left, n->days_left == 1 ? "" : "s");
    at = put(buf, at, ".\n\nRenew them%s: on that computer run\n\n    tessera card renew\n\n"
             "or ask your IT helpdesk. You will be reminded until they are renewed.\n\n-- \nTessera card management "
             "(notice %s)\n", n->days_left < 0 ? " now" : " before then", n->id);
    return at;
}

/* A msg-id's left part from the notice id (atext only). */
static void message_id(const struct cms_notice *n, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", n->id);
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.'))
            *p = '-';
}

static size_t mail_message(const struct cms_notifier *nf, const struct cms_notice *n, char *buf)
{
    char date[64], when[32], mid[128];
    time_t t = time(NULL);
    struct tm tm;
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    size_t at = 0;

    gmtime_r(&t, &tm);
    /* RFC 5322 dates are English whatever the locale. */
    snprintf(date, sizeof(date), "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    when_text(n->expires, when);
    message_id(n, mid, sizeof(mid));
    if (nf->from[0])
        at = put(buf, at, "From: Tessera card management <%s>\n", nf->from);
    /* The name is not put in a header: it may need encoding, and the
     * address (checked) is all a header needs. */
    at = put(buf, at, "To: <%s>\nSubject: Your smart card certificates %s %.10s\nDate: %s\n"
             "Message-ID: <%s@tessera.invalid>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
             "Content-Transfer-Encoding: 8bit\nAuto-Submitted: auto-generated\n\n",
             n->email, n->days_left < 0 ? "expired on" : "expire on", when, date, mid);
    return notice_text(n, buf, at);
}

/* Run the command with the address as its last argument, the message on
 * its standard input; killed after the timeout. */
static int sendmail(struct cms_notifier *nf, const struct cms_notice *n)
{
    char words[1024], *argv[SENDMAIL_WORDS + 2], *save = NULL, *message = NULL;
    struct sigaction ignore = { .sa_handler = SIG_IGN }, old;
    int pipefd[2] = { -1, -1 }, status = 0, argc = 0, rc = CMS_ERR;
    size_t len, done = 0;
    pid_t pid = -1;

    if (!cms_mail_address_ok(n->email))
        return nf_fail(nf, CMS_INVALID, "holder %s has no mail address%s%s", n->holder, n->email[0] ? " that works: "
                       : "", n->email);
    snprintf(words, sizeof(words), "%s", nf->sendmail);
    for (char *w = strtok_r(words, " ", &save); w && argc < SENDMAIL_WORDS; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc++] = (char *)n->email;
    argv[argc] = NULL;
    if (!(message = malloc(MESSAGE_MAX)))
        return nf_fail(nf, CMS_ERR, "out of memory");
    len = mail_message(nf, n, message);
    if (len >= MESSAGE_MAX) {
        rc = nf_fail(nf, CMS_ERR, "the message does not fit");
        goto out;
    }
    if (pipe(pipefd) != 0) {
        rc = nf_fail(nf, CMS_ERR, "pipe: %s", strerror(errno));
        goto out;
    }
    fflush(NULL);
    if ((pid = fork()) < 0) {
        rc = nf_fail(nf, CMS_ERR, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        dup2(pipefd[0], STDIN_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[0]);
    pipefd[0] = -1;
    /* A command that exits without reading is a failure, not a SIGPIPE. */
    sigaction(SIGPIPE, &ignore, &old);
    while (done < len) {
        ssize_t w = write(pipefd[1], message + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    sigaction(SIGPIPE, &old, NULL);
    close(pipefd[1]);
    pipefd[1] = -1;
    for (int waited = 0;; waited += 50) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            rc = nf_fail(nf, CMS_ERR, "waitpid: %s", strerror(errno));
            goto out;
        }
        if (waited >= nf->timeout_seconds * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            rc = nf_fail(nf, CMS_ERR, "%s did not finish in %d s: killed", argv[0], nf->timeout_seconds);
            goto out;
        }
        nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && done == len)
        rc = CMS_OK;
    else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        rc = nf_fail(nf, CMS_ERR, "%s could not be run", argv[0]);
    else if (WIFEXITED(status))
        rc = nf_fail(nf, CMS_ERR, "%s refused the message (exit %d)", argv[0], WEXITSTATUS(status));
    else
        rc = nf_fail(nf, CMS_ERR, "%s died (signal %d)", argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
out:
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    free(message);
    return rc;
}

/* s as a JSON string (quoted, escaped) at buf + at. */
static size_t json_str(char *buf, size_t at, const char *s)
{
    at = put(buf, at, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            at = put(buf, at, "\\%c", c);
        else if (c == '\n')
            at = put(buf, at, "\\n");
        else if (c < 0x20 || c == 0x7f)
            at = put(buf, at, "\\u%04x", c);
        else
            at = put(buf, at, "%c", c);
    }
    return put(buf, at, "\"");
}

static size_t webhook_body(const struct cms_notice *n, char *buf)
{
    char text[MESSAGE_MAX];
    size_t at = put(buf, 0, "{\"event\":\"certificate.renewal\",\"id\":");
    at = json_str(buf, at, n->id);
    at = put(buf, at, ",\"job\":%" PRId64 ",\"card\":%" PRId64 ",\"serial\":", n->job_id, n->card_id);
    at = json_str(buf, at, n->serial);
    at = put(buf, at, ",\"device\":");
    at = json_str(buf, at, n->device);
    at = put(buf, at, ",\"holder\":{\"uid\":");
    at = json_str(buf, at, n->holder);
    at = put(buf, at, ",\"name\":");
    at = json_str(buf, at, n->name);
    at = put(buf, at, ",\"email\":");
    at = json_str(buf, at, n->email);
    at = put(buf, at, "},\"profile\":");
    at = json_str(buf, at, n->profile);
    at = put(buf, at, ",\"expires\":");
    at = json_str(buf, at, n->expires);
    at = put(buf, at, ",\"days_left\":%d,\"previous\":", n->days_left);
    at = n->previous[0] ? json_str(buf, at, n->previous) : put(buf, at, "null");
    text[0] = '\0';
    notice_text(n, text, 0);
    at = put(buf, at, ",\"text\":");
    at = json_str(buf, at, text);
    return put(buf, at, "}");
}

#define SECRET_MAX 256

/* The webhook's secret: the file's content without its last newline; the
 * file must be a regular file only its owner can read or write. */
static int read_secret(struct cms_notifier *nf, char *out, size_t outlen, size_t *len)
{
    char err[600];
    if (tess_private_file_read(nf->webhook_secret_file, out, outlen, len, err, sizeof(err)))
        return nf_fail(nf, CMS_ERR, "webhook secret %s", err);
    if (*len < 16) {
        OPENSSL_cleanse(out, outlen);
        return nf_fail(nf, CMS_ERR, "webhook secret %s: shorter than 16 bytes", nf->webhook_secret_file);
    }
    return CMS_OK;
}

/* X-Tessera-Timestamp and X-Tessera-Signature for body. */
static int sign_headers(struct cms_notifier *nf, const char *body, size_t len, char lines[2][160])
{
    char secret[SECRET_MAX], stamp[32], hex[2 * EVP_MAX_MD_SIZE + 1];
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t slen, maclen = 0;
    EVP_MAC *hmac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2] = { OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_END };
    int rc = read_secret(nf, secret, sizeof(secret), &slen);

    if (rc != CMS_OK)
        return rc;
    snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL));
    if (!(hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) || !(ctx = EVP_MAC_CTX_new(hmac)) ||
        !EVP_MAC_init(ctx, (unsigned char *)secret, slen, params) ||
        !EVP_MAC_update(ctx, (unsigned char *)stamp, strlen(stamp)) || !EVP_MAC_update(ctx, (unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, (const unsigned char *)body, len) || !EVP_MAC_final(ctx, mac, &maclen, sizeof(mac))) {
        rc = nf_fail(nf, CMS_ERR, "HMAC-SHA256 failed");
        goto out;
    }
    for (size_t i = 0; i < maclen; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(lines[0], 160, "X-Tessera-Timestamp: %s", stamp);
    snprintf(lines[1], 160, "X-Tessera-Signature: sha256=%s", hex);
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

static int webhook(struct cms_notifier *nf, const struct cms_notice *n)
{
    char *body = malloc(MESSAGE_MAX), lines[2][160], err[600];
    const char *signature[3] = { lines[0], lines[1], NULL };
    struct cms_http_answer a = { 0 };
    int rc = CMS_ERR;

    if (!body)
        return nf_fail(nf, CMS_ERR, "out of memory");
    size_t len = webhook_body(n, body);
    if (len >= MESSAGE_MAX) {
        rc = nf_fail(nf, CMS_ERR, "the notice does not fit");
        goto out;
    }
    if (nf->webhook_secret_file[0] && (rc = sign_headers(nf, body, len, lines)) != CMS_OK)
        goto out;
    struct cms_http_request rq = { .url = nf->webhook, .body = body, .body_len = len,
                                   .headers = nf->webhook_secret_file[0] ? signature : NULL,
                                   .timeout_seconds = nf->timeout_seconds, .discard_answer = true };
    if (cms_http_request(&rq, &a, err, sizeof(err))) {
        rc = nf_fail(nf, CMS_ERR, "webhook %s", err);
        goto out;
    }
    rc = a.status >= 200 && a.status < 300 ? CMS_OK
                                           : nf_fail(nf, CMS_ERR, "webhook %s answered HTTP %ld", nf->webhook, a.status);
out:
    cms_http_answer_free(&a);
    free(body);
    return rc;
}

int cms_notify_send(struct cms_notifier *nf, const struct cms_notice *n, char *channels, size_t channelslen)
{
    int rc = CMS_OK;
    bool mailed = false, posted = false;

    channels[0] = '\0';
    nf->err[0] = '\0';
    if (!cms_notifier_any(nf))
        return nf_fail(nf, CMS_INVALID, "no channel is set up (tessera notify set)");
    if (nf->sendmail[0]) {
        rc = sendmail(nf, n);
        mailed = rc == CMS_OK;
        /* No address: the webhook may still reach the holder's organisation. */
        if (rc == CMS_INVALID && nf->webhook[0])
            rc = CMS_OK;
    }
    if (rc == CMS_OK && nf->webhook[0]) {
        rc = webhook(nf, n);
        posted = rc == CMS_OK;
    }
    snprintf(channels, channelslen, "%s%s%s%s", mailed ? "mail to " : "", mailed ? n->email : "",
             mailed && posted ? ", " : "", posted ? "webhook" : "");
    return rc;
}
