/* HTTP for card management's servers (a CA's REST API, a published CRL,
 * the renewal webhook), with libcurl: one request, its answer in memory. */
#ifndef TESSERA_CMS_HTTP_H
#define TESSERA_CMS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define CMS_HTTP_MAX_ANSWER (4u << 20)   /* a CRL of a large CA fits; anything bigger is refused */

struct cms_http_request {
    const char *url;
    const char *body;                /* POSTed as application/json (NULL: a GET) */
    size_t body_len;
    const char *const *headers;      /* further header lines, NULL-terminated (NULL: none) */
    const char *ca_file;             /* what an https server must chain to (NULL or "": the system's) */
    const char *client_cert;         /* PEM certificate and key shown to an https server (mutual TLS) */
    const char *client_key;
    long timeout_seconds;
    bool discard_answer;             /* only its status matters (a webhook's) */
};

struct cms_http_answer {
    long status;                     /* the HTTP status */
    unsigned char *body;             /* NUL-terminated (not counted in len); caller frees */
    size_t len;
    bool unsent;                     /* no answer, and the request certainly never reached the
                                        server (no connection, TLS handshake refused) */
    bool discard, oom;               /* http.c's own */
};

/* -1 with the reason in err ("URL: what went wrong") when there is no
 * answer; an answer of any status is 0. Redirects are not followed. */
int cms_http_request(const struct cms_http_request *rq, struct cms_http_answer *out, char *err, size_t errlen);
void cms_http_answer_free(struct cms_http_answer *a);

#endif
