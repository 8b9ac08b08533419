/* HTTP requests for card management (http.h). */
#include "config.h"
#include "http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static size_t keep(char *data, size_t size, size_t n, void *arg)
{
    struct cms_http_answer *a = arg;
    size_t more = size * n;
    unsigned char *grown;
    if (a->discard)
        return more;
    if (a->len + more > CMS_HTTP_MAX_ANSWER)
        return 0;   /* libcurl stops with a write error */
    if (!(grown = realloc(a->body, a->len + more + 1))) {
        a->oom = true;
        return 0;
    }
    memcpy(grown + a->len, data, more);
    a->body = grown;
    a->len += more;
    a->body[a->len] = '\0';
    return more;
}

/* Failures before the request could leave: no connection was made, or its
 * TLS handshake failed (the body goes only over a finished handshake). A
 * timeout may have struck after the server had it. */
static bool sent_nothing(CURLcode cc)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
        return true;
    default:
        return false;
    }
}

int cms_http_request(const struct cms_http_request *rq, struct cms_http_answer *out, char *err, size_t errlen)
{
    static bool curl_ready;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    CURL *curl = NULL;
    CURLcode cc;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->discard = rq->discard_answer;
    /* Before any other thread: the tool has none. */
    out->unsent = true;
    if (!curl_ready && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl did not start");
        return -1;
    }
    curl_ready = true;
    if (!(curl = curl_easy_init())) {
        snprintf(err, errlen, "libcurl: out of memory");
        return -1;
    }
    headers = curl_slist_append(headers, "User-Agent: tessera/" PACKAGE_VERSION);
    for (const char *const *h = rq->headers; h && *h; h++)
        headers = curl_slist_append(headers, *h);
    if (rq->body) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)rq->body_len);
    }
    curl_easy_setopt(curl, CURLOPT_URL, rq->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);   /* answers come from where the question went */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, rq->timeout_seconds);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    if (rq->ca_file && rq->ca_file[0])
        curl_easy_setopt(curl, CURLOPT_CAINFO, rq->ca_file);
    if (rq->client_cert && rq->client_cert[0]) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, rq->client_cert);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, rq->client_key);
    }
    cc = curl_easy_perform(curl);
    out->unsent = sent_nothing(cc);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s: %s", rq->url,
                 cc != CURLE_WRITE_ERROR ? errbuf[0] ? errbuf : curl_easy_strerror(cc)
                 : out->oom              ? "out of memory"
                                         : "the answer is too large");
        cms_http_answer_free(out);
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    if (!out->body && !(out->body = calloc(1, 1))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    rc = 0;
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return rc;
}

void cms_http_answer_free(struct cms_http_answer *a)
{
    free(a->body);
    a->body = NULL;
    a->len = 0;
}
