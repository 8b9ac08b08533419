/* How holders are told that their certificates need renewing: a
 * sendmail-compatible command, an HTTP(S) webhook, or both. Set up once per
 * database (its meta table, `tessera notify set`):
 *
 *   notify.sendmail  a command that reads one message (headers and body)
 *                    on its standard input and takes the recipient as its
 *                    last argument, the way `/usr/sbin/sendmail -i` and
 *                    `msmtp` do; run without a shell, its words split at
 *                    spaces; exit status 0 means accepted.
 *   notify.from      the From: address of those messages.
 *   notify.webhook   an http:// or https:// URL that receives one JSON
 *                    document per notice by POST; any 2xx answer means
 *                    accepted. The document's "id" (also the message's
 *                    Message-ID) stays the same when a notice is sent again,
 *                    so a receiver can drop repeats.
 *   notify.webhook-secret-file
 *                    a file (only its owner may read it) whose content is
 *                    the webhook's shared secret: each POST then carries
 *                    X-Tessera-Timestamp (Unix seconds) and
 *                    X-Tessera-Signature: sha256=HEX, the HMAC-SHA256 under
 *                    the secret of "TIMESTAMP.BODY", for the receiver to
 *                    check (and to refuse old timestamps: a replay). The
 *                    secret is read at each scan, never kept in the
 *                    database or shown.
 *
 * A notice counts as sent when every channel set up accepted it. */
#ifndef TESSERA_CMS_NOTIFY_H
#define TESSERA_CMS_NOTIFY_H

#include <stdbool.h>

#include "db.h"
#include "renewal.h"
#include "roles.h"

struct cms_notifier {
    char sendmail[1024];
    char from[256];
    char webhook[1024];
    char webhook_secret_file[1024];
    int timeout_seconds;         /* per send: the command is killed, the request given up, after it */
    char err[512];               /* why the last send failed */
};

/* The channels the database is set up with (none: both ""). */
int cms_notifier_load(struct cms_db *db, struct cms_notifier *nf);
bool cms_notifier_any(const struct cms_notifier *nf);

/* Set one of notify.sendmail, notify.from, notify.webhook,
 * notify.webhook-secret-file (value "" clears it), checked, with its audit
 * record. CMS_INVALID for a value that is not one (a URL other than
 * http(s), a command or file that is not an absolute path, an address that
 * is not one). */
int cms_notifier_set(struct cms_db *db, const struct cms_actor *by, const char *key, const char *value);

/* Send the notice through every channel set up. CMS_OK when all accepted
 * it; otherwise CMS_ERR with the reason in nf->err. channels (for the
 * trail) says which accepted it: "mail to ADDR, webhook". A holder without
 * an address cannot be mailed: CMS_INVALID when mail is the only channel. */
int cms_notify_send(struct cms_notifier *nf, const struct cms_notice *n, char *channels, size_t channelslen);

/* Is this an address a message can go to (no spaces or controls, one @,
 * not starting with '-')? */
bool cms_mail_address_ok(const char *addr);

#endif
